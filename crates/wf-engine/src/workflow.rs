//! The workflow of one resource: run a flow, resume the last uncompleted run
//! ([semantics §7](../../../docs/SEMANTICS.md#7-resumption-which-run-an-entry-finishes)),
//! retry an interrupted step, and the common entry of every unstable state
//! ([semantics §8](../../../docs/SEMANTICS.md#8-the-entry-of-an-unstable-state)).

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::abandon::{abandon_reason, abandoned_on_request, runs_to_abandon, AbandonedRun};
use crate::failpoints::{self, failpoint};
use crate::hook::{HookEvent, HookPoint};
use crate::memento::{parse_memento_key, MementoCaretaker};
use crate::{
    AnnotationPatch, Checker, Error, Event, FlowStatus, JsonMap, Reconciled, ResourceKey,
    ResumeReport, Resumption, RunRef, State, StateResource, StepStatus, StoredRuntime,
    WorkflowManager, WorkflowRuntime, ABANDONED, LEFT_UNSTABLE, SUPERSEDED,
};

/// How a run of a flow ended this time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every step completed.
    Completed,
    /// The run was already over (`completed` or `failedAndCompleted`); nothing ran.
    AlreadyFinished,
    /// A step waits; call again after `recheck_after`.
    Waiting {
        /// The waiting step.
        step: String,
        /// When to come back.
        recheck_after: Duration,
    },
    /// The run was interrupted; the resource is in `Interrupt`.
    Interrupted {
        /// The step.
        step: String,
        /// The reason.
        reason: String,
        /// The message.
        message: String,
    },
}

impl RunOutcome {
    /// Whether the run is over without an interrupt: [`RunOutcome::Completed`] or
    /// [`RunOutcome::AlreadyFinished`].
    pub fn is_completed(&self) -> bool {
        matches!(self, RunOutcome::Completed | RunOutcome::AlreadyFinished)
    }
}

/// What one run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// The run's sequence number.
    pub seq: u64,
    /// The flow.
    pub flow: String,
    /// How it ended this time.
    pub outcome: RunOutcome,
}

impl From<RunReport> for Reconciled {
    fn from(report: RunReport) -> Self {
        match report.outcome {
            RunOutcome::Completed | RunOutcome::AlreadyFinished => {
                Reconciled::FlowCompleted { flow: report.flow }
            }
            RunOutcome::Waiting {
                step,
                recheck_after,
            } => Reconciled::Waiting {
                flow: report.flow,
                step,
                recheck_after,
            },
            RunOutcome::Interrupted {
                step,
                reason,
                message,
            } => Reconciled::Interrupted {
                flow: report.flow,
                step,
                reason,
                message,
            },
        }
    }
}

/// The runs of one resource. Made by [`WorkflowManager::resource_workflow`], which loads the
/// resource's memento store once; every transition is then written through.
pub struct ResourceWorkflow<R: StateResource> {
    pub(crate) manager: WorkflowManager<R>,
    pub(crate) resource: R,
    pub(crate) key: ResourceKey,
    pub(crate) caretaker: MementoCaretaker,
}

impl<R: StateResource> std::fmt::Debug for ResourceWorkflow<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceWorkflow")
            .field("resource", &self.key)
            .field("caretaker", &self.caretaker)
            .finish()
    }
}

impl<R: StateResource> ResourceWorkflow<R> {
    pub(crate) fn new(
        manager: WorkflowManager<R>,
        resource: R,
        caretaker: MementoCaretaker,
    ) -> Self {
        let key = resource.key();
        ResourceWorkflow {
            manager,
            resource,
            key,
            caretaker,
        }
    }

    /// The resource.
    pub fn resource_key(&self) -> &ResourceKey {
        &self.key
    }

    /// Every stored run, by sequence.
    pub fn runtimes(&self) -> Result<Vec<StoredRuntime>, Error> {
        Ok(self.caretaker.runtimes()?)
    }

    /// Warns, naming the memento store (its file), when the resource is found in the
    /// unstable state of `flow` with no run at all in its store: a run was there (the state
    /// was set by an earlier process), so the memento was deleted or lost, and the flow will
    /// start again from its first step.
    /// A resource whose stored state is empty is brand-new (it reads as `Creating`): nothing
    /// was lost, and nothing is said.
    pub(crate) fn warn_if_memento_lost(&self, flow: &str) {
        if self.caretaker.shared_entries().is_empty() && !self.resource.state().is_empty() {
            tracing::warn!(
                resource = %self.key,
                state = %self.resource.state().effective(),
                flow,
                memento = %self.caretaker.location(),
                "the resource is in an unstable state but its memento holds no run: if a flow \
                 was running, its memento was deleted or lost, and the flow starts again from \
                 its first step"
            );
        }
    }

