//! Steps that plan and carry out instance replacements, additions, moves and removals.

use super::{StepFn, StepFuture};
use crate::crd::annotations;
use crate::service::{migrate_target, Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("GenerateTempRoIds", generate_temp_ro_ids),
    ("GenerateMigrateTempId", generate_migrate_temp_id),
    ("GenerateRebuildRoTempId", generate_rebuild_ro_temp_id),
    ("GenerateAddRoTempId", generate_add_ro_temp_id),
    ("InitTempRoMeta", init_temp_ro_meta),
    ("CreateTempRoForRw", create_temp_ro_for_rw),
    ("ConvertTempRoToRo", convert_temp_ro_to_ro),
    ("SwitchNewRoToRw", switch_new_ro_to_rw),
    ("DeleteOldRw", delete_old_rw),
    ("EnsureNewRoUpToDate", ensure_new_ro_up_to_date),
    ("EnsureRoMigrate", ensure_ro_migrate),
    ("StopOldRo", stop_old_ro),
    ("RemoveRo", remove_ro),
    ("CleanTempRoMeta", clean_temp_ro_meta),
    ("RemoveAllInsPod", remove_all_ins_pod),
];

fn generate_temp_ro_ids<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.generate_temp_ro_ids(&mut c.model).await })
}

fn generate_migrate_temp_id<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move {
        let migrate = c.annotation(annotations::MIGRATE).map(str::to_owned);
        svc.generate_migrate_temp_id(&mut c.model, migrate.as_deref())
            .await
    })
}

fn generate_rebuild_ro_temp_id<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.generate_rebuild_ro_temp_id(&mut c.model).await })
}

fn generate_add_ro_temp_id<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.generate_add_ro_temp_id(&mut c.model).await })
}

fn init_temp_ro_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.init_temp_ro_meta(&mut c.model).await })
}

fn create_temp_ro_for_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let migrate = c.annotation(annotations::MIGRATE).map(str::to_owned);
        svc.create_temp_ro_for_rw(&mut c.model, migrate.as_deref())
            .await
    })
}

fn convert_temp_ro_to_ro<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.convert_temp_ro_to_ro(&mut c.model).await })
}

fn switch_new_ro_to_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.switch_new_ro_to_rw(&mut c.model).await })
}

fn delete_old_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.delete_old_rw(&mut c.model).await })
}

fn ensure_new_ro_up_to_date<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.ensure_new_ros(&mut c.model, None).await })
}

fn ensure_ro_migrate<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let node = migrate_target(&c.model, c.annotation(annotations::MIGRATE));
        svc.ensure_new_ros(&mut c.model, node.as_deref()).await
    })
}

fn stop_old_ro<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.stop_old_ro(&mut c.model).await })
}

fn remove_ro<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let target = c.annotation(annotations::REMOVE_INS).map(str::to_owned);
        svc.remove_ro(&mut c.model, target.as_deref()).await
    })
}

fn clean_temp_ro_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.clean_temp_ro_meta(&mut c.model).await })
}

fn remove_all_ins_pod<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.delete_all_instance_pods(&mut c.model).await })
}
