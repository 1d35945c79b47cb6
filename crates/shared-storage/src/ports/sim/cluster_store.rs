//! A. The MPDCluster objects, with Kubernetes-like optimistic concurrency.

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::world::{Key, World};
use super::{port, Simulation};
use crate::crd::MPDCluster;
use crate::ports::{ClusterStore, PortError};

/// The simulated [`ClusterStore`].
pub(super) struct SimClusterStore(pub(super) Simulation);

fn key_of(cluster: &MPDCluster) -> Result<Key, PortError> {
    match &cluster.metadata.name {
        Some(name) if !name.is_empty() => Ok((
            cluster.metadata.namespace.clone().unwrap_or_default(),
            name.clone(),
        )),
        _ => Err(PortError::Rejected {
            port: port::CLUSTERS,
            message: "metadata.name is required".to_string(),
        }),
    }
}

fn summary(cluster: &MPDCluster) -> String {
    format!(
        "{}/{} rv={}",
        cluster.metadata.namespace.as_deref().unwrap_or_default(),
        cluster.metadata.name.as_deref().unwrap_or_default(),
        cluster.metadata.resource_version.as_deref().unwrap_or("-"),
    )
}

fn not_found(key: &Key) -> PortError {
    PortError::NotFound {
        port: port::CLUSTERS,
        what: format!("mpdcluster {}/{}", key.0, key.1),
    }
}

impl World {
    fn bump_resource_version(&mut self, key: &Key) {
        let rv = self.next_resource_version;
        self.next_resource_version += 1;
        if let Some(stored) = self.clusters.get_mut(key) {
            stored.metadata.resource_version = Some(rv.to_string());
        }
    }

    /// The stored object, after checking that `cluster` is a fresh copy of it.
    fn check_fresh(&self, key: &Key, cluster: &MPDCluster) -> Result<(), PortError> {
        let stored = self.clusters.get(key).ok_or_else(|| not_found(key))?;
        match &cluster.metadata.resource_version {
            None => Err(PortError::Rejected {
                port: port::CLUSTERS,
                message: "metadata.resourceVersion must be specified for an update".to_string(),
            }),
            Some(rv) if Some(rv) != stored.metadata.resource_version.as_ref() => {
                Err(PortError::Conflict {
                    port: port::CLUSTERS,
                    what: format!(
                        "mpdcluster {}/{} (resourceVersion {rv} is stale)",
                        key.0, key.1
                    ),
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Removes the object when it is being deleted and has no finalizer left.
    fn finish_deletion(&mut self, key: &Key) {
        let gone = self.clusters.get(key).is_some_and(|c| {
            c.metadata.deletion_timestamp.is_some()
                && c.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
        });
        if gone {
            self.clusters.remove(key);
        }
    }

    fn update_cluster(&mut self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        let key = key_of(cluster)?;
        self.check_fresh(&key, cluster)?;
        let stored = self.clusters.get_mut(&key).ok_or_else(|| not_found(&key))?;
        let spec_changed = stored.spec != cluster.spec;
        stored.metadata.labels = cluster.metadata.labels.clone();
        stored.metadata.annotations = cluster.metadata.annotations.clone();
        stored.metadata.finalizers = cluster.metadata.finalizers.clone();
        stored.spec = cluster.spec.clone();
        if spec_changed {
            stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
        }
        self.bump_resource_version(&key);
        let result = self
            .clusters
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(&key))?;
        self.finish_deletion(&key);
        Ok(result)
    }

    fn update_cluster_status(&mut self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        let key = key_of(cluster)?;
        self.check_fresh(&key, cluster)?;
        let stored = self.clusters.get_mut(&key).ok_or_else(|| not_found(&key))?;
        stored.status = cluster.status.clone();
        self.bump_resource_version(&key);
        self.clusters
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(&key))
    }
}

#[async_trait]
impl ClusterStore for SimClusterStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        let key: Key = (namespace.to_string(), name.to_string());
        self.0
            .call(port::CLUSTERS, "get", format!("{namespace}/{name}"), |w| {
                w.clusters.get(&key).cloned().ok_or_else(|| not_found(&key))
            })
            .await
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        self.0
            .call(port::CLUSTERS, "list", String::new(), |w| {
                Ok(w.clusters.values().cloned().collect())
            })
            .await
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.0
            .call(port::CLUSTERS, "update", summary(cluster), |w| {
                w.update_cluster(cluster)
            })
            .await
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.0
            .call(port::CLUSTERS, "update_status", summary(cluster), |w| {
                w.update_cluster_status(cluster)
            })
            .await
    }
}

impl Simulation {
    /// Stores `cluster` as is (replacing any object of the same namespace/name), with a new
    /// resourceVersion, generation 1 when unset and a uid when unset; returns the stored copy.
    /// A missing namespace is stored as `""`.
    pub fn insert_cluster(&self, mut cluster: MPDCluster) -> MPDCluster {
        let mut world = self.lock();
        let key = (
            cluster.metadata.namespace.clone().unwrap_or_default(),
            cluster.metadata.name.clone().unwrap_or_default(),
        );
        if cluster.metadata.generation.is_none() {
            cluster.metadata.generation = Some(1);
        }
        if cluster.metadata.uid.is_none() {
            cluster.metadata.uid = Some(format!("sim-uid-{}", world.next_uid));
            world.next_uid += 1;
        }
        cluster.metadata.resource_version = Some(world.next_resource_version.to_string());
        world.next_resource_version += 1;
        world.clusters.insert(key, cluster.clone());
        cluster
    }

