//! C. Host ports.

use async_trait::async_trait;

use super::PortError;

/// What a port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortPurpose {
    /// The cluster manager's HTTP port.
    ClusterManager,
    /// The cluster manager's consensus port.
    Consensus,
}

/// The result of checking the engine port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortCheck {
    /// In range and free on every node.
    Free,
    /// Used on some node.
    InUse,
    /// Outside the allowed range.
    OutOfRange,
}

/// Allocates host ports that no node uses.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PortAllocator: Send + Sync {
    /// A fresh port for `purpose`.
    async fn allocate_port(&self, purpose: PortPurpose) -> Result<i32, PortError>;

    /// Whether the engine port may be used.
    async fn check_engine_port(&self, port: i32) -> Result<PortCheck, PortError>;
}
