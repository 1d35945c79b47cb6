//! `wf-kube`: the Kubernetes backend of `wf-engine`.
//!
//! - [`KubeResource`] makes any namespaced object with a status a
//!   [`wf_engine::StateResource`]: the state is read from the object and written with a merge
//!   patch on the status subresource, annotations are changed with a merge patch of
//!   `metadata.annotations`, and the resource counts as cancelled when it is gone, being
//!   deleted, or annotated `cancelled: "true"`.
//! - [`ConfigMapMementoFactory`] keeps each resource's runtimes in the ConfigMap
//!   `<name>-workflow` of its namespace (label `flowJobsDomain: <name>`, a controller owner
//!   reference to the resource), with optimistic concurrency on `resourceVersion` and a cache
//!   so a step costs no read and one write per save in the steady state.
//! - [`WorkflowMetrics`] is a hook counting runs, steps and interrupts, rendered in the
//!   Prometheus text format; [`EventRecorderHook`] is an optional, rate-limited hook
//!   publishing a Kubernetes Event on the resource at each transition.
//! - [`http::serve`] answers `/metrics` (with `wf_leader` and `wf_ready` gauges), `/healthz`
//!   and `/readyz` from the [`WorkflowMetrics`] and the [`Health`] flags, with hyper and a
//!   graceful shutdown.
//! - [`LeaderElector`] elects one leader among operator replicas on a
//!   `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! # Example
//!
//! Wiring a custom resource into a [`wf_engine::WorkflowManager`] (needs a cluster, so it is
//! only compiled here; the tests run the same wiring on `kube-fake-client`):
//!
//! ```no_run
//! use kube::CustomResource;
//! use serde::{Deserialize, Serialize};
//! use wf_engine::{CancellationToken, JsonMap, WorkflowManager};
//! use wf_kube::{ConfigMapMementoFactory, KubeResource, StateField};
//!
//! #[derive(CustomResource, Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
//! #[kube(group = "mpd.polardb.aliyun.com", version = "v1", kind = "MpdCluster",
//!        namespaced, status = "MpdClusterStatus")]
//! pub struct MpdClusterSpec {}
//!
//! #[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
//! #[serde(rename_all = "camelCase")]
//! pub struct MpdClusterStatus {
//!     #[serde(default)]
//!     cluster_status: String,
//! }
//!
//! /// The state is `status.clusterStatus`.
//! struct ClusterStatus;
//! impl StateField<MpdCluster> for ClusterStatus {
//!     fn read(object: &MpdCluster) -> String {
//!         object.status.as_ref().map(|s| s.cluster_status.clone()).unwrap_or_default()
//!     }
//!     fn patch(state: &str) -> serde_json::Value {
//!         serde_json::json!({ "status": { "clusterStatus": state } })
//!     }
//! }
//!
//! type Cluster = KubeResource<MpdCluster, ClusterStatus>;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! // Flows are read from /etc/operator/flows/MPDCluster/*.yaml.
//! let manager = WorkflowManager::<Cluster>::builder("MPDCluster")
//!     .flow_dir("/etc/operator/flows")
//!     // One cached ConfigMap store per resource, kept across reconciles.
//!     .memento_store(ConfigMapMementoFactory::new(client.clone()))
//!     .build()?;
//! let resource = Cluster::get(client, "ns", "c1").await?;
//! let mut workflow = manager.resource_workflow(&resource).await?;
//! workflow.run("CreateCluster", JsonMap::new(), &CancellationToken::new()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod controller;
pub mod events;
pub mod health;
pub mod http;
pub mod leader;
pub mod memento;
pub mod metrics;
pub mod operator;
pub mod resource;

pub use controller::{decide, shutdown_signal, Config, Decision, ReconcileError, Reconciler};
pub use events::{EventRecorderHook, RateLimiter};
pub use health::Health;
pub use http::{HttpError, HttpServer};
pub use leader::{LeaderElector, LeaderError, LeaderHandle, LeaseConfig};
pub use memento::{ConfigMapMementoFactory, ConfigMapMementoStorage, DOMAIN_LABEL};
pub use metrics::WorkflowMetrics;
pub use operator::{Operator, OperatorError};
pub use resource::{map_error, KubeObject, KubeResource, StateField, CANCELLED_ANNOTATION};
