//! [Semantics §6](../../../../docs/SEMANTICS.md#6-runs-statuses-and-saves) and
//! [§13](../../../../docs/SEMANTICS.md#13-hooks-and-history): what a process that stopped
//! between a save and its hooks leaves behind is finished by the next one.

use serde_json::{json, Value};

use super::support::{harness, token, Act, Script};
use crate::memento::{caretaker_name, MementoStorage, MementoWrite};
use crate::{FlowStatus, InMemoryMementoStore, Reconciled, Resumption, State, StateMachine};

/// A store holding run 1 of flow `F` as a stopped process left it.
async fn stored(run: Value) -> InMemoryMementoStore {
    let mementos = InMemoryMementoStore::new();
    let storage = mementos.storage(
        super::support::KEY_NS,
        &caretaker_name(super::support::KEY_NAME),
    );
    storage
        .write(&MementoWrite {
            key: "1-F".into(),
            value: run.to_string(),
            remove: vec![],
        })
        .await
        .unwrap();
    mementos
}

/// A step record that started at second `at` and, unless `inited`, ended a second later.
fn step(name: &str, status: &str, at: u32) -> Value {
    let time = |s: u32| json!(format!("2026-01-01T00:00:{s:02}Z"));
    json!({
        "StepName": name,
        "stepStatus": status,
        "retryTimes": 0,
        "stepStartTime": time(at),
        "lastStepCompleteTime": if status == "inited" { Value::Null } else { time(at + 1) },
    })
}

fn machine() -> StateMachine<crate::MemoryResource> {
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    sm
}

#[tokio::test]
async fn a_run_whose_steps_all_completed_is_closed_in_a_stable_state_and_its_ending_replayed_once()
{
    // The last step moved the resource to Running; the process stopped before the run's
    // own `completed` was saved (and maybe before the step's hooks ran).
    let mementos = stored(json!({
        "flowStatus": "running", "flowName": "F", "startTime": "2026-01-01T00:00:00Z",
        "runningSteps": [step("A", "completed", 1), step("B", "completed", 2)],
    }))
    .await;
    let (a, b) = (Script::new([Act::Done]), Script::new([Act::Done]));
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .mementos(&mementos)
        .state(State::RUNNING)
        .build();
    let sm = machine();

    let out = sm.reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(
        out,
        Reconciled::Stable {
            state: State::RUNNING
        }
    );
    let run = h.last().await.runtime;
    assert_eq!(run.flow_status, FlowStatus::Completed);
    assert_eq!(
        run.complete_time.map(|t| t.to_rfc3339()),
        Some("2026-01-01T00:00:03+00:00".to_owned()),
        "completed when its last step did"
    );
    assert_eq!(
        h.hook.points(),
        ["step_completed:B (replayed)", "wf_completed (replayed)"]
    );
    assert_eq!((a.runs(), b.runs()), (0, 0), "no step ran again");

    sm.reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(
        h.hook.points().len(),
        2,
        "nothing replayed twice by one process"
    );
}

#[tokio::test]
async fn a_run_stopped_in_its_last_step_after_it_made_the_resource_stable_is_finished_there() {
    // B (the last step) wrote the stable state; the process stopped before B's save.
    let mementos = stored(json!({
        "flowStatus": "running", "flowName": "F", "startTime": "2026-01-01T00:00:00Z",
        "runningSteps": [step("A", "completed", 1), step("B", "inited", 3)],
    }))
    .await;
    let (a, b) = (Script::new([Act::Done]), Script::new([Act::Done]));
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .mementos(&mementos)
        .state(State::RUNNING)
        .build();
    let out = machine().reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(
        out,
        Reconciled::Stable {
            state: State::RUNNING
        }
    );
    assert_eq!((a.runs(), b.runs()), (0, 1), "only the last step ran again");
    let run = h.last().await.runtime;
    assert_eq!(run.flow_status, FlowStatus::Completed);
    assert_eq!(run.resume_times, 1, "a resume, not a retry");
    assert_eq!(
        h.hook.points(),
        [
            "step_init:B (replayed)",
            "step_init:B",
            "step_completed:B",
            "wf_completed"
        ]
    );
}

#[tokio::test]
async fn a_run_stopped_before_its_last_step_is_left_to_its_own_entry() {
    let mementos = stored(json!({
        "flowStatus": "running", "flowName": "F", "startTime": "2026-01-01T00:00:00Z",
        "runningSteps": [step("A", "inited", 1), step("B", "prepared", 3)],
    }))
    .await;
    let (a, b) = (Script::new([Act::Done]), Script::new([Act::Done]));
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .mementos(&mementos)
        .state(State::RUNNING)
        .build();
    machine().reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(
        (a.runs(), b.runs()),
        (0, 0),
        "nothing runs in a stable state"
    );
    assert_eq!(h.last().await.runtime.flow_status, FlowStatus::Running);
}

#[tokio::test]
async fn a_run_completed_by_a_stopped_process_gets_its_completion_hooked_by_the_next_once() {
    // Saved `completed`, then the process stopped before `wf_completed` ran.
    let mementos = stored(json!({
        "flowStatus": "completed", "flowName": "F", "startTime": "2026-01-01T00:00:00Z",
        "completeTime": "2026-01-01T00:00:02Z",
        "runningSteps": [step("A", "completed", 1)],
    }))
    .await;
    let a = Script::new([Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .mementos(&mementos)
        .state(State::RUNNING)
        .build();
    let sm = machine();
    sm.reconcile(&h.resource, &h.manager).await.unwrap();
    sm.reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(h.hook.points(), ["wf_completed (replayed)"]);
}

#[tokio::test]
async fn the_last_transition_a_stopped_process_saved_is_replayed_when_the_next_takes_the_run_up() {
    // A completed, B marked inited and saved; the process stopped before B's hooks ran
    // (or while B ran: the hooks cannot tell, so the replay is marked and a recorder that
    // has it drops it).
    let mementos = stored(json!({
        "flowStatus": "running", "flowName": "F", "startTime": "2026-01-01T00:00:00Z",
        "runningSteps": [step("A", "completed", 1), step("B", "inited", 3)],
    }))
    .await;
    let (a, b) = (Script::new([Act::Done]), Script::new([Act::Done]));
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .mementos(&mementos)
        .build();
    let report = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap();
    assert!(report.resumed.is_some());
    assert_eq!(
        h.hook.points(),
        [
            "step_init:B (replayed)",
            "step_init:B",
            "step_completed:B",
            "wf_completed"
        ]
    );
    assert_eq!((a.runs(), b.runs()), (0, 1));
}

#[tokio::test]
async fn a_run_this_process_started_is_never_replayed() {
    let a = Script::new([Act::Fail("x"), Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .state(State::RUNNING)
        .build();
    let mut wf = h.workflow().await;
    let _ = wf.run("F", serde_json::Map::new(), &token()).await;
    wf.run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap();
    machine().reconcile(&h.resource, &h.manager).await.unwrap();
    assert!(
        h.hook.points().iter().all(|p| !p.contains("replayed")),
        "{:?}",
        h.hook.points()
    );
}
