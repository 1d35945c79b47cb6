//! The runner's real loop, `kube::runtime::Controller`, on `kube-fake-client`. The fake has
//! no watch, so a `tower` service in front of it answers watch requests with a stream that
//! stays open and sends everything else to the fake: the controller lists the objects,
//! reconciles them and honours its requeues exactly as on a cluster.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{cluster, flow_dir, resource, Db, DbResource, DbSpec, DbStatus, Noop, NS};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use tokio::sync::{oneshot, Notify};
use wf_engine::{
    async_trait, BoxError, CancellationToken, Event, FlowStatus, State, StateMachine,
    StateResource, Step, StepContext, StepError, StepOutcome, StepStatus, WorkflowManager,
    WorkflowRuntime,
};
use wf_kube::{ConfigMapMementoFactory, Reconciler};

/// `fake` with watches that never end (and never send an event).
fn with_open_watches(fake: kube::Client) -> kube::Client {
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

const CREATE: &str = "\
flowName: Create
recoverFromFirstStep: false
steps:
  - {className: test.Noop, stepName: AllocateIds}
  - {className: test.Block, stepName: PrepareStorage}
  - {className: test.MarkRunning, stepName: UpdateRunningStatus}
";

/// Signals that it runs, then waits to be released (a long call to the outside world).
struct Block {
    entered: Arc<Notify>,
    release: Arc<Notify>,
    runs: Arc<AtomicU32>,
}

#[async_trait]
impl Step for Block {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(StepOutcome::Done)
    }
}

/// Writes `Running` to the status; counts its runs.
struct MarkRunning {
    client: kube::Client,
    target: Option<(String, String)>,
    runs: Arc<AtomicU32>,
}

#[async_trait]
impl Step for MarkRunning {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.target = Some((ctx.resource_namespace()?, ctx.resource_name()?));
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let (namespace, name) = self
            .target
            .clone()
            .ok_or_else(|| StepError::failed("not inited"))?;
        let resource = DbResource::get(self.client.clone(), &namespace, &name)
            .await
            .map_err(|e| StepError::failed(e.to_string()))?;
        resource.update_state(State::RUNNING).await?;
        Ok(StepOutcome::Done)
    }
}

struct Probes {
    entered: Arc<Notify>,
    release: Arc<Notify>,
    block_runs: Arc<AtomicU32>,
    mark_runs: Arc<AtomicU32>,
}

impl Probes {
    fn new() -> Self {
        Probes {
            entered: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
            block_runs: Arc::new(AtomicU32::new(0)),
            mark_runs: Arc::new(AtomicU32::new(0)),
        }
    }
}

fn needs_create(resource: &DbResource) -> Result<Option<Event>, BoxError> {
    let state = resource.state().effective();
    Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
}

/// One operator process: a manager with its own ConfigMap cache, a machine and a reconciler.
fn operator(
    client: &kube::Client,
    flows: &std::path::Path,
    probes: &Probes,
) -> Reconciler<Db, common::ClusterStatusField> {
    let (entered, release, runs) = (
        probes.entered.clone(),
        probes.release.clone(),
        probes.block_runs.clone(),
    );
    let (c, mark_runs) = (client.clone(), probes.mark_runs.clone());
    let manager = WorkflowManager::<DbResource>::builder("db")
        .flow_dir(flows)
        .step("test.Noop", || Noop)
        .step("test.Block", move || Block {
            entered: entered.clone(),
            release: release.clone(),
            runs: runs.clone(),
        })
        .step("test.MarkRunning", move || MarkRunning {
            client: c.clone(),
            target: None,
            runs: mark_runs.clone(),
        })
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager");
    let mut machine = StateMachine::<DbResource>::new("db");
    machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    machine.register_translate_main_enter(
        State::INIT,
        needs_create,
        State::CREATING,
        manager.flow_entry("Create", false),
    );
    machine.validate_flows(&manager).expect("flows");
    Reconciler::new(Arc::new(machine), manager, client.clone())
}

fn init_db(name: &str) -> Db {
    let mut db = Db::new(name, DbSpec { replicas: 1 });
    db.metadata.namespace = Some(NS.into());
    db.metadata.annotations = Some(BTreeMap::new());
    db.status = Some(DbStatus {
        cluster_status: State::INIT.to_string(),
        ready: false,
    });
    db
}

async fn last_run(client: &kube::Client) -> WorkflowRuntime {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("c1-workflow")
        .await
        .expect("configmap");
    let data = cm.data.unwrap_or_default();
    serde_json::from_str(data.get("1-Create").expect("run 1")).expect("runtime")
}

/// Guards a test step that should take milliseconds from hanging the whole test run.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_step_lets_the_step_persist_then_parks_and_the_next_process_resumes() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (fake, _) = cluster(vec![init_db("c1")]).await;
    let client = with_open_watches(fake);
    let probes = Probes::new();

    // First process: runs until PrepareStorage is in flight, then gets SIGTERM.
    let first = operator(&client, flows.path(), &probes);
    let manager = first.manager().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let api = Api::<Db>::namespaced(client.clone(), NS);
    let running = tokio::spawn(first.run_until(api.clone(), async move {
        let _ = stopped.await;
    }));
    bounded("PrepareStorage started", probes.entered.notified()).await;
    stop.send(()).expect("stop");
    bounded("draining began", async {
        while !manager.is_draining() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The controller waits for the step in flight, which now ends.
    probes.release.notify_one();
    bounded("the controller stopped", running)
        .await
        .expect("run task");
    assert!(
        manager.is_draining(),
        "still draining: nothing runs after the return"
    );

    let parked = last_run(&client).await;
    let statuses: Vec<_> = parked
        .running_steps
        .iter()
        .map(|s| (s.step_name.as_str(), s.step_status))
        .collect();
    assert_eq!(parked.flow_status, FlowStatus::Waiting, "{statuses:?}");
    assert_eq!(statuses[0], ("AllocateIds", StepStatus::Completed));
    assert_eq!(statuses[1], ("PrepareStorage", StepStatus::Completed));
    assert_ne!(statuses[2].1, StepStatus::Completed);
    assert_eq!(probes.mark_runs.load(Ordering::SeqCst), 0);
    assert_eq!(resource(&client, "c1").await.state(), State::CREATING);

    // Second process: resumes at UpdateRunningStatus; PrepareStorage is not run again.
    let second = operator(&client, flows.path(), &probes);
    let watch = client.clone();
    bounded(
        "the second process reached Running",
        second.run_until(api, async move {
            while resource(&watch, "c1").await.state() != State::RUNNING {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }),
    )
    .await;
    let run = last_run(&client).await;
    assert_eq!(run.flow_status, FlowStatus::Completed);
    assert_eq!(run.retry_times, 0, "a parked run resumes without a retry");
    assert_eq!(probes.block_runs.load(Ordering::SeqCst), 1);
    assert_eq!(probes.mark_runs.load(Ordering::SeqCst), 1);
}