    /// The memento store's cached content (key to JSON).
    pub fn memento_entries(&self) -> &std::collections::BTreeMap<String, String> {
        self.caretaker.entries()
    }

    /// Creates a run of `flow` with init context `{_resourceName, _resourceNameSpace}` ∪
    /// `params` and runs it. An unknown flow is an error. An older uncompleted run of the
    /// same flow is closed first ([`crate::SUPERSEDED`]): it is never resumed after this one.
    pub async fn run(
        &mut self,
        flow: &str,
        params: JsonMap,
        cancel: &CancellationToken,
    ) -> Result<RunReport, Error> {
        let inner = self.manager.inner.clone();
        let Some(meta) = inner.catalog.get(flow).cloned() else {
            return Err(Error::UnknownFlow {
                resource_type: inner.resource_type.clone(),
                flow: flow.to_owned(),
            });
        };
        let mut context = JsonMap::new();
        context.insert(
            inner.config.resource_name_key.clone(),
            Value::String(self.key.name.clone()),
        );
        context.insert(
            inner.config.resource_namespace_key.clone(),
            Value::String(self.key.namespace.clone()),
        );
        context.extend(params);
        let seq = self.caretaker.next_seq();
        for old in self.caretaker.uncompleted()? {
            if old.runtime.flow_name == flow {
                let reason = format!("{SUPERSEDED}: run {seq} of the same flow started after it");
                self.close(old, reason, false).await?;
            }
        }
        let runtime = WorkflowRuntime::new(&meta, context, Utc::now());
        self.caretaker.save(seq, &runtime).await?;
        inner.take_up(&self.key, seq);
        self.hook(HookPoint::WfInit, seq, &runtime, None, None)
            .await;
        tracing::info!(resource = %self.key, flow, seq, "flow started");
        let outcome = self.execute(seq, runtime, cancel).await?;
        Ok(RunReport {
            seq,
            flow: flow.to_owned(),
            outcome,
        })
    }

    /// Finishes the uncompleted run that `resumption` picks for the entry of `flow`, before
    /// anything new starts ([semantics §7](../../../docs/SEMANTICS.md#7-resumption-which-run-an-entry-finishes)):
    ///
    /// - [`Resumption::AnyFlow`]: the newest uncompleted run of any flow;
    /// - [`Resumption::ThisFlow`]: the newest uncompleted run of `flow`; runs of other flows
    ///   are left alone and named in [`ResumeReport::left_alone`];
    /// - [`Resumption::AbandonOthers`]: the same, and runs of other flows are closed
    ///   ([`crate::ABANDONED`]) and named in [`ResumeReport::abandoned`].
    ///
    /// Under every policy an uncompleted run older than another run of its own flow is
    /// closed ([`crate::SUPERSEDED`]) instead of being resumed.
    pub async fn run_last_uncompleted(
        &mut self,
        flow: &str,
        resumption: Resumption,
        cancel: &CancellationToken,
    ) -> Result<ResumeReport, Error> {
        let mut report = ResumeReport::default();
        let mut candidate = None;
        for stored in self.caretaker.uncompleted()? {
            let of_this_flow = stored.runtime.flow_name == flow;
            let run = RunRef {
                seq: stored.seq,
                flow: stored.runtime.flow_name.clone(),
            };
            if let Some(newer) = self.newest_seq_of(&run.flow).filter(|n| *n > run.seq) {
                let reason = format!("{SUPERSEDED}: run {newer} of the same flow started after it");
                self.close(stored, reason, false).await?;
                report.superseded.push(run);
                continue;
            }
            if of_this_flow || resumption == Resumption::AnyFlow {
                // Newest first: the first one is the one to resume; older runs of other
                // flows wait for their turn (AnyFlow).
                if candidate.is_none() {
                    candidate = Some(stored);
                }
                continue;
            }
            match resumption {
                Resumption::AbandonOthers => {
                    let reason = format!(
                        "{ABANDONED}: the entry of flow `{flow}` abandons uncompleted runs of \
                         other flows"
                    );
                    self.close(stored, reason, false).await?;
                    report.abandoned.push(run);
                }
                // ThisFlow (AnyFlow took every run above).
                Resumption::ThisFlow | Resumption::AnyFlow => report.left_alone.push(run),
            }
        }
        for run in &report.left_alone {
            tracing::warn!(resource = %self.key, flow, %resumption, left_alone = %run, "an uncompleted run of another flow is left alone");
        }
        let Some(stored) = candidate else {
            return Ok(report);
        };
        tracing::info!(resource = %self.key, flow = %stored.runtime.flow_name, seq = stored.seq, %resumption, "resuming uncompleted run");
        let resumed_flow = stored.runtime.flow_name.clone();
        let outcome = self.execute(stored.seq, stored.runtime, cancel).await?;
        report.resumed = Some(RunReport {
            seq: stored.seq,
            flow: resumed_flow,
            outcome,
        });
        Ok(report)
    }

