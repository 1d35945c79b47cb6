//! The inspection commands on a cluster (`workflows`, `history`, `get`, `status`,
//! `recover`, `cancel`, `abandon` with `--kubeconfig`), run in-process on the cluster backend over the
//! fake API server after a real Create flow on the production adapters: the same output as
//! local mode for the same flow, the annotations set on the API, the listing of `get`,
//! `delete` through the operator's finalizer, unknown names refused.

mod kube_harness;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube_harness::{KubeHarness, NAME, NS};
use shared_storage::cli::{inspect, Backend, InspectError, OutputFormat, Stdout};
use shared_storage::crd::{annotations, MPDCluster};
use wf_engine::Reconciled;

/// Runs `inspect::<command>(args.., &mut out)` into a buffer: what it printed, or its error.
macro_rules! printed {
    ($command:ident($($arg:expr),*)) => {{
        let mut buffer = Vec::new();
        let result = {
            let mut out = Stdout::to(&mut buffer);
            inspect::$command($($arg,)* &mut out).await
        };
        result.map(|()| String::from_utf8(buffer).expect("UTF-8 output"))
    }};
}

async fn workflows(b: &Backend, name: &str, format: OutputFormat) -> Result<String, InspectError> {
    printed!(workflows(b, name, format))
}

async fn history(b: &Backend, name: &str, format: OutputFormat) -> Result<String, InspectError> {
    printed!(history(b, name, format))
}

async fn status(b: &Backend, name: &str, format: OutputFormat) -> Result<String, InspectError> {
    printed!(status(b, name, format))
}

async fn get(b: &Backend, name: &str) -> Result<String, InspectError> {
    printed!(get(b, name))
}

async fn recover(b: &Backend, name: &str) -> Result<String, InspectError> {
    printed!(recover(b, name))
}

async fn cancel(b: &Backend, name: &str) -> Result<String, InspectError> {
    printed!(cancel(b, name))
}

async fn abandon(b: &Backend, name: &str) -> Result<String, InspectError> {
    printed!(abandon(b, name))
}

async fn delete(b: &Backend, name: &str) -> Result<String, InspectError> {
    printed!(delete(b, name))
}

async fn list(b: &Backend, format: OutputFormat) -> Result<String, InspectError> {
    printed!(list(b, format))
}

fn on_cluster(h: &KubeHarness) -> Backend {
    Backend::cluster(h.cluster.client(), NS)
}

