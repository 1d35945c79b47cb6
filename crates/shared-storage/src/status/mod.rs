//! Live status: the cluster manager's reports folded into the MPDClusters, on the leader
//! only, serialised with the flows.
//!
//! - [`StatusMonitor`]: the periodic resync, per-cluster triggers, and the folds the CM's
//!   callbacks ask for ([`crate::callbacks`]).
//! - [`Leadership`]: whether this replica leads (a watch channel or wf-kube's `Health`).
//! - [`trigger_on_pod_events`]: the instance pods' changes as triggers of the monitor.
//! - [`StatusError`]: why a report was not applied.

mod error;
mod leadership;
mod monitor;
mod pod_events;

pub use error::StatusError;
pub use leadership::Leadership;
pub use monitor::{MonitorConfig, ResyncReport, Skip, StatusMonitor, SyncOutcome};
pub use pod_events::{owning_cluster, trigger_on_pod_events};
