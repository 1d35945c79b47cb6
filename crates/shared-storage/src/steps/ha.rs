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
    use super::super::testing::{Fixture, FixtureBuilder};
    use crate::crd::{MPDCluster, VersionCfg};
    use crate::domain::LoadMode;
    use crate::ports::{CmStatus, Progress};
    use mockall::predicate::eq;
    use std::sync::{Arc, Mutex};

    const UPGRADE: LoadMode = LoadMode {
        modify_class: false,
        upgrade: true,
    };

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

    fn upgrade_target(cr: &mut MPDCluster) {
        cr.spec.version_cfg_modify_to = Some(VersionCfg {
            version_name: "1.1.2".into(),
            engine_image: Some("engine:1.1.2".into()),
            cluster_manager_image: Some("cm:1.1.2".into()),
            ..VersionCfg::default()
        });
    }

    #[tokio::test]
    async fn upgrade_cm_version_sets_the_target_cm_image() {
        let mut f = Fixture::running().edit(upgrade_target);
        f.cm.expect_upgrade()
            .with(eq(f.cluster.clone()), eq("cm:1.1.2"))
            .times(1)
            .returning(|_, _| Ok(()));
        let f = f.build();
        assert_eq!(
            f.run_mode("UpgradeCmVersion", UPGRADE).await,
            Ok(Progress::Done(()))
        );
        assert_eq!(f.writes(), 0, "the version is applied later, by cleanup");
    }

    #[tokio::test]
    async fn upgrade_cm_version_rerun_sets_the_same_image_and_recreates_the_cm_once() {
        let mut f = Fixture::running().edit(upgrade_target);
        // The CM deployment: a new image recreates the pod, the same image changes nothing.
        let deployed = f.shared(("cm:1.1.1".to_string(), 0u32));
        let cm = deployed.clone();
        f.cm.expect_upgrade()
            .with(eq(f.cluster.clone()), eq("cm:1.1.2"))
            .returning(move |_, image| {
                let mut cm = cm.lock().unwrap();
                if cm.0 != image {
                    *cm = (image.to_owned(), cm.1 + 1);
                }
                Ok(())
            });
        let f = f.build();
        assert_eq!(
            f.run_mode("UpgradeCmVersion", UPGRADE).await,
            Ok(Progress::Done(()))
        );
        assert_eq!(
            f.run_mode("UpgradeCmVersion", UPGRADE).await,
            Ok(Progress::Done(())),
            "a declarative set of the same image"
        );
        assert_eq!(*deployed.lock().unwrap(), ("cm:1.1.2".to_string(), 1));
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn upgrade_cm_version_without_any_cm_image_does_nothing() {
        let f = Fixture::running()
            .edit(|cr| cr.spec.version_cfg.cluster_manager_image = None)
            .build();
        // No expectation on the CM: an upgrade call would fail the test.
        assert_eq!(f.run("UpgradeCmVersion").await, Ok(Progress::Done(())));
        assert_eq!(f.writes(), 0);
    }

    /// The CM as a stateful mock: `remove` deletes it (one delete), then is pending while
    /// its pod terminates (one poll), then done; done at once when there is none.
    fn cm_removal(f: &mut FixtureBuilder) -> Arc<Mutex<(bool, u32)>> {
        let cm = f.shared((true, 0u32)); // (exists, deletes)
        let state = cm.clone();
        let terminating = f.shared(false);
        f.cm.expect_remove()
            .with(eq(f.cluster.clone()))
            .returning(move |_| {
                let mut cm = state.lock().unwrap();
                let mut terminating = terminating.lock().unwrap();
                if !cm.0 {
                    return Ok(Progress::Done(()));
                }
                if !*terminating {
                    *terminating = true;
                    cm.1 += 1;
                    return Ok(Progress::pending("cluster manager terminating"));
                }
                cm.0 = false;
                Ok(Progress::Done(()))
            });
        cm
    }

    #[tokio::test]
    async fn remove_cluster_manager_deletes_the_cm_and_waits_until_it_is_gone() {
        let mut f = Fixture::with_state("Rebuild");
        let cm = cm_removal(&mut f);
        let f = f.build();
        assert_eq!(
            f.run("RemoveClusterManager").await,
            Ok(Progress::pending("cluster manager terminating"))
        );
        assert_eq!(f.run("RemoveClusterManager").await, Ok(Progress::Done(())));
        assert_eq!(*cm.lock().unwrap(), (false, 1));
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn remove_cluster_manager_rerun_without_a_cm_is_done_and_deletes_nothing() {
        let mut f = Fixture::with_state("Rebuild");
        let cm = cm_removal(&mut f);
        let f = f.build();
        assert_eq!(
            f.run_until_done("RemoveClusterManager", 3)
                .await
                .map(|w| w.len()),
            Ok(1)
        );
        assert_eq!(f.run("RemoveClusterManager").await, Ok(Progress::Done(())));
        assert_eq!(f.run("RemoveClusterManager").await, Ok(Progress::Done(())));
        assert_eq!(*cm.lock().unwrap(), (false, 1), "one delete");
        assert_eq!(f.writes(), 0);
    }
}
