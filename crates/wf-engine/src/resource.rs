//! The resource contract (`StateResource`): what the engine needs from a managed object.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::{BoxError, Refusal, State};

/// Identifies one resource: namespace and name. Locks, memento stores and cancellation are
/// all keyed by it, never by the name alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// The namespace (an empty string for cluster-scoped or unnamespaced resources).
    pub namespace: String,
    /// The name, unique within the namespace.
    pub name: String,
}

impl ResourceKey {
    /// A key from a namespace and a name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ResourceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Annotation changes applied in one write: `Some(value)` sets a key, `None` removes it.
pub type AnnotationPatch = BTreeMap<String, Option<String>>;

/// An error from the resource's backend.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The resource does not exist (any more).
    #[error("resource {0} not found")]
    NotFound(ResourceKey),
    /// A write lost an optimistic-concurrency race; the caller may re-read and retry.
    #[error("conflict writing resource {key}: {message}")]
    Conflict {
        /// The resource written.
        key: ResourceKey,
        /// What the backend said.
        message: String,
    },
    /// Any other backend failure.
    #[error("resource backend failed for {key}: {source}")]
    Backend {
        /// The resource involved.
        key: ResourceKey,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl ResourceError {
    /// Whether the resource is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ResourceError::NotFound(_))
    }
}

/// A managed object whose lifecycle is driven by a state machine.
///
/// A value of this type is a snapshot: `state()` and `annotation()` read the snapshot, the
/// async methods go to the source of truth and return a fresh snapshot. Implementations exist
/// for Kubernetes custom resources (`wf-kube`) and in memory ([`crate::MemoryResource`]).
#[async_trait]
pub trait StateResource: Clone + Send + Sync + 'static {
    /// The resource's name.
    fn name(&self) -> &str;

    /// The resource's namespace.
    fn namespace(&self) -> &str;

    /// The state recorded in this snapshot (may be empty).
    fn state(&self) -> State;

    /// The value of an annotation in this snapshot.
    fn annotation(&self, key: &str) -> Option<String>;

    /// Reads a fresh copy from the source of truth.
    async fn fetch(&self) -> Result<Self, ResourceError>;

    /// Persists a new state and returns the fresh copy. A failed write is an error, never a
    /// silent success.
    async fn update_state(&self, state: State) -> Result<Self, ResourceError>;

    /// Applies annotation changes with a conflict-safe write (a patch, not a full update of
    /// a stale copy) and returns the fresh copy.
    async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError>;

    /// True when the resource is gone, is being deleted, or carries `cancelled: "true"`.
    async fn is_cancelled(&self) -> bool;

    /// The refusal recorded on this snapshot, if any ([`StateResource::record_refusal`]).
    /// The machine clears it when nothing is refused any more, and records a new refusal
    /// only when it differs from this one (or this one is not current), so the same
    /// refusal is not reported again on every reconcile. The default records nothing:
    /// `None`.
    fn refusal(&self) -> Option<Refusal> {
        None
    }

    /// Whether the recorded refusal was recorded for the resource as it is now (e.g. for
    /// its current generation): an equal refusal of a changed resource is recorded and
    /// reported again. Default `true`.
    fn refusal_is_current(&self) -> bool {
        true
    }

    /// Records that the request this resource carries was refused (`Some`), or that the
    /// refusal is over (`None`: the request was withdrawn, changed so that it passes, or
    /// admitted), e.g. as a condition a user sees; returns the fresh copy. The default
    /// records nothing.
    async fn record_refusal(&self, refusal: Option<&Refusal>) -> Result<Self, ResourceError> {
        let _ = refusal;
        Ok(self.clone())
    }

    /// The resource's namespace and name.
    fn key(&self) -> ResourceKey {
        ResourceKey::new(self.namespace(), self.name())
    }
}
