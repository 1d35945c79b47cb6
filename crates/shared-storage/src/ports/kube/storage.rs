//! D. [`KubeStorageManager`]: the storage-management service (SMS) over HTTP.
//!
//! Address: [`KubePortsConfig::sms_base_url`], or `http://<clusterIP>:<first port>` of
//! Service `<system namespace>/polardb-sms-manager`, looked up on first use and again after a
//! call found nobody there.
//!
//! Every operation starts an SMS job at most once and then polls it, **once per call**:
//!
//! | operation        | starts                                   | done when                              |
//! |------------------|------------------------------------------|----------------------------------------|
//! | `use_storage`    | `POST /pvcs/use` (`need_format` only if the volume was not yet formatted for this owner) | `GET /pvcs/ready` says `is_ready` |
//! | `set_write_lock` | `POST /pvcs/lock` (`write_lock_node_id` = node name) | `GET /pvcs/topo` shows the node as `write_node` |
//! | `release`        | `GET /pvcs/<pvc>` first: `can not find …` or another owner is done; else `POST /pvcs/release` | `GET /pvcs/ready` says `is_ready` |
//!
//! While a poll answers JSON `null` (the workflow runs), the call is `Progress::Pending`. A
//! failed workflow (HTTP 500 `workflow exec err …`) is `Rejected` with the server's text.
//! The workflow id of each job is written to the PVC's record ([`sms_jobs`](super::sms_jobs)
//! documents it) before the call returns, so an operator restarted mid-job polls the same
//! job. Should the SMS no longer know a recorded workflow (`can not find workflow`), the
//! record is dropped and the next call starts the job again.
//!
//! The SMS answers `{"workflow_id":"Dummy-000"}` when there is nothing to do (no format, the
//! lock already on that node); that job is polled in the same call.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde::{Deserialize, Serialize};

use super::api_error::port_error;
use super::http::{Call, HttpClient, Reply};
use super::sms_jobs::{SmsJob, SmsOp, SmsRecord, SmsRecords, Stored};
use super::KubePortsConfig;
use crate::ports::{PortError, Progress, PvcRef, StorageManager, StorageRequest};

/// The port name in errors.
const PORT: &str = "storage";
/// The SMS service.
const SMS_SERVICE: &str = "polardb-sms-manager";
/// The workflow id of a job with nothing to do.
const DUMMY_WORKFLOW: &str = "Dummy-000";
/// The SMS's texts for something that does not exist (HTTP 500, a definite answer).
const CAN_NOT_FIND: &str = "can not find";
/// The texts that make an SMS 500 final rather than transient.
const FINAL_TEXTS: &[&str] = &[
    CAN_NOT_FIND,
    "workflow exec err",
    "can not bind",
    "locked by",
];

/// `POST /pvcs/use`.
#[derive(Serialize)]
struct UseBody<'a> {
    name: &'a str,
    namespace: &'a str,
    resource_id: &'a str,
    volume_id: &'a str,
    volume_type: &'a str,
    need_format: bool,
}

/// `POST /pvcs/lock`.
#[derive(Serialize)]
struct LockBody<'a> {
    name: &'a str,
    namespace: &'a str,
    write_lock_node_id: &'a str,
}

/// `POST /pvcs/release`.
#[derive(Serialize)]
struct PvcBody<'a> {
    name: &'a str,
    namespace: &'a str,
}

/// The reply of the three POSTs.
#[derive(Deserialize)]
struct WorkflowReply {
    #[serde(default)]
    workflow_id: Option<String>,
}

/// `GET /pvcs/ready` once the workflow finished.
#[derive(Deserialize)]
struct ReadyReply {
    is_ready: bool,
}

/// `GET /pvcs/topo` once the workflow finished.
#[derive(Deserialize)]
struct TopoReply {
    #[serde(default)]
    write_node: Option<TopoNode>,
    #[serde(default)]
    read_nodes: Vec<TopoNode>,
}

/// A node of the topology.
#[derive(Deserialize)]
struct TopoNode {
    #[serde(default)]
    node_id: String,
}

/// `GET /pvcs/<pvc>`: only the owner is read.
#[derive(Deserialize)]
struct PvcView {
    #[serde(default)]
    db_cluster_name: String,
}

