//! Steps around the cluster manager: HA on/off, its placement, its image, its removal.

use super::{StepFn, StepFuture};
use crate::domain::image_key;
use crate::ports::Progress;
use crate::service::{cluster_ref, Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("DisableHA", disable_ha),
    ("EnableHA", enable_ha),
    ("EnsureCmRwAffinity", ensure_cm_rw_affinity),
    ("UpgradeCmVersion", upgrade_cm_version),
    ("RemoveClusterManager", remove_cluster_manager),
    ("UpdateRunningStatus", update_running_status),
];

fn disable_ha<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.set_ha(&c.model, false).await })
}

fn enable_ha<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.set_ha(&c.model, true).await })
}

fn ensure_cm_rw_affinity<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let Some(rw) = c.model.rw.as_ref().filter(|rw| !rw.host.is_empty()) else {
            return Ok(Progress::Done(()));
        };
        Ok(svc
            .ports()
            .cluster_manager
            .ensure_affinity(&cluster_ref(&c.model), &rw.host)
            .await?)
    })
}

fn upgrade_cm_version<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let image =
            c.cr.spec
                .version_cfg_modify_to
                .as_ref()
                .and_then(|v| v.cluster_manager_image.clone())
                .or_else(|| {
                    c.model
                        .image_info
                        .images
                        .get(image_key::CLUSTER_MANAGER)
                        .cloned()
                });
        let Some(image) = image.filter(|i| !i.is_empty()) else {
            return Ok(Progress::Done(()));
        };
        svc.upgrade_cm(&c.model, &image).await
    })
}

fn remove_cluster_manager<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        Ok(svc
            .ports()
            .cluster_manager
            .remove(&cluster_ref(&c.model))
            .await?)
    })
}

fn update_running_status<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        svc.set_cluster_status(&cluster_ref(&c.model), "Running")
            .await?;
        Ok(Progress::Done(()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use crate::ports::{CmStatus, Progress};
    use mockall::predicate::eq;

    fn status(ha: bool, image: &str) -> CmStatus {
        CmStatus {
            phase: format!("RUNNING {image}"),
            ha_enabled: ha,
            ..CmStatus::default()
        }
    }

    #[tokio::test]
    async fn disable_ha_turns_failover_off_once_and_is_idempotent() {
        let mut f = Fixture::running();
        let ha = f.shared(true);
        let read = ha.clone();
        f.cm.expect_status()
            .returning(move |_| Ok(status(*read.lock().unwrap(), "cm:1")));
        let write = ha.clone();
        f.cm.expect_set_ha()
            .with(eq(f.cluster.clone()), eq(false))
            .times(1)
            .returning(move |_, enabled| {
                *write.lock().unwrap() = enabled;
                Ok(())
            });
        let f = f.build();
        assert_eq!(f.run("DisableHA").await, Ok(Progress::Done(())));
        assert_eq!(
            f.run("DisableHA").await,
            Ok(Progress::Done(())),
            "second run calls set_ha no more"
        );
        assert!(!*ha.lock().unwrap());
    }

    #[tokio::test]
    async fn enable_ha_turns_failover_on_once_and_is_idempotent() {
        let mut f = Fixture::running();
        let ha = f.shared(false);
        let read = ha.clone();
        f.cm.expect_status()
            .returning(move |_| Ok(status(*read.lock().unwrap(), "cm:1")));
        let write = ha.clone();
        f.cm.expect_set_ha()
            .with(eq(f.cluster.clone()), eq(true))
            .times(1)
            .returning(move |_, enabled| {
                *write.lock().unwrap() = enabled;
                Ok(())
            });
        let f = f.build();
        assert_eq!(f.run("EnableHA").await, Ok(Progress::Done(())));
        assert_eq!(f.run("EnableHA").await, Ok(Progress::Done(())));
        assert!(*ha.lock().unwrap());
    }

    #[tokio::test]
    async fn ensure_cm_rw_affinity_asks_to_move_the_cm_off_the_rw_node() {
        let mut f = Fixture::running();
        let rw_node = f.rw_node();
        f.cm.expect_ensure_affinity()
            .with(eq(f.cluster.clone()), eq(rw_node))
            .times(2)
            .returning(|_, _| Ok(Progress::Done(())));
        let f = f.build();
        assert_eq!(f.run("EnsureCmRwAffinity").await, Ok(Progress::Done(())));
        assert_eq!(
            f.run("EnsureCmRwAffinity").await,
            Ok(Progress::Done(())),
            "a check, no duplicate work"
        );
    }

    #[tokio::test]
    async fn update_running_status_sets_running_and_is_idempotent() {
        let f = Fixture::with_state("Creating").build();
        assert_eq!(f.run("UpdateRunningStatus").await, Ok(Progress::Done(())));
        assert_eq!(f.state(), "Running");
        let writes = f.status_writes();
        assert_eq!(f.run("UpdateRunningStatus").await, Ok(Progress::Done(())));
        assert_eq!(
            f.status_writes(),
            writes,
            "no second write when already Running"
        );
    }
}
