//! Reconciles resources until they are stable: several in parallel (bounded), one flow at a
//! time per resource (the state machine's per-resource lock), honouring the engine's
//! requeue hints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wf_engine::{ResourceKey, StateResource};

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
/// How many errors in a row end the attempt to settle a resource.
const MAX_ERRORS_IN_A_ROW: u32 = 100;
/// How many reconciles one resource may take at most.
const MAX_RECONCILES: u32 = 20_000;

/// Reconciles one resource until nothing asks to come back.
pub async fn settle_one(op: &Operator, store: Arc<dyn ClusterStore>, key: &ResourceKey) -> Settled {
    let mut errors = 0;
    for _ in 0..MAX_RECONCILES {
        let resource =
            match MpdClusterResource::load(store.clone(), &key.namespace, &key.name).await {
                Ok(resource) => resource,
                Err(err) if err.is_not_found() => return Settled::Gone,
                Err(err) => {
                    errors += 1;
                    if errors >= MAX_ERRORS_IN_A_ROW {
                        return Settled::Failed(err.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        match op.machine.reconcile(&resource, &op.manager).await {
            Ok(done) => {
                errors = 0;
                match done.requeue_after() {
                    None => break,
                    Some(pause) => tokio::time::sleep(pause.min(MAX_PAUSE)).await,
                }
            }
            Err(err) => {
                errors += 1;
                tracing::debug!(resource = %key, error = %err, "reconcile failed");
                if errors >= MAX_ERRORS_IN_A_ROW {
                    return Settled::Failed(err.to_string());
                }
                let pause = err.requeue_after().unwrap_or(Duration::from_millis(200));
                tokio::time::sleep(pause.min(MAX_PAUSE)).await;
            }
        }
    }
    match MpdClusterResource::load(store, &key.namespace, &key.name).await {
        Err(err) if err.is_not_found() => Settled::Gone,
        Err(err) => Settled::Failed(err.to_string()),
        Ok(resource) => match resource.state().as_str() {
            "Running" => Settled::Running,
            "Interrupt" => Settled::Interrupted {
                reason: resource
                    .annotation(annotations::INTERRUPT_REASON)
                    .unwrap_or_default(),
                message: resource
                    .annotation(annotations::INTERRUPT_MESSAGE)
                    .unwrap_or_default(),
            },
            other => Settled::Other(other.to_owned()),
        },
    }
}

/// Settles every resource of `keys`, at most `workers` at once.
pub async fn settle_all(
    op: Arc<Operator>,
    store: Arc<dyn ClusterStore>,
    keys: Vec<ResourceKey>,
    workers: usize,
) -> BTreeMap<ResourceKey, Settled> {
    let permits = Arc::new(Semaphore::new(workers.max(1)));
    let mut tasks = Vec::new();
    for key in keys {
        let (op, store, permits) = (op.clone(), store.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let settled = settle_one(&op, store, &key).await;
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