/// What a poll of a job said.
enum Poll<T> {
    /// `null`: the workflow runs.
    Running,
    /// The SMS does not know the workflow.
    Unknown,
    /// Finished with this reply.
    Finished(T),
}

/// A refusal: `can not find pvc …` is `NotFound`, anything else `Rejected`.
fn refusal(reply: &Reply, call: &Call, pvc: &PvcRef) -> PortError {
    if reply.contains("can not find pvc") {
        PortError::NotFound {
            port: PORT,
            what: format!(
                "pvc {} in the storage manager ({}: {})",
                pvc_name(pvc),
                call.describe(),
                reply.message()
            ),
        }
    } else {
        reply.refused(PORT, call)
    }
}

/// What the reply of a poll of a job says: a failure naming an unknown workflow is
/// `Unknown`, another failure an error, JSON `null` `Running`, else the finished reply.
fn poll_outcome<T: serde::de::DeserializeOwned>(
    reply: &Reply,
    call: &Call,
    pvc: &PvcRef,
) -> Result<Poll<T>, PortError> {
    if !reply.is_success() {
        if reply.contains("can not find workflow") {
            return Ok(Poll::Unknown);
        }
        return Err(refusal(reply, call, pvc));
    }
    let value: Option<T> = reply.json(PORT, call)?;
    Ok(value.map_or(Poll::Running, Poll::Finished))
}

/// The owner in the reply of `GET /pvcs/<pvc>`; `None` when the SMS does not know the PVC.
fn owner_outcome(reply: &Reply, call: &Call) -> Result<Option<String>, PortError> {
    if !reply.is_success() {
        if reply.contains(CAN_NOT_FIND) {
            return Ok(None);
        }
        return Err(reply.refused(PORT, call));
    }
    let view: PvcView = reply.json(PORT, call)?;
    Ok(Some(view.db_cluster_name))
}

/// What a poll of an SMS job answered, as [`decode_sms_ready`] and [`decode_sms_topo`]
/// decode it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsPoll {
    /// JSON `null`: the workflow runs.
    Running,
    /// The SMS does not know the workflow.
    Unknown,
    /// `GET /pvcs/ready` of a finished workflow: whether the volume is ready.
    Ready(bool),
    /// `GET /pvcs/topo` of a finished workflow: the write node and the read nodes.
    Topology {
        /// The write node's id, empty when there is none.
        write_node: String,
        /// The read nodes' ids.
        read_nodes: Vec<String>,
    },
}

/// The PVC the decoders name in their errors.
fn decoded_pvc() -> PvcRef {
    PvcRef {
        namespace: "default".to_owned(),
        name: "pvc".to_owned(),
    }
}

/// Decodes the reply of a job's start (`POST /pvcs/use`, `/pvcs/lock`, `/pvcs/release`):
/// `Some(workflow id)`, `None` when the PVC is busy (`locked by …`), else the error the port
/// returns.
pub fn decode_sms_started(status: u16, body: &str) -> Result<Option<String>, PortError> {
    let call = Call::get("http://sms", "/pvcs/use");
    let reply = Reply::of(PORT, status, body)?;
    if !reply.is_success() {
        if reply.contains("locked by") {
            return Ok(None);
        }
        return Err(refusal(&reply, &call, &decoded_pvc()));
    }
    KubeStorageManager::workflow_id(&reply, &call).map(Some)
}

/// Decodes the reply of a poll of `GET /pvcs/ready`.
pub fn decode_sms_ready(status: u16, body: &str) -> Result<SmsPoll, PortError> {
    let call = Call::get("http://sms", "/pvcs/ready");
    let reply = Reply::of(PORT, status, body)?;
    Ok(
        match poll_outcome::<ReadyReply>(&reply, &call, &decoded_pvc())? {
            Poll::Running => SmsPoll::Running,
            Poll::Unknown => SmsPoll::Unknown,
            Poll::Finished(ready) => SmsPoll::Ready(ready.is_ready),
        },
    )
}

