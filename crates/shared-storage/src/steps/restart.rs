//! Steps that restart instances, switch the RW on request, flush parameters, grow storage.

use super::{StepFn, StepFuture};
use crate::crd::annotations;
use crate::service::{Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("RestartIns", restart_ins),
    ("RestartCluster", restart_cluster),
    ("RestartClusterIfNeed", restart_cluster_if_need),
    ("SwitchRw", switch_rw),
    ("ExtendStorageFs", extend_storage_fs),
    ("UpdateModifyClassMeta", update_modify_class_meta),
    ("FlushParamsIfNecessary", flush_params_if_necessary),
    ("FlushParams", flush_params),
];

fn restart_ins<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let target = c.annotation(annotations::RESTART_INS).map(str::to_owned);
        svc.restart_ins(&c.model, &mut c.markers, target.as_deref())
            .await
    })
}

fn restart_cluster<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        svc.restart_cluster(&c.model, &mut c.markers, "restartCluster")
            .await
    })
}

fn restart_cluster_if_need<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        if !annotations::is_true(c.annotation(annotations::FLUSH_PARAMS_RESTART_CLUSTER)) {
            return Ok(crate::ports::Progress::Done(()));
        }
        svc.restart_cluster(&c.model, &mut c.markers, "restartClusterIfNeed")
            .await
    })
}

fn switch_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let target = c.annotation(annotations::SWITCH_RW).map(str::to_owned);
        svc.switch_rw(&mut c.model, target.as_deref()).await
    })
}

fn extend_storage_fs<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.grow_storage(&c.model, &mut c.markers).await })
}

fn update_modify_class_meta<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.update_modify_class_meta(&mut c.model).await })
}

fn flush_params_if_necessary<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move {
        svc.flush_params_if_necessary(&c.model, &mut c.markers)
            .await
    })
}

fn flush_params<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.flush_params(&c.model).await })
}
