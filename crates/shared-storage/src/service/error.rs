//! Errors of the service.

use crate::domain::DomainError;
use crate::ports::PortError;

/// Why a service operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A port failed (retryable unless `Rejected`).
    #[error(transparent)]
    Port(#[from] PortError),
    /// A domain rule refused.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A qualitative failure: the flow is interrupted with this reason.
    #[error("{reason}: {message}")]
    Interrupt {
        /// The interrupt reason, e.g. `POD_LOST`.
        reason: String,
        /// Details.
        message: String,
    },
    /// Writing the cluster kept conflicting with other writers.
    #[error("cluster {cluster}: write still conflicting after {attempts} attempts")]
    Conflict {
        /// `namespace/name`.
        cluster: String,
        /// How many tries were made.
        attempts: u32,
    },
}

impl ServiceError {
    /// An interrupt.
    pub fn interrupt(reason: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Interrupt {
            reason: reason.into(),
            message: message.into(),
        }
    }
}