    /// The highest sequence number stored for `flow` (any status), from the memento keys.
    fn newest_seq_of(&self, flow: &str) -> Option<u64> {
        self.caretaker
            .entries()
            .keys()
            .filter_map(|key| parse_memento_key(key))
            .filter(|(_, f)| *f == flow)
            .map(|(seq, _)| seq)
            .max()
    }

    /// Makes the interrupted run (the one with the highest sequence, when it is
    /// `failedAndCompleted`) runnable again: `failed`, its run-level retry and resume
    /// counters reset, and either every step back to `prepared` (`recoverFromFirstStep`) or
    /// the failed step's retries reset. Returns whether there was such a run.
    pub async fn retry_interrupted_step(&mut self) -> Result<bool, Error> {
        let Some(StoredRuntime {
            seq, mut runtime, ..
        }) = self.caretaker.latest()?
        else {
            return Ok(false);
        };
        if runtime.flow_status != FlowStatus::FailedAndCompleted {
            return Ok(false);
        }
        let from_first = self
            .manager
            .inner
            .catalog
            .get(&runtime.flow_name)
            .is_some_and(|f| f.recover_from_first_step);
        runtime.flow_status = FlowStatus::Failed;
        runtime.retry_times = 0;
        runtime.resume_times = 0;
        runtime.complete_time = None;
        if from_first {
            for step in &mut runtime.running_steps {
                step.step_status = StepStatus::Prepared;
                step.retry_times = 0;
                step.resume_times = 0;
                step.context_output = JsonMap::new();
            }
        } else if let Some(step) = runtime
            .running_steps
            .iter_mut()
            .find(|s| s.step_status != StepStatus::Completed)
        {
            step.retry_times = 0;
            step.resume_times = 0;
        }
        self.caretaker.save(seq, &runtime).await?;
        tracing::info!(resource = %self.key, flow = %runtime.flow_name, seq, from_first, "interrupted run made retryable");
        Ok(true)
    }

    /// The entry of every unstable state ([semantics §8](../../../docs/SEMANTICS.md#8-the-entry-of-an-unstable-state)):
    /// check for and watch for cancellation, finish the uncompleted run `resumption` picks,
    /// then re-check the trigger: no event sets `Running`, an event starts a new run of
    /// `flow` with the event's parameters.
    ///
    /// When a run of `flow` completes (resumed or new) and the resource is still in the
    /// state it entered with, the trigger is checked at once: no event sets `Running` once
    /// and the result is [`Reconciled::FlowCompleted`]; an event means the flow would run
    /// again and again, so the resource is interrupted ([`crate::LEFT_UNSTABLE`]) and the
    /// call fails with [`Error::FlowLeftStateUnstable`].
    ///
    /// Once a run has ended here (completed or interrupted, not waiting), a cancel request
    /// (the `cancelled` annotation) is removed: it was for that run, and left in place it
    /// would stop the next flow at once.
    pub async fn common_main_enter(
        &mut self,
        flow: &str,
        resumption: Resumption,
        checker: &Checker<R>,
    ) -> Result<Reconciled, Error> {
        let result = self.main_enter(flow, resumption, checker).await;
        let ended = match &result {
            Ok(Reconciled::Waiting { .. }) => false,
            Ok(_) => true,
            Err(err) => matches!(err, Error::FlowLeftStateUnstable { .. }),
        };
        if ended {
            self.release_cancel_request().await?;
        }
        result
    }

