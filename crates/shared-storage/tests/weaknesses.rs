//! One regression test per weakness of the original operator (domain §6) that applies to
//! what we built, named `weakness_<n>_<what>`. Weaknesses covered elsewhere: 3, 4, 5, 11,
//! 13, 14, 15, 25, 27 (domain and step unit tests).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared_storage::crd::{annotations, MPDCluster};
use shared_storage::domain::InsType;
use shared_storage::domain::LoadMode;
use shared_storage::operator::OperatorBuilder;
use shared_storage::ports::sim::{SimConfig, SimOutcome, Simulation};
use shared_storage::ports::{
    ClusterStore, IdAllocator, InsPodSpec, PodManager, PodProgress, PortError, Ports, Progress,
};
use shared_storage::registration::{self, RESOURCE_TYPE};
use shared_storage::resource::MpdClusterResource;
use shared_storage::service::{ServiceConfig, SharedStorageService};
use shared_storage::status::{Leadership, SyncOutcome};
use support::{cluster, Harness, NAME, NS};
use wf_engine::{
    async_trait, FlowLoader, FlowStatus, Reconciled, ResourceKey, ResourceLocks, RetryPolicy,
    State, StateResource, YamlDirLoader, CANCELLED, MANY_RETRY,
};

// ---- Test doubles of the outside systems ----

/// A cluster store with another writer in front of it: before a write, the other writer
/// changes the stored object (`edit`), so the write's copy is stale. It meddles at most
/// `budget` times, and never twice in a row with the same copy (a writer that re-read
/// after the meddling gets through).
struct Meddler {
    inner: Arc<dyn ClusterStore>,
    sim: Simulation,
    edit: Box<dyn Fn(&mut MPDCluster) + Send + Sync>,
    budget: AtomicUsize,
    meddled: AtomicUsize,
    produced: Mutex<Option<String>>,
}

impl Meddler {
    fn new(
        sim: &Simulation,
        inner: Arc<dyn ClusterStore>,
        budget: usize,
        edit: impl Fn(&mut MPDCluster) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Meddler {
            inner,
            sim: sim.clone(),
            edit: Box::new(edit),
            budget: AtomicUsize::new(budget),
            meddled: AtomicUsize::new(0),
            produced: Mutex::new(None),
        })
    }

    /// Stops meddling.
    fn stop(&self) {
        self.budget.store(0, Ordering::SeqCst);
    }

    /// Meddles with every write from now on.
    fn start(&self) {
        self.budget.store(usize::MAX, Ordering::SeqCst);
    }

    /// How many writes were made stale.
    fn meddled(&self) -> usize {
        self.meddled.load(Ordering::SeqCst)
    }

    fn before_write(&self, cluster: &MPDCluster) {
        let mut produced = self.produced.lock().unwrap();
        if produced.is_some() && *produced == cluster.metadata.resource_version {
            return;
        }
        let took = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_ok();
        if !took {
            return;
        }
        let (ns, name) = (
            cluster.metadata.namespace.clone().unwrap_or_default(),
            cluster.metadata.name.clone().unwrap_or_default(),
        );
        if let Some(stored) = self.sim.edit_cluster(&ns, &name, |cr| (self.edit)(cr)) {
            *produced = stored.metadata.resource_version;
            self.meddled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl ClusterStore for Meddler {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        self.inner.get(namespace, name).await
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        self.inner.list().await
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.before_write(cluster);
        self.inner.update(cluster).await
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.before_write(cluster);
        self.inner.update_status(cluster).await
    }
}

/// A cluster store whose writes fail (`Unavailable`) while `failing` is set; reads work.
struct ReadOnlyWhenSet {
    inner: Arc<dyn ClusterStore>,
    failing: AtomicBool,
}

impl ReadOnlyWhenSet {
    fn unavailable() -> PortError {
        PortError::Unavailable {
            port: "clusters",
            message: "writes are down".into(),
        }
    }
}

#[async_trait]
impl ClusterStore for ReadOnlyWhenSet {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        self.inner.get(namespace, name).await
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        self.inner.list().await
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Self::unavailable());
        }
        self.inner.update(cluster).await
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Self::unavailable());
        }
        self.inner.update_status(cluster).await
    }
}

/// An id allocator that fails (`Unavailable`) the next `failures` calls.
struct FlakyIds {
    inner: Arc<dyn IdAllocator>,
    failures: AtomicUsize,
}

