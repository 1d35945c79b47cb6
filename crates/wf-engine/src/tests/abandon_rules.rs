//! [Semantics §10](../../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt): abandoning a
//! run on request, and the cancel request's end.

use std::sync::atomic::Ordering;

use super::support::{always, harness, key, never, token, Act, CleanupScript, Harness, Script};
use crate::{
    Error, Event, FlowStatus, JsonMap, Reconciled, Resumption, RunOutcome, State, StateMachine,
    ABANDONED,
};

fn annotate(h: &Harness, name: &str, value: &str) {
    h.resources
        .update(&key(), |r| {
            r.annotations.insert(name.into(), value.into());
        })
        .unwrap();
}

/// A resource whose run 1 of `F` was interrupted in step `B`, with a cleanup registered.
async fn interrupted() -> (Harness, Script, CleanupScript) {
    let b = Script::new([Act::Interrupt("NO_AVAILABLE_NODE", "no node"), Act::Done]);
    let cleanup = CleanupScript::default();
    let h = harness()
        .flow("F", &["B"])
        .step("B", &b)
        .state(State::new("AddRo"))
        .on_abandon(&cleanup)
        .build();
    h.workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert_eq!(h.state(), State::INTERRUPT);
    (h, b, cleanup)
}

#[tokio::test]
async fn abandon_cleans_up_closes_the_interrupted_run_clears_the_record_and_sets_running() {
    let (h, b, cleanup) = interrupted().await;
    annotate(&h, "interrupt.abandon", "T");
    let done = h.manager.check_abandon(&h.resource).await.unwrap();
    assert_eq!(done, Some((vec![1], State::RUNNING)));
    assert_eq!(h.state(), State::RUNNING);
    assert_eq!(*cleanup.cleaned.lock().unwrap(), [(1, "F".to_owned())]);
    let run = h.last().await.runtime;
    assert_eq!(run.flow_status, FlowStatus::FailedAndCompleted);
    assert!(
        run.error_message.starts_with(ABANDONED),
        "{}",
        run.error_message
    );
    assert!(
        run.error_message.contains("NO_AVAILABLE_NODE: no node"),
        "the reason keeps the interrupt: {}",
        run.error_message
    );
    for k in [
        "interrupt.abandon",
        "interrupt.recover",
        "interrupt.previous.status",
        "interrupt.reason",
        "interrupt.message",
    ] {
        assert_eq!(h.annotation(k), None, "{k} removed");
    }
    assert_eq!(h.hook.points().last().unwrap(), "wf_abandoned");
    assert_eq!(b.runs(), 1, "no step ran again");
}

#[tokio::test]
async fn an_abandoned_creation_goes_back_to_init_to_be_created_again() {
    let b = Script::new([Act::Interrupt("NO_AVAILABLE_NODE", "no node"), Act::Done]);
    let cleanup = CleanupScript::default();
    let h = harness()
        .flow("F", &["B"])
        .step("B", &b)
        .state(State::CREATING)
        .on_abandon(&cleanup)
        .build();
    h.workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert_eq!(h.state(), State::INTERRUPT);
    assert_eq!(
        h.annotation("interrupt.previous.status").as_deref(),
        Some("Creating")
    );
    annotate(&h, "interrupt.abandon", "T");
    let done = h.manager.check_abandon(&h.resource).await.unwrap();
    assert_eq!(done, Some((vec![1], State::INIT)));
    assert_eq!(h.state(), State::INIT);
    assert_eq!(*cleanup.cleaned.lock().unwrap(), [(1, "F".to_owned())]);
}

#[tokio::test]
async fn after_an_abandon_the_next_entry_starts_a_new_run_instead_of_resuming_the_old_one() {
    let (h, b, _) = interrupted().await;
    annotate(&h, "interrupt.abandon", "true");
    h.manager.check_abandon(&h.resource).await.unwrap();
    let resumed = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    assert_eq!(resumed.resumed, None, "nothing is left to resume");
    let out = h
        .workflow()
        .await
        .common_main_enter(
            "F",
            Resumption::AnyFlow,
            &super::support::once(Event::new("F")),
        )
        .await
        .unwrap();
    assert_eq!(out, Reconciled::FlowCompleted { flow: "F".into() });
    let runs = h.runtimes().await;
    assert_eq!(runs.len(), 2, "a new run 2");
    assert_eq!(runs[1].runtime.flow_status, FlowStatus::Completed);
    assert_eq!(b.runs(), 2);
}

