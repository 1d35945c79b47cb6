//! The service: the domain operations of §2.5 over the ports. Every operation is
//! idempotent (it checks the world before acting) and never waits: when the outside world
//! is not ready it returns [`Progress::Pending`], and the step reports `Waiting`.

mod abandon;
pub mod admission;
mod cleanup;
mod cluster_manager;
mod create;
mod deletion;
mod error;
mod instances;
mod params;
mod progress;
mod replace;
mod repository;
mod restart;

use std::time::Duration;

pub use abandon::AbandonCleanup;
pub use admission::ClusterAdmission;
pub use cleanup::ApplyTarget;
pub use deletion::storage_of;
pub use error::ServiceError;
pub use instances::PHASE_RUNNING;
pub use progress::{RunMarkers, FLOW_PROGRESS};
pub use replace::migrate_target;
pub use repository::Loaded;

use crate::ports::{ClusterRef, Ports, Progress};

/// The result of a service operation.
pub type Outcome<T = ()> = Result<Progress<T>, ServiceError>;

/// Tunables of the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How many times a conflicting write of the cluster is re-read and re-applied.
    pub save_attempts: u32,
    /// How long a step waits before it is called again while the outside world is busy.
    pub poll_interval: Duration,
    /// Whether parameters the template marks not user-changeable may be changed.
    pub can_update_not_changeable_params: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            save_attempts: 5,
            poll_interval: Duration::from_secs(5),
            can_update_not_changeable_params: false,
        }
    }
}

/// The shared-storage service: one per operator, shared by every step.
#[derive(Clone, Debug)]
pub struct SharedStorageService {
    pub(crate) ports: Ports,
    pub(crate) config: ServiceConfig,
}

impl SharedStorageService {
    /// A service over `ports`.
    pub fn new(ports: Ports, config: ServiceConfig) -> Self {
        SharedStorageService { ports, config }
    }

    /// The ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }
}

/// The port reference of a loaded cluster.
pub fn cluster_ref(model: &crate::domain::SharedStorageCluster) -> ClusterRef {
    ClusterRef::new(&model.namespace, &model.name)
}
