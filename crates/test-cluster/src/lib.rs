//! Test doubles of a cluster, for tests of the operator's production adapters without a
//! Kubernetes API server:
//!
//! - [`FakeCluster`] ([`cluster`]): an API server on `kube-fake-client` ([`api_server`]:
//!   finalizers, graceful pod deletion, open watches), nodes with addresses and conditions
//!   ([`node`]), and the test [`kubelet`] that schedules pods, reports them Running and
//!   Ready, runs Deployments and collects garbage;
//! - [`sms`] and [`cm`]: the storage-management service and the cluster manager as HTTP
//!   servers on 127.0.0.1, speaking their documented paths and envelopes, with injectable
//!   slow and failing replies;
//! - [`audit`]: a client that records the (verb, group, resource) of every request, to
//!   check an operator's RBAC against what it uses.
//!
//! The crate knows no operator: it is generic over resource types (register a custom
//! resource with [`FakeClusterBuilder::with_resource`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Node;
//! use kube::api::{Api, ListParams};
//! use test_cluster::{FakeCluster, FakeNode};
//!
//! let cluster = FakeCluster::builder()
//!     .node(FakeNode::new("a").internal_ip("10.1.0.1").client_ip("192.168.1.1"))
//!     .node(FakeNode::new("b").internal_ip("10.1.0.2").storage_unavailable())
//!     .build()
//!     .await?;
//! let nodes = Api::<Node>::all(cluster.client()).list(&ListParams::default()).await?;
//! assert_eq!(nodes.items.len(), 2);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod api_server;
pub mod audit;
pub mod cluster;
pub mod cm;
pub mod deployments;
pub mod emulator;
mod error;
mod garbage;
pub mod kubelet;
pub mod node;
mod pod_status;
mod scheduler;
mod selector;
pub mod sms;

pub use api_server::{ApiServer, Collection};
pub use cluster::{FakeCluster, FakeClusterBuilder};
pub use error::ClusterError;
pub use kubelet::Kubelet;
pub use node::FakeNode;
pub use selector::{matches_node_term, matches_selector};
