//! Reconciles resources until they are stable: several in parallel (bounded), one flow at a
//! time per resource (the state machine's per-resource lock), each with the engine's
//! [`ReconcileLoop`], which honours the requeue hints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wf_engine::{CancellationToken, LoopOutcome, ReconcileLoop, ResourceKey, StateResource};

use crate::crd::annotations;
use crate::operator::Operator;
use crate::ports::ClusterStore;
use crate::resource::MpdClusterResource;

/// Where a resource ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// In `Running`.
    Running,
    /// In `Interrupt`, with the recorded reason and message.
    Interrupted {
        /// `interrupt.reason`.
        reason: String,
        /// `interrupt.message`.
        message: String,
        /// The interrupted flow was the creation (`interrupt.previous.status` is
        /// `Creating`): it can be recovered or the cluster deleted, not abandoned.
        creation: bool,
    },
    /// A request was refused before a flow started: the refusal on its `Ready` condition.
    Refused {
        /// The refusal's reason.
        reason: String,
        /// Its message.
        message: String,
    },
    /// Stable in another state.
    Other(String),
    /// The resource is gone.
    Gone,
    /// Reconciling kept failing.
    Failed(String),
}

/// The longest pause between two reconciles of one resource in local mode.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The pause after a failed reconcile that carries no requeue hint.
const ERROR_PAUSE: Duration = Duration::from_millis(200);
/// How many errors in a row end the attempt to settle a resource.
const MAX_ERRORS_IN_A_ROW: u32 = 100;
/// How many reconciles one resource may take at most.
const MAX_RECONCILES: u32 = 20_000;

/// Reconciles one resource until nothing asks to come back, with the engine's
/// [`ReconcileLoop`], or until `stop` fires (between two reconciles: pair it with the
/// manager's draining, so a running flow parks at its next step first).
pub async fn settle_one(
    op: &Operator,
    store: Arc<dyn ClusterStore>,
    key: &ResourceKey,
    stop: &CancellationToken,
) -> Settled {
    let resource = match MpdClusterResource::load(store, &key.namespace, &key.name).await {
        Ok(resource) => resource,
        Err(err) if err.is_not_found() => return Settled::Gone,
        Err(err) => return Settled::Failed(err.to_string()),
    };
    let driver = ReconcileLoop::new(op.machine.clone(), op.manager.clone())
        .max_pause(MAX_PAUSE)
        .error_pause(ERROR_PAUSE)
        .max_errors_in_a_row(MAX_ERRORS_IN_A_ROW)
        .max_reconciles(MAX_RECONCILES)
        .stop_on(stop.clone());
    match driver.settle(&resource).await {
        LoopOutcome::Gone => Settled::Gone,
        LoopOutcome::Failed(err) => Settled::Failed(err.to_string()),
        LoopOutcome::Stable(fresh)
        | LoopOutcome::Unsettled(fresh)
        | LoopOutcome::Stopped(fresh) => match (fresh.refusal(), fresh.state().as_str()) {
            (Some(refusal), _) => Settled::Refused {
                reason: refusal.reason,
                message: refusal.message,
            },
            (None, "Running") => Settled::Running,
            (None, "Interrupt") => Settled::Interrupted {
                reason: fresh
                    .annotation(annotations::INTERRUPT_REASON)
                    .unwrap_or_default(),
                message: fresh
                    .annotation(annotations::INTERRUPT_MESSAGE)
                    .unwrap_or_default(),
                creation: fresh
                    .annotation(annotations::INTERRUPT_PREVIOUS_STATUS)
                    .is_some_and(|s| s.is_empty() || s == "Creating"),
            },
            (None, other) => Settled::Other(other.to_owned()),
        },
    }
}

/// Settles every resource of `keys`, at most `workers` at once, until `stop` fires (see
/// [`settle_one`]).
pub async fn settle_all(
    op: Arc<Operator>,
    store: Arc<dyn ClusterStore>,
    keys: Vec<ResourceKey>,
    workers: usize,
    stop: &CancellationToken,
) -> BTreeMap<ResourceKey, Settled> {
    let permits = Arc::new(Semaphore::new(workers.max(1)));
    let mut tasks = Vec::new();
    for key in keys {
        let (op, store, permits) = (op.clone(), store.clone(), permits.clone());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let settled = settle_one(&op, store, &key, &stop).await;
            (key, settled)
        }));
    }
    let mut results = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok((key, settled)) => {
                results.insert(key, settled);
            }
            Err(err) => tracing::error!(%err, "a reconcile task died"),
        }
    }
    results
}
