//! A deterministic in-process simulator of every port (A-L), for the local mode and tests.
//!
//! One [`Simulation`] holds one world behind a `std::sync::Mutex` (never held across an
//! await); [`Simulation::ports`] hands out the 13 port objects backed by it, and the other
//! methods of [`Simulation`] inspect or change the world directly, bypassing latency,
//! faults and the call log.
//!
//! Every port call first sleeps [`SimConfig::latency`], then fails with
//! [`PortError::Unavailable`](crate::ports::PortError) (message `simulated failure`) with
//! probability [`SimConfig::fail_rate`], before it changes anything. Faults and passwords
//! come from one `fastrand::Rng` seeded with [`SimConfig::seed`]: the same seed and the same
//! sequence of calls give the same faults. Every call is recorded ([`Simulation::call_log`]).
//!
//! Long operations answer `Pending` for [`SimConfig::ready_after_polls`] calls, then `Done`
//! (or `Ready`). An operation whose goal already holds is `Done` at once.
//!
//! The default world:
//! - nodes `node-1`..`node-4`, available, internal IPs `10.0.0.N`, client IPs `192.168.0.N`;
//! - classes `polar.o.x4.medium` (2 CPU, 8Gi), `polar.o.x4.large` (4, 16Gi),
//!   `polar.o.x8.xlarge` (8, 64Gi), each with `engine`, `manager`, `pfsd` and `pfsd-tool`
//!   resources;
//! - versions `1.1.1` and `1.1.2` (the latest) with the five images;
//! - a PostgreSQL parameter template and per-class parameters (see [`SimParams`]);
//! - ids from 1000, host ports from 30000.
//!
//! A [`Simulation::persistent`] world lives in a JSON file as well: it is loaded from the
//! file, and saved atomically whenever it changed (after every port call, and after every
//! direct change through [`Simulation`]'s methods), so a process killed at any instant
//! leaves the world as of a completed call.

mod accounts;
mod allocators;
mod catalog;
mod cluster_manager;
mod cluster_store;
mod engine;
mod faults;
mod nodes;
mod params;
mod pfsd;
mod pods;
mod storage;
mod world;

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use catalog::LATEST_VERSION;
pub use cluster_manager::{SimCm, SimCmInstance};
pub use faults::{SimCall, SimConfig, SimOutcome, SIMULATED_FAILURE};
pub use params::SimParams;
pub use pods::{SimEngine, SimPod};
pub use storage::SimStorage;

use super::Ports;
use crate::local::LocalError;
use world::{Persistence, World};

/// The port names used in errors and in the call log (the field names of [`Ports`]).
pub mod port {
    /// A. [`ClusterStore`](crate::ports::ClusterStore).
    pub const CLUSTERS: &str = "clusters";
    /// B. [`IdAllocator`](crate::ports::IdAllocator).
    pub const IDS: &str = "ids";
    /// C. [`PortAllocator`](crate::ports::PortAllocator).
    pub const PORTS: &str = "ports";
    /// D. [`StorageManager`](crate::ports::StorageManager).
    pub const STORAGE: &str = "storage";
    /// E. [`ClusterManager`](crate::ports::ClusterManager).
    pub const CLUSTER_MANAGER: &str = "cluster_manager";
    /// F. [`PodManager`](crate::ports::PodManager).
    pub const PODS: &str = "pods";
    /// G. [`EngineAgent`](crate::ports::EngineAgent).
    pub const ENGINE: &str = "engine";
    /// H. [`PfsdTool`](crate::ports::PfsdTool).
    pub const PFSD: &str = "pfsd";
    /// I. [`AccountStore`](crate::ports::AccountStore).
    pub const ACCOUNTS: &str = "accounts";
    /// J. [`ParamStore`](crate::ports::ParamStore).
    pub const PARAMS: &str = "params";
    /// K. [`ClassCatalog`](crate::ports::ClassCatalog).
    pub const CLASSES: &str = "classes";
    /// K. [`VersionCatalog`](crate::ports::VersionCatalog).
    pub const VERSIONS: &str = "versions";
    /// L. [`NodeInventory`](crate::ports::NodeInventory).
    pub const NODES: &str = "nodes";
}

