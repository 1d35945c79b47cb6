//! Requests to the local simulator carried in an applied document: what a host or an engine
//! does on its own on a real cluster, asked for in a file so that every flow can be shown
//! locally. The operator on Kubernetes never reads these annotations.
//!
//! One request exists: [`FAIL_INSTANCE`] names an instance whose engine the simulated
//! cluster manager then reports `FAILED`, as it would after a host failure. The report is
//! folded into the status by the [`StatusMonitor`], exactly as on a cluster, so the
//! `rebuildRo` trigger (or, for every instance, `rebuild`) fires. The annotation is removed
//! from the stored object once served; with `kubectl apply` semantics re-applying the same
//! file does not ask again.

use std::path::Path;

use crate::crd::MPDCluster;
use crate::local::{FileClusterStore, LocalError};
use crate::ports::sim::Simulation;
use crate::ports::{ClusterRef, ClusterStore};
use crate::status::StatusMonitor;

/// The annotation: the insId of an instance the simulator makes fail.
pub const FAIL_INSTANCE: &str = "sim.mpd.polardb.aliyun.com/fail-instance";

/// What [`serve`] did for one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// The stored cluster carries no request.
    Nothing,
    /// The instance `insId` is now reported failed and the status says so.
    Failed {
        /// The instance.
        ins_id: String,
    },
}

/// Serves the simulator requests of the stored cluster `namespace/name`, applied from
/// `source`: makes the named instance fail in `sim`, folds the cluster manager's report into
/// the status through `monitor`, and removes the annotation.
///
/// # Errors
/// [`LocalError::Invalid`] naming `source` and the annotation when it names no instance of
/// the cluster (the annotation is removed, nothing else is changed);
/// [`LocalError::Conflict`] / [`LocalError::Io`] when the store cannot be read or written.
pub async fn serve(
    store: &FileClusterStore,
    sim: &Simulation,
    monitor: &StatusMonitor,
    source: &Path,
    namespace: &str,
    name: &str,
) -> Result<Served, LocalError> {
    let stored = store.read(namespace, name)?;
    let Some(ins_id) = request(&stored) else {
        return Ok(Served::Nothing);
    };
    let mut cleared = stored.clone();
    if let Some(map) = cleared.metadata.annotations.as_mut() {
        map.remove(FAIL_INSTANCE);
    }
    let store_error = |e: crate::ports::PortError| LocalError::Conflict {
        path: source.to_path_buf(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message: e.to_string(),
    };
    ClusterStore::update(store, &cleared)
        .await
        .map_err(store_error)?;
    let instances = stored
        .status
        .as_ref()
        .map(|s| &s.db_instance_status)
        .filter(|m| !m.is_empty());
    let Some(entry) = instances.and_then(|m| m.get(&ins_id)) else {
        let known = instances
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        return Err(LocalError::Invalid {
            path: source.to_path_buf(),
            field: format!("metadata.annotations[{FAIL_INSTANCE}]"),
            message: if known.is_empty() {
                format!("`{ins_id}`: {namespace}/{name} has no instances yet")
            } else {
                format!(
                    "`{ins_id}` names no instance of {namespace}/{name} (its instances: {known})"
                )
            },
        });
    };
    let cluster = ClusterRef::new(namespace, name);
    sim.fail_instance(&cluster, &entry.pod_name);
    // A monitor that cannot fold now (the CM unreachable under injected faults) leaves the
    // failure to the flows, which see it in the cluster manager; it is not an input error.
    if let Err(err) = monitor.sync(&cluster).await {
        tracing::warn!(cluster = %format!("{namespace}/{name}"), error = %err, "could not fold the simulated failure into the status");
    }
    Ok(Served::Failed { ins_id })
}

fn request(cr: &MPDCluster) -> Option<String> {
    cr.metadata
        .annotations
        .as_ref()?
        .get(FAIL_INSTANCE)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
