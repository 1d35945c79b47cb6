//! Requests to the local simulator carried in an applied document: what a host or an engine
//! does on its own on a real cluster, asked for in a file so that every flow can be shown
//! locally. The operator on Kubernetes never reads these annotations.
//!
//! - [`FAIL_INSTANCE`] names an instance whose engine the simulated cluster manager then
//!   reports `FAILED`, as it would after a host failure. The report is folded into the
//!   status by the [`StatusMonitor`], exactly as on a cluster, so the `rebuildRo` trigger
//!   (or, for every instance, `rebuild`) fires.
//! - [`OCCUPY_PORT`] (`<node>:<port>`) puts a pod that is no MPDCluster's on the node,
//!   holding the port: the operator's admission cannot see it (it knows the MPDClusters),
//!   so a request it lets in can still find no node at run time (`NO_AVAILABLE_NODE`).
//!
//! An annotation is removed from the stored object once served; with `kubectl apply`
//! semantics re-applying the same file does not ask again.

use std::path::Path;

use crate::crd::MPDCluster;
use crate::local::{FileClusterStore, LocalError};
use crate::ports::sim::Simulation;
use crate::ports::{ClusterRef, ClusterStore};
use crate::status::StatusMonitor;

/// The annotation: the insId of an instance the simulator makes fail.
pub const FAIL_INSTANCE: &str = "sim.mpd.polardb.aliyun.com/fail-instance";

/// The annotation: `<node>:<port>`, a host port something outside the operator takes.
pub const OCCUPY_PORT: &str = "sim.mpd.polardb.aliyun.com/occupy-port";

/// What [`serve`] did for one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// The instance `insId` is now reported failed and the status says so.
    Failed {
        /// The instance.
        ins_id: String,
    },
    /// A pod outside every MPDCluster holds `port` on `node`.
    PortTaken {
        /// The node.
        node: String,
        /// The host port.
        port: i32,
    },
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Served::Failed { ins_id } => {
                write!(f, "instance {ins_id} fails (as after a host failure)")
            }
            Served::PortTaken { node, port } => write!(
                f,
                "port {port} on {node} is taken by a pod outside the operator"
            ),
        }
    }
}

/// Serves the simulator requests of the stored cluster `namespace/name`, applied from
/// `source`, and removes their annotations: [`OCCUPY_PORT`] first, then [`FAIL_INSTANCE`]
/// (the named instance fails in `sim` and `monitor` folds the cluster manager's report into
/// the status). Returns what was served, in that order; empty when nothing was asked.
///
/// # Errors
/// [`LocalError::Invalid`] naming `source` and the annotation when a value names no
/// instance or node of the cluster, or is not `<node>:<port>` (the annotations are removed,
/// nothing else is changed); [`LocalError::Conflict`] / [`LocalError::Io`] when the store
/// or the simulator's file cannot be read or written.
pub async fn serve(
    store: &FileClusterStore,
    sim: &Simulation,
    monitor: &StatusMonitor,
    source: &Path,
    namespace: &str,
    name: &str,
) -> Result<Vec<Served>, LocalError> {
    let stored = store.read(namespace, name)?;
    let fail = request(&stored, FAIL_INSTANCE);
    let occupy = request(&stored, OCCUPY_PORT);
    if fail.is_none() && occupy.is_none() {
        return Ok(Vec::new());
    }
    let mut cleared = stored.clone();
    if let Some(map) = cleared.metadata.annotations.as_mut() {
        map.remove(FAIL_INSTANCE);
        map.remove(OCCUPY_PORT);
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
    let invalid = |key: &str, message: String| LocalError::Invalid {
        path: source.to_path_buf(),
        field: format!("metadata.annotations[{key}]"),
        message,
    };
    let mut served = Vec::new();
    if let Some(value) = occupy {
        let parsed = value
            .rsplit_once(':')
            .and_then(|(node, port)| Some((node, port.parse::<i32>().ok()?)))
            .filter(|(node, port)| !node.is_empty() && (1..=65535).contains(port));
        let Some((node, port)) = parsed else {
            return Err(invalid(
                OCCUPY_PORT,
                format!("`{value}` is not `<node>:<port>` with a port in 1..=65535"),
            ));
        };
        if !sim.occupy_port(node, port)? {
            return Err(invalid(
                OCCUPY_PORT,
                format!("`{value}`: the simulator has no node `{node}`"),
            ));
        }
        served.push(Served::PortTaken {
            node: node.to_owned(),
            port,
        });
    }
    let Some(ins_id) = fail else {
        return Ok(served);
    };
    let instances = stored
        .status
        .as_ref()
        .map(|s| &s.db_instance_status)
        .filter(|m| !m.is_empty());
    let Some(entry) = instances.and_then(|m| m.get(&ins_id)) else {
        let known = instances
            .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        return Err(invalid(
            FAIL_INSTANCE,
            if known.is_empty() {
                format!("`{ins_id}`: {namespace}/{name} has no instances yet")
            } else {
                format!(
                    "`{ins_id}` names no instance of {namespace}/{name} (its instances: {known})"
                )
            },
        ));
    };
    let cluster = ClusterRef::new(namespace, name);
    sim.fail_instance(&cluster, &entry.pod_name);
    // A monitor that cannot fold now (the CM unreachable under injected faults) leaves the
    // failure to the flows, which see it in the cluster manager; it is not an input error.
    if let Err(err) = monitor.sync(&cluster).await {
        tracing::warn!(cluster = %format!("{namespace}/{name}"), error = %err, "could not fold the simulated failure into the status");
    }
    served.push(Served::Failed { ins_id });
    Ok(served)
}

fn request(cr: &MPDCluster, key: &str) -> Option<String> {
    cr.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
