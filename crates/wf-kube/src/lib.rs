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
//!
//! # Example
//!
//! ```ignore
//! use wf_engine::WorkflowManager;
//! use wf_kube::{ConfigMapMementoFactory, KubeResource, StateField};
//!
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
//! # async fn run(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let manager = WorkflowManager::<KubeResource<MpdCluster, ClusterStatus>>::builder("MPDCluster")
//!     .flow_dir("/etc/operator/flows")
//!     .memento_store(ConfigMapMementoFactory::new(client.clone()))
//!     .build()?;
//! let resource = KubeResource::<MpdCluster, ClusterStatus>::get(client, "ns", "c1").await?;
//! let workflow = manager.resource_workflow(&resource).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod memento;
pub mod resource;

pub use memento::{ConfigMapMementoFactory, ConfigMapMementoStorage, DOMAIN_LABEL};
pub use resource::{map_error, KubeObject, KubeResource, StateField, CANCELLED_ANNOTATION};
