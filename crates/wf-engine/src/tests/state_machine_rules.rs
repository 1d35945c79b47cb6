//! [Semantics §3](../../../../docs/SEMANTICS.md#3-the-state-machine): the state machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mockall::predicate::eq;

use crate::{
    AnnotationPatch, BoxError, Checker, Error, Event, MainEnter, MemoryResource,
    MemoryResourceStore, Reconciled, ResourceError, ResourceKey, ResourceRecord, State,
    StateMachine, StateResource,
};

mockall::mock! {
    pub Res {}
    impl Clone for Res {
        fn clone(&self) -> Self;
    }
    #[async_trait]
    impl StateResource for Res {
        fn name(&self) -> &str;
        fn namespace(&self) -> &str;
        fn state(&self) -> State;
        fn annotation(&self, key: &str) -> Option<String>;
        async fn fetch(&self) -> Result<Self, ResourceError>;
        async fn update_state(&self, state: State) -> Result<Self, ResourceError>;
        async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError>;
        async fn is_cancelled(&self) -> bool;
    }
}

/// A mock snapshot with identity and state only.
fn snapshot(state: &'static str) -> MockRes {
    let mut res = MockRes::new();
    res.expect_name().return_const("c1".to_string());
    res.expect_namespace().return_const("ns".to_string());
    res.expect_state()
        .returning(move || State::from_static(state));
    res
}

/// A resource whose `fetch` returns `fresh()`.
fn resource_fetching(fresh: impl Fn() -> MockRes + Send + Sync + 'static) -> MockRes {
    let mut res = snapshot("stale");
    res.expect_fetch().returning(move || Ok(fresh()));
    res
}

struct CountingEntry(Arc<AtomicUsize>);

#[async_trait]
impl<R: StateResource> MainEnter<R> for CountingEntry {
    async fn enter(&self, _: &R, _: Option<&Checker<R>>) -> Result<Reconciled, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Reconciled::Settled)
    }
}

fn fires(name: &'static str) -> impl Fn(&MockRes) -> Result<Option<Event>, BoxError> + Send + Sync {
    move |_| Ok(Some(Event::new(name)))
}

fn silent(_: &MockRes) -> Result<Option<Event>, BoxError> {
    Ok(None)
}

fn failing(_: &MockRes) -> Result<Option<Event>, BoxError> {
    Err("checker exploded".into())
}

fn machine() -> StateMachine<MockRes> {
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    sm
}

#[tokio::test]
async fn main_enter_reads_a_fresh_copy_and_empty_state_means_creating() {
    let entered = Arc::new(AtomicUsize::new(0));
    let mut sm = machine();
    sm.register_main_enter(State::CREATING, CountingEntry(entered.clone()));
    // The snapshot passed in says "stale"; only the fetched copy (state "") counts.
    let res = resource_fetching(|| snapshot(""));
    let out = sm.do_state_main_enter(&res).await.unwrap();
    assert_eq!(out, Reconciled::Settled);
    assert_eq!(entered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn state_without_entry_is_an_error_naming_the_state() {
    let sm = machine();
    let res = resource_fetching(|| snapshot("Exploding"));
    let err = sm.do_state_main_enter(&res).await.unwrap_err();
    assert!(matches!(err, Error::NoEntry { .. }));
    assert_eq!(
        err.to_string(),
        "no entry is registered for state `Exploding` of ns/c1"
    );
}

#[tokio::test]
async fn unstable_state_runs_its_entry() {
    let entered = Arc::new(AtomicUsize::new(0));
    let mut sm = machine();
    sm.register_main_enter(State::new("ModifyClass"), CountingEntry(entered.clone()));
    let res = resource_fetching(|| snapshot("ModifyClass"));
    sm.do_state_main_enter(&res).await.unwrap();
    assert_eq!(entered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stable_state_first_firing_checker_wins_in_registration_order() {
    let mut sm = machine();
    sm.register_translation(State::RUNNING, silent, State::new("A"));
    sm.register_translation(State::RUNNING, fires("B"), State::new("B"));
    sm.register_translation(State::RUNNING, fires("C"), State::new("C"));
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Running");
        fresh
            .expect_update_state()
            .with(eq(State::new("B")))
            .times(1)
            .returning(|_| Ok(snapshot("B")));
        fresh
    });
    let out = sm.do_state_main_enter(&res).await.unwrap();
    assert_eq!(
        out,
        Reconciled::Transitioned {
            from: State::RUNNING,
            to: State::new("B")
        }
    );
}

#[tokio::test]
async fn stable_state_checker_error_is_logged_and_the_next_checker_tried() {
    let mut sm = machine();
    sm.register_translation(State::RUNNING, failing, State::new("A"));
    sm.register_translation(State::RUNNING, fires("B"), State::new("B"));
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Running");
        fresh
            .expect_update_state()
            .with(eq(State::new("B")))
            .times(1)
            .returning(|_| Ok(snapshot("B")));
        fresh
    });
    let out = sm.do_state_main_enter(&res).await.unwrap();
    assert!(matches!(out, Reconciled::Transitioned { .. }));
}