    /// The stored object `namespace/name`.
    pub fn cluster(&self, namespace: &str, name: &str) -> Option<MPDCluster> {
        self.lock()
            .clusters
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every stored object, by namespace and name.
    pub fn clusters(&self) -> Vec<MPDCluster> {
        self.lock().clusters.values().cloned().collect()
    }

    /// Edits the stored object the way a user would (`kubectl edit`): a new
    /// resourceVersion, and a new generation when the spec changed. Returns the result, or
    /// `None` when the object does not exist.
    pub fn edit_cluster(
        &self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut MPDCluster),
    ) -> Option<MPDCluster> {
        let mut world = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let stored = world.clusters.get_mut(&key)?;
        let old_spec = stored.spec.clone();
        edit(stored);
        if stored.spec != old_spec {
            stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
        }
        world.bump_resource_version(&key);
        let result = world.clusters.get(&key).cloned();
        world.finish_deletion(&key);
        result
    }

    /// Deletes the object the Kubernetes way: with finalizers it only gets a
    /// `deletionTimestamp` (and goes once an update removes the last finalizer), without
    /// it goes at once. Returns whether the object existed.
    pub fn delete_cluster(&self, namespace: &str, name: &str) -> bool {
        let mut world = self.lock();
        let now = world.now();
        let key = (namespace.to_string(), name.to_string());
        let Some(stored) = world.clusters.get_mut(&key) else {
            return false;
        };
        if stored.metadata.deletion_timestamp.is_none() {
            stored.metadata.deletion_timestamp =
                k8s_openapi::jiff::Timestamp::from_second(now.timestamp())
                    .ok()
                    .map(Time);
        }
        world.bump_resource_version(&key);
        world.finish_deletion(&key);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::MPDClusterStatus;
    use crate::ports::sim::testing::{cluster, sim};

    #[tokio::test]
    async fn get_of_a_missing_object_is_not_found() {
        let sim = sim(1);
        let err = sim.ports().clusters.get("default", "c1").await.unwrap_err();
        assert!(err.is_not_found());
    }

    #[tokio::test]
    async fn every_write_increments_the_resource_version() {
        let sim = sim(1);
        let stored = sim.insert_cluster(cluster("default", "c1"));
        let store = sim.ports().clusters;
        let rv0: u64 = stored
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        let c = store.update(&stored).await.unwrap();
        let rv1: u64 = c
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        let c = store.update_status(&c).await.unwrap();
        let rv2: u64 = c
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv0 < rv1 && rv1 < rv2);
        assert_eq!(
            store
                .get("default", "c1")
                .await
                .unwrap()
                .metadata
                .resource_version,
            c.metadata.resource_version
        );
    }

    #[tokio::test]
    async fn stale_resource_version_is_a_conflict() {
        let sim = sim(1);
        let stale = sim.insert_cluster(cluster("default", "c1"));
        let store = sim.ports().clusters;
        store.update(&stale).await.unwrap();
        assert!(store.update(&stale).await.unwrap_err().is_conflict());
        assert!(store.update_status(&stale).await.unwrap_err().is_conflict());
    }

    #[tokio::test]
    async fn update_without_resource_version_is_rejected() {
        let sim = sim(1);
        sim.insert_cluster(cluster("default", "c1"));
        let err = sim
            .ports()
            .clusters
            .update(&cluster("default", "c1"))
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
    }

