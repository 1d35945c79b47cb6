//! A harness for flow tests: the operator over the simulators, driven like a controller.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared_storage::crd::{
    ClassInfo, InstanceStatus, MPDCluster, MPDClusterSpec, NetCfg, ShareStore, VersionCfg,
};
use shared_storage::operator::{Operator, OperatorBuilder};
use shared_storage::ports::sim::{SimConfig, Simulation};
use shared_storage::ports::{CallRetry, ClusterRef};
use shared_storage::resource::MpdClusterResource;
use shared_storage::service::ServiceConfig;
use shared_storage::status::{Leadership, MonitorConfig, StatusMonitor};
use wf_engine::hook::HookEvent;
use wf_engine::{async_trait, RetryPolicy, StateResource, WorkflowConfig, WorkflowHook};

pub const NS: &str = "default";
pub const NAME: &str = "c1";

/// Records every completed step: (run seq, flow, step).
#[derive(Clone, Default)]
pub struct Completed(pub Arc<Mutex<Vec<(u64, String, String)>>>);

#[async_trait]
impl WorkflowHook for Completed {
    async fn on_step_completed(&self, e: &HookEvent<'_>) {
        if e.error.is_none() {
            if let Some(step) = e.step_runtime() {
                self.0.lock().unwrap().push((
                    e.seq,
                    e.runtime.flow_name.clone(),
                    step.step_name.clone(),
                ));
            }
        }
    }
}

pub struct Harness {
    pub sim: Simulation,
    pub op: Operator,
    pub completed: Completed,
    pub errors: Vec<String>,
}

pub fn cluster(follower_num: i32) -> MPDCluster {
    let mut cr = MPDCluster::new(
        NAME,
        MPDClusterSpec {
            operator_name: "polar-mpd".into(),
            db_cluster_type: "share".into(),
            follower_num,
            class_info: ClassInfo {
                class_name: "polar.o.x4.medium".into(),
                ..ClassInfo::default()
            },
            class_info_modify_to: ClassInfo::default(),
            share_store: Some(ShareStore {
                drive: "pvc".into(),
                share_pvc_name: "pvc-c1".into(),
                volume_id: "wwid-c1".into(),
                volume_type: "lun".into(),
                ..ShareStore::default()
            }),
            net_cfg: Some(NetCfg {
                engine_start_port: 5432,
            }),
            version_cfg: VersionCfg {
                version_name: "1.1.1".into(),
                ..VersionCfg::default()
            },
            ..MPDClusterSpec::default()
        },
    );
    cr.metadata.namespace = Some(NS.into());
    cr.metadata.annotations = Some(BTreeMap::new());
    cr
}

fn workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

impl Harness {
    pub fn new(config: SimConfig) -> Self {
        Self::with_ports(config, |_, ports| ports)
    }

    /// Inserts the cluster and reconciles until it is stable.
    pub async fn created(config: SimConfig, follower_num: i32) -> Self {
        let mut h = Self::new(config);
        h.sim.insert_cluster(cluster(follower_num));
        assert_eq!(h.settle().await, "Running", "create: {:?}", h.errors);
        h
    }

    /// Reconciles, as a controller would, until nothing asks to come back (at most
    /// `limit` reconciles); returns the state.
    pub async fn settle(&mut self) -> String {
        for _ in 0..3000 {
            let resource =
                match MpdClusterResource::load(self.op.service.ports().clusters.clone(), NS, NAME)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        self.errors.push(e.to_string());
                        continue;
                    }
                };
            match self.op.machine.reconcile(&resource, &self.op.manager).await {
                Ok(done) if done.requeue_after().is_none() => break,
                Ok(_) => {}
                Err(e) => self.errors.push(e.to_string()),
            }
        }
        self.state()
    }

    pub fn cr(&self) -> MPDCluster {
        self.sim.cluster(NS, NAME).expect("cluster")
    }

    pub fn state(&self) -> String {
        self.cr().status.unwrap_or_default().cluster_status
    }

    pub fn cluster_ref(&self) -> ClusterRef {
        ClusterRef::new(NS, NAME)
    }

    pub fn instances(&self) -> BTreeMap<String, InstanceStatus> {
        self.cr().status.unwrap_or_default().db_instance_status
    }

    pub fn of_type(&self, ty: &str) -> Vec<InstanceStatus> {
        self.instances()
            .into_values()
            .filter(|i| i.ins_type == ty)
            .collect()
    }

    pub fn leader(&self) -> String {
        self.cr().status.unwrap_or_default().leader_instance_id
    }

    pub fn edit(&self, change: impl FnOnce(&mut MPDCluster)) {
        self.sim.edit_cluster(NS, NAME, change).expect("edit");
    }

    pub fn annotate(&self, key: &str, value: &str) {
        self.edit(|cr| {
            cr.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key.into(), value.into());
        });
    }

    pub fn annotation(&self, key: &str) -> Option<String> {
        self.cr()
            .metadata
            .annotations
            .and_then(|a| a.get(key).cloned())
    }

    /// Every completed step was completed once per run.
    pub fn assert_no_step_completed_twice(&self) {
        let completed = self.completed.0.lock().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for entry in completed.iter() {
            assert!(
                seen.insert(entry.clone()),
                "step completed twice: {entry:?}"
            );
        }
    }

    /// The flows run, in order.
    pub fn flows_run(&self) -> Vec<String> {
        let completed = self.completed.0.lock().unwrap();
        let mut flows: Vec<(u64, String)> =
            completed.iter().map(|(s, f, _)| (*s, f.clone())).collect();
        flows.dedup();
        flows.into_iter().map(|(_, f)| f).collect()
    }

    pub async fn resource(&self) -> MpdClusterResource {
        MpdClusterResource::load(self.op.service.ports().clusters.clone(), NS, NAME)
            .await
            .expect("resource")
    }

    pub async fn resource_state(&self) -> String {
        self.resource().await.state().to_string()
    }
}