/// The harness's cluster document run through local mode (the binary) in `state`.
fn created_locally(state: &Path) -> Backend {
    let file = state.join("c1.yaml");
    std::fs::write(&file, serde_yaml::to_string(&support::cluster(2)).unwrap()).unwrap();
    let out = Command::new(PathBuf::from(env!("CARGO_BIN_EXE_shared-storage-operator")))
        .arg("local")
        .arg(&file)
        .arg("--state-dir")
        .arg(state.join("state"))
        .output()
        .expect("run the binary");
    assert_eq!(
        out.status.code(),
        Some(0),
        "local: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Backend::local(state.join("state"), NS)
}

/// The header's columns and, per row, the columns named `keep`.
fn columns(table: &str, keep: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = table.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let index: Vec<usize> = keep
        .iter()
        .map(|k| header.iter().position(|h| h == k).expect(k))
        .collect();
    let rows = lines
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            index.iter().map(|&i| fields[i].to_owned()).collect()
        })
        .collect();
    (header, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_on_the_cluster_prints_the_same_rows_as_local_mode() {
    let h = KubeHarness::created(2).await;
    let dir = tempfile::tempdir().unwrap();
    let local = created_locally(dir.path());

    let on_kube = workflows(&on_cluster(&h), NAME, OutputFormat::Table)
        .await
        .expect("workflows on the cluster");
    let locally = workflows(&local, NAME, OutputFormat::Table)
        .await
        .expect("workflows locally");
    let keep = ["SEQ", "FLOW", "STATUS", "STEPS"];
    let (kube_header, kube_rows) = columns(&on_kube, &keep);
    let (local_header, local_rows) = columns(&locally, &keep);
    assert_eq!(kube_header, local_header, "{on_kube}\n{locally}");
    assert_eq!(kube_rows, local_rows, "{on_kube}\n{locally}");
    assert_eq!(
        kube_rows[0],
        ["1", "CreateSharedStorageCluster", "completed", "6/6"],
        "{on_kube}"
    );
    assert!(
        on_kube.lines().skip(1).all(|l| l.contains("Z ")),
        "times: {on_kube}"
    );

    // `-o json` parses, with the same runs.
    let json = workflows(&on_cluster(&h), NAME, OutputFormat::Json)
        .await
        .unwrap();
    let runs: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
    let local_json = workflows(&local, NAME, OutputFormat::Json).await.unwrap();
    let local_runs: Vec<serde_json::Value> = serde_json::from_str(&local_json).unwrap();
    let shape = |runs: &[serde_json::Value]| -> Vec<(String, String, u64, u64)> {
        runs.iter()
            .map(|r| {
                (
                    r["flow"].as_str().unwrap().to_owned(),
                    r["status"].as_str().unwrap().to_owned(),
                    r["steps_done"].as_u64().unwrap(),
                    r["steps_total"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&runs), shape(&local_runs));
    let keys = |r: &serde_json::Value| r.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&runs[0]), keys(&local_runs[0]), "the same fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_the_cluster_lists_the_events_in_the_local_columns_and_order() {
    let h = KubeHarness::created(2).await;
    let dir = tempfile::tempdir().unwrap();
    let local = created_locally(dir.path());

    let on_kube = history(&on_cluster(&h), NAME, OutputFormat::Table)
        .await
        .expect("history on the cluster");
    let locally = history(&local, NAME, OutputFormat::Table).await.unwrap();
    assert_eq!(
        on_kube.lines().next(),
        locally.lines().next(),
        "the same columns"
    );
    // (flow, step, type, step#) per row; the cluster's Events are a subsequence of the
    // local history: no StepInited (no Event), repeats folded into one Event series, and
    // the recorder's rate limit (10 per cluster per minute) drops the rest.
    let (_, kube_rows) = columns(&on_kube, &["FLOW", "STEP", "TYPE", "STEP#"]);
    let (_, local_rows) = columns(&locally, &["FLOW", "STEP", "TYPE", "STEP#"]);
    assert!(kube_rows.len() >= 5, "{on_kube}");
    assert_eq!(
        kube_rows[0],
        ["CreateSharedStorageCluster", "-", "WorkFlowStart", "0"],
        "{on_kube}"
    );
    let mut rest = local_rows.iter();
    for row in &kube_rows {
        assert!(
            rest.any(|l| l == row),
            "{row:?} is not in the local history in order:\n{on_kube}\n{locally}"
        );
    }
    for (step, number) in [("InitMeta", "1"), ("PrepareStorage", "2")] {
        assert!(
            kube_rows.contains(&vec![
                "CreateSharedStorageCluster".to_owned(),
                step.to_owned(),
                "StepCompleted".to_owned(),
                number.to_owned()
            ]),
            "{step} completed as step {number}: {on_kube}"
        );
    }

    let json = history(&on_cluster(&h), NAME, OutputFormat::Json)
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
    for kind in ["WorkFlowStart", "StepCompleted"] {
        assert!(
            events.iter().any(|e| e["type"] == kind
                && e["flow_name"] == "CreateSharedStorageCluster"
                && e["resource_name"] == NAME),
            "no {kind}: {json}"
        );
    }
}

/// Sets `status.clusterStatus`, as the state machine would.
async fn set_state(h: &KubeHarness, state: &str) {
    h.api
        .patch_status(
            NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": {"clusterStatus": state}})),
        )
        .await
        .expect("patch the state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_recover_and_cancel_on_the_cluster_read_the_object_and_patch_its_annotations() {
    let h = KubeHarness::created(1).await;
    let backend = on_cluster(&h);

    let yaml = get(&backend, NAME).await.expect("get");
    let cr: MPDCluster = serde_yaml::from_str(&yaml).expect("get prints YAML");
    assert_eq!(cr.status.unwrap().cluster_status, "Running");

    set_state(&h, "Interrupt").await;
    let said = recover(&backend, NAME).await.expect("recover");
    assert!(said.starts_with("default/c1: recovery requested"), "{said}");
    assert_eq!(
        h.annotation(annotations::INTERRUPT_RECOVER)
            .await
            .as_deref(),
        Some("T")
    );
    set_state(&h, "RestartCluster").await;
    let said = cancel(&backend, NAME).await.expect("cancel");
    assert!(
        said.starts_with("default/c1: cancellation requested"),
        "{said}"
    );
    assert_eq!(
        h.annotation(annotations::CANCELLED).await.as_deref(),
        Some("true")
    );
    // Both set: the merge patch keeps the other annotations.
    assert_eq!(
        h.annotation(annotations::INTERRUPT_RECOVER)
            .await
            .as_deref(),
        Some("T")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_of_a_running_cluster_and_cancel_with_no_flow_running_are_refused_writing_nothing()
{
    let h = KubeHarness::created(1).await;
    let backend = on_cluster(&h);
    let err = recover(&backend, NAME)
        .await
        .expect_err("recover of Running");
    assert_eq!(
        err.to_string(),
        "mpdcluster default/c1 is Running, not Interrupt: there is nothing to recover"
    );
    assert_eq!(err.exit_code(), 1);
    let err = cancel(&backend, NAME).await.expect_err("cancel when idle");
    assert_eq!(
        err.to_string(),
        "mpdcluster default/c1 is Running with no flow running: there is nothing to cancel"
    );
    assert_eq!(err.exit_code(), 1);
    assert_eq!(h.annotation(annotations::INTERRUPT_RECOVER).await, None);
    assert_eq!(h.annotation(annotations::CANCELLED).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_the_cluster_refuses_an_unknown_name_with_one_line_and_exit_1() {
    let h = KubeHarness::new().await;
    let backend = on_cluster(&h);
    let table = OutputFormat::Table;
    let errors = [
        ("workflows", workflows(&backend, "nosuch", table).await),
        ("history", history(&backend, "nosuch", table).await),
        ("status", status(&backend, "nosuch", table).await),
        ("get", get(&backend, "nosuch").await),
        ("recover", recover(&backend, "nosuch").await),
        ("cancel", cancel(&backend, "nosuch").await),
        ("abandon", abandon(&backend, "nosuch").await),
        ("delete", delete(&backend, "nosuch").await),
    ];
    for (command, result) in errors {
        let err = result.expect_err(command);
        let text = err.to_string();
        assert_eq!(text, "mpdcluster default/nosuch not found", "{command}");
        assert_eq!(err.exit_code(), 1, "{command}");
    }
    // Nothing was created by the annotation commands.
    assert!(h.api.get_opt("nosuch").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_the_cluster_shows_the_state_the_leader_and_every_instance() {
    let h = KubeHarness::created(2).await;
    let backend = on_cluster(&h);
    let leader = h.leader().await;
    let instances = h.instances().await;
    assert_eq!(instances.len(), 3);

    let text = status(&backend, NAME, OutputFormat::Table)
        .await
        .expect("status");
    assert!(text.contains("Cluster:  default/c1"), "{text}");
    assert!(text.contains("State:    Running"), "{text}");
    let rw = &instances[&leader];
    assert!(
        text.contains(&format!("Leader:   {leader} on {}", rw.node_name)),
        "{text}"
    );
    assert!(
        text.contains(
            "Flow:     none running; last: CreateSharedStorageCluster (#1) completed, 6/6 steps"
        ),
        "{text}"
    );
    for ins in instances.values() {
        let line = text
            .lines()
            .find(|l| l.starts_with(&ins.ins_id))
            .unwrap_or_else(|| panic!("no row for {}: {text}", ins.ins_id));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let role = if ins.ins_id == leader { "RW*" } else { "RO" };
        assert_eq!(fields[1], role, "{line}");
        assert_eq!(fields[2], ins.pod_name, "{line}");
        assert_eq!(fields[3], ins.node_name, "{line}");
        let engine = match ins.current_state.state.as_str() {
            "" => "-",
            state => state,
        };
        assert_eq!(fields[5], engine, "{line}");
    }

    let json = status(&backend, NAME, OutputFormat::Json).await.unwrap();
    let view: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(view["state"], "Running");
    assert_eq!(view["leader"], leader.as_str());
    assert_eq!(view["instances"].as_array().unwrap().len(), 3);
    assert_eq!(view["instances"][0]["role"], "RW");
    assert_eq!(view["instances"][0]["leader"], true);
    assert!(view["running_flow"].is_null(), "{json}");
    assert_eq!(view["last_flow"]["flow"], "CreateSharedStorageCluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_on_the_cluster_is_refused_when_nothing_is_stuck_and_ends_a_stuck_add_ro() {
    let mut h = KubeHarness::created(2).await;
    let backend = on_cluster(&h);
    let err = abandon(&backend, NAME).await.expect_err("nothing is stuck");
    assert_eq!(
        err.to_string(),
        "mpdcluster default/c1 is Running with no uncompleted or interrupted run: there is \
         nothing to abandon"
    );
    assert_eq!(err.exit_code(), 1);
    assert_eq!(h.annotation(annotations::INTERRUPT_ABANDON).await, None);

    // A pod that is no MPDCluster's holds the engine port on the one free node: the
    // admission (which knows the MPDClusters) lets a third RO in, AddRo's new pod is never
    // scheduled, and the run waits for it for ever (its temp RO planned and recorded).
    let outsider: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pg-outside", "namespace": "legacy"},
        "spec": {
            "nodeName": h.free_node().await,
            "hostNetwork": true,
            "containers": [{"name": "pg", "image": "postgres", "ports": [{"containerPort": 5432}]}]
        }
    }))
    .unwrap();
    Api::<Pod>::namespaced(h.cluster.client(), "legacy")
        .create(&PostParams::default(), &outsider)
        .await
        .expect("the outside pod");
    h.patch_spec(serde_json::json!({"followerNum": 3})).await;
    let mut waiting = false;
    for _ in 0..100 {
        h.cluster.sync().await.expect("kubelet");
        let cr = h.cr().await;
        let decision = h.op.reconciler.decide(&cr).await.expect("reconcile");
        let temp = h.of_type("tempro").await;
        if matches!(&decision.reconciled, Some(Reconciled::Waiting { flow, .. }) if flow == "SharedStorageClusterAddRo")
            && !temp.is_empty()
        {
            waiting = true;
            break;
        }
    }
    assert!(waiting, "AddRo waits on its unscheduled pod");
    assert_eq!(h.state().await, "AddRo");
    let said = abandon(&backend, NAME).await.expect("abandon");
    assert!(said.starts_with("default/c1: abandon of run"), "{said}");
    assert_eq!(
        h.annotation(annotations::INTERRUPT_ABANDON)
            .await
            .as_deref(),
        Some("T")
    );
    h.patch_spec(serde_json::json!({"followerNum": 2})).await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert!(h.of_type("tempro").await.is_empty(), "no tempro entry left");
    assert_eq!(h.of_type("ro").await.len(), 2);
    assert_eq!(h.pods().await.len(), 3, "the unscheduled pod was deleted");
    assert_eq!(h.annotation(annotations::TEMP_RO_IDS).await, None);
    assert_eq!(h.annotation(annotations::INTERRUPT_ABANDON).await, None);
    let table = workflows(&backend, NAME, OutputFormat::Table)
        .await
        .expect("workflows");
    assert!(
        table
            .lines()
            .any(|l| l.contains("SharedStorageClusterAddRo") && l.contains("abandoned")),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_the_cluster_shows_a_refused_request_from_its_warning_event() {
    let mut h = KubeHarness::created(2).await;
    h.patch_spec(serde_json::json!({"versionCfgModifyTo": {"versionName": "9.9.9"}}))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let json = history(&on_cluster(&h), NAME, OutputFormat::Json)
        .await
        .expect("history on the cluster");
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let refused: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "RequestRefused")
        .collect();
    assert_eq!(refused.len(), 1, "{json}");
    let error = refused[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("UNKNOWN_VERSION: ") && error.contains("9.9.9"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_without_a_name_lists_every_cluster_on_the_cluster() {
    let h = KubeHarness::created(2).await;
    let backend = on_cluster(&h);
    let text = list(&backend, OutputFormat::Table).await.expect("list");
    let (header, rows) = columns(&text, &["NAME", "STATUS", "LEADER", "RO", "READY"]);
    assert_eq!(
        header,
        ["NAME", "STATUS", "LEADER", "RO", "READY", "AGE"],
        "{text}"
    );
    assert_eq!(
        rows,
        [[NAME, "Running", &h.leader().await, "2", "True"]],
        "{text}"
    );
    let json = list(&backend, OutputFormat::Json).await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], NAME);
    // Another namespace: no rows, no error.
    let empty = Backend::cluster(h.cluster.client(), "other");
    assert_eq!(list_of(&empty).await, "");
}

async fn list_of(b: &Backend) -> String {
    list(b, OutputFormat::Table).await.expect("list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_on_the_cluster_is_a_kubernetes_delete_the_finalizer_guard_completes() {
    let mut h = KubeHarness::created(1).await;
    let backend = on_cluster(&h);
    let said = delete(&backend, NAME).await.expect("delete");
    assert!(said.starts_with("default/c1: deletion requested"), "{said}");
    let cr = h
        .api
        .get_opt(NAME)
        .await
        .unwrap()
        .expect("kept by its finalizer");
    assert!(cr.metadata.deletion_timestamp.is_some());
    // The operator's FinalizerGuard releases the volume and drops the finalizer.
    assert_eq!(h.settle().await, "", "gone: {:?}", h.errors);
    assert!(h.api.get_opt(NAME).await.unwrap().is_none());
    let pvc = h.sms.pvc(NS, "pvc-c1").expect("pvc");
    assert_eq!(pvc.owner, "", "the volume is released");
    let err = get(&backend, NAME).await.expect_err("get after delete");
    assert_eq!(err.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_the_cluster_carries_the_run_seq_and_the_wait_reasons() {
    let h = KubeHarness::created(1).await;
    let json = history(&on_cluster(&h), NAME, OutputFormat::Json)
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["seq"] == 1), "{json}");
    let waits: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["type"] == "StepWaiting")
        .collect();
    assert!(!waits.is_empty(), "{json}");
    assert!(
        waits
            .iter()
            .all(|e| e["reason"].as_str().is_some_and(|r| !r.is_empty())),
        "every wait says why: {json}"
    );
}
