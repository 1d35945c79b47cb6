//! The workflow of one resource (semantics §7): run a flow, resume the last uncompleted
//! run, retry an interrupted step, and the common entry of every unstable state.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::hook::{HookEvent, HookPoint};
use crate::memento::MementoCaretaker;
use crate::{
    Checker, Error, FlowStatus, JsonMap, Reconciled, ResourceKey, State, StateResource, StepStatus,
    StoredRuntime, WorkflowManager, WorkflowRuntime,
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

    /// The memento store's cached content (key to JSON).
    pub fn memento_entries(&self) -> &std::collections::BTreeMap<String, String> {
        self.caretaker.entries()
    }

    /// Creates a run of `flow` with init context `{_resourceName, _resourceNameSpace}` ∪
    /// `params` and runs it. An unknown flow is an error.
    pub async fn run(
        &mut self,
        flow: &str,
        params: JsonMap,
        cancel: &CancellationToken,
    ) -> Result<RunReport, Error> {
        let inner = &self.manager.inner;
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
        let runtime = WorkflowRuntime::new(&meta, context, Utc::now());
        let seq = self.caretaker.next_seq();
        self.caretaker.save(seq, &runtime).await?;
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

    /// Finishes the uncompleted run with the highest sequence before anything new starts.
    /// With `ignore_others`, a run of a flow other than `flow` is left alone (`None`).
    pub async fn run_last_uncompleted(
        &mut self,
        flow: &str,
        ignore_others: bool,
        cancel: &CancellationToken,
    ) -> Result<Option<RunReport>, Error> {
        let Some(stored) = self.caretaker.latest_uncompleted()? else {
            return Ok(None);
        };
        if ignore_others && stored.runtime.flow_name != flow {
            return Ok(None);
        }
        tracing::info!(resource = %self.key, flow = %stored.runtime.flow_name, seq = stored.seq, "resuming uncompleted run");
        let flow = stored.runtime.flow_name.clone();
        let outcome = self.execute(stored.seq, stored.runtime, cancel).await?;
        Ok(Some(RunReport {
            seq: stored.seq,
            flow,
            outcome,
        }))
    }

    /// Makes the interrupted run (the one with the highest sequence, when it is
    /// `failedAndCompleted`) runnable again: `failed`, its run-level retry counter reset, and
    /// either every step back to `prepared` (`recoverFromFirstStep`) or the failed step's
    /// retries reset. Returns whether there was such a run.
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
        runtime.complete_time = None;
        if from_first {
            for step in &mut runtime.running_steps {
                step.step_status = StepStatus::Prepared;
                step.retry_times = 0;
                step.context_output = JsonMap::new();
            }
        } else if let Some(step) = runtime
            .running_steps
            .iter_mut()
            .find(|s| s.step_status != StepStatus::Completed)
        {
            step.retry_times = 0;
        }
        self.caretaker.save(seq, &runtime).await?;
        tracing::info!(resource = %self.key, flow = %runtime.flow_name, seq, from_first, "interrupted run made retryable");
        Ok(true)
    }

    /// The entry of every unstable state (semantics §7): check for and watch for
    /// cancellation, finish the last uncompleted run, then re-check the trigger: no event
    /// sets `Running`, an event starts a new run of `flow` with the event's parameters.
    pub async fn common_main_enter(
        &mut self,
        flow: &str,
        ignore_others: bool,
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

        let skipped = if ignore_others {
            self.caretaker
                .latest_uncompleted()?
                .filter(|s| s.runtime.flow_name != flow)
        } else {
            None
        };
        if let Some(report) = self
            .run_last_uncompleted(flow, ignore_others, &cancel)
            .await?
        {
            if !matches!(
                report.outcome,
                RunOutcome::Completed | RunOutcome::AlreadyFinished
            ) {
                return Ok(report.into());
            }
        }

        let fresh = self.resource.fetch().await?;
        let event = checker(&fresh).map_err(|source| Error::Checker {
            resource: self.key.clone(),
            state: fresh.state().effective(),
            source,
        })?;
        let Some(event) = event else {
            fresh.update_state(State::RUNNING).await?;
            tracing::info!(resource = %self.key, flow, "trigger no longer fires; back to Running");
            return Ok(Reconciled::Settled);
        };
        if let Some(old) = skipped {
            self.supersede(old, flow).await?;
        }
        let report = self.run(flow, event.params, &cancel).await?;
        drop(scope);
        Ok(report.into())
    }

    /// Closes an uncompleted run that a new run of another flow replaces, so that it cannot
    /// be resumed much later by an unrelated entry.
    async fn supersede(&mut self, old: StoredRuntime, by_flow: &str) -> Result<(), Error> {
        let mut runtime = old.runtime;
        runtime.flow_status = FlowStatus::FailedAndCompleted;
        runtime.complete_time = Some(Utc::now());
        runtime.error_message =
            format!("SUPERSEDED: left uncompleted when flow `{by_flow}` started");
        tracing::warn!(resource = %self.key, flow = %runtime.flow_name, seq = old.seq, by_flow, "closing superseded run");
        self.caretaker.save(old.seq, &runtime).await?;
        Ok(())
    }

    pub(crate) async fn hook(
        &self,
        point: HookPoint,
        seq: u64,
        runtime: &WorkflowRuntime,
        step: Option<usize>,
        error: Option<&str>,
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
        };
        inner.hooks.call(point, &event).await;
    }
}
