//! An emulator of the storage-management service (SMS) on `127.0.0.1`, speaking the
//! documented paths, bodies and error texts, written from the wire description (not from
//! the operator's client, so the two check each other).
//!
//! | request | answer |
//! |---------|--------|
//! | `POST /pvcs/use {name,namespace,resource_id,volume_id,volume_type,need_format}` | `{"workflow_id"}`: a format job, or `Dummy-000` without `need_format`; the owner is set at once |
//! | `POST /pvcs/lock {name,namespace,write_lock_node_id}` | `{"workflow_id"}`: a lock job, `Dummy-000` when the node already holds it |
//! | `POST /pvcs/release {name,namespace}` | `{"workflow_id"}`: a release job |
//! | `GET /pvcs/ready?name&namespace&workflowId` | `null` while the job runs, then `{"is_ready":true}` |
//! | `GET /pvcs/topo?name&namespace&workflowId` | `null` while the job runs, then `{"write_node":{..},"read_nodes":[..]}` |
//! | `GET /pvcs/<pvc>?name&namespace` | the PVC view, with `db_cluster_name` |
//!
//! A job finishes on the poll that follows [`SmsEmulator::set_ready_after`] polls answered
//! `null` (default 1); only then does it take effect (format counted, write node set, owner
//! cleared). Errors are HTTP 500 `{"error":"<text>"}` with the server's texts:
//! `can not find pvc …`, `can not find workflow …`, `workflow exec err …`,
//! `can not bind pvc, pvc <p> exists used for other resourceId <owner>`,
//! `pvc <p> is locked by wfl <id>`, `can not find NodeId <n> in clusterConf`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use test_cluster::sms::SmsEmulator;
//! let sms = SmsEmulator::start().await?;
//! sms.add_pvc("ns1", "pvc-1");
//! sms.add_node("node-1", "10.0.0.1");
//! assert!(sms.base_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(sms.pvc("ns1", "pvc-1").unwrap().owner, "");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::emulator::{Answer, Server};
pub use crate::emulator::{Fault, Recorded, Scope};

/// The workflow id of a job with nothing to do.
pub const DUMMY_WORKFLOW: &str = "Dummy-000";

/// A PVC as the SMS knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmsPvc {
    /// `db_cluster_name`: the cluster using it, empty when free.
    pub owner: String,
    /// The volume id of the last `use`.
    pub volume_id: String,
    /// The volume type of the last `use`.
    pub volume_type: String,
    /// How many format jobs finished.
    pub format_count: u32,
    /// The node holding the write lock.
    pub write_node: Option<String>,
    /// The job that locks the PVC (format, lock).
    pub locked_by: Option<String>,
}

/// What a job does when it finishes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JobKind {
    Format,
    Lock(String),
    Release,
}

#[derive(Clone, Debug)]
struct Job {
    pvc: (String, String),
    kind: JobKind,
    polls_left: u32,
    failure: Option<String>,
    finished: bool,
}

#[derive(Default)]
struct State {
    pvcs: BTreeMap<(String, String), SmsPvc>,
    nodes: BTreeMap<String, String>,
    jobs: BTreeMap<String, Job>,
    next_job: u64,
    ready_after: u32,
    fail_next_job: Option<String>,
}

/// The SMS emulator. Dropping it stops the server.
pub struct SmsEmulator {
    server: Server,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn error(text: impl Into<String>) -> Answer {
    Answer::status(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": text.into()}).to_string(),
    )
}

fn bad_request(text: impl Into<String>) -> Answer {
    Answer::status(
        StatusCode::BAD_REQUEST,
        json!({"error": text.into()}).to_string(),
    )
}

#[derive(Deserialize)]
struct UseBody {
    name: String,
    namespace: String,
    resource_id: String,
    volume_id: String,
    volume_type: String,
    need_format: bool,
}

#[derive(Deserialize)]
struct LockBody {
    name: String,
    namespace: String,
    write_lock_node_id: String,
}

#[derive(Deserialize)]
struct PvcBody {
    name: String,
    namespace: String,
}

fn parse<T: serde::de::DeserializeOwned>(req: &Recorded) -> Result<T, Answer> {
    serde_json::from_value(req.body.clone()).map_err(|e| bad_request(e.to_string()))
}

impl State {
    fn new_job(&mut self, pvc: (String, String), kind: JobKind) -> String {
        self.next_job += 1;
        let id = format!("wfl-{}", self.next_job);
        let failure = self.fail_next_job.take();
        self.jobs.insert(
            id.clone(),
            Job {
                pvc,
                kind,
                polls_left: self.ready_after,
                failure,
                finished: false,
            },
        );
        id
    }

