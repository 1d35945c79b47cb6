//! The engine's error type.

use std::time::Duration;

use crate::{MementoError, MetadataError, ResourceError, ResourceKey, State};

/// Any error, boxed: what event checkers and resource backends return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a state-machine or workflow call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource is in a state that is neither stable nor has an entry.
    #[error("no entry is registered for state `{state}` of {resource}")]
    NoEntry {
        /// The resource.
        resource: ResourceKey,
        /// Its state.
        state: State,
    },
    /// Reading or writing the resource failed.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// Reading or writing a memento failed.
    #[error(transparent)]
    Memento(#[from] MementoError),
    /// The flow metadata is invalid.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// A flow was asked for that the metadata does not define.
    #[error("unknown flow `{flow}` for resource type `{resource_type}`")]
    UnknownFlow {
        /// The manager's resource type.
        resource_type: String,
        /// The flow asked for.
        flow: String,
    },
    /// A stored run has no record for a step its flow now has: the metadata changed under an
    /// uncompleted run.
    #[error(
        "run {seq} of flow `{flow}` has no record of step `{step}`: the flow's metadata \
         changed while the run was uncompleted"
    )]
    StepRecordMissing {
        /// The flow.
        flow: String,
        /// The run.
        seq: u64,
        /// The step the metadata has and the run does not.
        step: String,
    },
    /// A step failed and will be retried from the same step; come back after `retry_after`.
    #[error("step `{step}` of flow `{flow}` (run {seq}, try {attempt}) failed: {message}")]
    StepFailed {
        /// The flow.
        flow: String,
        /// The step.
        step: String,
        /// The run.
        seq: u64,
        /// Which try this was (1-based).
        attempt: u32,
        /// The step's error and its sources.
        message: String,
        /// The backoff delay before the retry.
        retry_after: Duration,
    },
    /// Every event checker of a stable state that ran failed (or a flow entry's checker did).
    #[error("event checker for state `{state}` of {resource} failed: {source}")]
    Checker {
        /// The resource.
        resource: ResourceKey,
        /// The state whose checker failed.
        state: State,
        /// The checker's error.
        #[source]
        source: BoxError,
    },
    /// A run of the entry's flow completed, but the resource is still in the flow's unstable
    /// state and its trigger fires again at once: starting the flow again would loop
    /// forever. The resource was moved to `Interrupt` (reason [`crate::LEFT_UNSTABLE`]);
    /// the flow's last step must set a stable state (or clear what fires the trigger).
    #[error(
        "flow `{flow}` (run {seq}) completed but left {resource} in its unstable state \
         `{state}`, whose trigger fires again at once; the flow's last step must set a stable \
         state or clear the trigger (the resource is now in `Interrupt`)"
    )]
    FlowLeftStateUnstable {
        /// The resource.
        resource: ResourceKey,
        /// The flow that completed.
        flow: String,
        /// Its run.
        seq: u64,
        /// The unstable state the resource is still in.
        state: State,
    },
    /// The operator's cleanup of a run being abandoned failed
    /// ([`crate::abandon::AbandonHandler`]): the run and the request are left as they were,
    /// and the next reconcile tries again.
    #[error(
        "cannot abandon run {seq} of flow `{flow}` of {resource}: its cleanup failed: {source}"
    )]
    AbandonCleanup {
        /// The resource.
        resource: ResourceKey,
        /// The run.
        seq: u64,
        /// Its flow.
        flow: String,
        /// What the cleanup said.
        source: BoxError,
    },
    /// The machine's admission could not decide on a request (a read it needs failed); the
    /// resource stays where it is and the reconcile is tried again.
    #[error("admission of {resource} into `{target}` failed: {source}")]
    Admission {
        /// The resource.
        resource: ResourceKey,
        /// The state the request would move it to.
        target: State,
        /// The admission's error.
        #[source]
        source: BoxError,
    },
    /// The manager or state machine was set up wrongly.
    #[error("invalid workflow setup: {0}")]
    Setup(String),
}

impl Error {
    /// When the caller should reconcile again: the backoff delay of a retryable step
    /// failure, `None` for errors that need a fix rather than a retry.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self {
            Error::StepFailed { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