// ---- Helpers for tests/weaknesses.rs ----

impl Harness {
    /// Like [`Harness::new`], with the simulator's ports passed through `wrap` first (to put
    /// test doubles where the outside systems are; the per-call retries stay on top).
    pub fn with_ports(
        config: SimConfig,
        wrap: impl FnOnce(&Simulation, shared_storage::ports::Ports) -> shared_storage::ports::Ports,
    ) -> Self {
        let sim = Simulation::new(config);
        let completed = Completed::default();
        let ports = wrap(&sim, sim.ports()).with_call_retries(CallRetry {
            attempts: 3,
            delay: Duration::ZERO,
        });
        let mut retry = RetryPolicy::default();
        retry.backoff.initial = Duration::from_millis(1);
        retry.backoff.max = Duration::from_millis(10);
        let op = OperatorBuilder::new(ports, workflows())
            .service_config(ServiceConfig {
                poll_interval: Duration::from_millis(1),
                ..ServiceConfig::default()
            })
            .workflow_config(WorkflowConfig {
                wait_interval: Duration::from_millis(1),
                cancel_poll_interval: Duration::from_secs(60),
                default_retry: retry,
                ..WorkflowConfig::default()
            })
            .hook(Arc::new(completed.clone()))
            .build()
            .expect("operator");
        Harness {
            sim,
            op,
            completed,
            errors: Vec::new(),
        }
    }

    /// Like [`Harness::created`], over wrapped ports (see [`Harness::with_ports`]).
    pub async fn created_with_ports(
        config: SimConfig,
        follower_num: i32,
        wrap: impl FnOnce(&Simulation, shared_storage::ports::Ports) -> shared_storage::ports::Ports,
    ) -> Self {
        let mut h = Self::with_ports(config, wrap);
        h.sim.insert_cluster(cluster(follower_num));
        assert_eq!(h.settle().await, "Running", "create: {:?}", h.errors);
        h
    }

    /// One reconcile of `default/c1`, as a controller would run it.
    pub async fn reconcile(&self) -> Result<wf_engine::Reconciled, wf_engine::Error> {
        let resource = self.resource().await;
        self.op.machine.reconcile(&resource, &self.op.manager).await
    }

    /// The runs stored for `default/c1`, by sequence.
    pub async fn runtimes(&self) -> Vec<wf_engine::StoredRuntime> {
        self.op
            .manager
            .resource_workflow(&self.resource().await)
            .await
            .expect("resource workflow")
            .runtimes()
            .expect("runtimes")
    }
}

// ---- The status monitor beside the flows ----

impl Harness {
    /// A status monitor writing through the operator's service and sharing the state
    /// machine's locks, as the `run` command wires it; folds wait at most 5 s for a flow.
    pub fn monitor(&self, leadership: Leadership) -> StatusMonitor {
        self.monitor_with_locks(self.op.machine.locks().clone(), leadership)
    }

    /// Like [`Harness::monitor`], with locks of its own (a writer that does not serialise
    /// with the flows, e.g. another process).
    pub fn monitor_with_locks(
        &self,
        locks: wf_engine::ResourceLocks,
        leadership: Leadership,
    ) -> StatusMonitor {
        StatusMonitor::new(
            self.op.service.clone(),
            locks,
            leadership,
            MonitorConfig {
                lock_timeout: Duration::from_secs(5),
                ..MonitorConfig::default()
            },
        )
    }
}
