//! The instance pods' events as triggers of the [`StatusMonitor`]: a pod of a cluster that
//! changes (restarted, not Ready any more, deleted) is often an engine whose state the
//! cluster manager is about to report, so its cluster is folded at once instead of at the
//! next resync.
//!
//! Only the owner is looked at: a pod owned by an MPDCluster triggers that cluster. The
//! fold itself asks the cluster manager; nothing is read from the pod.

use std::future::Future;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};

use super::StatusMonitor;
use crate::crd::MPDCluster;
use crate::ports::ClusterRef;

/// The cluster owning `pod` (its controller reference of kind `MPDCluster`), if any.
pub fn owning_cluster(pod: &Pod) -> Option<ClusterRef> {
    let namespace = pod.metadata.namespace.as_deref()?;
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == MPDCluster::kind(&())
                && o.api_version.split_once('/').map(|(group, _)| group)
                    == Some(&*MPDCluster::group(&()))
        })
        .map(|o| ClusterRef::new(namespace, &o.name))
}

/// Watches the pods matching `selector` (in `namespace`, or everywhere) and triggers
/// `monitor` for the cluster owning each pod that changes, until `shutdown` resolves. A
/// watch error is logged and the watch resumes with backoff.
pub async fn trigger_on_pod_events(
    client: Client,
    namespace: Option<&str>,
    selector: &str,
    monitor: StatusMonitor,
    shutdown: impl Future<Output = ()>,
) {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let events = watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .touched_objects();
    let mut events = std::pin::pin!(events);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = events.next() => match event {
                Some(Ok(pod)) => {
                    if let Some(cluster) = owning_cluster(&pod) {
                        monitor.trigger(cluster);
                    }
                }
                Some(Err(error)) => tracing::debug!(%error, "instance pod watch"),
                None => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ObjectMeta;

    fn pod(owner: Option<(&str, &str, &str)>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("c1-1001-1002".into()),
                namespace: Some("db".into()),
                owner_references: owner.map(|(api_version, kind, name)| {
                    vec![OwnerReference {
                        api_version: api_version.into(),
                        kind: kind.into(),
                        name: name.into(),
                        uid: "u".into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn a_pod_triggers_the_mpdcluster_owning_it_and_nothing_else() {
        assert_eq!(
            owning_cluster(&pod(Some((
                "mpd.polardb.aliyun.com/v1",
                "MPDCluster",
                "c1"
            )))),
            Some(ClusterRef::new("db", "c1"))
        );
        assert_eq!(
            owning_cluster(&pod(Some(("apps/v1", "ReplicaSet", "c1")))),
            None
        );
        assert_eq!(
            owning_cluster(&pod(Some(("other.io/v1", "MPDCluster", "c1")))),
            None
        );
        assert_eq!(owning_cluster(&pod(None)), None);
    }
}
