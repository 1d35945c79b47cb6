//! A harness for flow tests on the production adapters: the MPDCluster operator as `run`
//! assembles it (wf-kube reconciler, ConfigMap mementos, Events, every port on its
//! Kubernetes/HTTP adapter) over a fake cluster (kube-fake-client API server, test kubelet,
//! nodes, the system ConfigMaps), the SMS and CM emulators on 127.0.0.1, and the exec
//! stand-in for the engine agent and pfsd.

#![allow(dead_code)]

pub mod agent;
pub mod seed;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use shared_storage::cluster::{ClusterOperator, ClusterSettings};
use shared_storage::crd::{InstanceStatus, MPDCluster};
use shared_storage::ports::kube::{connect_with, ConnectOverrides, KubePortsConfig};
use shared_storage::ports::{ClusterRef, Ports};
use shared_storage::service::ServiceConfig;
use test_cluster::audit::AccessLog;
use test_cluster::cm::CmEmulator;
use test_cluster::sms::SmsEmulator;
use test_cluster::FakeCluster;
use wf_engine::{Reconciled, RetryPolicy, WorkflowConfig};

pub use agent::FakeAgent;

/// The namespace of the test cluster.
pub const NS: &str = "default";
/// Its name.
pub const NAME: &str = "c1";

/// The operator on a fake cluster.
pub struct KubeHarness {
    /// The API server, kubelet and nodes.
    pub cluster: FakeCluster,
    /// The storage-management service.
    pub sms: SmsEmulator,
    /// The cluster manager's API (shared, for a test that drives it while the operator
    /// reconciles).
    pub cm: Arc<CmEmulator>,
    /// The engine agents and pfsd tools.
    pub agent: FakeAgent,
    /// The operator.
    pub op: ClusterOperator,
    /// The MPDClusters.
    pub api: Api<MPDCluster>,
    /// What the operator asked the API server for (its client records every request).
    pub access: AccessLog,
    /// Errors of failed reconciles, in order.
    pub errors: Vec<String>,
}

/// Every port on its production adapter over `client`, with fast timeouts, the emulators'
/// addresses and the exec stand-in.
fn ports(client: kube::Client, sms: &SmsEmulator, cm: &CmEmulator, agent: &FakeAgent) -> Ports {
    let config = KubePortsConfig {
        sms_base_url: Some(sms.base_url()),
        http_connect_timeout: Duration::from_secs(1),
        http_request_timeout: Duration::from_secs(5),
        cm_add_ins_timeout: Duration::from_secs(5),
        http_retries: 1,
        http_retry_pause: Duration::from_millis(10),
        conflict_backoff: Duration::from_millis(1),
        ..KubePortsConfig::default()
    };
    let cm_url = cm.base_url();
    connect_with(
        client,
        &config,
        ConnectOverrides {
            exec: Some(Arc::new(agent.clone())),
            cm_base_url: Some(Arc::new(move |_: &ClusterRef| Some(cm_url.clone()))),
        },
    )
    .expect("every port on its adapter")
}

/// The operator's settings with millisecond polls and backoffs.
fn settings() -> ClusterSettings {
    let mut retry = RetryPolicy::default();
    retry.backoff.initial = Duration::from_millis(1);
    retry.backoff.max = Duration::from_millis(10);
    ClusterSettings {
        service: ServiceConfig {
            poll_interval: Duration::from_millis(1),
            ..ServiceConfig::default()
        },
        workflow: WorkflowConfig {
            wait_interval: Duration::from_millis(1),
            cancel_poll_interval: Duration::from_secs(60),
            default_retry: retry,
            ..WorkflowConfig::default()
        },
        ..ClusterSettings::default()
    }
}

impl KubeHarness {
    /// The cluster, the emulators and the operator; no MPDCluster yet.
    pub async fn new() -> Self {
        Self::with_ports(|ports| ports).await
    }

    /// Like [`KubeHarness::new`], the production adapters passed through `wrap` before the
    /// operator takes them (e.g. to put a recording store in front of one).
    pub async fn with_ports(wrap: impl FnOnce(Ports) -> Ports) -> Self {
        let mut builder = seed::nodes(
            FakeCluster::builder()
                .with_resource::<MPDCluster>()
                .with_status_subresource::<MPDCluster>(),
        );
        for cm in seed::config_maps() {
            builder = builder.with_object(cm);
        }
        let cluster = builder.build().await.expect("fake cluster");
        let sms = SmsEmulator::start().await.expect("sms emulator");
        sms.add_pvc(NS, "pvc-c1");
        for n in 1..=4 {
            sms.add_node(&format!("node-{n}"), &format!("10.1.0.{n}"));
        }
        let cm = Arc::new(CmEmulator::start().await.expect("cm emulator"));
        let agent = FakeAgent::new(cluster.client());
        let access = AccessLog::default();
        let client = cluster.server().recording_client(NS, &access);
        let op = ClusterOperator::build(
            client.clone(),
            wrap(ports(client, &sms, &cm, &agent)),
            settings(),
        )
        .expect("operator");
        let api = Api::namespaced(cluster.client(), NS);
        KubeHarness {
            cluster,
            sms,
            cm,
            agent,
            op,
            api,
            access,
            errors: Vec::new(),
        }
    }

    /// The production ports on `client`, speaking to this harness's emulators and exec
    /// stand-in (for a second operator, e.g. the one `run` assembles).
    pub fn ports_on(&self, client: kube::Client) -> Ports {
        ports(client, &self.sms, &self.cm, &self.agent)
    }

    /// Creates the sample cluster with `follower_num` ROs and reconciles it to `Running`.
    pub async fn created(follower_num: i32) -> Self {
        Self::created_with_ports(follower_num, |ports| ports).await
    }

