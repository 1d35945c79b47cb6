//! [`Guard`]: what a [`crate::Reconciler`] runs before the state machine — typically the
//! finalizer and deletion handling of a resource type.
//!
//! A guard sees the controller's copy of the object (possibly stale) and either lets the
//! state machine run ([`Ok(None)`](Option::None)) or ends the reconcile with its own
//! [`Decision`]:
//!
//! - [`Decision::handled`]: the guard did the work of this reconcile (e.g. a deletion that
//!   waits for an outside system) and says when to come back;
//! - [`Decision::released`]: the resource let go of everything (its finalizer is removed), so
//!   the API server deletes it; what the engine caches for it is dropped;
//! - [`Decision::not_found`]: the resource is gone.
//!
//! An error fails the reconcile ([`crate::ReconcileError::Guard`]); the controller's error
//! policy retries it.
//!
//! The controller never reconciles one object twice at once, so a guard does not race the
//! flows of its own resource; a flow still running when the deletion starts is cancelled by
//! the engine (the resource counts as cancelled once it has a `deletionTimestamp`), and the
//! guard acts on the next reconcile.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use wf_engine::{async_trait, BoxError};
//! use wf_kube::{Decision, Guard};
//!
//! /// Holds back objects being deleted until an outside clean-up is done.
//! struct WaitForCleanUp;
//!
//! #[async_trait]
//! impl Guard<ConfigMap> for WaitForCleanUp {
//!     async fn before(&self, object: &ConfigMap) -> Result<Option<Decision>, BoxError> {
//!         if object.metadata.deletion_timestamp.is_none() {
//!             return Ok(None); // the state machine runs
//!         }
//!         Ok(Some(Decision::handled("finalizing", Some(Duration::from_secs(5)))))
//!     }
//! }
//! # let _ = WaitForCleanUp;
//! ```

use wf_engine::{async_trait, BoxError};

use crate::Decision;

/// Runs before the state machine in each reconcile; see the [module](self) docs.
#[async_trait]
pub trait Guard<K>: Send + Sync + 'static {
    /// `Ok(None)` lets the state machine run; `Ok(Some(decision))` ends the reconcile with
    /// `decision`; an error fails the reconcile.
    async fn before(&self, object: &K) -> Result<Option<Decision>, BoxError>;
}
