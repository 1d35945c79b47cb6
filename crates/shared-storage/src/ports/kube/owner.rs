//! The controller owner reference that ties a cluster's child objects (Secrets, parameter
//! ConfigMaps) to their MPDCluster, so that Kubernetes deletes them with it.
//!
//! The uid is read with one GET each time a child is created, not cached: a cluster
//! deleted and created again under the same name has a new uid, and a child pointing at the
//! old one would be garbage-collected at once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client, Resource};

use super::api_error::port_error;
use crate::crd::MPDCluster;
use crate::ports::{ClusterRef, PortError};

/// The controller owner reference of `cluster`, read from the API server.
pub(crate) async fn cluster_owner(
    client: &Client,
    port: &'static str,
    cluster: &ClusterRef,
) -> Result<OwnerReference, PortError> {
    let api: Api<MPDCluster> = Api::namespaced(client.clone(), &cluster.namespace);
    let what = format!("mpdcluster {cluster}");
    let cr = api
        .get(&cluster.name)
        .await
        .map_err(|e| port_error(port, &what, e))?;
    cr.controller_owner_ref(&()).ok_or(PortError::Rejected {
        port,
        message: format!("{what} has no uid to own its objects by"),
    })
}
