//! [Semantics §3](../../../../docs/SEMANTICS.md#3-the-state-machine), admission (3.1): a
//! fired event passes the machine's admission before the resource leaves its stable state.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::hook::{read_history, HistoryEventType};
use crate::{
    Admission, BoxError, Checker, Error, Event, HistoryRecorder, LoopOutcome, MainEnter,
    MemoryResource, MemoryResourceStore, ReconcileLoop, Reconciled, Refusal, RefusalEvent,
    ResourceKey, ResourceRecord, State, StateMachine, StateResource, StaticLoader, Verdict,
    WorkflowHook, WorkflowManager,
};

/// An admission answering what the test sets, counting its calls.
#[derive(Clone, Default)]
struct Scripted {
    verdict: Arc<Mutex<Option<Result<Verdict, String>>>>,
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    fn answer(&self, verdict: Verdict) {
        *self.verdict.lock().unwrap() = Some(Ok(verdict));
    }
    fn fail(&self, error: &str) {
        *self.verdict.lock().unwrap() = Some(Err(error.to_owned()));
    }
}

#[async_trait]
impl Admission<MemoryResource> for Scripted {
    async fn admit(
        &self,
        resource: &MemoryResource,
        _: &Event,
        _: &State,
    ) -> Result<Verdict, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.verdict.lock().unwrap().clone();
        match answer.unwrap_or(Ok(Verdict::Admit)) {
            Ok(Verdict::Satisfied) => {
                // Consume the request, as a real admission does.
                let patch = [("ask".to_owned(), None)].into_iter().collect();
                resource.patch_annotations(&patch).await?;
                Ok(Verdict::Satisfied)
            }
            Ok(verdict) => Ok(verdict),
            Err(error) => Err(error.into()),
        }
    }
}

/// What a hook is told of a refusal: the state, `<reason>: <message>`, the flow.
type ToldRefusal = (String, String, Option<String>);

/// A hook keeping every refusal it is told about.
#[derive(Clone, Default)]
struct Told(Arc<Mutex<Vec<ToldRefusal>>>);

#[async_trait]
impl WorkflowHook for Told {
    async fn on_refused(&self, event: &RefusalEvent<'_>) {
        self.0.lock().unwrap().push((
            event.state.to_string(),
            event.refusal.to_string(),
            event.flow.map(str::to_owned),
        ));
    }
}

impl Told {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

struct CountingEntry(Arc<AtomicUsize>);

#[async_trait]
impl MainEnter<MemoryResource> for CountingEntry {
    async fn enter(
        &self,
        _: &MemoryResource,
        _: Option<&Checker<MemoryResource>>,
    ) -> Result<Reconciled, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Reconciled::Settled)
    }

    fn flow_name(&self) -> Option<&str> {
        Some("ModifyFlow")
    }
}

struct Fixture {
    machine: Arc<StateMachine<MemoryResource>>,
    manager: WorkflowManager<MemoryResource>,
    store: MemoryResourceStore,
    key: ResourceKey,
    admission: Scripted,
    told: Told,
    entered: Arc<AtomicUsize>,
    asking: Arc<AtomicBool>,
    history: tempfile::TempDir,
}

/// `Running` with a translation to `ModifyClass` that fires while `asking` is set (and the
/// annotation `ask` is there), and an entry for `ModifyClass` and `Creating` that counts.
fn fixture(state: State) -> Fixture {
    let history = tempfile::tempdir().unwrap();
    let told = Told::default();
    let manager = WorkflowManager::<MemoryResource>::builder("demo")
        .loader(StaticLoader::new())
        .hook(told.clone())
        .hook(HistoryRecorder::new(history.path(), "demo"))
        .build()
        .unwrap();
    let admission = Scripted::default();
    let entered = Arc::new(AtomicUsize::new(0));
    let asking = Arc::new(AtomicBool::new(true));
    let mut machine = StateMachine::new("demo");
    machine.register_stable_states([State::RUNNING, State::INTERRUPT]);
    let flag = asking.clone();
    machine.register_translate_main_enter(
        State::RUNNING,
        move |r: &MemoryResource| {
            let asks = flag.load(Ordering::SeqCst) && r.annotation("ask").is_some();
            Ok(asks.then(|| Event::new("ModifyClass")))
        },
        State::new("ModifyClass"),
        CountingEntry(entered.clone()),
    );
    machine.register_main_enter(State::CREATING, CountingEntry(entered.clone()));
    machine.register_admission(admission.clone());
    let store = MemoryResourceStore::new();
    let key = ResourceKey::new("ns", "c1");
    store.insert(
        key.clone(),
        ResourceRecord {
            state,
            annotations: [("ask".to_owned(), "x".to_owned())].into_iter().collect(),
            ..ResourceRecord::default()
        },
    );
    Fixture {
        machine: Arc::new(machine),
        manager,
        store,
        key,
        admission,
        told,
        entered,
        asking,
        history,
    }
}

impl Fixture {
    async fn reconcile(&self) -> Result<Reconciled, Error> {
        let resource = self.store.get(&self.key).unwrap();
        self.machine.reconcile(&resource, &self.manager).await
    }
    fn record(&self) -> ResourceRecord {
        self.store.get(&self.key).unwrap().record().clone()
    }
    fn refused_lines(&self) -> usize {
        read_history(&self.history.path().join("demo_workflow.txt"))
            .unwrap()
            .iter()
            .filter(|e| e.event_type == HistoryEventType::RequestRefused)
            .count()
    }
}

fn bogus() -> Refusal {
    Refusal::new("UNKNOWN_CLASS", "class bogus is not in the catalog")
}

