//! The RBAC in `deploy/rbac.yaml` grants exactly what the operator uses: every request of a
//! full flow suite (Create, the 13 operations, a status report, deletion) on the
//! production adapters, and of the loop `run` runs (the reconciler's watches, leader
//! election, the status monitor, the pod trigger, the callback token), recorded on the fake
//! API server as (verb, group, resource) triples, equals what the manifest's ClusterRole and
//! Role grant, and equals `shared_storage::rbac::REQUIRED`, which `cargo xtask deploy
//! --check` holds the manifest to.

mod kube_harness;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use kube_harness::{KubeHarness, NAME, NS};
use serde_json::json;
use shared_storage::cli::{Cli, Command};
use shared_storage::crd::annotations;
use shared_storage::rbac::{self, Grant};
use test_cluster::audit::{Access, AccessLog};

/// The operator's own namespace in this test (its Lease and callback token live there).
const SYSTEM_NS: &str = "mpd-system";

fn grant_of(access: &Access) -> Grant {
    Grant::new(&access.verb, &access.group, &access.resource)
}

/// Runs a change to `Running`, failing with the step's errors.
async fn settled(h: &mut KubeHarness, what: &str) {
    assert_eq!(h.settle().await, "Running", "{what}: {:?}", h.errors);
}

/// Every flow once, on the harness's recording operator.
async fn flow_suite(h: &mut KubeHarness) {
    h.patch_spec(json!({"classInfoModifyTo": {"className": "polar.o.x4.large"}}))
        .await;
    settled(h, "ModifyClass").await;
    h.patch_spec(json!({"versionCfgModifyTo": {"versionName": "1.1.2"}}))
        .await;
    settled(h, "Upgrade").await;
    h.annotate(annotations::RESTART_CLUSTER, "T").await;
    settled(h, "Restart").await;
    let ro = h.of_type("ro").await[0].clone();
    h.annotate(annotations::RESTART_INS, &ro.ins_id).await;
    settled(h, "RestartIns").await;
    h.annotate(annotations::FLUSH_PARAMS, "true").await;
    settled(h, "FlushParams").await;
    let target = h.of_type("ro").await[0].clone();
    h.annotate(annotations::SWITCH_RW, &target.ins_id).await;
    settled(h, "SwitchRw").await;
    let ro = h.of_type("ro").await[0].clone();
    h.cm.fail_instance(&ro.pod_name);
    h.api
        .patch_status(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"dbInstanceStatus": {ro.ins_id.clone(): {"currentState": {"state": "FAILED"}}}}})),
        )
        .await
        .expect("report the RO failed");
    settled(h, "RebuildRo").await;
    h.patch_spec(json!({"followerNum": 3})).await;
    settled(h, "AddRo").await;
    let ro = h.of_type("ro").await[0].clone();
    h.annotate(annotations::REMOVE_INS, &ro.ins_id).await;
    settled(h, "RemoveRo").await;
    h.annotate(annotations::EXTEND_STORAGE, "1").await;
    settled(h, "ExtendStorage").await;
    let ro = h.of_type("ro").await[0].clone();
    let free = h.free_node().await;
    h.annotate(annotations::MIGRATE, &format!("{}|{free}", ro.ins_id))
        .await;
    settled(h, "MigrateRo").await;
    let rw = h.of_type("rw").await[0].clone();
    let free = h.free_node().await;
    h.annotate(annotations::MIGRATE, &format!("{}|{free}", rw.ins_id))
        .await;
    settled(h, "MigrateRw").await;
    h.annotate(annotations::FORCE_REBUILD, "true").await;
    settled(h, "Rebuild").await;
}

/// `run`'s loop ([`shared_storage::cli::operate`]) on a recording client for a while: the
/// reconciler with leader election, the monitor, the pod trigger and the callbacks.
async fn run_loop(h: &KubeHarness, log: &AccessLog) {
    Api::<Secret>::namespaced(h.cluster.client(), SYSTEM_NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "polar-mpd-callback-token"},
                "stringData": {"token": "callback-token-of-the-rbac-test-01"},
                "data": {"token": "Y2FsbGJhY2stdG9rZW4tb2YtdGhlLXJiYWMtdGVzdC0wMQ=="}
            }))
            .expect("a Secret"),
        )
        .await
        .expect("the callback token Secret");
    let cli = Cli::try_parse_from([
        "shared-storage-operator",
        "run",
        "--leader-election-namespace",
        SYSTEM_NS,
        "--pod-name",
        "operator-0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--callback-addr",
        "127.0.0.1:0",
        "--status-resync-interval",
        "50ms",
    ])
    .expect("run's flags");
    let Command::Run(args) = cli.command else {
        panic!("not run")
    };
    let client = h.cluster.server().recording_client(NS, log);
    let ports = h.ports_on(client.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        shared_storage::cli::operate(client, ports, &args, async {
            let _ = stopped.await;
        })
        .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(());
    running
        .await
        .expect("the loop task")
        .expect("run's loop stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_rbac_grants_exactly_what_the_flows_and_the_run_loop_use() {
    let mut h = KubeHarness::created(2).await;
    flow_suite(&mut h).await;
    let run_log = AccessLog::default();
    run_loop(&h, &run_log).await;
    h.api
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(h.settle().await, "", "gone: {:?}", h.errors);

    let mut used: BTreeSet<Grant> = h
        .access
        .accesses()
        .iter()
        .chain(run_log.accesses().iter())
        .map(grant_of)
        .collect();
    // The exec stand-in replaces the transport of `ports::kube::exec`, whose requests are
    // a WebSocket upgrade of `pods/exec`: authorised as `get` and, since Kubernetes 1.35
    // (AuthorizePodWebsocketUpgradeCreatePermission), also as `create`.
    assert!(!h.agent.execs().is_empty(), "the flows exec into pods");
    used.insert(Grant::new("get", "", "pods/exec"));
    used.insert(Grant::new("create", "", "pods/exec"));
    for grant in &used {
        eprintln!("used: {grant}");
    }

    // What the API server checks while admitting other requests (never a request itself).
    used.extend(rbac::implied_grants());

    let required: BTreeSet<Grant> = rbac::required_grants();
    let missing: Vec<_> = used.difference(&required).collect();
    let unused: Vec<_> = required.difference(&used).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "shared_storage::rbac::REQUIRED drifted from what the code uses:\n  \
         used but not granted: {missing:?}\n  granted but not used: {unused:?}"
    );

    let manifest = rbac::Manifest::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/rbac.yaml"
    )))
    .expect("deploy/rbac.yaml");
    assert_eq!(
        manifest.grants(),
        required,
        "deploy/rbac.yaml grants exactly the required verbs"
    );
}
