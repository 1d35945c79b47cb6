//! G. The engine agent inside each pod.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{Account, PortError};

/// The instance an engine command runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineTarget {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod_name: String,
    /// The instance id.
    pub ins_id: String,
    /// Whether it is the RW.
    pub is_rw: bool,
}

/// What a health check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// The engine answers.
    Ok,
    /// The engine is still starting.
    StartingUp,
    /// The container does not exist (yet).
    ContainerNotFound,
    /// Anything else.
    Unknown,
}

/// Commands run by the engine agent (over the Kubernetes exec API in production;
/// credentials come from a mounted Secret, never on a command line).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EngineAgent: Send + Sync {
    /// Installs the engine (idempotent).
    async fn install(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// Sets up the log agent.
    async fn setup_log_agent(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// Starts the engine.
    async fn start(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// Stops the engine gracefully.
    async fn graceful_stop(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// Stops the engine at once.
    async fn force_stop(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// Stop then start.
    async fn restart(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// Creates the database accounts.
    async fn create_accounts(
        &self,
        target: &EngineTarget,
        accounts: &[Account],
    ) -> Result<(), PortError>;
    /// Applies parameters.
    async fn update_params(
        &self,
        target: &EngineTarget,
        params: &BTreeMap<String, String>,
    ) -> Result<(), PortError>;
    /// Grows the PFS file system to the volume's size.
    async fn grow_storage(&self, target: &EngineTarget) -> Result<(), PortError>;
    /// One health probe.
    async fn health(&self, target: &EngineTarget) -> Result<Health, PortError>;
}
