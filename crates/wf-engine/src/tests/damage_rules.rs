//! [Semantics §12](../../../../docs/SEMANTICS.md#12-persistence-retention-and-the-byte-budget)
//! and [§13](../../../../docs/SEMANTICS.md#13-hooks-and-history): damaged state is loud, not
//! silent. A memento that is not a runtime is an error naming the file, a memento lost under
//! a resource in an unstable state is a warning naming it, a bad history line is skipped
//! with a warning naming the file and the line, and an oversized memento is refused.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use super::support::{harness, Act, Script};
use crate::hook::{parse_history, read_history, HistoryError};
use crate::memento::{
    decode_memento_file, FileMementoStore, MementoCaretaker, MementoError, MementoStorage,
    MementoWrite, MAX_MEMENTO_BYTES,
};
use crate::{
    Event, FlowStatus, MemoryResource, Reconciled, State, StateMachine, StateResource,
    WorkflowManager,
};

/// Log lines written while a [`Captured::start`] guard lives (on this thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        (
            captured.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A real runtime's JSON, as the engine writes it.
fn runtime_json(flow: &str, status: &str) -> String {
    format!(
        r#"{{"flowStatus":"{status}","flowName":"{flow}","startTime":"2026-12-03T12:16:14.186Z","runningSteps":[{{"StepName":"A","stepStatus":"inited"}}]}}"#
    )
}

fn file_with(dir: &tempfile::TempDir, content: &[u8]) -> (FileMementoStore, std::path::PathBuf) {
    let store = FileMementoStore::new(dir.path());
    let path = store.path_of("ns", "c1-workflow");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    (store, path)
}

#[tokio::test]
async fn a_memento_that_is_not_a_runtime_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The whole file replaced by `{}`: no run at all, which the engine never writes.
    let (store, path) = file_with(&dir, b"{}");
    let err = store
        .storage("ns", "c1-workflow")
        .load_all()
        .await
        .unwrap_err();
    assert!(matches!(err, MementoError::NotARuntime { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    // A value that is not a runtime: the file and the key are named.
    for value in [
        "{}",
        "[]",
        "null",
        r#"{"flowStatus":"bogus","flowName":"F"}"#,
    ] {
        let content = serde_json::json!({ "1-Create": value }).to_string();
        let (store, path) = file_with(&dir, content.as_bytes());
        store.forget("ns", "c1-workflow");
        let err = store
            .storage("ns", "c1-workflow")
            .load_all()
            .await
            .unwrap_err();
        assert!(
            matches!(err, MementoError::Corrupt { .. }),
            "{value}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("key 1-Create"), "{text}");
    }
    // Nothing is written over the damaged file.
    let storage = store.storage("ns", "c1-workflow");
    assert!(storage
        .write(&MementoWrite {
            key: "2-Create".into(),
            value: runtime_json("Create", "running"),
            remove: vec![],
        })
        .await
        .is_err());
    // The manager's load fails the same way: the run is not started again from step 1.
    let (store, path) = file_with(&dir, b"{}");
    let manager = WorkflowManager::<MemoryResource>::builder("test")
        .loader(crate::StaticLoader::new().with("t/F.yaml", super::support::flow_yaml("F", &["A"])))
        .step("A", || {
            super::support::ScriptedStep(Script::new([Act::Done]))
        })
        .memento_store(store)
        .build()
        .unwrap();
    let resources = crate::MemoryResourceStore::new();
    let resource = resources.insert(super::support::key(), crate::ResourceRecord::default());
    let err = manager.resource_workflow(&resource).await.unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_good_memento_file_decodes_and_foreign_keys_are_kept() {
    let content = serde_json::json!({
        "1-Create": runtime_json("Create", "completed"),
        "notes": "kept as it is",
    })
    .to_string();
    let entries = decode_memento_file("f.json", content.as_bytes()).unwrap();
    assert_eq!(entries.len(), 2);
    let only_foreign = serde_json::json!({ "notes": "x" }).to_string();
    assert!(matches!(
        decode_memento_file("f.json", only_foreign.as_bytes()),
        Err(MementoError::NotARuntime { .. })
    ));
}

#[tokio::test]
async fn a_memento_file_over_one_mib_is_refused_naming_the_file_and_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!(
        "{{\"1-Create\": \"{}\"}}",
        "x".repeat(usize::try_from(MAX_MEMENTO_BYTES).unwrap())
    );
    let (store, path) = file_with(&dir, big.as_bytes());
    let err = store
        .storage("ns", "c1-workflow")
        .load_all()
        .await
        .unwrap_err();
    let MementoError::TooLarge { bytes, limit, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(*bytes, big.len() as u64);
    assert_eq!(*limit, 1 << 20);
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&big.len().to_string()), "{text}");
}

#[tokio::test]
async fn a_memento_file_deleted_under_a_running_process_is_a_warning_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileMementoStore::new(dir.path());
    let storage = store.storage("ns", "c1-workflow");
    storage
        .write(&MementoWrite {
            key: "1-Create".into(),
            value: runtime_json("Create", "running"),
            remove: vec![],
        })
        .await
        .unwrap();
    let path = store.path_of("ns", "c1-workflow");
    std::fs::remove_file(&path).unwrap();
    let (logs, _guard) = Captured::start();
    // Semantics unchanged: the store reads as empty...
    assert!(storage.load_all().await.unwrap().is_empty());
    // ...but not silently.
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("deleted"), "{text}");
}

