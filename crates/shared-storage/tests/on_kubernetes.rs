//! The Create flow, each of the 13 operations and deletion, to `Running` or gone, with
//! every port on its production adapter: the MPDCluster operator as `run` assembles it, over a fake API server
//! (kube-fake-client with a test kubelet), the SMS and CM emulators on 127.0.0.1 and the
//! exec stand-in of the engine agent. Each test checks the Kubernetes objects the flow made
//! or changed (pods and their specs, ConfigMaps, Secrets, Deployments, status). The last
//! tests report what the cluster manager saw (a failed RO, a failover mid-step) as the
//! status monitor and the callbacks would.

mod kube_harness;
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use kube_harness::{KubeHarness, NAME, NS};
use serde_json::json;
use shared_storage::crd::{annotations, InstanceStatus, MPDCluster};
use shared_storage::domain::InsType;
use shared_storage::ports::{
    ClusterRef, ClusterStore, InsPodSpec, ParamSet, ParamValue, PodManager, PodProgress, PortError,
    Ports, Progress,
};
use shared_storage::status::{Leadership, MonitorConfig, StatusMonitor, SyncOutcome};
use wf_engine::{async_trait, ResourceLocks};

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn label<'a>(pod: &'a Pod, key: &str) -> &'a str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map_or("", String::as_str)
}

/// The starts of every pod's engine, by pod name.
async fn starts(h: &KubeHarness) -> BTreeMap<String, u32> {
    h.pods()
        .await
        .iter()
        .map(|(name, pod)| (name.clone(), h.agent.starts(&uid(pod))))
        .collect()
}

