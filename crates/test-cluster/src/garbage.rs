//! The garbage collector of the fake cluster: an object whose controller owner is gone is
//! deleted (through the API server, so its own finalizers hold it, and a pod terminates
//! gracefully).
//!
//! It looks at every collection the API server has seen objects of. An owner counts as
//! gone only when objects of its `apiVersion`/`kind` have been seen (so the collection to
//! look in is known) and none has its uid. The owners are listed *after* the dependents,
//! so an owner created while the pass runs is never missed.

use std::collections::{BTreeMap, BTreeSet};

use http::Request;
use serde_json::Value;

use crate::api_server::{ApiServer, Collection};
use crate::error::ClusterError;
use crate::kubelet::is_gone;

/// A dependent and its controller owner.
struct Dependent {
    path: String,
    owner_api_version: String,
    owner_kind: String,
    owner_uid: String,
}

async fn list(client: &kube::Client, collection: &Collection) -> Result<Vec<Value>, ClusterError> {
    let path = collection.list_path();
    let request = Request::get(&path)
        .body(Vec::new())
        .map_err(|e| ClusterError::api(format!("listing {path}"))(kube::Error::HttpError(e)))?;
    match client.request::<Value>(request).await {
        Ok(list) => Ok(list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()),
        Err(err) if is_gone(&err) => Ok(Vec::new()),
        Err(err) => Err(ClusterError::api(format!("listing {path}"))(err)),
    }
}

fn dependents(collection: &Collection, items: &[Value]) -> Vec<Dependent> {
    items
        .iter()
        .filter_map(|item| {
            let meta = item.get("metadata")?;
            if meta.get("deletionTimestamp").is_some() {
                return None;
            }
            let owner = meta
                .get("ownerReferences")?
                .as_array()?
                .iter()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?;
            let field = |v: &Value, k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let namespace = meta.get("namespace").and_then(Value::as_str);
            let name = meta.get("name").and_then(Value::as_str)?;
            Some(Dependent {
                path: collection.object_path(namespace, name),
                owner_api_version: field(owner, "apiVersion"),
                owner_kind: field(owner, "kind"),
                owner_uid: field(owner, "uid"),
            })
        })
        .collect()
}

/// One collection pass; whether anything was deleted.
pub(crate) async fn collect(
    server: &ApiServer,
    client: &kube::Client,
) -> Result<bool, ClusterError> {
    let mut candidates = Vec::new();
    for collection in server.collections() {
        let items = list(client, &collection).await?;
        candidates.extend(dependents(&collection, &items));
    }
    if candidates.is_empty() {
        return Ok(false);
    }
    let owner_kinds: BTreeSet<(String, String)> = candidates
        .iter()
        .map(|d| (d.owner_api_version.clone(), d.owner_kind.clone()))
        .collect();
    let mut live: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (api_version, kind) in owner_kinds {
        let Some(collection) = server.collection_of(&api_version, &kind) else {
            continue;
        };
        let uids = list(client, &collection)
            .await?
            .iter()
            .filter_map(|o| o.get("metadata")?.get("uid")?.as_str().map(str::to_string))
            .collect();
        live.insert((api_version, kind), uids);
    }
    let mut changed = false;
    for dependent in candidates {
        let Some(uids) = live.get(&(
            dependent.owner_api_version.clone(),
            dependent.owner_kind.clone(),
        )) else {
            continue;
        };
        if uids.contains(&dependent.owner_uid) {
            continue;
        }
        tracing::debug!(object = %dependent.path, "garbage-collecting an object whose owner is gone");
        let request = Request::delete(format!("{}?propagationPolicy=Background", dependent.path))
            .body(Vec::new())
            .map_err(|e| {
                ClusterError::api(format!("deleting {}", dependent.path))(kube::Error::HttpError(e))
            })?;
        match client.request::<Value>(request).await {
            Err(err) if is_gone(&err) => {}
            other => {
                other.map_err(ClusterError::api(format!("deleting {}", dependent.path)))?;
            }
        }
        changed = true;
    }
    Ok(changed)
}
