//! The value a reconcile returns: what happened and when to come back.

use std::time::Duration;

use crate::State;

/// What a call into the state machine did. [`Reconciled::requeue_after`] is the hint for the
/// caller's scheduler; the engine never sleeps itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// The resource is in a stable state and no checker fired (or the event was ignored).
    Stable {
        /// The state.
        state: State,
    },
    /// A checker fired: the resource moved to an unstable state whose entry the next
    /// reconcile runs.
    Transitioned {
        /// The stable state left.
        from: State,
        /// The unstable state entered.
        to: State,
    },
    /// A flow ran to its end in this call (a new run, or a resumed one); if the resource
    /// was still in the flow's state and the trigger no longer fired, it was set `Running`.
    FlowCompleted {
        /// The flow.
        flow: String,
    },
    /// No run completed in this call and the unstable state's trigger no longer fires: the
    /// resource went back to `Running`. (When a run completed, the result is
    /// [`Reconciled::FlowCompleted`].)
    Settled,
    /// A step waits for the outside world.
    Waiting {
        /// The flow.
        flow: String,
        /// The waiting step.
        step: String,
        /// When to call again.
        recheck_after: Duration,
    },
    /// A flow was interrupted; the resource is in `Interrupt` until recovered.
    Interrupted {
        /// The flow.
        flow: String,
        /// The step that interrupted.
        step: String,
        /// The interrupt reason, e.g. `MANY_RETRY`.
        reason: String,
        /// The message.
        message: String,
    },
    /// Recovery was asked for and done; the resource is back in `state`.
    Recovered {
        /// The state restored.
        state: State,
    },
    /// Abandoning was asked for and done ([`crate::abandon`]): the runs named were closed
    /// as abandoned (newest first; none when there was nothing left to close) and the
    /// resource is in `state` (`Running` when it was interrupted or a run was closed).
    Abandoned {
        /// The runs closed.
        runs: Vec<u64>,
        /// The resource's state now.
        state: State,
    },
    /// A checker fired but the machine's [`crate::Admission`] refused the request: the
    /// resource stays in its stable `state`, no run started, and the refusal is recorded on
    /// the resource. It rests until it changes (a caller that can may look again slowly:
    /// what made the request impossible, a busy node or volume, can change by itself).
    Refused {
        /// The stable state the resource stays in.
        state: State,
        /// The refusal's reason, e.g. `UNKNOWN_CLASS`.
        reason: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// A checker fired for a request that is already met; the admission consumed it and
    /// no run started. The resource stays in `state`; the machine looks again at once.
    Satisfied {
        /// The stable state the resource stays in.
        state: State,
        /// The event whose request was consumed.
        event: String,
    },
}

impl Reconciled {
    /// When to reconcile again: at once after a transition, a completed flow or a recovery
    /// (the state changed and there may be more to do) or a consumed request, after the step's
    /// delay when waiting, never for stable, interrupted and refused resources (a change to the resource wakes them).
    pub fn requeue_after(&self) -> Option<Duration> {
        match self {
            Reconciled::Transitioned { .. }
            | Reconciled::FlowCompleted { .. }
            | Reconciled::Settled
            | Reconciled::Recovered { .. }
            | Reconciled::Abandoned { .. }
            | Reconciled::Satisfied { .. } => Some(Duration::ZERO),
            Reconciled::Waiting { recheck_after, .. } => Some(*recheck_after),
            Reconciled::Stable { .. }
            | Reconciled::Interrupted { .. }
            | Reconciled::Refused { .. } => None,
        }
    }
}
