//! [Semantics §15](../../../../docs/SEMANTICS.md#15-embedded-operators): the embedded reconcile loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::{harness, key, Act, Script};
use crate::{
    BoxError, Event, LoopOutcome, MemoryResource, ReconcileLoop, Reconciled, State, StateMachine,
    StateResource, WorkflowManager,
};

fn machine(manager: &WorkflowManager<MemoryResource>) -> StateMachine<MemoryResource> {
    // `Init` always asks for the flow; in `Creating` the request is served by the first run
    // (the test flows' steps set no state).
    let served = Arc::new(AtomicBool::new(false));
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    sm.register_translate_main_enter(
        State::INIT,
        move |r: &MemoryResource| -> Result<Option<Event>, BoxError> {
            let state = r.state().effective();
            let fires = state == State::INIT
                || (state == State::CREATING && !served.swap(true, Ordering::SeqCst));
            Ok(fires.then(|| Event::new("Create")))
        },
        State::CREATING,
        manager.flow_entry("F"),
    );
    sm
}

#[tokio::test]
async fn reconcile_loop_settles_a_resource_honouring_waits_and_retry_backoff() {
    let a = Script::new([Act::Wait, Act::Fail("not yet"), Act::Done]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nbackoff: {initial: 5ms, max: 10ms}\nsteps:\n  - {className: A, stepName: A}\n",
        )
        .step("A", &a)
        .state(State::INIT)
        .build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let driver = ReconcileLoop::new(machine(&h.manager), h.manager.clone()).observe(
        move |_, result: &Result<Reconciled, crate::Error>| {
            record.lock().unwrap().push(match result {
                Ok(Reconciled::Transitioned { .. }) => "transitioned",
                Ok(Reconciled::Waiting { .. }) => "waiting",
                Ok(Reconciled::FlowCompleted { .. }) => "completed",
                Ok(Reconciled::Stable { .. }) => "stable",
                Ok(_) => "other",
                Err(_) => "retry",
            });
        },
    );
    match driver.settle(&h.resource).await {
        LoopOutcome::Stable(fresh) => assert_eq!(fresh.state(), State::RUNNING),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *seen.lock().unwrap(),
        ["transitioned", "waiting", "retry", "completed", "stable"]
    );
    assert_eq!(a.runs(), 3);
}

#[tokio::test]
async fn reconcile_loop_ends_gone_when_the_resource_is_deleted() {
    let h = harness().flow("F", &["A"]).state(State::INIT).build();
    h.resources.remove(&key());
    let driver = ReconcileLoop::new(machine(&h.manager), h.manager.clone());
    assert!(matches!(
        driver.settle(&h.resource).await,
        LoopOutcome::Gone
    ));
}

#[tokio::test]
async fn reconcile_loop_gives_up_after_max_errors_in_a_row_with_the_last_error() {
    let a = Script::new([Act::Fail("storage down")]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nbackoff: {initial: 1ms, max: 2ms}\nsteps:\n  - {className: A, stepName: A, maxRetries: 50}\n",
        )
        .step("A", &a)
        .build();
    let driver = ReconcileLoop::new(machine(&h.manager), h.manager.clone()).max_errors_in_a_row(3);
    match driver.settle(&h.resource).await {
        LoopOutcome::Failed(err) => assert!(err.to_string().contains("storage down"), "{err}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.runs(), 3);
}

#[tokio::test(start_paused = true)]
async fn reconcile_loop_caps_pauses_and_stops_when_its_token_fires() {
    let a = Script::new([Act::Wait]); // waits for ever, asking for 7 ms each time
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let stop = crate::CancellationToken::new();
    let driver = ReconcileLoop::new(machine(&h.manager), h.manager.clone())
        .max_pause(Duration::from_millis(2))
        .stop_on(stop.clone());
    let trigger = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(21)).await;
        trigger.cancel();
    });
    match driver.settle(&h.resource).await {
        LoopOutcome::Stopped(fresh) => assert_eq!(fresh.state(), State::CREATING),
        other => panic!("{other:?}"),
    }
    // One reconcile every 2 ms (the cap), not every 7 ms: about ten in 21 ms.
    assert!(a.runs() >= 9, "{}", a.runs());
}

#[tokio::test]
async fn reconcile_loop_settles_several_resources_at_once() {
    let a = Script::new([Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .state(State::INIT)
        .build();
    let other = h.resources.insert(
        crate::ResourceKey::new("other", "c1"),
        crate::ResourceRecord {
            state: State::RUNNING,
            ..crate::ResourceRecord::default()
        },
    );
    let driver = ReconcileLoop::new(machine(&h.manager), h.manager.clone());
    let results = driver.settle_all([h.resource.clone(), other], 2).await;
    assert_eq!(results.len(), 2);
    assert!(results
        .values()
        .all(|o| matches!(o, LoopOutcome::Stable(r) if r.state() == State::RUNNING)));
}
