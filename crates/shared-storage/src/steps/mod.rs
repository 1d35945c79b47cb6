//! The step classes of §4.3, registered as `workflow_shared.<Name>`.
//!
//! Steps are thin: [`ServiceStep`] loads the cluster in `init` (in modify-class or upgrade
//! mode when the context says so), then calls one function of the service. A service
//! result maps onto the engine's outcomes: done, `Pending` → `Waiting`, an interrupt →
//! `Interrupt`, anything else → a retryable failure.

mod cleanup;
mod create;
mod ha;
mod replace;
mod restart;

#[cfg(test)]
pub(crate) mod testing;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wf_engine::{
    async_trait, CancellationToken, StepContext, StepError, StepOutcome, StepRegistry,
};

use crate::domain::{DomainError, LoadMode};
use crate::ports::{ClusterRef, Progress};
use crate::registration::CLASS_PREFIX;
use crate::service::{Loaded, Outcome, ServiceError, SharedStorageService};

/// A boxed future borrowing the service and the loaded cluster.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// The body of a step: what it asks of the service.
pub type StepFn = for<'a> fn(&'a SharedStorageService, &'a mut Loaded) -> StepFuture<'a>;

/// Every step class: its name (without prefix) and body.
pub fn all_steps() -> Vec<(&'static str, StepFn)> {
    let mut steps = Vec::new();
    steps.extend_from_slice(ha::STEPS);
    steps.extend_from_slice(cleanup::STEPS);
    steps.extend_from_slice(create::STEPS);
    steps.extend_from_slice(replace::STEPS);
    steps.extend_from_slice(restart::STEPS);
    steps
}

/// Registers every step class on `registry`, each sharing `service`.
pub fn register(registry: &mut StepRegistry, service: Arc<SharedStorageService>) {
    for (name, run) in all_steps() {
        let service = service.clone();
        registry.register(format!("{CLASS_PREFIX}{name}"), move || {
            ServiceStep::new(service.clone(), name, run)
        });
    }
}

/// A step that loads the cluster and runs one service function.
pub struct ServiceStep {
    service: Arc<SharedStorageService>,
    name: &'static str,
    run: StepFn,
    loaded: Option<Loaded>,
}

impl ServiceStep {
    /// A step named `name` running `run`.
    pub fn new(service: Arc<SharedStorageService>, name: &'static str, run: StepFn) -> Self {
        ServiceStep {
            service,
            name,
            run,
            loaded: None,
        }
    }
}

/// The engine outcome of a service error: interrupts stay interrupts, a port failure that
/// retrying cannot fix ([`crate::ports::PortError::permanent`]: refused, unknown class or
/// version) interrupts at once with its own reason, the rest (transient) is retried with
/// backoff.
pub fn step_error(err: ServiceError) -> StepError {
    match err {
        ServiceError::Interrupt { reason, message } => StepError::interrupt(reason, message),
        ServiceError::Domain(DomainError::Interrupt { reason, message }) => {
            StepError::interrupt(reason, message)
        }
        ServiceError::Port(port) => match port.permanent() {
            Some((reason, message)) => StepError::interrupt(reason, message),
            None => StepError::Failed(Box::new(ServiceError::Port(port))),
        },
        other => StepError::Failed(Box::new(other)),
    }
}

#[async_trait]
impl wf_engine::Step for ServiceStep {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        let cluster = ClusterRef::new(ctx.resource_namespace()?, ctx.resource_name()?);
        let mode = LoadMode {
            modify_class: ctx.get_opt::<bool>("modifyClass")?.unwrap_or(false),
            upgrade: ctx.get_opt::<bool>("upgrade")?.unwrap_or(false),
        };
        self.loaded = Some(
            self.service
                .load(&cluster, mode)
                .await
                .map_err(step_error)?
                .for_run(ctx.run_seq())
                .in_flow(ctx.flow_name()),
        );
        Ok(())
    }

    async fn do_step(&mut self, _cancel: &CancellationToken) -> Result<StepOutcome, StepError> {
        let loaded = self
            .loaded
            .as_mut()
            .ok_or_else(|| StepError::failed(format!("step {} ran without init", self.name)))?;
        match (self.run)(&self.service, loaded)
            .await
            .map_err(step_error)?
        {
            Progress::Done(()) => Ok(StepOutcome::Done),
            Progress::Pending { reason } => {
                tracing::debug!(step = self.name, %reason, "waiting");
                Ok(StepOutcome::waiting_because(
                    self.service.config().poll_interval,
                    reason,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_permanent_port_failure_interrupts_and_a_transient_one_is_retried() {
        use crate::ports::PortError;
        let refused = step_error(ServiceError::Port(PortError::Rejected {
            port: "storage",
            message: "volume default/pvc-demo is used by alpha".into(),
        }));
        assert!(
            matches!(&refused, StepError::Interrupt { reason, .. } if reason == "STORAGE_REFUSED"),
            "{refused:?}"
        );
        let transient = step_error(ServiceError::Port(PortError::Unavailable {
            port: "storage",
            message: "timeout".into(),
        }));
        assert!(matches!(transient, StepError::Failed(_)), "{transient:?}");
    }

    #[test]
    fn every_registered_class_has_a_step_and_back() {
        let implemented: BTreeSet<&str> = all_steps().iter().map(|(n, _)| *n).collect();
        let declared: BTreeSet<&str> = crate::registration::STEP_CLASSES.into_iter().collect();
        let missing: Vec<_> = declared.difference(&implemented).collect();
        let extra: Vec<_> = implemented.difference(&declared).collect();
        assert!(
            extra.is_empty(),
            "steps not declared in registration: {extra:?}"
        );
        // Filled in as the step groups land.
        assert!(missing.len() < declared.len(), "no step implemented");
    }
}
