//! Running a runtime step by step, persisting and hooking every transition
//! ([semantics §6](../../../docs/SEMANTICS.md#6-runs-statuses-and-saves) and
//! [§9](../../../docs/SEMANTICS.md#9-retries-resumes-and-backoff)).

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::failpoints::{self, failpoint};
use crate::hook::HookPoint;
use crate::{
    AnnotationPatch, ContextError, Error, FlowStatus, InterruptAnnotations, JsonMap,
    ResourceWorkflow, RunOutcome, State, StateResource, Step, StepContext, StepError, StepOutcome,
    StepStatus, WorkflowRuntime,
};

/// Interrupt reason: a step failed more often than its `maxRetries`; the message carries
/// the step's last error.
pub const MANY_RETRY: &str = "MANY_RETRY";
/// Interrupt reason: the run was taken up again after a crash more often than its flow's
/// `maxResumes`.
pub const MANY_RESUMES: &str = "MANY_RESUMES";
/// Interrupt reason: a step's class is not registered.
pub const UNKNOWN_TASK: &str = "UNKNOWN_TASK";
/// Interrupt reason: the resource was cancelled or deleted while a step ran.
pub const CANCELLED: &str = "CANCELLED";
/// Interrupt reason: a step failed with a [`ContextError`] (a missing or mistyped context
/// key, an unreadable or unwritable output): a programming error that no retry fixes.
pub const BAD_CONTEXT: &str = "BAD_CONTEXT";
/// Interrupt reason: a flow completed but left the resource in its unstable state with
/// the trigger still firing, so it would run again and again
/// ([`Error::FlowLeftStateUnstable`]).
pub const LEFT_UNSTABLE: &str = "LEFT_UNSTABLE";

/// How one try of a step ended.
enum Attempt {
    Done(JsonMap),
    Waiting(Option<Duration>, Option<String>),
    Interrupt { reason: String, message: String },
    Failed(String),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Whether `err` or any error in its source chain is a [`ContextError`].
fn is_context_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<ContextError>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// One try: `init`, `do_step` and `output`, with panics caught, raced against cancellation
/// and the optional timeout. On cancellation the step's future is dropped, so the step
/// cannot keep mutating the world after the run is interrupted.
async fn attempt(
    mut step: Box<dyn Step>,
    ctx: StepContext,
    cancel: &CancellationToken,
    timeout: Option<Duration>,
) -> Attempt {
    let work = AssertUnwindSafe(async {
        step.init(&ctx).await?;
        let outcome = step.do_step(cancel).await?;
        Ok::<_, StepError>(match outcome {
            StepOutcome::Done => Attempt::Done(step.output()),
            StepOutcome::DoneWith(output) => Attempt::Done(output),
            StepOutcome::Waiting {
                recheck_after,
                reason,
            } => Attempt::Waiting(recheck_after, reason),
        })
    })
    .catch_unwind();
    let bounded = async {
        match timeout {
            None => Ok(work.await),
            Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| limit),
        }
    };
    let result = tokio::select! {
        biased;
        () = cancel.cancelled() => {
            return Attempt::Interrupt {
                reason: CANCELLED.into(),
                message: "the resource was cancelled or deleted while the step ran".into(),
            }
        }
        result = bounded => result,
    };
    match result {
        Err(limit) => Attempt::Failed(format!("timed out after {limit:?}")),
        Ok(Err(panic)) => Attempt::Failed(format!("step panicked: {}", panic_message(&*panic))),
        Ok(Ok(Err(StepError::Interrupt { reason, message }))) => {
            Attempt::Interrupt { reason, message }
        }
        Ok(Ok(Err(StepError::Failed(err)))) if is_context_error(&*err) => Attempt::Interrupt {
            reason: BAD_CONTEXT.into(),
            message: StepError::Failed(err).message(),
        },
        Ok(Ok(Err(failed))) => Attempt::Failed(failed.message()),
        Ok(Ok(Ok(done))) => done,
    }
}

/// The message of a `MANY_RETRY` interrupt: the step, its tries, its budget and its last
/// error.
fn many_retry_message(step: &str, retries: u32, max: u32, last_error: Option<&str>) -> String {
    format!(
        "step `{step}` failed {} times (maxRetries {max}); last error: {}",
        retries + 1,
        last_error.unwrap_or("(none recorded)")
    )
}

