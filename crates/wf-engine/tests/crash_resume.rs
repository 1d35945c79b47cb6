//! Crash safety across processes: a child process runs a 5-step flow on the file store and
//! aborts inside step 3; a second process resumes it. Steps 1-2 are not executed again,
//! step 3 runs again, the flow completes, and the memento shows the resume (not a retry).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use wf_engine::{
    async_trait, CancellationToken, FileMementoStore, FlowStatus, JsonMap, MemoryResourceStore,
    ResourceKey, ResourceRecord, Resumption, RunOutcome, State, Step, StepError, StepOutcome,
    StepStatus, WorkflowManager,
};

const PHASE: &str = "WF_CRASH_TEST_PHASE";
const DIR: &str = "WF_CRASH_TEST_DIR";
const CHILD: &str = "crash_child_process";

const FLOW: &str = "\
flowName: Five
recoverFromFirstStep: false
steps:
  - {className: test.Step1, stepName: Step1}
  - {className: test.Step2, stepName: Step2}
  - {className: test.Step3, stepName: Step3}
  - {className: test.Step4, stepName: Step4}
  - {className: test.Step5, stepName: Step5}
";

/// Appends its number to `executions.log`; step 3 aborts the process in the crash phase.
struct Numbered {
    n: u32,
    dir: PathBuf,
    crash: bool,
}

#[async_trait]
impl Step for Numbered {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("executions.log"))?;
        writeln!(log, "{}", self.n)?;
        log.sync_all()?;
        if self.crash && self.n == 3 {
            std::process::abort();
        }
        Ok(StepOutcome::Done)
    }
}

fn memento_path(dir: &Path) -> PathBuf {
    FileMementoStore::new(dir.join("mementos")).path_of("default", "c1-workflow")
}

fn stored_run(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(memento_path(dir)).expect("memento file");
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let raw = map["1-Five"].as_str().expect("run 1 stored").to_owned();
    serde_json::from_str(&raw).unwrap()
}

/// The body of the child process; does nothing unless started by the parent test.
#[test]
#[ignore = "run as a child process by crash_in_step_3_is_resumed_by_a_second_process"]
fn crash_child_process() {
    let (Ok(phase), Ok(dir)) = (std::env::var(PHASE), std::env::var(DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let flows = dir.join("flows");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut builder = WorkflowManager::builder("crash")
            .flow_dir(&flows)
            .memento_store(FileMementoStore::new(dir.join("mementos")));
        for n in 1..=5 {
            let dir = dir.clone();
            let crash = phase == "crash";
            builder = builder.step(format!("test.Step{n}"), move || Numbered {
                n,
                dir: dir.clone(),
                crash,
            });
        }
        let manager = builder.build().unwrap();
        let resource = MemoryResourceStore::new().insert(
            ResourceKey::new("default", "c1"),
            ResourceRecord {
                state: State::CREATING,
                ..ResourceRecord::default()
            },
        );
        let mut workflow = manager.resource_workflow(&resource).await.unwrap();
        let token = CancellationToken::new();
        let report = if phase == "crash" {
            workflow.run("Five", JsonMap::new(), &token).await.unwrap()
        } else {
            workflow
                .run_last_uncompleted("Five", Resumption::AnyFlow, &token)
                .await
                .unwrap()
                .resumed
                .expect("an uncompleted run to resume")
        };
        assert_eq!(report.outcome, RunOutcome::Completed);
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

#[test]
fn crash_in_step_3_is_resumed_by_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows/crash")).unwrap();
    std::fs::write(dir.path().join("flows/crash/Five.yaml"), FLOW).unwrap();

    let crashed = run_child(dir.path(), "crash");
    assert!(
        !crashed.success(),
        "the first process must die inside step 3"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(crashed.signal(), Some(6), "aborted (SIGABRT): {crashed:?}");
    }
    let after_crash = stored_run(dir.path());
    assert_eq!(after_crash["flowStatus"], "running");
    let steps = after_crash["runningSteps"].as_array().unwrap();
    assert_eq!(steps[0]["stepStatus"], "completed");
    assert_eq!(steps[1]["stepStatus"], "completed");
    assert_eq!(steps[2]["stepStatus"], "inited");

    let resumed = run_child(dir.path(), "resume");
    assert!(
        resumed.success(),
        "the second process completes the flow: {resumed:?}"
    );

    let log = std::fs::read_to_string(dir.path().join("executions.log")).unwrap();
    let executed: Vec<&str> = log.lines().collect();
    assert_eq!(executed, ["1", "2", "3", "3", "4", "5"]);

    let run: wf_engine::WorkflowRuntime = serde_json::from_value(stored_run(dir.path())).unwrap();
    assert_eq!(run.flow_status, FlowStatus::Completed);
    // A crash is a resume, counted apart from failures (it used to count as a retry).
    assert_eq!(run.resume_times, 1, "the run was resumed once");
    assert_eq!(run.retry_times, 0, "and never failed");
    let resumes: Vec<u32> = run.running_steps.iter().map(|s| s.resume_times).collect();
    assert_eq!(resumes, [0, 0, 1, 0, 0], "step 3 shows its resume");
    assert!(run.running_steps.iter().all(|s| s.retry_times == 0));
    assert!(run
        .running_steps
        .iter()
        .all(|s| s.step_status == StepStatus::Completed));
}
