//! The controller runner on `kube-fake-client`. The fake has no watch, so the tests drive
//! reconciles as `kube::runtime::Controller` would: call, then come back when the decision
//! says (at once, after the requeue delay, or never until a change).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    cluster, create_machine, db, flow_dir, resource, Db, DbResource, DbSpec, DbStatus, MarkRunning,
    Noop, NS,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::Api;
use wf_engine::{
    async_trait, CancellationToken, FlowStatus, Reconciled, State, StateResource, Step, StepError,
    StepOutcome, WorkflowManager, WorkflowRuntime,
};
use wf_kube::{
    decide, Config, ConfigMapMementoFactory, Decision, EventRecorderHook, Reconciler,
    WorkflowMetrics,
};

/// Five steps; the backoff is short so the test's retry comes back quickly.
const CREATE: &str = "\
flowName: Create
recoverFromFirstStep: false
backoff: {initial: 20ms, max: 100ms, factor: 2.0}
steps:
  - {className: test.Noop, stepName: AllocateIds}
  - {className: test.WaitOnce, stepName: WaitForVolume}
  - {className: test.FailOnce, stepName: StartEngine, maxRetries: 3}
  - {className: test.Noop, stepName: RegisterEndpoints}
  - {className: test.MarkRunning, stepName: UpdateRunningStatus}
";

const WAIT: Duration = Duration::from_millis(30);

/// Waits once for the outside world.
struct WaitOnce(Arc<AtomicU32>);

#[async_trait]
impl Step for WaitOnce {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(StepOutcome::waiting_for(WAIT));
        }
        Ok(StepOutcome::Done)
    }
}

/// Fails once with a transient error.
struct FailOnce(Arc<AtomicU32>);

#[async_trait]
impl Step for FailOnce {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StepError::failed("engine not reachable yet"));
        }
        Ok(StepOutcome::Done)
    }
}

/// Interrupts until `fixed` is set (a human repairs the outside world, then recovers).
struct InterruptUntilFixed(Arc<AtomicU32>);

#[async_trait]
impl Step for InterruptUntilFixed {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if self.0.load(Ordering::SeqCst) == 0 {
            return Err(StepError::interrupt("NO_VOLUME", "no volume in the pool"));
        }
        Ok(StepOutcome::Done)
    }
}

/// A new `Db` in state `Init`. (A `Db` with no status at all counts as `Creating`,
/// [semantics §3](../../../docs/SEMANTICS.md#3-the-state-machine), and would start its flow
/// on the first reconcile.)
fn new_db(name: &str) -> Db {
    let mut db = Db::new(name, DbSpec { replicas: 1 });
    db.metadata.namespace = Some(NS.into());
    db.metadata.annotations = Some(BTreeMap::from([("keep".into(), "me".into())]));
    db.status = Some(DbStatus {
        cluster_status: State::INIT.to_string(),
        ready: false,
    });
    db
}

/// Drives reconciles until the runner waits for a change (at most `limit` calls), sleeping
/// the requeue delays in between, and returns every decision.
async fn drive(reconciler: &Reconciler<Db, DbResource>, obj: &Db) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for _ in 0..20 {
        let decision = reconciler.decide(obj).await.expect("no hard error");
        decisions.push(decision.clone());
        match decision.requeue_after {
            Some(delay) => tokio::time::sleep(delay).await,
            None => return decisions,
        }
    }
    panic!("no stable end after 20 reconciles: {decisions:?}");
}

async fn runtime(client: &kube::Client, name: &str, key: &str) -> WorkflowRuntime {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get(&format!("{name}-workflow"))
        .await
        .expect("configmap");
    let data = cm.data.unwrap_or_default();
    serde_json::from_str(data.get(key).expect("runtime key")).expect("runtime json")
}

