//! The operator on Kubernetes: the MPDCluster machine of [`crate::operator`] on wf-kube's
//! controller.
//!
//! [`ClusterOperator::build`] assembles, over a `kube::Client` and the [`Ports`] (the
//! production adapters of [`crate::ports::kube::connect`], or test doubles):
//!
//! - the engine resource [`MpdClusterResource`] over port A — the same state semantics as
//!   local mode — built from each watched object;
//! - runs kept in the ConfigMap `<name>-workflow` (owned by the cluster), Kubernetes Events
//!   per transition, [`WorkflowMetrics`];
//! - a [`Watch`] of the MPDClusters [`ClusterFilter`] admits, and of the instance pods
//!   ([`INSTANCE_POD_SELECTOR`]) they own, so a deleted instance pod reconciles its cluster;
//! - the [`FinalizerGuard`]: finalizer first, the deletion path instead of the state
//!   machine for a cluster being deleted.
//!
//! [`ClusterOperator::into_operator`] gives the [`wf_kube::Operator`] that runs it with
//! leader election, `/metrics`, `/healthz`, `/readyz` and a graceful stop.

pub mod filter;
pub mod finalizer;
pub mod finalizing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::Api;
use wf_engine::{ResourceLocks, WorkflowConfig};
use wf_kube::{
    ConfigMapMementoFactory, EventRecorderHook, Operator, Reconciler, Watch, WorkflowMetrics,
};

pub use filter::{ClusterFilter, DEFAULT_OPERATOR_NAME};
pub use finalizing::FinalizerGuard;

use crate::crd::MPDCluster;
use crate::operator::OperatorBuilder;
use crate::ports::Ports;
use crate::resource::MpdClusterResource;
use crate::service::{ServiceConfig, SharedStorageService};

/// The label selector of the instance pods watched for their owner (external-apis §5:
/// every instance pod carries `apsara.metric.db_type=polardb`). Pods are streamed to the
/// operator only when they match, so unrelated pods cost nothing.
pub const INSTANCE_POD_SELECTOR: &str = "apsara.metric.db_type=polardb";

/// The controller name of the Events the operator publishes.
pub const CONTROLLER_NAME: &str = "shared-storage-operator";

/// How the operator on Kubernetes runs.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// Which MPDClusters are handled.
    pub filter: ClusterFilter,
    /// Watch only this namespace (`None`: every namespace).
    pub watch_namespace: Option<String>,
    /// How many clusters reconcile at once (`--max-concurrent-reconciles`). Default 26.
    pub concurrency: u16,
    /// When a failed reconcile is retried. Default 10 s.
    pub error_requeue: Duration,
    /// A directory holding `shared/*.yaml` to read the flows from (`None`: the flows
    /// embedded in the binary).
    pub flow_dir: Option<PathBuf>,
    /// Service tunables (poll interval of waits, conflict retries).
    pub service: ServiceConfig,
    /// Engine configuration.
    pub workflow: WorkflowConfig,
    /// This replica's name in the Events it publishes (usually the pod name).
    pub instance: Option<String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            filter: ClusterFilter::default(),
            watch_namespace: None,
            concurrency: 26,
            error_requeue: Duration::from_secs(10),
            flow_dir: None,
            service: ServiceConfig::default(),
            workflow: WorkflowConfig::default(),
            instance: None,
        }
    }
}

/// The assembled operator on Kubernetes; see the [module](self) docs.
pub struct ClusterOperator {
    /// The reconciler (filter, guard, state machine).
    pub reconciler: Reconciler<MPDCluster, MpdClusterResource>,
    /// The MPDClusters watched.
    pub api: Api<MPDCluster>,
    /// The metrics (a hook of the manager; also counts reconciles).
    pub metrics: Arc<WorkflowMetrics>,
    /// The service the steps and the deletion path share.
    pub service: Arc<SharedStorageService>,
    /// The state machine's per-resource locks: whatever else writes a cluster (the status
    /// monitor) takes them too, so it never interleaves with a flow's step.
    pub locks: ResourceLocks,
}

impl std::fmt::Debug for ClusterOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterOperator").finish_non_exhaustive()
    }
}

impl ClusterOperator {
    /// Assembles the operator over `client` and `ports`; fails naming the flow, class or
    /// directory when the flows do not load or do not match the registered steps.
    pub fn build(
        client: kube::Client,
        ports: Ports,
        settings: ClusterSettings,
    ) -> Result<Self, wf_engine::Error> {
        let metrics = Arc::new(WorkflowMetrics::new());
        let reporter = Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: settings.instance.clone(),
        };
        let clusters = ports.clusters.clone();
        let builder = match &settings.flow_dir {
            Some(dir) => OperatorBuilder::new(ports, dir),
            None => OperatorBuilder::embedded(ports),
        };
        let op = builder
            .service_config(settings.service.clone())
            .workflow_config(settings.workflow.clone())
            .memento_store(ConfigMapMementoFactory::new(client.clone()))
            .hook(metrics.clone())
            .hook(Arc::new(EventRecorderHook::for_resource::<MPDCluster>(
                client.clone(),
                reporter,
            )))
            .build()?;
        let (api, pods) = match &settings.watch_namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::<Pod>::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::<Pod>::all(client.clone())),
        };
        let filter = settings.filter.clone();
        let watch = Watch::default()
            .filter(move |cr: &MPDCluster| filter.admits(cr))
            .owns(
                pods,
                watcher::Config::default().labels(INSTANCE_POD_SELECTOR),
            );
        let service = op.service.clone();
        let locks = op.machine.locks().clone();
        let reconciler =
            Reconciler::with_resource(op.machine, op.manager, client.clone(), move |_, cr| {
                MpdClusterResource::new(clusters.clone(), cr)
            })
            .with_watch(watch)
            .with_guard(FinalizerGuard::new(client, service.clone()))
            .with_config(
                wf_kube::Config::default()
                    .concurrency(settings.concurrency)
                    .error_requeue(settings.error_requeue),
            )
            .with_metrics(metrics.clone());
        Ok(ClusterOperator {
            reconciler,
            api,
            metrics,
            service,
            locks,
        })
    }

    /// The [`wf_kube::Operator`] running this reconciler, with its metrics.
    pub fn into_operator(self) -> Operator<MPDCluster, MpdClusterResource> {
        Operator::new(self.reconciler, self.api).with_metrics(self.metrics)
    }
}
