//! Steps of cluster creation (and of Rebuild's re-creation).

use super::{StepFn, StepFuture};
use crate::ports::Progress;
use crate::service::{Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("InitMeta", init_meta),
    ("PrepareStorage", prepare_storage),
    ("CreateClusterManager", create_cluster_manager),
    ("CreateRwPod", create_rw_pod),
    ("CreateRoPods", create_ro_pods),
    ("CreateNetwork", create_network),
];

fn init_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.init_meta(&mut c.model).await })
}

fn prepare_storage<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.prepare_storage(&c.model).await })
}

fn create_cluster_manager<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let annotations = c.cr.metadata.annotations.clone().unwrap_or_default();
        svc.create_cluster_manager(&c.model, &annotations).await
    })
}

fn create_rw_pod<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.create_rw(&mut c.model).await })
}

fn create_ro_pods<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.create_ros(&mut c.model).await })
}

/// Registered for compatibility with the original; no flow uses it.
fn create_network<'a>(_: &'a SharedStorageService, _: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { Ok(Progress::Done(())) })
}
