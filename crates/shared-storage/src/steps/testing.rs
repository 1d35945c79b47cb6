//! A test fixture for steps: every port mocked with mockall, and a stateful mock cluster
//! store (a resourceVersion-checked object in memory) so steps can be run twice.
#![allow(dead_code)] // Not every step group uses every helper.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::crd::{
    ClassInfo, ClusterManagerStatus, EngineStateRecord, InstanceStatus, MPDCluster, MPDClusterSpec,
    MPDClusterStatus, NetCfg, NetInfo, ShareStore, VersionCfg,
};
use crate::domain::LoadMode;
use crate::ports::*;
use crate::service::{ServiceConfig, SharedStorageService};

/// Mocks to set expectations on, then [`FixtureBuilder::build`].
pub struct FixtureBuilder {
    pub cluster: ClusterRef,
    pub cr: Arc<Mutex<MPDCluster>>,
    pub ids: MockIdAllocator,
    pub port_alloc: MockPortAllocator,
    pub storage: MockStorageManager,
    pub cm: MockClusterManager,
    pub pods: MockPodManager,
    pub engine: MockEngineAgent,
    pub pfsd: MockPfsdTool,
    pub accounts: MockAccountStore,
    pub params: MockParamStore,
    pub classes: MockClassCatalog,
    pub versions: MockVersionCatalog,
    pub nodes: MockNodeInventory,
}

/// A built fixture: the service over the mocks and the stored object.
pub struct Fixture {
    pub cluster: ClusterRef,
    pub cr: Arc<Mutex<MPDCluster>>,
    pub service: SharedStorageService,
    spec_writes: Arc<AtomicUsize>,
    status_writes: Arc<AtomicUsize>,
}

fn instance(phys: &str, ins: &str, ty: &str, node: &str, n: u8) -> InstanceStatus {
    InstanceStatus {
        physical_ins_id: phys.into(),
        ins_id: ins.into(),
        ins_name: ins.into(),
        pod_name: format!("c1-{phys}-{ins}"),
        pod_name_space: "ns".into(),
        node_name: node.into(),
        host_client_ip: format!("192.168.0.{n}"),
        net_info: NetInfo {
            working_host_ip: format!("10.0.0.{n}"),
            working_port: 5432,
        },
        polar_fs_host_id: format!("{}", 4 + n),
        installed: true,
        ins_type: ty.into(),
        current_state: EngineStateRecord {
            state: "RUNNING".into(),
            ..EngineStateRecord::default()
        },
        last_state: EngineStateRecord::default(),
    }
}

/// A running cluster `ns/c1`: RW 1002 (phys 1001) on node-1, ROs 1004 (phys 1003) on
/// node-2 and 1006 (phys 1005) on node-3, CM port 30000, class `polar.o.x4.medium`,
/// version 1.1.1.
pub fn running_cluster() -> MPDCluster {
    let mut cr = MPDCluster::new(
        "c1",
        MPDClusterSpec {
            operator_name: "polar-mpd".into(),
            db_cluster_type: "share".into(),
            follower_num: 2,
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
                engine_image: Some("engine:1.1.1".into()),
                manager_image: Some("manager:1.1.1".into()),
                cluster_manager_image: Some("cm:1.1.1".into()),
                pfsd_image: Some("pfsd:1.1.1".into()),
                pfsd_tool_image: Some("pfsd-tool:1.1.1".into()),
                other_images: None,
            },
            ..MPDClusterSpec::default()
        },
    );
    cr.metadata.namespace = Some("ns".into());
    cr.metadata.resource_version = Some("1".into());
    cr.metadata.annotations = Some(BTreeMap::new());
    let mut status = MPDClusterStatus {
        cluster_status: "Running".into(),
        leader_instance_id: "1002".into(),
        leader_instance_host: "node-1".into(),
        logic_id: "1000".into(),
        cluster_manager_status: Some(ClusterManagerStatus {
            working_port: 30000,
            deploy_name: None,
        }),
        ..MPDClusterStatus::default()
    };
    for entry in [
        instance("1001", "1002", "rw", "node-1", 1),
        instance("1003", "1004", "ro", "node-2", 2),
        instance("1005", "1006", "ro", "node-3", 3),
    ] {
        status
            .db_instance_status
            .insert(entry.ins_id.clone(), entry);
    }
    cr.status = Some(status);
    cr
}

impl Fixture {
    /// A fixture over [`running_cluster`].
    pub fn running() -> FixtureBuilder {
        Self::from_cr(running_cluster())
    }

    /// A running cluster whose state is `state`.
    pub fn with_state(state: &str) -> FixtureBuilder {
        let mut cr = running_cluster();
        if let Some(status) = cr.status.as_mut() {
            status.cluster_status = state.into();
        }
        Self::from_cr(cr)
    }

