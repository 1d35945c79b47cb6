//! B. Cluster-scope numeric ids.

use async_trait::async_trait;

use super::PortError;

/// Hands out unique numeric ids (a global counter starting at 1000).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdAllocator: Send + Sync {
    /// `n` fresh ids, increasing.
    async fn next_ids(&self, n: usize) -> Result<Vec<u64>, PortError>;
}
