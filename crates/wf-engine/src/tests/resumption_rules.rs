//! [Semantics §7](../../../../docs/SEMANTICS.md#7-resumption-which-run-an-entry-finishes): which uncompleted run an entry finishes, under each resumption policy.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::{harness, key, once, token, Act, Script, ScriptedStep};
use crate::memento::{caretaker_name, MementoStorage, MementoWrite};
use crate::{
    BoxError, Event, FlowStatus, InMemoryMementoStore, JsonMap, MemoryResource,
    MemoryResourceStore, Reconciled, ResourceRecord, Resumption, RunRef, State, StateMachine,
    StateResource, StaticLoader, Step, StepContext, StepError, StepOutcome, WorkflowManager,
    ABANDONED, SUPERSEDED,
};

fn run_ref(seq: u64, flow: &str) -> RunRef {
    RunRef {
        seq,
        flow: flow.into(),
    }
}

#[tokio::test]
async fn any_flow_resumption_finishes_the_newest_uncompleted_run_of_any_flow() {
    let a = Script::new([Act::Wait]);
    let h = harness()
        .flow("F", &["A"])
        .flow("G", &["A"])
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    wf.run("G", JsonMap::new(), &token()).await.unwrap();
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    let resumed = report.resumed.unwrap();
    assert_eq!((resumed.seq, resumed.flow.as_str()), (2, "G"));
    assert!(report.left_alone.is_empty());
}

#[tokio::test]
async fn this_flow_resumption_leaves_another_flows_run_alone_and_names_it() {
    let a = Script::new([Act::Wait]);
    let h = harness()
        .flow("F", &["A"])
        .flow("G", &["A"])
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    wf.run("G", JsonMap::new(), &token()).await.unwrap();
    let runs_before = a.runs();
    let report = wf
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap();
    assert_eq!(report.resumed, None);
    assert_eq!(report.left_alone, [run_ref(1, "G")]);
    assert!(report.abandoned.is_empty());
    assert_eq!(a.runs(), runs_before, "the other flow's run did not run");
    assert_eq!(
        h.last().await.runtime.flow_status,
        FlowStatus::Waiting,
        "and was not closed"
    );
    let own = wf
        .run_last_uncompleted("G", Resumption::ThisFlow, &token())
        .await
        .unwrap();
    assert_eq!(own.resumed.map(|r| r.seq), Some(1));
    assert!(own.left_alone.is_empty());
}