async fn running() -> KubeHarness {
    KubeHarness::created(2).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_makes_the_pods_the_cm_and_the_accounts_and_ends_running() {
    let h = running().await;

    let cr = h.cr().await;
    let status = cr.status.clone().unwrap_or_default();
    assert_eq!(status.cluster_status, "Running");
    assert_eq!(h.of_type("rw").await.len(), 1);
    assert_eq!(h.of_type("ro").await.len(), 2);
    let rw = &h.of_type("rw").await[0];
    assert_eq!(status.leader_instance_id, rw.ins_id);
    let pods = h.pods().await;
    assert_eq!(pods.len(), 3, "{:?}", pods.keys());
    for ins in h.instances().await.values() {
        assert!(ins.installed, "{}", ins.ins_id);
        let pod = &pods[&ins.pod_name];
        assert_eq!(KubeHarness::node(pod), ins.node_name, "{}", ins.pod_name);
        assert_eq!(label(pod, "apsara.metric.clusterName"), NAME);
        assert_eq!(label(pod, "apsara.metric.ins_id"), ins.ins_id);
        assert_eq!(
            label(pod, "apsara.metric.db_ins_type"),
            if ins.ins_type == "rw" {
                "polardb_mpd_rw"
            } else {
                "polardb_mpd_ro"
            }
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.host_network, Some(true));
        let names: Vec<_> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(sorted(names), ["engine", "manager", "pfsd", "pfsd-tool"]);
        assert!(KubeHarness::image(pod, "engine").ends_with(":1.1.1"));
        let owner = &pod.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("MPDCluster", NAME)
        );
    }
    let nodes: std::collections::BTreeSet<_> = pods.values().map(KubeHarness::node).collect();
    assert_eq!(nodes.len(), 3, "one instance per node: {nodes:?}");
    // The cluster manager: a Deployment, and every instance RUNNING in it.
    let deployments = Api::<Deployment>::namespaced(h.cluster.client(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(deployments.len(), 1, "the CM Deployment");
    assert_eq!(h.cm.instances().len(), 3);
    assert!(h.cm.instances().iter().all(|i| i.phase == "RUNNING"));
    // The storage: owned by the cluster, the write lock on the RW's node.
    let pvc = h.sms.pvc(NS, "pvc-c1").expect("pvc");
    assert_eq!(pvc.owner, NAME);
    assert_eq!(pvc.write_node.as_deref(), Some(rw.node_name.as_str()));
    // The accounts: Secrets with passwords, never on a command line.
    let secrets = h.secrets().await;
    assert!(secrets.len() >= 2, "{:?}", secrets.keys());
    h.assert_no_password_in_an_argv().await;
    // The runs are kept in the cluster's workflow ConfigMap.
    let mementos = h
        .config_map(&format!("{NAME}-workflow"))
        .await
        .expect("mementos");
    assert!(!mementos.data.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_class_recreates_every_pod_with_the_new_class() {
    let mut h = running().await;
    let old = sorted(h.pods().await.into_keys().collect::<Vec<_>>());
    h.patch_spec(json!({"classInfoModifyTo": {"className": "polar.o.x4.large"}}))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let cr = h.cr().await;
    assert_eq!(cr.spec.class_info.class_name, "polar.o.x4.large");
    let pods = h.pods().await;
    assert_eq!(pods.len(), 3);
    for (name, pod) in &pods {
        assert!(!old.contains(name), "{name} was replaced");
        let engine = pod
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .find(|c| c.name == "engine")
            .unwrap();
        let cpu = engine
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("cpu"))
            .map(|q| q.0.clone());
        assert_eq!(cpu.as_deref(), Some("4"), "{name}");
    }
    assert!(h.of_type("tempro").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_moves_every_pod_and_the_cm_to_the_new_images() {
    let mut h = running().await;
    h.patch_spec(json!({"versionCfgModifyTo": {"versionName": "1.1.2"}}))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.cr().await.spec.version_cfg.version_name, "1.1.2");
    for (name, pod) in h.pods().await {
        for container in ["engine", "manager", "pfsd", "pfsd-tool"] {
            assert!(
                KubeHarness::image(&pod, container).ends_with(":1.1.2"),
                "{name} {container}"
            );
        }
    }
    let deployment = Api::<Deployment>::namespaced(h.cluster.client(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default();
    assert!(image.ends_with(":1.1.2"), "{image}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_cluster_restarts_every_engine_in_its_pod() {
    let mut h = running().await;
    let before = starts(&h).await;
    h.annotate(annotations::RESTART_CLUSTER, "T").await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let after = starts(&h).await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "same pods"
    );
    for (pod, n) in &before {
        assert_eq!(after[pod], n + 1, "{pod}");
    }
    assert_eq!(h.annotation(annotations::RESTART_CLUSTER).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_ins_restarts_only_that_engine() {
    let mut h = running().await;
    let ro = h.of_type("ro").await[0].clone();
    let before = starts(&h).await;
    h.annotate(annotations::RESTART_INS, &ro.ins_id).await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let after = starts(&h).await;
    for (pod, n) in &before {
        let expected = if *pod == ro.pod_name { n + 1 } else { *n };
        assert_eq!(after[pod], expected, "{pod}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_params_updates_every_engine_and_the_running_params_configmap() {
    let mut h = running().await;
    let cluster = ClusterRef::new(NS, NAME);
    let params = h.op.service.ports().params.clone();
    let mut user = params
        .user_params(&cluster)
        .await
        .unwrap()
        .unwrap_or_default();
    user.params.insert(
        "work_mem".into(),
        ParamValue {
            name: "work_mem".into(),
            value: "64MB".into(),
            update_time: Some(chrono::Utc::now()),
            inoperative_value: false,
        },
    );
    params.save_user_params(&cluster, &user).await.unwrap();
    h.annotate(annotations::FLUSH_PARAMS, "true").await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    for (name, pod) in h.pods().await {
        assert_eq!(
            h.agent
                .params(&uid(&pod))
                .get("work_mem")
                .map(String::as_str),
            Some("64MB"),
            "{name}"
        );
    }
    let running: ParamSet = params
        .running_params(&cluster)
        .await
        .unwrap()
        .expect("running params");
    assert_eq!(running.params["work_mem"].value, "64MB");
    let cm = h.config_map(&format!("{NAME}-running-params")).await;
    assert!(cm.is_some(), "the running parameters are a ConfigMap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_rw_makes_the_target_the_leader_in_the_status_and_the_cm() {
    let mut h = running().await;
    let target = h.of_type("ro").await[0].clone();
    h.annotate(annotations::SWITCH_RW, &target.ins_id).await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.leader().await, target.ins_id);
    let rw = h.cm_rw();
    assert_eq!(
        rw,
        std::slice::from_ref(&target.pod_name),
        "the CM's RW is the target"
    );
    assert_eq!(h.of_type("ro").await.len(), 2);
    assert_eq!(h.annotation(annotations::SWITCH_RW).await, None);
}

/// The slot of `ro` (its physical id) holds one RO with a new instance id and pod; the old
/// pod is gone.
async fn assert_rebuilt_with_a_new_incarnation(h: &KubeHarness, ro: &InstanceStatus) {
    let slot: Vec<_> = h
        .of_type("ro")
        .await
        .into_iter()
        .filter(|i| i.physical_ins_id == ro.physical_ins_id)
        .collect();
    assert_eq!(slot.len(), 1);
    assert_ne!(slot[0].ins_id, ro.ins_id, "a new incarnation");
    let pods = h.pods().await;
    assert!(pods.contains_key(&slot[0].pod_name));
    assert!(!pods.contains_key(&ro.pod_name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_ro_replaces_the_failed_ro_pod() {
    let mut h = running().await;
    let ro = h.of_type("ro").await[0].clone();
    h.cm.fail_instance(&ro.pod_name);
    h.api
        .patch_status(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"dbInstanceStatus": {ro.ins_id.clone(): {"currentState": {"state": "FAILED"}}}}})),
        )
        .await
        .unwrap();
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_rebuilt_with_a_new_incarnation(&h, &ro).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_ro_creates_one_more_pod_and_cm_instance() {
    let mut h = running().await;
    h.patch_spec(json!({"followerNum": 3})).await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.of_type("ro").await.len(), 3);
    assert_eq!(h.pods().await.len(), 4);
    assert_eq!(h.cm.instances().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_ro_deletes_its_pod_and_follower_num_follows() {
    let mut h = running().await;
    let ro = h.of_type("ro").await[0].clone();
    h.annotate(annotations::REMOVE_INS, &ro.ins_id).await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.of_type("ro").await.len(), 1);
    assert_eq!(h.cr().await.spec.follower_num, 1);
    assert!(!h.pods().await.contains_key(&ro.pod_name));
    assert_eq!(h.cm.instances().len(), 2);
    assert_eq!(h.annotation(annotations::REMOVE_INS).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_storage_grows_pfs_in_every_pod() {
    let mut h = running().await;
    h.annotate(annotations::EXTEND_STORAGE, "1").await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    for (name, pod) in h.pods().await {
        assert!(h.agent.grown(&uid(&pod)) > 0, "{name}");
    }
    assert_eq!(h.annotation(annotations::EXTEND_STORAGE).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_recreates_the_cm_and_every_pod_keeping_the_ids() {
    let mut h = running().await;
    let ids = sorted(h.instances().await.into_keys().collect::<Vec<_>>());
    let uids: Vec<String> = h.pods().await.values().map(uid).collect();
    h.annotate(annotations::FORCE_REBUILD, "true").await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(
        sorted(h.instances().await.into_keys().collect::<Vec<_>>()),
        ids
    );
    let pods = h.pods().await;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.values().all(|p| !uids.contains(&uid(p))),
        "every pod recreated"
    );
    assert_eq!(h.annotation(annotations::FORCE_REBUILD).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_releases_the_storage_drops_the_finalizer_and_the_object_is_gone() {
    let mut h = running().await;
    h.api
        .delete(NAME, &kube::api::DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(h.settle().await, "", "gone: {:?}", h.errors);
    assert!(
        h.api.get_opt(NAME).await.unwrap().is_none(),
        "the object is gone"
    );
    let pvc = h.sms.pvc(NS, "pvc-c1").expect("pvc");
    assert_eq!(pvc.owner, "", "the volume is released");
    assert_eq!(pvc.write_node, None);
    h.cluster.sync().await.unwrap();
    assert!(
        h.pods().await.is_empty(),
        "the pods are collected with their owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_ro_moves_its_pod_to_the_target_node() {
    let mut h = running().await;
    let ro = h.of_type("ro").await[0].clone();
    let free = h.free_node().await;
    h.annotate(annotations::MIGRATE, &format!("{}|{free}", ro.ins_id))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let moved: Vec<_> = h
        .of_type("ro")
        .await
        .into_iter()
        .filter(|i| i.physical_ins_id == ro.physical_ins_id)
        .collect();
    assert_eq!(moved.len(), 1);
    let pods = h.pods().await;
    assert_eq!(KubeHarness::node(&pods[&moved[0].pod_name]), free);
    assert!(!pods.contains_key(&ro.pod_name), "the old pod is gone");
    assert_eq!(pods.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_rw_moves_the_rw_pod_to_the_target_node() {
    let mut h = running().await;
    let rw = h.of_type("rw").await[0].clone();
    let free = h.free_node().await;
    h.annotate(annotations::MIGRATE, &format!("{}|{free}", rw.ins_id))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let new_rw = h.of_type("rw").await[0].clone();
    assert_eq!(new_rw.physical_ins_id, rw.physical_ins_id);
    let pods = h.pods().await;
    assert_eq!(KubeHarness::node(&pods[&new_rw.pod_name]), free);
    assert_eq!(pods.len(), 3);
    // The CM moves the write lock with its switchover (its emulator has no SMS side).
    let rw_in_cm = h.cm_rw();
    assert_eq!(rw_in_cm, std::slice::from_ref(&new_rw.pod_name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ro_the_cm_reports_failed_through_the_callback_is_rebuilt_to_running_with_a_new_incarnation(
) {
    use shared_storage::callbacks::{self, CallbackServer, CallbackToken};

    const TOKEN: &str = "callback-token-of-the-kube-test-0001";
    let mut h = running().await;
    let ro = h.of_type("ro").await[0].clone();
    h.cm.fail_instance(&ro.pod_name);
    // The monitor and the callbacks as `run` assembles them: the operator's service and
    // the state machine's locks.
    let monitor = StatusMonitor::new(
        h.op.service.clone(),
        h.op.locks.clone(),
        Leadership::always(),
        MonitorConfig::default(),
    );
    let server = CallbackServer::new(monitor, CallbackToken::new(TOKEN, "the test").unwrap());
    let listener = callbacks::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let url = format!(
        "http://{}/api/v1/namespace/{NS}/name/{NAME}/meta/engine_status",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let body = format!(
        r#"{{"endpoint":"{}:{}","engineStatus":"FAILED","reason":"crashed"}}"#,
        ro.host_client_ip, ro.net_info.working_port
    );
    let post = |token: Option<&'static str>| {
        let request = reqwest::Client::new().post(&url).body(body.clone());
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };

    assert!(
        !shared_storage::domain::triggers::rebuild_ro(&h.cr().await),
        "only the report makes the RO one to rebuild"
    );
    assert_eq!(post(None).await, 401);
    assert_eq!(
        h.instances().await[&ro.ins_id].current_state,
        ro.current_state,
        "nothing applied without the token"
    );
    assert_eq!(post(Some(TOKEN)).await, 200);
    let recorded = &h.instances().await[&ro.ins_id];
    assert_eq!(
        (
            recorded.current_state.state.as_str(),
            recorded.current_state.reason.as_str()
        ),
        ("FAILED", "crashed")
    );
    assert!(shared_storage::domain::triggers::rebuild_ro(&h.cr().await));

    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_rebuilt_with_a_new_incarnation(&h, &ro).await;
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

// ---- A failover reported while a step runs survives the step's save (weakness 21) ----

/// A gate in front of the production pod port: once armed, the next `ensure_pod` that
/// answers `Ready` stops there until released. The step that asked has loaded the cluster
/// and saves the pod's node right after (`ensure_instance_installed`).
#[derive(Clone, Default)]
struct Gate(Arc<GateInner>);

#[derive(Default)]
struct GateInner {
    armed: AtomicBool,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Gate {
    fn arm(&self) {
        self.0.armed.store(true, Ordering::SeqCst);
    }

    /// Resolves once a call stopped at the gate (panics after a minute without one).
    async fn entered(&self) {
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            self.0.entered.notified(),
        )
        .await
        .expect("a step reached the gate");
    }

    fn release(&self) {
        self.0.release.notify_one();
    }

    async fn pass(&self) {
        if self.0.armed.swap(false, Ordering::SeqCst) {
            self.0.entered.notify_one();
            self.0.release.notified().await;
        }
    }
}

/// The Kubernetes pod adapter behind a [`Gate`].
struct GatedPods {
    inner: Arc<dyn PodManager>,
    gate: Gate,
}

#[async_trait]
impl PodManager for GatedPods {
    async fn ensure_pod(&self, spec: &InsPodSpec) -> Result<PodProgress, PortError> {
        let progress = self.inner.ensure_pod(spec).await?;
        if matches!(progress, PodProgress::Ready { .. }) {
            self.gate.pass().await;
        }
        Ok(progress)
    }

    async fn delete_pod(&self, namespace: &str, pod_name: &str) -> Result<Progress, PortError> {
        self.inner.delete_pod(namespace, pod_name).await
    }

    async fn label_ins_type(
        &self,
        namespace: &str,
        pod_name: &str,
        ins_type: InsType,
    ) -> Result<(), PortError> {
        self.inner
            .label_ins_type(namespace, pod_name, ins_type)
            .await
    }
}

/// The Kubernetes cluster store with the leader of every status it writes recorded.
struct LeaderLog {
    inner: Arc<dyn ClusterStore>,
    leaders: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ClusterStore for LeaderLog {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        self.inner.get(namespace, name).await
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        self.inner.list().await
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.inner.update(cluster).await
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        let written = self.inner.update_status(cluster).await?;
        let leader = written
            .status
            .clone()
            .unwrap_or_default()
            .leader_instance_id;
        self.leaders.lock().expect("leaders").push(leader);
        Ok(written)
    }
}

/// A running cluster with one RO, its pod port gated and its status writes logged.
async fn gated_cluster() -> (KubeHarness, Gate, Arc<Mutex<Vec<String>>>) {
    let gate = Gate::default();
    let leaders = Arc::new(Mutex::new(Vec::new()));
    let (g, log) = (gate.clone(), leaders.clone());
    let h = KubeHarness::created_with_ports(1, move |ports| Ports {
        pods: Arc::new(GatedPods {
            inner: ports.pods.clone(),
            gate: g,
        }),
        clusters: Arc::new(LeaderLog {
            inner: ports.clusters.clone(),
            leaders: log,
        }),
        ..ports
    })
    .await;
    (h, gate, leaders)
}

/// The role label of the pod of each instance of `ids`, in that order.
async fn role_labels(h: &KubeHarness, ids: &[&str]) -> Vec<String> {
    let (instances, pods) = (h.instances().await, h.pods().await);
    ids.iter()
        .map(|id| label(&pods[&instances[*id].pod_name], "apsara.metric.db_ins_type").to_owned())
        .collect()
}

/// The CM fails over to the RO while AddRo (a flow that keeps HA on) is in the middle of
/// EnsureNewRoUpToDate: the step has loaded the cluster and its new RO's pod is Ready, the
/// save of the pod's node to come. A writer outside the flows' lock (another process, or a
/// monitor wired without the state machine's locks) folds the CM's report then. The step's
/// save after it, and every later save of the flow, keep the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_reported_while_a_step_runs_is_still_the_leader_after_that_steps_save() {
    let (mut h, gate, leaders) = gated_cluster().await;
    let old = h.of_type("rw").await[0].clone();
    let ro = h.of_type("ro").await[0].clone();
    let outside = StatusMonitor::new(
        h.op.service.clone(),
        ResourceLocks::new(),
        Leadership::always(),
        MonitorConfig::default(),
    );
    gate.arm();
    h.patch_spec(json!({"followerNum": 2})).await;

    let (cm, log, promoted) = (h.cm.clone(), leaders.clone(), ro.clone());
    let failover = async move {
        gate.entered().await;
        assert!(cm.promote(&promoted.pod_name), "the CM knows the RO");
        let outcome = outside
            .sync(&ClusterRef::new(NS, NAME))
            .await
            .expect("the fold");
        assert_eq!(outcome, SyncOutcome::Updated { rw_changed: true });
        let recorded_at = log.lock().expect("leaders").len();
        assert_eq!(
            log.lock().expect("leaders").last(),
            Some(&promoted.ins_id),
            "the fold wrote the new leader"
        );
        gate.release();
        recorded_at
    };
    let (state, recorded_at) = tokio::join!(h.settle(), failover);

    assert_eq!(state, "Running", "{:?}", h.errors);
    let after: Vec<String> = leaders.lock().expect("leaders")[recorded_at..].to_vec();
    assert!(!after.is_empty(), "the step saved after the failover");
    assert!(
        after.iter().all(|leader| *leader == ro.ins_id),
        "a save wrote a stale leader after the failover: {after:?}"
    );
    assert_eq!(h.leader().await, ro.ins_id);
    let status = h.cr().await.status.unwrap_or_default();
    assert_eq!(status.leader_instance_host, ro.node_name);
    assert_eq!(h.instances().await[&ro.ins_id].ins_type, "rw");
    assert_eq!(h.instances().await[&old.ins_id].ins_type, "ro");
    assert_eq!(
        h.of_type("ro").await.len(),
        2,
        "the old RW and the added RO"
    );
    assert!(h.of_type("tempro").await.is_empty());
    assert_eq!(h.pods().await.len(), 3);
    assert_eq!(h.cm_rw(), std::slice::from_ref(&ro.pod_name));
    assert_eq!(
        role_labels(&h, &[&ro.ins_id, &old.ins_id]).await,
        ["polardb_mpd_rw", "polardb_mpd_ro"],
        "the pods' role labels follow the failover"
    );
}

/// The same failover reported as `run` wires it: the CM's `rw_ins` callback, served under
/// the flows' locks. The callback waits for the running step (nothing is written mid-step),
/// then records the new RW; nothing after it reverts that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_the_cm_calls_back_while_a_step_runs_waits_for_the_step_and_is_then_the_leader()
{
    use shared_storage::callbacks::{self, CallbackServer, CallbackToken};

    const TOKEN: &str = "callback-token-of-the-kube-test-0002";
    let (mut h, gate, leaders) = gated_cluster().await;
    let old = h.of_type("rw").await[0].clone();
    let ro = h.of_type("ro").await[0].clone();
    let monitor = StatusMonitor::new(
        h.op.service.clone(),
        h.op.locks.clone(),
        Leadership::always(),
        MonitorConfig::default(),
    );
    let server = CallbackServer::new(monitor, CallbackToken::new(TOKEN, "the test").unwrap());
    let listener = callbacks::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let url = format!(
        "http://{}/api/v1/namespace/{NS}/name/{NAME}/rw_ins",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    gate.arm();
    h.patch_spec(json!({"followerNum": 2})).await;

    let (cm, log, promoted) = (h.cm.clone(), leaders.clone(), ro.clone());
    let failover = async move {
        gate.entered().await;
        assert!(cm.promote(&promoted.pod_name), "the CM knows the RO");
        let writes_mid_step = log.lock().expect("leaders").len();
        let body = format!(
            r#"{{"endpoint":"{}:{}"}}"#,
            promoted.host_client_ip, promoted.net_info.working_port
        );
        let call = tokio::spawn(
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(TOKEN)
                .body(body)
                .send(),
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!call.is_finished(), "the callback waits for the step");
        assert_eq!(
            log.lock().expect("leaders").len(),
            writes_mid_step,
            "nothing written mid-step"
        );
        gate.release();
        let answer = call.await.unwrap().expect("the callback answers");
        (writes_mid_step, answer.status().as_u16())
    };
    let (state, (writes_mid_step, answered)) = tokio::join!(h.settle(), failover);

    assert_eq!(state, "Running", "{:?}", h.errors);
    assert_eq!(answered, 200);
    let after: Vec<String> = leaders.lock().expect("leaders")[writes_mid_step..].to_vec();
    let first_new = after
        .iter()
        .position(|leader| *leader == ro.ins_id)
        .expect("the failover is recorded");
    assert!(
        first_new > 0,
        "the step saved before the callback wrote: {after:?}"
    );
    assert!(
        after[first_new..].iter().all(|leader| *leader == ro.ins_id),
        "nothing reverted the failover: {after:?}"
    );
    assert_eq!(h.leader().await, ro.ins_id);
    assert_eq!(h.instances().await[&old.ins_id].ins_type, "ro");
    assert_eq!(
        h.of_type("ro").await.len(),
        2,
        "the old RW and the added RO"
    );
    assert_eq!(
        role_labels(&h, &[&ro.ins_id, &old.ins_id]).await,
        ["polardb_mpd_rw", "polardb_mpd_ro"],
        "the pods' role labels follow the failover"
    );
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_class_is_refused_with_ready_false_and_one_warning_event_and_no_run() {
    use k8s_openapi::api::events::v1::Event;
    let mut h = running().await;
    let runs_before = h
        .config_map(&format!("{NAME}-workflow"))
        .await
        .and_then(|cm| cm.data)
        .unwrap_or_default()
        .len();
    h.patch_spec(json!({"classInfoModifyTo": {"className": "polar.o.bogus"}}))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    // Reconciled again with nothing changed: still refused, not reported again.
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let cr = h.cr().await;
    let ready = cr
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready")
        .clone();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "UNKNOWN_CLASS")
    );
    assert!(ready.message.contains("polar.o.bogus"), "{}", ready.message);
    let runs_after = h
        .config_map(&format!("{NAME}-workflow"))
        .await
        .and_then(|cm| cm.data)
        .unwrap_or_default()
        .len();
    assert_eq!(runs_after, runs_before, "no run started");
    let events = Api::<Event>::namespaced(h.cluster.client(), NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let refused: Vec<&Event> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("UNKNOWN_CLASS"))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    let event = refused[0];
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.series.as_ref().map_or(1, |s| s.count), 1);
    assert!(
        event
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("polar.o.bogus"),
        "{event:#?}"
    );
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some(NAME)
    );
    // Withdrawn: Ready is the state's again.
    h.patch_spec(json!({"classInfoModifyTo": {"className": ""}}))
        .await;
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let cr = h.cr().await;
    let ready = cr
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("Ready");
    assert_eq!(ready.status, "True");
}
