//! [Semantics §10](../../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt): recovery after an interrupt.

use super::support::{harness, key, token, Act, Script};
use crate::Resumption;
use crate::{FlowStatus, JsonMap, Reconciled, State, StateMachine};

async fn interrupted(state: State) -> (super::support::Harness, Script) {
    let b = Script::new([Act::Interrupt("POD_LOST", "gone"), Act::Done]);
    let h = harness()
        .flow("F", &["B"])
        .step("B", &b)
        .state(state)
        .build();
    h.workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert_eq!(h.state(), State::INTERRUPT);
    (h, b)
}

fn ask_recovery(h: &super::support::Harness) {
    h.resources
        .update(&key(), |r| {
            r.annotations.insert("interrupt.recover".into(), "T".into());
        })
        .unwrap();
}

#[tokio::test]
async fn recovery_retries_the_interrupted_step_clears_the_record_and_restores_the_previous_state() {
    let (h, b) = interrupted(State::new("ModifyClass")).await;
    ask_recovery(&h);
    let restored = h.manager.check_recovery(&h.resource).await.unwrap();
    assert_eq!(restored, Some(State::new("ModifyClass")));
    assert_eq!(h.state(), State::new("ModifyClass"));
    for k in [
        "interrupt.recover",
        "interrupt.previous.status",
        "interrupt.reason",
        "interrupt.message",
    ] {
        assert_eq!(h.annotation(k), None, "{k} removed");
    }
    assert_eq!(h.last().await.runtime.flow_status, FlowStatus::Failed);
    // The next entry resumes the run from the interrupted step.
    let report = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(report.outcome, crate::RunOutcome::Completed);
    assert_eq!(b.runs(), 2);
}

#[tokio::test]
async fn recovery_into_rebuild_does_not_retry_the_interrupted_run() {
    let (h, _) = interrupted(State::REBUILD).await;
    ask_recovery(&h);
    assert_eq!(
        h.manager.check_recovery(&h.resource).await.unwrap(),
        Some(State::REBUILD)
    );
    assert_eq!(
        h.last().await.runtime.flow_status,
        FlowStatus::FailedAndCompleted
    );
}

#[tokio::test]
async fn recovery_is_not_asked_while_recover_is_f() {
    let (h, _) = interrupted(State::new("ModifyClass")).await;
    assert_eq!(h.manager.check_recovery(&h.resource).await.unwrap(), None);
    assert_eq!(h.state(), State::INTERRUPT);
}

#[tokio::test]
async fn recovery_applies_only_to_a_resource_in_interrupt() {
    let h = harness().flow("F", &["B"]).state(State::RUNNING).build();
    ask_recovery(&h);
    assert_eq!(h.manager.check_recovery(&h.resource).await.unwrap(), None);
}

#[tokio::test]
async fn reconcile_checks_recovery_before_the_state_machine() {
    let (h, _) = interrupted(State::new("ModifyClass")).await;
    ask_recovery(&h);
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT]);
    let out = sm.reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(
        out,
        Reconciled::Recovered {
            state: State::new("ModifyClass")
        }
    );
}