/// A simulated world and its ports. Cheap to clone: clones share the world.
#[derive(Clone)]
pub struct Simulation {
    world: Arc<Mutex<World>>,
}

impl Simulation {
    /// A fresh default world (see the module documentation).
    pub fn new(config: SimConfig) -> Self {
        Simulation {
            world: Arc::new(Mutex::new(World::new(config))),
        }
    }

    /// A world kept in the JSON file `path`: loaded from it when it exists (a file that does
    /// not parse is [`LocalError::Corrupt`] naming it), else the default world, saved at once.
    /// From then on, every change is saved atomically (temp file, fsync, rename) before the
    /// call that made it returns; a port call whose save fails returns
    /// [`PortError::Unavailable`](crate::ports::PortError) naming the file.
    ///
    /// `config` replaces the saved configuration. The random generator goes on from its
    /// saved state, unless `config.seed` differs from the saved seed: then it restarts from
    /// the new seed. The call log starts empty.
    pub fn persistent(config: SimConfig, path: PathBuf) -> Result<Simulation, LocalError> {
        let mut world = match std::fs::read(&path) {
            Ok(bytes) => {
                let mut world: World =
                    serde_json::from_slice(&bytes).map_err(|e| LocalError::Corrupt {
                        path: path.clone(),
                        message: format!("not a simulated world: {e}"),
                    })?;
                if world.config.seed != config.seed {
                    world.rng = fastrand::Rng::with_seed(config.seed);
                }
                world.config = config;
                world.persistence = Some(Persistence { path, saved: bytes });
                world
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut world = World::new(config);
                world.persistence = Some(Persistence {
                    path,
                    saved: Vec::new(),
                });
                world
            }
            Err(source) => return Err(LocalError::Io { path, source }),
        };
        world.save_if_changed()?;
        Ok(Simulation {
            world: Arc::new(Mutex::new(world)),
        })
    }

    /// The file of a persistent world; `None` for an in-memory one.
    pub fn persistent_path(&self) -> Option<PathBuf> {
        self.lock().persistence.as_ref().map(|p| p.path.clone())
    }

    /// Saves a persistent world now when it changed since the last save (changes are
    /// saved automatically; this reports the error of a failed save). A no-op in memory.
    pub fn save(&self) -> Result<(), LocalError> {
        self.lock().save()
    }

    /// All 13 ports, backed by this world.
    pub fn ports(&self) -> Ports {
        Ports {
            clusters: Arc::new(cluster_store::SimClusterStore(self.clone())),
            ids: Arc::new(allocators::SimIds(self.clone())),
            ports: Arc::new(allocators::SimPortAllocator(self.clone())),
            storage: Arc::new(storage::SimStorageManager(self.clone())),
            cluster_manager: Arc::new(cluster_manager::SimClusterManager(self.clone())),
            pods: Arc::new(pods::SimPodManager(self.clone())),
            engine: Arc::new(engine::SimEngineAgent(self.clone())),
            pfsd: Arc::new(pfsd::SimPfsdTool(self.clone())),
            accounts: Arc::new(accounts::SimAccountStore(self.clone())),
            params: Arc::new(params::SimParamStore(self.clone())),
            classes: Arc::new(catalog::SimClassCatalog(self.clone())),
            versions: Arc::new(catalog::SimVersionCatalog(self.clone())),
            nodes: Arc::new(nodes::SimNodeInventory(self.clone())),
        }
    }

    /// The world, even after a panic elsewhere poisoned the lock. A persistent world is
    /// saved when the guard is dropped, if it was borrowed mutably and changed.
    fn lock(&self) -> WorldGuard<'_> {
        WorldGuard {
            world: self.world.lock().unwrap_or_else(PoisonError::into_inner),
            touched: false,
        }
    }
}