    /// A fixture over any object.
    pub fn from_cr(cr: MPDCluster) -> FixtureBuilder {
        FixtureBuilder {
            cluster: ClusterRef::new("ns", "c1"),
            cr: Arc::new(Mutex::new(cr)),
            ids: MockIdAllocator::new(),
            port_alloc: MockPortAllocator::new(),
            storage: MockStorageManager::new(),
            cm: MockClusterManager::new(),
            pods: MockPodManager::new(),
            engine: MockEngineAgent::new(),
            pfsd: MockPfsdTool::new(),
            accounts: MockAccountStore::new(),
            params: MockParamStore::new(),
            classes: MockClassCatalog::new(),
            versions: MockVersionCatalog::new(),
            nodes: MockNodeInventory::new(),
        }
    }

    /// Runs step `name` (loaded in the default mode) as the engine would: load, then the body.
    pub async fn run(&self, name: &str) -> Result<Progress, String> {
        self.run_mode(name, LoadMode::default()).await
    }

    /// Runs step `name` with the cluster loaded in `mode`.
    pub async fn run_mode(&self, name: &str, mode: LoadMode) -> Result<Progress, String> {
        self.run_as(name, mode, 0).await
    }

    /// Runs step `name` with the cluster loaded in `mode`, as run `seq` of its flow.
    pub async fn run_as(&self, name: &str, mode: LoadMode, seq: u64) -> Result<Progress, String> {
        let (_, body) = super::all_steps()
            .into_iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no step {name}"))?;
        let mut loaded = self
            .service
            .load(&self.cluster, mode)
            .await
            .map_err(|e| e.to_string())?
            .for_run(seq);
        body(&self.service, &mut loaded)
            .await
            .map_err(|e| e.to_string())
    }

    /// The stored object now.
    pub fn stored(&self) -> MPDCluster {
        self.cr.lock().unwrap().clone()
    }

    /// The stored `status.clusterStatus`.
    pub fn state(&self) -> String {
        self.stored().status.unwrap_or_default().cluster_status
    }

    /// A stored annotation.
    pub fn annotation(&self, key: &str) -> Option<String> {
        self.stored()
            .metadata
            .annotations
            .and_then(|a| a.get(key).cloned())
    }

    /// How many status writes happened.
    pub fn status_writes(&self) -> usize {
        self.status_writes.load(Ordering::SeqCst)
    }

    /// How many spec/metadata writes happened.
    pub fn spec_writes(&self) -> usize {
        self.spec_writes.load(Ordering::SeqCst)
    }
}

fn bump(cr: &mut MPDCluster) {
    let next = cr
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    cr.metadata.resource_version = Some(next.to_string());
}

impl FixtureBuilder {
    /// A shared cell for stateful mock closures.
    pub fn shared<T>(&self, value: T) -> Arc<Mutex<T>> {
        Arc::new(Mutex::new(value))
    }

    /// The RW's node in the stored object.
    pub fn rw_node(&self) -> String {
        self.cr
            .lock()
            .unwrap()
            .status
            .as_ref()
            .map(|s| s.leader_instance_host.clone())
            .unwrap_or_default()
    }

    /// Changes the stored object before the run.
    pub fn edit(self, change: impl FnOnce(&mut MPDCluster)) -> Self {
        change(&mut self.cr.lock().unwrap());
        self
    }

    /// Builds the service over the mocks.
    pub fn build(self) -> Fixture {
        let spec_writes = Arc::new(AtomicUsize::new(0));
        let status_writes = Arc::new(AtomicUsize::new(0));
        let mut store = MockClusterStore::new();
        let cr = self.cr.clone();
        store.expect_get().returning(move |ns, name| {
            let cr = cr.lock().unwrap();
            if cr.metadata.namespace.as_deref() == Some(ns)
                && cr.metadata.name.as_deref() == Some(name)
            {
                Ok(cr.clone())
            } else {
                Err(PortError::NotFound {
                    port: "clusters",
                    what: format!("{ns}/{name}"),
                })
            }
        });
        let cr = self.cr.clone();
        let writes = spec_writes.clone();
        store.expect_update().returning(move |new| {
            let mut cr = cr.lock().unwrap();
            if new.metadata.resource_version != cr.metadata.resource_version {
                return Err(PortError::Conflict {
                    port: "clusters",
                    what: "c1".into(),
                });
            }
            cr.spec = new.spec.clone();
            cr.metadata = new.metadata.clone();
            bump(&mut cr);
            writes.fetch_add(1, Ordering::SeqCst);
            Ok(cr.clone())
        });
        let cr = self.cr.clone();
        let writes = status_writes.clone();
        store.expect_update_status().returning(move |new| {
            let mut cr = cr.lock().unwrap();
            if new.metadata.resource_version != cr.metadata.resource_version {
                return Err(PortError::Conflict {
                    port: "clusters",
                    what: "c1".into(),
                });
            }
            cr.status = new.status.clone();
            bump(&mut cr);
            writes.fetch_add(1, Ordering::SeqCst);
            Ok(cr.clone())
        });
        let ports = Ports {
            clusters: Arc::new(store),
            ids: Arc::new(self.ids),
            ports: Arc::new(self.port_alloc),
            storage: Arc::new(self.storage),
            cluster_manager: Arc::new(self.cm),
            pods: Arc::new(self.pods),
            engine: Arc::new(self.engine),
            pfsd: Arc::new(self.pfsd),
            accounts: Arc::new(self.accounts),
            params: Arc::new(self.params),
            classes: Arc::new(self.classes),
            versions: Arc::new(self.versions),
            nodes: Arc::new(self.nodes),
        };
        Fixture {
            cluster: self.cluster,
            cr: self.cr,
            service: SharedStorageService::new(ports, ServiceConfig::default()),
            spec_writes,
            status_writes,
        }
    }
}

