//! Hooks: code called at every transition of a runtime
//! ([semantics §13](../../../../docs/SEMANTICS.md#13-hooks-and-history)), and the default
//! history recorder.

mod history;

use std::sync::Arc;

use async_trait::async_trait;

pub use history::{
    parse_history, read_history, HistoryError, HistoryEvent, HistoryEventType, HistoryRecorder,
};

use crate::{RefusalEvent, ResourceKey, WorkflowRuntime};

/// What a hook is told: which resource, which run, which step.
#[derive(Clone, Copy, Debug)]
pub struct HookEvent<'a> {
    /// The resource type of the manager (e.g. `shared`).
    pub resource_type: &'a str,
    /// The resource.
    pub resource: &'a ResourceKey,
    /// The run's sequence number.
    pub seq: u64,
    /// The run, as just saved.
    pub runtime: &'a WorkflowRuntime,
    /// The index of the step in `runtime.running_steps`, for step events.
    pub step: Option<usize>,
    /// The error, for a failed step or an interrupt.
    pub error: Option<&'a str>,
    /// A replay: the transition was saved by a process that stopped before its hooks ran
    /// (or may have), and is delivered again when a new process takes the run up. A hook
    /// that must see each transition once drops a replay it already has (the history
    /// recorder does); counters should skip replays.
    pub replayed: bool,
}

impl HookEvent<'_> {
    /// The step record of a step event.
    pub fn step_runtime(&self) -> Option<&crate::StepRuntime> {
        self.step.and_then(|i| self.runtime.running_steps.get(i))
    }

    /// What the step of a step event waits for, when it waits and said why
    /// ([`crate::StepOutcome::waiting_because`]).
    pub fn wait_reason(&self) -> Option<&str> {
        self.step_runtime()
            .filter(|s| s.step_status == crate::StepStatus::Waiting)
            .and_then(|s| s.wait_reason.as_deref())
    }
}

/// Called after each persisted transition. Every method has an empty default; hooks handle
/// (and log) their own failures, which never fail a flow.
#[async_trait]
pub trait WorkflowHook: Send + Sync {
    /// A run was created and saved.
    async fn on_wf_init(&self, event: &HookEvent<'_>) {
        let _ = event;
    }
    /// A step was marked `inited` and is about to run: for the first time, again after a
    /// failure (its `retry_times` went up) or again after a crash (its `resume_times` went
    /// up).
    async fn on_step_init(&self, event: &HookEvent<'_>) {
        let _ = event;
    }
    /// A step reported `Waiting`.
    async fn on_step_waiting(&self, event: &HookEvent<'_>) {
        let _ = event;
    }
    /// A step completed, or failed (`event.error` is set then).
    async fn on_step_completed(&self, event: &HookEvent<'_>) {
        let _ = event;
    }
    /// All steps completed.
    async fn on_wf_completed(&self, event: &HookEvent<'_>) {
        let _ = event;
    }
    /// The run was interrupted; the resource moved to `Interrupt`.
    async fn on_wf_interrupt(&self, event: &HookEvent<'_>) {
        let _ = event;
    }
    /// The run was abandoned on request ([`crate::abandon`]): it is closed
    /// `failedAndCompleted`, `event.error` is its reason ([`crate::ABANDONED`] …).
    async fn on_wf_abandoned(&self, event: &HookEvent<'_>) {
        let _ = event;
    }

    /// A request was refused before it left the stable state: no run exists. Called once
    /// per new refusal (not again while the same refusal stands).
    async fn on_refused(&self, event: &RefusalEvent<'_>) {
        let _ = event;
    }
}

/// A transition of a run, for hooks that treat every hook point alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A run was created (`on_wf_init`).
    FlowStarted,
    /// A step was marked `inited` (`on_step_init`).
    StepStarted,
    /// A step waits (`on_step_waiting`).
    StepWaiting,
    /// A step completed (`on_step_completed` without an error).
    StepCompleted,
    /// A step failed (`on_step_completed` with an error).
    StepFailed,
    /// The run completed (`on_wf_completed`).
    FlowCompleted,
    /// The run was interrupted (`on_wf_interrupt`).
    FlowInterrupted,
    /// The run was abandoned on request (`on_wf_abandoned`).
    FlowAbandoned,
}

/// A hook with one method for every transition. Anything that implements it is a
/// [`WorkflowHook`].
///
/// ```
/// use wf_engine::hook::{HookEvent, Transition, TransitionHook};
///
/// struct Log;
///
/// #[wf_engine::async_trait]
/// impl TransitionHook for Log {
///     async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
///         let step = event.step_runtime().map(|s| s.step_name.as_str()).unwrap_or("-");
///         eprintln!("{} {} {step} {transition:?}", event.resource, event.runtime.flow_name);
///     }
/// }
/// ```
#[async_trait]
pub trait TransitionHook: Send + Sync {
    /// Called after each persisted transition.
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition);

    /// Called when a request is refused ([`WorkflowHook::on_refused`]); nothing by default.
    async fn on_refused(&self, event: &RefusalEvent<'_>) {
        let _ = event;
    }
}

#[async_trait]
impl<T: TransitionHook> WorkflowHook for T {
    async fn on_wf_init(&self, event: &HookEvent<'_>) {
        self.on_transition(event, Transition::FlowStarted).await;
    }
    async fn on_step_init(&self, event: &HookEvent<'_>) {
        self.on_transition(event, Transition::StepStarted).await;
    }
    async fn on_step_waiting(&self, event: &HookEvent<'_>) {
        self.on_transition(event, Transition::StepWaiting).await;
    }
    async fn on_step_completed(&self, event: &HookEvent<'_>) {
        let transition = if event.error.is_some() {
            Transition::StepFailed
        } else {
            Transition::StepCompleted
        };
        self.on_transition(event, transition).await;
    }
    async fn on_wf_completed(&self, event: &HookEvent<'_>) {
        self.on_transition(event, Transition::FlowCompleted).await;
    }
    async fn on_wf_interrupt(&self, event: &HookEvent<'_>) {
        self.on_transition(event, Transition::FlowInterrupted).await;
    }
    async fn on_wf_abandoned(&self, event: &HookEvent<'_>) {
        self.on_transition(event, Transition::FlowAbandoned).await;
    }

    async fn on_refused(&self, event: &RefusalEvent<'_>) {
        TransitionHook::on_refused(self, event).await;
    }
}

/// The hook points, for dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookPoint {
    WfInit,
    StepInit,
    StepWaiting,
    StepCompleted,
    WfCompleted,
    WfInterrupt,
    WfAbandoned,
}

/// Several hooks called in order.
#[derive(Clone, Default)]
pub(crate) struct Hooks(pub(crate) Vec<Arc<dyn WorkflowHook>>);

impl Hooks {
    pub(crate) async fn refused(&self, event: &RefusalEvent<'_>) {
        for hook in &self.0 {
            hook.on_refused(event).await;
        }
    }

    pub(crate) async fn call(&self, point: HookPoint, event: &HookEvent<'_>) {
        for hook in &self.0 {
            match point {
                HookPoint::WfInit => hook.on_wf_init(event).await,
                HookPoint::StepInit => hook.on_step_init(event).await,
                HookPoint::StepWaiting => hook.on_step_waiting(event).await,
                HookPoint::StepCompleted => hook.on_step_completed(event).await,
                HookPoint::WfCompleted => hook.on_wf_completed(event).await,
                HookPoint::WfInterrupt => hook.on_wf_interrupt(event).await,
                HookPoint::WfAbandoned => hook.on_wf_abandoned(event).await,
            }
        }
    }
}
