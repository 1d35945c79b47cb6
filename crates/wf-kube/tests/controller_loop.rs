//! The runner's real loop, `kube::runtime::Controller`, on `kube-fake-client` with watches
//! held open ([`common::with_open_watches`]): the controller lists the objects, reconciles
//! them and honours its requeues exactly as on a cluster.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    cluster, create_machine, flow_dir, resource, with_open_watches, Db, DbResource, DbSpec,
    DbStatus, MarkRunning, Noop, NS,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use tokio::sync::{oneshot, Notify};
use wf_engine::{
    async_trait, CancellationToken, FlowStatus, State, StateResource, Step, StepError, StepOutcome,
    StepStatus, WorkflowManager, WorkflowRuntime,
};
use wf_kube::{
    ConfigMapMementoFactory, LeaseConfig, Operator, OperatorError, Reconciler, WorkflowMetrics,
};

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

/// One operator process: a manager with its own ConfigMap cache, a machine and a reconciler.
fn operator(
    client: &kube::Client,
    flows: &std::path::Path,
    probes: &Probes,
) -> Reconciler<Db, DbResource> {
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
        .step("test.MarkRunning", move || {
            MarkRunning::new(c.clone(), mark_runs.clone())
        })
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager");
    Reconciler::new(create_machine(&manager), manager, client.clone())
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

fn lease(identity: &str) -> LeaseConfig {
    // Short so the tests take a moment, with a renew deadline 40 retry periods long so a
    // loaded machine does not lose the lease by accident. Nothing asserts on durations.
    LeaseConfig::new(NS, "db-operator", identity)
        .with_lease_duration(Duration::from_secs(3))
        .with_renew_deadline(Duration::from_secs(2))
        .with_retry_period(Duration::from_millis(50))
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    bounded(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn wait_for_state(client: &kube::Client, state: State) {
    bounded(&format!("state {state}"), async {
        while resource(client, "c1").await.state() != state {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn lease_holder(client: &kube::Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get("db-operator")
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leads_and_its_stop_hands_the_flow_to_the_standby() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (fake, _) = cluster(vec![init_db("c1")]).await;
    let client = with_open_watches(fake);
    let api = Api::<Db>::namespaced(client.clone(), NS);
    let (probes_one, probes_two) = (Probes::new(), Probes::new());

    let one = Operator::new(operator(&client, flows.path(), &probes_one), api.clone())
        .with_leader_election(lease("one"));
    let health_one = one.health();
    let (stop_one, stopped_one) = oneshot::channel::<()>();
    let one = tokio::spawn(one.run_until(async move {
        let _ = stopped_one.await;
    }));
    wait_until("one leads", || health_one.is_leader()).await;

    let two = Operator::new(operator(&client, flows.path(), &probes_two), api)
        .with_leader_election(lease("two"));
    let (health_two, metrics_two) = (two.health(), two.metrics());
    let (stop_two, stopped_two) = oneshot::channel::<()>();
    let two = tokio::spawn(two.run_until(async move {
        let _ = stopped_two.await;
    }));
    wait_until("two is up", || health_two.is_ready()).await;

    // One works, two stands by.
    bounded("one runs PrepareStorage", probes_one.entered.notified()).await;
    assert!(!health_two.is_leader());
    assert_eq!(lease_holder(&client).await.as_deref(), Some("one"));
    assert_eq!(probes_two.block_runs.load(Ordering::SeqCst), 0);
    assert!(!metrics_two.render().contains("wf_reconciles_total{"));

    // SIGTERM to one: its step in flight finishes, then it drains and releases the lease.
    stop_one.send(()).expect("stop one");
    wait_until("one is not ready any more", || !health_one.is_ready()).await;
    probes_one.release.notify_one();
    bounded("one stopped", one)
        .await
        .expect("task")
        .expect("one ran");
    assert_eq!(probes_one.mark_runs.load(Ordering::SeqCst), 0);

    // Two takes the released lease at once and resumes the parked run at its next step.
    wait_for_state(&client, State::RUNNING).await;
    assert!(health_two.is_leader());
    assert_eq!(lease_holder(&client).await.as_deref(), Some("two"));
    assert_eq!(
        probes_two.block_runs.load(Ordering::SeqCst),
        0,
        "not re-run"
    );
    assert_eq!(probes_two.mark_runs.load(Ordering::SeqCst), 1);
    // The last step writes `Running` before its run is saved completed: wait for that save.
    bounded("the run completed", async {
        while last_run(&client).await.flow_status != FlowStatus::Completed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    stop_two.send(()).expect("stop two");
    bounded("two stopped", two)
        .await
        .expect("task")
        .expect("two ran");
    assert_eq!(lease_holder(&client).await, None, "released on the way out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_stops_reconciling_and_winning_it_back_resumes() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (fake, calls) = cluster(vec![init_db("c1")]).await;
    let client = with_open_watches(fake);
    let api = Api::<Db>::namespaced(client.clone(), NS);
    let probes = Probes::new();
    let reconciler = operator(&client, flows.path(), &probes);
    let manager = reconciler.manager().clone();
    let one = Operator::new(reconciler, api).with_leader_election(lease("one"));
    let health = one.health();
    let (stop, stopped) = oneshot::channel::<()>();
    let one = tokio::spawn(one.run_until(async move {
        let _ = stopped.await;
    }));
    bounded("PrepareStorage runs", probes.entered.notified()).await;

    // The API server stops taking lease renewals: after the renew deadline, one steps down
    // and its controller drains while PrepareStorage is still in flight.
    calls.fail_lease_writes.store(true, Ordering::SeqCst);
    wait_until("draining after the lost lease", || manager.is_draining()).await;
    probes.release.notify_one();
    wait_until("one is not leader", || !health.is_leader()).await;
    let parked = last_run(&client).await;
    assert_eq!(parked.flow_status, FlowStatus::Waiting);
    assert_eq!(probes.mark_runs.load(Ordering::SeqCst), 0);
    assert_eq!(resource(&client, "c1").await.state(), State::CREATING);
    assert!(
        health.is_ready(),
        "a standby is still a healthy, ready replica"
    );

    // Renewals work again: one leads again and the run goes on from where it parked.
    calls.fail_lease_writes.store(false, Ordering::SeqCst);
    wait_for_state(&client, State::RUNNING).await;
    assert!(health.is_leader());
    assert_eq!(probes.block_runs.load(Ordering::SeqCst), 1);
    assert_eq!(probes.mark_runs.load(Ordering::SeqCst), 1);

    stop.send(()).expect("stop");
    bounded("one stopped", one)
        .await
        .expect("task")
        .expect("one ran");
}

#[tokio::test]
async fn an_invalid_lease_config_fails_before_reconciling_anything() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (fake, calls) = cluster(vec![init_db("c1")]).await;
    let client = with_open_watches(fake);
    let probes = Probes::new();
    let bad = LeaseConfig::new(NS, "db-operator", "one")
        .with_lease_duration(Duration::from_secs(2))
        .with_renew_deadline(Duration::from_secs(5));
    calls.reset();
    let err = Operator::new(
        operator(&client, flows.path(), &probes),
        Api::<Db>::namespaced(client.clone(), NS),
    )
    .with_leader_election(bad)
    .run_until(std::future::pending())
    .await
    .expect_err("invalid");
    assert!(matches!(err, OperatorError::Leader(_)), "{err}");
    assert!(err.to_string().contains("ns/db-operator"), "{err}");
    assert_eq!(calls.writes() + calls.reads(), 0);
}

/// `GET path` over a fresh connection: the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_serves_metrics_and_probes_while_it_reconciles() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (fake, _) = cluster(vec![init_db("c1")]).await;
    let client = with_open_watches(fake);
    let probes = Probes::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let op = Operator::new(
        operator(&client, flows.path(), &probes),
        Api::<Db>::namespaced(client.clone(), NS),
    )
    .with_http_listener(listener);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(op.run_until(async move {
        let _ = stopped.await;
    }));

    bounded("PrepareStorage runs", probes.entered.notified()).await;
    assert_eq!(
        get(addr, "/readyz").await.expect("readyz"),
        (200, "ok".into())
    );
    assert_eq!(get(addr, "/healthz").await.expect("healthz").0, 200);
    let (status, metrics) = get(addr, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    assert!(metrics.lines().any(|l| l == "wf_leader 1"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "wf_reconciles_total{result=\"transitioned\"} 1"),
        "{metrics}"
    );

    probes.release.notify_one();
    wait_for_state(&client, State::RUNNING).await;
    stop.send(()).expect("stop");
    bounded("the operator stopped", running)
        .await
        .expect("task")
        .expect("ran");
    assert!(get(addr, "/readyz").await.is_err(), "the server is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconciles_of_one_resource_at_once_run_one_after_the_other() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let mut creating = init_db("c1");
    if let Some(status) = creating.status.as_mut() {
        status.cluster_status = State::CREATING.to_string();
    }
    let (fake, _) = cluster(vec![creating]).await;
    let client = with_open_watches(fake);
    let probes = Probes::new();
    let reconciler = Arc::new(operator(&client, flows.path(), &probes));
    let obj = resource(&client, "c1").await.object().clone();

    let (r1, o1) = (reconciler.clone(), obj.clone());
    let first = tokio::spawn(async move { r1.decide(&o1).await });
    bounded("the first runs PrepareStorage", probes.entered.notified()).await;
    // A second reconcile of the same resource (e.g. from another trigger) waits for the
    // resource's lock instead of running the flow alongside.
    let (r2, o2) = (reconciler.clone(), obj.clone());
    let second = tokio::spawn(async move { r2.decide(&o2).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!second.is_finished(), "the second waits for the first");
    probes.release.notify_one();
    let first = bounded("first", first).await.expect("task").expect("ok");
    let second = bounded("second", second).await.expect("task").expect("ok");
    assert_eq!((first.label(), second.label()), ("completed", "stable"));
    assert_eq!(probes.block_runs.load(Ordering::SeqCst), 1);
    assert_eq!(probes.mark_runs.load(Ordering::SeqCst), 1);
}

/// The count of `wf_reconciles_total{result="stable"}`.
fn stable_reconciles(metrics: &WorkflowMetrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("wf_reconciles_total{result=\"stable\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_an_owned_child_reconciles_its_owner() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher;
    use kube::Resource;

    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let mut running = init_db("c1");
    if let Some(status) = running.status.as_mut() {
        status.cluster_status = State::RUNNING.to_string();
    }
    let (fake, _) = cluster(vec![running]).await;
    let (events, _) = tokio::sync::broadcast::channel(16);
    let client = common::with_watch_events(fake, events.clone());
    let owner = resource(&client, "c1").await.object().clone();
    let mut pod = Pod::default();
    pod.metadata.name = Some("c1-1001".into());
    pod.metadata.namespace = Some(NS.into());
    pod.metadata.resource_version = Some("7".into());
    pod.metadata.owner_references = owner.controller_owner_ref(&()).map(|r| vec![r]);
    let mut stranger = pod.clone();
    stranger.metadata.name = Some("other".into());
    stranger.metadata.owner_references = None;

    let metrics = Arc::new(WorkflowMetrics::new());
    let probes = Probes::new();
    let reconciler = operator(&client, flows.path(), &probes)
        .with_metrics(metrics.clone())
        .with_watch(wf_kube::Watch::default().owns(
            Api::<Pod>::namespaced(client.clone(), NS),
            watcher::Config::default(),
        ));
    assert_eq!(reconciler.watch().owned_types(), 1);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(reconciler.run_until(
        Api::<Db>::namespaced(client.clone(), NS),
        async move {
            let _ = stopped.await;
        },
    ));
    let m = metrics.clone();
    wait_until("the first reconcile", move || stable_reconciles(&m) >= 1).await;
    // Let the start-up reconciles settle, then count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = stable_reconciles(&metrics);

    // A pod the cluster does not own changes: nothing happens.
    let event = |kind: &str, pod: &Pod| {
        (
            "pods".to_owned(),
            serde_json::json!({"type": kind, "object": pod}),
        )
    };
    events.send(event("DELETED", &stranger)).expect("sent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        stable_reconciles(&metrics),
        before,
        "a stranger's pod reconciles nothing"
    );

    // The owned pod is deleted: its owner is reconciled.
    events.send(event("DELETED", &pod)).expect("sent");
    let m = metrics.clone();
    wait_until("the owner's reconcile", move || {
        stable_reconciles(&m) > before
    })
    .await;

    stop.send(()).expect("stop");
    bounded("stopped", running).await.expect("task");
}