/// The locked world. Dropping a guard that was borrowed mutably saves a persistent world
/// that changed; a failed save there is logged (port calls save explicitly with
/// [`WorldGuard::save`] and return the error).
pub(crate) struct WorldGuard<'a> {
    world: MutexGuard<'a, World>,
    /// Whether the world was borrowed mutably since the last save.
    touched: bool,
}

impl WorldGuard<'_> {
    /// Saves a persistent world now when it changed.
    pub(super) fn save(&mut self) -> Result<(), LocalError> {
        self.touched = false;
        self.world.save_if_changed()
    }
}

impl Deref for WorldGuard<'_> {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl DerefMut for WorldGuard<'_> {
    fn deref_mut(&mut self) -> &mut World {
        self.touched = true;
        &mut self.world
    }
}

impl Drop for WorldGuard<'_> {
    fn drop(&mut self) {
        if self.touched {
            if let Err(error) = self.world.save_if_changed() {
                tracing::error!(%error, "cannot save the simulated world");
            }
        }
    }
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation::new(SimConfig::default())
    }
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation").finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Helpers for the simulator's tests.

    use super::{SimConfig, Simulation};
    use crate::crd::{MPDCluster, MPDClusterSpec};
    use crate::ports::ClusterRef;

    /// A default simulation with `ready_after_polls`.
    pub fn sim(ready_after_polls: u32) -> Simulation {
        Simulation::new(SimConfig {
            ready_after_polls,
            ..SimConfig::default()
        })
    }

    /// A minimal MPDCluster `ns/name`.
    pub fn cluster(ns: &str, name: &str) -> MPDCluster {
        let mut c = MPDCluster::new(name, MPDClusterSpec::default());
        c.metadata.namespace = Some(ns.to_string());
        c
    }

    /// `default/c1`.
    pub fn c1() -> ClusterRef {
        ClusterRef::new("default", "c1")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{c1, cluster};
    use super::*;
    use crate::domain::{image_key, InsType};
    use crate::ports::{
        CmInstance, CmRole, CmSpec, EngineTarget, Health, InsPodSpec, ParamSet, PodProgress,
        PortCheck, PortError, PortPurpose, PvcRef, StorageRequest,
    };

    /// Awaits `$call` again until it is not a transient failure.
    macro_rules! retry {
        ($call:expr) => {{
            loop {
                match $call.await {
                    Ok(v) => break v,
                    Err(PortError::Unavailable { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }};
    }

    /// What the Create flow does, port by port, retrying faults and waiting out `Pending`.
    async fn create_walkthrough(sim: &Simulation) {
        let p = sim.ports();
        let c = c1();
        sim.insert_cluster(cluster("default", "c1"));
        let mut obj = retry!(p.clusters.get("default", "c1"));
        obj.metadata.finalizers = Some(vec![crate::crd::FINALIZER.to_string()]);
        retry!(p.clusters.update(&obj));

        let class = retry!(p.classes.class("polar.o.x4.medium"));
        let version = retry!(p.versions.version(""));
        let ids = retry!(p.ids.next_ids(3));
        assert_eq!(retry!(p.ports.check_engine_port(5432)), PortCheck::Free);
        let cm_port = retry!(p.ports.allocate_port(PortPurpose::ClusterManager));
        let consensus_port = retry!(p.ports.allocate_port(PortPurpose::Consensus));
        retry!(p.params.save_user_params(&c, &ParamSet::default()));
        retry!(p.params.save_running_params(&c, &ParamSet::default()));
        let aurora = retry!(p.accounts.ensure_account(&c, "1000", "aurora", 7));
        retry!(p.accounts.ensure_account(&c, "1000", "replicator", 15));
        assert_eq!(retry!(p.nodes.nodes()).len(), 4);

        let pvc = PvcRef {
            namespace: "default".into(),
            name: "pvc-1".into(),
        };
        let request = StorageRequest {
            pvc: pvc.clone(),
            volume_id: "wwid-1".into(),
            volume_type: "lun".into(),
            owner: "c1".into(),
            format: true,
        };
        while !retry!(p.storage.use_storage(&request)).is_done() {}

        let cm_spec = CmSpec {
            cluster: c.clone(),
            logic_id: ids[0].to_string(),
            rw_physical_id: ids[1].to_string(),
            image: version.images[image_key::CLUSTER_MANAGER].clone(),
            port: cm_port,
            consensus_port,
            ..Default::default()
        };
        while !retry!(p.cluster_manager.ensure_deployed(&cm_spec)).is_done() {}

        let pod_name = format!("c1-{}-{}", ids[1], ids[2]);
        let pod_spec = InsPodSpec {
            cluster: c.clone(),
            pod_name: pod_name.clone(),
            physical_ins_id: ids[1].to_string(),
            ins_id: ids[2].to_string(),
            ins_type: Some(InsType::Rw),
            port: 5432,
            images: version.images.clone(),
            resources: class.resources.clone(),
            pvc_name: pvc.name.clone(),
            target_node: None,
            ..InsPodSpec::default()
        };
        let (node, host_ip, client_ip) = loop {
            match retry!(p.pods.ensure_pod(&pod_spec)) {
                PodProgress::Ready {
                    node,
                    host_ip,
                    client_ip,
                } => break (node, host_ip, client_ip),
                PodProgress::Pending { .. } => {}
                PodProgress::Failed { message, .. } => panic!("{message}"),
            }
        };
        while !retry!(p.storage.set_write_lock(&pvc, &node)).is_done() {}
        let target = EngineTarget {
            namespace: "default".into(),
            pod_name: pod_name.clone(),
            ins_id: ids[2].to_string(),
            is_rw: true,
        };
        let pfsd_config = class.resources["pfsd"].config.clone();
        while !retry!(p.pfsd.start_pfsd(&target, &pfsd_config, "wwid-1")).is_done() {}
        retry!(p.engine.install(&target));
        while retry!(p.engine.health(&target)) != Health::Ok {}
        retry!(p.engine.setup_log_agent(&target));
        retry!(p
            .engine
            .create_accounts(&target, std::slice::from_ref(&aurora)));
        let ins = CmInstance {
            pod_name: pod_name.clone(),
            host_ip,
            client_ip,
            host_name: node.clone(),
            port: 5432,
            role: Some(CmRole::Rw),
        };
        retry!(p.cluster_manager.add_ins(&c, &ins));
        while retry!(p.cluster_manager.status(&c)).phase != "RUNNING" {}
        retry!(p.pods.label_ins_type("default", &pod_name, InsType::Rw));
        while !retry!(p.cluster_manager.ensure_affinity(&c, &node)).is_done() {}

        loop {
            let mut obj = retry!(p.clusters.get("default", "c1"));
            obj.status.get_or_insert_default().cluster_status = "Running".into();
            match p.clusters.update_status(&obj).await {
                Ok(_) => break,
                Err(PortError::Unavailable { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn faulty(seed: u64) -> Simulation {
        Simulation::new(SimConfig {
            fail_rate: 0.3,
            seed,
            ready_after_polls: 2,
            ..SimConfig::default()
        })
    }

    #[tokio::test]
    async fn a_create_walkthrough_converges_under_faults() {
        let sim = faulty(42);
        create_walkthrough(&sim).await;
        let c = c1();
        let stored = sim.cluster("default", "c1").unwrap();
        assert_eq!(stored.status.unwrap().cluster_status, "Running");
        let pods = sim.pods(&c);
        assert_eq!(pods.len(), 1);
        let pod = &pods[0];
        assert!(pod.ready && pod.pfsd_running && pod.engine.running && pod.engine.log_agent);
        assert_eq!(pod.label, Some(InsType::Rw));
        let cm = sim.cm(&c).unwrap();
        assert!(cm.deployed && cm.ha);
        assert_ne!(cm.node, pod.node);
        assert_eq!(cm.instances[0].phase, "RUNNING");
        let pvc = PvcRef {
            namespace: "default".into(),
            name: "pvc-1".into(),
        };
        let storage = sim.storage(&pvc).unwrap();
        assert_eq!(storage.format_count, 1);
        assert_eq!(storage.write_node.as_deref(), Some(pod.node.as_str()));
        assert_eq!(sim.accounts(&c).len(), 2);
        assert!(sim
            .call_log()
            .iter()
            .any(|c| c.outcome == SimOutcome::Fault));
        assert_eq!(sim.count_ok(port::STORAGE, "use_storage"), 3);
    }

    #[tokio::test]
    async fn same_seed_gives_the_same_call_log_and_world() {
        let (a, b) = (faulty(7), faulty(7));
        create_walkthrough(&a).await;
        create_walkthrough(&b).await;
        assert_eq!(a.call_log(), b.call_log());
        assert_eq!(a.accounts(&c1()), b.accounts(&c1()));
        assert_eq!(a.pods(&c1()), b.pods(&c1()));
        assert_eq!(a.cm(&c1()), b.cm(&c1()));
    }

    #[tokio::test]
    async fn a_persistent_world_reopened_from_its_file_sees_what_was_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        let config = SimConfig {
            fail_rate: 0.3,
            seed: 42,
            ready_after_polls: 2,
            ..SimConfig::default()
        };
        let first = Simulation::persistent(config.clone(), path.clone()).unwrap();
        assert_eq!(first.persistent_path(), Some(path.clone()));
        create_walkthrough(&first).await;
        let c = c1();

        let second = Simulation::persistent(config.clone(), path.clone()).unwrap();
        assert_eq!(second.pods(&c), first.pods(&c));
        assert_eq!(second.pods(&c).len(), 1);
        assert_eq!(second.cm(&c), first.cm(&c));
        assert!(second.cm(&c).unwrap().deployed);
        assert_eq!(second.accounts(&c), first.accounts(&c));
        assert_eq!(
            second
                .cluster("default", "c1")
                .unwrap()
                .status
                .unwrap()
                .cluster_status,
            "Running"
        );
        assert_eq!(second.peek_next_id(), first.peek_next_id());
        assert!(second.call_log().is_empty());

        // The random generator goes on where it stopped: both give the same faults now.
        let (a, b) = (first.ports(), second.ports());
        for _ in 0..16 {
            assert_eq!(a.nodes.nodes().await.is_ok(), b.nodes.nodes().await.is_ok());
        }
    }

    #[tokio::test]
    async fn every_change_is_saved_before_the_call_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        let sim = Simulation::persistent(SimConfig::default(), path.clone()).unwrap();
        assert!(path.is_file(), "a new world is saved at once");
        sim.ports().ids.next_ids(3).await.unwrap();
        let reloaded = Simulation::persistent(SimConfig::default(), path.clone()).unwrap();
        assert_eq!(reloaded.peek_next_id(), 1003);
        sim.insert_cluster(cluster("default", "c1"));
        let reloaded = Simulation::persistent(SimConfig::default(), path.clone()).unwrap();
        assert!(reloaded.cluster("default", "c1").is_some());
        sim.save().unwrap();
        assert_eq!(Simulation::default().persistent_path(), None);
    }

    #[tokio::test]
    async fn a_corrupt_world_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.json");
        std::fs::write(&path, "{\"config\": 1").unwrap();
        let err = Simulation::persistent(SimConfig::default(), path.clone()).unwrap_err();
        assert!(matches!(&err, LocalError::Corrupt { path: p, .. } if p == &path));
        assert!(err.to_string().contains("sim.json"), "{err}");
    }

    #[tokio::test]
    async fn clones_share_one_world() {
        let sim = Simulation::default();
        let other = sim.clone();
        other.ports().ids.next_ids(2).await.unwrap();
        assert_eq!(sim.peek_next_id(), 1002);
        assert_eq!(sim.count(port::IDS, "next_ids"), 1);
        assert_eq!(sim.config(), SimConfig::default());
    }
}
