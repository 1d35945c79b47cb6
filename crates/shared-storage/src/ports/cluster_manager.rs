//! E. The per-cluster cluster manager (HA, failover, instance membership).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ClusterRef, PortError, Progress};
use crate::domain::StorageInfo;

/// What the cluster manager deployment needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CmSpec {
    /// The cluster.
    pub cluster: ClusterRef,
    /// The logical cluster id.
    pub logic_id: String,
    /// The RW's physical id.
    pub rw_physical_id: String,
    /// The CM image.
    pub image: String,
    /// The CM HTTP port.
    pub port: i32,
    /// The consensus port.
    pub consensus_port: i32,
    /// The shared storage (for the plugin configuration).
    pub storage: StorageInfo,
}

/// An instance's role for the CM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmRole {
    /// Read-write.
    Rw,
    /// Read-only.
    Ro,
}

/// An instance as the CM knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CmInstance {
    /// The pod name.
    pub pod_name: String,
    /// The node's internal IP.
    pub host_ip: String,
    /// The node's client IP (the endpoint's address).
    pub client_ip: String,
    /// The node name.
    pub host_name: String,
    /// The engine port.
    pub port: i32,
    /// `Rw` or `Ro` (`None` is read as `Ro`).
    pub role: Option<CmRole>,
}

impl CmInstance {
    /// `clientIP:port`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.client_ip, self.port)
    }
}

/// One instance in the CM's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CmInsStatus {
    /// `clientIP:port`.
    pub endpoint: String,
    /// The pod name.
    pub pod_name: String,
    /// The engine phase: `PENDING`, `STARTING`, `RUNNING`, `STOPPING`, `STOPPED`, `FAILED`.
    pub phase: String,
    /// Since when, `YYYY-MM-DD hh:mm:ss`.
    pub start_at: String,
}

/// The CM's view of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CmStatus {
    /// The cluster phase.
    pub phase: String,
    /// Whether HA (automatic failover) is on.
    pub ha_enabled: bool,
    /// The RW.
    pub rw: Option<CmInsStatus>,
    /// The ROs.
    pub ro: Vec<CmInsStatus>,
}

impl CmStatus {
    /// The status of the instance at `endpoint`.
    pub fn instance(&self, endpoint: &str) -> Option<&CmInsStatus> {
        self.rw
            .iter()
            .chain(self.ro.iter())
            .find(|i| i.endpoint == endpoint)
    }
}

/// The cluster manager of one cluster: its deployment and its HTTP API.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClusterManager: Send + Sync {
    /// Creates or repairs the CM (RBAC, ConfigMaps, Deployment); done when it runs.
    async fn ensure_deployed(&self, spec: &CmSpec) -> Result<Progress, PortError>;
    /// Deletes the CM and its ConfigMaps; done when its pods are gone.
    async fn remove(&self, cluster: &ClusterRef) -> Result<Progress, PortError>;
    /// Sets the CM image (Recreate strategy).
    async fn upgrade(&self, cluster: &ClusterRef, image: &str) -> Result<(), PortError>;
    /// Moves the CM pod off `rw_node`; done when it runs elsewhere.
    async fn ensure_affinity(
        &self,
        cluster: &ClusterRef,
        rw_node: &str,
    ) -> Result<Progress, PortError>;
    /// Turns automatic failover on or off.
    async fn set_ha(&self, cluster: &ClusterRef, enabled: bool) -> Result<(), PortError>;
    /// Adds an instance; adding one already present succeeds.
    async fn add_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError>;
    /// Removes an instance; removing one absent succeeds.
    async fn remove_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError>;
    /// Planned switchover from the RW endpoint `from` to the RO endpoint `to`.
    async fn switchover(&self, cluster: &ClusterRef, from: &str, to: &str)
        -> Result<(), PortError>;
    /// The CM's view of the cluster.
    async fn status(&self, cluster: &ClusterRef) -> Result<CmStatus, PortError>;
}