#[tokio::test]
async fn stable_state_no_event_and_a_checker_error_returns_that_error() {
    let mut sm = machine();
    sm.register_translation(State::RUNNING, failing, State::new("A"));
    sm.register_translation(State::RUNNING, silent, State::new("B"));
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Running");
        fresh.expect_update_state().never();
        fresh
    });
    let err = sm.do_state_main_enter(&res).await.unwrap_err();
    assert!(matches!(err, Error::Checker { .. }));
    assert!(err.to_string().contains("checker exploded"), "{err}");
}

#[tokio::test]
async fn stable_state_no_event_is_stable() {
    let mut sm = machine();
    sm.register_translation(State::RUNNING, silent, State::new("A"));
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Running");
        fresh.expect_update_state().never();
        fresh
    });
    assert_eq!(
        sm.do_state_main_enter(&res).await.unwrap(),
        Reconciled::Stable {
            state: State::RUNNING
        }
    );
}

#[tokio::test]
async fn ignored_event_leaves_the_state_unchanged() {
    let mut sm = machine();
    sm.register_translation(State::RUNNING, fires("Noise"), State::new("A"));
    sm.register_translation(State::RUNNING, fires("B"), State::new("B"));
    sm.ignore_events(["Noise"]);
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Running");
        fresh.expect_update_state().never();
        fresh
    });
    assert_eq!(
        sm.do_state_main_enter(&res).await.unwrap(),
        Reconciled::Stable {
            state: State::RUNNING
        }
    );
}

#[tokio::test]
async fn transition_does_not_run_the_target_entry_in_the_same_call() {
    let entered = Arc::new(AtomicUsize::new(0));
    let mut sm = machine();
    sm.register_translate_main_enter(
        State::INIT,
        fires("Creating"),
        State::CREATING,
        CountingEntry(entered.clone()),
    );
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Init");
        fresh
            .expect_update_state()
            .with(eq(State::CREATING))
            .times(1)
            .returning(|_| Ok(snapshot("Creating")));
        fresh
    });
    let out = sm.do_state_main_enter(&res).await.unwrap();
    assert_eq!(out.requeue_after(), Some(Duration::ZERO));
    assert_eq!(entered.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failed_state_write_is_an_error_not_a_silent_success() {
    let mut sm = machine();
    sm.register_translation(State::RUNNING, fires("B"), State::new("B"));
    let res = resource_fetching(|| {
        let mut fresh = snapshot("Running");
        fresh.expect_update_state().returning(|_| {
            Err(ResourceError::Conflict {
                key: ResourceKey::new("ns", "c1"),
                message: "stale".into(),
            })
        });
        fresh
    });
    let err = sm.do_state_main_enter(&res).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Resource(ResourceError::Conflict { .. })
    ));
}

/// An entry that records the most entries running at once.
struct OverlapEntry {
    running: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    /// When set, every entry waits here for the others: it proves they run at once.
    barrier: Option<Arc<tokio::sync::Barrier>>,
}

#[async_trait]
impl MainEnter<MemoryResource> for OverlapEntry {
    async fn enter(
        &self,
        _: &MemoryResource,
        _: Option<&Checker<MemoryResource>>,
    ) -> Result<Reconciled, Error> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        match &self.barrier {
            Some(barrier) => {
                tokio::time::timeout(Duration::from_secs(10), barrier.wait())
                    .await
                    .expect("entries of different resources must run concurrently");
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(Reconciled::Settled)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_enter_holds_the_per_resource_lock_for_the_whole_call() {
    let store = MemoryResourceStore::new();
    let record = ResourceRecord {
        state: State::CREATING,
        ..ResourceRecord::default()
    };
    let same_a = store.insert(ResourceKey::new("ns", "c1"), record.clone());
    let other_ns = store.insert(ResourceKey::new("other", "c1"), record);
    let same_b = same_a.clone();

    let run = |resources: Vec<MemoryResource>, barrier: Option<Arc<tokio::sync::Barrier>>| async move {
        let running = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let mut sm = StateMachine::new("test");
        sm.register_main_enter(
            State::CREATING,
            OverlapEntry {
                running: running.clone(),
                max: max.clone(),
                barrier,
            },
        );
        let sm = Arc::new(sm);
        let tasks: Vec<_> = resources
            .into_iter()
            .map(|r| {
                let sm = sm.clone();
                tokio::spawn(async move { sm.do_state_main_enter(&r).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(sm.locks().is_empty(), "lock entries are freed when idle");
        max.load(Ordering::SeqCst)
    };
    assert_eq!(
        run(vec![same_a.clone(), same_b], None).await,
        1,
        "same resource: serialised"
    );
    let barrier = Some(Arc::new(tokio::sync::Barrier::new(2)));
    assert_eq!(
        run(vec![same_a, other_ns], barrier).await,
        2,
        "same name, other namespace: parallel"
    );
}
