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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use catalog::LATEST_VERSION;
pub use cluster_manager::{SimCm, SimCmInstance};
pub use faults::{SimCall, SimConfig, SimOutcome, SIMULATED_FAILURE};
pub use params::SimParams;
pub use pods::{SimEngine, SimPod};
pub use storage::SimStorage;

use super::Ports;
use world::World;

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

    /// The world, even after a panic elsewhere poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
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
