//! L. Nodes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortError;

/// A node as the operator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node name.
    pub name: String,
    /// The internal IP.
    pub internal_ip: String,
    /// The client-network IP (node condition `NodeClientIP`).
    pub client_ip: String,
    /// Healthy for instances (no `PlugInStorageUnavailable` / `NodeClientNetworkUnavailable`).
    pub available: bool,
}

/// Lists nodes and their health, from node conditions (no SSH).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait NodeInventory: Send + Sync {
    /// Every node.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, PortError>;
}
