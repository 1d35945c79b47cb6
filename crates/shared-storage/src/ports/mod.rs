//! Ports: the outside systems the domain needs (domain §2.4 A-L), as async traits. Each has
//! a deterministic simulator in [`sim`] and a production adapter in [`kube`].
//!
//! Nothing here blocks for long: an operation that waits for the outside world returns
//! [`Progress::Pending`] and is asked again later (the step returns `Waiting`).

mod accounts;
mod catalog;
mod cluster_manager;
mod cluster_store;
mod engine_agent;
mod error;
mod ids;
pub mod kube;
mod nodes;
mod params;
mod pfsd;
mod pods;
mod port_allocator;
mod retrying;
pub mod sim;
mod storage;

use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use accounts::{Account, AccountStore};
pub use catalog::{ClassCatalog, ClassDef, VersionCatalog, VersionDef};
pub use cluster_manager::{ClusterManager, CmInsStatus, CmInstance, CmRole, CmSpec, CmStatus};
pub use cluster_store::ClusterStore;
pub use engine_agent::{EngineAgent, EngineTarget, Health};
pub use error::PortError;
pub use ids::IdAllocator;
pub use nodes::{NodeInfo, NodeInventory};
pub use params::{ParamSet, ParamStore, ParamTemplate, ParamValue, TemplateEntry};
pub use pfsd::PfsdTool;
pub use pods::{InsPodSpec, PodFailure, PodManager, PodProgress};
pub use port_allocator::{PortAllocator, PortCheck, PortPurpose};
pub use retrying::{CallRetry, Retrying};
pub use storage::{PvcRef, StorageManager, StorageRequest};

#[cfg(test)]
pub use self::{
    accounts::MockAccountStore, catalog::MockClassCatalog, catalog::MockVersionCatalog,
    cluster_manager::MockClusterManager, cluster_store::MockClusterStore,
    engine_agent::MockEngineAgent, ids::MockIdAllocator, nodes::MockNodeInventory,
    params::MockParamStore, pfsd::MockPfsdTool, pods::MockPodManager,
    port_allocator::MockPortAllocator, storage::MockStorageManager,
};

/// Where a long operation stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress<T = ()> {
    /// Finished, with its result.
    Done(T),
    /// Still running outside; ask again later.
    Pending {
        /// What it waits for, for logs and history.
        reason: String,
    },
}

impl<T> Progress<T> {
    /// A pending result.
    pub fn pending(reason: impl Into<String>) -> Self {
        Progress::Pending {
            reason: reason.into(),
        }
    }

    /// Whether the operation finished.
    pub fn is_done(&self) -> bool {
        matches!(self, Progress::Done(_))
    }
}

/// Identifies a cluster to the ports: namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClusterRef {
    /// The namespace.
    pub namespace: String,
    /// The MPDCluster name.
    pub name: String,
}

impl ClusterRef {
    /// A reference from a namespace and a name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ClusterRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Every port the service uses. Cheap to clone.
#[derive(Clone)]
pub struct Ports {
    /// A. The MPDCluster objects.
    pub clusters: Arc<dyn ClusterStore>,
    /// B. Cluster-scope numeric ids.
    pub ids: Arc<dyn IdAllocator>,
    /// C. Host ports.
    pub ports: Arc<dyn PortAllocator>,
    /// D. The storage-management service.
    pub storage: Arc<dyn StorageManager>,
    /// E. The per-cluster cluster manager.
    pub cluster_manager: Arc<dyn ClusterManager>,
    /// F. Instance pods.
    pub pods: Arc<dyn PodManager>,
    /// G. The engine agent inside each pod.
    pub engine: Arc<dyn EngineAgent>,
    /// H. The pfsd tool inside each pod.
    pub pfsd: Arc<dyn PfsdTool>,
    /// I. Database accounts.
    pub accounts: Arc<dyn AccountStore>,
    /// J. Engine parameters.
    pub params: Arc<dyn ParamStore>,
    /// K. Instance classes.
    pub classes: Arc<dyn ClassCatalog>,
    /// K. Minor versions.
    pub versions: Arc<dyn VersionCatalog>,
    /// L. Nodes.
    pub nodes: Arc<dyn NodeInventory>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}
