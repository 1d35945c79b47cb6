//! Deletion: what a cluster holds outside its own objects, released before the finalizer
//! lets the object go. Pods, ConfigMaps and Secrets carry owner references and are garbage
//! collected with it; the shared volume (SMS) and the cluster manager are not.

use super::{Outcome, SharedStorageService};
use crate::crd::MPDCluster;
use crate::ports::{ClusterRef, Progress, PvcRef};

/// The volume a cluster uses, if its spec names one: `shareStore.sharePvcName` in
/// `sharePvcNamespace` (the cluster's namespace when unset, weakness 15).
pub fn storage_of(cr: &MPDCluster) -> Option<PvcRef> {
    let share = cr.spec.share_store.as_ref()?;
    if share.share_pvc_name.is_empty() {
        return None;
    }
    let namespace = share
        .share_pvc_namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| cr.metadata.namespace.clone())
        .unwrap_or_default();
    Some(PvcRef {
        namespace,
        name: share.share_pvc_name.clone(),
    })
}

impl SharedStorageService {
    /// Ensures a cluster being deleted holds nothing outside Kubernetes' garbage
    /// collection: its volume is released from it through the storage manager, then its
    /// cluster manager is removed. `Pending` while either is still in progress (ask again
    /// later); `Done` once both are, and at once for a cluster that is gone, never got a
    /// volume or a cluster manager, or was released already. Idempotent: each port call
    /// checks the world first (a volume owned by someone else, a CM that is gone, count as
    /// done).
    ///
    /// The caller removes the finalizer after `Done`; this never writes the cluster.
    pub async fn release_for_deletion(&self, cluster: &ClusterRef) -> Outcome {
        let cr = match self
            .ports
            .clusters
            .get(&cluster.namespace, &cluster.name)
            .await
        {
            Ok(cr) => cr,
            Err(e) if e.is_not_found() => return Ok(Progress::Done(())),
            Err(e) => return Err(e.into()),
        };
        if let Some(pvc) = storage_of(&cr) {
            if let Progress::Pending { reason } =
                self.ports.storage.release(&pvc, &cluster.name).await?
            {
                return Ok(Progress::Pending { reason });
            }
        }
        Ok(self.ports.cluster_manager.remove(cluster).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crd::{MPDClusterSpec, ShareStore};
    use crate::ports::sim::{SimConfig, Simulation};
    use crate::ports::{MockClusterManager, MockStorageManager, PortError};
    use crate::service::ServiceConfig;

    fn cluster_with(store: Option<ShareStore>) -> MPDCluster {
        let mut cr = MPDCluster::new(
            "c1",
            MPDClusterSpec {
                operator_name: "polar-mpd".into(),
                db_cluster_type: "share".into(),
                share_store: store,
                ..MPDClusterSpec::default()
            },
        );
        cr.metadata.namespace = Some("ns".into());
        cr
    }

    fn store(pvc: &str, namespace: Option<&str>) -> ShareStore {
        ShareStore {
            share_pvc_name: pvc.into(),
            share_pvc_namespace: namespace.map(str::to_owned),
            ..ShareStore::default()
        }
    }

    fn service(
        cr: Option<MPDCluster>,
        storage: MockStorageManager,
        cm: MockClusterManager,
    ) -> SharedStorageService {
        let sim = Simulation::new(SimConfig::default());
        if let Some(cr) = cr {
            sim.insert_cluster(cr);
        }
        let ports = crate::ports::Ports {
            storage: Arc::new(storage),
            cluster_manager: Arc::new(cm),
            ..sim.ports()
        };
        SharedStorageService::new(ports, ServiceConfig::default())
    }

    fn c1() -> ClusterRef {
        ClusterRef::new("ns", "c1")
    }

    #[test]
    fn the_volume_is_looked_up_in_its_own_namespace_or_the_clusters() {
        let own = storage_of(&cluster_with(Some(store("pvc-1", None)))).unwrap();
        assert_eq!((own.namespace.as_str(), own.name.as_str()), ("ns", "pvc-1"));
        let other = storage_of(&cluster_with(Some(store("pvc-1", Some("san"))))).unwrap();
        assert_eq!(other.namespace, "san");
        assert_eq!(storage_of(&cluster_with(Some(store("", None)))), None);
        assert_eq!(storage_of(&cluster_with(None)), None);
    }

    #[tokio::test]
    async fn while_the_volume_is_being_released_the_cluster_manager_is_left_alone() {
        let mut storage = MockStorageManager::new();
        storage
            .expect_release()
            .withf(|pvc, owner| pvc.name == "pvc-1" && pvc.namespace == "ns" && owner == "c1")
            .times(1)
            .returning(|_, _| Ok(Progress::pending("release job running")));
        let mut cm = MockClusterManager::new();
        cm.expect_remove().never();
        let service = service(Some(cluster_with(Some(store("pvc-1", None)))), storage, cm);

        let outcome = service.release_for_deletion(&c1()).await.unwrap();

        assert_eq!(outcome, Progress::pending("release job running"));
    }

    #[tokio::test]
    async fn once_the_volume_is_free_the_cluster_manager_is_removed() {
        let mut storage = MockStorageManager::new();
        storage
            .expect_release()
            .times(1)
            .returning(|_, _| Ok(Progress::Done(())));
        let mut cm = MockClusterManager::new();
        cm.expect_remove()
            .withf(|cluster| *cluster == ClusterRef::new("ns", "c1"))
            .times(1)
            .returning(|_| Ok(Progress::pending("cm pods terminating")));
        let service = service(Some(cluster_with(Some(store("pvc-1", None)))), storage, cm);

        let outcome = service.release_for_deletion(&c1()).await.unwrap();

        assert_eq!(outcome, Progress::pending("cm pods terminating"));
    }

    #[tokio::test]
    async fn a_cluster_without_a_volume_only_removes_its_cluster_manager() {
        let mut storage = MockStorageManager::new();
        storage.expect_release().never();
        let mut cm = MockClusterManager::new();
        cm.expect_remove()
            .times(1)
            .returning(|_| Ok(Progress::Done(())));
        let service = service(Some(cluster_with(None)), storage, cm);

        assert!(service.release_for_deletion(&c1()).await.unwrap().is_done());
    }

    #[tokio::test]
    async fn a_cluster_that_is_gone_is_done_without_calling_anything() {
        let mut storage = MockStorageManager::new();
        storage.expect_release().never();
        let mut cm = MockClusterManager::new();
        cm.expect_remove().never();
        let service = service(None, storage, cm);

        assert!(service.release_for_deletion(&c1()).await.unwrap().is_done());
    }

    #[tokio::test]
    async fn a_storage_manager_failure_is_returned_and_the_cm_is_kept() {
        let mut storage = MockStorageManager::new();
        storage.expect_release().times(1).returning(|_, _| {
            Err(PortError::Unavailable {
                port: "storage",
                message: "connection refused".into(),
            })
        });
        let mut cm = MockClusterManager::new();
        cm.expect_remove().never();
        let service = service(Some(cluster_with(Some(store("pvc-1", None)))), storage, cm);

        let err = service.release_for_deletion(&c1()).await.unwrap_err();

        assert!(err.to_string().contains("connection refused"), "{err}");
    }
}