#[tokio::test]
async fn the_location_of_a_file_store_is_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileMementoStore::new(dir.path());
    let storage = Arc::new(store.storage("ns", "c1-workflow"));
    let path = store.path_of("ns", "c1-workflow");
    let caretaker = MementoCaretaker::load("c1-workflow", storage, 10, 1 << 20)
        .await
        .unwrap();
    assert_eq!(caretaker.location(), path.display().to_string());
}

/// `Init` always asks for the flow; in `Creating` the request is served by the first run.
fn machine(manager: &WorkflowManager<MemoryResource>) -> StateMachine<MemoryResource> {
    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sm = StateMachine::new("test");
    sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    sm.register_translate_main_enter(
        State::INIT,
        move |r: &MemoryResource| -> Result<Option<Event>, crate::BoxError> {
            let state = r.state().effective();
            let fires = state == State::INIT
                || (state == State::CREATING
                    && !served.swap(true, std::sync::atomic::Ordering::SeqCst));
            Ok(fires.then(|| Event::new("Create")))
        },
        State::CREATING,
        manager.flow_entry("F"),
    );
    sm
}

#[tokio::test]
async fn a_resource_found_in_an_unstable_state_with_no_run_is_a_warning_naming_the_memento() {
    // The operator restarted mid-flow and the memento is gone: the resource is in `Creating`
    // (set by the earlier process), its store holds no run.
    let a = Script::new([Act::Wait]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let sm = machine(&h.manager);
    let (logs, _guard) = Captured::start();
    let outcome = sm.reconcile(&h.resource, &h.manager).await.unwrap();
    assert!(matches!(outcome, Reconciled::Waiting { .. }), "{outcome:?}");
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("memento=c1-workflow"), "{text}");
    assert!(text.contains("holds no run"), "{text}");
    // The flow still starts (semantics unchanged), and the warning is not repeated once the
    // store holds the run.
    assert_eq!(a.runs(), 1);
    sm.reconcile(&h.resource, &h.manager).await.unwrap();
    assert_eq!(logs.text().matches("holds no run").count(), 1);
}

#[tokio::test]
async fn a_brand_new_resource_starts_its_flow_without_a_warning() {
    // Moved into `Creating` by this process, or with an empty state (which reads as
    // `Creating`): both are new, nothing was lost.
    for state in [State::INIT, State::new("")] {
        let a = Script::new([Act::Done]);
        let h = harness()
            .flow("F", &["A"])
            .step("A", &a)
            .state(state)
            .build();
        let sm = machine(&h.manager);
        let (logs, _guard) = Captured::start();
        while a.runs() == 0 {
            sm.reconcile(&h.resource, &h.manager).await.unwrap();
        }
        assert_eq!(h.last().await.runtime.flow_status, FlowStatus::Completed);
        let text = logs.text();
        assert!(!text.contains("holds no run"), "{text}");
    }
}

#[test]
fn a_bad_history_line_is_skipped_with_a_warning_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared_workflow.txt");
    let good = r#"{"resource_name":"c1","namespace":"ns","workflow_id":1,"step_id":"1-0","flow_name":"F","step_name":"","type":"WorkFlowStart","start_time":null,"end_time":null,"step":0,"step_count":1,"retry":0,"error":""}"#;
    let mut file = std::fs::File::create(&path).unwrap();
    // A torn line (truncated by a crash), a line of bytes that are not UTF-8, and CRLF.
    writeln!(file, "{good}").unwrap();
    writeln!(file, "{}", &good[..40]).unwrap();
    file.write_all(b"\xff\xfe garbage\n").unwrap();
    write!(file, "{good}\r\n").unwrap();
    drop(file);
    let (logs, _guard) = Captured::start();
    let events = read_history(&path).unwrap();
    assert_eq!(events.len(), 2, "the good lines are kept");
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("line=2"), "{text}");
    assert!(text.contains("line=3"), "{text}");
    let (_, skipped) = parse_history(&path, &std::fs::read(&path).unwrap());
    let lines: Vec<usize> = skipped
        .iter()
        .map(|e| match e {
            HistoryError::Corrupt { line, .. } => *line,
            HistoryError::Io { .. } => 0,
        })
        .collect();
    assert_eq!(lines, [2, 3]);
    assert!(skipped[0].to_string().contains("shared_workflow.txt:2"));
}
