//! Errors of memento storage.

use std::path::PathBuf;

use crate::BoxError;

/// A memento could not be read or written. No variant loses data: a failed write leaves the
/// store as it was.
#[derive(Debug, thiserror::Error)]
pub enum MementoError {
    /// A file could not be read or written.
    #[error("memento file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stored document is not what the engine wrote.
    #[error("corrupt memento {location}: {source}")]
    Corrupt {
        /// A file path, or `<caretaker>/<key>`.
        location: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored document is larger than a memento may be (the API server's object limit,
    /// [`crate::memento::MAX_MEMENTO_BYTES`]); it is not read.
    #[error(
        "memento {location} holds {bytes} bytes, over the limit of {limit} bytes (the API \
         server's object limit); it was not read"
    )]
    TooLarge {
        /// A file path, or `<caretaker>/<key>`.
        location: String,
        /// The document's size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A stored document parses but is not what the engine writes: a memento file that
    /// holds no workflow run (`{}`, or foreign keys only), or a value that is not a runtime.
    #[error("invalid memento {location}: {message}")]
    NotARuntime {
        /// A file path (with the key, when one value is at fault), or `<caretaker>/<key>`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The write would make the store larger than its budget, even after pruning old runs.
    #[error(
        "memento store {caretaker} would hold {bytes} bytes, over its budget of {budget} bytes; \
         lower the retention or raise the budget"
    )]
    BudgetExceeded {
        /// The store.
        caretaker: String,
        /// The size the write would reach.
        bytes: usize,
        /// The budget.
        budget: usize,
    },
    /// Concurrent writers kept winning; the write was given up after some retries.
    #[error("memento store {caretaker}: write conflicted {attempts} times")]
    Conflict {
        /// The store.
        caretaker: String,
        /// How many tries were made.
        attempts: u32,
    },
    /// Any other backend failure.
    #[error("memento store {caretaker}: {source}")]
    Backend {
        /// The store.
        caretaker: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}
