//! The error every port returns.

/// A port operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The object does not exist.
    #[error("{port}: {what} not found")]
    NotFound {
        /// Which port.
        port: &'static str,
        /// What was looked for.
        what: String,
    },
    /// An optimistic-concurrency write lost; re-read and retry.
    #[error("{port}: conflict writing {what}")]
    Conflict {
        /// Which port.
        port: &'static str,
        /// What was written.
        what: String,
    },
    /// A transient failure (network, timeout, a busy backend); retrying may succeed.
    #[error("{port}: {message}")]
    Unavailable {
        /// Which port.
        port: &'static str,
        /// What happened.
        message: String,
    },
    /// The request is invalid or refused; retrying the same request will not help.
    #[error("{port} refused: {message}")]
    Rejected {
        /// Which port.
        port: &'static str,
        /// Why.
        message: String,
    },
}

impl PortError {
    /// Whether the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PortError::NotFound { .. })
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, PortError::Conflict { .. })
    }
}
