//! wf-kube against `kube-fake-client`: an in-memory API server with real resourceVersion
//! conflicts and status subresources. API calls are counted by interceptors that return
//! `Ok(None)` (let the request through) after bumping a counter.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{cluster, db, resource, Db, Noop, NS};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource};
use wf_engine::memento::{MementoCaretaker, MementoStorage, MementoStorageFactory, MementoWrite};
use wf_engine::{AnnotationPatch, FlowStatus, JsonMap, State, StateResource, WorkflowRuntime};
use wf_kube::{ConfigMapMementoFactory, ConfigMapMementoStorage};

fn runtime(flow: &str, status: FlowStatus, padding: usize) -> WorkflowRuntime {
    WorkflowRuntime {
        flow_status: status,
        retry_times: 0,
        resume_times: 0,
        flow_name: flow.into(),
        start_time: None,
        complete_time: None,
        error_message: "x".repeat(padding),
        init_context: JsonMap::new(),
        running_steps: vec![],
    }
}

fn put(key: &str, value: &str) -> MementoWrite {
    MementoWrite {
        key: key.into(),
        value: value.into(),
        remove: vec![],
    }
}

async fn config_map(client: &kube::Client, name: &str) -> ConfigMap {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get(&format!("{name}-workflow"))
        .await
        .expect("configmap")
}

#[tokio::test]
async fn state_is_read_from_status_and_written_through_the_status_subresource() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    assert_eq!(r.state(), State::CREATING);
    calls.reset();
    let fresh = r.update_state(State::RUNNING).await.expect("update");
    assert_eq!(fresh.state(), State::RUNNING);
    assert_eq!(calls.patch_status.load(Ordering::SeqCst), 1);
    assert_eq!(calls.writes(), 1);
    let again = r.fetch().await.expect("fetch");
    assert_eq!(again.state(), State::RUNNING);
    // The rest of the status and the spec are untouched.
    assert!(again.object().status.as_ref().is_some_and(|s| s.ready));
    assert_eq!(again.object().spec.replicas, 1);
}

#[tokio::test]
async fn update_state_of_a_deleted_resource_is_not_found_never_a_silent_success() {
    let (client, _) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    Api::<Db>::namespaced(client.clone(), NS)
        .delete("c1", &DeleteParams::default())
        .await
        .expect("delete");
    let err = r.update_state(State::RUNNING).await.expect_err("gone");
    assert!(err.is_not_found(), "{err}");
    assert!(r.fetch().await.expect_err("gone").is_not_found());
}

#[tokio::test]
async fn is_cancelled_when_not_found_being_deleted_or_annotated_cancelled() {
    let mut finalized = db("deleting");
    finalized.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    // The fake server deletes at once (it ignores finalizers), so the object being deleted
    // is seeded with its deletionTimestamp (allowed because it has a finalizer).
    finalized.metadata.deletion_timestamp =
        Some(serde_json::from_value(serde_json::json!("2026-01-01T00:00:00Z")).expect("time"));
    let (client, _) = cluster(vec![db("c1"), db("gone"), db("flagged"), finalized]).await;
    let api = Api::<Db>::namespaced(client.clone(), NS);

    let live = resource(&client, "c1").await;
    assert!(!live.is_cancelled().await);

    let gone = resource(&client, "gone").await;
    api.delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(gone.is_cancelled().await, "not found");

    let deleting = resource(&client, "deleting").await;
    assert!(deleting.object().meta().deletion_timestamp.is_some());
    assert!(deleting.is_cancelled().await, "deletionTimestamp");

    let flagged = resource(&client, "flagged").await;
    let patch = AnnotationPatch::from([("cancelled".to_string(), Some("true".to_string()))]);
    flagged.patch_annotations(&patch).await.expect("patch");
    assert!(flagged.is_cancelled().await, "annotation");
}

