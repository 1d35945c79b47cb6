//! A. The MPDCluster objects (the repository's storage).

use async_trait::async_trait;

use super::PortError;
use crate::crd::MPDCluster;

/// Reads and writes MPDCluster objects with optimistic concurrency on
/// `metadata.resourceVersion`: a write of a stale copy fails with [`PortError::Conflict`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// A fresh copy.
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError>;

    /// Every MPDCluster, in every namespace (the status monitor's periodic resync).
    async fn list(&self) -> Result<Vec<MPDCluster>, PortError>;

    /// Writes spec and metadata (annotations, finalizers); the status is left alone.
    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError>;

    /// Writes the status subresource; spec and metadata are left alone.
    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError>;
}
