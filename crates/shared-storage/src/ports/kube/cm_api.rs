//! The cluster manager's HTTP API as a seam: [`CmApi`] is what the Kubernetes side of the CM
//! adapter (deployment, discovery of the base URL from the CM pod) calls once it knows where
//! the CM listens. The HTTP implementation speaks the CM's wire format; unit tests of the
//! callers mock this trait.

use async_trait::async_trait;

use crate::ports::{CmInstance, CmStatus, PortError};

/// The calls of the cluster manager's REST API, each against the base URL of one CM
/// (`http://<InternalIP of the CM pod's node>:<pod label port>`).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CmApi: Send + Sync {
    /// `POST /v1/enable {"enable":1|0}`: turns automatic failover on or off.
    async fn set_ha(&self, base_url: &str, enabled: bool) -> Result<(), PortError>;
    /// `POST /v1/add_ins`: adds an instance; one already known counts as done.
    async fn add_ins(&self, base_url: &str, ins: &CmInstance) -> Result<(), PortError>;
    /// `POST /v1/remove_ins`: removes an instance; one not known counts as done.
    async fn remove_ins(&self, base_url: &str, ins: &CmInstance) -> Result<(), PortError>;
    /// `POST /v1/switchover {"from","to","force":1}` with `clientIP:port` endpoints.
    async fn switchover(&self, base_url: &str, from: &str, to: &str) -> Result<(), PortError>;
    /// `GET /v1/status?type=visual`: the CM's view of the cluster.
    async fn status(&self, base_url: &str) -> Result<CmStatus, PortError>;
}
