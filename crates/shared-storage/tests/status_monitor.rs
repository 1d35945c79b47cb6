//! The status monitor on the simulators: the cluster manager's reports reach the
//! MPDCluster, on the leader only, serialised with the flows.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared_storage::domain::{triggers, InsType};
use shared_storage::ports::sim::{port, SimConfig};
use shared_storage::ports::{
    ClusterRef, CmInstance, CmRole, InsPodSpec, PodManager, PodProgress, PortError, Ports, Progress,
};
use shared_storage::status::{
    Leadership, MonitorConfig, Skip, StatusError, StatusMonitor, SyncOutcome,
};
use support::{cluster, Harness, NS};
use wf_engine::{async_trait, ResourceKey};

async fn running(ros: i32) -> Harness {
    Harness::created(SimConfig::default(), ros).await
}

/// A monitor that has already recorded the states of a freshly created cluster, so the
/// next fold sees only what the test changes.
async fn synced(h: &Harness) -> StatusMonitor {
    let monitor = h.monitor(Leadership::always());
    monitor.sync(&h.cluster_ref()).await.unwrap();
    monitor
}

/// The stored resourceVersion: unchanged means nothing was written.
fn rv(h: &Harness) -> Option<String> {
    h.cr().metadata.resource_version
}

fn label(h: &Harness, pod: &str) -> Option<InsType> {
    h.sim.pod(NS, pod).and_then(|p| p.label)
}

