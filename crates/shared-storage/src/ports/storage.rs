//! D. The storage-management service (SMS).

use async_trait::async_trait;

use super::{PortError, Progress};

/// A PVC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PvcRef {
    /// The PVC namespace.
    pub namespace: String,
    /// The PVC name.
    pub name: String,
}

/// Ask the SMS to use a volume for a cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageRequest {
    /// The PVC.
    pub pvc: PvcRef,
    /// The WWID.
    pub volume_id: String,
    /// The volume type.
    pub volume_type: String,
    /// The owning cluster's name.
    pub owner: String,
    /// Format the volume (only when it is not yet formatted for this owner).
    pub format: bool,
}

/// The cluster-wide storage manager: volume use, the write lock, release.
/// Every operation is idempotent; a job in progress is [`Progress::Pending`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait StorageManager: Send + Sync {
    /// Makes the volume usable by the owner (formatting it once if asked).
    async fn use_storage(&self, request: &StorageRequest) -> Result<Progress, PortError>;

    /// Gives the write lock to `node`; done when the topology shows it.
    async fn set_write_lock(&self, pvc: &PvcRef, node: &str) -> Result<Progress, PortError>;

    /// Releases the volume from `owner`; done when it is free (or owned by someone else).
    async fn release(&self, pvc: &PvcRef, owner: &str) -> Result<Progress, PortError>;
}