#[tokio::test]
async fn annotation_patch_keeps_other_annotations_and_removes_nulls() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let set = AnnotationPatch::from([
        ("interrupt.reason".to_string(), Some("BOOM".to_string())),
        ("interrupt.recover".to_string(), Some("F".to_string())),
    ]);
    let r = r.patch_annotations(&set).await.expect("set");
    // A concurrent writer adds an annotation; the stale snapshot must not clobber it.
    Api::<Db>::namespaced(client.clone(), NS)
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"other": "x"}}})),
        )
        .await
        .expect("other writer");
    calls.reset();
    let remove = AnnotationPatch::from([
        ("interrupt.reason".to_string(), None),
        ("interrupt.recover".to_string(), Some("T".to_string())),
    ]);
    let fresh = r.patch_annotations(&remove).await.expect("remove");
    assert_eq!(calls.patch.load(Ordering::SeqCst), 1);
    assert_eq!(calls.reads(), 0);
    assert_eq!(fresh.annotation("interrupt.reason"), None);
    assert_eq!(fresh.annotation("interrupt.recover").as_deref(), Some("T"));
    assert_eq!(fresh.annotation("keep").as_deref(), Some("me"));
    assert_eq!(fresh.annotation("other").as_deref(), Some("x"));
}

#[tokio::test]
async fn configmap_is_created_on_first_write_with_label_and_controller_owner_reference() {
    let (client, _) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let factory = ConfigMapMementoFactory::new(client.clone());
    let storage = factory.storage_for(&r).expect("storage");
    assert!(storage.load_all().await.expect("load").is_empty());
    storage.write(&put("1-Create", "{}")).await.expect("write");

    let cm = config_map(&client, "c1").await;
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("flowJobsDomain").map(String::as_str), Some("c1"));
    let owners = cm.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    let owner = &owners[0];
    assert_eq!(owner.api_version, "example.com/v1");
    assert_eq!(owner.kind, "Db");
    assert_eq!(owner.name, "c1");
    assert_eq!(Some(&owner.uid), r.object().metadata.uid.as_ref());
    assert!(!owner.uid.is_empty());
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("1-Create")
            .map(String::as_str),
        Some("{}")
    );
}

#[tokio::test]
async fn update_keeps_other_keys_and_applies_removals() {
    let (client, _) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let storage = ConfigMapMementoFactory::new(client.clone())
        .storage_for(&r)
        .expect("storage");
    storage.load_all().await.expect("load");
    for key in ["1-A", "2-B", "3-C"] {
        storage.write(&put(key, key)).await.expect("write");
    }
    storage
        .write(&MementoWrite {
            key: "2-B".into(),
            value: "updated".into(),
            remove: vec!["1-A".into()],
        })
        .await
        .expect("write");
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    assert_eq!(
        data,
        BTreeMap::from([
            ("2-B".to_string(), "updated".to_string()),
            ("3-C".to_string(), "3-C".to_string()),
        ])
    );
}

#[tokio::test]
async fn factory_hands_out_the_same_cached_storage_per_resource() {
    let (client, _) = cluster(vec![db("c1"), db("c2")]).await;
    let factory = ConfigMapMementoFactory::new(client.clone());
    let c1 = resource(&client, "c1").await;
    let a = factory.storage_for_object(c1.object()).expect("a");
    let b = factory
        .storage_for_object(resource(&client, "c1").await.object())
        .expect("b");
    let c = factory
        .storage_for_object(resource(&client, "c2").await.object())
        .expect("c");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
}

#[tokio::test]
async fn injected_conflict_is_retried_and_only_this_change_is_reapplied() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let storage = ConfigMapMementoFactory::new(client.clone())
        .storage_for(&r)
        .expect("storage");
    storage.load_all().await.expect("load");
    storage.write(&put("1-A", "a")).await.expect("first");
    calls.inject_conflicts.store(2, Ordering::SeqCst);
    calls.reset();
    storage.write(&put("2-B", "b")).await.expect("retried");
    // Two 409s: each followed by one re-read, then the successful PUT.
    assert_eq!(calls.replace.load(Ordering::SeqCst), 3);
    assert_eq!(calls.reads(), 2);
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    assert_eq!(data.len(), 2);
}

