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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::crd::{annotations, InstanceStatus};
    use crate::ports::{CmStatus, Progress};
    use crate::steps::testing::Fixture;

    fn temp_ro(installed: bool) -> InstanceStatus {
        InstanceStatus {
            physical_ins_id: "1009".into(),
            ins_id: "1010".into(),
            ins_name: "1010".into(),
            pod_name: "c1-1009-1010".into(),
            pod_name_space: "ns".into(),
            ins_type: "tempro".into(),
            installed,
            ..InstanceStatus::default()
        }
    }

    fn stuck_add_ro(installed: bool) -> crate::steps::testing::FixtureBuilder {
        Fixture::running()
            .annotate(annotations::TEMP_RO_IDS, r#"{"1009":"1010"}"#)
            .annotate(
                crate::service::FLOW_PROGRESS,
                r#"["3/restarted-1002","4/grown"]"#,
            )
            .edit(move |cr| {
                let status = cr.status.as_mut().unwrap();
                status
                    .db_instance_status
                    .insert("1010".into(), temp_ro(installed));
            })
    }

    fn types(f: &Fixture) -> BTreeMap<String, String> {
        f.stored()
            .status
            .unwrap()
            .db_instance_status
            .into_iter()
            .map(|(id, i)| (id, i.ins_type))
            .collect()
    }

    #[tokio::test]
    async fn an_abandoned_run_leaves_no_unstarted_temp_ro_no_plan_and_none_of_its_markers() {
        let mut b = stuck_add_ro(false);
        b.cm.expect_status().returning(|_| Ok(CmStatus::default()));
        b.pods
            .expect_delete_pod()
            .withf(|ns, pod| ns == "ns" && pod == "c1-1009-1010")
            .times(1)
            .returning(|_, _| Ok(Progress::Done(())));
        let f = b.build();
        let done = f.service.clean_abandoned_run(&f.cluster, 3).await.unwrap();
        assert_eq!(done, Progress::Done(()));
        assert!(!types(&f).contains_key("1010"), "{:?}", types(&f));
        assert_eq!(f.annotation(annotations::TEMP_RO_IDS), None);
        assert_eq!(f.markers(), ["4/grown"], "only run 3's markers go");
        let writes = f.status_writes() + f.spec_writes();
        // Idempotent: nothing left to do, nothing written.
        assert_eq!(
            f.service.clean_abandoned_run(&f.cluster, 3).await.unwrap(),
            Progress::Done(())
        );
        assert_eq!(f.status_writes() + f.spec_writes(), writes);
    }

    #[tokio::test]
    async fn an_installed_temp_ro_and_its_plan_are_kept() {
        let f = stuck_add_ro(true).build();
        let done = f.service.clean_abandoned_run(&f.cluster, 3).await.unwrap();
        assert_eq!(done, Progress::Done(()));
        assert_eq!(types(&f)["1010"], "tempro");
        assert_eq!(
            f.annotation(annotations::TEMP_RO_IDS).as_deref(),
            Some(r#"{"1009":"1010"}"#)
        );
    }

    #[tokio::test]
    async fn a_pod_still_going_makes_the_cleanup_pending_and_keeps_the_entry() {
        let mut b = stuck_add_ro(false);
        b.cm.expect_status().returning(|_| Ok(CmStatus::default()));
        b.pods
            .expect_delete_pod()
            .returning(|_, _| Ok(Progress::pending("pod c1-1009-1010 terminating")));
        let f = b.build();
        let done = f.service.clean_abandoned_run(&f.cluster, 3).await.unwrap();
        assert!(matches!(done, Progress::Pending { .. }), "{done:?}");
        assert_eq!(types(&f)["1010"], "tempro");
    }
}
