//! The step trait and its outcomes ([semantics §5](../../../docs/SEMANTICS.md#5-steps-and-their-outcomes)).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::context::output_map;
use crate::{ContextError, JsonMap, StepContext};

/// What a step's `do_step` reports when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step's work is done; its [`Step::output`] is recorded and the flow moves on.
    Done,
    /// The step's work is done and this is its output (instead of [`Step::output`]); made
    /// by [`StepOutcome::done_with`]. Later steps read it with [`StepContext::output`] or
    /// key by key with [`StepContext::get`].
    DoneWith(JsonMap),
    /// The step waits for the outside world. The flow is parked as `waiting`, the reconcile
    /// returns success with a requeue hint, and a later reconcile calls the step again.
    Waiting {
        /// When to come back; `None` uses the manager's `wait_interval`.
        recheck_after: Option<Duration>,
        /// What the step waits for (e.g. `pod demo-1 is ContainerCreating`), if it says:
        /// kept in the step's record ([`crate::StepRuntime::wait_reason`]) until the step
        /// ends, and so in the hook event and the history line of the wait.
        reason: Option<String>,
    },
}

impl StepOutcome {
    /// Waiting, with the manager's default recheck interval.
    pub fn waiting() -> Self {
        StepOutcome::Waiting {
            recheck_after: None,
            reason: None,
        }
    }

    /// Waiting, asking to be called again after `delay`.
    pub fn waiting_for(delay: Duration) -> Self {
        StepOutcome::Waiting {
            recheck_after: Some(delay),
            reason: None,
        }
    }

    /// Waiting for `reason` (what the step waits for, one line), asking to be called again
    /// after `delay`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wf_engine::StepOutcome;
    /// let wait = StepOutcome::waiting_because(Duration::from_secs(1), "pod c1-2 is Pending");
    /// assert!(matches!(wait, StepOutcome::Waiting { reason: Some(r), .. } if r == "pod c1-2 is Pending"));
    /// ```
    pub fn waiting_because(delay: Duration, reason: impl Into<String>) -> Self {
        StepOutcome::Waiting {
            recheck_after: Some(delay),
            reason: Some(reason.into()),
        }
    }

    /// Done, with `output` (a serde struct, or a map with string keys) as the step's
    /// output. A value that does not serialize into a JSON object is a [`ContextError`],
    /// which interrupts the run with [`crate::BAD_CONTEXT`] when returned with `?`.
    ///
    /// ```
    /// # use wf_engine::StepOutcome;
    /// #[derive(serde::Serialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct Allocated { bucket_id: String }
    ///
    /// let done = StepOutcome::done_with(&Allocated { bucket_id: "b-1".into() }).unwrap();
    /// let StepOutcome::DoneWith(map) = done else { unreachable!() };
    /// assert_eq!(map["bucketId"], "b-1");
    /// ```
    pub fn done_with<T: serde::Serialize + ?Sized>(output: &T) -> Result<Self, ContextError> {
        output_map(output).map(StepOutcome::DoneWith)
    }
}

/// Why a step did not succeed.
///
/// Any `std::error::Error` converts into [`StepError::Failed`] with `?`, so a step body reads
/// like ordinary async Rust. This type deliberately does not implement `std::error::Error`
/// itself (as `anyhow::Error` does not), which is what makes that blanket conversion possible.
pub enum StepError {
    /// A qualitative failure: the flow ends `failedAndCompleted` and the resource moves to
    /// `Interrupt` until a human asks for recovery.
    Interrupt {
        /// A short machine-readable reason, e.g. `NO_AVAILABLE_NODE`.
        reason: String,
        /// A human-readable message.
        message: String,
    },
    /// A transient failure: the step is retried (with backoff) on a later reconcile.
    Failed(Box<dyn StdError + Send + Sync + 'static>),
}

impl StepError {
    /// An interrupt with a reason and a message.
    pub fn interrupt(reason: impl Into<String>, message: impl Into<String>) -> Self {
        StepError::Interrupt {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A retryable failure described by a message.
    pub fn failed(message: impl Into<String>) -> Self {
        StepError::Failed(message.into().into())
    }

    /// The message to record: the error and its sources, joined by `: `.
    pub fn message(&self) -> String {
        match self {
            StepError::Interrupt { reason, message } => format!("{reason}: {message}"),
            StepError::Failed(err) => {
                let mut text = err.to_string();
                let mut source = err.source();
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                text
            }
        }
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Interrupt { reason, message } => f
                .debug_struct("Interrupt")
                .field("reason", reason)
                .field("message", message)
                .finish(),
            StepError::Failed(err) => f.debug_tuple("Failed").field(err).finish(),
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl<E> From<E> for StepError
where
    E: StdError + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        StepError::Failed(Box::new(err))
    }
}

/// One step of a flow. A fresh instance is made (by the factory registered for its class
/// name) for every execution, so fields are free to hold what `init` read.
///
/// The three phases mirror [semantics §5](../../../docs/SEMANTICS.md#5-steps-and-their-outcomes):
/// `init` reads the context, `do_step` does the work (and must stop when `cancel` fires;
/// the engine also drops its future), `output` returns what later steps see (or `do_step`
/// returns it with [`StepOutcome::done_with`]).
///
/// Steps must be idempotent: after a crash a step that had started but not completed is run
/// again (a *resume*, not counted as a failure). A step that completed is never run again
/// for the same runtime.
#[async_trait]
pub trait Step: Send + 'static {
    /// Reads what the step needs from the context.
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        let _ = ctx;
        Ok(())
    }

    /// Does the work.
    async fn do_step(&mut self, cancel: &CancellationToken) -> Result<StepOutcome, StepError>;

    /// Values for later steps' contexts; called once after `do_step` returned
    /// [`StepOutcome::Done`] (not after [`StepOutcome::DoneWith`], which carries its own).
    fn output(&self) -> JsonMap {
        JsonMap::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn any_error_converts_into_a_retryable_failure_with_its_sources() {
        fn body() -> Result<(), StepError> {
            Err(Outer(std::io::Error::other("disk on fire")))?;
            Ok(())
        }
        let err = body().unwrap_err();
        assert!(matches!(err, StepError::Failed(_)));
        assert_eq!(err.message(), "outer: disk on fire");
    }

    #[test]
    fn interrupt_message_carries_reason() {
        let err = StepError::interrupt("NO_AVAILABLE_NODE", "no node passed the probe");
        assert_eq!(
            err.to_string(),
            "NO_AVAILABLE_NODE: no node passed the probe"
        );
    }
}
