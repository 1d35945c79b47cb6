//! Stored runs from two writers decode and resume to completion: one written by this
//! version of the engine, one in the original operator's format (times as
//! `2021-07-21 08:32:47.492`, no zone; `null` maps; zero and empty times for "not set").
//! Each fixture is an uncompleted `CreateCluster` run whose step `PrepareStorage` failed.

use std::sync::{Arc, Mutex};

use wf_engine::memento::{MementoStorage, MementoWrite};
use wf_engine::{
    async_trait, CancellationToken, FlowStatus, InMemoryMementoStore, JsonMap, MemoryResourceStore,
    ResourceKey, ResourceRecord, RunOutcome, State, StaticLoader, Step, StepContext, StepError,
    StepOutcome, StepStatus, WorkflowManager, WorkflowRuntime,
};

const CURRENT: &str = include_str!("fixtures/memento_current_failed_run.json");
const ORIGINAL: &str = include_str!("fixtures/memento_original_failed_run.json");
const KEY: &str = "1-CreateCluster";

const FLOW: &str = "\
flowName: CreateCluster
recoverFromFirstStep: false
steps:
  - {className: t.InitMeta, stepName: InitMeta}
  - {className: t.PrepareStorage, stepName: PrepareStorage}
  - {className: t.UpdateRunningStatus, stepName: UpdateRunningStatus}
";

/// Records which step ran and what context it saw.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, JsonMap)>>>);

struct Recorded {
    name: &'static str,
    log: Log,
    seen: JsonMap,
}

#[async_trait]
impl Step for Recorded {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.seen = ctx.values().clone();
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        let mut log = self.log.0.lock().expect("log");
        log.push((self.name.to_owned(), std::mem::take(&mut self.seen)));
        Ok(StepOutcome::Done)
    }
}

/// Stores `memento` as run 1 of resource `default/c1`, resumes it, and returns the log of
/// executed steps and the stored run afterwards.
async fn resume(memento: &str) -> (RunOutcome, Vec<(String, JsonMap)>, WorkflowRuntime) {
    let store = InMemoryMementoStore::new();
    store
        .storage("default", "c1-workflow")
        .write(&MementoWrite {
            key: KEY.into(),
            value: memento.into(),
            remove: vec![],
        })
        .await
        .expect("store the fixture");
    let log = Log::default();
    let mut builder = WorkflowManager::builder("t")
        .loader(StaticLoader::new().with("t/CreateCluster.yaml", FLOW))
        .memento_store(store.clone());
    for name in ["InitMeta", "PrepareStorage", "UpdateRunningStatus"] {
        let log = log.clone();
        builder = builder.step(format!("t.{name}"), move || Recorded {
            name,
            log: log.clone(),
            seen: JsonMap::new(),
        });
    }
    let manager = builder.build().expect("manager");
    let resource = MemoryResourceStore::new().insert(
        ResourceKey::new("default", "c1"),
        ResourceRecord {
            state: State::CREATING,
            ..ResourceRecord::default()
        },
    );
    let mut workflow = manager.resource_workflow(&resource).await.expect("load");
    let report = workflow
        .run_last_uncompleted(
            "CreateCluster",
            wf_engine::Resumption::ThisFlow,
            &CancellationToken::new(),
        )
        .await
        .expect("resume")
        .resumed
        .expect("the fixture is an uncompleted run");
    assert_eq!(report.seq, 1);
    let stored = store.snapshot("default", "c1-workflow");
    let run = serde_json::from_str(&stored[KEY]).expect("the resumed run decodes");
    let executed = log.0.lock().expect("log").clone();
    (report.outcome, executed, run)
}

fn check_decoded(run: &WorkflowRuntime) {
    assert_eq!(run.flow_status, FlowStatus::Failed);
    assert_eq!(run.flow_name, "CreateCluster");
    assert_eq!(run.complete_time, None);
    assert_eq!(run.error_message, "storage service answered 503");
    assert_eq!(run.init_context["_resourceName"], "c1");
    let statuses: Vec<StepStatus> = run.running_steps.iter().map(|s| s.step_status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Completed,
            StepStatus::Failed,
            StepStatus::Prepared
        ]
    );
    assert_eq!(run.running_steps[0].context_output["metaReady"], true);
    assert!(run.running_steps[1].context_output.is_empty());
    assert_eq!(run.running_steps[2].step_start_time, None);
}

fn check_resumed(outcome: RunOutcome, executed: &[(String, JsonMap)], run: &WorkflowRuntime) {
    assert_eq!(outcome, RunOutcome::Completed);
    let names: Vec<&str> = executed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["PrepareStorage", "UpdateRunningStatus"],
        "the completed step is not run again; the failed one is"
    );
    assert_eq!(
        executed[1].1["metaReady"], true,
        "the stored output of the completed step reaches later steps"
    );
    assert_eq!(executed[0].1["classCode"], "polar.o.x4.medium");
    assert_eq!(run.flow_status, FlowStatus::Completed);
    assert_eq!(run.retry_times, 1, "the run was resumed once");
    assert!(run
        .running_steps
        .iter()
        .all(|s| s.step_status == StepStatus::Completed));
    assert_eq!(
        run.running_steps[1].retry_times, 1,
        "the failed step shows its retry"
    );
    assert!(run.complete_time.is_some());
}

#[tokio::test]
async fn a_memento_written_by_this_version_decodes_and_resumes_to_completion() {
    let decoded: WorkflowRuntime = serde_json::from_str(CURRENT).expect("decode");
    check_decoded(&decoded);
    let (outcome, executed, run) = resume(CURRENT).await;
    check_resumed(outcome, &executed, &run);
    assert_eq!(
        run.start_time, decoded.start_time,
        "the run keeps its start time"
    );
}

#[tokio::test]
async fn a_memento_in_the_originals_format_decodes_and_resumes_to_completion() {
    let decoded: WorkflowRuntime = serde_json::from_str(ORIGINAL).expect("decode");
    check_decoded(&decoded);
    assert_eq!(
        decoded.workflow_id(),
        1_626_856_367_492,
        "`2021-07-21 08:32:47.492` reads as UTC"
    );
    assert_eq!(
        decoded.running_steps[1]
            .last_step_complete_time
            .map(|t| t.timestamp_millis()),
        Some(1_626_856_368_015)
    );
    let (outcome, executed, run) = resume(ORIGINAL).await;
    check_resumed(outcome, &executed, &run);
    assert_eq!(
        run.workflow_id(),
        1_626_856_367_492,
        "the run keeps its start time"
    );
}

#[tokio::test]
async fn a_run_written_now_reads_back_in_the_shape_the_previous_version_reads() {
    // The previous version required `flowStatus`, `flowName`, `StepName` and `stepStatus`
    // and defaulted every other field; times were RFC 3339.
    let (_, _, run) = resume(ORIGINAL).await;
    let json = serde_json::to_value(&run).expect("encode");
    assert!(json["flowStatus"].is_string() && json["flowName"].is_string());
    for step in json["runningSteps"].as_array().expect("steps") {
        assert!(step["StepName"].is_string() && step["stepStatus"].is_string());
        let started = step["stepStartTime"]
            .as_str()
            .expect("a completed step has times");
        assert!(
            chrono::DateTime::parse_from_rfc3339(started).is_ok(),
            "{started}"
        );
    }
    assert!(json.get("completeTime").and_then(|t| t.as_str()).is_some());
}
