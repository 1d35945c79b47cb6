//! [Semantics §5](../../../../docs/SEMANTICS.md#5-steps-and-their-outcomes) (steps) and [§6](../../../../docs/SEMANTICS.md#6-runs-statuses-and-saves) (runs).

use std::time::Duration;

use serde_json::json;

use super::support::{harness, key, token, Act, Script};
use crate::Resumption;
use crate::{
    Error, FlowStatus, JsonMap, RunOutcome, State, StepStatus, CANCELLED, MANY_RETRY, UNKNOWN_TASK,
};

fn params(value: serde_json::Value) -> JsonMap {
    match value {
        serde_json::Value::Object(map) => map,
        _ => JsonMap::new(),
    }
}

// §5 ------------------------------------------------------------------------------------

#[tokio::test]
async fn interrupt_ends_the_flow_failed_and_completed_and_moves_the_resource_to_interrupt() {
    let a = Script::new([Act::Interrupt(
        "NO_AVAILABLE_NODE",
        "no node passed the probe",
    )]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let report = h
        .workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Interrupted {
            step: "A".into(),
            reason: "NO_AVAILABLE_NODE".into(),
            message: "no node passed the probe".into()
        }
    );
    let rt = h.last().await.runtime;
    assert_eq!(rt.flow_status, FlowStatus::FailedAndCompleted);
    assert_eq!(rt.running_steps[0].step_status, StepStatus::Failed);
    assert_eq!(h.state(), State::INTERRUPT);
    assert_eq!(
        h.annotation("interrupt.reason").as_deref(),
        Some("NO_AVAILABLE_NODE")
    );
    assert_eq!(
        h.annotation("interrupt.message").as_deref(),
        Some("no node passed the probe")
    );
    assert_eq!(
        h.annotation("interrupt.previous.status").as_deref(),
        Some("Creating")
    );
    assert_eq!(h.annotation("interrupt.recover").as_deref(), Some("F"));
}