impl FlakyIds {
    fn fail_next(&self, calls: usize) {
        self.failures.store(calls, Ordering::SeqCst);
    }
}

#[async_trait]
impl IdAllocator for FlakyIds {
    async fn next_ids(&self, n: usize) -> Result<Vec<u64>, PortError> {
        let failed = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok();
        if failed {
            return Err(PortError::Unavailable {
                port: "ids",
                message: "ids are down".into(),
            });
        }
        self.inner.next_ids(n).await
    }
}

/// An id allocator that, once `hang` is set, never answers. It reports when a call
/// started hanging and whether the hanging call was dropped.
#[derive(Default)]
struct HangingIds {
    inner: Mutex<Option<Arc<dyn IdAllocator>>>,
    hang: AtomicBool,
    hanging_calls: AtomicUsize,
    entered: tokio::sync::Notify,
    dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped: proves the future holding it was dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl IdAllocator for HangingIds {
    async fn next_ids(&self, n: usize) -> Result<Vec<u64>, PortError> {
        if self.hang.load(Ordering::SeqCst) {
            let _guard = SetOnDrop(self.dropped.clone());
            self.hanging_calls.fetch_add(1, Ordering::SeqCst);
            self.entered.notify_one();
            std::future::pending::<()>().await;
        }
        let inner = self.inner.lock().unwrap().clone().expect("inner ids");
        inner.next_ids(n).await
    }
}

// ---- Helpers ----

fn workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

fn interrupt_annotations(h: &Harness) -> (Option<String>, Option<String>, Option<String>) {
    (
        h.annotation(annotations::INTERRUPT_REASON),
        h.annotation(annotations::INTERRUPT_PREVIOUS_STATUS),
        h.annotation(annotations::INTERRUPT_RECOVER),
    )
}

/// A cluster in `Interrupt` that asks for recovery back to `Running`, with no run stored.
fn interrupted_asking_for_recovery() -> MPDCluster {
    let mut cr = cluster(1);
    let notes = cr.metadata.annotations.get_or_insert_with(Default::default);
    notes.insert(annotations::INTERRUPT_REASON.into(), MANY_RETRY.into());
    notes.insert(
        annotations::INTERRUPT_PREVIOUS_STATUS.into(),
        "Running".into(),
    );
    notes.insert(annotations::INTERRUPT_RECOVER.into(), "T".into());
    cr.status
        .get_or_insert_with(Default::default)
        .cluster_status = "Interrupt".into();
    cr
}

/// Reconciles `namespace/name` until nothing asks to come back; returns its state.
async fn settle_other(h: &Harness, namespace: &str, name: &str) -> String {
    for _ in 0..3000 {
        let resource =
            MpdClusterResource::load(h.op.service.ports().clusters.clone(), namespace, name)
                .await
                .expect("resource");
        match h.op.machine.reconcile(&resource, &h.op.manager).await {
            Ok(done) if done.requeue_after().is_none() => break,
            Ok(_) | Err(_) => {}
        }
    }
    h.sim
        .cluster(namespace, name)
        .and_then(|c| c.status)
        .unwrap_or_default()
        .cluster_status
}

// ---- 1. A failed state write is an error ----

#[tokio::test]
async fn weakness_1_state_write_to_a_deleted_cluster_is_not_found() {
    let sim = Simulation::new(SimConfig::default());
    sim.insert_cluster(cluster(1));
    let resource = MpdClusterResource::load(sim.ports().clusters, NS, NAME)
        .await
        .unwrap();

    assert!(sim.delete_cluster(NS, NAME));
    let err = resource.update_state(State::RUNNING).await.unwrap_err();

    assert!(err.is_not_found(), "{err}");
    assert!(sim.cluster(NS, NAME).is_none());
}

#[tokio::test]
async fn weakness_1_state_write_that_fails_is_an_error_and_changes_nothing() {
    let sim = Simulation::new(SimConfig::default());
    sim.insert_cluster(cluster(1));
    let store = Arc::new(ReadOnlyWhenSet {
        inner: sim.ports().clusters,
        failing: AtomicBool::new(true),
    });
    let resource = MpdClusterResource::load(store, NS, NAME).await.unwrap();

    let result = resource.update_state(State::RUNNING).await;

    assert!(result.is_err(), "a failed write must not report success");
    let stored = sim.cluster(NS, NAME).unwrap();
    assert_eq!(stored.status.unwrap_or_default().cluster_status, "");
}

// ---- 2. The interrupt record is written although the object changed ----

#[tokio::test]
async fn weakness_2_interrupt_is_recorded_although_the_object_changed_since_the_flow_started() {
    let mut meddler = None;
    let mut h = Harness::created_with_ports(SimConfig::default(), 1, |sim, ports| {
        let m = Meddler::new(sim, ports.clusters.clone(), 0, |cr| {
            let notes = cr.metadata.annotations.get_or_insert_with(Default::default);
            let n: u32 = notes.get("meddled").map_or(0, |v| v.parse().unwrap());
            notes.insert("meddled".into(), (n + 1).to_string());
        });
        meddler = Some(m.clone());
        Ports {
            clusters: m,
            ..ports
        }
    })
    .await;
    let meddler = meddler.unwrap();

    meddler.start();
    h.edit(|cr| cr.spec.follower_num = 2);
    // Admitted while nodes are free (the admission refuses an AddRo no node can take);
    // they all go down before the flow places the RO.
    let moved =
        h.op.machine
            .reconcile(&h.resource().await, &h.op.manager)
            .await
            .unwrap();
    assert!(
        matches!(moved, wf_engine::Reconciled::Transitioned { .. }),
        "{moved:?}"
    );
    for node in h.sim.nodes() {
        h.sim.set_node_available(&node.name, false);
    }
    let state = h.settle().await;

    assert_eq!(state, "Interrupt", "{:?}", h.errors);
    assert_eq!(
        interrupt_annotations(&h),
        (
            Some("NO_AVAILABLE_NODE".into()),
            Some("AddRo".into()),
            Some("F".into())
        )
    );
    assert!(meddler.meddled() > 0, "every write met a changed object");
    let last = h.runtimes().await.pop().unwrap();
    assert_eq!(last.runtime.flow_name, "SharedStorageClusterAddRo");
    assert_eq!(last.runtime.flow_status, FlowStatus::FailedAndCompleted);
}

// ---- 12. Recovery without a run; the run-level retry counter is reset ----

#[tokio::test]
async fn weakness_12_recovery_with_no_stored_run_does_not_panic() {
    let h = Harness::new(SimConfig::default());
    h.sim.insert_cluster(interrupted_asking_for_recovery());

    let recovered = h.op.manager.check_recovery(&h.resource().await).await;

    assert_eq!(recovered.unwrap(), Some(State::RUNNING));
    assert_eq!(h.state(), "Running");
    assert_eq!(interrupt_annotations(&h), (None, None, None));
}

#[tokio::test]
async fn weakness_12_recovered_many_retry_flow_gets_a_fresh_run_level_retry_budget() {
    let mut ids = None;
    let mut h = Harness::created_with_ports(SimConfig::default(), 1, |_, ports| {
        let flaky = Arc::new(FlakyIds {
            inner: ports.ids.clone(),
            failures: AtomicUsize::new(0),
        });
        ids = Some(flaky.clone());
        Ports {
            ids: flaky,
            ..ports
        }
    })
    .await;
    let ids = ids.unwrap();
    ids.fail_next(usize::MAX);
    h.edit(|cr| cr.spec.follower_num = 2);
    assert_eq!(h.settle().await, "Interrupt");
    assert_eq!(
        h.annotation(annotations::INTERRUPT_REASON).as_deref(),
        Some(MANY_RETRY)
    );
    let interrupted = h.runtimes().await.pop().unwrap().runtime;
    assert!(interrupted.retry_times > 0);

    ids.fail_next(0);
    h.annotate(annotations::INTERRUPT_RECOVER, "T");
    let recovered = h.op.manager.check_recovery(&h.resource().await).await;

    assert_eq!(recovered.unwrap(), Some(State::new("AddRo")));
    let retryable = h.runtimes().await.pop().unwrap().runtime;
    assert_eq!(retryable.flow_status, FlowStatus::Failed);
    assert_eq!(retryable.retry_times, 0, "run-level counter reset");
    assert!(retryable.running_steps.iter().all(|s| s.retry_times == 0));

    // One more failed step try (all three per-call retries fail) does not re-interrupt.
    h.errors.clear();
    ids.fail_next(3);
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.errors.len(), 1, "{:?}", h.errors);
    assert_eq!(h.of_type("ro").len(), 2);
}

