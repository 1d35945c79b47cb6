//! Errors of the domain rules.

/// A domain rule refused. `Interrupt` variants are qualitative: the step turns them into a
/// flow interrupt with the same reason; the others are retried or reported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// `spec.shareStore` is missing on a shared cluster.
    #[error("cluster {cluster}: spec.shareStore is required for a shared-storage cluster")]
    MissingShareStore {
        /// `namespace/name`.
        cluster: String,
    },
    /// Every PFS host id of the pool is in use (weakness 5: never an empty id).
    #[error("cluster {cluster}: no free PFS host id left in 5..=25")]
    FsIdsExhausted {
        /// `namespace/name`.
        cluster: String,
    },
    /// An instance id names no instance of the cluster.
    #[error("cluster {cluster}: no instance `{ins_id}`")]
    UnknownInstance {
        /// `namespace/name`.
        cluster: String,
        /// The id looked for.
        ins_id: String,
    },
    /// The id allocator returned fewer ids than needed.
    #[error("cluster {cluster}: needed {needed} ids, got {got}")]
    NotEnoughIds {
        /// `namespace/name`.
        cluster: String,
        /// How many were needed.
        needed: usize,
        /// How many came.
        got: usize,
    },
    /// The cluster manager reports an instance at an endpoint (`clientIP:port`) that no
    /// instance of the model has.
    #[error("cluster {cluster}: no instance at endpoint `{endpoint}`")]
    UnknownEndpoint {
        /// `namespace/name`.
        cluster: String,
        /// The endpoint reported by the cluster manager.
        endpoint: String,
    },
    /// An engine parameter the rules need is missing or has a value they cannot use
    /// (e.g. a non-integer `max_connections`).
    #[error("engine parameter {name}: {message}")]
    InvalidParam {
        /// The parameter name.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The resource or the model is inconsistent.
    #[error("cluster {cluster}: {message}")]
    Invalid {
        /// `namespace/name`.
        cluster: String,
        /// What is wrong.
        message: String,
    },
    /// A qualitative failure that interrupts the flow: `TEMP_INS_ID_NOT_FOUND`,
    /// `TEMP_RO_FOR_RW_MEAT_LOST` (sic), `RO_META_INVALID`.
    #[error("{reason}: {message}")]
    Interrupt {
        /// The interrupt reason.
        reason: &'static str,
        /// Details.
        message: String,
    },
}

/// Interrupt reasons raised by the domain.
pub mod interrupt {
    /// The plan has no replacement for the RW.
    pub const TEMP_INS_ID_NOT_FOUND: &str = "TEMP_INS_ID_NOT_FOUND";
    /// The RW's planned replacement has no temp RO entity (the original's spelling).
    pub const TEMP_RO_FOR_RW_MEAT_LOST: &str = "TEMP_RO_FOR_RW_MEAT_LOST";
    /// An RO to delete is the new instance itself.
    pub const RO_META_INVALID: &str = "RO_META_INVALID";
}