#[tokio::test]
async fn an_ro_the_cm_reports_failed_is_recorded_then_rebuilt_to_running_with_a_new_incarnation() {
    let mut h = running(2).await;
    let monitor = h.monitor(Leadership::always());
    let ro = h.of_type("ro")[0].clone();
    assert!(h.sim.fail_instance(&h.cluster_ref(), &ro.pod_name));

    let outcome = monitor.sync(&h.cluster_ref()).await.unwrap();

    assert_eq!(outcome, SyncOutcome::Updated { rw_changed: false });
    assert_eq!(h.instances()[&ro.ins_id].current_state.state, "FAILED");
    assert!(triggers::rebuild_ro(&h.cr()), "the RebuildRo trigger fires");
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert!(
        h.flows_run()
            .contains(&"SharedStorageClusterRebuildRo".to_owned()),
        "{:?}",
        h.flows_run()
    );
    let slot: Vec<_> = h
        .of_type("ro")
        .into_iter()
        .filter(|i| i.physical_ins_id == ro.physical_ins_id)
        .collect();
    assert_eq!(slot.len(), 1, "one RO in the failed RO's slot");
    assert_ne!(slot[0].ins_id, ro.ins_id, "a new incarnation");
    assert!(!h.instances().contains_key(&ro.ins_id));
    assert_eq!(h.of_type("ro").len(), 2);
    // The next resync finds the new incarnation running: nothing fires any more.
    monitor.sync(&h.cluster_ref()).await.unwrap();
    assert_eq!(
        h.instances()[&slot[0].ins_id].current_state.state,
        "RUNNING"
    );
    assert!(!triggers::rebuild_ro(&h.cr()));
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn a_failover_the_cm_reports_moves_the_leader_and_relabels_the_two_pods() {
    let h = running(2).await;
    let monitor = synced(&h).await;
    let old = h.instances()[&h.leader()].clone();
    let ro = h.of_type("ro")[0].clone();
    let other = h.of_type("ro")[1].clone();
    assert!(h.sim.promote(&h.cluster_ref(), &ro.pod_name));
    let labels_before = h.sim.count(port::PODS, "label_ins_type");

    let outcome = monitor.sync(&h.cluster_ref()).await.unwrap();

    assert_eq!(outcome, SyncOutcome::Updated { rw_changed: true });
    let status = h.cr().status.unwrap();
    assert_eq!(status.leader_instance_id, ro.ins_id);
    assert_eq!(status.leader_instance_host, ro.node_name);
    assert_eq!(status.db_instance_status[&ro.ins_id].ins_type, "rw");
    assert_eq!(status.db_instance_status[&old.ins_id].ins_type, "ro");
    assert_eq!(status.db_instance_status[&other.ins_id].ins_type, "ro");
    assert_eq!(label(&h, &ro.pod_name), Some(InsType::Rw));
    assert_eq!(label(&h, &old.pod_name), Some(InsType::Ro));
    assert_eq!(
        h.sim.count(port::PODS, "label_ins_type") - labels_before,
        2,
        "only the old and the new RW are relabelled"
    );
}

#[tokio::test]
async fn a_report_without_news_writes_nothing() {
    let h = running(1).await;
    let monitor = synced(&h).await;
    let writes = h.sim.count(port::CLUSTERS, "update_status");
    let rv = h.cr().metadata.resource_version;

    assert_eq!(
        monitor.sync(&h.cluster_ref()).await.unwrap(),
        SyncOutcome::Unchanged
    );

    assert_eq!(h.sim.count(port::CLUSTERS, "update_status"), writes);
    assert_eq!(h.cr().metadata.resource_version, rv);
}

#[tokio::test]
async fn a_follower_applies_nothing_until_it_leads() {
    let h = running(1).await;
    let (leading, leadership) = tokio::sync::watch::channel(false);
    let monitor = h.monitor(Leadership::from_watch(leadership));
    let ro = h.of_type("ro")[0].clone();
    let old_leader = h.leader();
    h.sim.promote(&h.cluster_ref(), &ro.pod_name);
    let before = rv(&h);

    assert!(matches!(
        monitor.sync(&h.cluster_ref()).await,
        Err(StatusError::NotLeader)
    ));
    assert!(matches!(
        monitor
            .record_rw(&h.cluster_ref(), "192.168.0.9:5432")
            .await,
        Err(StatusError::NotLeader)
    ));
    assert_eq!(monitor.resync_all().await.unwrap().updated.len(), 0);
    assert_eq!(rv(&h), before, "nothing written");
    assert_eq!(h.leader(), old_leader);

    leading.send(true).unwrap();
    assert_eq!(
        monitor.sync(&h.cluster_ref()).await.unwrap(),
        SyncOutcome::Updated { rw_changed: true }
    );
    assert_eq!(h.leader(), ro.ins_id);
}

#[tokio::test]
async fn an_endpoint_unknown_to_the_cluster_fails_the_fold_and_writes_nothing() {
    let h = running(1).await;
    let monitor = synced(&h).await;
    let ro = h.of_type("ro")[0].clone();
    h.sim.fail_instance(&h.cluster_ref(), &ro.pod_name);
    let stranger = CmInstance {
        pod_name: "stranger".into(),
        host_ip: "10.9.9.9".into(),
        client_ip: "192.168.9.9".into(),
        host_name: "node-9".into(),
        port: 5432,
        role: Some(CmRole::Ro),
    };
    let cm = h.sim.ports().cluster_manager;
    cm.add_ins(&h.cluster_ref(), &stranger).await.unwrap();
    let before = rv(&h);

    let err = monitor.sync(&h.cluster_ref()).await.unwrap_err();

    assert!(err.to_string().contains("192.168.9.9:5432"), "{err}");
    assert_eq!(
        rv(&h),
        before,
        "all or nothing: the FAILED RO is not recorded"
    );
    let err = monitor
        .record_rw(&h.cluster_ref(), "192.168.9.9:5432")
        .await
        .unwrap_err();
    assert!(matches!(err, StatusError::Domain(_)), "{err}");
    assert_eq!(rv(&h), before, "nothing written");
}

#[tokio::test]
async fn an_engine_status_report_records_state_reason_and_start_time() {
    let h = running(1).await;
    let monitor = synced(&h).await;
    let ro = h.of_type("ro")[0].clone();
    let endpoint = format!("{}:{}", ro.host_client_ip, ro.net_info.working_port);

    let outcome = monitor
        .record_engine_status(&h.cluster_ref(), &endpoint, "STOPPING", "maintenance")
        .await
        .unwrap();

    assert_eq!(outcome, SyncOutcome::Updated { rw_changed: false });
    let entry = &h.instances()[&ro.ins_id];
    assert_eq!(entry.current_state.state, "STOPPING");
    assert_eq!(entry.current_state.reason, "maintenance");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&entry.current_state.start_at).is_ok(),
        "{:?}",
        entry.current_state
    );
    assert_eq!(entry.last_state.state, "RUNNING");
    assert_eq!(
        monitor
            .record_engine_status(&h.cluster_ref(), &endpoint, "STOPPING", "again")
            .await
            .unwrap(),
        SyncOutcome::Unchanged
    );
}

