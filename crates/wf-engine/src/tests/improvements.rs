//! [Semantics §12](../../../../docs/SEMANTICS.md#12-persistence-retention-and-the-byte-budget)
//! (persistence), [§13](../../../../docs/SEMANTICS.md#13-hooks-and-history) (hooks and
//! history) and [§11](../../../../docs/SEMANTICS.md#11-cancellation-and-draining)
//! (cancellation): where this engine does better than the original.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mockall::predicate::function;

use super::support::{always, harness, token, Act, Script, ScriptedStep};
use crate::memento::{MementoWrite, MockMementoStorage};
use crate::Resumption;
use crate::{
    Event, HistoryRecorder, JsonMap, MementoError, MementoStorage, MementoStorageFactory,
    MemoryResource, Reconciled, StaticLoader, WorkflowConfig, WorkflowManager,
};

/// A factory that hands out one shared mock storage.
struct OneStorage(Arc<dyn MementoStorage>);

impl MementoStorageFactory<MemoryResource> for OneStorage {
    fn storage_for(&self, _: &MemoryResource) -> Result<Arc<dyn MementoStorage>, MementoError> {
        Ok(self.0.clone())
    }
}

fn manager_over(
    storage: MockMementoStorage,
    steps: &[(&str, Script)],
) -> WorkflowManager<MemoryResource> {
    let classes: Vec<&str> = steps.iter().map(|(c, _)| *c).collect();
    let mut builder = WorkflowManager::builder("test")
        .loader(StaticLoader::new().with("t/F.yaml", super::support::flow_yaml("F", &classes)))
        .memento_store(OneStorage(Arc::new(storage)));
    for (class, script) in steps {
        let script = script.clone();
        builder = builder.step(*class, move || ScriptedStep(script.clone()));
    }
    builder.build().unwrap()
}

// §9 ------------------------------------------------------------------------------------

#[tokio::test]
async fn memento_store_is_named_resource_name_dash_workflow_and_saved_at_every_transition() {
    let a = Script::new([Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    h.workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert_eq!(h.mementos.snapshot("ns", "c1-workflow").len(), 1);
}

#[tokio::test]
async fn steady_state_costs_one_read_per_reconcile_and_two_writes_per_step() {
    let mut storage = MockMementoStorage::new();
    storage
        .expect_load_all()
        .times(1)
        .returning(|| Ok(BTreeMap::new()));
    let writes = Arc::new(Mutex::new(Vec::<MementoWrite>::new()));
    let seen = writes.clone();
    storage.expect_write().returning(move |w| {
        seen.lock().unwrap().push(w.clone());
        Ok(())
    });
    let steps: Vec<(&str, Script)> = ["A", "B", "C"]
        .iter()
        .map(|c| (*c, Script::new([Act::Done])))
        .collect();
    let manager = manager_over(storage, &steps);
    let resource = harness().build().resource;
    let mut wf = manager.resource_workflow(&resource).await.unwrap();
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    let writes = writes.lock().unwrap();
    // 1 create + 2 per step (inited, completed) + 1 flow completed.
    assert_eq!(writes.len(), 1 + 2 * 3 + 1);
    assert!(
        writes.iter().all(|w| w.key == "1-F"),
        "each write carries only this run's key"
    );
}

#[tokio::test]
async fn failed_memento_write_fails_the_run_and_loses_no_cached_state() {
    let mut storage = MockMementoStorage::new();
    storage.expect_load_all().returning(|| Ok(BTreeMap::new()));
    storage
        .expect_write()
        .with(function(|w: &MementoWrite| {
            w.value.contains("\"prepared\"") && !w.value.contains("inited")
        }))
        .returning(|_| Ok(()));
    storage.expect_write().returning(|_| {
        Err(MementoError::Backend {
            caretaker: "c1-workflow".into(),
            source: "disk full".into(),
        })
    });
    let a = Script::new([Act::Done]);
    let manager = manager_over(storage, &[("A", a.clone())]);
    let resource = harness().build().resource;
    let mut wf = manager.resource_workflow(&resource).await.unwrap();
    let err = wf.run("F", JsonMap::new(), &token()).await.unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(
        a.runs(),
        0,
        "a step never runs before its inited transition is persisted"
    );
    let cached = wf.runtimes().unwrap();
    assert_eq!(cached[0].runtime.flow_status, crate::FlowStatus::Prepared);
}

// §10 -----------------------------------------------------------------------------------

#[tokio::test]
async fn default_history_hook_appends_one_json_line_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let a = Script::new([Act::Fail("x"), Act::Done]);
    let resources = harness().build();
    let manager = WorkflowManager::builder("shared")
        .loader(StaticLoader::new().with("t/F.yaml", super::support::flow_yaml("F", &["A"])))
        .hook(HistoryRecorder::new(dir.path(), "shared"))
        .step("A", {
            let a = a.clone();
            move || ScriptedStep(a.clone())
        })
        .build()
        .unwrap();
    let mut wf = manager
        .resource_workflow(&resources.resource)
        .await
        .unwrap();
    let _ = wf.run("F", JsonMap::new(), &token()).await;
    wf.run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    let events = crate::hook::read_history(&dir.path().join("shared_workflow.txt")).unwrap();
    let types: Vec<_> = events
        .iter()
        .map(|e| format!("{:?}", e.event_type))
        .collect();
    assert_eq!(
        types,
        [
            "WorkFlowStart",
            "StepInited",
            "StepError",
            "StepInited",
            "StepCompleted",
            "WorkFlowCompleted"
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.workflow_id == events[0].workflow_id && e.step_count == 1));
    assert_eq!(events[3].retry, 1);
}

// §11 -----------------------------------------------------------------------------------

#[tokio::test]
async fn retention_bounds_the_store_across_many_runs_and_keeps_uncompleted_runs() {
    let a = Script::new([Act::Done]);
    let w = Script::new([Act::Wait]);
    let config = WorkflowConfig {
        retention: 3,
        ..WorkflowConfig::default()
    };
    let h = harness()
        .flow("F", &["A"])
        .flow("W", &["W"])
        .step("A", &a)
        .step("W", &w)
        .config(config)
        .build();
    let mut wf = h.workflow().await;
    wf.run("W", JsonMap::new(), &token()).await.unwrap();
    for _ in 0..20 {
        wf.run("F", JsonMap::new(), &token()).await.unwrap();
    }
    let keys: Vec<_> = h
        .mementos
        .snapshot("ns", "c1-workflow")
        .into_keys()
        .collect();
    assert_eq!(keys, ["1-W", "19-F", "20-F", "21-F"]);
}

#[tokio::test]
async fn byte_budget_exceeded_is_a_clear_error_and_nothing_is_written() {
    let a = Script::new([Act::Done]);
    let config = WorkflowConfig {
        byte_budget: 300,
        ..WorkflowConfig::default()
    };
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .config(config)
        .build();
    let err = h
        .workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("over its budget of 300 bytes"),
        "{err}"
    );
    assert!(h.mementos.snapshot("ns", "c1-workflow").is_empty());
}