#[tokio::test]
async fn this_flow_resumption_finishes_its_own_run_under_a_newer_run_of_another_flow() {
    let a = Script::new([Act::Wait, Act::Wait, Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .flow("G", &["A"])
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    wf.run("G", JsonMap::new(), &token()).await.unwrap();
    let report = wf
        .run_last_uncompleted("F", Resumption::ThisFlow, &token())
        .await
        .unwrap();
    assert_eq!(
        report.resumed.map(|r| (r.seq, r.flow)),
        Some((1, "F".into()))
    );
    assert_eq!(report.left_alone, [run_ref(2, "G")]);
}

#[tokio::test]
async fn abandon_others_closes_uncompleted_runs_of_other_flows_with_a_recorded_reason() {
    let w = Script::new([Act::Wait]);
    let a = Script::new([Act::Done]);
    let h = harness()
        .flow("Other", &["W"])
        .flow("Rebuild", &["A"])
        .step("W", &w)
        .step("A", &a)
        .build();
    let mut wf = h.workflow().await;
    wf.run("Other", JsonMap::new(), &token()).await.unwrap();
    let report = wf
        .run_last_uncompleted("Rebuild", Resumption::AbandonOthers, &token())
        .await
        .unwrap();
    assert_eq!(report.resumed, None);
    assert_eq!(report.abandoned, [run_ref(1, "Other")]);
    assert!(report.left_alone.is_empty());
    let other = h.runtimes().await.remove(0).runtime;
    assert_eq!(other.flow_status, FlowStatus::FailedAndCompleted);
    assert_eq!(
        other.error_message,
        format!(
            "{ABANDONED}: the entry of flow `Rebuild` abandons uncompleted runs of other flows"
        )
    );

    // Through the entry: the new run starts and completes; the closed run never runs again.
    let out = wf
        .common_main_enter(
            "Rebuild",
            Resumption::AbandonOthers,
            &once(Event::new("Rebuild")),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        Reconciled::FlowCompleted {
            flow: "Rebuild".into()
        }
    );
    let out = wf
        .common_main_enter("Other", Resumption::AnyFlow, &super::support::never())
        .await
        .unwrap();
    assert_eq!(out, Reconciled::Settled);
    assert_eq!(w.runs(), 1, "the abandoned run was never resumed");
}

#[tokio::test]
async fn a_new_run_of_a_flow_closes_its_older_uncompleted_run_as_superseded() {
    let a = Script::new([Act::Wait]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    let runs = h.runtimes().await;
    assert_eq!(runs[0].runtime.flow_status, FlowStatus::FailedAndCompleted);
    assert_eq!(
        runs[0].runtime.error_message,
        format!("{SUPERSEDED}: run 2 of the same flow started after it")
    );
    let report = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    assert_eq!(report.resumed.map(|r| r.seq), Some(2));
}

#[tokio::test]
async fn an_older_uncompleted_run_is_never_resumed_after_a_newer_run_of_its_flow_ran() {
    // Stored by an engine that did not close it: run 1 of F uncompleted (`running`, its
    // step started), run 2 of F completed after it.
    let mementos = InMemoryMementoStore::new();
    let storage = mementos.storage(
        super::support::KEY_NS,
        &caretaker_name(super::support::KEY_NAME),
    );
    let step = |status: &str| json!([{"StepName": "A", "stepStatus": status, "retryTimes": 0}]);
    for (key, status, steps) in [
        ("1-F", "running", step("inited")),
        ("2-F", "completed", step("completed")),
    ] {
        let value = json!({"flowStatus": status, "flowName": "F", "runningSteps": steps});
        storage
            .write(&MementoWrite {
                key: key.into(),
                value: value.to_string(),
                remove: vec![],
            })
            .await
            .unwrap();
    }
    let a = Script::new([Act::Done]);
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .mementos(&mementos)
        .build();
    let report = h
        .workflow()
        .await
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap();
    assert_eq!(report.resumed, None);
    assert_eq!(report.superseded, [run_ref(1, "F")]);
    assert_eq!(a.runs(), 0, "no step of the old run ran again");
    let old = h.runtimes().await.remove(0).runtime;
    assert_eq!(old.flow_status, FlowStatus::FailedAndCompleted);
    assert!(
        old.error_message.starts_with(SUPERSEDED),
        "{}",
        old.error_message
    );
}

// The crash-in-Resize scenario ------------------------------------------------------------

/// Sets the resource's state and removes an annotation: the last step of a bucket flow.
struct Finish {
    resources: MemoryResourceStore,
    clear: Option<&'static str>,
    resource: Option<MemoryResource>,
}

#[async_trait]
impl Step for Finish {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.resource = Some(self.resources.fetch(&ctx.resource_key()?)?);
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        let resource = self
            .resource
            .take()
            .ok_or_else(|| StepError::failed("no init"))?;
        let resource = match self.clear {
            Some(annotation) => {
                resource
                    .patch_annotations(&[(annotation.to_string(), None)].into())
                    .await?
            }
            None => resource,
        };
        resource.update_state(State::RUNNING).await?;
        Ok(StepOutcome::Done)
    }
}

const CREATE: &str = "flowName: CreateBucket\nsteps:\n  - {className: Allocate, stepName: Allocate}\n  - {className: MarkCreated, stepName: MarkCreated}\n";
const RESIZE: &str = "flowName: ResizeBucket\nsteps:\n  - {className: StartResize, stepName: StartResize}\n  - {className: FinishResize, stepName: FinishResize}\n  - {className: MarkResized, stepName: MarkResized}\n";

/// One life of the Bucket operator: its resources, its steps' scripts, its machine.
struct Bucket {
    resources: MemoryResourceStore,
    allocate: Script,
    start_resize: Script,
    finish_resize: Script,
    machine: StateMachine<MemoryResource>,
    manager: WorkflowManager<MemoryResource>,
    bucket: MemoryResource,
}

fn installing(r: &MemoryResource) -> Result<Option<Event>, BoxError> {
    let state = r.state().effective();
    Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
}

fn resizing(r: &MemoryResource) -> Result<Option<Event>, BoxError> {
    match r.annotation("resizeTo") {
        None => Ok(None),
        Some(size) => Ok(Some(
            Event::new("Resize").with_param("sizeGib", size.parse::<u64>()?),
        )),
    }
}

impl Bucket {
    /// A process whose resource store starts with the bucket in `Init`, over `mementos`;
    /// the Create entry uses `create_policy`.
    fn start(mementos: &InMemoryMementoStore, finish: Act, create_policy: Resumption) -> Bucket {
        let resources = MemoryResourceStore::new();
        let bucket = resources.insert(
            key(),
            ResourceRecord {
                state: State::INIT,
                ..ResourceRecord::default()
            },
        );
        let (allocate, start_resize) = (Script::new([Act::Done]), Script::new([Act::Done]));
        let finish_resize = Script::new([finish]);
        let scripted = |script: &Script| {
            let script = script.clone();
            move || ScriptedStep(script.clone())
        };
        let manager = WorkflowManager::builder("bucket")
            .loader(
                StaticLoader::new()
                    .with("bucket/CreateBucket.yaml", CREATE)
                    .with("bucket/ResizeBucket.yaml", RESIZE),
            )
            .memento_store(mementos.clone())
            .step("Allocate", scripted(&allocate))
            .step("StartResize", scripted(&start_resize))
            .step("FinishResize", scripted(&finish_resize))
            .step_with("MarkCreated", &resources, |resources| Finish {
                resources,
                clear: None,
                resource: None,
            })
            .step_with("MarkResized", &resources, |resources| Finish {
                resources,
                clear: Some("resizeTo"),
                resource: None,
            })
            .build()
            .unwrap();
        let mut machine = StateMachine::new("bucket");
        machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
        machine.register_translate_main_enter(
            State::INIT,
            installing,
            State::CREATING,
            manager.flow_entry("CreateBucket").resumption(create_policy),
        );
        machine.register_translate_main_enter(
            State::RUNNING,
            resizing,
            State::new("Resizing"),
            manager.flow_entry("ResizeBucket"),
        );
        machine.validate_flows(&manager).unwrap();
        Bucket {
            resources,
            allocate,
            start_resize,
            finish_resize,
            machine,
            manager,
            bucket,
        }
    }

    async fn reconcile(&self) -> Reconciled {
        self.machine
            .reconcile(&self.bucket, &self.manager)
            .await
            .unwrap()
    }

    fn ask_resize(&self) {
        self.resources
            .update(&key(), |r| {
                r.annotations.insert("resizeTo".into(), "20".into());
            })
            .unwrap();
    }

    fn state(&self) -> State {
        self.resources.get(&key()).unwrap().state()
    }
}

/// Creates the bucket, asks for a resize and crashes inside `FinishResize`.
async fn crash_in_resize(mementos: &InMemoryMementoStore) {
    let first = Bucket::start(mementos, Act::Hang, Resumption::default());
    assert!(matches!(
        first.reconcile().await,
        Reconciled::Transitioned { .. }
    ));
    assert_eq!(
        first.reconcile().await,
        Reconciled::FlowCompleted {
            flow: "CreateBucket".into()
        }
    );
    first.ask_resize();
    assert!(matches!(
        first.reconcile().await,
        Reconciled::Transitioned { .. }
    ));
    let crashed = tokio::time::timeout(Duration::from_millis(50), first.reconcile()).await;
    assert!(crashed.is_err(), "the process dies inside FinishResize");
    assert_eq!(first.start_resize.runs(), 1);
    assert_eq!(first.finish_resize.runs(), 1);
}

#[tokio::test]
async fn under_the_default_the_create_entry_does_not_finish_a_crashed_resize_run() {
    let mementos = InMemoryMementoStore::new();
    crash_in_resize(&mementos).await;

    // Restarted with the resource record lost: the bucket is back in `Init`.
    let second = Bucket::start(&mementos, Act::Done, Resumption::default());
    assert!(matches!(
        second.reconcile().await,
        Reconciled::Transitioned { .. }
    ));
    assert_eq!(
        second.reconcile().await,
        Reconciled::FlowCompleted {
            flow: "CreateBucket".into()
        },
        "CreateBucket ran; the Resize run was left alone"
    );
    assert_eq!(second.allocate.runs(), 1);
    assert_eq!(second.finish_resize.runs(), 0);
    assert_eq!(second.state(), State::RUNNING);
    let wf = second
        .manager
        .resource_workflow(&second.bucket)
        .await
        .unwrap();
    let runs: Vec<_> = wf
        .runtimes()
        .unwrap()
        .into_iter()
        .map(|r| (r.seq, r.runtime.flow_name, r.runtime.flow_status))
        .collect();
    assert_eq!(
        runs,
        [
            (1, "CreateBucket".into(), FlowStatus::Completed),
            (2, "ResizeBucket".into(), FlowStatus::Running),
            (3, "CreateBucket".into(), FlowStatus::Completed),
        ]
    );

    // The next resize request is served by the Resize entry, which finishes that run at
    // FinishResize (StartResize is not run again).
    second.ask_resize();
    assert!(matches!(
        second.reconcile().await,
        Reconciled::Transitioned { .. }
    ));
    assert_eq!(
        second.reconcile().await,
        Reconciled::FlowCompleted {
            flow: "ResizeBucket".into()
        }
    );
    assert_eq!(
        (second.start_resize.runs(), second.finish_resize.runs()),
        (0, 1)
    );
    assert_eq!(second.state(), State::RUNNING);
}

#[tokio::test]
async fn under_any_flow_the_create_entry_finishes_a_crashed_resize_run_as_the_original_did() {
    let mementos = InMemoryMementoStore::new();
    crash_in_resize(&mementos).await;

    let second = Bucket::start(&mementos, Act::Done, Resumption::AnyFlow);
    assert!(matches!(
        second.reconcile().await,
        Reconciled::Transitioned { .. }
    ));
    assert_eq!(
        second.reconcile().await,
        Reconciled::FlowCompleted {
            flow: "ResizeBucket".into()
        }
    );
    // The bucket says Running, yet CreateBucket never ran in this life: the trap the
    // default avoids.
    assert_eq!(second.state(), State::RUNNING);
    assert_eq!(second.allocate.runs(), 0);
    assert_eq!(second.finish_resize.runs(), 1);
}

#[tokio::test]
async fn an_entry_names_the_policy_it_was_given_and_defaults_to_this_flow() {
    let h = harness().flow("F", &["A"]).build();
    assert_eq!(h.manager.flow_entry("F").policy(), Resumption::ThisFlow);
    assert_eq!(
        h.manager
            .flow_entry("F")
            .resumption(Resumption::AbandonOthers)
            .policy(),
        Resumption::AbandonOthers
    );
}
