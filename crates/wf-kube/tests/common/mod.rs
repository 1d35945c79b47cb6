//! The example custom resource and the instrumented fake API server shared by the wf-kube
//! integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use kube::CustomResource;
use kube_fake_client::{interceptor, ClientBuilder, Error as FakeError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wf_engine::BoxError;
use wf_kube::{KubeResource, StateField};

#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Db",
    namespaced,
    status = "DbStatus",
    derive = "Default"
)]
pub struct DbSpec {
    pub replicas: i32,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbStatus {
    #[serde(default)]
    pub cluster_status: String,
    #[serde(default)]
    pub ready: bool,
}

pub struct ClusterStatusField;

impl StateField<Db> for ClusterStatusField {
    fn read(object: &Db) -> String {
        object
            .status
            .as_ref()
            .map(|s| s.cluster_status.clone())
            .unwrap_or_default()
    }
    fn patch(state: &str) -> serde_json::Value {
        serde_json::json!({ "status": { "clusterStatus": state } })
    }
}

pub type DbResource = KubeResource<Db, ClusterStatusField>;

pub const NS: &str = "ns";

/// Calls seen by the fake API server, by verb.
#[derive(Default)]
pub struct Calls {
    pub get: AtomicUsize,
    pub create: AtomicUsize,
    pub replace: AtomicUsize,
    pub patch: AtomicUsize,
    pub patch_status: AtomicUsize,
    /// Replaces of ConfigMaps to answer with an injected 409.
    pub inject_conflicts: AtomicUsize,
    /// Replaces of anything but a ConfigMap (a full update of the resource itself).
    pub replace_other: AtomicUsize,
    /// The largest ConfigMap `data` (keys + values, in bytes) ever sent in a write.
    pub max_config_map_bytes: AtomicUsize,
    /// While set, every write of a Lease fails with a 500.
    pub fail_lease_writes: std::sync::atomic::AtomicBool,
    /// 409s injected so far.
    pub injected: AtomicUsize,
}

impl Calls {
    /// Records the size of a ConfigMap about to be written.
    fn see_config_map(&self, object: &serde_json::Value) {
        if object.get("kind").and_then(|k| k.as_str()) != Some("ConfigMap") {
            return;
        }
        let bytes: usize = object
            .get("data")
            .and_then(|d| d.as_object())
            .map(|data| {
                data.iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum()
            })
            .unwrap_or(0);
        self.max_config_map_bytes.fetch_max(bytes, Ordering::SeqCst);
    }