    /// Like [`KubeHarness::created`] on the ports of [`KubeHarness::with_ports`].
    pub async fn created_with_ports(follower_num: i32, wrap: impl FnOnce(Ports) -> Ports) -> Self {
        let mut h = Self::with_ports(wrap).await;
        h.api
            .create(
                &PostParams::default(),
                &crate::support::cluster(follower_num),
            )
            .await
            .expect("create the MPDCluster");
        assert_eq!(h.settle().await, "Running", "create: {:?}", h.errors);
        h
    }

    /// Reconciles, as the controller would, until the cluster is stable and nothing asks
    /// to come back (at most 600 reconciles, the kubelet and the CM moving in between);
    /// returns the state.
    pub async fn settle(&mut self) -> String {
        let mut last = None;
        let mut settled = false;
        for _ in 0..600 {
            self.cluster.sync().await.expect("kubelet");
            let Some(cr) = self.api.get_opt(NAME).await.expect("read the cluster") else {
                return String::new();
            };
            match self.op.reconciler.decide(&cr).await {
                Ok(decision) => {
                    let stable = matches!(decision.reconciled, Some(Reconciled::Stable { .. }));
                    // A refused cluster rests (the controller only looks again slowly).
                    let refused = matches!(decision.reconciled, Some(Reconciled::Refused { .. }));
                    last = Some(decision.reconciled.clone());
                    if decision.gone || refused || (stable && decision.requeue_after.is_none()) {
                        settled = true;
                        break;
                    }
                }
                Err(e) => self.errors.push(e.to_string()),
            }
        }
        if !settled {
            self.errors
                .push(format!("not settled after 600 reconciles; last: {last:?}"));
        }
        self.state().await
    }

    /// The seeded node no instance runs on (the engine port is taken on the others).
    pub async fn free_node(&self) -> String {
        let used: Vec<String> = self.pods().await.values().map(Self::node).collect();
        (1..=4)
            .map(|n| format!("node-{n}"))
            .find(|n| !used.contains(n))
            .expect("a free node")
    }

    /// The MPDCluster.
    pub async fn cr(&self) -> MPDCluster {
        self.api.get(NAME).await.expect("the cluster")
    }

    /// `status.clusterStatus`.
    pub async fn state(&self) -> String {
        match self.api.get_opt(NAME).await.expect("read") {
            Some(cr) => cr.status.unwrap_or_default().cluster_status,
            None => String::new(),
        }
    }

    /// The instances of the status.
    pub async fn instances(&self) -> BTreeMap<String, InstanceStatus> {
        self.cr()
            .await
            .status
            .unwrap_or_default()
            .db_instance_status
    }

    /// The instances of one type (`rw`, `ro`, `tempro`).
    pub async fn of_type(&self, ty: &str) -> Vec<InstanceStatus> {
        self.instances()
            .await
            .into_values()
            .filter(|i| i.ins_type == ty)
            .collect()
    }

    /// `status.leaderInstanceId`.
    pub async fn leader(&self) -> String {
        self.cr()
            .await
            .status
            .unwrap_or_default()
            .leader_instance_id
    }

    /// The pods the cluster manager has as its RW.
    pub fn cm_rw(&self) -> Vec<String> {
        self.cm
            .instances()
            .into_iter()
            .filter(|i| i.role == test_cluster::cm::CmRole::Rw)
            .map(|i| i.pod_name)
            .collect()
    }

    /// Changes the spec with a merge patch, as `kubectl apply` would.
    pub async fn patch_spec(&self, spec: serde_json::Value) {
        self.api
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .expect("patch the spec");
    }

    /// Sets an annotation, as `kubectl annotate` would.
    pub async fn annotate(&self, key: &str, value: &str) {
        self.api
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { key: value } } })),
            )
            .await
            .expect("annotate");
    }

    /// An annotation of the cluster.
    pub async fn annotation(&self, key: &str) -> Option<String> {
        self.cr()
            .await
            .metadata
            .annotations
            .and_then(|a| a.get(key).cloned())
    }

    /// The instance pods of the cluster that are not being deleted, by name.
    pub async fn pods(&self) -> BTreeMap<String, Pod> {
        Api::<Pod>::namespaced(self.cluster.client(), NS)
            .list(&ListParams::default().labels("apsara.metric.db_type=polardb"))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
            .collect()
    }

    /// A ConfigMap of the cluster's namespace.
    pub async fn config_map(&self, name: &str) -> Option<ConfigMap> {
        Api::<ConfigMap>::namespaced(self.cluster.client(), NS)
            .get_opt(name)
            .await
            .expect("read configmap")
    }

    /// The Secrets of the cluster's namespace, by name.
    pub async fn secrets(&self) -> BTreeMap<String, Secret> {
        Api::<Secret>::namespaced(self.cluster.client(), NS)
            .list(&ListParams::default())
            .await
            .expect("list secrets")
            .items
            .into_iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
            .collect()
    }

    /// The image of `container` in `pod`.
    pub fn image(pod: &Pod, container: &str) -> String {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == container))
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    }

    /// The node `pod` runs on.
    pub fn node(pod: &Pod) -> String {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    }

    /// No account password appears in any exec's command line.
    pub async fn assert_no_password_in_an_argv(&self) {
        let passwords: Vec<String> = self
            .secrets()
            .await
            .into_values()
            .flat_map(|s| s.data.unwrap_or_default().into_values())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|p| p.len() >= 8)
            .collect();
        assert!(!passwords.is_empty(), "the accounts have passwords");
        for exec in self.agent.execs() {
            let line = exec.argv.join(" ");
            for password in &passwords {
                assert!(
                    !line.contains(password.as_str()),
                    "a password in the argv of {} in {}",
                    exec.action(),
                    exec.pod
                );
            }
        }
    }
}