impl<R: StateResource> ResourceWorkflow<R> {
    /// Runs `runtime` (stored as `seq`) from where it stands.
    pub(crate) async fn execute(
        &mut self,
        seq: u64,
        runtime: WorkflowRuntime,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, Error> {
        let span =
            tracing::info_span!("flow", resource = %self.key, flow = %runtime.flow_name, seq);
        self.execute_inner(seq, runtime, cancel)
            .instrument(span)
            .await
    }

    async fn execute_inner(
        &mut self,
        seq: u64,
        mut rt: WorkflowRuntime,
        cancel: &CancellationToken,
    ) -> Result<RunOutcome, Error> {
        if rt.flow_status.is_finished() {
            return Ok(RunOutcome::AlreadyFinished);
        }
        let inner = self.manager.inner.clone();
        if inner.take_up(&self.key, seq) {
            // Saved by an earlier process, which may have stopped before the hooks of its
            // last transition ran.
            self.replay_last_transition(seq, &rt).await;
        }
        let Some(flow) = inner.catalog.get(&rt.flow_name).cloned() else {
            tracing::warn!("the run's flow no longer exists; marking it completed");
            rt.flow_status = FlowStatus::Completed;
            rt.complete_time = Some(Utc::now());
            self.caretaker.save(seq, &rt).await?;
            return Ok(RunOutcome::Completed);
        };
        // Taken up again after a failure (a retry of the failed step) or after the process
        // stopped while a step ran (a resume, bounded by the flow's `maxResumes`).
        let mut resumes_exhausted = None;
        match rt.flow_status {
            FlowStatus::Failed => rt.retry_times += 1,
            FlowStatus::Running => {
                rt.resume_times += 1;
                let max = flow.max_resumes.unwrap_or(inner.config.max_resumes);
                if rt.resume_times > max {
                    resumes_exhausted = Some(format!(
                        "the run was taken up again after the process stopped while a step ran \
                         {} times (maxResumes {max})",
                        rt.resume_times
                    ));
                }
            }
            _ => {}
        }

        // Records are in flow order unless the metadata changed: then look them up by name.
        let aligned = rt.running_steps.len() == flow.steps.len()
            && rt
                .running_steps
                .iter()
                .zip(&flow.steps)
                .all(|(record, meta)| record.step_name == meta.step_name);
        // The init context as the steps see it, made once per run (the run never changes it).
        let mut init_values: Option<Arc<JsonMap>> = None;
        for (index, meta) in flow.steps.iter().enumerate() {
            let found = if aligned {
                Some(index)
            } else {
                rt.running_steps
                    .iter()
                    .position(|s| s.step_name == meta.step_name)
            };
            let Some(pos) = found else {
                return Err(Error::StepRecordMissing {
                    flow: flow.name.clone(),
                    seq,
                    step: meta.step_name.clone(),
                });
            };
            let status = rt.running_steps[pos].step_status;
            if status == StepStatus::Completed {
                continue;
            }
            if self.manager.is_draining() {
                // Park at the step boundary; a waiting run resumes without counting a retry.
                rt.flow_status = FlowStatus::Waiting;
                self.caretaker.save_header(seq, &rt).await?;
                tracing::info!(step = %meta.step_name, "draining: run parked before the step");
                return Ok(RunOutcome::Waiting {
                    step: meta.step_name.clone(),
                    // Not at once: a controller that keeps running while drained must not spin.
                    recheck_after: inner.config.wait_interval,
                });
            }
            if let Some(message) = resumes_exhausted.take() {
                return self.interrupt(seq, rt, pos, MANY_RESUMES, message).await;
            }
            // A stored run whose step already used its budget (e.g. `maxRetries` lowered
            // in the YAML since): interrupt without running, with the last error.
            if rt.running_steps[pos].step_status == StepStatus::Failed
                && rt.running_steps[pos].retry_times >= meta.retry.max_retries
            {
                let record = &rt.running_steps[pos];
                let message = many_retry_message(
                    &meta.step_name,
                    record.retry_times,
                    meta.retry.max_retries,
                    record.last_error.as_deref(),
                );
                return self.interrupt(seq, rt, pos, MANY_RETRY, message).await;
            }

            let mut values: Option<JsonMap> = None;
            let mut outputs = BTreeMap::new();
            for (i, earlier) in flow.steps[..index].iter().enumerate() {
                let record = if aligned {
                    rt.running_steps.get(i)
                } else {
                    rt.step(&earlier.step_name)
                };
                // A step that gave no output has none to read (and costs nothing here: a
                // step's context is built in time proportional to the outputs, not the flow).
                if let Some(record) = record.filter(|r| !r.context_output.is_empty()) {
                    values
                        .get_or_insert_with(|| rt.init_context.clone())
                        .extend(record.context_output.clone());
                    outputs.insert(earlier.step_name.clone(), record.context_output.clone());
                }
            }
            // No earlier output: the run's init context, shared, not copied per step.
            let values = match values {
                Some(merged) => Arc::new(merged),
                None => init_values
                    .get_or_insert_with(|| Arc::new(rt.init_context.clone()))
                    .clone(),
            };
            let ctx = StepContext::with_shared_values(
                &flow.name,
                &meta.step_name,
                values,
                &inner.config.resource_name_key,
                &inner.config.resource_namespace_key,
            )
            .with_outputs(outputs)
            .with_run(seq);

            let Some(step) = inner.registry.create(&meta.class_name) else {
                let message = format!(
                    "step `{}` names class `{}`, which is not registered",
                    meta.step_name, meta.class_name
                );
                return self.interrupt(seq, rt, pos, UNKNOWN_TASK, message).await;
            };

            if status != StepStatus::Waiting {
                let record = &mut rt.running_steps[pos];
                match status {
                    // Tried again after a failure: a retry.
                    StepStatus::Failed => record.retry_times += 1,
                    // Found started: the process stopped while it ran. A resume.
                    StepStatus::Inited => record.resume_times += 1,
                    _ => {
                        record.retry_times = 0;
                        record.resume_times = 0;
                    }
                }
                record.step_status = StepStatus::Inited;
                record.step_start_time = Some(Utc::now());
                rt.flow_status = FlowStatus::Running;
                self.caretaker.save_step(seq, &rt, pos).await?;
                self.hook(HookPoint::StepInit, seq, &rt, Some(pos), None)
                    .await;
            }

            let try_number = rt.running_steps[pos].retry_times + 1;
            let span = tracing::info_span!("step", step = %meta.step_name, class = %meta.class_name, attempt = try_number);
            let result = attempt(step, ctx, cancel, meta.retry.timeout)
                .instrument(span)
                .await;

            match result {
                Attempt::Done(output) => {
                    let record = &mut rt.running_steps[pos];
                    record.context_output = output;
                    record.step_status = StepStatus::Completed;
                    record.last_step_complete_time = Some(Utc::now());
                    record.last_error = None;
                    record.wait_reason = None;
                    self.caretaker.save_step(seq, &rt, pos).await?;
                    self.hook(HookPoint::StepCompleted, seq, &rt, Some(pos), None)
                        .await;
                    tracing::info!(step = %meta.step_name, "step completed");
                }
                Attempt::Waiting(hint, reason) => {
                    let recheck_after = hint.unwrap_or(inner.config.wait_interval);
                    let record = &mut rt.running_steps[pos];
                    record.step_status = StepStatus::Waiting;
                    record.wait_reason = reason;
                    record.last_step_complete_time = Some(Utc::now());
                    rt.flow_status = FlowStatus::Waiting;
                    self.caretaker.save_step(seq, &rt, pos).await?;
                    self.hook(HookPoint::StepWaiting, seq, &rt, Some(pos), None)
                        .await;
                    tracing::info!(step = %meta.step_name, ?recheck_after, "step waiting");
                    return Ok(RunOutcome::Waiting {
                        step: meta.step_name.clone(),
                        recheck_after,
                    });
                }
                Attempt::Interrupt { reason, message } => {
                    return self.interrupt(seq, rt, pos, &reason, message).await;
                }
                Attempt::Failed(message) => {
                    // The step's own budget: `maxRetries` tries after the first.
                    if rt.running_steps[pos].retry_times >= meta.retry.max_retries {
                        let message = many_retry_message(
                            &meta.step_name,
                            rt.running_steps[pos].retry_times,
                            meta.retry.max_retries,
                            Some(&message),
                        );
                        return self.interrupt(seq, rt, pos, MANY_RETRY, message).await;
                    }
                    let record = &mut rt.running_steps[pos];
                    record.step_status = StepStatus::Failed;
                    record.last_step_complete_time = Some(Utc::now());
                    record.last_error = Some(message.clone());
                    record.wait_reason = None;
                    let retry_after = meta.retry.backoff.delay(record.retry_times + 1);
                    rt.flow_status = FlowStatus::Failed;
                    rt.error_message = message.clone();
                    self.caretaker.save_step(seq, &rt, pos).await?;
                    self.hook(
                        HookPoint::StepCompleted,
                        seq,
                        &rt,
                        Some(pos),
                        Some(&message),
                    )
                    .await;
                    tracing::warn!(step = %meta.step_name, error = %message, ?retry_after, "step failed; will retry");
                    return Err(Error::StepFailed {
                        flow: flow.name.clone(),
                        step: meta.step_name.clone(),
                        seq,
                        attempt: try_number,
                        message,
                        retry_after,
                    });
                }
            }
        }

        rt.flow_status = FlowStatus::Completed;
        rt.complete_time = Some(Utc::now());
        rt.error_message.clear();
        self.caretaker.save_header(seq, &rt).await?;
        self.hook(HookPoint::WfCompleted, seq, &rt, None, None)
            .await;
        tracing::info!("flow completed");
        Ok(RunOutcome::Completed)
    }

    /// Ends the run as `failedAndCompleted` and moves the resource to `Interrupt` with its
    /// interrupt record. The record is written first, with a patch; if that write fails the
    /// run is saved as `failed` instead (so the interrupt is re-attempted on the next entry
    /// rather than lost) and the error is returned.
    async fn interrupt(
        &mut self,
        seq: u64,
        mut rt: WorkflowRuntime,
        pos: usize,
        reason: &str,
        message: String,
    ) -> Result<RunOutcome, Error> {
        let step_name = rt.running_steps[pos].step_name.clone();
        let full = format!("{reason}: {message}");
        let now = Utc::now();
        {
            let record = &mut rt.running_steps[pos];
            record.step_status = StepStatus::Failed;
            record.last_step_complete_time = Some(now);
            record.last_error = Some(full.clone());
            record.wait_reason = None;
        }
        rt.error_message = full.clone();

        if let Err(err) = self.record_interrupt(reason, &message).await {
            rt.flow_status = FlowStatus::Failed;
            self.caretaker.save_step(seq, &rt, pos).await?;
            tracing::error!(step = %step_name, reason, error = %err, "cannot record the interrupt on the resource");
            return Err(err);
        }
        rt.flow_status = FlowStatus::FailedAndCompleted;
        rt.complete_time = Some(now);
        self.caretaker.save_step(seq, &rt, pos).await?;
        self.hook(HookPoint::StepCompleted, seq, &rt, Some(pos), Some(&full))
            .await;
        self.hook(HookPoint::WfInterrupt, seq, &rt, Some(pos), Some(&full))
            .await;
        tracing::warn!(step = %step_name, reason, %message, "flow interrupted");
        Ok(RunOutcome::Interrupted {
            step: step_name,
            reason: reason.to_owned(),
            message,
        })
    }

    /// Writes the interrupt record on the resource (annotations by a patch) and moves it to
    /// `Interrupt`, with the state it had as the previous one.
    pub(crate) async fn record_interrupt(&self, reason: &str, message: &str) -> Result<(), Error> {
        let keys = &self.manager.inner.config.annotations;
        let fresh = self.resource.fetch().await?;
        let previous = fresh.state().effective();
        let patch = AnnotationPatch::from([
            (keys.reason.clone(), Some(reason.to_owned())),
            (keys.message.clone(), Some(message.to_owned())),
            (keys.previous_status.clone(), Some(previous.to_string())),
            (
                keys.recover.clone(),
                Some(InterruptAnnotations::NOT_RECOVERED.to_owned()),
            ),
        ]);
        failpoint!(failpoints::ANNOTATIONS_INTERRUPT_BEFORE);
        let patched = fresh.patch_annotations(&patch).await?;
        failpoint!(failpoints::ANNOTATIONS_INTERRUPT_AFTER);
        failpoint!(failpoints::STATE_UPDATE_BEFORE);
        patched.update_state(State::INTERRUPT).await?;
        failpoint!(failpoints::STATE_UPDATE_AFTER);
        Ok(())
    }
}