impl Fixture {
    /// Runs step `name` (default mode) as run `seq` of its flow: only that run's progress
    /// markers count, as when the engine scopes the loaded cluster with `Loaded::for_run`.
    pub async fn run_in(&self, name: &str, seq: u64) -> Result<Progress, String> {
        self.run_as(name, LoadMode::default(), seq).await
    }

    /// The progress markers recorded on the stored object (`<run>/<marker>`).
    pub fn markers(&self) -> Vec<String> {
        self.annotation(crate::service::FLOW_PROGRESS)
            .and_then(|raw| serde_json::from_str(&raw).ok())
            .unwrap_or_default()
    }
}

impl FixtureBuilder {
    /// Sets annotation `key` to `value` on the stored object before the run.
    pub fn annotate(self, key: &str, value: &str) -> Self {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.edit(move |cr| {
            cr.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(key, value);
        })
    }
}

/// A cluster as the user creates it: the spec of [`running_cluster`] naming only a version
/// (no images, no resources), status `Creating`, no instances.
pub fn new_cluster() -> MPDCluster {
    let mut cr = running_cluster();
    cr.spec.version_cfg = VersionCfg {
        version_name: "1.1.1".into(),
        ..VersionCfg::default()
    };
    cr.status = Some(MPDClusterStatus {
        cluster_status: "Creating".into(),
        ..MPDClusterStatus::default()
    });
    cr
}

/// [`running_cluster`] as InitMeta leaves it: state `Creating`, the ids, fsIds and CM port
/// allocated, but no instance scheduled, installed or known to the cluster manager.
pub fn creating_cluster() -> MPDCluster {
    let mut cr = running_cluster();
    if let Some(status) = cr.status.as_mut() {
        status.cluster_status = "Creating".into();
        status.leader_instance_host.clear();
        for entry in status.db_instance_status.values_mut() {
            entry.node_name.clear();
            entry.host_client_ip.clear();
            entry.net_info.working_host_ip.clear();
            entry.installed = false;
            entry.current_state = EngineStateRecord::default();
        }
    }
    cr
}

/// The pod of [`running_cluster`]'s instance number `n` (1: the RW, 2 and 3: the ROs)
/// ready on `node-<n>`, with the addresses the running cluster stores.
pub fn ready_on(n: u8) -> PodProgress {
    PodProgress::Ready {
        node: format!("node-{n}"),
        host_ip: format!("10.0.0.{n}"),
        client_ip: format!("192.168.0.{n}"),
    }
}

impl Fixture {
    /// A fixture over [`new_cluster`].
    pub fn fresh() -> FixtureBuilder {
        Self::from_cr(new_cluster())
    }

    /// A fixture over [`creating_cluster`].
    pub fn creating() -> FixtureBuilder {
        Self::from_cr(creating_cluster())
    }

    /// Runs step `name` as the engine would after each `Waiting`, until it is done, at most
    /// `max` times; the pending reasons on the way. An error or still pending after `max`
    /// runs is an `Err`.
    pub async fn run_until_done(&self, name: &str, max: usize) -> Result<Vec<String>, String> {
        let mut reasons = Vec::new();
        for _ in 0..max {
            match self.run(name).await? {
                Progress::Done(()) => return Ok(reasons),
                Progress::Pending { reason } => reasons.push(reason),
            }
        }
        Err(format!(
            "{name} still pending after {max} runs: {reasons:?}"
        ))
    }

    /// How many writes (spec/metadata and status) happened.
    pub fn writes(&self) -> usize {
        self.spec_writes() + self.status_writes()
    }

    /// The stored instance entry `ins_id`.
    pub fn instance(&self, ins_id: &str) -> InstanceStatus {
        self.stored()
            .status
            .and_then(|s| s.db_instance_status.get(ins_id).cloned())
            .unwrap_or_else(|| panic!("no instance {ins_id} stored"))
    }
}