#[tokio::test]
async fn persistent_conflict_gives_up_after_bounded_attempts_with_conflict_error() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let storage = ConfigMapMementoStorage::for_object(client.clone(), r.object())
        .expect("storage")
        .with_max_attempts(3);
    storage.write(&put("1-A", "a")).await.expect("create");
    calls.inject_conflicts.store(100, Ordering::SeqCst);
    calls.reset();
    let err = storage.write(&put("2-B", "b")).await.expect_err("conflict");
    assert!(
        matches!(
            err,
            wf_engine::memento::MementoError::Conflict { attempts: 3, .. }
        ),
        "{err}"
    );
    assert_eq!(calls.replace.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn concurrent_writers_of_one_configmap_never_lose_each_others_keys() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    // Two independent stores (e.g. two operator replicas) of the same resource.
    let a = ConfigMapMementoStorage::for_object(client.clone(), r.object()).expect("a");
    let b = ConfigMapMementoStorage::for_object(client.clone(), r.object()).expect("b");
    a.write(&put("1-A", "a1")).await.expect("create");
    assert_eq!(b.load_all().await.expect("b load").len(), 1);
    a.load_all().await.expect("a load");
    for i in 0..5 {
        // Each write is made from a copy the other writer has just made stale: a real 409.
        a.write(&put(&format!("a-{i}"), "a"))
            .await
            .expect("a write");
        calls.reset();
        b.write(&put(&format!("b-{i}"), "b"))
            .await
            .expect("b write");
        assert_eq!(calls.replace.load(Ordering::SeqCst), 2, "409 then success");
        assert_eq!(calls.reads(), 1, "one re-read after the conflict");
    }
    // Both writers also write at the same time.
    let (wa, wb) = (put("x-A", "a"), put("x-B", "b"));
    let (ra, rb) = tokio::join!(a.write(&wa), b.write(&wb));
    ra.expect("a");
    rb.expect("b");
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    for i in 0..5 {
        assert!(data.contains_key(&format!("a-{i}")), "a-{i} lost: {data:?}");
        assert!(data.contains_key(&format!("b-{i}")), "b-{i} lost: {data:?}");
    }
    assert!(data.contains_key("1-A") && data.contains_key("x-A") && data.contains_key("x-B"));
    assert_eq!(data.len(), 13);
}

#[tokio::test]
async fn steady_state_write_is_one_put_and_no_get_after_the_first_load() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let factory = ConfigMapMementoFactory::new(client.clone());
    let storage = factory.storage_for(&r).expect("storage");
    calls.reset();
    storage.load_all().await.expect("load");
    assert_eq!(calls.reads(), 1);
    storage.write(&put("1-A", "a")).await.expect("create");
    assert_eq!(calls.create.load(Ordering::SeqCst), 1);
    for i in 0..20 {
        calls.reset();
        storage
            .write(&put("1-A", &format!("step {i}")))
            .await
            .expect("write");
        assert_eq!(calls.writes(), 1, "one PUT per write");
        assert_eq!(calls.replace.load(Ordering::SeqCst), 1);
        assert_eq!(calls.reads(), 0, "no GET per write");
    }
    // A later reconcile gets the same cached store: loading costs no read either.
    calls.reset();
    let again = factory.storage_for(&r).expect("storage");
    assert_eq!(again.load_all().await.expect("load").len(), 1);
    assert_eq!(calls.reads(), 0);
}

#[tokio::test]
async fn caretaker_retention_and_byte_budget_hold_on_the_configmap_over_1000_runs() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let factory = ConfigMapMementoFactory::new(client.clone());
    let storage = factory.storage_for(&r).expect("storage");
    let budget = 900 * 1024;
    let mut caretaker = MementoCaretaker::load("c1-workflow", storage, 10, budget)
        .await
        .expect("load");
    calls.reset();
    for seq in 1..=1000u64 {
        // About 2 KiB per run: 2 MiB in total without retention.
        caretaker
            .save(seq, &runtime("Flow", FlowStatus::Running, 2048))
            .await
            .expect("running");
        caretaker
            .save(seq, &runtime("Flow", FlowStatus::Completed, 2048))
            .await
            .expect("completed");
    }
    assert_eq!(calls.reads(), 0, "no GET in the steady state");
    assert_eq!(calls.writes(), 2000, "one write per save");
    let cm = config_map(&client, "c1").await;
    let data = cm.data.unwrap_or_default();
    let bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(bytes < budget, "{bytes} bytes");
    // Not only at the end: no write of the 2,000 ever sent a ConfigMap over the budget.
    let max = calls.max_config_map_bytes.load(Ordering::SeqCst);
    assert!(max > 10 * 2048, "the writes were seen ({max} bytes)");
    assert!(max < budget, "a write of {max} bytes");
    assert!(data.len() <= 10, "{} keys", data.len());
    assert!(data.contains_key("1000-Flow"));

    // A run that cannot fit is refused with a clear error and nothing is written.
    let before = calls.writes();
    let err = caretaker
        .save(1001, &runtime("Huge", FlowStatus::Running, budget))
        .await
        .expect_err("over budget");
    assert!(matches!(
        err,
        wf_engine::memento::MementoError::BudgetExceeded { .. }
    ));
    assert_eq!(calls.writes(), before);
}