// ---- 16. A deleted cluster ends quietly ----

#[tokio::test]
async fn weakness_16_reconcile_of_a_deleted_cluster_is_not_found_and_runs_nothing() {
    let h = Harness::created(SimConfig::default(), 1).await;
    let held = h.resource().await;
    h.edit(|cr| cr.metadata.finalizers = None);
    assert!(h.sim.delete_cluster(NS, NAME));
    h.sim.clear_call_log();

    let loaded = MpdClusterResource::load(h.op.service.ports().clusters.clone(), NS, NAME).await;
    let reconciled = h.op.machine.reconcile(&held, &h.op.manager).await;

    assert!(loaded.unwrap_err().is_not_found());
    assert!(held.is_cancelled().await);
    match reconciled {
        Err(wf_engine::Error::Resource(e)) => assert!(e.is_not_found(), "{e}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let touched: BTreeSet<_> = h.sim.call_log().iter().map(|c| (c.port, c.op)).collect();
    assert_eq!(touched, BTreeSet::from([("clusters", "get")]));
}

// ---- 17. A bad setup is an error, not a panic ----

#[test]
fn weakness_17_bad_flow_directory_is_an_error_naming_it() {
    let missing = std::env::temp_dir().join(format!("no-flows-here-{}", std::process::id()));

    let err = OperatorBuilder::new(Simulation::default().ports(), &missing)
        .build()
        .unwrap_err();

    let shown = err.to_string();
    assert!(
        shown.contains(&missing.join(RESOURCE_TYPE).display().to_string()),
        "{shown}"
    );
}

#[test]
fn weakness_17_flow_naming_an_unregistered_class_is_an_error_naming_it() {
    let root = std::env::temp_dir().join(format!("stale-flows-{}", std::process::id()));
    let dir = root.join(RESOURCE_TYPE);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Stale.yaml"),
        "flowName: Stale\nsteps:\n  - className: workflow_shared.AddToClusterManager\n    stepName: AddToClusterManager\n",
    )
    .unwrap();

    let result = OperatorBuilder::new(Simulation::default().ports(), &root).build();
    std::fs::remove_dir_all(&root).unwrap();

    let shown = result.unwrap_err().to_string();
    assert!(shown.contains("AddToClusterManager"), "{shown}");
}

// ---- 18. Every class the flows name is registered ----

#[test]
fn weakness_18_every_class_named_by_the_shared_flows_is_registered() {
    let catalog = YamlDirLoader::new(workflows(), RESOURCE_TYPE)
        .load(&RetryPolicy::default())
        .unwrap();
    let registered: BTreeSet<String> = registration::class_names().collect();
    let op = OperatorBuilder::new(Simulation::default().ports(), workflows())
        .build()
        .unwrap();

    let used: BTreeSet<String> = catalog
        .used_classes()
        .into_iter()
        .map(String::from)
        .collect();
    let unregistered: Vec<_> = used.difference(&registered).collect();
    assert!(unregistered.is_empty(), "{unregistered:?}");
    let in_operator: BTreeSet<String> = op
        .manager
        .registry()
        .class_names()
        .map(String::from)
        .collect();
    assert!(registered.is_subset(&in_operator));
    for tr in registration::TRANSLATIONS {
        assert!(
            catalog.get(tr.flow).is_some(),
            "flow {} has no YAML",
            tr.flow
        );
    }
}

// ---- 19. Bounded growth ----

#[tokio::test]
async fn weakness_19_stored_runs_stay_within_retention_after_many_flows() {
    let mut h = Harness::created(SimConfig::default(), 1).await;

    for _ in 0..15 {
        h.annotate(annotations::RESTART_CLUSTER, "T");
        assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    }

    assert_eq!(h.flows_run().len(), 16);
    let runtimes = h.runtimes().await;
    let uncompleted = runtimes
        .iter()
        .filter(|r| !r.runtime.flow_status.is_finished())
        .count();
    let config = h.op.manager.config();
    assert!(
        runtimes.len() <= config.retention + uncompleted,
        "{} runs stored, retention {}",
        runtimes.len(),
        config.retention
    );
    let workflow =
        h.op.manager
            .resource_workflow(&h.resource().await)
            .await
            .unwrap();
    let bytes: usize = workflow.memento_entries().values().map(String::len).sum();
    assert!(bytes <= config.byte_budget);
    assert!(
        h.op.machine.locks().is_empty(),
        "idle lock entries are freed"
    );
}

// ---- 20. Same name, different namespaces ----

#[tokio::test]
async fn weakness_20_same_name_in_another_namespace_reconciles_independently() {
    let h = Harness::created(SimConfig::default(), 1).await;
    let pods_before = h.sim.pods(&h.cluster_ref());
    let mut twin = cluster(1);
    twin.metadata.namespace = Some("other".into());
    h.sim.insert_cluster(twin);

    let held = h.op.machine.locks().lock(&ResourceKey::new(NS, NAME)).await;
    let state = tokio::time::timeout(Duration::from_secs(30), settle_other(&h, "other", NAME))
        .await
        .expect("the lock of default/c1 does not block other/c1");

    assert_eq!(state, "Running");
    let twin_ref = shared_storage::ports::ClusterRef::new("other", NAME);
    assert_eq!(h.sim.pods(&twin_ref).len(), 2);
    assert_eq!(h.sim.pods(&h.cluster_ref()), pods_before);
    assert_eq!(h.state(), "Running");
    let twin_resource =
        MpdClusterResource::load(h.op.service.ports().clusters.clone(), "other", NAME)
            .await
            .unwrap();
    let twin_runs =
        h.op.manager
            .resource_workflow(&twin_resource)
            .await
            .unwrap()
            .runtimes()
            .unwrap();
    assert_eq!(twin_runs.len(), 1);
    drop(held);
    assert_eq!(
        h.runtimes().await.len(),
        1,
        "each namespace has its own runs"
    );
}

// ---- 21. Conflicts are re-read and re-applied, nothing is clobbered ----

#[tokio::test]
async fn weakness_21_save_reapplies_on_conflict_and_keeps_the_concurrent_change() {
    let h = Harness::created(SimConfig::default(), 1).await;
    let ro = h.of_type("ro")[0].ins_id.clone();
    let failed_ro = ro.clone();
    let meddler = Meddler::new(&h.sim, h.sim.ports().clusters, 1, move |cr| {
        cr.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("note".into(), "from the user".into());
        let status = cr.status.as_mut().unwrap();
        let entry = status.db_instance_status.get_mut(&failed_ro).unwrap();
        entry.current_state.state = "FAILED".into();
        entry.current_state.reason = "reported by the CM".into();
    });
    let service = SharedStorageService::new(
        Ports {
            clusters: meddler.clone(),
            ..h.sim.ports()
        },
        ServiceConfig::default(),
    );
    let loaded = service
        .load(&h.cluster_ref(), LoadMode::default())
        .await
        .unwrap();
    let mut model = loaded.model;
    model.ro_replicas = 2;
    model.temp_ro_ids.insert("9999".into(), "10000".into());

    service.save(&model).await.unwrap();

    assert_eq!(meddler.meddled(), 1);
    assert!(h
        .sim
        .call_log()
        .iter()
        .any(|c| c.port == "clusters"
            && matches!(&c.outcome, SimOutcome::Error(e) if e.is_conflict())));
    let cr = h.cr();
    assert_eq!(cr.spec.follower_num, 2, "the save's change");
    assert!(h
        .annotation(annotations::TEMP_RO_IDS)
        .unwrap()
        .contains("10000"));
    assert_eq!(h.annotation("note").as_deref(), Some("from the user"));
    assert_eq!(h.instances()[&ro].current_state.state, "FAILED");
}

#[tokio::test]
async fn weakness_21_flow_completes_while_another_writer_changes_the_object_before_every_write() {
    let mut meddler = None;
    let mut h = Harness::created_with_ports(SimConfig::default(), 1, |sim, ports| {
        let m = Meddler::new(sim, ports.clusters.clone(), 0, |cr| {
            let notes = cr.metadata.annotations.get_or_insert_with(Default::default);
            let n: usize = notes.get("meddled").map_or(0, |v| v.parse().unwrap());
            notes.insert("meddled".into(), (n + 1).to_string());
        });
        meddler = Some(m.clone());
        Ports {
            clusters: m,
            ..ports
        }
    })
    .await;
    let meddler = meddler.unwrap();

    meddler.start();
    h.edit(|cr| cr.spec.follower_num = 2);
    let state = h.settle().await;
    meddler.stop();

    assert_eq!(state, "Running", "{:?}", h.errors);
    assert_eq!(h.of_type("ro").len(), 2);
    assert!(meddler.meddled() > 5);
    assert_eq!(
        h.annotation("meddled"),
        Some(meddler.meddled().to_string()),
        "no write clobbered the other writer's changes"
    );
    h.assert_no_step_completed_twice();
}

// ---- 21. A failover reported mid-step survives the step's save ----

/// A gate in front of a port call: once armed, the next call that gets through stops there
/// until released.
#[derive(Clone, Default)]
struct Gate(Arc<GateInner>);

#[derive(Default)]
struct GateInner {
    armed: AtomicBool,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Gate {
    fn arm(&self) {
        self.0.armed.store(true, Ordering::SeqCst);
    }

    /// Resolves once a call stopped at the gate.
    async fn entered(&self) {
        self.0.entered.notified().await;
    }

    fn release(&self) {
        self.0.release.notify_one();
    }

    async fn pass(&self) {
        if self.0.armed.swap(false, Ordering::SeqCst) {
            self.0.entered.notify_one();
            self.0.release.notified().await;
        }
    }
}

/// Pods whose first `Ready` answer after the gate is armed waits at the gate: the step
/// has loaded the cluster and is about to save the pod's node.
struct GatedPods {
    inner: Arc<dyn PodManager>,
    gate: Gate,
}

#[async_trait]
impl PodManager for GatedPods {
    async fn ensure_pod(&self, spec: &InsPodSpec) -> Result<PodProgress, PortError> {
        let progress = self.inner.ensure_pod(spec).await?;
        if matches!(progress, PodProgress::Ready { .. }) {
            self.gate.pass().await;
        }
        Ok(progress)
    }

    async fn delete_pod(&self, namespace: &str, pod_name: &str) -> Result<Progress, PortError> {
        self.inner.delete_pod(namespace, pod_name).await
    }

    async fn label_ins_type(
        &self,
        namespace: &str,
        pod_name: &str,
        ins_type: InsType,
    ) -> Result<(), PortError> {
        self.inner
            .label_ins_type(namespace, pod_name, ins_type)
            .await
    }
}

/// A cluster store that records the leader of every status it writes.
struct LeaderLog {
    inner: Arc<dyn ClusterStore>,
    leaders: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ClusterStore for LeaderLog {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        self.inner.get(namespace, name).await
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        self.inner.list().await
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.inner.update(cluster).await
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        let written = self.inner.update_status(cluster).await?;
        let leader = written
            .status
            .clone()
            .unwrap_or_default()
            .leader_instance_id;
        self.leaders.lock().unwrap().push(leader);
        Ok(written)
    }
}

/// A running cluster with one RO whose pods are gated and whose status writes are logged.
async fn gated_cluster() -> (Harness, Gate, Arc<Mutex<Vec<String>>>) {
    let gate = Gate::default();
    let leaders = Arc::new(Mutex::new(Vec::new()));
    let h = Harness::created_with_ports(SimConfig::default(), 1, |_, ports| Ports {
        pods: Arc::new(GatedPods {
            inner: ports.pods.clone(),
            gate: gate.clone(),
        }),
        clusters: Arc::new(LeaderLog {
            inner: ports.clusters.clone(),
            leaders: leaders.clone(),
        }),
        ..ports
    })
    .await;
    (h, gate, leaders)
}

#[tokio::test]
async fn weakness_21_a_failover_recorded_mid_step_is_still_the_leader_after_the_steps_save() {
    let (mut h, gate, leaders) = gated_cluster().await;
    let ro = h.of_type("ro")[0].clone();
    // A writer outside the flows' lock (another process, or a monitor wired without the
    // state machine's locks): it records the failover while the step runs.
    let outside = h.monitor_with_locks(ResourceLocks::new(), Leadership::always());
    let (sim, cluster_ref) = (h.sim.clone(), h.cluster_ref());
    gate.arm();
    // AddRo keeps HA on: the CM may fail over while it runs.
    h.edit(|cr| cr.spec.follower_num = 2);

    let failover = async {
        gate.entered().await;
        assert!(sim.promote(&cluster_ref, &ro.pod_name));
        let outcome = outside.sync(&cluster_ref).await.unwrap();
        assert_eq!(outcome, SyncOutcome::Updated { rw_changed: true });
        let recorded_at = leaders.lock().unwrap().len();
        assert_eq!(leaders.lock().unwrap().last(), Some(&ro.ins_id));
        gate.release();
        recorded_at
    };
    let (state, recorded_at) = tokio::join!(h.settle(), failover);

    assert_eq!(state, "Running", "{:?}", h.errors);
    assert_eq!(
        h.flows_run().last().map(String::as_str),
        Some("SharedStorageClusterAddRo")
    );
    let after: Vec<String> = leaders.lock().unwrap()[recorded_at..].to_vec();
    assert!(!after.is_empty(), "the step saved after the failover");
    assert!(
        after.iter().all(|leader| *leader == ro.ins_id),
        "a save wrote a stale leader after the failover: {after:?}"
    );
    assert_eq!(h.leader(), ro.ins_id);
    assert_eq!(h.instances()[&ro.ins_id].ins_type, "rw");
    assert_eq!(h.of_type("ro").len(), 2, "the old RW and the added RO");
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn weakness_21_the_monitor_waits_for_a_running_step_and_records_the_failover_after_it() {
    let (mut h, gate, leaders) = gated_cluster().await;
    let ro = h.of_type("ro")[0].clone();
    let monitor = h.monitor(Leadership::always());
    let (sim, cluster_ref) = (h.sim.clone(), h.cluster_ref());
    gate.arm();
    h.edit(|cr| cr.spec.follower_num = 2);

    let failover = async {
        gate.entered().await;
        assert!(sim.promote(&cluster_ref, &ro.pod_name));
        let writes_mid_step = leaders.lock().unwrap().len();
        let task = tokio::spawn({
            let (monitor, cluster_ref) = (monitor.clone(), cluster_ref.clone());
            async move { monitor.sync(&cluster_ref).await }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished(), "the monitor waits for the flow's lock");
        assert_eq!(
            leaders.lock().unwrap().len(),
            writes_mid_step,
            "nothing written mid-step"
        );
        gate.release();
        (writes_mid_step, task.await.unwrap())
    };
    let (state, (writes_mid_step, outcome)) = tokio::join!(h.settle(), failover);

    assert_eq!(state, "Running", "{:?}", h.errors);
    assert!(matches!(
        outcome,
        Ok(SyncOutcome::Updated { rw_changed: true })
    ));
    let after: Vec<String> = leaders.lock().unwrap()[writes_mid_step..].to_vec();
    let first_new = after
        .iter()
        .position(|leader| *leader == ro.ins_id)
        .expect("the failover is recorded");
    assert!(
        first_new > 0,
        "the step saved before the monitor wrote: {after:?}"
    );
    assert!(
        after[first_new..].iter().all(|leader| *leader == ro.ins_id),
        "nothing reverted the failover: {after:?}"
    );
    assert_eq!(h.leader(), ro.ins_id);
    h.assert_no_step_completed_twice();
}

// ---- 22. Waiting steps return ----

#[tokio::test]
async fn weakness_22_reconcile_of_a_creating_cluster_returns_waiting_instead_of_blocking() {
    let h = Harness::new(SimConfig {
        ready_after_polls: 5,
        ..SimConfig::default()
    });
    h.sim.insert_cluster(cluster(1));

    let started = Instant::now();
    let reconciled = h.reconcile().await.unwrap();

    assert!(started.elapsed() < Duration::from_secs(2));
    match reconciled {
        Reconciled::Waiting { flow, .. } => assert_eq!(flow, "CreateSharedStorageCluster"),
        other => panic!("expected Waiting, got {other:?}"),
    }
    assert_eq!(h.state(), "Creating");
    let run = h.runtimes().await.pop().unwrap().runtime;
    assert_eq!(run.flow_status, FlowStatus::Waiting);
}

// ---- 23. Cancellation stops the step ----

#[tokio::test(start_paused = true)]
async fn weakness_23_cancelling_a_hanging_step_interrupts_the_flow_and_drops_the_step() {
    let hanging = Arc::new(HangingIds::default());
    let gate = hanging.clone();
    let h = Harness::with_ports(SimConfig::default(), move |_, ports| {
        *gate.inner.lock().unwrap() = Some(ports.ids.clone());
        Ports { ids: gate, ..ports }
    });
    h.sim.insert_cluster(cluster(1));
    hanging.hang.store(true, Ordering::SeqCst);

    let (reconciled, ()) = tokio::join!(h.reconcile(), async {
        hanging.entered.notified().await;
        h.annotate(annotations::CANCELLED, "true");
    });

    match reconciled.unwrap() {
        Reconciled::Interrupted { reason, .. } => assert_eq!(reason, CANCELLED),
        other => panic!("expected an interrupt, got {other:?}"),
    }
    assert!(
        hanging.dropped.load(Ordering::SeqCst),
        "the step's future was dropped"
    );
    assert_eq!(hanging.hanging_calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.state(), "Interrupt");
    assert_eq!(
        h.annotation(annotations::INTERRUPT_REASON).as_deref(),
        Some(CANCELLED)
    );
}

#[tokio::test]
async fn weakness_23_cancelling_a_waiting_flow_interrupts_it() {
    let h = Harness::new(SimConfig {
        ready_after_polls: 1000,
        ..SimConfig::default()
    });
    h.sim.insert_cluster(cluster(1));
    assert!(matches!(
        h.reconcile().await.unwrap(),
        Reconciled::Waiting { .. }
    ));

    h.annotate(annotations::CANCELLED, "true");
    let reconciled = h.reconcile().await.unwrap();

    match reconciled {
        Reconciled::Interrupted { reason, .. } => assert_eq!(reason, CANCELLED),
        other => panic!("expected an interrupt, got {other:?}"),
    }
    assert_eq!(h.state(), "Interrupt");
    assert_eq!(
        h.annotation(annotations::INTERRUPT_PREVIOUS_STATUS)
            .as_deref(),
        Some("Creating")
    );
}

#[tokio::test]
async fn weakness_23_recovery_after_a_cancel_clears_the_cancel_request_and_finishes_the_flow() {
    let mut h = Harness::new(SimConfig {
        ready_after_polls: 3,
        ..SimConfig::default()
    });
    h.sim.insert_cluster(cluster(1));
    assert!(matches!(
        h.reconcile().await.unwrap(),
        Reconciled::Waiting { .. }
    ));
    h.annotate(annotations::CANCELLED, "true");
    assert_eq!(h.settle().await, "Interrupt");

    h.annotate(annotations::INTERRUPT_RECOVER, "T");
    let state = h.settle().await;

    assert_eq!(state, "Running", "{:?}", h.errors);
    assert_eq!(h.annotation(annotations::CANCELLED), None);
    assert_eq!(interrupt_annotations(&h), (None, None, None));
    assert_eq!(h.of_type("ro").len(), 1);
}

// ---- 28. Recovery that cannot write is an error ----

#[tokio::test]
async fn weakness_28_recovery_that_cannot_write_is_an_error_and_can_be_retried() {
    let mut store = None;
    let h = Harness::with_ports(SimConfig::default(), |_, ports| {
        let s = Arc::new(ReadOnlyWhenSet {
            inner: ports.clusters.clone(),
            failing: AtomicBool::new(false),
        });
        store = Some(s.clone());
        Ports {
            clusters: s,
            ..ports
        }
    });
    let store = store.unwrap();
    h.sim.insert_cluster(interrupted_asking_for_recovery());

    store.failing.store(true, Ordering::SeqCst);
    let recovery = h.op.manager.check_recovery(&h.resource().await).await;
    let reconcile = h.reconcile().await;

    assert!(recovery.is_err(), "{recovery:?}");
    assert!(reconcile.is_err(), "{reconcile:?}");
    assert_eq!(h.state(), "Interrupt");
    assert_eq!(
        h.annotation(annotations::INTERRUPT_RECOVER).as_deref(),
        Some("T"),
        "the request stays, so a later reconcile retries"
    );

    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        h.reconcile().await.unwrap(),
        Reconciled::Recovered {
            state: State::RUNNING
        }
    );
    assert_eq!(h.state(), "Running");
}

// ---- 29. Passwords stay secret ----

#[tokio::test]
async fn weakness_29_passwords_appear_in_no_debug_output_call_log_or_object() {
    let h = Harness::created(SimConfig::default(), 1).await;
    let accounts = h.sim.accounts(&h.cluster_ref());
    assert_eq!(accounts.len(), 2);

    let call_log = format!("{:?}", h.sim.call_log());
    let object = serde_json::to_string(&h.cr()).unwrap();
    let runs = format!("{:?}", h.runtimes().await);

    for account in &accounts {
        assert!(!account.password.is_empty());
        assert!(!format!("{account:?}").contains(&account.password));
        assert!(!call_log.contains(&account.password), "{}", account.name);
        assert!(!object.contains(&account.password), "{}", account.name);
        assert!(!runs.contains(&account.password), "{}", account.name);
    }
}
