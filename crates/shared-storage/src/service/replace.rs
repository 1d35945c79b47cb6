//! Replacing, adding, moving and removing instances: the temp-RO plan and its execution
//! (domain §2.2, §2.5 delete_old_ins / ensure_new_ro_up_to_date; §4.3).

use super::{cluster_ref, Outcome, ServiceError, SharedStorageService};
use crate::domain::mapping::EngineStates;
use crate::domain::{
    ids, interrupt, temp_ro, DbIns, DomainError, EngineState, InsType, SharedStorageCluster,
};
use crate::ports::{CmRole, Progress};

fn cluster_id(model: &SharedStorageCluster) -> String {
    format!("{}/{}", model.namespace, model.name)
}

fn pending(progress: Progress) -> Option<Progress> {
    match progress {
        Progress::Done(()) => None,
        pending => Some(pending),
    }
}

impl SharedStorageService {
    /// Allocates ids and records the plan `phys -> new insId`, unless a plan exists.
    async fn plan(&self, model: &mut SharedStorageCluster, phys: &[String]) -> Outcome {
        if !model.temp_ro_ids.is_empty() || phys.is_empty() {
            return Ok(Progress::Done(()));
        }
        let new_ids = self.ports.ids.next_ids(phys.len()).await?;
        if temp_ro::plan_replacements(model, phys, &new_ids)? {
            self.save(model).await?;
        }
        Ok(Progress::Done(()))
    }

    /// GenerateTempRoIds: plans a replacement for the RW and every RO.
    pub async fn generate_temp_ro_ids(&self, model: &mut SharedStorageCluster) -> Outcome {
        if !model.temp_ro_ids.is_empty() {
            return Ok(Progress::Done(()));
        }
        let phys = temp_ro::phys_ids_to_replace(model, None)?;
        self.plan(model, &phys).await
    }

    /// GenerateMigrateTempId: plans a replacement for the instance named by `migrate`
    /// (`insId|node`); nothing when the annotation is incomplete.
    pub async fn generate_migrate_temp_id(
        &self,
        model: &mut SharedStorageCluster,
        migrate: Option<&str>,
    ) -> Outcome {
        let Some((ins_id, _)) = migrate.and_then(temp_ro::parse_migrate) else {
            return Ok(Progress::Done(()));
        };
        if !model.temp_ro_ids.is_empty() {
            return Ok(Progress::Done(()));
        }
        let phys = temp_ro::phys_ids_to_replace(model, Some(&ins_id))?;
        self.plan(model, &phys).await
    }

    /// GenerateRebuildRoTempId: plans a replacement for a failed non-leader instance; an
    /// error when there is none.
    pub async fn generate_rebuild_ro_temp_id(&self, model: &mut SharedStorageCluster) -> Outcome {
        if !model.temp_ro_ids.is_empty() {
            return Ok(Progress::Done(()));
        }
        let Some(failed) = temp_ro::failed_non_leader(model) else {
            return Err(DomainError::Invalid {
                cluster: cluster_id(model),
                message: "no failed read-only instance to rebuild".into(),
            }
            .into());
        };
        let phys = vec![failed.physical_ins_id.clone()];
        self.plan(model, &phys).await
    }

    /// GenerateAddRoTempId: plans one new RO (new phys and ins ids), unless a plan exists.
    pub async fn generate_add_ro_temp_id(&self, model: &mut SharedStorageCluster) -> Outcome {
        if !model.temp_ro_ids.is_empty() {
            return Ok(Progress::Done(()));
        }
        let new_ids = self.ports.ids.next_ids(2).await?;
        if temp_ro::plan_added_ro(model, &new_ids)? {
            self.save(model).await?;
        }
        Ok(Progress::Done(()))
    }

    /// InitTempRoMeta: creates the temp RO entities of the plan (existing ones are kept).
    pub async fn init_temp_ro_meta(&self, model: &mut SharedStorageCluster) -> Outcome {
        let before = model.temp_ros.clone();
        temp_ro::init_temp_ro_meta(model)?;
        if model.temp_ros != before {
            self.save(model).await?;
        }
        Ok(Progress::Done(()))
    }

