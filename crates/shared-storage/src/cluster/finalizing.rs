//! [`FinalizerGuard`]: the finalizer and the deletion path of an MPDCluster, before the
//! state machine of each reconcile.
//!
//! - A live cluster without the finalizer gets it first, by a JSON patch, so nothing the
//!   flows create (a volume in use, a cluster manager) can outlive the object: the original
//!   added it in its first create step, after it had already written the cluster (domain
//!   §4.3 InitMeta), so a cluster deleted before that step ran left them behind.
//! - A cluster being deleted never runs the state machine (a flow still running when the
//!   deletion came is cancelled by the engine, which sees the `deletionTimestamp`). With
//!   the finalizer: [`SharedStorageService::release_for_deletion`] releases the volume and
//!   removes the cluster manager (`finalizing`, requeued after the service's poll interval
//!   while either waits), then the finalizer is removed by a JSON patch (`finalized`) and
//!   the API server deletes the object; its pods, ConfigMaps and Secrets follow by their
//!   owner references. Without it there is nothing of ours to release (`deleted`).
//! - A cluster that is gone ends the reconcile quietly (`not_found`, weakness 16).

use std::sync::Arc;

use kube::api::Api;
use kube::ResourceExt;
use wf_engine::{async_trait, BoxError};
use wf_kube::{Decision, Guard};

use super::finalizer::{self, has_finalizer, FinalizerError, Patched};
use crate::crd::MPDCluster;
use crate::ports::{ClusterRef, Progress};
use crate::service::SharedStorageService;

/// `wf_reconciles_total{result}` while the deletion waits for the SMS or the CM.
pub const FINALIZING: &str = "finalizing";
/// `wf_reconciles_total{result}` when the finalizer was removed.
pub const FINALIZED: &str = "finalized";
/// `wf_reconciles_total{result}` for a cluster being deleted without our finalizer.
pub const DELETED: &str = "deleted";

/// How many times a finalizer patch made from a stale copy is retried on a fresh one.
const PATCH_ATTEMPTS: u32 = 2;

/// Adds the finalizer to live clusters and runs the deletion of deleted ones; see the
/// [module](self) docs.
pub struct FinalizerGuard {
    client: kube::Client,
    service: Arc<SharedStorageService>,
}

impl FinalizerGuard {
    /// A guard patching through `client` and releasing through `service`'s ports.
    pub fn new(client: kube::Client, service: Arc<SharedStorageService>) -> Self {
        FinalizerGuard { client, service }
    }

    fn api(&self, cr: &MPDCluster) -> Api<MPDCluster> {
        Api::namespaced(self.client.clone(), &cr.namespace().unwrap_or_default())
    }

    /// The deletion of a cluster with a `deletionTimestamp` (read fresh: the deletion is
    /// rare, and the finalizer list must be current for the patch).
    async fn finalize(&self, api: &Api<MPDCluster>, name: &str) -> Result<Decision, BoxError> {
        let Some(fresh) = api.get_opt(name).await? else {
            return Ok(Decision::not_found());
        };
        if !has_finalizer(&fresh) {
            return Ok(Decision::released(DELETED));
        }
        let cluster = ClusterRef::new(fresh.namespace().unwrap_or_default(), name);
        match self.service.release_for_deletion(&cluster).await? {
            Progress::Pending { reason } => {
                tracing::info!(%cluster, %reason, "deletion waits");
                let poll = self.service.config().poll_interval;
                Ok(Decision::handled(FINALIZING, Some(poll)))
            }
            Progress::Done(()) => match finalizer::remove(api, &fresh).await? {
                Patched::Gone => Ok(Decision::not_found()),
                Patched::Done(_) => {
                    tracing::info!(%cluster, "storage released, cluster manager removed: finalizer removed");
                    Ok(Decision::released(FINALIZED))
                }
            },
        }
    }
}

/// Whether a finalizer patch failed because the copy it was made from is stale.
fn is_stale(error: &FinalizerError) -> bool {
    matches!(
        error,
        FinalizerError::Patch { source: kube::Error::Api(status), .. }
            if status.code == 409 || status.code == 422
    )
}

#[async_trait]
impl Guard<MPDCluster> for FinalizerGuard {
    async fn before(&self, cr: &MPDCluster) -> Result<Option<Decision>, BoxError> {
        let api = self.api(cr);
        let name = cr.name_any();
        let mut current = cr.clone();
        for attempt in 1..=PATCH_ATTEMPTS {
            if current.metadata.deletion_timestamp.is_some() {
                return self.finalize(&api, &name).await.map(Some);
            }
            match finalizer::add(&api, &current).await {
                Ok(Patched::Done(_)) => return Ok(None),
                Ok(Patched::Gone) => return Ok(Some(Decision::not_found())),
                Err(e) if is_stale(&e) && attempt < PATCH_ATTEMPTS => {
                    tracing::debug!(cluster = %name, error = %e, "stale copy: reading it again");
                    match api.get_opt(&name).await? {
                        Some(fresh) => current = fresh,
                        None => return Ok(Some(Decision::not_found())),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}