const THREE_STEPS: &str = "\
flowName: Three
recoverFromFirstStep: false
steps:
  - {className: test.Noop, stepName: S1}
  - {className: test.Noop, stepName: S2}
  - {className: test.Noop, stepName: S3}
";

#[tokio::test]
async fn workflow_manager_on_the_fake_cluster_costs_at_most_two_writes_and_no_read_per_step() {
    let dir = common::flow_dir(&[("three.yaml", THREE_STEPS)]);
    let (client, calls) = cluster(vec![db("c1")]).await;
    let manager = wf_engine::WorkflowManager::<common::DbResource>::builder("db")
        .flow_dir(dir.path())
        .step("test.Noop", || Noop)
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager");
    let r = resource(&client, "c1").await;
    let token = wf_engine::CancellationToken::new();

    for round in 0..3 {
        // Each round is a reconcile: a new ResourceWorkflow over the factory's cached store.
        calls.reset();
        let mut workflow = manager.resource_workflow(&r).await.expect("workflow");
        let loaded_reads = calls.reads();
        assert!(
            loaded_reads <= usize::from(round == 0),
            "{loaded_reads} reads"
        );
        calls.reset();
        let report = workflow
            .run("Three", JsonMap::new(), &token)
            .await
            .expect("run");
        assert_eq!(report.outcome, wf_engine::RunOutcome::Completed);
        assert_eq!(calls.reads(), 0, "no GET while running");
        // Saves: the new runtime, inited + completed per step, the completed flow.
        assert_eq!(calls.writes(), 2 * 3 + 2, "one PUT per save");
    }
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    let keys: Vec<_> = data.keys().cloned().collect();
    assert_eq!(keys, ["1-Three", "2-Three", "3-Three"]);
    assert!(data["3-Three"].contains("\"completed\""));
}

#[tokio::test]
async fn two_writers_creating_the_configmap_at_once_keep_both_keys() {
    let (client, calls) = cluster(vec![db("c1")]).await;
    let r = resource(&client, "c1").await;
    let a = ConfigMapMementoStorage::for_object(client.clone(), r.object()).expect("a");
    let b = ConfigMapMementoStorage::for_object(client.clone(), r.object()).expect("b");
    // Both see no ConfigMap, so both try to create it: the second gets 409 AlreadyExists,
    // re-reads and replaces with only its own key added.
    assert!(a.load_all().await.expect("a").is_empty());
    assert!(b.load_all().await.expect("b").is_empty());
    calls.reset();
    a.write(&put("1-A", "a")).await.expect("a");
    b.write(&put("2-B", "b")).await.expect("b");
    assert_eq!(calls.create.load(Ordering::SeqCst), 2);
    assert_eq!(calls.replace.load(Ordering::SeqCst), 1);
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    assert_eq!(data.len(), 2, "{data:?}");
}

/// Snapshots the API call counters at each transition, to count the calls of each step.
struct CallsPerStep {
    calls: Arc<common::Calls>,
    marks: std::sync::Mutex<Vec<(wf_engine::hook::Transition, usize, usize)>>,
}

#[wf_engine::async_trait]
impl wf_engine::hook::TransitionHook for CallsPerStep {
    async fn on_transition(
        &self,
        _: &wf_engine::hook::HookEvent<'_>,
        transition: wf_engine::hook::Transition,
    ) {
        let mark = (transition, self.calls.writes(), self.calls.reads());
        self.marks.lock().expect("marks").push(mark);
    }
}

const ALPHA: &str = "\
flowName: Alpha
recoverFromFirstStep: false
steps:
  - {className: test.Noop, stepName: A1}
  - {className: test.Noop, stepName: A2}
  - {className: test.Noop, stepName: A3}
  - {className: test.Noop, stepName: A4}
";

const BETA: &str = "\
flowName: Beta
recoverFromFirstStep: false
steps:
  - {className: test.Noop, stepName: B1}
  - {className: test.Noop, stepName: B2}
  - {className: test.Noop, stepName: B3}
  - {className: test.Noop, stepName: B4}