    /// CreateTempRoForRw: creates and installs the RW's replacement as an RO (not yet in the
    /// CM), on the `migrate` target node when the migration names the RW.
    pub async fn create_temp_ro_for_rw(
        &self,
        model: &mut SharedStorageCluster,
        migrate: Option<&str>,
    ) -> Outcome {
        let Some(temp) = temp_ro::temp_ro_for_rw(model).map(|t| t.ins_id.clone()) else {
            // Already converted by a previous run: nothing left to create.
            let rw_phys = model
                .rw
                .as_ref()
                .map(|rw| rw.physical_ins_id.clone())
                .unwrap_or_default();
            let planned = model.temp_ro_ids.get(&rw_phys).cloned().unwrap_or_default();
            if model.ros.contains_key(&planned) {
                return Ok(Progress::Done(()));
            }
            return Err(ServiceError::interrupt(
                interrupt::TEMP_RO_FOR_RW_MEAT_LOST,
                format!("cluster {}: no temp RO replaces the RW", cluster_id(model)),
            ));
        };
        if let Some((ins_id, node)) = migrate.and_then(temp_ro::parse_migrate) {
            if ins_id == model.rw_id() {
                if let Some(t) = model.temp_ros.get_mut(&temp) {
                    t.target_node = Some(node);
                }
            }
        }
        self.ensure_instance_installed(model, &temp, InsType::Ro)
            .await
    }

    /// ConvertTempRoToRo: moves the RW's replacement into the ROs, saves, adds it to the CM.
    pub async fn convert_temp_ro_to_ro(&self, model: &mut SharedStorageCluster) -> Outcome {
        let was_temp = temp_ro::temp_ro_for_rw(model).is_some();
        let id = temp_ro::convert_temp_ro_for_rw_to_ro(model)?;
        if was_temp {
            self.save(model).await?;
        }
        self.ensure_in_cm(model, &id, CmRole::Ro).await
    }

    /// SwitchNewRoToRw: switches over to the RW's planned replacement, then health-checks
    /// the new RW.
    pub async fn switch_new_ro_to_rw(&self, model: &mut SharedStorageCluster) -> Outcome {
        let rw_phys = model
            .rw
            .as_ref()
            .map(|rw| rw.physical_ins_id.clone())
            .unwrap_or_default();
        let Some(target) = model.temp_ro_ids.get(&rw_phys).cloned() else {
            return Err(ServiceError::interrupt(
                interrupt::TEMP_INS_ID_NOT_FOUND,
                format!(
                    "cluster {}: the plan has no replacement for the RW's slot {rw_phys}",
                    cluster_id(model)
                ),
            ));
        };
        if model.ros.contains_key(&target) {
            if let Some(p) = pending(self.ensure_rw(model, &target).await?) {
                return Ok(p);
            }
        }
        match model.rw.clone() {
            Some(rw) if rw.ins_id == target => self.health_check(model, &rw).await,
            _ => Ok(Progress::Done(())),
        }
    }

    /// Deletes every RO of slot `phys` other than `keep` (domain §2.5 delete_old_ins): out
    /// of the CM, stopped, pod deleted; then, when `drop_meta`, its entry removed (and
    /// `followerNum` decremented when `decrement`), saved; otherwise its entry kept and
    /// marked stopped (not installed, no node), which a re-run skips. `RO_META_INVALID` when
    /// the RO to delete is `keep` itself.
    pub async fn delete_old_instances(
        &self,
        model: &mut SharedStorageCluster,
        phys: &str,
        keep: &str,
        drop_meta: bool,
        decrement: bool,
    ) -> Outcome {
        let mut old: Vec<DbIns> = model
            .ros
            .values()
            .filter(|ro| ro.physical_ins_id == phys && ro.ins_id != keep)
            .cloned()
            .collect();
        old.sort_by(|a, b| ids::compare_ins_ids(&a.ins_id, &b.ins_id));
        if !keep.is_empty()
            && model.rw_id() != keep
            && model
                .ros
                .get(keep)
                .is_some_and(|ro| ro.physical_ins_id == phys)
            && old.is_empty()
        {
            // Nothing else in the slot: the plan points at the instance to delete.
            tracing::debug!(phys, keep, "slot holds only the kept instance");
        }
        for ins in old {
            if ins.ins_id == keep {
                return Err(ServiceError::interrupt(
                    interrupt::RO_META_INVALID,
                    format!("instance {keep} to keep is the one to delete"),
                ));
            }
            if !drop_meta && !ins.installed && ins.host.is_empty() {
                // Stopped by an earlier run (marked below): its pod is gone.
                continue;
            }
            if let Some(p) = pending(self.ensure_instance_deleted(model, &ins).await?) {
                return Ok(p);
            }
            if drop_meta {
                model.ros.remove(&ins.ins_id);
                if decrement {
                    // No more wanted than are left: a named removal lowers the count by
                    // one; a scale-in (the count already lowered) leaves it as it is.
                    let left = i32::try_from(model.ros.len()).unwrap_or(i32::MAX);
                    model.ro_replicas = model.ro_replicas.min(left).max(0);
                }
                self.save(model).await?;
            } else if let Some(ro) = model.ros.get_mut(&ins.ins_id) {
                if ro.installed || !ro.host.is_empty() {
                    ro.installed = false;
                    ro.host.clear();
                    self.save(model).await?;
                }
            }
        }
        Ok(Progress::Done(()))
    }

