//! A. The MPDCluster objects on the API server.
//!
//! Both writes are JSON patches that carry the copy's `resourceVersion`: the API server
//! compares it with the stored one and answers 409 when the copy is stale, so a stale copy
//! never replaces a newer object ([`PortError::Conflict`]; the service re-reads and
//! re-applies its change). [`ClusterStore::update`] patches the main resource with the
//! spec, labels, annotations and finalizers only (other metadata, such as owner
//! references, and the status are left alone); [`ClusterStore::update_status`] patches the
//! `status` subresource with the status only.

use std::sync::Arc;

use async_trait::async_trait;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use super::api_error::port_error;
use super::KubePortsConfig;
use crate::crd::MPDCluster;
use crate::ports::sim::port::CLUSTERS;
use crate::ports::{ClusterStore, PortError};

/// The production [`ClusterStore`], on `kube::Api<MPDCluster>`.
#[derive(Clone)]
pub struct KubeClusterStore {
    client: Client,
}

impl std::fmt::Debug for KubeClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClusterStore").finish_non_exhaustive()
    }
}

impl KubeClusterStore {
    /// The store on `client`. It needs no settings; `config` is taken for uniformity with
    /// the other adapters.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        let _ = config;
        KubeClusterStore { client }
    }

    fn api(&self, namespace: &str) -> Api<MPDCluster> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// The namespace, name and resourceVersion a write needs.
fn identity(cluster: &MPDCluster) -> Result<(&str, &str, &str), PortError> {
    let rejected = |message: &str| PortError::Rejected {
        port: CLUSTERS,
        message: message.to_owned(),
    };
    let meta = &cluster.metadata;
    let name = meta
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| rejected("metadata.name is required"))?;
    let namespace = meta
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| rejected("metadata.namespace is required"))?;
    let rv = meta
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty())
        .ok_or_else(|| rejected("metadata.resourceVersion must be specified for an update"))?;
    Ok((namespace, name, rv))
}

fn to_json<T: serde::Serialize>(value: &T, field: &str) -> Result<Value, PortError> {
    serde_json::to_value(value).map_err(|e| PortError::Rejected {
        port: CLUSTERS,
        message: format!("{field} does not serialize: {e}"),
    })
}

/// A JSON patch that writes `ops` only if the object is still at `rv`.
fn guarded(rv: &str, ops: Vec<Value>) -> Result<Patch<()>, PortError> {
    let mut all = vec![json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv})];
    all.extend(ops);
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(all)).map_err(|e| PortError::Rejected {
            port: CLUSTERS,
            message: format!("bad patch: {e}"),
        })?;
    Ok(Patch::Json(patch))
}