    fn use_pvc(&mut self, req: &Recorded) -> Answer {
        let body: UseBody = match parse(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        let key = (body.namespace.clone(), body.name.clone());
        let Some(pvc) = self.pvcs.get_mut(&key) else {
            return error(format!("can not find pvc {}", body.name));
        };
        if !pvc.owner.is_empty() && pvc.owner != body.resource_id {
            return error(format!(
                "can not bind pvc, pvc {} exists used for other resourceId {}",
                body.name, pvc.owner
            ));
        }
        pvc.owner = body.resource_id;
        pvc.volume_id = body.volume_id;
        pvc.volume_type = body.volume_type;
        if !body.need_format {
            return Answer::json(&json!({"workflow_id": DUMMY_WORKFLOW}));
        }
        if let Some(id) = pvc.locked_by.clone() {
            let running_format = self
                .jobs
                .get(&id)
                .is_some_and(|j| j.kind == JobKind::Format && !j.finished);
            if running_format {
                return Answer::json(&json!({"workflow_id": id}));
            }
            return error(format!(
                "can not lock the pvc {}, now locked by {id}",
                body.name
            ));
        }
        let id = self.new_job(key.clone(), JobKind::Format);
        if let Some(pvc) = self.pvcs.get_mut(&key) {
            pvc.locked_by = Some(id.clone());
        }
        Answer::json(&json!({"workflow_id": id}))
    }

    fn lock_pvc(&mut self, req: &Recorded) -> Answer {
        let body: LockBody = match parse(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        let key = (body.namespace.clone(), body.name.clone());
        if !self.nodes.contains_key(&body.write_lock_node_id) {
            return error(format!(
                "can not find NodeId {} in clusterConf",
                body.write_lock_node_id
            ));
        }
        let Some(pvc) = self.pvcs.get(&key) else {
            return error(format!("can not find pvc {}", body.name));
        };
        if let Some(id) = &pvc.locked_by {
            return error(format!("pvc {} is locked by wfl {id}", body.name));
        }
        if pvc.write_node.as_deref() == Some(body.write_lock_node_id.as_str()) {
            return Answer::json(&json!({"workflow_id": DUMMY_WORKFLOW}));
        }
        let id = self.new_job(key.clone(), JobKind::Lock(body.write_lock_node_id));
        if let Some(pvc) = self.pvcs.get_mut(&key) {
            pvc.locked_by = Some(id.clone());
        }
        Answer::json(&json!({"workflow_id": id}))
    }

    fn release_pvc(&mut self, req: &Recorded) -> Answer {
        let body: PvcBody = match parse(req) {
            Ok(b) => b,
            Err(a) => return a,
        };
        let key = (body.namespace.clone(), body.name.clone());
        if !self.pvcs.contains_key(&key) {
            return error(format!(
                "can not find pvc name [{}] namespace [{}]",
                body.name, body.namespace
            ));
        }
        let id = self.new_job(key, JobKind::Release);
        Answer::json(&json!({"workflow_id": id}))
    }

    /// The workflow check of `ready` and `topo`: `Some(answer)` ends the request.
    fn poll_job(&mut self, id: &str) -> Option<Answer> {
        if id == DUMMY_WORKFLOW {
            return None;
        }
        let Some(job) = self.jobs.get_mut(id) else {
            return Some(error(format!("can not find workflow {id}")));
        };
        if !job.finished {
            if job.polls_left > 0 {
                job.polls_left -= 1;
                return Some(Answer::ok("null"));
            }
            job.finished = true;
            let job = job.clone();
            if let Some(pvc) = self.pvcs.get_mut(&job.pvc) {
                if pvc.locked_by.as_deref() == Some(id) {
                    pvc.locked_by = None;
                }
                if job.failure.is_none() {
                    match &job.kind {
                        JobKind::Format => pvc.format_count += 1,
                        JobKind::Lock(node) => pvc.write_node = Some(node.clone()),
                        JobKind::Release => {
                            pvc.owner.clear();
                            pvc.write_node = None;
                        }
                    }
                }
            }
        }
        let failure = self.jobs.get(id).and_then(|j| j.failure.clone());
        failure.map(|f| error(format!("workflow exec err {f} ")))
    }

    fn query<'a>(req: &'a Recorded, key: &str) -> Result<&'a str, Answer> {
        req.query
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| error(format!("request param not exist {key}")))
    }

