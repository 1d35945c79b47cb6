//! What runs before the state machine: the `Watch` filter and a `Guard`, on
//! `kube-fake-client`, reconciles driven by hand.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    cluster, create_machine, flow_dir, resource, Db, DbResource, DbSpec, DbStatus, MarkRunning, NS,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::Api;
use wf_engine::{async_trait, BoxError, State, StateResource, WorkflowManager};
use wf_kube::{
    ConfigMapMementoFactory, Decision, Guard, ReconcileError, Reconciler, Watch, WorkflowMetrics,
};

const CREATE: &str = "\
flowName: Create
recoverFromFirstStep: false
steps:
  - {className: test.MarkRunning, stepName: UpdateRunningStatus}
";

fn init_db(name: &str, replicas: i32) -> Db {
    let mut db = Db::new(name, DbSpec { replicas });
    db.metadata.namespace = Some(NS.into());
    db.metadata.annotations = Some(BTreeMap::new());
    db.status = Some(DbStatus {
        cluster_status: State::INIT.to_string(),
        ready: false,
    });
    db
}

/// What the scripted guard answers: a decision, or an error message.
type Answer = Result<Option<Decision>, String>;

/// A guard answering from a script, recording what it saw.
#[derive(Clone, Default)]
struct Scripted {
    answers: Arc<Mutex<Vec<Answer>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn then(self, answer: Result<Option<Decision>, &str>) -> Self {
        self.answers
            .lock()
            .unwrap()
            .push(answer.map_err(str::to_owned));
        self
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl Guard<Db> for Scripted {
    async fn before(&self, object: &Db) -> Result<Option<Decision>, BoxError> {
        self.seen
            .lock()
            .unwrap()
            .push(object.metadata.name.clone().unwrap_or_default());
        let mut answers = self.answers.lock().unwrap();
        let answer = if answers.is_empty() {
            Ok(None)
        } else {
            answers.remove(0)
        };
        answer.map_err(BoxError::from)
    }
}

struct Setup {
    client: kube::Client,
    calls: Arc<common::Calls>,
    factory: ConfigMapMementoFactory,
    metrics: Arc<WorkflowMetrics>,
    runs: Arc<AtomicU32>,
    reconciler: Reconciler<Db, DbResource>,
    _flows: tempfile::TempDir,
}

async fn setup(objects: Vec<Db>, watch: Watch<Db>, guard: Option<Scripted>) -> Setup {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (client, calls) = cluster(objects).await;
    let factory = ConfigMapMementoFactory::new(client.clone());
    let runs = Arc::new(AtomicU32::new(0));
    let (c, r) = (client.clone(), runs.clone());
    let manager = WorkflowManager::<DbResource>::builder("db")
        .flow_dir(flows.path())
        .step("test.MarkRunning", move || {
            MarkRunning::new(c.clone(), r.clone())
        })
        .memento_store(factory.clone())
        .build()
        .expect("manager");
    let metrics = Arc::new(WorkflowMetrics::new());
    let mut reconciler = Reconciler::new(create_machine(&manager), manager, client.clone())
        .with_watch(watch)
        .with_metrics(metrics.clone());
    if let Some(guard) = guard {
        reconciler = reconciler.with_guard(guard);
    }
    Setup {
        client,
        calls,
        factory,
        metrics,
        runs,
        reconciler,
        _flows: flows,
    }
}

/// Reconciles until the decision asks for no requeue; the labels.
async fn drive(reconciler: &Reconciler<Db, DbResource>, obj: &Db) -> Vec<&'static str> {
    let mut labels = Vec::new();
    for _ in 0..10 {
        let decision = reconciler.decide(obj).await.expect("decision");
        labels.push(decision.label());
        match decision.requeue_after {
            Some(delay) => tokio::time::sleep(delay).await,
            None => return labels,
        }
    }
    panic!("no end: {labels:?}");
}

#[tokio::test]
async fn an_object_the_filter_refuses_is_not_reconciled_and_costs_no_api_call() {
    let watch = Watch::default().filter(|db: &Db| db.spec.replicas > 0);
    let s = setup(vec![init_db("idle", 0), init_db("busy", 1)], watch, None).await;
    let idle = resource(&s.client, "idle").await.object().clone();
    s.calls.reset();

    let decision = s.reconciler.decide(&idle).await.expect("decision");

    assert_eq!(decision.label(), "filtered");
    assert_eq!(decision.action(), Action::await_change());
    assert!(!decision.is_gone());
    assert_eq!(
        s.calls.reads() + s.calls.writes(),
        0,
        "nothing read or written"
    );
    assert_eq!(resource(&s.client, "idle").await.state(), State::INIT);
    // An object the filter admits runs its flow.
    let busy = resource(&s.client, "busy").await.object().clone();
    assert_eq!(
        drive(&s.reconciler, &busy).await,
        ["transitioned", "completed", "stable"]
    );
    assert_eq!(resource(&s.client, "busy").await.state(), State::RUNNING);
    assert!(s
        .metrics
        .render()
        .lines()
        .any(|l| l == "wf_reconciles_total{result=\"filtered\"} 1"));
}

#[tokio::test]
async fn a_guard_that_handles_the_reconcile_keeps_the_state_machine_from_running() {
    let guard = Scripted::default().then(Ok(Some(Decision::handled(
        "finalizing",
        Some(Duration::from_millis(5)),
    ))));
    let s = setup(
        vec![init_db("c1", 1)],
        Watch::default(),
        Some(guard.clone()),
    )
    .await;
    let obj = resource(&s.client, "c1").await.object().clone();
    s.calls.reset();

    let first = s.reconciler.decide(&obj).await.expect("decision");

    assert_eq!(first.label(), "finalizing");
    assert_eq!(first.action(), Action::requeue(Duration::from_millis(5)));
    assert_eq!(first.reconciled, None);
    assert_eq!(
        s.calls.reads() + s.calls.writes(),
        0,
        "the engine did not run"
    );
    assert_eq!(s.runs.load(Ordering::SeqCst), 0);
    // The next reconcile the guard lets through runs the machine, which reads fresh.
    assert_eq!(
        drive(&s.reconciler, &obj).await,
        ["transitioned", "completed", "stable"]
    );
    assert_eq!(guard.seen(), ["c1"; 4]);
    assert_eq!(s.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_guard_that_releases_the_resource_drops_its_cached_memento_store() {
    let guard = Scripted::default()
        .then(Ok(None))
        .then(Ok(None))
        .then(Ok(None))
        .then(Ok(Some(Decision::released("finalized"))));
    let s = setup(vec![init_db("c1", 1)], Watch::default(), Some(guard)).await;
    let obj = resource(&s.client, "c1").await.object().clone();
    assert_eq!(
        drive(&s.reconciler, &obj).await,
        ["transitioned", "completed", "stable"]
    );
    assert_eq!(s.factory.cached(), 1);

    let released = s.reconciler.decide(&obj).await.expect("decision");

    assert_eq!(released.label(), "finalized");
    assert!(released.is_gone());
    assert_eq!(released.action(), Action::await_change());
    assert_eq!(
        s.factory.cached(),
        0,
        "the store of a released resource is forgotten"
    );
    // The runs themselves are untouched (the ConfigMap goes with its owner).
    let cm = Api::<ConfigMap>::namespaced(s.client.clone(), NS)
        .get("c1-workflow")
        .await;
    assert!(cm.is_ok());
}

#[tokio::test]
async fn a_failing_guard_fails_the_reconcile_naming_the_resource_and_the_cause() {
    let guard = Scripted::default().then(Err("finalizer patch refused"));
    let s = setup(vec![init_db("c1", 1)], Watch::default(), Some(guard)).await;
    let obj = resource(&s.client, "c1").await.object().clone();

    let err = s.reconciler.decide(&obj).await.expect_err("guard error");

    assert!(matches!(err, ReconcileError::Guard { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("ns/c1") && text.contains("finalizer patch refused"),
        "{text}"
    );
    assert_eq!(s.runs.load(Ordering::SeqCst), 0);
    assert_eq!(resource(&s.client, "c1").await.state(), State::INIT);
    assert!(s
        .metrics
        .render()
        .lines()
        .any(|l| l == "wf_reconciles_total{result=\"error\"} 1"));
}
