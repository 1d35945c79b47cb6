//! Errors of the status monitor.

use std::time::Duration;

use crate::domain::DomainError;
use crate::ports::{ClusterRef, PortError};
use crate::service::ServiceError;

/// Why a cluster-manager report was not folded into an MPDCluster.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// This replica is not the leader: it applies nothing.
    #[error("not the leader: status updates are applied by the leader replica only")]
    NotLeader,
    /// A flow of the cluster held its lock for longer than the monitor waits.
    #[error("cluster {cluster} is busy: a flow held it for {waited:?}; try again")]
    Busy {
        /// The cluster.
        cluster: ClusterRef,
        /// How long the monitor waited.
        waited: Duration,
    },
    /// The MPDCluster does not exist.
    #[error("mpdcluster {cluster} not found")]
    NotFound {
        /// The cluster.
        cluster: ClusterRef,
    },
    /// The report does not fit the cluster (e.g. an endpoint no instance has).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Reading the cluster, or asking its cluster manager, failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Writing the cluster failed.
    #[error(transparent)]
    Write(#[from] ServiceError),
}