/// Decodes the reply of a poll of `GET /pvcs/topo`.
pub fn decode_sms_topo(status: u16, body: &str) -> Result<SmsPoll, PortError> {
    let call = Call::get("http://sms", "/pvcs/topo");
    let reply = Reply::of(PORT, status, body)?;
    Ok(
        match poll_outcome::<TopoReply>(&reply, &call, &decoded_pvc())? {
            Poll::Running => SmsPoll::Running,
            Poll::Unknown => SmsPoll::Unknown,
            Poll::Finished(topo) => SmsPoll::Topology {
                write_node: topo.write_node.map(|n| n.node_id).unwrap_or_default(),
                read_nodes: topo.read_nodes.into_iter().map(|n| n.node_id).collect(),
            },
        },
    )
}

/// Decodes the reply of `GET /pvcs/<pvc>`: the owner the SMS records, `None` when it does
/// not know the PVC.
pub fn decode_sms_owner(status: u16, body: &str) -> Result<Option<String>, PortError> {
    let call = Call::get("http://sms", "/pvcs/pvc");
    owner_outcome(&Reply::of(PORT, status, body)?, &call)
}

/// The production [`StorageManager`]: the SMS over HTTP, job records in ConfigMaps.
pub struct KubeStorageManager {
    client: kube::Client,
    config: Arc<KubePortsConfig>,
    http: HttpClient,
    records: SmsRecords,
    base_url: Mutex<Option<String>>,
}

impl std::fmt::Debug for KubeStorageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeStorageManager").finish_non_exhaustive()
    }
}

fn pvc_name(pvc: &PvcRef) -> String {
    format!("{}/{}", pvc.namespace, pvc.name)
}

impl KubeStorageManager {
    /// The adapter on `client` (Service lookup, job records) with the HTTP settings and the
    /// optional fixed SMS address of `config`.
    ///
    /// # Errors
    /// `Rejected` when the HTTP client cannot be built.
    pub fn new(client: kube::Client, config: Arc<KubePortsConfig>) -> Result<Self, PortError> {
        let http = HttpClient::new(PORT, &config)?;
        Ok(KubeStorageManager {
            records: SmsRecords::new(client.clone(), PORT),
            client,
            base_url: Mutex::new(config.sms_base_url.clone()),
            config,
            http,
        })
    }

    /// The SMS base URL: the configured one, or the Service's cluster IP and first port.
    ///
    /// # Errors
    /// `NotFound` when the Service is missing; `Rejected` when it has no cluster IP or no
    /// port; `Unavailable` when the API server cannot be reached.
    pub async fn base_url(&self) -> Result<String, PortError> {
        if let Some(url) = self.cached_url() {
            return Ok(url);
        }
        let ns = &self.config.system_namespace;
        let what = format!("service {ns}/{SMS_SERVICE}");
        let service = Api::<Service>::namespaced(self.client.clone(), ns)
            .get(SMS_SERVICE)
            .await
            .map_err(|e| port_error(PORT, &what, e))?;
        let spec = service.spec.unwrap_or_default();
        let ip = spec
            .cluster_ip
            .filter(|ip| !ip.is_empty() && ip != "None")
            .ok_or_else(|| PortError::Rejected {
                port: PORT,
                message: format!("{what} has no cluster IP"),
            })?;
        let port = spec
            .ports
            .unwrap_or_default()
            .first()
            .map(|p| p.port)
            .ok_or_else(|| PortError::Rejected {
                port: PORT,
                message: format!("{what} has no port"),
            })?;
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        let url = format!("http://{host}:{port}");
        *self.base_url.lock().unwrap_or_else(PoisonError::into_inner) = Some(url.clone());
        Ok(url)
    }

