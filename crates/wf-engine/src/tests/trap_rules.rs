//! Traps an operator author fell into, turned into errors
//! ([semantics §5](../../../../docs/SEMANTICS.md#5-steps-and-their-outcomes), [§8](../../../../docs/SEMANTICS.md#8-the-entry-of-an-unstable-state) and [§9](../../../../docs/SEMANTICS.md#9-retries-resumes-and-backoff)).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::{harness, key, once, token, Act, Script, ScriptedStep};
use crate::{
    AnnotationPatch, BoxError, ContextError, Error, Event, FlowStatus, JsonMap, MemoryResource,
    MemoryResourceStore, Reconciled, ResourceError, ResourceRecord, Resumption, RunOutcome, State,
    StateMachine, StateResource, StaticLoader, Step, StepContext, StepError, StepOutcome,
    WorkflowManager, BAD_CONTEXT, LEFT_UNSTABLE, MANY_RESUMES, MANY_RETRY,
};

fn params(value: serde_json::Value) -> JsonMap {
    match value {
        serde_json::Value::Object(map) => map,
        _ => JsonMap::new(),
    }
}

fn installing(r: &MemoryResource) -> Result<Option<Event>, BoxError> {
    let state = r.state().effective();
    Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
}

fn machine(manager: &WorkflowManager<MemoryResource>) -> StateMachine<MemoryResource> {
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    sm.register_translate_main_enter(
        State::INIT,
        installing,
        State::CREATING,
        manager.flow_entry("F"),
    );
    sm
}

// A flow that leaves its unstable state --------------------------------------------------

