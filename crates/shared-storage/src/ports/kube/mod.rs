//! The production adapters of the ports: every port of [`crate::ports`] backed by the real
//! system — Kubernetes objects through `kube`, the storage-management service (SMS) and the
//! cluster manager (CM) over HTTP, the engine agent and pfsd through the Kubernetes exec API.
//!
//! One file per port, beside the simulators of [`crate::ports::sim`]. Nothing here waits for
//! the outside world in a loop: a pod that is not Ready, a CM that is not running, an SMS job
//! in progress is [`crate::ports::Progress::Pending`], asked again on the next reconcile.
//!
//! | port | adapter | talks to |
//! |------|---------|----------|
//! | A [`ClusterStore`](crate::ports::ClusterStore) | [`KubeClusterStore`] | MPDCluster objects (spec by patch, status subresource) |
//! | B [`IdAllocator`](crate::ports::IdAllocator) | [`KubeIdAllocator`] | ConfigMap `kube-system/polardb4mpd-controller` |
//! | C [`PortAllocator`](crate::ports::PortAllocator) | [`KubePortAllocator`] | the same ConfigMap, `cloud-provider-port-usage-<node>` |
//! | D [`StorageManager`](crate::ports::StorageManager) | [`KubeStorageManager`] | the SMS over HTTP; job records in ConfigMaps |
//! | E [`ClusterManager`](crate::ports::ClusterManager) | [`KubeClusterManager`] | the CM Deployment and its objects; the CM's REST API through [`CmApi`] ([`HttpCmApi`]) |
//! | F [`PodManager`](crate::ports::PodManager) | [`KubePodManager`] | instance Pods (four containers, host network, the shared volume as a block device; an init container prepares the data directory) |
//! | G [`EngineAgent`](crate::ports::EngineAgent) | [`ExecEngineAgent`] | the agent in the `manager` container, by exec; its environment on stdin |
//! | H [`PfsdTool`](crate::ports::PfsdTool) | [`ExecPfsdTool`] | the pfsd tool in the `pfsd-tool` container, by exec |
//! | I [`AccountStore`](crate::ports::AccountStore) | [`KubeAccountStore`] | account Secrets |
//! | J [`ParamStore`](crate::ports::ParamStore) | [`KubeParamStore`] | parameter ConfigMaps, templates |
//! | K [`ClassCatalog`](crate::ports::ClassCatalog), [`VersionCatalog`](crate::ports::VersionCatalog) | [`KubeClassCatalog`], [`KubeVersionCatalog`] | class and minor-version ConfigMaps |
//! | L [`NodeInventory`](crate::ports::NodeInventory) | [`KubeNodeInventory`] | node conditions |
//!
//! Every adapter is built from a client and the shared settings:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use shared_storage::ports::kube::{KubeIdAllocator, KubePortsConfig};
//! use shared_storage::ports::IdAllocator;
//!
//! let client = kube::Client::try_default().await?;
//! let ids = KubeIdAllocator::new(client, Arc::new(KubePortsConfig::default()));
//! let fresh = ids.next_ids(3).await?;
//! assert_eq!(fresh.len(), 3);
//! # Ok(())
//! # }
//! ```

mod accounts;
mod agent_env;
mod api_error;
mod catalog;
mod cluster_manager;
mod cluster_store;
mod cm_api;
mod cm_http;
mod cm_objects;
mod config;
mod conflict;
mod connect;
mod controller_map;
mod engine_agent;
mod exec;
#[cfg(test)]
mod exec_emulator;
#[cfg(test)]
mod fake_api;
mod http;
mod ids;
mod nodes;
mod owner;
mod params;
mod pfsd;
mod pod_manifest;
mod pods;
mod port_allocator;
mod port_range;
mod sms_jobs;
mod storage;

/// The decoders of the HTTP replies of the SMS and CM ports, as pure functions of an HTTP
/// status and a body: what the adapters run on every reply (and on the SMS job record),
/// callable on their own for tests and fuzzing (`fuzz/`). None of them panics on any input.
pub mod decode {
    pub use super::cm_http::{decode_cm_action, decode_cm_status};
    pub use super::http::server_message;
    pub use super::sms_jobs::decode_sms_job_record;
    pub use super::storage::{
        decode_sms_owner, decode_sms_ready, decode_sms_started, decode_sms_topo, SmsPoll,
    };
}

pub use accounts::KubeAccountStore;
pub use catalog::{KubeClassCatalog, KubeVersionCatalog};
pub use cluster_manager::{CmBaseUrlFn, KubeClusterManager};
pub use cluster_store::KubeClusterStore;
pub use cm_api::CmApi;
#[cfg(test)]
pub use cm_api::MockCmApi;
pub use cm_http::HttpCmApi;
pub use config::{KubePortsConfig, CM_API_SERVER_ENV};
pub use connect::{connect, connect_with, ConnectOverrides};
pub use engine_agent::{ExecEngineAgent, AGENT_ARGV};
#[cfg(test)]
pub use exec::MockPodExec;
pub use exec::{ExecError, ExecOutput, KubePodExec, PodExec};
pub use ids::KubeIdAllocator;
pub use nodes::KubeNodeInventory;
pub use params::KubeParamStore;
pub use pfsd::ExecPfsdTool;
pub use pods::KubePodManager;
pub use port_allocator::KubePortAllocator;
pub use storage::KubeStorageManager;
