//! An embedded operator on files survives a restart with its resources: a child process
//! creates a resource on a `FileResourceStore`, asks for a change and dies inside the
//! change's second step; a second process finds the resource still in the change's state,
//! resumes the run at that step under the default resumption, and ends `Running`.

use std::path::{Path, PathBuf};
use std::process::Command;

use wf_engine::{
    async_trait, BoxError, CancellationToken, Event, FileMementoStore, FileResource,
    FileResourceStore, LoopOutcome, ReconcileLoop, ResourceKey, ResourceRecord, State,
    StateMachine, StateResource, StaticLoader, Step, StepContext, StepError, StepOutcome,
    StoredRuntime, WorkflowManager,
};

const PHASE: &str = "WF_EMBEDDED_TEST_PHASE";
const DIR: &str = "WF_EMBEDDED_TEST_DIR";
const CHILD: &str = "embedded_child_process";

const CREATE: &str =
    "flowName: Create\nsteps:\n  - {className: t.SetRunning, stepName: SetRunning}\n";
const RESIZE: &str = "flowName: Resize\nsteps:\n  - {className: t.Log, stepName: Start}\n  - {className: t.Finish, stepName: Finish}\n";

/// Logs its step name; `Finish` aborts the process in the crash phase, else sets Running.
struct Logged {
    store: FileResourceStore,
    dir: PathBuf,
    crash: bool,
    ctx: Option<StepContext>,
    sets_running: bool,
}

#[async_trait]
impl Step for Logged {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.ctx = Some(ctx.clone());
        Ok(())
    }
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        let ctx = self
            .ctx
            .as_ref()
            .ok_or_else(|| StepError::failed("no init"))?;
        let log = self.dir.join("executions.log");
        let mut text = std::fs::read_to_string(&log).unwrap_or_default();
        text.push_str(ctx.step_name());
        text.push('\n');
        std::fs::write(&log, text)?;
        if self.crash && ctx.step_name() == "Finish" {
            std::process::abort();
        }
        if self.sets_running {
            self.store.update(&ctx.resource_key()?, |r| {
                r.annotations.remove("resizeTo");
                r.state = State::RUNNING;
            })?;
        }
        Ok(StepOutcome::Done)
    }
}

fn creating(r: &FileResource) -> Result<Option<Event>, BoxError> {
    let state = r.state().effective();
    Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
}

fn resizing(r: &FileResource) -> Result<Option<Event>, BoxError> {
    Ok(r.annotation("resizeTo").map(|_| Event::new("Resize")))
}

fn key() -> ResourceKey {
    ResourceKey::new("default", "b1")
}

/// The body of the child process; does nothing unless started by the parent test.
#[test]
#[ignore = "run as a child process by a_file_backed_operator_resumes_its_resource_after_a_crash"]
fn embedded_child_process() {
    let (Ok(phase), Ok(dir)) = (std::env::var(PHASE), std::env::var(DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let crash = phase == "crash";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = FileResourceStore::open(dir.join("resources")).unwrap();
        let logged = |sets_running: bool| {
            let dir = dir.clone();
            move |store: FileResourceStore| Logged {
                store,
                dir: dir.clone(),
                crash,
                ctx: None,
                sets_running,
            }
        };
        let manager = WorkflowManager::builder("t")
            .loader(StaticLoader::new().with("t/Create.yaml", CREATE).with("t/Resize.yaml", RESIZE))
            .memento_store(FileMementoStore::new(dir.join("runs")))
            .step_with("t.SetRunning", &store, logged(true))
            .step_with("t.Log", &store, logged(false))
            .step_with("t.Finish", &store, logged(true))
            .build()
            .unwrap();
        let mut machine = StateMachine::new("t");
        machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
        machine.register_translate_main_enter(State::INIT, creating, State::CREATING, manager.flow_entry("Create"));
        machine.register_translate_main_enter(State::RUNNING, resizing, State::new("Resizing"), manager.flow_entry("Resize"));
        let driver = ReconcileLoop::new(machine, manager);
        let resource = match store.get(&key()).unwrap() {
            Some(found) => found,
            None => store.insert(key(), ResourceRecord::default()).unwrap(),
        };
        assert!(matches!(driver.settle(&resource).await, LoopOutcome::Stable(r) if r.state() == State::RUNNING));
        if crash {
            store
                .update(&key(), |r| drop(r.annotations.insert("resizeTo".into(), "20".into())))
                .unwrap();
            let _ = driver.settle(&resource).await; // aborts inside Finish
            unreachable!("the process dies inside Finish");
        }
    });
}

fn run_child(dir: &Path, phase: &str) -> std::process::ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            CHILD,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PHASE, phase)
        .env(DIR, dir)
        .status()
        .expect("start the child process")
}

fn runs(dir: &Path) -> Vec<StoredRuntime> {
    let text = std::fs::read_to_string(
        FileMementoStore::new(dir.join("runs")).path_of("default", "b1-workflow"),
    )
    .unwrap();
    let map: std::collections::BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    let mut runs: Vec<StoredRuntime> = map
        .into_iter()
        .map(|(key, value)| StoredRuntime {
            seq: key.split('-').next().unwrap().parse().unwrap(),
            key,
            runtime: serde_json::from_str(&value).unwrap(),
        })
        .collect();
    runs.sort_by_key(|r| r.seq);
    runs
}

#[test]
fn a_file_backed_operator_resumes_its_resource_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        !run_child(dir.path(), "crash").success(),
        "the first process dies"
    );
    let store = FileResourceStore::open(dir.path().join("resources")).unwrap();
    assert_eq!(
        store.fetch(&key()).unwrap().state(),
        "Resizing",
        "the resource survived"
    );

    assert!(
        run_child(dir.path(), "resume").success(),
        "the second process settles"
    );
    let log = std::fs::read_to_string(dir.path().join("executions.log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["SetRunning", "Start", "Finish", "Finish"]
    );
    let bucket = store.fetch(&key()).unwrap();
    assert_eq!(bucket.state(), State::RUNNING);
    assert_eq!(bucket.annotation("resizeTo"), None);
    let resize = runs(dir.path()).pop().unwrap().runtime;
    assert_eq!(resize.flow_name, "Resize");
    assert_eq!(resize.flow_status, wf_engine::FlowStatus::Completed);
    assert_eq!((resize.resume_times, resize.retry_times), (1, 0));
}
