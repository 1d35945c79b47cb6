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
//! | D [`StorageManager`](crate::ports::StorageManager) | [`KubeStorageManager`] | the SMS over HTTP; job records in ConfigMaps |
//! | E [`ClusterManager`](crate::ports::ClusterManager) | [`KubeClusterManager`] | the CM Deployment and its objects; the CM's REST API through [`CmApi`] ([`HttpCmApi`]) |

mod api_error;
mod cluster_manager;
mod cm_api;
mod cm_http;
mod cm_objects;
mod config;
mod http;
mod sms_jobs;
mod storage;

pub use cluster_manager::{CmBaseUrlFn, KubeClusterManager};
pub use cm_api::CmApi;
#[cfg(test)]
pub use cm_api::MockCmApi;
pub use cm_http::HttpCmApi;
pub use config::{KubePortsConfig, CM_API_SERVER_ENV};
pub use storage::KubeStorageManager;
