//! Cleaning up after a run abandoned on request (the engine's `wf_engine::abandon`; the CLI's
//! `abandon NAME`): what a stuck run leaves behind that would make the next flow trip.
//!
//! - Temp ROs that never started (not `installed`: AddRo's new RO that no node could take,
//!   a replacement that never came up) are deleted (cluster manager entry, pod: done when
//!   missing) and their `tempro` entries dropped. An installed temp RO is a running instance
//!   and is kept (logged); a rebuild or a later flow deals with it.
//! - The replacement plan `tempRoIds` keeps only the entries of temp ROs still there: the
//!   plan of AddRo's allocated-but-never-created RO goes with it.
//! - The run's progress markers ([`super::progress`]) are released.
//!
//! Idempotent: a second call finds nothing to do.

use std::sync::Arc;

use wf_engine::abandon::{AbandonHandler, AbandonedRun};
use wf_engine::{async_trait, BoxError, StateResource};

use super::{Outcome, SharedStorageService};
use crate::domain::{DbIns, LoadMode};
use crate::ports::{ClusterRef, Progress};
use crate::resource::MpdClusterResource;

impl SharedStorageService {
    /// Cleans up after run `run` of `cluster` was abandoned (see the module docs). Pending
    /// while a temp RO's pod is still going.
    pub async fn clean_abandoned_run(&self, cluster: &ClusterRef, run: u64) -> Outcome {
        let mut model = self.load(cluster, LoadMode::default()).await?.model;
        let unstarted: Vec<DbIns> = model
            .temp_ros
            .values()
            .filter(|temp| !temp.installed)
            .cloned()
            .collect();
        for temp in &unstarted {
            if let Progress::Pending { reason } = self.ensure_instance_deleted(&model, temp).await?
            {
                return Ok(Progress::Pending { reason });
            }
            model.temp_ros.remove(&temp.ins_id);
            tracing::info!(cluster = %cluster, ins = %temp.ins_id, pod = %temp.pod_name, "abandoned run: temp RO that never started removed");
        }
        for kept in model.temp_ros.values() {
            tracing::warn!(cluster = %cluster, ins = %kept.ins_id, pod = %kept.pod_name, "abandoned run: an installed temp RO is kept; a rebuild removes it");
        }
        let planned = model.temp_ro_ids.len();
        let temp_ros = model.temp_ros.clone();
        model
            .temp_ro_ids
            .retain(|_, ins| temp_ros.contains_key(ins));
        if !unstarted.is_empty() || model.temp_ro_ids.len() != planned {
            self.save(&model).await?;
        }
        self.release_run_markers(cluster, run).await?;
        Ok(Progress::Done(()))
    }
}

/// The operator's [`AbandonHandler`]: [`SharedStorageService::clean_abandoned_run`], the
/// same for every flow (each leaves at most temp ROs, a plan and markers).
#[derive(Clone, Debug)]
pub struct AbandonCleanup {
    service: Arc<SharedStorageService>,
}

impl AbandonCleanup {
    /// The cleanup over `service`.
    pub fn new(service: Arc<SharedStorageService>) -> Self {
        AbandonCleanup { service }
    }
}

#[async_trait]
impl AbandonHandler<MpdClusterResource> for AbandonCleanup {
    async fn on_abandon(
        &self,
        resource: &MpdClusterResource,
        run: AbandonedRun<'_>,
    ) -> Result<(), BoxError> {
        let cluster = ClusterRef::new(resource.namespace(), resource.name());
        match self.service.clean_abandoned_run(&cluster, run.seq).await? {
            Progress::Done(()) => Ok(()),
            Progress::Pending { reason } => Err(format!(
                "the cleanup of run {} ({}) waits: {reason}; it is tried again",
                run.seq, run.runtime.flow_name
            )
            .into()),
        }
    }
}