#[tokio::test]
async fn a_refused_request_stays_stable_starts_nothing_and_is_recorded_and_told_once() {
    let f = fixture(State::RUNNING);
    f.admission.answer(Verdict::Refuse(bogus()));
    let first = f.reconcile().await.unwrap();
    assert_eq!(
        first,
        Reconciled::Refused {
            state: State::RUNNING,
            reason: "UNKNOWN_CLASS".into(),
            message: "class bogus is not in the catalog".into(),
        }
    );
    assert_eq!(first.requeue_after(), None, "a refused resource rests");
    assert_eq!(f.record().state, State::RUNNING);
    assert_eq!(f.record().refusal, Some(bogus()));
    assert_eq!(f.entered.load(Ordering::SeqCst), 0, "no flow entered");
    // Nothing changed: refused again, but not recorded or told again.
    assert!(matches!(
        f.reconcile().await.unwrap(),
        Reconciled::Refused { .. }
    ));
    assert_eq!(f.admission.calls.load(Ordering::SeqCst), 2);
    assert_eq!(f.told.count(), 1);
    let told = f.told.0.lock().unwrap()[0].clone();
    assert_eq!(
        told,
        (
            "Running".to_owned(),
            "UNKNOWN_CLASS: class bogus is not in the catalog".to_owned(),
            Some("ModifyFlow".to_owned())
        )
    );
    assert_eq!(f.refused_lines(), 1, "one history line");
}

#[tokio::test]
async fn a_changed_refusal_is_recorded_and_told_again() {
    let f = fixture(State::RUNNING);
    f.admission.answer(Verdict::Refuse(bogus()));
    f.reconcile().await.unwrap();
    let other = Refusal::new("UNKNOWN_CLASS", "class bogus2 is not in the catalog");
    f.admission.answer(Verdict::Refuse(other.clone()));
    f.reconcile().await.unwrap();
    assert_eq!(f.record().refusal, Some(other));
    assert_eq!(f.told.count(), 2);
    assert_eq!(f.refused_lines(), 2);
}

#[tokio::test]
async fn a_withdrawn_request_clears_the_refusal() {
    let f = fixture(State::RUNNING);
    f.admission.answer(Verdict::Refuse(bogus()));
    f.reconcile().await.unwrap();
    f.asking.store(false, Ordering::SeqCst);
    assert_eq!(
        f.reconcile().await.unwrap(),
        Reconciled::Stable {
            state: State::RUNNING
        }
    );
    assert_eq!(f.record().refusal, None);
}

#[tokio::test]
async fn a_request_changed_so_that_it_passes_clears_the_refusal_and_leaves_the_state() {
    let f = fixture(State::RUNNING);
    f.admission.answer(Verdict::Refuse(bogus()));
    f.reconcile().await.unwrap();
    f.admission.answer(Verdict::Admit);
    assert_eq!(
        f.reconcile().await.unwrap(),
        Reconciled::Transitioned {
            from: State::RUNNING,
            to: State::new("ModifyClass")
        }
    );
    assert_eq!(f.record().refusal, None);
    assert_eq!(f.record().state, State::new("ModifyClass"));
}

#[tokio::test]
async fn a_satisfied_request_is_consumed_without_a_state_change_or_run() {
    let f = fixture(State::RUNNING);
    f.admission.answer(Verdict::Satisfied);
    let done = f.reconcile().await.unwrap();
    assert_eq!(
        done,
        Reconciled::Satisfied {
            state: State::RUNNING,
            event: "ModifyClass".into()
        }
    );
    assert_eq!(done.requeue_after(), Some(std::time::Duration::ZERO));
    assert_eq!(f.record().state, State::RUNNING);
    assert_eq!(f.record().annotations.get("ask"), None, "consumed");
    // Consumed: the checker no longer fires.
    assert!(matches!(
        f.reconcile().await.unwrap(),
        Reconciled::Stable { .. }
    ));
    assert_eq!(f.told.count(), 0);
}

#[tokio::test]
async fn a_new_resource_is_admitted_before_the_creating_entry_runs() {
    let f = fixture(State::new(""));
    f.admission.answer(Verdict::Refuse(bogus()));
    assert!(matches!(
        f.reconcile().await.unwrap(),
        Reconciled::Refused { state, .. } if state.is_empty()
    ));
    assert_eq!(f.entered.load(Ordering::SeqCst), 0);
    assert_eq!(f.told.count(), 1);
    f.admission.answer(Verdict::Admit);
    assert_eq!(f.reconcile().await.unwrap(), Reconciled::Settled);
    assert_eq!(f.entered.load(Ordering::SeqCst), 1, "the entry ran");
    assert_eq!(f.record().refusal, None);
}

#[tokio::test]
async fn an_admission_that_cannot_decide_fails_the_reconcile_and_moves_nothing() {
    let f = fixture(State::RUNNING);
    f.admission.fail("catalog unreachable");
    let err = f.reconcile().await.unwrap_err();
    assert!(matches!(err, Error::Admission { .. }), "{err}");
    assert!(err.to_string().contains("catalog unreachable"), "{err}");
    assert_eq!(f.record().state, State::RUNNING);
    assert_eq!(f.record().refusal, None);
}

#[tokio::test]
async fn the_reconcile_loop_rests_at_a_refusal() {
    let f = fixture(State::RUNNING);
    f.admission.answer(Verdict::Refuse(bogus()));
    let driver = ReconcileLoop::new(f.machine.clone(), f.manager.clone());
    let resource = f.store.get(&f.key).unwrap();
    match driver.settle(&resource).await {
        LoopOutcome::Stable(fresh) => {
            assert_eq!(fresh.state(), State::RUNNING);
            assert_eq!(fresh.refusal(), Some(bogus()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.admission.calls.load(Ordering::SeqCst), 1, "one reconcile");
}