";

#[tokio::test]
async fn injected_conflicts_between_two_runtimes_lose_no_key_and_a_step_costs_two_writes() {
    use wf_engine::hook::Transition;

    let dir = common::flow_dir(&[("alpha.yaml", ALPHA), ("beta.yaml", BETA)]);
    let (client, calls) = cluster(vec![db("c1")]).await;
    let counter = Arc::new(CallsPerStep {
        calls: calls.clone(),
        marks: Default::default(),
    });
    // Two replicas' managers, each with its own cached ConfigMap store of the same resource.
    let replica = |hook: Option<Arc<CallsPerStep>>| {
        let builder = wf_engine::WorkflowManager::<common::DbResource>::builder("db")
            .flow_dir(dir.path())
            .step("test.Noop", || Noop)
            // Room for the injected 409s on top of the real ones, whichever write they hit.
            .memento_store(ConfigMapMementoFactory::new(client.clone()).with_max_attempts(10));
        match hook {
            Some(hook) => builder.shared_hook(hook),
            None => builder,
        }
        .build()
        .expect("manager")
    };
    let (a, b) = (replica(Some(counter.clone())), replica(None));
    let r = resource(&client, "c1").await;
    let token = wf_engine::CancellationToken::new();
    let mut wa = a.resource_workflow(&r).await.expect("a");
    let mut wb = b.resource_workflow(&r).await.expect("b");

    // Both run at once, interleaving at every API call, with four injected 409s on top of
    // the real ones the interleaving causes.
    calls.inject_conflicts.store(4, Ordering::SeqCst);
    let (ra, rb) = tokio::join!(
        wa.run("Alpha", JsonMap::new(), &token),
        wb.run("Beta", JsonMap::new(), &token)
    );
    assert_eq!(ra.expect("alpha").outcome, wf_engine::RunOutcome::Completed);
    assert_eq!(rb.expect("beta").outcome, wf_engine::RunOutcome::Completed);
    assert_eq!(
        calls.injected.load(Ordering::SeqCst),
        4,
        "conflicts injected"
    );
    assert!(calls.reads() >= 4, "each 409 is followed by a re-read");
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    let keys: Vec<_> = data.keys().cloned().collect();
    assert_eq!(keys, ["1-Alpha", "1-Beta"], "no key lost");
    for key in ["1-Alpha", "1-Beta"] {
        let run: WorkflowRuntime = serde_json::from_str(&data[key]).expect("runtime");
        assert_eq!(run.flow_status, FlowStatus::Completed, "{key}");
        assert_eq!(run.running_steps.len(), 4, "{key}");
        assert!(
            run.running_steps
                .iter()
                .all(|s| s.step_status == wf_engine::StepStatus::Completed),
            "{key}: every step's last save survived"
        );
    }

    // Steady state: replica A alone. Its flow-start save absorbs B's last change (one 409 at
    // most); from then on every step costs exactly its two saves and no read.
    counter.marks.lock().expect("marks").clear();
    let before_injected = calls.injected.load(Ordering::SeqCst);
    let report = wa
        .run("Alpha", JsonMap::new(), &token)
        .await
        .expect("alpha again");
    assert_eq!(report.outcome, wf_engine::RunOutcome::Completed);
    assert_eq!(calls.injected.load(Ordering::SeqCst), before_injected);
    let marks = counter.marks.lock().expect("marks").clone();
    assert_eq!(marks.first().map(|m| m.0), Some(Transition::FlowStarted));
    let completed: Vec<_> = marks
        .iter()
        .filter(|m| m.0 == Transition::StepCompleted)
        .collect();
    assert_eq!(completed.len(), 4);
    let mut previous = marks[0];
    for (i, mark) in completed.into_iter().enumerate() {
        let (writes, reads) = (mark.1 - previous.1, mark.2 - previous.2);
        assert!(writes <= 2, "step {}: {writes} writes", i + 1);
        assert_eq!(writes, 2, "step {}: inited + completed", i + 1);
        assert_eq!(
            reads,
            0,
            "step {}: {reads} reads (a read means a conflict)",
            i + 1
        );
        previous = *mark;
    }
    let data = config_map(&client, "c1").await.data.unwrap_or_default();
    assert_eq!(data.len(), 3, "{:?}", data.keys());
}