    fn cached_url(&self) -> Option<String> {
        self.base_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `call`; a transient failure forgets a looked-up address so the next call reads
    /// the Service again.
    async fn send(&self, call: &Call) -> Result<Reply, PortError> {
        match self.http.send(call).await {
            Ok(reply) => Ok(reply),
            Err(failure) => {
                let err = failure.into_port_error(PORT);
                if matches!(err, PortError::Unavailable { .. })
                    && self.config.sms_base_url.is_none()
                {
                    *self.base_url.lock().unwrap_or_else(PoisonError::into_inner) = None;
                }
                Err(err)
            }
        }
    }

    /// POSTs `body` to `path`.
    async fn post(
        &self,
        base: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(Call, Reply), PortError> {
        let call = Call::post(base, path, body)
            .map_err(|f| f.into_port_error(PORT))?
            .final_texts(FINAL_TEXTS);
        let reply = self.send(&call).await?;
        Ok((call, reply))
    }

    /// The workflow id of a successful POST.
    fn workflow_id(reply: &Reply, call: &Call) -> Result<String, PortError> {
        let started: WorkflowReply = reply.json(PORT, call)?;
        started
            .workflow_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| PortError::Rejected {
                port: PORT,
                message: format!("{}: the reply has no workflow_id", call.describe()),
            })
    }

    /// Drops the job of `stored`, if any: the operation is done.
    async fn done(&self, pvc: &PvcRef, stored: &Stored) -> Result<Progress, PortError> {
        if stored.record.job.is_some() {
            let mut record = stored.record.clone();
            record.job = None;
            self.save(pvc, stored, record).await?;
        }
        Ok(Progress::Done(()))
    }

    /// Polls `GET <path>?name&namespace&workflowId` once.
    async fn poll<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        pvc: &PvcRef,
        workflow_id: &str,
    ) -> Result<Poll<T>, PortError> {
        let call = Call::get(base, path)
            .query("name", &pvc.name)
            .query("namespace", &pvc.namespace)
            .query("workflowId", workflow_id)
            .final_texts(FINAL_TEXTS);
        let reply = self.send(&call).await?;
        poll_outcome(&reply, &call, pvc)
    }

    /// Writes `record` (the job started or finished).
    async fn save(
        &self,
        pvc: &PvcRef,
        stored: &Stored,
        record: SmsRecord,
    ) -> Result<Stored, PortError> {
        self.records.save(pvc, stored, record).await
    }

    /// Polls the use/release job `job` through `ready`; on success clears it (recording
    /// the format of a use).
    async fn poll_ready(
        &self,
        base: &str,
        pvc: &PvcRef,
        stored: &Stored,
        job: &SmsJob,
    ) -> Result<Progress, PortError> {
        let what = match job.op {
            SmsOp::Use if job.format => "format and use",
            SmsOp::Use => "use",
            SmsOp::Lock => "write lock",
            SmsOp::Release => "release",
        };
        match self
            .poll::<ReadyReply>(base, "/pvcs/ready", pvc, &job.workflow_id)
            .await?
        {
            Poll::Running => Ok(Progress::pending(format!(
                "storage manager: {what} of {} for {} running (workflow {})",
                pvc_name(pvc),
                job.owner,
                job.workflow_id
            ))),
            Poll::Unknown => self.forget(pvc, stored, job).await,
            Poll::Finished(ReadyReply { is_ready: false }) => Ok(Progress::pending(format!(
                "storage manager: {what} of {} finished, volume not ready yet",
                pvc_name(pvc)
            ))),
            Poll::Finished(ReadyReply { is_ready: true }) => {
                let mut record = stored.record.clone();
                record.job = None;
                if job.op == SmsOp::Use && job.format {
                    record.formatted_for = Some(job.owner.clone());
                    record.formatted_volume = Some(job.volume_id.clone());
                }
                self.save(pvc, stored, record).await?;
                tracing::info!(pvc = %pvc_name(pvc), owner = %job.owner, workflow = %job.workflow_id, "storage manager: {what} done");
                Ok(Progress::Done(()))
            }
        }
    }

    /// The SMS forgot the recorded workflow: drops it so the next call starts again.
    async fn forget(
        &self,
        pvc: &PvcRef,
        stored: &Stored,
        job: &SmsJob,
    ) -> Result<Progress, PortError> {
        tracing::warn!(pvc = %pvc_name(pvc), workflow = %job.workflow_id, "storage manager no longer knows the workflow; it will be started again");
        let mut record = stored.record.clone();
        record.job = None;
        self.save(pvc, stored, record).await?;
        Ok(Progress::pending(format!(
            "storage manager forgot workflow {} of {}; starting again",
            job.workflow_id,
            pvc_name(pvc)
        )))
    }

    /// Records `job` as started; a job with nothing to do is polled at once.
    async fn started(
        &self,
        base: &str,
        pvc: &PvcRef,
        stored: &Stored,
        job: SmsJob,
    ) -> Result<Progress, PortError> {
        let mut record = stored.record.clone();
        record.job = Some(job.clone());
        let stored = self.save(pvc, stored, record).await?;
        tracing::info!(pvc = %pvc_name(pvc), op = ?job.op, owner = %job.owner, workflow = %job.workflow_id, "storage manager job started");
        if job.workflow_id == DUMMY_WORKFLOW {
            return match job.op {
                SmsOp::Lock => self.poll_lock(base, pvc, &stored, &job).await,
                SmsOp::Use | SmsOp::Release => self.poll_ready(base, pvc, &stored, &job).await,
            };
        }
        Ok(Progress::pending(format!(
            "storage manager: {:?} of {} started (workflow {})",
            job.op,
            pvc_name(pvc),
            job.workflow_id
        )))
    }