    /// Removes the cancel request (the configured `cancelled` annotation) when the resource
    /// carries one.
    async fn release_cancel_request(&self) -> Result<(), Error> {
        let key = &self.manager.inner.config.annotations.cancelled;
        let fresh = self.resource.fetch().await?;
        if fresh.annotation(key).is_some() {
            fresh
                .patch_annotations(&AnnotationPatch::from([(key.clone(), None)]))
                .await?;
            tracing::info!(resource = %self.key, annotation = %key, "the run a cancel request was for has ended; request removed");
        }
        Ok(())
    }

    async fn main_enter(
        &mut self,
        flow: &str,
        resumption: Resumption,
        checker: &Checker<R>,
    ) -> Result<Reconciled, Error> {
        let scope = self.manager.inner.cancels.scope(
            &self.resource,
            self.manager.inner.config.cancel_poll_interval,
        );
        let cancel = scope.token.clone();
        // The watcher only runs when this task yields; a step that answers at once would
        // finish (or keep waiting) before it ever looks. Look once before anything runs.
        if self.resource.is_cancelled().await {
            cancel.cancel();
        }
        let entered = self.resource.state().effective();

        let resumed = self.run_last_uncompleted(flow, resumption, &cancel).await?;
        let mut completed = None;
        if let Some(report) = resumed.resumed {
            if !report.outcome.is_completed() {
                return Ok(report.into());
            }
            completed = Some(report);
        }

        let fresh = self.resource.fetch().await?;
        if let Some(done) = &completed {
            if fresh.state().effective() != entered {
                // The completed run moved the resource on (usually to a stable state).
                return Ok(Reconciled::FlowCompleted {
                    flow: done.flow.clone(),
                });
            }
        }
        let Some(event) = self.check(checker, &fresh)? else {
            failpoint!(failpoints::STATE_UPDATE_BEFORE);
            fresh.update_state(State::RUNNING).await?;
            failpoint!(failpoints::STATE_UPDATE_AFTER);
            return Ok(match completed {
                Some(done) => {
                    tracing::info!(resource = %self.key, flow = %done.flow, "flow completed; trigger no longer fires; Running");
                    Reconciled::FlowCompleted { flow: done.flow }
                }
                None => {
                    tracing::info!(resource = %self.key, flow, "trigger no longer fires; back to Running");
                    Reconciled::Settled
                }
            });
        };
        if let Some(done) = completed.filter(|done| done.flow == flow) {
            return self.left_unstable(done, entered).await;
        }
        let report = self.run(flow, event.params, &cancel).await?;
        if !report.outcome.is_completed() {
            return Ok(report.into());
        }
        let fresh = self.resource.fetch().await?;
        if fresh.state().effective() != entered {
            return Ok(report.into());
        }
        if self.check(checker, &fresh)?.is_some() {
            return self.left_unstable(report, entered).await;
        }
        failpoint!(failpoints::STATE_UPDATE_BEFORE);
        fresh.update_state(State::RUNNING).await?;
        failpoint!(failpoints::STATE_UPDATE_AFTER);
        tracing::info!(resource = %self.key, flow, "flow completed in its unstable state; trigger no longer fires; Running");
        drop(scope);
        Ok(report.into())
    }

    fn check(&self, checker: &Checker<R>, fresh: &R) -> Result<Option<Event>, Error> {
        checker(fresh).map_err(|source| Error::Checker {
            resource: self.key.clone(),
            state: fresh.state().effective(),
            source,
        })
    }

    /// A run of the entry's flow completed, the resource is still in `state` and the
    /// trigger fires again: interrupt the resource rather than loop, and fail.
    async fn left_unstable(&mut self, done: RunReport, state: State) -> Result<Reconciled, Error> {
        let error = Error::FlowLeftStateUnstable {
            resource: self.key.clone(),
            flow: done.flow,
            seq: done.seq,
            state,
        };
        tracing::error!(resource = %self.key, %error, "flow left its unstable state's trigger firing");
        self.record_interrupt(LEFT_UNSTABLE, &error.to_string())
            .await?;
        Err(error)
    }

