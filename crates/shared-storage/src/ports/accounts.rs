//! I. Database accounts (Secrets).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ClusterRef, PortError};

/// A database account. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `aurora` or `replicator`.
    pub name: String,
    /// The password.
    pub password: String,
    /// The privilege type (7 for aurora, 15 for replicator).
    pub privilege: u32,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("privilege", &self.privilege)
            .finish()
    }
}

/// Keeps the account Secrets of a cluster.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates the account with a random password if it is missing; returns it.
    async fn ensure_account(
        &self,
        cluster: &ClusterRef,
        logic_id: &str,
        name: &str,
        privilege: u32,
    ) -> Result<Account, PortError>;
    /// The cluster's accounts.
    async fn accounts(&self, cluster: &ClusterRef) -> Result<Vec<Account>, PortError>;
}