    /// Polls the lock job through `topo`.
    async fn poll_lock(
        &self,
        base: &str,
        pvc: &PvcRef,
        stored: &Stored,
        job: &SmsJob,
    ) -> Result<Progress, PortError> {
        match self
            .poll::<TopoReply>(base, "/pvcs/topo", pvc, &job.workflow_id)
            .await?
        {
            Poll::Running => Ok(Progress::pending(format!(
                "storage manager: write lock of {} to {} running (workflow {})",
                pvc_name(pvc),
                job.node,
                job.workflow_id
            ))),
            Poll::Unknown => self.forget(pvc, stored, job).await,
            Poll::Finished(topo) => {
                let mut record = stored.record.clone();
                record.job = None;
                self.save(pvc, stored, record).await?;
                let writer = topo.write_node.map(|n| n.node_id).unwrap_or_default();
                if writer == job.node {
                    return Ok(Progress::Done(()));
                }
                let readers: Vec<String> = topo.read_nodes.into_iter().map(|n| n.node_id).collect();
                Err(PortError::Rejected {
                    port: PORT,
                    message: format!(
                        "write lock of {} to {}: workflow {} finished with write node {:?} and read nodes {:?}",
                        pvc_name(pvc),
                        job.node,
                        job.workflow_id,
                        writer,
                        readers
                    ),
                })
            }
        }
    }

    /// Before another operation replaces a recorded `use` job, polls it once, so that a
    /// format that finished is recorded and never run again. Returns the record and whether
    /// the job still runs. A failed or forgotten job is dropped.
    async fn settle_use(
        &self,
        base: &str,
        pvc: &PvcRef,
        stored: Stored,
    ) -> Result<(Stored, bool), PortError> {
        let Some(job) = stored.record.job.clone().filter(|j| j.op == SmsOp::Use) else {
            return Ok((stored, false));
        };
        let mut record = stored.record.clone();
        record.job = None;
        match self
            .poll::<ReadyReply>(base, "/pvcs/ready", pvc, &job.workflow_id)
            .await
        {
            Ok(Poll::Running) | Ok(Poll::Finished(ReadyReply { is_ready: false })) => {
                Ok((stored, true))
            }
            Ok(Poll::Finished(ReadyReply { is_ready: true })) => {
                if job.format {
                    record.formatted_for = Some(job.owner.clone());
                    record.formatted_volume = Some(job.volume_id.clone());
                }
                Ok((self.save(pvc, &stored, record).await?, false))
            }
            Ok(Poll::Unknown) | Err(PortError::Rejected { .. }) => {
                Ok((self.save(pvc, &stored, record).await?, false))
            }
            Err(err) => Err(err),
        }
    }

    /// The owner the SMS records for `pvc`; `None` when it does not know the PVC.
    async fn owner(&self, base: &str, pvc: &PvcRef) -> Result<Option<String>, PortError> {
        let call = Call::get(base, format!("/pvcs/{}", pvc.name))
            .query("name", &pvc.name)
            .query("namespace", &pvc.namespace)
            .final_texts(FINAL_TEXTS);
        let reply = self.send(&call).await?;
        owner_outcome(&reply, &call)
    }
}