    pub fn reads(&self) -> usize {
        self.get.load(Ordering::SeqCst)
    }
    pub fn writes(&self) -> usize {
        self.create.load(Ordering::SeqCst)
            + self.replace.load(Ordering::SeqCst)
            + self.patch.load(Ordering::SeqCst)
            + self.patch_status.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        for c in [
            &self.get,
            &self.create,
            &self.replace,
            &self.patch,
            &self.patch_status,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

pub fn db(name: &str) -> Db {
    let mut db = Db::new(name, DbSpec { replicas: 1 });
    db.metadata.namespace = Some(NS.into());
    db.metadata.annotations = Some(BTreeMap::from([("keep".into(), "me".into())]));
    db.status = Some(DbStatus {
        cluster_status: "Creating".into(),
        ready: true,
    });
    db
}

pub async fn cluster(objects: Vec<Db>) -> (kube::Client, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let (g, c, r, p, ps) = (
        calls.clone(),
        calls.clone(),
        calls.clone(),
        calls.clone(),
        calls.clone(),
    );
    let funcs = interceptor::Funcs::new()
        .get(move |_| {
            g.get.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .create(move |ctx| {
            c.create.fetch_add(1, Ordering::SeqCst);
            c.see_config_map(ctx.object);
            Ok(None)
        })
        .replace(move |ctx| {
            r.replace.fetch_add(1, Ordering::SeqCst);
            r.see_config_map(ctx.object);
            let is_cm = ctx.object.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap");
            if !is_cm {
                r.replace_other.fetch_add(1, Ordering::SeqCst);
            }
            let is_lease = ctx.object.get("kind").and_then(|k| k.as_str()) == Some("Lease");
            if is_lease && r.fail_lease_writes.load(Ordering::SeqCst) {
                return Err(FakeError::Internal("lease write failed (injected)".into()));
            }
            if is_cm
                && r.inject_conflicts
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                r.injected.fetch_add(1, Ordering::SeqCst);
                return Err(FakeError::Conflict("injected by the test".into()));
            }
            Ok(None)
        })
        .patch(move |_| {
            p.patch.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .patch_status(move |_| {
            ps.patch_status.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        });
    let mut builder = ClientBuilder::new()
        .with_resource::<Db>()
        .with_status_subresource::<Db>()
        .with_interceptor_funcs(funcs);
    for object in objects {
        builder = builder.with_object(object);
    }
    let client = builder.build().await.expect("fake client");
    (client, calls)
}

/// A fresh copy of `ns/<name>`.
pub async fn resource(client: &kube::Client, name: &str) -> DbResource {
    DbResource::get(client.clone(), NS, name)
        .await
        .expect("get")
}

/// A step that does nothing.
pub struct Noop;

#[wf_engine::async_trait]
impl wf_engine::Step for Noop {
    async fn do_step(
        &mut self,
        _: &wf_engine::CancellationToken,
    ) -> Result<wf_engine::StepOutcome, wf_engine::StepError> {
        Ok(wf_engine::StepOutcome::Done)
    }
}

/// A flow directory for resource type `db` holding the given `(file, yaml)` pairs.
pub fn flow_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("db");
    std::fs::create_dir_all(&flows).expect("mkdir");
    for (name, yaml) in files {
        std::fs::write(flows.join(name), yaml).expect("flow");
    }
    dir
}

/// `fake` behind a `tower` service that answers watch requests with a stream that stays
/// open (the fake has no watch) and sends every other request to the fake, so that
/// `kube::runtime::Controller` can run on it.
pub fn with_open_watches(fake: kube::Client) -> kube::Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let fake = fake.clone();
        async move {
            let watch = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "watch=true"));
            if watch {
                let open = futures::stream::pending::<Result<http_body::Frame<Bytes>, BoxError>>();
                return Ok::<_, BoxError>(http::Response::new(UnsyncBoxBody::new(
                    StreamBody::new(open),
                )));
            }
            let response = fake.send(request).await?;
            Ok(response.map(|body| body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
        }
    });
    kube::Client::new(service, NS)
}

/// Like [`with_open_watches`], but a watch of a path containing `/<plural>` (e.g. `/pods`)
/// streams the watch events sent on `events` for that plural, as `(plural, event)` with
/// `event` a watch event such as `{"type": "DELETED", "object": {...}}` (the object needs a
/// `metadata.resourceVersion`, or the watcher drops the watch and lists again).
pub fn with_watch_events(
    fake: kube::Client,
    events: tokio::sync::broadcast::Sender<(String, serde_json::Value)>,
) -> kube::Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let fake = fake.clone();
        let events = events.clone();
        async move {
            let watch = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "watch=true"));
            if watch {
                let path = request.uri().path().to_owned();
                let receiver = events.subscribe();
                let lines = futures::stream::unfold(receiver, move |mut receiver| {
                    let path = path.clone();
                    async move {
                        loop {
                            match receiver.recv().await {
                                Ok((plural, event)) if path.ends_with(&format!("/{plural}")) => {
                                    let mut line = serde_json::to_vec(&event).unwrap_or_default();
                                    line.push(b'\n');
                                    let frame = http_body::Frame::data(Bytes::from(line));
                                    return Some((Ok::<_, BoxError>(frame), receiver));
                                }
                                Ok(_) => continue,
                                // Closed or lagging: the stream stays open but idle.
                                Err(_) => futures::future::pending::<()>().await,
                            }
                        }
                    }
                });
                return Ok::<_, BoxError>(http::Response::new(UnsyncBoxBody::new(
                    StreamBody::new(lines),
                )));
            }
            let response = fake.send(request).await?;
            Ok(response.map(|body| body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
        }
    });
    kube::Client::new(service, NS)
}

/// Writes `Running` to the resource's status, as the last step of a create flow does, and
/// counts its runs.
pub struct MarkRunning {
    client: kube::Client,
    target: Option<(String, String)>,
    runs: Arc<std::sync::atomic::AtomicU32>,
}

impl MarkRunning {
    /// A step writing through `client`, counting its runs in `runs`.
    pub fn new(client: kube::Client, runs: Arc<std::sync::atomic::AtomicU32>) -> Self {
        MarkRunning {
            client,
            target: None,
            runs,
        }
    }
}

#[wf_engine::async_trait]
impl wf_engine::Step for MarkRunning {
    async fn init(&mut self, ctx: &wf_engine::StepContext) -> Result<(), wf_engine::StepError> {
        self.target = Some((ctx.resource_namespace()?, ctx.resource_name()?));
        Ok(())
    }

    async fn do_step(
        &mut self,
        _: &wf_engine::CancellationToken,
    ) -> Result<wf_engine::StepOutcome, wf_engine::StepError> {
        use wf_engine::StateResource;
        self.runs.fetch_add(1, Ordering::SeqCst);
        let (namespace, name) = self
            .target
            .clone()
            .ok_or_else(|| wf_engine::StepError::failed("not inited"))?;
        let resource = DbResource::get(self.client.clone(), &namespace, &name)
            .await
            .map_err(|e| wf_engine::StepError::failed(e.to_string()))?;
        resource.update_state(wf_engine::State::RUNNING).await?;
        Ok(wf_engine::StepOutcome::Done)
    }
}

/// The machine of the tests: stable `Running`, `Interrupt`, `Init`; `Init` goes to
/// `Creating`, whose entry runs the flow `Create`.
pub fn create_machine(
    manager: &wf_engine::WorkflowManager<DbResource>,
) -> Arc<wf_engine::StateMachine<DbResource>> {
    use wf_engine::{Event, State, StateMachine, StateResource};
    let needs_create = |resource: &DbResource| -> Result<Option<Event>, BoxError> {
        let state = resource.state().effective();
        Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
    };
    let mut machine = StateMachine::<DbResource>::new("db");
    machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    machine.register_translate_main_enter(
        State::INIT,
        needs_create,
        State::CREATING,
        manager.flow_entry("Create"),
    );
    machine.validate_flows(manager).expect("flows");
    Arc::new(machine)
}