    /// See [`crate::WorkflowManager`]'s `close_finished_runs`: every uncompleted run whose
    /// steps all completed is saved `completed`, its last step's hooks replayed when this
    /// process had not delivered them, then `WfCompleted` hooked (as a replay: it is late).
    /// A run stopped in its last step (every other step completed) is finished: that step
    /// runs again as a resume (steps are idempotent), since it is what moved the resource
    /// to the stable state it is in.
    pub async fn close_finished_runs(&mut self) -> Result<Vec<u64>, Error> {
        let mut closed = Vec::new();
        for stored in self.caretaker.uncompleted()? {
            let steps = &stored.runtime.running_steps;
            let all_done = steps.iter().all(|s| s.step_status == StepStatus::Completed);
            // Stopped in its last step, which had already moved the resource to a stable
            // state (its write landed, its save did not): finish that step, as a resume.
            let in_last_step = steps.split_last().is_some_and(|(last, rest)| {
                rest.iter().all(|s| s.step_status == StepStatus::Completed)
                    && matches!(
                        last.step_status,
                        StepStatus::Inited | StepStatus::Prepared | StepStatus::Waiting
                    )
            });
            if in_last_step {
                tracing::warn!(resource = %self.key, flow = %stored.runtime.flow_name, seq = stored.seq, "finishing a run stopped in its last step after it had moved the resource to a stable state");
                let outcome = self
                    .execute(stored.seq, stored.runtime, &CancellationToken::new())
                    .await?;
                if outcome.is_completed() {
                    closed.push(stored.seq);
                }
                continue;
            }
            if !all_done {
                continue;
            }
            let (seq, mut runtime) = (stored.seq, stored.runtime);
            if self.manager.inner.take_up(&self.key, seq) {
                self.replay_last_transition(seq, &runtime).await;
            }
            runtime.flow_status = FlowStatus::Completed;
            runtime.complete_time = runtime
                .running_steps
                .iter()
                .filter_map(|s| s.last_step_complete_time)
                .max()
                .or_else(|| Some(Utc::now()));
            runtime.error_message.clear();
            self.caretaker.save_header(seq, &runtime).await?;
            self.hook_as(HookPoint::WfCompleted, seq, &runtime, None, None, true)
                .await;
            tracing::warn!(resource = %self.key, flow = %runtime.flow_name, seq, "closed a run whose steps had all completed but whose completion was not saved (the process stopped in between)");
            closed.push(seq);
        }
        if let Some(newest) = self.caretaker.runtimes()?.pop() {
            if newest.runtime.flow_status.is_finished()
                && self.manager.inner.take_up(&self.key, newest.seq)
            {
                self.replay_end(newest.seq, &newest.runtime).await;
            }
        }
        Ok(closed)
    }

    /// Replays the hooks that end a finished run: `WfCompleted`, or the failed step's
    /// `StepCompleted` and `WfInterrupt`.
    async fn replay_end(&self, seq: u64, runtime: &WorkflowRuntime) {
        match runtime.flow_status {
            FlowStatus::Completed => {
                self.hook_as(HookPoint::WfCompleted, seq, runtime, None, None, true)
                    .await;
            }
            FlowStatus::FailedAndCompleted => {
                let failed = runtime
                    .running_steps
                    .iter()
                    .position(|s| s.step_status == StepStatus::Failed);
                if abandoned_on_request(runtime) {
                    let error = runtime.error_message.as_str();
                    self.hook_as(
                        HookPoint::WfAbandoned,
                        seq,
                        runtime,
                        None,
                        Some(error),
                        true,
                    )
                    .await;
                    return;
                }
                if runtime.error_message.starts_with(ABANDONED) {
                    // Closed by an entry's `AbandonOthers`: no hooks ran.
                    return;
                }
                // A run closed without an interrupt (superseded) had no hooks.
                let Some(pos) = failed else { return };
                let error = runtime.error_message.as_str();
                self.hook_as(
                    HookPoint::StepCompleted,
                    seq,
                    runtime,
                    Some(pos),
                    Some(error),
                    true,
                )
                .await;
                self.hook_as(
                    HookPoint::WfInterrupt,
                    seq,
                    runtime,
                    Some(pos),
                    Some(error),
                    true,
                )
                .await;
            }
            _ => {}
        }
    }

    /// Delivers again the hooks of the last transition saved in `runtime`, marked as a
    /// replay: the process that saved it may have stopped before they ran. Hooks that must
    /// see each transition once drop a replay they already have.
    pub(crate) async fn replay_last_transition(&self, seq: u64, runtime: &WorkflowRuntime) {
        let Some((point, step)) = last_transition(runtime) else {
            return;
        };
        let error = step
            .and_then(|i| runtime.running_steps.get(i))
            .filter(|s| s.step_status == StepStatus::Failed)
            .and_then(|s| s.last_error.clone());
        self.hook_as(point, seq, runtime, step, error.as_deref(), true)
            .await;
    }

