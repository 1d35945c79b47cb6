//! `delete NAME`: the deletion path, on either [`Backend`].
//!
//! - On a cluster: a normal Kubernetes delete. The operator's
//!   [`FinalizerGuard`](crate::cluster::FinalizerGuard) sees the `deletionTimestamp`,
//!   releases the volume and removes the cluster manager, then drops the finalizer; the API
//!   server removes the object and its pods, ConfigMaps and Secrets follow it.
//! - In the state directory (locked for the deletion, as `local` locks it: exit 2 while
//!   another process holds it): the object is marked deleted (`deletionTimestamp`), the
//!   same deletion service ([`SharedStorageService::release_for_deletion`]) releases the
//!   volume and removes the cluster manager on the simulators, the finalizer is dropped (so
//!   the object file goes), the simulated garbage collector removes its pods, and its runs
//!   (the memento file) are removed. The history file keeps its lines, as Kubernetes keeps
//!   Events for a while. A cluster that can never fit can be removed this way, and its
//!   volume used by a new one.

use std::time::Duration;

use kube::api::{Api, DeleteParams};
use wf_engine::memento::caretaker_name;
use wf_engine::FileMementoStore;

use super::backend::{Backend, InspectError};
use super::stdout::Stdout;
use crate::crd::MPDCluster;
use crate::local::LocalBackend;
use crate::ports::sim::SimConfig;
use crate::ports::{ClusterRef, ClusterStore, Progress};
use crate::service::{ServiceConfig, SharedStorageService};

/// The pause between two asks of the deletion service while it waits.
const POLL: Duration = Duration::from_millis(100);
/// How many times the deletion service is asked before `delete` gives up (the simulators
/// answer "not ready" a few times per operation).
const MAX_POLLS: u32 = 600;

/// `delete NAME`; see the [module](self) docs.
pub async fn delete(
    backend: &Backend,
    name: &str,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    match backend {
        Backend::Cluster { client, namespace } => {
            let api: Api<MPDCluster> = Api::namespaced(client.clone(), namespace);
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    out.line(format_args!(
                        "{namespace}/{name}: deletion requested; the operator releases its volume and cluster manager, then removes the finalizer"
                    ));
                    Ok(())
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    Err(InspectError::NotFound {
                        namespace: namespace.clone(),
                        name: name.to_owned(),
                    })
                }
                Err(e) => Err(InspectError::Kube {
                    what: format!("delete mpdcluster {namespace}/{name}"),
                    message: e.to_string().replace(['\n', '\r'], " "),
                }),
            }
        }
        Backend::Local {
            state_dir,
            namespace,
        } => delete_local(state_dir, namespace, name, out).await,
    }
}

fn failed(cluster: &ClusterRef, message: impl std::fmt::Display) -> InspectError {
    InspectError::Deletion {
        namespace: cluster.namespace.clone(),
        name: cluster.name.clone(),
        message: message.to_string(),
    }
}

async fn delete_local(
    state_dir: &std::path::Path,
    namespace: &str,
    name: &str,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let backend = LocalBackend::open(
        state_dir,
        SimConfig {
            ready_after_polls: 1,
            ..SimConfig::default()
        },
    )?;
    let cluster = ClusterRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    // Marked deleted: from here on a flow that runs or resumes for it stops (`CANCELLED`).
    backend.clusters.read(namespace, name)?;
    let gone = backend.clusters.delete(namespace, name)?;
    if !gone {
        let service = SharedStorageService::new(
            backend.ports(),
            ServiceConfig {
                poll_interval: POLL,
                ..ServiceConfig::default()
            },
        );
        let mut last_wait = String::new();
        let mut polls = 0;
        loop {
            match service
                .release_for_deletion(&cluster)
                .await
                .map_err(|e| failed(&cluster, e))?
            {
                Progress::Done(()) => break,
                Progress::Pending { reason } => {
                    if reason != last_wait {
                        out.line(format_args!("{namespace}/{name}: waiting: {reason}"));
                        last_wait = reason;
                    }
                }
            }
            polls += 1;
            if polls >= MAX_POLLS {
                return Err(failed(
                    &cluster,
                    format!("still waiting after {polls} tries: {last_wait}; run `delete` again"),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        out.line(format_args!(
            "{namespace}/{name}: volume released, cluster manager removed"
        ));
        // The finalizer goes: the store removes the object (it is marked deleted).
        let mut cr = backend.clusters.read(namespace, name)?;
        cr.metadata.finalizers = None;
        ClusterStore::update(backend.clusters.as_ref(), &cr)
            .await
            .map_err(|e| failed(&cluster, e))?;
    }
    let pods = backend
        .sim
        .collect_garbage(&cluster)
        .map_err(|e| failed(&cluster, e))?;
    let mementos = FileMementoStore::new(backend.state.memento_dir());
    let runs = mementos.path_of(namespace, &caretaker_name(name));
    match std::fs::remove_file(&runs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(failed(
                &cluster,
                format!("cannot remove its runs {}: {e}", runs.display()),
            ))
        }
    }
    out.line(format_args!(
        "{namespace}/{name}: deleted ({pods} pod(s) and its runs removed)"
    ));
    Ok(())
}
