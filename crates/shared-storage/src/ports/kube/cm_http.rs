//! [`HttpCmApi`]: the cluster manager's REST API over HTTP ([`CmApi`]).
//!
//! | call         | request                                                          | done when |
//! |--------------|------------------------------------------------------------------|-----------|
//! | `set_ha`     | `POST /v1/enable {"enable":1\|0}`                                 | envelope `code` 200 |
//! | `add_ins`    | `POST /v1/add_ins {"ip","port","type","sync","pod_name","use_node_driver","host_name"}` | `code` 200, or a message with `already exist` |
//! | `remove_ins` | `POST /v1/remove_ins`, the same fields                           | `code` 200, or a message with `not exist` |
//! | `switchover` | `POST /v1/switchover {"from","to","force":1}`                    | `code` 200 |
//! | `status`     | `GET /v1/status?type=visual`                                     | HTTP 200 and the status document |
//!
//! `ip` is the node's client IP, `port` the engine port **as a string**, `type` `RW` or `RO`,
//! `sync` `SYNC`, `use_node_driver` the string `"false"`; `host_name` (the node name) is left
//! out when empty.
//!
//! The CM answers failures with HTTP 200 and `{"code":500,"msg":…}`: such a reply is
//! `Rejected` with the message, except `Failed to request cause no CM leader!` (a follower
//! without a leader), which is `Unavailable`. HTTP 5xx, timeouts and refused connections are
//! retried by the [HTTP client](super::http). `add_ins`, `remove_ins` and `switchover` block
//! on the server (up to 60 s, 20 s and 60 s), so they get
//! [`KubePortsConfig::cm_add_ins_timeout`] and are not retried after a timeout: the next
//! status read tells whether they took effect.
//!
//! The status document: `phase` is the CM's own phase (`RunningPhase`, `DisableAllPhase`,
//! `SwitchingPhase`, …), kept as [`CmStatus::phase`]; `rw` is left out when there is no RW;
//! `ro` is a list (left out when empty); `standby`, `master` and `cluster_manager` are not
//! read. The document has no HA flag: `POST /v1/enable 0` puts the CM in `DisableAllPhase`
//! and `1` in `RunningPhase` (a CM leader restores the phase it had), so
//! [`CmStatus::ha_enabled`] is `phase != "DisableAllPhase"`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::http::{Call, HttpClient, Reply};
use super::{CmApi, KubePortsConfig};
use crate::ports::{CmInsStatus, CmInstance, CmRole, CmStatus, PortError};

/// The port name in errors.
const PORT: &str = "cluster_manager";
/// The CM phase with automatic failover off.
pub(crate) const DISABLE_ALL_PHASE: &str = "DisableAllPhase";
/// A follower CM without a leader.
const NO_LEADER: &str = "no CM leader";

/// `POST /v1/enable`.
#[derive(Serialize)]
struct EnableBody {
    enable: u8,
}

/// `POST /v1/add_ins` and `/v1/remove_ins`.
#[derive(Serialize)]
struct InsBody<'a> {
    ip: &'a str,
    port: String,
    #[serde(rename = "type")]
    kind: &'static str,
    sync: &'static str,
    pod_name: &'a str,
    use_node_driver: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    host_name: &'a str,
}

impl<'a> InsBody<'a> {
    fn of(ins: &'a CmInstance) -> Self {
        InsBody {
            ip: &ins.client_ip,
            port: ins.port.to_string(),
            kind: match ins.role {
                Some(CmRole::Rw) => "RW",
                Some(CmRole::Ro) | None => "RO",
            },
            sync: "SYNC",
            pod_name: &ins.pod_name,
            use_node_driver: "false",
            host_name: &ins.host_name,
        }
    }
}

/// `POST /v1/switchover`.
#[derive(Serialize)]
struct SwitchoverBody<'a> {
    from: &'a str,
    to: &'a str,
    force: u8,
}

/// The action envelope.
#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    msg: String,
}

/// The status document (`type=visual`), the parts that are read.
#[derive(Deserialize)]
struct Visual {
    #[serde(default)]
    phase: String,
    #[serde(default)]
    rw: Option<VisualIns>,
    #[serde(default)]
    ro: Option<Vec<VisualIns>>,
}

/// An instance of the status document.
#[derive(Deserialize)]
struct VisualIns {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    pod_name: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    start_at: String,
}

impl From<VisualIns> for CmInsStatus {
    fn from(v: VisualIns) -> Self {
        CmInsStatus {
            endpoint: v.endpoint,
            pod_name: v.pod_name,
            phase: v.phase,
            start_at: v.start_at,
        }
    }
}