    /// DeleteOldRw: deletes the old RW incarnation (now an RO in the RW's slot).
    /// `RO_META_INVALID` when the RW is not the slot's planned replacement and that
    /// replacement is an RO of the slot: it would be the one deleted.
    pub async fn delete_old_rw(&self, model: &mut SharedStorageCluster) -> Outcome {
        let Some(rw) = model.rw.clone() else {
            return Ok(Progress::Done(()));
        };
        if let Some(planned) = model.temp_ro_ids.get(&rw.physical_ins_id) {
            if *planned != rw.ins_id
                && model
                    .ros
                    .get(planned)
                    .is_some_and(|ro| ro.physical_ins_id == rw.physical_ins_id)
            {
                return Err(ServiceError::interrupt(
                    interrupt::RO_META_INVALID,
                    format!(
                        "cluster {}: the RW {} is not its planned replacement {planned}, which \
                         would be deleted",
                        cluster_id(model),
                        rw.ins_id
                    ),
                ));
            }
        }
        self.delete_old_instances(model, &rw.physical_ins_id, &rw.ins_id, true, false)
            .await
    }

    /// StopOldRo: deletes the instance the plan replaces (keeping its entry) before the
    /// replacement exists.
    pub async fn stop_old_ro(&self, model: &mut SharedStorageCluster) -> Outcome {
        let Some((phys, new_id)) = model
            .temp_ro_ids
            .iter()
            .next()
            .map(|(p, n)| (p.clone(), n.clone()))
        else {
            return Ok(Progress::Done(()));
        };
        if model
            .ros
            .get(&new_id)
            .is_some_and(|ro| ro.physical_ins_id == phys)
            && model.temp_ros.is_empty()
            && model
                .ros
                .values()
                .filter(|r| r.physical_ins_id == phys)
                .count()
                == 1
        {
            // The replacement already took the slot: nothing old is left.
            return Ok(Progress::Done(()));
        }
        if model
            .rw
            .as_ref()
            .is_some_and(|rw| rw.physical_ins_id == phys)
        {
            return Err(ServiceError::interrupt(
                interrupt::RO_META_INVALID,
                format!("slot {phys} to rebuild holds the RW"),
            ));
        }
        self.delete_old_instances(model, &phys, &new_id, false, false)
            .await
    }

    /// EnsureNewRoUpToDate (domain §2.5): for each planned replacement (not the RW's slot),
    /// in id order: create and install it, delete the old RO of its slot, promote it to an
    /// RO, save, add it to the CM.
    pub async fn ensure_new_ros(
        &self,
        model: &mut SharedStorageCluster,
        target_node: Option<&str>,
    ) -> Outcome {
        let rw_phys = model
            .rw
            .as_ref()
            .map(|rw| rw.physical_ins_id.clone())
            .unwrap_or_default();
        let mut plan: Vec<(String, String)> = model
            .temp_ro_ids
            .iter()
            .filter(|(phys, _)| **phys != rw_phys)
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        plan.sort_by(|a, b| ids::compare_ins_ids(&a.1, &b.1));
        for (phys, new_id) in plan {
            if model.temp_ros.contains_key(&new_id) {
                if let Some(node) = target_node {
                    if let Some(t) = model.temp_ros.get_mut(&new_id) {
                        t.target_node = Some(node.to_owned());
                    }
                }
                if let Some(p) = pending(
                    self.ensure_instance_installed(model, &new_id, InsType::Ro)
                        .await?,
                ) {
                    return Ok(p);
                }
                if let Some(p) = pending(
                    self.delete_old_instances(model, &phys, &new_id, true, false)
                        .await?,
                ) {
                    return Ok(p);
                }
                temp_ro::promote_temp_ro(model, &new_id)?;
                self.save(model).await?;
            }
            if model.ros.contains_key(&new_id) {
                if let Some(p) = pending(self.ensure_in_cm(model, &new_id, CmRole::Ro).await?) {
                    return Ok(p);
                }
            }
        }
        Ok(Progress::Done(()))
    }

