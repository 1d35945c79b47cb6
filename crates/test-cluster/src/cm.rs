//! An emulator of one cluster manager (CM) on `127.0.0.1`, speaking the documented paths,
//! envelopes and texts, written from the wire description (not from the operator's client,
//! so the two check each other).
//!
//! | request | answer |
//! |---------|--------|
//! | `POST /v1/enable {"enable":1\|0}` (an integer) | `{"code":200}`; the phase becomes `RunningPhase` / `DisableAllPhase` |
//! | `POST /v1/add_ins {"ip","port","type","sync","pod_name","use_node_driver","host_name"}`, every value a string | `{"code":200}`; the instance is `STARTING` |
//! | `POST /v1/remove_ins`, the same fields | `{"code":200}` |
//! | `POST /v1/switchover {"from","to","force"}` | `{"code":200}`; the roles swap |
//! | `GET /v1/status?type=visual` | the status document: `phase`, `cluster_manager`, `rw` (left out without a RW), `ro` (left out when empty) |
//!
//! Failures are HTTP 200 with `{"code":500,"msg":…}`, with the server's texts:
//! `Add rw ins only once, already exist cluster:<id>` (a second RW),
//! `Failed to add ins … cause rw not exist` (an RO before the RW),
//! `Failed to remove ins <ep> cause ins <ep> phase not exist`,
//! `Failed to request cause no CM leader!` (after [`CmEmulator::set_leader`]`(false)`),
//! and the JSON decoder's message for a body of the wrong types (a number for `port`).
//! An RO that is already known is skipped and reported as success.
//!
//! Each status request counts as one poll: an instance turns `RUNNING` on the poll after
//! [`CmEmulator::set_running_after`] polls (default 1). [`CmEmulator::fail_instance`] and
//! [`CmEmulator::promote`] play what the CM does on its own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use test_cluster::cm::CmEmulator;
//! let cm = CmEmulator::start().await?;
//! assert!(cm.ha_enabled());
//! assert!(cm.instances().is_empty());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::emulator::{Answer, Server};
pub use crate::emulator::{Fault, Recorded, Scope};

/// The phase with automatic failover on.
pub const RUNNING_PHASE: &str = "RunningPhase";
/// The phase with automatic failover off.
pub const DISABLE_ALL_PHASE: &str = "DisableAllPhase";

/// An instance's role for the CM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmRole {
    /// Read-write.
    Rw,
    /// Read-only.
    Ro,
}

/// An instance as the CM knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmIns {
    /// `ip:port`.
    pub endpoint: String,
    /// The pod name.
    pub pod_name: String,
    /// The node name (`host_name`, may be empty).
    pub host_name: String,
    /// RW or RO.
    pub role: CmRole,
    /// `STARTING`, `RUNNING`, `FAILED`, ...
    pub phase: String,
    /// `sync` as sent.
    pub sync: String,
    /// `use_node_driver` as sent.
    pub use_node_driver: String,
    /// `start_at`, `YYYY-MM-DD HH:MM:SS`.
    pub start_at: String,
    polls_left: u32,
}

#[derive(Default)]
struct State {
    ha: bool,
    leader: bool,
    instances: BTreeMap<String, CmIns>,
    running_after: u32,
    clock: u64,
    port: u16,
}