#[tokio::test]
async fn a_failed_cleanup_leaves_the_run_and_the_request_for_the_next_reconcile() {
    let (h, _, cleanup) = interrupted().await;
    annotate(&h, "interrupt.abandon", "T");
    cleanup.failing.store(true, Ordering::SeqCst);
    let err = h.manager.check_abandon(&h.resource).await.unwrap_err();
    assert!(matches!(err, Error::AbandonCleanup { seq: 1, .. }), "{err}");
    assert_eq!(h.state(), State::INTERRUPT);
    assert_eq!(h.annotation("interrupt.abandon").as_deref(), Some("T"));
    assert!(!h.last().await.runtime.error_message.starts_with(ABANDONED));
    cleanup.failing.store(false, Ordering::SeqCst);
    let done = h.manager.check_abandon(&h.resource).await.unwrap();
    assert_eq!(done, Some((vec![1], State::RUNNING)));
}

#[tokio::test]
async fn abandon_of_a_waiting_run_in_an_unstable_state_closes_it_and_sets_running() {
    let a = Script::new([Act::Wait]);
    let cleanup = CleanupScript::default();
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .state(State::new("AddRo"))
        .on_abandon(&cleanup)
        .build();
    let report = h
        .workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert!(matches!(report.outcome, RunOutcome::Waiting { .. }));
    annotate(&h, "interrupt.abandon", "T");
    let mut machine = StateMachine::new("test");
    machine.register_stable_states([State::RUNNING, State::INTERRUPT]);
    let out = machine.reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(
        out,
        Reconciled::Abandoned {
            runs: vec![1],
            state: State::RUNNING
        }
    );
    assert_eq!(out.requeue_after(), Some(std::time::Duration::ZERO));
    assert_eq!(cleanup.cleaned.lock().unwrap().len(), 1);
    assert!(h.last().await.runtime.flow_status.is_finished());
}

#[tokio::test]
async fn abandon_with_nothing_to_close_only_removes_the_request() {
    let (h, _, cleanup) = interrupted().await;
    annotate(&h, "interrupt.abandon", "T");
    h.manager.check_abandon(&h.resource).await.unwrap();
    // Asked again on a Running resource whose runs are all finished.
    annotate(&h, "interrupt.abandon", "T");
    let done = h.manager.check_abandon(&h.resource).await.unwrap();
    assert_eq!(done, Some((vec![], State::RUNNING)));
    assert_eq!(h.annotation("interrupt.abandon"), None);
    assert_eq!(cleanup.cleaned.lock().unwrap().len(), 1, "cleaned up once");
}

#[tokio::test]
async fn without_the_request_or_with_f_nothing_is_abandoned() {
    let (h, _, cleanup) = interrupted().await;
    assert_eq!(h.manager.check_abandon(&h.resource).await.unwrap(), None);
    annotate(&h, "interrupt.abandon", "F");
    assert_eq!(h.manager.check_abandon(&h.resource).await.unwrap(), None);
    assert_eq!(h.state(), State::INTERRUPT);
    assert!(cleanup.cleaned.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_cancel_request_is_removed_once_the_run_it_cancelled_has_ended() {
    let a = Script::new([Act::Wait, Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .state(State::new("X"))
        .build();
    annotate(&h, "cancelled", "true");
    let out = h
        .workflow()
        .await
        .common_main_enter("F", Resumption::AnyFlow, &always(Event::new("F")))
        .await
        .unwrap();
    assert!(
        matches!(out, Reconciled::Interrupted { ref reason, .. } if reason == crate::CANCELLED),
        "{out:?}"
    );
    assert_eq!(
        h.annotation("cancelled"),
        None,
        "the mark went with its run"
    );
}

#[tokio::test]
async fn a_cancel_request_that_came_too_late_does_not_stop_the_next_flow() {
    let a = Script::new([Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .state(State::new("X"))
        .build();
    // The run completes and the mark is found only afterwards (it landed as the run ended).
    let out = h
        .workflow()
        .await
        .common_main_enter(
            "F",
            Resumption::AnyFlow,
            &super::support::once(Event::new("F")),
        )
        .await
        .unwrap();
    assert_eq!(out, Reconciled::FlowCompleted { flow: "F".into() });
    annotate(&h, "cancelled", "true");
    let out = h
        .workflow()
        .await
        .common_main_enter("F", Resumption::AnyFlow, &never())
        .await
        .unwrap();
    assert_eq!(out, Reconciled::Settled);
    assert_eq!(h.annotation("cancelled"), None);
    // The next flow runs to its end.
    let out = h
        .workflow()
        .await
        .common_main_enter(
            "F",
            Resumption::AnyFlow,
            &super::support::once(Event::new("F")),
        )
        .await
        .unwrap();
    assert_eq!(out, Reconciled::FlowCompleted { flow: "F".into() });
}