    /// Closes an uncompleted run that must never be resumed: `failedAndCompleted`, with
    /// `reason` as its error. Logged as a warning, or as information when a person asked
    /// for it (`requested`: an abandon).
    async fn close(
        &mut self,
        old: StoredRuntime,
        reason: String,
        requested: bool,
    ) -> Result<WorkflowRuntime, Error> {
        let mut runtime = old.runtime;
        runtime.flow_status = FlowStatus::FailedAndCompleted;
        runtime.complete_time = Some(Utc::now());
        if requested {
            tracing::info!(resource = %self.key, flow = %runtime.flow_name, seq = old.seq, %reason, "closing an uncompleted run on request");
        } else {
            tracing::warn!(resource = %self.key, flow = %runtime.flow_name, seq = old.seq, %reason, "closing an uncompleted run");
        }
        runtime.error_message = reason;
        self.caretaker.save(old.seq, &runtime).await?;
        Ok(runtime)
    }

    /// Abandons on request ([`crate::abandon`]): for each run
    /// [`crate::abandon::runs_to_abandon`] names (`interrupted`: the resource is in
    /// `Interrupt`), newest first, the manager's abandon handler cleans up, then the run is
    /// closed `failedAndCompleted` with the reason [`crate::ABANDONED`] and `WfAbandoned`
    /// is hooked. Returns the runs closed; a failed cleanup is an error and leaves that run
    /// (and older ones) as they were.
    pub async fn abandon_runs(&mut self, interrupted: bool) -> Result<Vec<u64>, Error> {
        let runs = self.caretaker.runtimes()?;
        let targets: Vec<StoredRuntime> = runs_to_abandon(&runs, interrupted)
            .into_iter()
            .cloned()
            .collect();
        let handler = self.manager.inner.on_abandon.clone();
        let mut closed = Vec::new();
        for stored in targets {
            let seq = stored.seq;
            if let Some(handler) = &handler {
                let run = AbandonedRun {
                    seq,
                    runtime: &stored.runtime,
                };
                handler
                    .on_abandon(&self.resource, run)
                    .await
                    .map_err(|source| Error::AbandonCleanup {
                        resource: self.key.clone(),
                        seq,
                        flow: stored.runtime.flow_name.clone(),
                        source,
                    })?;
            }
            let reason = abandon_reason(&self.manager.inner.config.annotations, &stored.runtime);
            let runtime = self.close(stored, reason, true).await?;
            self.hook(
                HookPoint::WfAbandoned,
                seq,
                &runtime,
                None,
                Some(&runtime.error_message),
            )
            .await;
            closed.push(seq);
        }
        Ok(closed)
    }

    pub(crate) async fn hook(
        &self,
        point: HookPoint,
        seq: u64,
        runtime: &WorkflowRuntime,
        step: Option<usize>,
        error: Option<&str>,
    ) {
        self.hook_as(point, seq, runtime, step, error, false).await;
    }

    /// Calls the hooks of `point`, marking the event a replay or not.
    pub(crate) async fn hook_as(
        &self,
        point: HookPoint,
        seq: u64,
        runtime: &WorkflowRuntime,
        step: Option<usize>,
        error: Option<&str>,
        replayed: bool,
    ) {
        let inner = &self.manager.inner;
        if inner.hooks.0.is_empty() {
            return;
        }
        let event = HookEvent {
            resource_type: &inner.resource_type,
            resource: &self.key,
            seq,
            runtime,
            step,
            error,
            replayed,
        };
        inner.hooks.call(point, &event).await;
    }
}

/// The hook point and step of the last transition saved in an unfinished `runtime`: the
/// step record touched last (its start for an `inited` step, its end otherwise), or the
/// run's creation when no step started.
fn last_transition(runtime: &WorkflowRuntime) -> Option<(HookPoint, Option<usize>)> {
    if runtime.flow_status.is_finished() {
        return None;
    }
    let touched = |s: &crate::StepRuntime| match s.step_status {
        StepStatus::Prepared => None,
        StepStatus::Inited => s.step_start_time,
        _ => s.last_step_complete_time.or(s.step_start_time),
    };
    let last = runtime
        .running_steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| touched(s).map(|t| (t, i)))
        .max_by_key(|(t, i)| (*t, *i));
    Some(match last {
        None => (HookPoint::WfInit, None),
        Some((_, i)) => {
            let point = match runtime.running_steps[i].step_status {
                StepStatus::Inited => HookPoint::StepInit,
                StepStatus::Waiting => HookPoint::StepWaiting,
                _ => HookPoint::StepCompleted,
            };
            (point, Some(i))
        }
    })
}