fn add(path: &str, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

fn describe(namespace: &str, name: &str, rv: &str) -> String {
    format!("mpdcluster {namespace}/{name} (resourceVersion {rv})")
}

#[async_trait]
impl ClusterStore for KubeClusterStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        self.api(namespace)
            .get(name)
            .await
            .map_err(|e| port_error(CLUSTERS, &format!("mpdcluster {namespace}/{name}"), e))
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        Api::<MPDCluster>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|e| port_error(CLUSTERS, "mpdclusters in every namespace", e))
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        let (namespace, name, rv) = identity(cluster)?;
        let meta = &cluster.metadata;
        let patch = guarded(
            rv,
            vec![
                add(
                    "/metadata/labels",
                    to_json(&meta.labels.clone().unwrap_or_default(), "metadata.labels")?,
                ),
                add(
                    "/metadata/annotations",
                    to_json(
                        &meta.annotations.clone().unwrap_or_default(),
                        "metadata.annotations",
                    )?,
                ),
                add(
                    "/metadata/finalizers",
                    to_json(
                        &meta.finalizers.clone().unwrap_or_default(),
                        "metadata.finalizers",
                    )?,
                ),
                add("/spec", to_json(&cluster.spec, "spec")?),
            ],
        )?;
        tracing::debug!(cluster = %format!("{namespace}/{name}"), rv, "writing spec and metadata");
        self.api(namespace)
            .patch(name, &PatchParams::default(), &patch)
            .await
            .map_err(|e| port_error(CLUSTERS, &describe(namespace, name, rv), e))
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        let (namespace, name, rv) = identity(cluster)?;
        let status = match &cluster.status {
            Some(status) => to_json(status, "status")?,
            None => json!({}),
        };
        let patch = guarded(rv, vec![add("/status", status)])?;
        tracing::debug!(cluster = %format!("{namespace}/{name}"), rv, "writing status");
        self.api(namespace)
            .patch_status(name, &PatchParams::default(), &patch)
            .await
            .map_err(|e| port_error(CLUSTERS, &describe(namespace, name, rv), e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::{MPDClusterStatus, FINALIZER};
    use crate::ports::kube::fake_api::{cluster, fake_api, json, Calls};

    async fn store_with(c: MPDCluster) -> (KubeClusterStore, Arc<Calls>) {
        let (client, calls) = fake_api(vec![json(&c)]).await;
        let store = KubeClusterStore::new(client, Arc::default());
        (store, calls)
    }

    fn running() -> MPDClusterStatus {
        MPDClusterStatus {
            cluster_status: "Running".into(),
            leader_instance_id: "1002".into(),
            ..MPDClusterStatus::default()
        }
    }

    #[tokio::test]
    async fn get_of_a_missing_cluster_is_not_found_naming_it() {
        let (client, _) = fake_api(vec![]).await;
        let store = KubeClusterStore::new(client, Arc::default());
        let err = store.get("default", "c9").await.unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("default/c9"), "{err}");
    }

    #[tokio::test]
    async fn list_returns_the_clusters_of_every_namespace() {
        let (client, _) = fake_api(vec![
            json(&cluster("default", "c1")),
            json(&cluster("team-b", "c2")),
        ])
        .await;
        let store = KubeClusterStore::new(client, Arc::default());
        let mut names: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.metadata.namespace.unwrap(),
                    c.metadata.name.unwrap()
                )
            })
            .collect();
        names.sort();
        assert_eq!(names, ["default/c1", "team-b/c2"]);
    }

    #[tokio::test]
    async fn update_writes_spec_and_metadata_by_patch_and_leaves_the_status_alone() {
        let mut c = cluster("default", "c1");
        c.status = Some(running());
        let (store, calls) = store_with(c).await;
        let mut copy = store.get("default", "c1").await.unwrap();
        copy.spec.follower_num = 2;
        copy.metadata.annotations = Some(BTreeMap::from([("migrate".into(), "1|n2".into())]));
        copy.metadata.finalizers = Some(vec![FINALIZER.into()]);
        copy.status = Some(MPDClusterStatus {
            cluster_status: "Creating".into(),
            ..MPDClusterStatus::default()
        });
        let out = store.update(&copy).await.unwrap();
        assert_eq!(out.spec.follower_num, 2);
        assert_eq!(out.metadata.annotations, copy.metadata.annotations);
        assert_eq!(out.metadata.finalizers, copy.metadata.finalizers);
        assert_ne!(
            out.metadata.resource_version,
            copy.metadata.resource_version
        );
        let stored = store.get("default", "c1").await.unwrap();
        assert_eq!(stored.status, Some(running()), "status untouched");
        assert_eq!(stored.spec.follower_num, 2);
        assert_eq!(Calls::count(&calls.patch), 1);
        assert_eq!(Calls::count(&calls.replace), 0, "never a full update");
        assert_eq!(Calls::count(&calls.patch_status), 0);
    }

    #[tokio::test]
    async fn update_status_goes_through_the_status_subresource_and_writes_only_the_status() {
        let (store, calls) = store_with(cluster("default", "c1")).await;
        let mut copy = store.get("default", "c1").await.unwrap();
        copy.status = Some(running());
        copy.spec.follower_num = 5;
        copy.metadata.annotations = Some(BTreeMap::from([("x".into(), "y".into())]));
        let out = store.update_status(&copy).await.unwrap();
        assert_eq!(out.status, Some(running()));
        let stored = store.get("default", "c1").await.unwrap();
        assert_eq!(stored.status, Some(running()));
        assert_eq!(stored.spec.follower_num, 0, "spec untouched");
        assert_eq!(stored.metadata.annotations, None, "metadata untouched");
        assert_eq!(Calls::count(&calls.patch_status), 1);
        assert_eq!(Calls::count(&calls.patch), 0);
        assert_eq!(Calls::count(&calls.replace_status), 0);
    }

    #[tokio::test]
    async fn status_entries_removed_from_the_copy_are_removed_from_the_object() {
        let mut c = cluster("default", "c1");
        let mut status = running();
        status
            .db_instance_status
            .insert("1002".into(), Default::default());
        status
            .db_instance_status
            .insert("1004".into(), Default::default());
        c.status = Some(status);
        let (store, _) = store_with(c).await;
        let mut copy = store.get("default", "c1").await.unwrap();
        if let Some(s) = copy.status.as_mut() {
            s.db_instance_status.remove("1004");
        }
        store.update_status(&copy).await.unwrap();
        let stored = store.get("default", "c1").await.unwrap().status.unwrap();
        let ids: Vec<_> = stored.db_instance_status.keys().cloned().collect();
        assert_eq!(ids, ["1002"], "the status is replaced, not merged");
    }

    #[tokio::test]
    async fn a_stale_copy_is_a_conflict_and_changes_nothing() {
        let (store, _) = store_with(cluster("default", "c1")).await;
        let stale = store.get("default", "c1").await.unwrap();
        let mut fresh = stale.clone();
        fresh.spec.follower_num = 1;
        let newer = store.update(&fresh).await.unwrap();

        let mut spec_write = stale.clone();
        spec_write.spec.follower_num = 7;
        assert!(store.update(&spec_write).await.unwrap_err().is_conflict());
        let mut status_write = stale.clone();
        status_write.status = Some(running());
        let err = store.update_status(&status_write).await.unwrap_err();
        assert!(err.is_conflict());
        assert!(err.to_string().contains("default/c1"), "{err}");

        let stored = store.get("default", "c1").await.unwrap();
        assert_eq!(stored.spec.follower_num, 1);
        assert_eq!(stored.status, None);
        assert_eq!(
            stored.metadata.resource_version,
            newer.metadata.resource_version
        );
    }

    #[tokio::test]
    async fn an_injected_409_is_surfaced_as_a_conflict() {
        let (store, calls) = store_with(cluster("default", "c1")).await;
        calls.inject_conflicts("c1", 1, 2);
        let copy = store.get("default", "c1").await.unwrap();
        assert!(store.update(&copy).await.unwrap_err().is_conflict());
        assert!(store.update_status(&copy).await.unwrap_err().is_conflict());
        assert_eq!(Calls::count(&calls.injected), 2);
        // Not stale: the same copy goes through once the API server stops refusing it.
        store.update(&copy).await.unwrap();
    }

    #[tokio::test]
    async fn a_copy_without_resource_version_or_name_is_rejected() {
        let (store, calls) = store_with(cluster("default", "c1")).await;
        let unversioned = cluster("default", "c1");
        for err in [
            store.update(&unversioned).await.unwrap_err(),
            store.update_status(&unversioned).await.unwrap_err(),
        ] {
            assert!(matches!(err, PortError::Rejected { .. }), "{err}");
            assert!(err.to_string().contains("resourceVersion"), "{err}");
        }
        let mut nameless = cluster("default", "");
        nameless.metadata.resource_version = Some("1".into());
        assert!(matches!(
            store.update(&nameless).await.unwrap_err(),
            PortError::Rejected { .. }
        ));
        assert_eq!(calls.writes(), 0, "nothing was sent");
    }

    #[tokio::test]
    async fn update_of_a_missing_cluster_is_not_found() {
        let (client, _) = fake_api(vec![]).await;
        let store = KubeClusterStore::new(client, Arc::default());
        let mut c = cluster("default", "c1");
        c.metadata.resource_version = Some("5".into());
        assert!(store.update(&c).await.unwrap_err().is_not_found());
        assert!(store.update_status(&c).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn owner_references_set_by_others_survive_an_update() {
        let mut c = cluster("default", "c1");
        c.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "holder".into(),
                uid: "u-1".into(),
                ..Default::default()
            },
        ]);
        let (store, _) = store_with(c).await;
        let mut copy = store.get("default", "c1").await.unwrap();
        copy.metadata.owner_references = None;
        copy.spec.follower_num = 1;
        store.update(&copy).await.unwrap();
        let stored = store.get("default", "c1").await.unwrap();
        assert_eq!(stored.metadata.owner_references.map(|o| o.len()), Some(1));
    }
}
