//! Steps that clean up after a flow, and the small metadata steps.

use super::{StepFn, StepFuture};
use crate::service::{cluster_ref, ApplyTarget, Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("CleanAllTempMeta", clean_all_temp_meta),
    ("CleanOldTempMeta", clean_old_temp_meta),
    ("CleanModifyClassTempMeta", clean_modify_class_temp_meta),
    ("CleanUpgradeTempMeta", clean_upgrade_temp_meta),
    ("SetRebuildTag", set_rebuild_tag),
    ("SaveParamsLastUpdateTime", save_params_last_update_time),
    ("InitUpgradeImages", init_upgrade_images),
];

fn clean_all_temp_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let served = crate::crd::annotations::served_by(&c.flow);
        svc.clean_temp_meta(&cluster_ref(&c.model), false, served)
            .await
    })
}

fn clean_old_temp_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        svc.clean_temp_meta(&cluster_ref(&c.model), true, None)
            .await
    })
}

fn clean_modify_class_temp_meta<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move {
        svc.apply_target(&cluster_ref(&c.model), ApplyTarget::Class)
            .await
    })
}

fn clean_upgrade_temp_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        svc.apply_target(&cluster_ref(&c.model), ApplyTarget::Version)
            .await
    })
}

fn set_rebuild_tag<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.set_rebuild_tag(&cluster_ref(&c.model)).await })
}

fn save_params_last_update_time<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.save_latest_flush_time(&c.model).await })
}