#[async_trait]
impl StorageManager for KubeStorageManager {
    async fn use_storage(&self, request: &StorageRequest) -> Result<Progress, PortError> {
        let pvc = &request.pvc;
        let stored = self.records.load(pvc).await?;
        let base = self.base_url().await?;
        if let Some(job) = stored.record.job.as_ref().filter(|j| {
            j.op == SmsOp::Use && j.owner == request.owner && j.volume_id == request.volume_id
        }) {
            let job = job.clone();
            return self.poll_ready(&base, pvc, &stored, &job).await;
        }
        let format = request.format && !stored.record.formatted(&request.owner, &request.volume_id);
        let body = UseBody {
            name: &pvc.name,
            namespace: &pvc.namespace,
            resource_id: &request.owner,
            volume_id: &request.volume_id,
            volume_type: &request.volume_type,
            need_format: format,
        };
        let (call, reply) = self.post(&base, "/pvcs/use", &body).await?;
        if !reply.is_success() {
            if reply.contains("locked by") {
                return Ok(Progress::pending(format!(
                    "storage manager: {} busy ({})",
                    pvc_name(pvc),
                    reply.message()
                )));
            }
            return Err(refusal(&reply, &call, pvc));
        }
        let workflow_id = Self::workflow_id(&reply, &call)?;
        let job = SmsJob {
            op: SmsOp::Use,
            owner: request.owner.clone(),
            node: String::new(),
            format,
            volume_id: request.volume_id.clone(),
            workflow_id,
        };
        self.started(&base, pvc, &stored, job).await
    }

    async fn set_write_lock(&self, pvc: &PvcRef, node: &str) -> Result<Progress, PortError> {
        let stored = self.records.load(pvc).await?;
        let base = self.base_url().await?;
        let (stored, use_running) = self.settle_use(&base, pvc, stored).await?;
        if use_running {
            return Ok(Progress::pending(format!(
                "storage manager: use of {} still running",
                pvc_name(pvc)
            )));
        }
        if let Some(job) = stored
            .record
            .job
            .as_ref()
            .filter(|j| j.op == SmsOp::Lock && j.node == node)
        {
            let job = job.clone();
            return self.poll_lock(&base, pvc, &stored, &job).await;
        }
        let body = LockBody {
            name: &pvc.name,
            namespace: &pvc.namespace,
            write_lock_node_id: node,
        };
        let (call, reply) = self.post(&base, "/pvcs/lock", &body).await?;
        if !reply.is_success() {
            if reply.contains("locked by") {
                return Ok(Progress::pending(format!(
                    "storage manager: {} busy ({})",
                    pvc_name(pvc),
                    reply.message()
                )));
            }
            return Err(refusal(&reply, &call, pvc));
        }
        let workflow_id = Self::workflow_id(&reply, &call)?;
        let job = SmsJob {
            op: SmsOp::Lock,
            owner: String::new(),
            node: node.to_owned(),
            format: false,
            volume_id: String::new(),
            workflow_id,
        };
        self.started(&base, pvc, &stored, job).await
    }

    async fn release(&self, pvc: &PvcRef, owner: &str) -> Result<Progress, PortError> {
        let stored = self.records.load(pvc).await?;
        let base = self.base_url().await?;
        let (stored, _) = self.settle_use(&base, pvc, stored).await?;
        match self.owner(&base, pvc).await? {
            None => {
                tracing::info!(pvc = %pvc_name(pvc), "storage manager does not know the pvc; nothing to release");
                return self.done(pvc, &stored).await;
            }
            Some(current) if current != owner => {
                if current.is_empty() {
                    tracing::info!(pvc = %pvc_name(pvc), "volume already free");
                } else {
                    tracing::info!(pvc = %pvc_name(pvc), owner, used_by = %current, "volume used by other cluster {current}; not releasing it");
                }
                return self.done(pvc, &stored).await;
            }
            Some(_) => {}
        }
        if let Some(job) = stored
            .record
            .job
            .as_ref()
            .filter(|j| j.op == SmsOp::Release && j.owner == owner)
        {
            let job = job.clone();
            return self.poll_ready(&base, pvc, &stored, &job).await;
        }
        let body = PvcBody {
            name: &pvc.name,
            namespace: &pvc.namespace,
        };
        let (call, reply) = self.post(&base, "/pvcs/release", &body).await?;
        if !reply.is_success() {
            if reply.contains(CAN_NOT_FIND) {
                tracing::info!(pvc = %pvc_name(pvc), "storage manager: {}", reply.message());
                return self.done(pvc, &stored).await;
            }
            return Err(reply.refused(PORT, &call));
        }
        let workflow_id = Self::workflow_id(&reply, &call)?;
        let job = SmsJob {
            op: SmsOp::Release,
            owner: owner.to_owned(),
            node: String::new(),
            format: false,
            volume_id: String::new(),
            workflow_id,
        };
        self.started(&base, pvc, &stored, job).await
    }
}