/// The CM emulator. Dropping it stops the server.
pub struct CmEmulator {
    server: Server,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ok() -> Answer {
    Answer::ok(r#"{"code":200}"#)
}

fn failed(msg: impl Into<String>) -> Answer {
    Answer::json(&json!({"code": 500, "msg": msg.into()}))
}

/// The body of `add_ins` / `remove_ins`: every field a string.
#[derive(Deserialize)]
struct InsSpecReq {
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    port: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sync: Option<String>,
    #[serde(default)]
    pod_name: Option<String>,
    #[serde(default)]
    use_node_driver: Option<String>,
    #[serde(default)]
    host_name: Option<String>,
}

#[derive(Deserialize)]
struct EnableReq {
    enable: i64,
}

#[derive(Deserialize)]
struct SwitchoverReq {
    from: String,
    to: String,
    #[serde(default)]
    force: i64,
}

fn decode<T: serde::de::DeserializeOwned>(req: &Recorded) -> Result<T, Answer> {
    serde_json::from_value(req.body.clone()).map_err(|e| failed(format!("json: {e}")))
}

/// Whether `ep` looks like `a.b.c.d:port`.
fn valid_endpoint(ep: &str) -> bool {
    match ep.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host.chars().all(|c| c.is_ascii_digit() || c == '.')
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// `2026-01-01 HH:MM:SS` for `seconds` into the day.
fn clock_text(seconds: u64) -> String {
    let s = seconds % 86_400;
    format!(
        "2026-01-01 {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

impl State {
    fn rw(&self) -> Option<&CmIns> {
        self.instances.values().find(|i| i.role == CmRole::Rw)
    }

    fn tick(&mut self) -> String {
        self.clock += 1;
        clock_text(self.clock)
    }

    fn enable(&mut self, req: &Recorded) -> Answer {
        let body: EnableReq = match decode(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        match body.enable {
            0 => self.ha = false,
            1 => self.ha = true,
            _ => return failed("Invalid enable"),
        }
        ok()
    }

    fn ins_endpoint(body: &InsSpecReq) -> Result<String, Answer> {
        let ep = format!(
            "{}:{}",
            body.ip.clone().unwrap_or_default(),
            body.port.clone().unwrap_or_default()
        );
        if valid_endpoint(&ep) {
            Ok(ep)
        } else {
            Err(failed(format!("Invalid ep {ep}")))
        }
    }

    fn add_ins(&mut self, req: &Recorded) -> Answer {
        let body: InsSpecReq = match decode(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        let role = match body.kind.as_deref() {
            Some("RW") => CmRole::Rw,
            Some("RO") => CmRole::Ro,
            other => return failed(format!("invalid engine type {}", other.unwrap_or(""))),
        };
        let endpoint = match Self::ins_endpoint(&body) {
            Ok(ep) => ep,
            Err(a) => return a,
        };
        match role {
            CmRole::Rw => {
                if let Some(rw) = self.rw() {
                    return failed(format!(
                        "Add rw ins only once, already exist cluster:{}",
                        rw.endpoint
                    ));
                }
            }
            CmRole::Ro => {
                if self.rw().is_none() {
                    return failed(format!(
                        "Failed to add ins {endpoint} as RoEngine cause rw not exist"
                    ));
                }
                if self.instances.contains_key(&endpoint) {
                    return ok();
                }
            }
        }
        let start_at = self.tick();
        self.instances.insert(
            endpoint.clone(),
            CmIns {
                endpoint,
                pod_name: body.pod_name.unwrap_or_default(),
                host_name: body.host_name.unwrap_or_default(),
                role,
                phase: "STARTING".to_owned(),
                sync: body.sync.unwrap_or_default(),
                use_node_driver: body.use_node_driver.unwrap_or_default(),
                start_at,
                polls_left: self.running_after,
            },
        );
        ok()
    }

    fn remove_ins(&mut self, req: &Recorded) -> Answer {
        let body: InsSpecReq = match decode(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        let endpoint = match Self::ins_endpoint(&body) {
            Ok(ep) => ep,
            Err(a) => return a,
        };
        if self.instances.remove(&endpoint).is_none() {
            return failed(format!(
                "Failed to remove ins {endpoint} cause ins {endpoint} phase not exist"
            ));
        }
        ok()
    }

    fn switchover(&mut self, req: &Recorded) -> Answer {
        let body: SwitchoverReq = match decode(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        if !valid_endpoint(&body.from) || !valid_endpoint(&body.to) {
            return failed(format!("Invalid ep {}", body.from));
        }
        let known = |ep: &str| self.instances.contains_key(ep);
        if !known(&body.from) || !known(&body.to) || body.from == body.to {
            return failed(format!(
                "Invalid endpoint from:{} to:{}",
                body.from, body.to
            ));
        }
        if self.rw().map(|r| r.endpoint.as_str()) == Some(body.to.as_str()) {
            return ok();
        }
        if self.rw().map(|r| r.endpoint.as_str()) != Some(body.from.as_str()) {
            return failed(format!(
                "from endpoint {} is not rw or standby-rw",
                body.from
            ));
        }
        let to_phase = self
            .instances
            .get(&body.to)
            .map(|i| i.phase.clone())
            .unwrap_or_default();
        if to_phase != "RUNNING" && body.force == 0 {
            return failed(format!("new rw {} is not in running phase", body.to));
        }
        let start_at = self.tick();
        for ins in self.instances.values_mut() {
            if ins.endpoint == body.from {
                ins.role = CmRole::Ro;
                ins.start_at = start_at.clone();
            } else if ins.endpoint == body.to {
                ins.role = CmRole::Rw;
                ins.phase = "RUNNING".to_owned();
                ins.start_at = start_at.clone();
            }
        }
        ok()
    }

    fn status(&mut self, req: &Recorded) -> Answer {
        if req.query.get("type").map(String::as_str) != Some("visual") {
            return Answer::ok("ClusterManager status (not the visual document)");
        }
        let now = self.tick();
        for ins in self.instances.values_mut() {
            if ins.phase == "STARTING" {
                if ins.polls_left == 0 {
                    ins.phase = "RUNNING".to_owned();
                    ins.start_at = now.clone();
                } else {
                    ins.polls_left -= 1;
                }
            }
        }
        let visual = |ins: &CmIns| {
            json!({
                "endpoint": ins.endpoint,
                "pod_name": ins.pod_name,
                "phase": ins.phase,
                "start_at": ins.start_at,
                "sync_status": ins.sync,
            })
        };
        let mut doc = serde_json::Map::new();
        doc.insert(
            "phase".to_owned(),
            json!(if self.ha {
                RUNNING_PHASE
            } else {
                DISABLE_ALL_PHASE
            }),
        );
        doc.insert(
            "cluster_manager".to_owned(),
            json!([{"endpoint": format!("127.0.0.1:{}", self.port), "phase": "RUNNING"}]),
        );
        if let Some(rw) = self.rw() {
            doc.insert("rw".to_owned(), visual(rw));
        }
        let ro: Vec<Value> = self
            .instances
            .values()
            .filter(|i| i.role == CmRole::Ro)
            .map(visual)
            .collect();
        if !ro.is_empty() {
            doc.insert("ro".to_owned(), Value::Array(ro));
        }
        Answer::json(&Value::Object(doc))
    }

    fn handle(&mut self, req: &Recorded) -> Answer {
        if !self.leader {
            return failed("Failed to request cause no CM leader!");
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/v1/enable") => self.enable(req),
            ("POST", "/v1/add_ins") => self.add_ins(req),
            ("POST", "/v1/remove_ins") => self.remove_ins(req),
            ("POST", "/v1/switchover") => self.switchover(req),
            (_, "/v1/status") => self.status(req),
            _ => Answer::status(hyper::StatusCode::NOT_FOUND, "404 page not found"),
        }
    }
}

impl CmEmulator {
    /// Starts a leader CM with HA on and no instance; instances run after one status poll.
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            ha: true,
            leader: true,
            running_after: 1,
            ..State::default()
        }));
        let handler_state = state.clone();
        let server = Server::start(
            Arc::new(move |req: &Recorded| lock(&handler_state).handle(req)),
            "Internal Server Error",
        )
        .await?;
        lock(&state).port = server.port();
        Ok(CmEmulator { server, state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The port it listens on (the value of the CM pod's `port` label in a test).
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Whether automatic failover is on.
    pub fn ha_enabled(&self) -> bool {
        lock(&self.state).ha
    }

    /// Every instance, in endpoint order.
    pub fn instances(&self) -> Vec<CmIns> {
        lock(&self.state).instances.values().cloned().collect()
    }

    /// The instance in `pod_name`.
    pub fn instance(&self, pod_name: &str) -> Option<CmIns> {
        lock(&self.state)
            .instances
            .values()
            .find(|i| i.pod_name == pod_name)
            .cloned()
    }

    /// Instances added from now on are `STARTING` for this many status polls.
    pub fn set_running_after(&self, polls: u32) {
        lock(&self.state).running_after = polls;
    }

    /// Whether this CM is (or follows) a leader; without one every request answers
    /// `Failed to request cause no CM leader!`.
    pub fn set_leader(&self, leader: bool) {
        lock(&self.state).leader = leader;
    }

    /// Sets the phase of the instance in `pod_name`; returns whether the CM knows it.
    pub fn set_phase(&self, pod_name: &str, phase: &str) -> bool {
        let mut state = lock(&self.state);
        let now = state.tick();
        let mut found = false;
        for ins in state
            .instances
            .values_mut()
            .filter(|i| i.pod_name == pod_name)
        {
            ins.phase = phase.to_owned();
            ins.start_at = now.clone();
            found = true;
        }
        found
    }

    /// The CM reports the instance in `pod_name` `FAILED`.
    pub fn fail_instance(&self, pod_name: &str) -> bool {
        self.set_phase(pod_name, "FAILED")
    }

    /// An automatic failover: the instance in `pod_name` becomes the RW (and `RUNNING`),
    /// the RW an RO. Returns whether the CM knows the instance.
    pub fn promote(&self, pod_name: &str) -> bool {
        let mut state = lock(&self.state);
        if !state.instances.values().any(|i| i.pod_name == pod_name) {
            return false;
        }
        let now = state.tick();
        for ins in state.instances.values_mut() {
            if ins.pod_name == pod_name {
                ins.role = CmRole::Rw;
                ins.phase = "RUNNING".to_owned();
                ins.start_at = now.clone();
            } else if ins.role == CmRole::Rw {
                ins.role = CmRole::Ro;
            }
        }
        true
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// The requests to `path` received so far.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }

    /// Injects `fault` for the requests of `scope`.
    pub fn inject(&self, fault: Fault, scope: Scope) {
        self.server.inject(fault, scope);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.server.clear_faults();
    }
}
