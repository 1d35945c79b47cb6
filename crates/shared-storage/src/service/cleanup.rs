//! Cleaning up after a flow: the temporary annotations, applied spec targets, rebuild tag.

use std::collections::BTreeMap;

use chrono::Utc;

use super::{cluster_ref, Outcome, ServiceError, SharedStorageService};
use crate::crd::{annotations, ClassInfo, MPDCluster};
use crate::domain::SharedStorageCluster;
use crate::ports::{ClusterRef, Progress};

/// Which targets a cleanup applies before clearing them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyTarget {
    /// Neither: a target is cleared only when it is already in effect (weakness 27: an
    /// unrelated flow must not drop a pending modify-class or upgrade request).
    None,
    /// `classInfo := classInfoModifyTo`, then clear the target.
    Class,
    /// `versionCfg := versionCfgModifyTo`, then clear the target.
    Version,
}

fn clear_satisfied_targets(cr: &mut MPDCluster, apply: ApplyTarget) {
    let spec = &mut cr.spec;
    let class_target = spec.class_info_modify_to.class_name.clone();
    if !class_target.is_empty()
        && (apply == ApplyTarget::Class || class_target == spec.class_info.class_name)
    {
        if apply == ApplyTarget::Class {
            spec.class_info = spec.class_info_modify_to.clone();
        }
        spec.class_info_modify_to = ClassInfo::default();
    }
    let version_target = spec
        .version_cfg_modify_to
        .as_ref()
        .map(|v| v.version_name.clone())
        .unwrap_or_default();
    if !version_target.is_empty()
        && (apply == ApplyTarget::Version || version_target == spec.version_cfg.version_name)
    {
        if let Some(target) = spec.version_cfg_modify_to.take() {
            if apply == ApplyTarget::Version {
                spec.version_cfg = target;
            }
        }
    }
}

impl SharedStorageService {
    /// CleanAllTempMeta / CleanOldTempMeta: removes the run's bookkeeping and the requests
    /// in `served` (the flow's own, [`annotations::served_by`]; `None`: the whole cleanup
    /// set, keeping `forceRebuild` when asked), and clears spec targets already in effect.
    /// One write, none when nothing changes.
    pub async fn clean_temp_meta(
        &self,
        cluster: &ClusterRef,
        keep_force_rebuild: bool,
        served: Option<&[&str]>,
    ) -> Outcome {
        self.modify(cluster, |cr| {
            let mut out = cr.clone();
            if let Some(map) = out.metadata.annotations.as_mut() {
                let removed: Vec<&str> = match served {
                    Some(served) => annotations::RUN_BOOKKEEPING
                        .iter()
                        .chain(served)
                        .copied()
                        .collect(),
                    None => annotations::CLEANUP_SET.to_vec(),
                };
                for key in removed {
                    if !(keep_force_rebuild && key == annotations::FORCE_REBUILD) {
                        map.remove(key);
                    }
                }
                map.remove(super::FLOW_PROGRESS);
            }
            clear_satisfied_targets(&mut out, ApplyTarget::None);
            out
        })
        .await?;
        Ok(Progress::Done(()))
    }

    /// CleanModifyClassTempMeta / CleanUpgradeTempMeta: removes `tempRoIds` and applies the
    /// flow's target to the current spec.
    pub async fn apply_target(&self, cluster: &ClusterRef, apply: ApplyTarget) -> Outcome {
        self.modify(cluster, |cr| {
            let mut out = cr.clone();
            if let Some(map) = out.metadata.annotations.as_mut() {
                map.remove(annotations::TEMP_RO_IDS);
                map.remove(super::FLOW_PROGRESS);
            }
            clear_satisfied_targets(&mut out, apply);
            out
        })
        .await?;
        Ok(Progress::Done(()))
    }

    /// SetRebuildTag: `forceRebuild=T`.
    pub async fn set_rebuild_tag(&self, cluster: &ClusterRef) -> Outcome {
        self.patch_annotations(
            cluster,
            &BTreeMap::from([(annotations::FORCE_REBUILD.to_owned(), Some("T".to_owned()))]),
        )
        .await?;
        Ok(Progress::Done(()))
    }

    /// SaveParamsLastUpdateTime: `latestFlushTime = now` on the user parameters, unless it
    /// is already later than every parameter change (so a re-run writes nothing).
    pub async fn save_latest_flush_time(&self, model: &SharedStorageCluster) -> Outcome {
        let cluster = cluster_ref(model);
        let Some(mut user) = self.ports.params.user_params(&cluster).await? else {
            return Ok(Progress::Done(()));
        };
        let newest_change = user.params.values().filter_map(|p| p.update_time).max();
        let up_to_date = match (user.latest_flush_time, newest_change) {
            (Some(flushed), Some(changed)) => flushed >= changed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !up_to_date {
            user.latest_flush_time = Some(Utc::now());
            self.ports.params.save_user_params(&cluster, &user).await?;
        }
        Ok(Progress::Done(()))
    }

    /// InitUpgradeImages: resolves the images of the target version into the model (loaded
    /// in upgrade mode) and saves them into `versionCfgModifyTo`.
    pub async fn init_upgrade_images(&self, model: &mut SharedStorageCluster) -> Outcome {
        if model.old_image_info.is_none() {
            return Err(ServiceError::Domain(crate::domain::DomainError::Invalid {
                cluster: format!("{}/{}", model.namespace, model.name),
                message: "no target version (versionCfgModifyTo.versionName) to upgrade to".into(),
            }));
        }
        self.resolve_version(model).await?;
        self.save(model).await?;
        Ok(Progress::Done(()))
    }
}