#[tokio::test]
async fn five_step_flow_runs_from_init_to_running_through_reconcile_honouring_requeues() {
    let flows = flow_dir(&[("create.yaml", CREATE)]);
    let (client, calls) = cluster(vec![new_db("c1")]).await;
    let (polls, tries) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (p, t, c) = (polls.clone(), tries.clone(), client.clone());
    let metrics = Arc::new(WorkflowMetrics::new());
    let manager = WorkflowManager::<DbResource>::builder("db")
        .flow_dir(flows.path())
        .step("test.Noop", || Noop)
        .step("test.WaitOnce", move || WaitOnce(p.clone()))
        .step("test.FailOnce", move || FailOnce(t.clone()))
        .step("test.MarkRunning", move || {
            MarkRunning::new(c.clone(), Arc::default())
        })
        .shared_hook(metrics.clone())
        .hook(
            EventRecorderHook::for_resource::<Db>(client.clone(), "db-operator")
                .with_rate_limit(100, Duration::from_secs(60)),
        )
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager");
    let reconciler = Reconciler::new(create_machine(&manager), manager, client.clone())
        .with_metrics(metrics.clone());
    let obj = resource(&client, "c1").await.object().clone();
    assert_eq!(resource(&client, "c1").await.state(), State::INIT);

    let decisions = drive(&reconciler, &obj).await;
    let labels: Vec<_> = decisions.iter().map(Decision::label).collect();
    assert_eq!(
        labels,
        // The run resumed by the fourth reconcile completes and its last step wrote
        // `Running`: the result says so, and the state is not written again
        // ([semantics §8](../../../docs/SEMANTICS.md#8-the-entry-of-an-unstable-state)).
        // (It used to say `settled`, after writing `Running` a second time.)
        ["transitioned", "waiting", "retry", "completed", "stable"],
        "{decisions:?}"
    );
    // Init -> Creating, then the flow parks at the waiting step and asks for its delay.
    assert_eq!(
        decisions[0].reconciled,
        Some(Reconciled::Transitioned {
            from: State::INIT,
            to: State::CREATING
        })
    );
    assert_eq!(decisions[0].requeue_after, Some(Duration::ZERO));
    assert_eq!(
        decisions[1].reconciled,
        Some(Reconciled::Waiting {
            flow: "Create".into(),
            step: "WaitForVolume".into(),
            recheck_after: WAIT,
        })
    );
    assert_eq!(decisions[1].action(), Action::requeue(WAIT));
    // The failure is retried after the flow's backoff: between 0 and its 100 ms cap.
    let backoff = decisions[2].requeue_after.expect("retry delay");
    assert!(backoff <= Duration::from_millis(100), "{backoff:?}");
    assert_eq!(decisions[3].requeue_after, Some(Duration::ZERO));
    assert_eq!(decisions[4].action(), Action::await_change());
    // The controller's own entry point agrees: nothing more to do.
    assert_eq!(
        reconciler.reconcile(Arc::new(obj)).await.expect("ok"),
        Action::await_change()
    );

    // Each outside-world step was called exactly as often as the story says.
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    assert_eq!(resource(&client, "c1").await.state(), State::RUNNING);
    let run = runtime(&client, "c1", "1-Create").await;
    assert_eq!(run.flow_status, FlowStatus::Completed);
    let retries: Vec<_> = run.running_steps.iter().map(|s| s.retry_times).collect();
    assert_eq!(retries, [0, 0, 1, 0, 0]);
    // The state lives in the status: the resource itself was never replaced.
    assert_eq!(calls.replace_other.load(Ordering::SeqCst), 0);

    // The transitions were published as Events on the resource, the failure as a Warning.
    let events = Api::<K8sEvent>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    let published: Vec<_> = events
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("c1"))
        .map(|e| {
            (
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    for (type_, reason) in [
        ("Normal", "WF_FlowStarted"),
        ("Normal", "WF_StepWaiting"),
        ("Warning", "WF_StepFailed"),
        ("Normal", "WF_StepCompleted"),
        ("Normal", "WF_FlowCompleted"),
    ] {
        assert!(
            published.iter().any(|(t, r)| t == type_ && r == reason),
            "no {type_} {reason} in {published:?}"
        );
    }

    let text = metrics.render();
    for line in [
        "wf_reconciles_total{result=\"completed\"} 1",
        "wf_reconciles_total{result=\"retry\"} 1",
        "wf_reconciles_total{result=\"waiting\"} 1",
        "wf_reconciles_total{result=\"stable\"} 2",
        "wf_flow_runs_finished_total{resource_type=\"db\",result=\"completed\"} 1",
        "wf_step_completions_total{resource_type=\"db\"} 5",
        "wf_step_failures_total{resource_type=\"db\"} 1",
        "wf_step_retries_total{resource_type=\"db\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

const CREATE_INTERRUPTING: &str = "\
flowName: Create
recoverFromFirstStep: false
steps:
  - {className: test.Noop, stepName: AllocateIds}
  - {className: test.InterruptUntilFixed, stepName: PrepareStorage}
  - {className: test.MarkRunning, stepName: UpdateRunningStatus}
";

#[tokio::test]
async fn recover_annotation_resumes_an_interrupted_flow_with_merge_patches_only() {
    let flows = flow_dir(&[("create.yaml", CREATE_INTERRUPTING)]);
    let (client, calls) = cluster(vec![new_db("c1")]).await;
    let fixed = Arc::new(AtomicU32::new(0));
    let (f, c) = (fixed.clone(), client.clone());
    let manager = WorkflowManager::<DbResource>::builder("db")
        .flow_dir(flows.path())
        .step("test.Noop", || Noop)
        .step("test.InterruptUntilFixed", move || {
            InterruptUntilFixed(f.clone())
        })
        .step("test.MarkRunning", move || {
            MarkRunning::new(c.clone(), Arc::default())
        })
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager");
    let reconciler = Reconciler::new(create_machine(&manager), manager, client.clone());
    let obj = resource(&client, "c1").await.object().clone();

    let decisions = drive(&reconciler, &obj).await;
    let labels: Vec<_> = decisions.iter().map(Decision::label).collect();
    assert_eq!(labels, ["transitioned", "interrupted"], "{decisions:?}");
    let interrupted = resource(&client, "c1").await;
    assert_eq!(interrupted.state(), State::INTERRUPT);
    assert_eq!(
        interrupted.annotation("interrupt.reason").as_deref(),
        Some("NO_VOLUME")
    );
    assert_eq!(
        interrupted
            .annotation("interrupt.previous.status")
            .as_deref(),
        Some("Creating")
    );
    assert_eq!(
        interrupted.annotation("interrupt.recover").as_deref(),
        Some("F")
    );
    // Stays interrupted until someone asks.
    assert_eq!(drive(&reconciler, &obj).await[0].label(), "stable");

    // A human fixes the cause and asks for recovery; another controller adds an annotation
    // after the runner's last read.
    fixed.store(1, Ordering::SeqCst);
    let api = Api::<Db>::namespaced(client.clone(), NS);
    let annotate =
        |k: &str, v: &str| Patch::Merge(serde_json::json!({"metadata": {"annotations": {k: v}}}));
    api.patch(
        "c1",
        &PatchParams::default(),
        &annotate("interrupt.recover", "T"),
    )
    .await
    .expect("ask for recovery");
    api.patch("c1", &PatchParams::default(), &annotate("team", "storage"))
        .await
        .expect("other writer");

    calls.reset();
    let decisions = drive(&reconciler, &obj).await;
    let labels: Vec<_> = decisions.iter().map(Decision::label).collect();
    // The recovered run completes (its last step writes `Running`): `completed`, where it
    // used to say `settled` after writing the state a second time.
    assert_eq!(
        labels,
        ["recovered", "completed", "stable"],
        "{decisions:?}"
    );
    assert_eq!(
        decisions[0].reconciled,
        Some(Reconciled::Recovered {
            state: State::CREATING
        })
    );
    let done = resource(&client, "c1").await;
    assert_eq!(done.state(), State::RUNNING);
    for key in [
        "interrupt.reason",
        "interrupt.message",
        "interrupt.previous.status",
        "interrupt.recover",
    ] {
        assert_eq!(done.annotation(key), None, "{key} not cleared");
    }
    assert_eq!(done.annotation("keep").as_deref(), Some("me"));
    assert_eq!(done.annotation("team").as_deref(), Some("storage"));
    // Annotations and state were written with patches; the object was never replaced.
    assert!(calls.patch.load(Ordering::SeqCst) >= 1);
    assert_eq!(calls.replace_other.load(Ordering::SeqCst), 0);
    // The same run resumed at the interrupted step: one runtime, completed.
    let run = runtime(&client, "c1", "1-Create").await;
    assert_eq!(run.flow_status, FlowStatus::Completed);
}

/// A manager over `CREATE_INTERRUPTING` whose storage is already fixed.
fn fixed_manager(client: &kube::Client, flows: &std::path::Path) -> WorkflowManager<DbResource> {
    let c = client.clone();
    WorkflowManager::<DbResource>::builder("db")
        .flow_dir(flows)
        .step("test.Noop", || Noop)
        .step("test.InterruptUntilFixed", || {
            InterruptUntilFixed(Arc::new(AtomicU32::new(1)))
        })
        .step("test.MarkRunning", move || {
            MarkRunning::new(c.clone(), Arc::default())
        })
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager")
}

#[tokio::test]
async fn not_found_object_ends_with_await_change_and_no_error() {
    let flows = flow_dir(&[("create.yaml", CREATE_INTERRUPTING)]);
    let (client, _) = cluster(vec![]).await;
    let manager = fixed_manager(&client, flows.path());
    let metrics = Arc::new(WorkflowMetrics::new());
    let reconciler =
        Reconciler::new(create_machine(&manager), manager, client).with_metrics(metrics.clone());
    let action = reconciler
        .reconcile(Arc::new(new_db("gone")))
        .await
        .expect("no error");
    assert_eq!(action, Action::await_change());
    assert!(metrics
        .render()
        .lines()
        .any(|l| l == "wf_reconciles_total{result=\"not_found\"} 1"));
}

#[tokio::test]
async fn a_deleted_resource_ends_quietly_and_its_cached_memento_store_is_dropped() {
    let flows = flow_dir(&[("create.yaml", CREATE_INTERRUPTING)]);
    let (client, _) = cluster(vec![new_db("c1")]).await;
    let factory = ConfigMapMementoFactory::new(client.clone());
    let c = client.clone();
    let manager = WorkflowManager::<DbResource>::builder("db")
        .flow_dir(flows.path())
        .step("test.Noop", || Noop)
        .step("test.InterruptUntilFixed", || {
            InterruptUntilFixed(Arc::new(AtomicU32::new(1)))
        })
        .step("test.MarkRunning", move || {
            MarkRunning::new(c.clone(), Arc::default())
        })
        .memento_store(factory.clone())
        .build()
        .expect("manager");
    let reconciler = Reconciler::new(create_machine(&manager), manager, client.clone());
    let obj = resource(&client, "c1").await.object().clone();
    let labels: Vec<_> = drive(&reconciler, &obj)
        .await
        .iter()
        .map(Decision::label)
        .collect();
    assert_eq!(labels, ["transitioned", "completed", "stable"]);
    assert_eq!(factory.cached(), 1);

    Api::<Db>::namespaced(client.clone(), NS)
        .delete("c1", &Default::default())
        .await
        .expect("delete");
    let decision = reconciler.decide(&obj).await.expect("no error");
    assert_eq!(decision.label(), "not_found");
    assert_eq!(decision.action(), Action::await_change());
    assert_eq!(
        factory.cached(),
        0,
        "the deleted resource's store is forgotten"
    );
}

#[tokio::test]
async fn a_hard_error_goes_to_error_policy_which_requeues_after_the_configured_delay() {
    let flows = flow_dir(&[("create.yaml", CREATE_INTERRUPTING)]);
    // A state the machine knows nothing about: a setup error, not a retryable failure.
    let mut odd = db("odd");
    if let Some(status) = odd.status.as_mut() {
        status.cluster_status = "Resizing".into();
    }
    let (client, _) = cluster(vec![odd]).await;
    let manager = fixed_manager(&client, flows.path());
    let metrics = Arc::new(WorkflowMetrics::new());
    let reconciler = Reconciler::new(create_machine(&manager), manager, client.clone())
        .with_config(Config::default().error_requeue(Duration::from_secs(7)))
        .with_metrics(metrics.clone());
    let obj = Arc::new(resource(&client, "odd").await.object().clone());
    let err = reconciler
        .reconcile(obj.clone())
        .await
        .expect_err("no entry for the state");
    let text = err.to_string();
    assert!(text.contains("Resizing"), "{text}");
    assert!(text.contains("ns/odd"), "{text}");
    assert_eq!(
        reconciler.error_policy(obj, &err),
        Action::requeue(Duration::from_secs(7))
    );
    assert!(metrics
        .render()
        .lines()
        .any(|l| l == "wf_reconciles_total{result=\"error\"} 1"));
}

#[test]
fn requeue_decisions_table() {
    let ms = Duration::from_millis;
    let stable = decide(Ok(Reconciled::Stable {
        state: State::RUNNING,
    }))
    .expect("stable");
    assert_eq!(stable.action(), Action::await_change());
    let moved = decide(Ok(Reconciled::Transitioned {
        from: State::INIT,
        to: State::CREATING,
    }))
    .expect("transitioned");
    assert_eq!(moved.action(), Action::requeue(Duration::ZERO));
    let waiting = decide(Ok(Reconciled::Waiting {
        flow: "F".into(),
        step: "S".into(),
        recheck_after: ms(7),
    }))
    .expect("waiting");
    assert_eq!(waiting.action(), Action::requeue(ms(7)));
    let failed = decide(Err(wf_engine::Error::StepFailed {
        flow: "F".into(),
        step: "S".into(),
        seq: 1,
        attempt: 1,
        message: "boom".into(),
        retry_after: ms(3),
    }))
    .expect("retryable");
    assert_eq!(failed.action(), Action::requeue(ms(3)));
    assert_eq!(failed.reconciled, None);
    assert_eq!(failed.label(), "retry");
    let interrupted = decide(Ok(Reconciled::Interrupted {
        flow: "F".into(),
        step: "S".into(),
        reason: "MANY_RETRY".into(),
        message: "m".into(),
    }))
    .expect("interrupted");
    assert_eq!(interrupted.action(), Action::await_change());
    let recovered = decide(Ok(Reconciled::Recovered {
        state: State::CREATING,
    }))
    .expect("recovered");
    assert_eq!(recovered.action(), Action::requeue(Duration::ZERO));
    let setup = decide(Err(wf_engine::Error::Setup("bad".into())));
    assert!(setup.is_err());
}