#[tokio::test]
async fn clusters_of_another_type_or_operator_or_not_created_yet_are_left_alone() {
    let h = running(1).await;
    let monitor = synced(&h).await;
    let mut local = cluster(1);
    local.metadata.name = Some("local".into());
    local.spec.db_cluster_type = "local".into();
    local.status = h.cr().status;
    let mut other = local.clone();
    other.metadata.name = Some("other".into());
    other.spec.db_cluster_type = "share".into();
    other.spec.operator_name = "someone-else".into();
    let mut fresh = cluster(1);
    fresh.metadata.name = Some("fresh".into());
    for cr in [local, other, fresh] {
        h.sim.insert_cluster(cr);
    }
    let ro = h.of_type("ro")[0].clone();
    h.sim.fail_instance(&h.cluster_ref(), &ro.pod_name);

    let report = monitor.resync_all().await.unwrap();

    assert_eq!(report.updated, vec![h.cluster_ref()]);
    assert_eq!(report.skipped, 3);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let skipped = |name: &str| {
        let monitor = monitor.clone();
        let cluster = ClusterRef::new(NS, name);
        async move { monitor.sync(&cluster).await.unwrap() }
    };
    assert_eq!(
        skipped("local").await,
        SyncOutcome::Skipped(Skip::NotShared)
    );
    assert_eq!(
        skipped("other").await,
        SyncOutcome::Skipped(Skip::OtherOperator)
    );
    assert_eq!(
        skipped("fresh").await,
        SyncOutcome::Skipped(Skip::NotCreated)
    );
    assert!(matches!(
        monitor.sync(&ClusterRef::new(NS, "missing")).await,
        Err(StatusError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_fold_gives_up_on_a_cluster_a_flow_holds_and_writes_nothing() {
    let h = running(1).await;
    let monitor = StatusMonitor::new(
        h.op.service.clone(),
        h.op.machine.locks().clone(),
        Leadership::always(),
        MonitorConfig {
            lock_timeout: Duration::from_millis(20),
            ..MonitorConfig::default()
        },
    );
    let ro = h.of_type("ro")[0].clone();
    h.sim.promote(&h.cluster_ref(), &ro.pod_name);
    let before = rv(&h);
    let held =
        h.op.machine
            .locks()
            .lock(&ResourceKey::new(NS, support::NAME))
            .await;

    let err = monitor.sync(&h.cluster_ref()).await.unwrap_err();

    assert!(matches!(err, StatusError::Busy { .. }), "{err}");
    assert_eq!(rv(&h), before, "nothing written");
    drop(held);
    assert_eq!(
        monitor.sync(&h.cluster_ref()).await.unwrap(),
        SyncOutcome::Updated { rw_changed: true }
    );
}

/// Pods whose `label_ins_type` fails while `failing` is set.
struct FlakyLabels {
    inner: Arc<dyn PodManager>,
    failing: Arc<AtomicBool>,
}

#[async_trait]
impl PodManager for FlakyLabels {
    async fn ensure_pod(&self, spec: &InsPodSpec) -> Result<PodProgress, PortError> {
        self.inner.ensure_pod(spec).await
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
        if self.failing.load(Ordering::SeqCst) {
            return Err(PortError::Rejected {
                port: "pods",
                message: "labels refused".into(),
            });
        }
        self.inner
            .label_ins_type(namespace, pod_name, ins_type)
            .await
    }
}

#[tokio::test]
async fn labels_that_could_not_be_written_are_written_at_the_next_fold() {
    let failing = Arc::new(AtomicBool::new(false));
    let h = Harness::created_with_ports(SimConfig::default(), 2, |_, ports| Ports {
        pods: Arc::new(FlakyLabels {
            inner: ports.pods.clone(),
            failing: failing.clone(),
        }),
        ..ports
    })
    .await;
    let monitor = synced(&h).await;
    let old = h.instances()[&h.leader()].clone();
    let ro = h.of_type("ro")[0].clone();
    h.sim.promote(&h.cluster_ref(), &ro.pod_name);
    failing.store(true, Ordering::SeqCst);

    assert_eq!(
        monitor.sync(&h.cluster_ref()).await.unwrap(),
        SyncOutcome::Updated { rw_changed: true },
        "the status is written although the labels are not"
    );
    assert_eq!(h.leader(), ro.ins_id);
    assert_ne!(label(&h, &ro.pod_name), Some(InsType::Rw));

    failing.store(false, Ordering::SeqCst);
    assert_eq!(
        monitor.sync(&h.cluster_ref()).await.unwrap(),
        SyncOutcome::Unchanged
    );
    assert_eq!(label(&h, &ro.pod_name), Some(InsType::Rw));
    assert_eq!(label(&h, &old.pod_name), Some(InsType::Ro));
    for other in h.of_type("ro") {
        assert_eq!(label(&h, &other.pod_name), Some(InsType::Ro));
    }
    let calls = h.sim.count(port::PODS, "label_ins_type");
    monitor.sync(&h.cluster_ref()).await.unwrap();
    assert_eq!(
        h.sim.count(port::PODS, "label_ins_type"),
        calls,
        "once written, labels are left alone"
    );
}

#[tokio::test]
async fn the_running_monitor_resyncs_at_start_and_folds_a_triggered_cluster() {
    let h = running(1).await;
    let monitor = StatusMonitor::new(
        h.op.service.clone(),
        h.op.machine.locks().clone(),
        Leadership::always(),
        MonitorConfig {
            resync_interval: Duration::from_secs(3600),
            ..MonitorConfig::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(monitor.clone().run_until(async {
        let _ = stopped.await;
    }));
    let ro = h.of_type("ro")[0].clone();
    let recorded = |h: &Harness| -> bool {
        h.instances()
            .values()
            .all(|i| i.current_state.state == "RUNNING")
    };
    wait_until(|| recorded(&h)).await;

    h.sim.promote(&h.cluster_ref(), &ro.pod_name);
    monitor.trigger(h.cluster_ref());
    wait_until(|| h.leader() == ro.ins_id).await;

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the monitor stops")
        .unwrap();
}

/// Waits (at most 5 s, in 5 ms steps) until `done`.
async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached within 5 s");
}
