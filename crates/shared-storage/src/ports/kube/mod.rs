//! The production adapters of the ports: every port of [`crate::ports`] backed by the real
//! system — Kubernetes objects through `kube`, the storage-management service (SMS) and the
//! cluster manager (CM) over HTTP, the engine agent and pfsd through the Kubernetes exec API.
//!
//! One file per port, beside the simulators of [`crate::ports::sim`]. Nothing here waits for
//! the outside world in a loop: a pod that is not Ready, a CM that is not running, an SMS job
//! in progress is [`crate::ports::Progress::Pending`], asked again on the next reconcile.

mod cm_api;
mod config;
mod exec;

pub use cm_api::CmApi;
#[cfg(test)]
pub use cm_api::MockCmApi;
pub use config::KubePortsConfig;
#[cfg(test)]
pub use exec::MockPodExec;
pub use exec::{ExecError, ExecOutput, KubePodExec, PodExec};