#[tokio::test]
async fn a_flow_that_completes_in_its_unstable_state_with_the_trigger_firing_fails_naming_flow_and_state(
) {
    // The flow's only step forgets to set a stable state; the trigger (state is Creating)
    // fires again at once. It used to run the flow again on every reconcile.
    let a = Script::new([Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let sm = machine(&h.manager);
    let err = sm.reconcile(&h.resource, &h.manager).await.unwrap_err();
    match &err {
        Error::FlowLeftStateUnstable {
            flow, state, seq, ..
        } => {
            assert_eq!((flow.as_str(), state, *seq), ("F", &State::CREATING, 1));
        }
        other => panic!("expected FlowLeftStateUnstable, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("flow `F`") && text.contains("`Creating`"),
        "{text}"
    );
    assert_eq!(h.state(), State::INTERRUPT);
    assert_eq!(
        h.annotation("interrupt.reason").as_deref(),
        Some(LEFT_UNSTABLE)
    );
    assert_eq!(
        h.annotation("interrupt.previous.status").as_deref(),
        Some("Creating")
    );
    // The next reconcile finds a resource at rest: no second run.
    assert_eq!(
        sm.reconcile(&h.resource, &h.manager).await.unwrap(),
        Reconciled::Stable {
            state: State::INTERRUPT
        }
    );
    assert_eq!(a.runs(), 1);
    assert_eq!(h.runtimes().await.len(), 1);
}

#[tokio::test]
async fn a_resumed_run_that_completes_with_the_trigger_still_firing_fails_the_same_way() {
    let a = Script::new([Act::Wait, Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let sm = machine(&h.manager);
    assert!(matches!(
        sm.reconcile(&h.resource, &h.manager).await.unwrap(),
        Reconciled::Waiting { .. }
    ));
    let err = sm.reconcile(&h.resource, &h.manager).await.unwrap_err();
    assert!(matches!(err, Error::FlowLeftStateUnstable { .. }), "{err}");
    assert_eq!(h.state(), State::INTERRUPT);
    assert_eq!(h.runtimes().await.len(), 1, "no second run was started");
}

// MANY_RETRY carries the last error ------------------------------------------------------

#[tokio::test]
async fn many_retry_always_carries_the_last_error() {
    let a = Script::new([Act::Fail("first"), Act::Fail("bucket quota exceeded")]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nsteps:\n  - {className: A, stepName: A, maxRetries: 1}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    let _ = wf.run("F", JsonMap::new(), &token()).await;
    let report = wf
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    let RunOutcome::Interrupted {
        reason, message, ..
    } = report.outcome
    else {
        panic!("expected an interrupt, got {:?}", report.outcome);
    };
    assert_eq!(reason, MANY_RETRY);
    assert!(
        message.ends_with("last error: bucket quota exceeded"),
        "{message}"
    );
    let recorded = h.annotation("interrupt.message").unwrap();
    assert!(recorded.contains("bucket quota exceeded"), "{recorded}");
}

#[tokio::test]
async fn a_stored_step_over_a_lowered_max_retries_interrupts_without_running_with_its_last_error() {
    let a = Script::new([Act::Fail("disk busy")]);
    let old = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nsteps:\n  - {className: A, stepName: A, maxRetries: 5}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = old.workflow().await;
    let _ = wf.run("F", JsonMap::new(), &token()).await;
    let _ = wf
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await;
    let _ = wf
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await;
    assert_eq!(a.runs(), 3);
    // The YAML now allows one retry; the step already used two.
    let new = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nsteps:\n  - {className: A, stepName: A, maxRetries: 1}\n",
        )
        .step("A", &a)
        .mementos(&old.mementos)
        .build();
    let report = new
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    let RunOutcome::Interrupted {
        reason, message, ..
    } = report.outcome
    else {
        panic!("expected an interrupt, got {:?}", report.outcome);
    };
    assert_eq!(reason, MANY_RETRY);
    assert!(message.contains("last error: disk busy"), "{message}");
    assert_eq!(a.runs(), 3, "not run again");
}

// Context keys --------------------------------------------------------------------------

/// Reads `sizeGib` as a number in `init`, or the output of a step that does not exist.
struct ReadsSize {
    runs: Arc<AtomicUsize>,
    mode: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the resize request")]
struct RequestError(#[source] ContextError);

#[async_trait]
impl Step for ReadsSize {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            "get" => {
                let _: u64 = ctx.get("sizeGib")?;
            }
            "wrapped" => {
                let _: u64 = ctx.get("sizeGib").map_err(RequestError)?;
            }
            _ => {
                let _: JsonMap = ctx.output("NoSuchStep")?;
            }
        }
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Done)
    }
}

async fn run_reads_size(mode: &'static str, event: serde_json::Value) -> (RunOutcome, usize, u32) {
    let runs = Arc::new(AtomicUsize::new(0));
    let manager = WorkflowManager::builder("test")
        .loader(StaticLoader::new().with("t/F.yaml", super::support::flow_yaml("F", &["R"])))
        .step_with("R", &runs, move |runs| ReadsSize { runs, mode })
        .build()
        .unwrap();
    let h = harness().build();
    let mut wf = manager.resource_workflow(&h.resource).await.unwrap();
    let report = wf.run("F", params(event), &token()).await.unwrap();
    let rt = wf.runtimes().unwrap().pop().unwrap().runtime;
    assert_eq!(rt.flow_status, FlowStatus::FailedAndCompleted);
    (
        report.outcome,
        runs.load(Ordering::SeqCst),
        rt.running_steps[0].retry_times,
    )
}

#[tokio::test]
async fn a_context_key_of_the_wrong_type_interrupts_bad_context_and_is_not_retried() {
    // The annotation string passed where a number is read.
    let (outcome, runs, retries) = run_reads_size("get", json!({"sizeGib": "20"})).await;
    let RunOutcome::Interrupted {
        reason, message, ..
    } = outcome
    else {
        panic!("expected an interrupt, got {outcome:?}");
    };
    assert_eq!(reason, BAD_CONTEXT);
    assert!(
        message.contains("`sizeGib`") && message.contains("u64"),
        "{message}"
    );
    assert_eq!((runs, retries), (1, 0));
}

#[tokio::test]
async fn a_missing_context_key_interrupts_bad_context_and_is_not_retried() {
    let (outcome, runs, retries) = run_reads_size("get", json!({"bucketID": 20})).await;
    let RunOutcome::Interrupted {
        reason, message, ..
    } = outcome
    else {
        panic!("expected an interrupt, got {outcome:?}");
    };
    assert_eq!(reason, BAD_CONTEXT);
    assert!(message.contains("`sizeGib`, which is missing"), "{message}");
    assert_eq!((runs, retries), (1, 0));
}

#[tokio::test]
async fn a_context_error_anywhere_in_the_source_chain_interrupts_bad_context() {
    let (outcome, _, _) = run_reads_size("wrapped", json!({})).await;
    assert!(
        matches!(outcome, RunOutcome::Interrupted { ref reason, ref message, .. }
            if reason == BAD_CONTEXT && message.starts_with("cannot read the resize request")),
        "{outcome:?}"
    );
    let (outcome, _, _) = run_reads_size("output", json!({})).await;
    assert!(
        matches!(outcome, RunOutcome::Interrupted { ref reason, .. } if reason == BAD_CONTEXT),
        "{outcome:?}"
    );
}

// Retry budgets -------------------------------------------------------------------------

async fn settle_run(wf: &mut crate::ResourceWorkflow<MemoryResource>, flow: &str) -> RunOutcome {
    let mut result = wf.run(flow, JsonMap::new(), &token()).await;
    for _ in 0..50 {
        match result {
            Ok(report) => return report.outcome,
            Err(Error::StepFailed { .. }) => {
                result = wf
                    .run_last_uncompleted(flow, Resumption::ThisFlow, &token())
                    .await
                    .map(|r| r.resumed.expect("the failed run"));
            }
            Err(other) => panic!("{other}"),
        }
    }
    panic!("no end after 50 tries");
}

#[tokio::test]
async fn a_steps_max_retries_is_its_own_even_above_the_flows() {
    // Was `failure_once_the_flow_retry_count_reached_its_max_interrupts_many_retry`: the
    // flow-level counter interrupted at the flow's `maxRetries` (2), so the step's 5 could
    // never be reached.
    let a = Script::new([
        Act::Fail("1"),
        Act::Fail("2"),
        Act::Fail("3"),
        Act::Fail("4"),
        Act::Fail("5"),
        Act::Done,
    ]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nmaxRetries: 2\nsteps:\n  - {className: A, stepName: A, maxRetries: 5}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    assert_eq!(settle_run(&mut wf, "F").await, RunOutcome::Completed);
    assert_eq!(a.runs(), 6);
    assert_eq!(h.last().await.runtime.running_steps[0].retry_times, 5);
}

#[tokio::test]
async fn failures_of_one_step_do_not_spend_another_steps_budget() {
    let a = Script::new([Act::Fail("a1"), Act::Fail("a2"), Act::Done]);
    let b = Script::new([Act::Fail("b1"), Act::Fail("b2"), Act::Done]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nmaxRetries: 2\nsteps:\n  - {className: A, stepName: A}\n  - {className: B, stepName: B}\n",
        )
        .step("A", &a)
        .step("B", &b)
        .build();
    let mut wf = h.workflow().await;
    assert_eq!(settle_run(&mut wf, "F").await, RunOutcome::Completed);
    let rt = h.last().await.runtime;
    let retries: Vec<_> = rt.running_steps.iter().map(|s| s.retry_times).collect();
    assert_eq!(retries, [2, 2]);
    assert_eq!(rt.retry_times, 4, "the run was taken up after 4 failures");
}

/// Runs or resumes `flow` with a step that hangs, and drops the call: a crash mid-step.
async fn crash(wf: &mut crate::ResourceWorkflow<MemoryResource>, first: bool) {
    let call = async {
        if first {
            wf.run("F", JsonMap::new(), &token()).await.map(Some)
        } else {
            wf.run_last_uncompleted("F", Resumption::ThisFlow, &token())
                .await
                .map(|r| r.resumed)
        }
    };
    assert!(tokio::time::timeout(Duration::from_millis(30), call)
        .await
        .is_err());
}

#[tokio::test]
async fn the_flows_max_resumes_bounds_crash_resumes_and_interrupts_many_resumes_past_it() {
    let a = Script::new([Act::Hang]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nmaxResumes: 2\nsteps:\n  - {className: A, stepName: A}\n",
        )
        .step("A", &a)
        .build();
    crash(&mut h.workflow().await, true).await;
    crash(&mut h.workflow().await, false).await; // resume 1
    crash(&mut h.workflow().await, false).await; // resume 2
    let report = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap(); // resume 3: over the budget
    let RunOutcome::Interrupted {
        reason, message, ..
    } = report.outcome
    else {
        panic!("expected an interrupt, got {:?}", report.outcome);
    };
    assert_eq!(reason, MANY_RESUMES);
    assert!(message.contains("3 times (maxResumes 2)"), "{message}");
    assert_eq!(a.runs(), 3, "the step was not started a fourth time");
    let rt = h.last().await.runtime;
    assert_eq!((rt.resume_times, rt.retry_times), (3, 0));
    assert_eq!(
        rt.running_steps[0].retry_times, 0,
        "a crash is not a failure"
    );
}

#[tokio::test]
async fn failures_do_not_count_against_the_resume_budget() {
    let a = Script::new([Act::Fail("1"), Act::Fail("2"), Act::Fail("3"), Act::Done]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nmaxResumes: 0\nsteps:\n  - {className: A, stepName: A}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    assert_eq!(settle_run(&mut wf, "F").await, RunOutcome::Completed);
}

#[tokio::test]
async fn a_crash_resume_is_counted_apart_from_a_failed_attempt() {
    let a = Script::new([Act::Fail("transient"), Act::Hang, Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    assert!(wf.run("F", JsonMap::new(), &token()).await.is_err()); // fails
    crash(&mut h.workflow().await, false).await; // retried after the failure, crashes
    let done = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap(); // resumed after the crash
    assert_eq!(done.outcome, RunOutcome::Completed);
    let rt = h.last().await.runtime;
    assert_eq!((rt.retry_times, rt.resume_times), (1, 1));
    let step = &rt.running_steps[0];
    assert_eq!((step.retry_times, step.resume_times), (1, 1));
}

// Reconciled says FlowCompleted, and the state is written once ---------------------------

/// A `MemoryResource` that counts the engine's state writes.
#[derive(Clone, Debug)]
struct Counted {
    inner: MemoryResource,
    writes: Arc<AtomicUsize>,
}

#[async_trait]
impl StateResource for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn state(&self) -> State {
        self.inner.state()
    }
    fn annotation(&self, key: &str) -> Option<String> {
        self.inner.annotation(key)
    }
    async fn fetch(&self) -> Result<Self, ResourceError> {
        let inner = self.inner.fetch().await?;
        Ok(Counted {
            inner,
            writes: self.writes.clone(),
        })
    }
    async fn update_state(&self, state: State) -> Result<Self, ResourceError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.update_state(state).await?;
        Ok(Counted {
            inner,
            writes: self.writes.clone(),
        })
    }
    async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError> {
        let inner = self.inner.patch_annotations(patch).await?;
        Ok(Counted {
            inner,
            writes: self.writes.clone(),
        })
    }
    async fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled().await
    }
}

/// Sets `Running` itself, bypassing the counter: the flow's own last step.
struct SetsRunning(MemoryResourceStore);

#[async_trait]
impl Step for SetsRunning {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        self.0.fetch(&key())?.update_state(State::RUNNING).await?;
        Ok(StepOutcome::Done)
    }
}

fn counted_setup(
    classes: &[&str],
    a: &Script,
    checker: impl Fn(&Counted) -> Result<Option<Event>, BoxError> + Send + Sync + 'static,
) -> (StateMachine<Counted>, WorkflowManager<Counted>, Counted) {
    let resources = MemoryResourceStore::new();
    let inner = resources.insert(
        key(),
        ResourceRecord {
            state: State::CREATING,
            ..ResourceRecord::default()
        },
    );
    let script = a.clone();
    let manager = WorkflowManager::builder("test")
        .loader(StaticLoader::new().with("t/F.yaml", super::support::flow_yaml("F", classes)))
        .step("A", move || ScriptedStep(script.clone()))
        .step_with("SetsRunning", &resources, SetsRunning)
        .build()
        .unwrap();
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    sm.register_translate_main_enter(
        State::INIT,
        checker,
        State::CREATING,
        manager.flow_entry("F"),
    );
    let resource = Counted {
        inner,
        writes: Arc::new(AtomicUsize::new(0)),
    };
    (sm, manager, resource)
}

#[tokio::test]
async fn reconciled_says_flow_completed_when_a_resumed_run_completes_and_the_state_is_not_written_twice(
) {
    // Was: `Settled`, and `Running` written again after the flow's last step wrote it.
    let a = Script::new([Act::Wait, Act::Done]);
    let creating = |r: &Counted| -> Result<Option<Event>, BoxError> {
        Ok((r.state().effective() == State::CREATING).then(|| Event::new("Create")))
    };
    let (sm, manager, resource) = counted_setup(&["A", "SetsRunning"], &a, creating);
    assert!(matches!(
        sm.reconcile(&resource, &manager).await.unwrap(),
        Reconciled::Waiting { .. }
    ));
    assert_eq!(
        sm.reconcile(&resource, &manager).await.unwrap(),
        Reconciled::FlowCompleted { flow: "F".into() }
    );
    assert_eq!(resource.fetch().await.unwrap().state(), State::RUNNING);
    assert_eq!(
        resource.writes.load(Ordering::SeqCst),
        0,
        "only the flow wrote the state"
    );
}

#[tokio::test]
async fn a_flow_that_served_its_request_without_setting_a_state_is_flow_completed_with_one_write() {
    let a = Script::new([Act::Done]);
    let served = once(Event::new("Create"));
    let checker = move |r: &Counted| served(&r.inner);
    let (sm, manager, resource) = counted_setup(&["A"], &a, checker);
    assert_eq!(
        sm.reconcile(&resource, &manager).await.unwrap(),
        Reconciled::FlowCompleted { flow: "F".into() }
    );
    assert_eq!(resource.fetch().await.unwrap().state(), State::RUNNING);
    assert_eq!(resource.writes.load(Ordering::SeqCst), 1);
}
