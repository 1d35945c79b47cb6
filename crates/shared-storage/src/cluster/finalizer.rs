//! The finalizer `mpd.finalizers.polardb.aliyun.com` on an MPDCluster, added and removed
//! with JSON patches that test the list they change: no read needed, and a finalizer
//! another controller adds or removes meanwhile is never lost (the test fails, the API
//! server answers 422, and the reconcile is retried on a fresh copy).

use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::crd::{MPDCluster, FINALIZER};

/// A finalizer patch that failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError {
    /// The API server refused the patch (e.g. 422: the finalizer list changed since the
    /// copy the patch was made from; 403: RBAC).
    #[error("cannot {action} the finalizer {FINALIZER} of mpdcluster {cluster}: {source}")]
    Patch {
        /// `add` or `remove`.
        action: &'static str,
        /// `namespace/name`.
        cluster: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The patch could not be built (never expected: the JSON is fixed).
    #[error("cannot build the finalizer patch: {0}")]
    Build(#[from] serde_json::Error),
}

/// Whether `cr` carries our finalizer.
pub fn has_finalizer(cr: &MPDCluster) -> bool {
    cr.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|name| name == FINALIZER))
}

/// What a finalizer patch found.
#[derive(Clone, Debug)]
pub enum Patched {
    /// Written (or nothing to write); the object as the API server returned it, when
    /// there was a write.
    Done(Option<Box<MPDCluster>>),
    /// The object is gone.
    Gone,
}

fn cluster_id(cr: &MPDCluster) -> String {
    format!(
        "{}/{}",
        cr.metadata.namespace.as_deref().unwrap_or_default(),
        cr.metadata.name.as_deref().unwrap_or_default()
    )
}

async fn patch(
    api: &Api<MPDCluster>,
    cr: &MPDCluster,
    action: &'static str,
    ops: serde_json::Value,
) -> Result<Patched, FinalizerError> {
    let name = cr.metadata.name.as_deref().unwrap_or_default();
    let patch = Patch::Json::<()>(serde_json::from_value(ops)?);
    match api.patch(name, &PatchParams::default(), &patch).await {
        Ok(written) => Ok(Patched::Done(Some(Box::new(written)))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Patched::Gone),
        Err(source) => Err(FinalizerError::Patch {
            action,
            cluster: cluster_id(cr),
            source,
        }),
    }
}

/// Adds the finalizer to `cr` (a copy as recent as the caller has) unless it is there.
pub async fn add(api: &Api<MPDCluster>, cr: &MPDCluster) -> Result<Patched, FinalizerError> {
    if has_finalizer(cr) {
        return Ok(Patched::Done(None));
    }
    let ops = match &cr.metadata.finalizers {
        // No list yet: a JSON patch cannot test for a missing member on every server, so
        // the list is set by a merge patch carrying the resourceVersion the caller read (a
        // concurrent change, e.g. another controller's finalizer, makes it fail with 409).
        None => {
            let name = cr.metadata.name.as_deref().unwrap_or_default();
            let body = json!({"metadata": {
                "finalizers": [FINALIZER],
                "resourceVersion": cr.metadata.resource_version,
            }});
            return match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(written) => Ok(Patched::Done(Some(Box::new(written)))),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(Patched::Gone),
                Err(source) => Err(FinalizerError::Patch {
                    action: "add",
                    cluster: cluster_id(cr),
                    source,
                }),
            };
        }
        Some(current) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    patch(api, cr, "add", ops).await
}

/// Removes the finalizer from `cr` (a copy as recent as the caller has) if it is there.
pub async fn remove(api: &Api<MPDCluster>, cr: &MPDCluster) -> Result<Patched, FinalizerError> {
    let Some(index) = cr
        .metadata
        .finalizers
        .as_ref()
        .and_then(|f| f.iter().position(|name| name == FINALIZER))
    else {
        return Ok(Patched::Done(None));
    };
    let path = format!("/metadata/finalizers/{index}");
    let ops = json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    patch(api, cr, "remove", ops).await
}