fn init_upgrade_images<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.init_upgrade_images(&mut c.model).await })
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;
    use crate::crd::{annotations, ClassInfo, VersionCfg};
    use crate::domain::LoadMode;
    use crate::ports::{ParamSet, ParamValue, Progress, VersionDef};
    use chrono::{TimeZone, Utc};
    use std::collections::BTreeMap;

    const DONE: Result<Progress, String> = Ok(Progress::Done(()));

    fn with_temp_annotations(
        f: crate::steps::testing::FixtureBuilder,
    ) -> crate::steps::testing::FixtureBuilder {
        f.edit(|cr| {
            let map = cr.metadata.annotations.get_or_insert_with(BTreeMap::new);
            for key in annotations::CLEANUP_SET {
                map.insert(key.to_owned(), "T".to_owned());
            }
            map.insert("keep".into(), "me".into());
        })
    }

    #[tokio::test]
    async fn clean_all_temp_meta_removes_the_cleanup_set_once() {
        let f = with_temp_annotations(Fixture::running()).build();
        assert_eq!(f.run("CleanAllTempMeta").await, DONE);
        let kept: Vec<_> = f
            .stored()
            .metadata
            .annotations
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(kept, ["keep"]);
        let writes = f.spec_writes();
        assert_eq!(f.run("CleanAllTempMeta").await, DONE);
        assert_eq!(f.spec_writes(), writes, "idempotent: no second write");
    }

    #[tokio::test]
    async fn clean_old_temp_meta_keeps_force_rebuild() {
        let f = with_temp_annotations(Fixture::running()).build();
        assert_eq!(f.run("CleanOldTempMeta").await, DONE);
        assert_eq!(
            f.annotation(annotations::FORCE_REBUILD).as_deref(),
            Some("T")
        );
        assert_eq!(f.annotation(annotations::MIGRATE), None);
        let writes = f.spec_writes();
        assert_eq!(f.run("CleanOldTempMeta").await, DONE);
        assert_eq!(f.spec_writes(), writes);
    }

    #[tokio::test]
    async fn weakness_27_cleanup_keeps_a_pending_modify_class_target() {
        let f = Fixture::running()
            .edit(|cr| {
                cr.spec.class_info_modify_to = ClassInfo {
                    class_name: "polar.o.x4.large".into(),
                    ..ClassInfo::default()
                }
            })
            .build();
        assert_eq!(f.run("CleanAllTempMeta").await, DONE);
        assert_eq!(
            f.stored().spec.class_info_modify_to.class_name,
            "polar.o.x4.large"
        );
    }

    #[tokio::test]
    async fn clean_modify_class_temp_meta_applies_the_target_class_once() {
        let f = Fixture::running()
            .edit(|cr| {
                cr.spec.class_info_modify_to = ClassInfo {
                    class_name: "polar.o.x4.large".into(),
                    ..ClassInfo::default()
                };
                cr.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(annotations::TEMP_RO_IDS.into(), "{}".into());
            })
            .build();
        assert_eq!(f.run("CleanModifyClassTempMeta").await, DONE);
        let spec = f.stored().spec;
        assert_eq!(spec.class_info.class_name, "polar.o.x4.large");
        assert_eq!(spec.class_info_modify_to.class_name, "");
        assert_eq!(f.annotation(annotations::TEMP_RO_IDS), None);
        let writes = f.spec_writes();
        assert_eq!(f.run("CleanModifyClassTempMeta").await, DONE);
        assert_eq!(f.spec_writes(), writes);
    }

    #[tokio::test]
    async fn clean_upgrade_temp_meta_applies_the_target_version_once() {
        let f = Fixture::running()
            .edit(|cr| {
                cr.spec.version_cfg_modify_to = Some(VersionCfg {
                    version_name: "1.1.2".into(),
                    ..VersionCfg::default()
                })
            })
            .build();
        assert_eq!(f.run("CleanUpgradeTempMeta").await, DONE);
        let spec = f.stored().spec;
        assert_eq!(spec.version_cfg.version_name, "1.1.2");
        assert_eq!(spec.version_cfg_modify_to, None);
        let writes = f.spec_writes();
        assert_eq!(f.run("CleanUpgradeTempMeta").await, DONE);
        assert_eq!(f.spec_writes(), writes);
    }

    #[tokio::test]
    async fn set_rebuild_tag_writes_force_rebuild_once() {
        let f = Fixture::running().build();
        assert_eq!(f.run("SetRebuildTag").await, DONE);
        assert_eq!(
            f.annotation(annotations::FORCE_REBUILD).as_deref(),
            Some("T")
        );
        let writes = f.spec_writes();
        assert_eq!(f.run("SetRebuildTag").await, DONE);
        assert_eq!(f.spec_writes(), writes);
    }

    #[tokio::test]
    async fn save_params_last_update_time_marks_the_flush_once() {
        let mut f = Fixture::running();
        let changed = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let stored = f.shared(ParamSet {
            params: BTreeMap::from([(
                "work_mem".to_string(),
                ParamValue {
                    name: "work_mem".into(),
                    value: "8MB".into(),
                    update_time: Some(changed),
                    inoperative_value: false,
                },
            )]),
            latest_flush_time: None,
        });
        let read = stored.clone();
        f.params
            .expect_user_params()
            .returning(move |_| Ok(Some(read.lock().unwrap().clone())));
        let write = stored.clone();
        f.params
            .expect_save_user_params()
            .times(1)
            .returning(move |_, p| {
                *write.lock().unwrap() = p.clone();
                Ok(())
            });
        let f = f.build();
        assert_eq!(f.run("SaveParamsLastUpdateTime").await, DONE);
        assert!(stored.lock().unwrap().latest_flush_time.unwrap() > changed);
        assert_eq!(
            f.run("SaveParamsLastUpdateTime").await,
            DONE,
            "second run writes nothing"
        );
    }

    #[tokio::test]
    async fn init_upgrade_images_resolves_the_target_version_into_version_cfg_modify_to() {
        let mut f = Fixture::running().edit(|cr| {
            cr.spec.version_cfg_modify_to = Some(VersionCfg {
                version_name: "1.1.2".into(),
                ..VersionCfg::default()
            })
        });
        f.versions.expect_version().returning(|name| {
            Ok(VersionDef {
                name: name.to_owned(),
                images: BTreeMap::from([("engineImage".to_string(), format!("engine:{name}"))]),
            })
        });
        let f = f.build();
        let upgrade = LoadMode {
            modify_class: false,
            upgrade: true,
        };
        assert_eq!(f.run_mode("InitUpgradeImages", upgrade).await, DONE);
        let spec = f.stored().spec;
        assert_eq!(
            spec.version_cfg_modify_to.unwrap().engine_image.as_deref(),
            Some("engine:1.1.2")
        );
        assert_eq!(
            spec.version_cfg.engine_image.as_deref(),
            Some("engine:1.1.1"),
            "current version untouched"
        );
        let writes = f.spec_writes();
        assert_eq!(f.run_mode("InitUpgradeImages", upgrade).await, DONE);
        assert_eq!(f.spec_writes(), writes);
    }
}