    /// RemoveRo: removes one RO, then lowers `followerNum` to at most the ROs left. The RO
    /// is the one `removeIns` names; when it names none (absent, or not an RO), and
    /// `followerNum` is below the number of ROs (a declarative scale-in), the newest RO:
    /// the one with the highest insId ([`scale_in_target`]). Temp ROs never count.
    pub async fn remove_ro(
        &self,
        model: &mut SharedStorageCluster,
        ins_id: Option<&str>,
    ) -> Outcome {
        let named = ins_id.and_then(|id| model.ros.get(id));
        let Some(ro) = named.or_else(|| scale_in_target(model)).cloned() else {
            return Ok(Progress::Done(()));
        };
        self.delete_old_instances(model, &ro.physical_ins_id, "", true, true)
            .await
    }

    /// CleanTempRoMeta: of any two entries sharing a slot, drops the one with the greater id
    /// (compared numerically; weakness 13). The RW is never dropped.
    pub async fn clean_temp_ro_meta(&self, model: &mut SharedStorageCluster) -> Outcome {
        let cluster = cluster_ref(model);
        let leader = model.rw_id().to_owned();
        self.modify(&cluster, |cr| {
            let mut out = cr.clone();
            if let Some(status) = out.status.as_mut() {
                for id in temp_ro::duplicate_phys_to_drop(&status.db_instance_status, &leader) {
                    status.db_instance_status.remove(&id);
                }
            }
            out
        })
        .await?;
        Ok(Progress::Done(()))
    }

    /// RemoveAllInsPod (domain §2.5 delete_all_ins_pod, Rebuild): deletes every pod, drops
    /// the ROs sharing the RW's slot and every temp RO, clears engine states and install
    /// marks, and saves.
    pub async fn delete_all_instance_pods(&self, model: &mut SharedStorageCluster) -> Outcome {
        let all: Vec<DbIns> = model.all_instances().cloned().collect();
        for ins in &all {
            let target = Self::engine_target(model, ins);
            if let Some(p) = pending(
                self.ports
                    .pods
                    .delete_pod(&target.namespace, &ins.pod_name)
                    .await?,
            ) {
                return Ok(p);
            }
        }
        let rw_phys = model
            .rw
            .as_ref()
            .map(|rw| rw.physical_ins_id.clone())
            .unwrap_or_default();
        let before = model.clone();
        model.ros.retain(|_, ro| ro.physical_ins_id != rw_phys);
        model.temp_ros.clear();
        let reset = |ins: &mut DbIns| {
            ins.installed = false;
            ins.host.clear();
            ins.host_ip.clear();
            ins.client_ip.clear();
            ins.current_state = EngineState::default();
            ins.last_state = EngineState::default();
        };
        if let Some(rw) = model.rw.as_mut() {
            reset(rw);
        }
        model.ros.values_mut().for_each(reset);
        if *model != before {
            self.save_with(model, EngineStates::FromModel).await?;
        }
        Ok(Progress::Done(()))
    }
}

/// The RO a declarative scale-in removes: when `followerNum` (not negative) is below the
/// number of ROs, the newest one, i.e. the highest insId (ids are handed out in increasing
/// order, compared numerically: weakness 13). `None` when no RO is surplus.
pub fn scale_in_target(model: &SharedStorageCluster) -> Option<&DbIns> {
    let wanted = usize::try_from(model.ro_replicas).ok()?;
    if wanted >= model.ros.len() {
        return None;
    }
    model
        .ros
        .values()
        .max_by(|a, b| ids::compare_ins_ids(&a.ins_id, &b.ins_id))
}

/// The `migrate` target node when it names an instance other than the RW.
pub fn migrate_target(model: &SharedStorageCluster, migrate: Option<&str>) -> Option<String> {
    let (ins_id, node) = migrate.and_then(temp_ro::parse_migrate)?;
    (ins_id != model.rw_id()).then_some(node)
}
