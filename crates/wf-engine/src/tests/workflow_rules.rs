//! [Semantics §8](../../../../docs/SEMANTICS.md#8-the-entry-of-an-unstable-state): the per-resource workflow and its entry.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;

use super::support::{always, flow_yaml, harness, never, once, token, Act, Script, ScriptedStep};
use crate::Resumption;
use crate::{
    Error, Event, FlowStatus, JsonMap, Reconciled, RunOutcome, State, StepStatus, WorkflowConfig,
};

#[tokio::test]
async fn run_of_an_unknown_flow_is_an_error_naming_it() {
    let h = harness().flow("F", &["A"]).build();
    let err = h
        .workflow()
        .await
        .run("Nope", JsonMap::new(), &token())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownFlow { .. }));
    assert_eq!(
        err.to_string(),
        "unknown flow `Nope` for resource type `test`"
    );
}

#[tokio::test]
async fn run_init_context_is_resource_name_and_namespace_plus_params() {
    let a = Script::new([Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut params = JsonMap::new();
    params.insert("insId".into(), json!("ins-1"));
    h.workflow().await.run("F", params, &token()).await.unwrap();
    let init = h.last().await.runtime.init_context;
    assert_eq!(
        serde_json::Value::Object(init),
        json!({"_resourceName": "c1", "_resourceNameSpace": "ns", "insId": "ins-1"})
    );
}

#[tokio::test]
async fn run_last_uncompleted_resumes_the_highest_uncompleted_run() {
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
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!((report.seq, report.flow.as_str()), (2, "G"));
    assert!(
        matches!(report.outcome, RunOutcome::Waiting { .. }),
        "reports whether it waits"
    );
}

#[tokio::test]
async fn retry_interrupted_step_makes_the_run_failed_and_resets_the_failed_steps_retries() {
    let a = Script::new([Act::Done]);
    let b = Script::new([Act::Interrupt("X", "y")]);
    let h = harness()
        .flow("F", &["A", "B"])
        .step("A", &a)
        .step("B", &b)
        .build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    assert!(wf.retry_interrupted_step().await.unwrap());
    let rt = h.last().await.runtime;
    assert_eq!(rt.flow_status, FlowStatus::Failed);
    assert_eq!(
        rt.running_steps[0].step_status,
        StepStatus::Completed,
        "completed steps stay"
    );
    assert_eq!(rt.running_steps[1].retry_times, 0);
    assert_eq!(
        rt.retry_times, 0,
        "weakness 12: the run-level counter is reset too"
    );
}

#[tokio::test]
async fn retry_interrupted_step_with_recover_from_first_step_resets_every_step() {
    let a = Script::new([Act::Done]);
    let b = Script::new([Act::Interrupt("X", "y")]);
    let h = harness()
        .yaml(
            "t/F.yaml",
            "flowName: F\nrecoverFromFirstStep: true\nsteps:\n  - {className: A, stepName: A}\n  - {className: B, stepName: B}\n",
        )
        .step("A", &a)
        .step("B", &b)
        .build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    assert!(wf.retry_interrupted_step().await.unwrap());
    let rt = h.last().await.runtime;
    assert!(rt
        .running_steps
        .iter()
        .all(|s| s.step_status == StepStatus::Prepared && s.retry_times == 0));
}

#[tokio::test]
async fn retry_interrupted_step_without_any_run_is_false_not_a_panic() {
    let h = harness().flow("F", &["A"]).build();
    assert!(!h.workflow().await.retry_interrupted_step().await.unwrap());
}

#[tokio::test]
async fn common_main_enter_returns_when_the_resumed_run_waits() {
    let a = Script::new([Act::Wait]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let mut wf = h.workflow().await;
    wf.run("F", JsonMap::new(), &token()).await.unwrap();
    let out = wf
        .common_main_enter("F", Resumption::AnyFlow, &always(Event::new("F")))
        .await
        .unwrap();
    assert_eq!(
        out,
        Reconciled::Waiting {
            flow: "F".into(),
            step: "A".into(),
            recheck_after: Duration::from_millis(7)
        }
    );
    assert_eq!(h.runtimes().await.len(), 1, "no new run while one waits");
}

#[tokio::test]
async fn common_main_enter_sets_running_when_the_checker_no_longer_fires() {
    let h = harness().flow("F", &["A"]).build();
    let out = h
        .workflow()
        .await
        .common_main_enter("F", Resumption::AnyFlow, &never())
        .await
        .unwrap();
    assert_eq!(out, Reconciled::Settled);
    assert_eq!(h.state(), State::RUNNING);
    assert!(h.runtimes().await.is_empty());
}

#[tokio::test]
async fn common_main_enter_runs_the_flow_with_the_event_params() {
    let a = Script::new([Act::Done]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    let out = h
        .workflow()
        .await
        .common_main_enter(
            "F",
            Resumption::AnyFlow,
            &once(Event::new("F").with_param("modifyClass", true)),
        )
        .await
        .unwrap();
    assert_eq!(out, Reconciled::FlowCompleted { flow: "F".into() });
    assert_eq!(a.contexts()[0]["modifyClass"], json!(true));
}

#[tokio::test]
async fn common_main_enter_honours_a_cancel_made_before_it_runs_even_if_the_step_never_yields() {
    let a = Script::new([Act::Wait]);
    let h = harness().flow("F", &["A"]).step("A", &a).build();
    h.resources
        .update(&super::support::key(), |r| {
            r.annotations.insert("cancelled".into(), "true".into());
        })
        .unwrap();
    let out = h
        .workflow()
        .await
        .common_main_enter("F", Resumption::AnyFlow, &always(Event::new("F")))
        .await
        .unwrap();
    assert!(
        matches!(out, Reconciled::Interrupted { ref reason, .. } if reason == crate::CANCELLED),
        "{out:?}"
    );
}

#[tokio::test]
async fn common_main_enter_watches_is_cancelled_at_the_configured_interval() {
    let a = Script::new([Act::Hang]);
    let config = WorkflowConfig {
        cancel_poll_interval: Duration::from_millis(10),
        ..WorkflowConfig::default()
    };
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .config(config)
        .build();
    let resources = h.resources.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        resources
            .update(&super::support::key(), |r| {
                r.annotations.insert("cancelled".into(), "true".into());
            })
            .unwrap();
    });
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        h.workflow()
            .await
            .common_main_enter("F", Resumption::AnyFlow, &always(Event::new("F"))),
    )
    .await
    .expect("the poll noticed the cancellation")
    .unwrap();
    assert!(
        matches!(out, Reconciled::Interrupted { ref reason, .. } if reason == crate::CANCELLED)
    );
}

/// A step that asks its own manager to drain while it runs (as SIGTERM would).
struct DrainWhileRunning(Arc<OnceLock<crate::WorkflowManager<crate::MemoryResource>>>);

#[async_trait::async_trait]
impl crate::Step for DrainWhileRunning {
    async fn do_step(
        &mut self,
        _: &tokio_util::sync::CancellationToken,
    ) -> Result<crate::StepOutcome, crate::StepError> {
        if let Some(manager) = self.0.get() {
            manager.set_draining(true);
        }
        Ok(crate::StepOutcome::Done)
    }
}

#[tokio::test]
async fn draining_lets_the_running_step_finish_then_parks_the_run_without_a_retry() {
    let cell = Arc::new(OnceLock::new());
    let (a, c) = (Script::new([Act::Done]), Script::new([Act::Done]));
    let (sa, sc, sb) = (a.clone(), c.clone(), cell.clone());
    let mementos = crate::InMemoryMementoStore::new();
    let manager = crate::WorkflowManager::builder("test")
        .loader(crate::StaticLoader::new().with("test/F.yaml", flow_yaml("F", &["A", "B", "C"])))
        .memento_store(mementos.clone())
        .step("A", move || ScriptedStep(sa.clone()))
        .step("B", move || DrainWhileRunning(sb.clone()))
        .step("C", move || ScriptedStep(sc.clone()))
        .build()
        .unwrap();
    assert!(cell.set(manager.clone()).is_ok());
    let resource = crate::MemoryResourceStore::new().insert(
        super::support::key(),
        crate::ResourceRecord {
            state: State::CREATING,
            ..crate::ResourceRecord::default()
        },
    );
    let mut wf = manager.resource_workflow(&resource).await.unwrap();
    let report = wf.run("F", JsonMap::new(), &token()).await.unwrap();
    // B finished and was saved; the run parked before C, to be looked at again after the
    // usual wait interval.
    assert_eq!(
        report.outcome,
        RunOutcome::Waiting {
            step: "C".into(),
            recheck_after: WorkflowConfig::default().wait_interval
        }
    );
    assert!(manager.is_draining());
    let parked = wf.runtimes().unwrap().pop().unwrap().runtime;
    assert_eq!(parked.flow_status, FlowStatus::Waiting);
    let statuses: Vec<_> = parked.running_steps.iter().map(|s| s.step_status).collect();
    assert_eq!(
        statuses[..2],
        [StepStatus::Completed, StepStatus::Completed]
    );
    assert_ne!(statuses[2], StepStatus::Completed);
    assert_eq!(c.runs(), 0);
    // While draining, a resumed run parks again before doing anything.
    let again = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert!(matches!(again.outcome, RunOutcome::Waiting { .. }));
    assert_eq!(c.runs(), 0);

    // The next process (or this one, once leader again) resumes at C; no retry counted.
    manager.set_draining(false);
    let mut wf = manager.resource_workflow(&resource).await.unwrap();
    let done = wf
        .run_last_uncompleted("F", Resumption::AnyFlow, &token())
        .await
        .unwrap()
        .resumed
        .unwrap();
    assert_eq!(done.outcome, RunOutcome::Completed);
    assert_eq!((a.runs(), c.runs()), (1, 1));
    let run = wf.runtimes().unwrap().pop().unwrap().runtime;
    assert_eq!(run.retry_times, 0);
    assert!(run.running_steps.iter().all(|s| s.retry_times == 0));
}
