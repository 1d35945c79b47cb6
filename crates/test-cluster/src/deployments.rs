//! The Deployment controller of the fake cluster, without ReplicaSets: a Deployment owns
//! its pods directly (controller owner reference).
//!
//! Pods are created from the template (labels and annotations, plus `pod-template-hash`),
//! named `<deployment>-<hash>-<n>`. Pods of an older template are deleted and new ones
//! created at once, whatever the strategy (no surge accounting); extra pods are deleted,
//! newest names first. The status reports `replicas`, `updatedReplicas`, `readyReplicas`,
//! `availableReplicas` and `observedGeneration`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::error::ClusterError;
use crate::kubelet::is_gone;
use crate::pod_status::is_ready;

/// The label that ties a pod to the template it was made from.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

fn template_hash(deployment: &Deployment) -> String {
    let template = deployment
        .spec
        .as_ref()
        .map(|s| serde_json::to_string(&s.template).unwrap_or_default())
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    template.hash(&mut hasher);
    format!("{:010x}", hasher.finish() & 0xff_ffff_ffff)
}

fn owned_by(pod: &Pod, uid: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// Reconciles every Deployment once; whether anything changed.
pub(crate) async fn reconcile(client: &kube::Client) -> Result<bool, ClusterError> {
    let deployments = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(ClusterError::api("listing deployments"))?
        .items;
    if deployments.is_empty() {
        return Ok(false);
    }
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(ClusterError::api("listing pods"))?
        .items;
    let mut changed = false;
    for deployment in deployments {
        changed |= reconcile_one(client, &deployment, &pods).await?;
    }
    Ok(changed)
}

async fn reconcile_one(
    client: &kube::Client,
    deployment: &Deployment,
    pods: &[Pod],
) -> Result<bool, ClusterError> {
    let (Some(name), Some(namespace), Some(uid)) = (
        deployment.metadata.name.clone(),
        deployment.metadata.namespace.clone(),
        deployment.metadata.uid.clone(),
    ) else {
        return Ok(false);
    };
    if deployment.metadata.deletion_timestamp.is_some() {
        return Ok(false);
    }
    let spec = deployment.spec.clone().unwrap_or_default();
    let replicas = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let hash = template_hash(deployment);
    let api = Api::<Pod>::namespaced(client.clone(), &namespace);
    let owned: Vec<&Pod> = pods.iter().filter(|p| owned_by(p, &uid)).collect();
    let names_in_use: BTreeSet<String> = owned
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let alive: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let mut changed = false;
    let (mut current, stale): (Vec<&Pod>, Vec<&Pod>) = alive.iter().partition(|p| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
            == Some(&hash)
    });
    current.sort_by_key(|p| p.metadata.name.clone());
    let extra = current.len().saturating_sub(replicas);
    let doomed = stale
        .iter()
        .chain(current.iter().rev().take(extra))
        .filter_map(|p| p.metadata.name.clone());
    for pod in doomed {
        match api.delete(&pod, &DeleteParams::default()).await {
            Err(err) if is_gone(&err) => {}
            other => {
                other.map_err(ClusterError::api(format!("deleting pod {namespace}/{pod}")))?;
            }
        }
        changed = true;
    }
    let template = spec.template.clone();
    let mut next = 0usize;
    for _ in current.len()..replicas {
        let pod_name = loop {
            let candidate = format!("{name}-{hash}-{next}");
            next += 1;
            if !names_in_use.contains(&candidate) {
                break candidate;
            }
        };
        let mut labels: BTreeMap<String, String> = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(pod_name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(labels),
                annotations: template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: name.clone(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        api.create(&PostParams::default(), &pod)
            .await
            .map_err(ClusterError::api(format!(
                "creating pod {namespace}/{pod_name}"
            )))?;
        changed = true;
    }
    let ready = current.iter().filter(|p| is_ready(p)).count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let wanted = json!({
        "observedGeneration": deployment.metadata.generation,
        "replicas": count(alive.len()),
        "updatedReplicas": count(current.len()),
        "readyReplicas": count(ready),
        "availableReplicas": count(ready),
        "unavailableReplicas": count(replicas.saturating_sub(ready)),
    });
    let status = deployment.status.clone().unwrap_or_default();
    let now = json!({
        "observedGeneration": status.observed_generation,
        "replicas": status.replicas.unwrap_or(0),
        "updatedReplicas": status.updated_replicas.unwrap_or(0),
        "readyReplicas": status.ready_replicas.unwrap_or(0),
        "availableReplicas": status.available_replicas.unwrap_or(0),
        "unavailableReplicas": status.unavailable_replicas.unwrap_or(0),
    });
    if wanted != now {
        let written = Api::<Deployment>::namespaced(client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": wanted })),
            )
            .await;
        match written {
            Err(err) if is_gone(&err) => {}
            other => {
                other.map_err(ClusterError::api(format!(
                    "status of deployment {namespace}/{name}"
                )))?;
            }
        }
        changed = true;
    }
    Ok(changed)
}