/// Parses a status document (`GET /v1/status?type=visual`).
fn parse_status(reply: &Reply, call: &Call) -> Result<CmStatus, PortError> {
    let value: serde_json::Value = reply.json(PORT, call)?;
    if value.get("phase").is_none() {
        if let Some(code) = value.get("code").and_then(serde_json::Value::as_i64) {
            let msg = value
                .get("msg")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            return Err(envelope_error(call, code, msg));
        }
    }
    let visual: Visual = serde_json::from_value(value).map_err(|err| PortError::Rejected {
        port: PORT,
        message: format!("{}: unexpected status document: {err}", call.describe()),
    })?;
    Ok(CmStatus {
        ha_enabled: visual.phase != DISABLE_ALL_PHASE,
        phase: visual.phase,
        rw: visual.rw.map(CmInsStatus::from),
        ro: visual
            .ro
            .unwrap_or_default()
            .into_iter()
            .map(CmInsStatus::from)
            .collect(),
    })
}

/// The outcome of an action's reply: HTTP 2xx and envelope `code` 200, or a failure message
/// with one of `done_texts`, is done.
fn action_outcome(reply: &Reply, call: &Call, done_texts: &[&str]) -> Result<(), PortError> {
    if !reply.is_success() {
        return Err(reply.refused(PORT, call));
    }
    let envelope: Envelope = reply.json(PORT, call)?;
    if envelope.code == 200 {
        return Ok(());
    }
    if let Some(text) = done_texts.iter().find(|t| envelope.msg.contains(*t)) {
        tracing::info!(call = %call.describe(), msg = %envelope.msg, "cluster manager says {text:?}; counted as done");
        return Ok(());
    }
    Err(envelope_error(call, envelope.code, &envelope.msg))
}

/// Decodes the reply of a CM action (`POST /v1/enable`, `/v1/add_ins`, `/v1/remove_ins`,
/// `/v1/switchover`): `Ok` when done (envelope `code` 200, or a message containing one of
/// `done_texts`), else the error the port returns.
pub fn decode_cm_action(status: u16, body: &str, done_texts: &[&str]) -> Result<(), PortError> {
    let call = Call::get("http://cm", "/v1/action");
    action_outcome(&Reply::of(PORT, status, body)?, &call, done_texts)
}

/// Decodes the reply of `GET /v1/status?type=visual` into the CM's status, or the error the
/// port returns (a failure envelope, a body that is not a status document, a non-2xx status).
pub fn decode_cm_status(status: u16, body: &str) -> Result<CmStatus, PortError> {
    let call = Call::get("http://cm", "/v1/status");
    let reply = Reply::of(PORT, status, body)?;
    if !reply.is_success() {
        return Err(reply.refused(PORT, &call));
    }
    parse_status(&reply, &call)
}

/// A `code` other than 200.
fn envelope_error(call: &Call, code: i64, msg: &str) -> PortError {
    let message = format!("{}: code {code}: {msg}", call.describe());
    if msg.contains(NO_LEADER) {
        PortError::Unavailable {
            port: PORT,
            message,
        }
    } else {
        PortError::Rejected {
            port: PORT,
            message,
        }
    }
}

/// The production [`CmApi`].
#[derive(Clone, Debug)]
pub struct HttpCmApi {
    http: HttpClient,
    blocking_timeout: std::time::Duration,
}

impl HttpCmApi {
    /// A client with the timeouts and retries of `config`.
    ///
    /// # Errors
    /// `Rejected` when the HTTP client cannot be built.
    pub fn new(config: &KubePortsConfig) -> Result<Self, PortError> {
        Ok(HttpCmApi {
            http: HttpClient::new(PORT, config)?,
            blocking_timeout: config.cm_add_ins_timeout,
        })
    }

    async fn send(&self, call: &Call) -> Result<Reply, PortError> {
        self.http
            .send(call)
            .await
            .map_err(|f| f.into_port_error(PORT))
    }

    /// Sends an action; `done_texts` in a failure message count as success.
    async fn action(&self, call: Call, done_texts: &[&str]) -> Result<(), PortError> {
        let reply = self.send(&call).await?;
        action_outcome(&reply, &call, done_texts)
    }

    fn post(&self, base_url: &str, path: &str, body: &impl Serialize) -> Result<Call, PortError> {
        Call::post(base_url, path, body).map_err(|f| f.into_port_error(PORT))
    }

    fn blocking(&self, call: Call) -> Call {
        call.timeout(self.blocking_timeout).no_retry_on_timeout()
    }
}

#[async_trait]
impl CmApi for HttpCmApi {
    async fn set_ha(&self, base_url: &str, enabled: bool) -> Result<(), PortError> {
        let body = EnableBody {
            enable: u8::from(enabled),
        };
        self.action(self.post(base_url, "/v1/enable", &body)?, &[])
            .await
    }

