//! H. The pfsd tool inside each pod.

use async_trait::async_trait;

use super::{EngineTarget, PortError, Progress};

/// Starts pfsd (the PFS daemon) for an instance.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PfsdTool: Send + Sync {
    /// Starts pfsd with `config` on `/dev/mapper/<volume_id>`; done when it runs.
    async fn start_pfsd(
        &self,
        target: &EngineTarget,
        config: &str,
        volume_id: &str,
    ) -> Result<Progress, PortError>;
}