#[tokio::test]
async fn watch_event_cancels_a_running_flow_at_once_through_the_manager() {
    let a = Script::new([Act::Hang]);
    let h = harness().flow("F", &["A"]).step("A", &a).build(); // poll interval 5 s
    let manager = h.manager.clone();
    let key = super::support::key();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if manager.cancel(&key) {
                break;
            }
        }
    });
    let out = tokio::time::timeout(
        Duration::from_secs(2),
        h.workflow()
            .await
            .common_main_enter("F", Resumption::AnyFlow, &always(Event::new("F"))),
    )
    .await
    .expect("cancelled well before the 5 s poll")
    .unwrap();
    assert!(
        matches!(out, Reconciled::Interrupted { ref reason, .. } if reason == crate::CANCELLED)
    );
}

/// Collects the names and fields of the spans that were entered.
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<Vec<String>>>);

impl<S> tracing_subscriber::Layer<S> for SpanLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = String::new();
        struct Visit<'a>(&'a mut String);
        impl tracing::field::Visit for Visit<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }
        attrs.record(&mut Visit(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push(format!("{}{}", attrs.metadata().name(), fields));
    }
}

#[tokio::test]
async fn tracing_spans_cover_resource_flow_step_and_attempt() {
    use tracing_subscriber::layer::SubscriberExt;
    let log = SpanLog::default();
    let subscriber = tracing_subscriber::registry().with(log.clone());
    let _default = tracing::subscriber::set_default(subscriber);

    let a = Script::new([Act::Fail("x"), Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut sm = crate::StateMachine::new("test");
    sm.register_translate_main_enter(
        crate::State::INIT,
        |_: &MemoryResource| Ok(Some(Event::new("F"))),
        crate::State::CREATING,
        h.manager.flow_entry("F").resumption(Resumption::AnyFlow),
    );
    let _ = sm.do_state_main_enter(&h.resource).await;
    let _ = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await;
    let spans = log.0.lock().unwrap().clone();
    assert!(
        spans
            .iter()
            .any(|s| s.starts_with("reconcile") && s.contains("resource=ns/c1")),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.starts_with("flow") && s.contains("flow=F")),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.starts_with("step") && s.contains("step=A") && s.contains("attempt=1")),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.starts_with("step") && s.contains("attempt=2")),
        "{spans:?}"
    );
}