#[tokio::test]
async fn a_wait_reason_is_kept_on_the_step_record_until_the_step_completes() {
    let a = Script::new([Act::WaitFor("pod c1-1 is Pending"), Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    let rt = h.last().await.runtime;
    assert_eq!(
        rt.running_steps[0].wait_reason.as_deref(),
        Some("pod c1-1 is Pending")
    );
    wf.run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    let rt = h.last().await.runtime;
    assert_eq!(rt.running_steps[0].step_status, StepStatus::Completed);
    assert_eq!(
        rt.running_steps[0].wait_reason, None,
        "cleared at completion"
    );
}

#[tokio::test]
async fn waiting_parks_the_flow_returns_success_and_is_called_again_without_reinit() {
    let a = Script::new([Act::Wait, Act::Wait, Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    let report = wf.run("F", JsonMap::new(), &token()).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Waiting {
            step: "A".into(),
            recheck_after: Duration::from_millis(7)
        }
    );
    let rt = h.last().await.runtime;
    assert_eq!(rt.flow_status, FlowStatus::Waiting);
    assert_eq!(rt.running_steps[0].step_status, StepStatus::Waiting);

    wf.run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!(a.runs(), 3);
    let rt = h.last().await.runtime;
    assert_eq!(rt.running_steps[0].retry_times, 0, "waiting is not a retry");
    // Only the first call marked the step inited.
    let inits = h
        .hook
        .points()
        .iter()
        .filter(|p| *p == "step_init:A")
        .count();
    assert_eq!(inits, 1);
}

#[tokio::test]
async fn retryable_error_fails_step_and_flow_and_the_next_entry_retries_from_that_step() {
    let a = Script::new([Act::Done]);
    let b = Script::new([Act::Fail("storage busy"), Act::Done]);
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .build();
    let mut wf = h.workflow().await;
    let err = wf.run("F", JsonMap::new(), &token()).await.unwrap_err();
    assert!(
        matches!(err, Error::StepFailed { ref step, .. } if step == "B"),
        "{err}"
    );
    assert!(err.to_string().contains("storage busy"));
    let rt = h.last().await.runtime;
    assert_eq!(rt.flow_status, FlowStatus::Failed);
    assert_eq!(rt.running_steps[1].step_status, StepStatus::Failed);
    assert_eq!(
        rt.running_steps[1].last_error.as_deref(),
        Some("storage busy")
    );

    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!((a.runs(), b.runs()), (1, 2));
}

#[tokio::test]
async fn panic_in_a_step_is_caught_as_a_retryable_failure_with_its_message() {
    let a = Script::new([Act::Panic("index out of bounds in the step"), Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    let err = wf.run("F", JsonMap::new(), &token()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("step panicked: index out of bounds in the step"),
        "{err}"
    );
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
}

// §6 ------------------------------------------------------------------------------------

#[tokio::test]
async fn new_runtime_is_prepared_saved_as_a_new_memento_with_the_next_seq_then_hooked() {
    let a = Script::new([Act::Wait]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    let keys: Vec<_> = h
        .mementos
        .snapshot("ns", "c1-workflow")
        .into_keys()
        .collect();
    assert_eq!(keys, ["1-F", "2-F"]);
    assert_eq!(h.hook.points()[0], "wf_init");
    let rt = h.last().await.runtime;
    assert!(rt.start_time.is_some());
}

#[tokio::test]
async fn finished_runtime_is_not_run_again() {
    let a = Script::new([Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    let report = wf.run("F", JsonMap::new(), &token()).await.unwrap();
    let stored = h.last().await;
    let outcome = wf
        .execute(report.seq, stored.runtime, &token())
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::AlreadyFinished);
    assert_eq!(a.runs(), 1);
}

#[tokio::test]
async fn runtime_whose_flow_was_removed_from_metadata_is_marked_completed() {
    let a = Script::new([Act::Fail("x")]);
    let old = harness().flow("Gone", &["A"]).step("A", &a).build();
    let _ = old
        .workflow()
        .await
        .run("Gone", JsonMap::new(), &token())
        .await;
    // A new manager over the same memento store, without flow `Gone`.
    let b = Script::new([Act::Done]);
    let new = harness()
        .flow("F", &["B"])
        .step("B", &b)
        .mementos(&old.mementos)
        .build();
    let mut wf = new.workflow().await;
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!(
        wf.runtimes().unwrap()[0].runtime.flow_status,
        FlowStatus::Completed
    );
}

#[tokio::test]
async fn resuming_a_failed_run_increments_the_flow_retry_count() {
    let a = Script::new([Act::Fail("1"), Act::Fail("2"), Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    let _ = wf.run("F", JsonMap::new(), &token()).await;
    assert_eq!(h.last().await.runtime.retry_times, 0);
    let _ = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await;
    assert_eq!(h.last().await.runtime.retry_times, 1);
    wf.run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    let rt = h.last().await.runtime;
    assert_eq!(rt.retry_times, 2);
    assert_eq!(rt.running_steps[0].retry_times, 2);
}

#[tokio::test]
async fn missing_step_record_is_an_error_naming_flow_run_and_step() {
    let a = Script::new([Act::Wait, Act::Done]);
    let old = harness().flow("F", &["A"]).step("A", &a).build();
    let _ = old
        .workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await;
    let b = Script::new([Act::Done]);
    let new = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .mementos(&old.mementos)
        .build();
    let mut wf = new.workflow().await;
    let err = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StepRecordMissing { .. }));
    assert!(
        err.to_string().contains("step `B`") && err.to_string().contains("run 1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_step_that_fails_once_more_than_its_max_retries_interrupts_many_retry_at_once() {
    // Was `step_that_reached_its_max_retries_interrupts_many_retry_without_running`: the
    // interrupt came one reconcile (and one backoff) after the last allowed try. Now the
    // failure that exhausts the budget interrupts, with the error.
    let a = Script::new([Act::Fail("flaky")]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nmaxRetries: 50\nsteps:\n  - {className: A, stepName: A, maxRetries: 2}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    let _ = wf.run("F", JsonMap::new(), &token()).await; // try 1 (retries 0)
    let _ = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await; // try 2 (retries 1)
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap(); // try 3 (retries 2): the budget is spent
    match report.outcome {
        RunOutcome::Interrupted {
            reason, message, ..
        } => {
            assert_eq!(reason, MANY_RETRY);
            assert_eq!(
                message,
                "step `A` failed 3 times (maxRetries 2); last error: flaky"
            );
        }
        other => panic!("expected an interrupt, got {other:?}"),
    }
    assert_eq!(a.runs(), 3);
    assert_eq!(h.state(), State::INTERRUPT);
}

#[tokio::test]
async fn context_is_the_init_context_merged_with_all_earlier_outputs_later_keys_win() {
    let a = Script::new([Act::Output(json!({"x": 1, "fromA": "a"}))]);
    let b = Script::new([Act::Output(json!({"x": 2}))]);
    let c = Script::new([Act::Done]);
    let h = harness()
        .flow("F", &["A", "B", "C"])
        .step("A", &a)
        .step("B", &b)
        .step("C", &c)
        .build();
    h.workflow()
        .await
        .run("F", params(json!({"x": 0, "modifyClass": true})), &token())
        .await
        .unwrap();
    let seen = &c.contexts()[0];
    assert_eq!(seen["x"], json!(2), "later outputs win");
    assert_eq!(
        seen["fromA"],
        json!("a"),
        "outputs of ALL earlier steps, not only the previous"
    );
    assert_eq!(seen["modifyClass"], json!(true));
    assert_eq!(seen["_resourceName"], json!("c1"));
    assert_eq!(seen["_resourceNameSpace"], json!("ns"));
    assert_eq!(a.contexts()[0]["x"], json!(0));
}

#[tokio::test]
async fn unregistered_class_interrupts_unknown_task_naming_step_and_class() {
    let h = harness().flow("F", &["Missing"]).build();
    let report = h
        .workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    match report.outcome {
        RunOutcome::Interrupted {
            reason, message, ..
        } => {
            assert_eq!(reason, UNKNOWN_TASK);
            assert!(message.contains("`Missing`"), "{message}");
        }
        other => panic!("expected an interrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn step_init_marks_inited_with_retries_zero_then_plus_one_after_a_failure() {
    let a = Script::new([Act::Fail("x"), Act::Wait]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    let _ = wf.run("F", JsonMap::new(), &token()).await;
    let calls = h.hook.calls.lock().unwrap().clone();
    assert_eq!(calls[1].point, "step_init");
    assert_eq!(calls[1].flow_status, FlowStatus::Running);
    let _ = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await;
    assert_eq!(h.last().await.runtime.running_steps[0].retry_times, 1);
}

#[tokio::test]
async fn every_transition_is_persisted_and_hooked_in_order() {
    let a = Script::new([Act::Done]);
    let b = Script::new([Act::Fail("x"), Act::Done]);
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .build();
    let mut wf = h.workflow().await;
    let _ = wf.run("F", JsonMap::new(), &token()).await;
    wf.run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    assert_eq!(
        h.hook.points(),
        [
            "wf_init",
            "step_init:A",
            "step_completed:A",
            "step_init:B",
            "step_error:B",
            "step_init:B",
            "step_completed:B",
            "wf_completed"
        ]
    );
    let rt = h.last().await.runtime;
    assert_eq!(rt.flow_status, FlowStatus::Completed);
    assert!(rt.complete_time.is_some());
}

#[tokio::test]
async fn completed_step_is_never_executed_again_after_a_crash() {
    let a = Script::new([Act::Done]);
    let b = Script::new([Act::Hang]);
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .build();
    // "Crash" inside B: the run future is dropped mid-step.
    let mut wf = h.workflow().await;
    let crashed = tokio::time::timeout(
        Duration::from_millis(50),
        wf.run("F", JsonMap::new(), &token()),
    )
    .await;
    assert!(crashed.is_err());
    let rt = h.last().await.runtime;
    assert_eq!(rt.running_steps[0].step_status, StepStatus::Completed);
    assert_eq!(rt.running_steps[1].step_status, StepStatus::Inited);
    assert_eq!(rt.flow_status, FlowStatus::Running);

    // A fresh workflow (a restarted process) resumes: A is skipped, B runs again.
    let b2 = Script::new([Act::Done]);
    let resumed = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b2)
        .mementos(&h.mementos)
        .build();
    let mut wf = resumed.workflow().await;
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!(a.runs(), 1);
    let rt = wf.runtimes().unwrap().pop().unwrap().runtime;
    // A crash while running is a resume, not a failure (it used to count as a retry).
    assert_eq!(
        (rt.resume_times, rt.retry_times),
        (1, 0),
        "the run was resumed once"
    );
    assert_eq!(
        (
            rt.running_steps[1].resume_times,
            rt.running_steps[1].retry_times
        ),
        (1, 0),
        "the re-run step shows the resume"
    );
}

#[tokio::test]
async fn cancellation_interrupts_cancelled_and_drops_the_running_step() {
    let a = Script::new([Act::Hang]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    let cancel = token();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        trigger.cancel();
    });
    let report = wf.run("F", JsonMap::new(), &cancel).await.unwrap();
    assert!(
        matches!(report.outcome, RunOutcome::Interrupted { ref reason, .. } if reason == CANCELLED)
    );
    assert_eq!(a.runs(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        a.finished(),
        0,
        "the step's future was dropped, not left running"
    );
    assert_eq!(h.state(), State::INTERRUPT);
    let _ = key();
}

#[tokio::test]
async fn step_timeout_is_a_retryable_failure() {
    let a = Script::new([Act::Hang, Act::Done]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nsteps:\n  - {className: A, stepName: A, timeout: 30ms}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    let err = wf.run("F", JsonMap::new(), &token()).await.unwrap_err();
    assert!(err.to_string().contains("timed out after 30ms"), "{err}");
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed);
}

#[tokio::test]
async fn failed_step_returns_its_backoff_delay_as_a_requeue_hint() {
    let a = Script::new([Act::Fail("x")]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nsteps:\n  - {className: A, stepName: A, backoff: {initial: 2s, max: 3s, factor: 2}}\n",
        )
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    let first = wf.run("F", JsonMap::new(), &token()).await.unwrap_err();
    let d1 = first.requeue_after().unwrap();
    assert!(
        d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(2),
        "{d1:?}"
    );
    let _ = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await;
    let third = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap_err();
    let d3 = third.requeue_after().unwrap();
    assert!(
        d3 >= Duration::from_millis(1500) && d3 <= Duration::from_secs(3),
        "capped: {d3:?}"
    );
}

#[tokio::test]
async fn step_context_carries_the_run_sequence() {
    struct SeeRun(std::sync::Arc<std::sync::Mutex<Vec<u64>>>);
    #[async_trait::async_trait]
    impl crate::Step for SeeRun {
        async fn init(&mut self, ctx: &crate::StepContext) -> Result<(), crate::StepError> {
            self.0.lock().unwrap().push(ctx.run_seq());
            Ok(())
        }
        async fn do_step(
            &mut self,
            _: &tokio_util::sync::CancellationToken,
        ) -> Result<crate::StepOutcome, crate::StepError> {
            Ok(crate::StepOutcome::Done)
        }
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let manager = crate::WorkflowManager::builder("test")
        .loader(crate::StaticLoader::new().with("t/F.yaml", super::support::flow_yaml("F", &["A"])))
        .step("A", move || SeeRun(record.clone()))
        .build()
        .unwrap();
    let h = harness().build();
    let mut wf = manager.resource_workflow(&h.resource).await.unwrap();
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
}