    #[tokio::test]
    async fn update_of_a_missing_object_is_not_found() {
        let sim = sim(1);
        let mut c = cluster("default", "c1");
        c.metadata.resource_version = Some("1".into());
        let store = sim.ports().clusters;
        assert!(store.update(&c).await.unwrap_err().is_not_found());
        assert!(store.update_status(&c).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn update_writes_metadata_and_spec_but_not_status() {
        let sim = sim(1);
        let mut c = sim.insert_cluster(cluster("default", "c1"));
        c.metadata.annotations = Some(BTreeMap::from([(
            "migrate".to_string(),
            "1|node-2".to_string(),
        )]));
        c.metadata.finalizers = Some(vec![crate::crd::FINALIZER.to_string()]);
        c.metadata.labels = Some(BTreeMap::from([("a".to_string(), "b".to_string())]));
        c.spec.follower_num = 2;
        c.status = Some(MPDClusterStatus {
            cluster_status: "Running".into(),
            ..Default::default()
        });
        let out = sim.ports().clusters.update(&c).await.unwrap();
        assert_eq!(out.metadata.annotations, c.metadata.annotations);
        assert_eq!(out.metadata.finalizers, c.metadata.finalizers);
        assert_eq!(out.metadata.labels, c.metadata.labels);
        assert_eq!(out.spec.follower_num, 2);
        assert_eq!(out.status, None);
    }

    #[tokio::test]
    async fn update_status_writes_only_the_status() {
        let sim = sim(1);
        let mut c = sim.insert_cluster(cluster("default", "c1"));
        c.spec.follower_num = 3;
        c.metadata.annotations = Some(BTreeMap::from([("x".to_string(), "y".to_string())]));
        c.status = Some(MPDClusterStatus {
            cluster_status: "Creating".into(),
            ..Default::default()
        });
        let out = sim.ports().clusters.update_status(&c).await.unwrap();
        assert_eq!(out.spec.follower_num, 0);
        assert_eq!(out.metadata.annotations, None);
        assert_eq!(out.status.unwrap().cluster_status, "Creating");
        assert_eq!(out.metadata.generation, Some(1));
    }

    #[tokio::test]
    async fn generation_is_bumped_only_when_the_spec_changes() {
        let sim = sim(1);
        let c = sim.insert_cluster(cluster("default", "c1"));
        assert_eq!(c.metadata.generation, Some(1));
        let store = sim.ports().clusters;
        let mut c = store.update(&c).await.unwrap();
        assert_eq!(c.metadata.generation, Some(1));
        c.spec.follower_num = 1;
        let c = store.update(&c).await.unwrap();
        assert_eq!(c.metadata.generation, Some(2));
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = sim(1);
        let mut c = sim.insert_cluster(cluster("default", "c1"));
        c.spec.follower_num = 5;
        sim.set_fail_rate(1.0);
        assert!(sim.ports().clusters.update(&c).await.is_err());
        let stored = sim.cluster("default", "c1").unwrap();
        assert_eq!(stored.spec.follower_num, 0);
        assert_eq!(
            stored.metadata.resource_version,
            c.metadata.resource_version
        );
    }

    #[tokio::test]
    async fn deletion_waits_for_the_last_finalizer() {
        let sim = sim(1);
        let mut c = cluster("default", "c1");
        c.metadata.finalizers = Some(vec![crate::crd::FINALIZER.to_string()]);
        sim.insert_cluster(c);
        assert!(sim.delete_cluster("default", "c1"));
        let mut c = sim.cluster("default", "c1").unwrap();
        assert!(c.metadata.deletion_timestamp.is_some());
        c.metadata.finalizers = Some(vec![]);
        sim.ports().clusters.update(&c).await.unwrap();
        assert!(sim.cluster("default", "c1").is_none());
        assert!(!sim.delete_cluster("default", "c1"));
    }

    #[tokio::test]
    async fn edit_cluster_makes_held_copies_stale() {
        let sim = sim(1);
        let held = sim.insert_cluster(cluster("default", "c1"));
        let edited = sim
            .edit_cluster("default", "c1", |c| c.spec.follower_num = 2)
            .unwrap();
        assert_eq!(edited.metadata.generation, Some(2));
        assert!(sim
            .ports()
            .clusters
            .update(&held)
            .await
            .unwrap_err()
            .is_conflict());
    }
}