    async fn add_ins(&self, base_url: &str, ins: &CmInstance) -> Result<(), PortError> {
        let call = self.blocking(self.post(base_url, "/v1/add_ins", &InsBody::of(ins))?);
        self.action(call, &["already exist"]).await
    }

    async fn remove_ins(&self, base_url: &str, ins: &CmInstance) -> Result<(), PortError> {
        let call = self.blocking(self.post(base_url, "/v1/remove_ins", &InsBody::of(ins))?);
        self.action(call, &["not exist"]).await
    }

    async fn switchover(&self, base_url: &str, from: &str, to: &str) -> Result<(), PortError> {
        let body = SwitchoverBody { from, to, force: 1 };
        let call = self.blocking(self.post(base_url, "/v1/switchover", &body)?);
        self.action(call, &[]).await
    }

    async fn status(&self, base_url: &str) -> Result<CmStatus, PortError> {
        let call = Call::get(base_url, "/v1/status").query("type", "visual");
        let reply = self.send(&call).await?;
        if !reply.is_success() {
            return Err(reply.refused(PORT, &call));
        }
        parse_status(&reply, &call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn reply(body: &str) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: body.to_owned(),
        }
    }

    fn call() -> Call {
        Call::get("http://127.0.0.1:1", "/v1/status").query("type", "visual")
    }

    #[test]
    fn a_full_status_document_keeps_the_phases_and_ignores_the_other_keys() {
        let doc = r#"{
            "phase": "RunningPhase",
            "cluster_manager": [{"endpoint": "10.0.0.1:5001", "phase": "Leader"}],
            "master": {"endpoint": "x"},
            "standby": [],
            "rw": {"endpoint": "192.168.0.1:5432", "pod_name": "c1-1001-1002", "phase": "RUNNING",
                   "start_at": "2024-05-01 10:00:00", "sync_status": "SYNC", "data_path": "/d", "user": "u"},
            "ro": [{"endpoint": "192.168.0.2:5432", "pod_name": "c1-1003-1004", "phase": "STARTING"}]
        }"#;
        let status = parse_status(&reply(doc), &call()).unwrap();
        assert_eq!(status.phase, "RunningPhase");
        assert!(status.ha_enabled);
        let rw = status.rw.unwrap();
        assert_eq!(
            (
                rw.endpoint.as_str(),
                rw.pod_name.as_str(),
                rw.phase.as_str(),
                rw.start_at.as_str()
            ),
            (
                "192.168.0.1:5432",
                "c1-1001-1002",
                "RUNNING",
                "2024-05-01 10:00:00"
            )
        );
        assert_eq!(status.ro.len(), 1);
        assert_eq!(status.ro[0].phase, "STARTING");
        assert_eq!(status.ro[0].start_at, "");
    }

    #[test]
    fn a_status_without_rw_or_ro_has_none_and_disable_all_means_ha_off() {
        let status = parse_status(&reply(r#"{"phase":"DisableAllPhase"}"#), &call()).unwrap();
        assert_eq!(status.rw, None);
        assert!(status.ro.is_empty());
        assert!(!status.ha_enabled);
        assert_eq!(status.phase, DISABLE_ALL_PHASE);
    }

    #[test]
    fn a_failure_envelope_instead_of_a_status_is_an_error_not_an_empty_cluster() {
        let err = parse_status(
            &reply(r#"{"code":500,"msg":"Failed to request cause no CM leader!"}"#),
            &call(),
        )
        .unwrap_err();
        assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
        let err = parse_status(&reply(r#"{"code":500,"msg":"boom"}"#), &call()).unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }), "{err}");
        assert!(err.to_string().contains("boom"));
    }

    #[test]
    fn a_status_that_is_not_json_is_rejected() {
        let err = parse_status(&reply("Failed to MarshalIndent"), &call()).unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(err.to_string().contains("GET /v1/status"), "{err}");
    }

    #[test]
    fn the_instance_body_has_the_documented_fields_and_types() {
        let ins = CmInstance {
            pod_name: "c1-1001-1002".into(),
            host_ip: "10.0.0.1".into(),
            client_ip: "192.168.0.1".into(),
            host_name: String::new(),
            port: 5432,
            role: None,
        };
        assert_eq!(
            serde_json::to_value(InsBody::of(&ins)).unwrap(),
            serde_json::json!({"ip":"192.168.0.1","port":"5432","type":"RO","sync":"SYNC",
                "pod_name":"c1-1001-1002","use_node_driver":"false"})
        );
    }
}