    fn ready_or_topo(&mut self, req: &Recorded, topo: bool) -> Answer {
        let (name, namespace, id) = match (
            Self::query(req, "name"),
            Self::query(req, "namespace"),
            Self::query(req, "workflowId"),
        ) {
            (Ok(n), Ok(ns), Ok(id)) => (n.to_owned(), ns.to_owned(), id.to_owned()),
            (Err(a), _, _) | (_, Err(a), _) | (_, _, Err(a)) => return a,
        };
        if let Some(answer) = self.poll_job(&id) {
            return answer;
        }
        let Some(pvc) = self.pvcs.get(&(namespace.clone(), name.clone())) else {
            return error(format!(
                "can not find pvc name [{name}] namespace [{namespace}]"
            ));
        };
        if !topo {
            return Answer::json(&json!({"is_ready": true}));
        }
        let node = |id: &str| json!({"node_id": id, "node_ip": self.nodes.get(id).cloned().unwrap_or_default()});
        let writer = pvc.write_node.clone().unwrap_or_default();
        let readers: Vec<Value> = self
            .nodes
            .keys()
            .filter(|n| **n != writer)
            .map(|n| node(n))
            .collect();
        Answer::json(&json!({"write_node": node(&writer), "read_nodes": readers}))
    }

    fn view(&self, req: &Recorded, name: &str) -> Answer {
        let namespace = match Self::query(req, "namespace") {
            Ok(ns) => ns,
            Err(a) => return a,
        };
        let Some(pvc) = self.pvcs.get(&(namespace.to_owned(), name.to_owned())) else {
            return error(format!(
                "can not find pvc name [{name}] namespace [{namespace}]"
            ));
        };
        Answer::json(&json!({
            "name": name,
            "namespace": namespace,
            "volume_type": pvc.volume_type,
            "volume_id": pvc.volume_id,
            "volume_name": pvc.volume_id,
            "size_in_byte": 0,
            "fs_type": "pfs",
            "usable": pvc.owner.is_empty(),
            "db_cluster_name": pvc.owner,
            "status": {"status": "Success"},
            "create_time": "",
        }))
    }

    fn handle(&mut self, req: &Recorded) -> Answer {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/pvcs/use") => self.use_pvc(req),
            ("POST", "/pvcs/lock") => self.lock_pvc(req),
            ("POST", "/pvcs/release") => self.release_pvc(req),
            ("GET", "/pvcs/ready") => self.ready_or_topo(req, false),
            ("GET", "/pvcs/topo") => self.ready_or_topo(req, true),
            ("GET", path) if path.starts_with("/pvcs/") && path.len() > "/pvcs/".len() => {
                self.view(req, &path["/pvcs/".len()..])
            }
            _ => Answer::status(StatusCode::NOT_FOUND, "404 page not found"),
        }
    }
}

impl SmsEmulator {
    /// Starts an emulator with no PVC and no node; jobs finish after one `null` poll.
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            ready_after: 1,
            ..State::default()
        }));
        let handler_state = state.clone();
        let server = Server::start(
            Arc::new(move |req: &Recorded| lock(&handler_state).handle(req)),
            r#"{"error":"injected failure"}"#,
        )
        .await?;
        Ok(SmsEmulator { server, state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Makes a PVC known to the SMS (free, unformatted).
    pub fn add_pvc(&self, namespace: &str, name: &str) {
        lock(&self.state)
            .pvcs
            .insert((namespace.to_owned(), name.to_owned()), SmsPvc::default());
    }

    /// Sets the state of a PVC (e.g. one another cluster owns).
    pub fn set_pvc(&self, namespace: &str, name: &str, pvc: SmsPvc) {
        lock(&self.state)
            .pvcs
            .insert((namespace.to_owned(), name.to_owned()), pvc);
    }

    /// What the SMS knows about a PVC.
    pub fn pvc(&self, namespace: &str, name: &str) -> Option<SmsPvc> {
        lock(&self.state)
            .pvcs
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Makes a node (by id, the node name) known, for the write lock.
    pub fn add_node(&self, id: &str, ip: &str) {
        lock(&self.state).nodes.insert(id.to_owned(), ip.to_owned());
    }

    /// Jobs started from now on answer `null` to this many polls before they finish.
    pub fn set_ready_after(&self, polls: u32) {
        lock(&self.state).ready_after = polls;
    }

    /// The next job started fails with `message` when it finishes.
    pub fn fail_next_job(&self, message: &str) {
        lock(&self.state).fail_next_job = Some(message.to_owned());
    }

    /// Forgets every workflow (as an SMS whose workflow store was lost).
    pub fn forget_jobs(&self) {
        let mut state = lock(&self.state);
        state.jobs.clear();
        for pvc in state.pvcs.values_mut() {
            pvc.locked_by = None;
        }
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
