//! The controller loop of an embedded operator: reconcile a resource, sleep the requeue hint,
//! again, until nothing asks to come back
//! ([semantics §15](../../../docs/SEMANTICS.md#15-embedded-operators)).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Error, Reconciled, ResourceKey, StateMachine, StateResource, WorkflowManager};

type Observer<R> = Arc<dyn Fn(&R, &Result<Reconciled, Error>) + Send + Sync>;

/// Where [`ReconcileLoop::settle`] left a resource.
#[derive(Debug)]
pub enum LoopOutcome<R> {
    /// Nothing asks to come back: the resource rests in a stable state (`Running`,
    /// `Interrupt`, …). The fresh snapshot.
    Stable(R),
    /// The resource is gone (deleted).
    Gone,
    /// Reconciling failed `max_errors_in_a_row` times in a row; the last error.
    Failed(Error),
    /// `max_reconciles` reconciles did not bring the resource to rest; the last snapshot.
    Unsettled(R),
    /// The stop token fired; the last snapshot (a running step was not cut short: the
    /// token is only looked at between reconciles).
    Stopped(R),
}

/// Drives [`StateMachine::reconcile`] for embedded users, as `kube::runtime::Controller`
/// drives wf-kube's reconciler: reconcile, then sleep what [`Reconciled::requeue_after`]
/// (or [`Error::requeue_after`]) asks, until the resource rests.
///
/// ```
/// # use wf_engine::{MemoryResource, MemoryResourceStore, ReconcileLoop, ResourceKey, ResourceRecord, State, StateMachine, StaticLoader, WorkflowManager, LoopOutcome, StateResource};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wf_engine::Error> {
/// let manager = WorkflowManager::<MemoryResource>::builder("demo")
///     .loader(StaticLoader::new())
///     .build()?;
/// let mut machine = StateMachine::new("demo");
/// machine.register_stable_states([State::RUNNING]);
/// let resources = MemoryResourceStore::new();
/// let r = resources.insert(ResourceKey::new("ns", "r1"), ResourceRecord { state: State::RUNNING, ..Default::default() });
///
/// let driver = ReconcileLoop::new(machine, manager);
/// match driver.settle(&r).await {
///     LoopOutcome::Stable(fresh) => assert_eq!(fresh.state(), State::RUNNING),
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
pub struct ReconcileLoop<R: StateResource> {
    machine: Arc<StateMachine<R>>,
    manager: WorkflowManager<R>,
    max_pause: Duration,
    error_pause: Duration,
    max_errors_in_a_row: u32,
    max_reconciles: u32,
    stop: Option<CancellationToken>,
    observer: Option<Observer<R>>,
}

impl<R: StateResource> Clone for ReconcileLoop<R> {
    fn clone(&self) -> Self {
        ReconcileLoop {
            machine: self.machine.clone(),
            manager: self.manager.clone(),
            max_pause: self.max_pause,
            error_pause: self.error_pause,
            max_errors_in_a_row: self.max_errors_in_a_row,
            max_reconciles: self.max_reconciles,
            stop: self.stop.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl<R: StateResource> std::fmt::Debug for ReconcileLoop<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileLoop")
            .field("machine", &self.machine)
            .field("max_pause", &self.max_pause)
            .field("error_pause", &self.error_pause)
            .field("max_errors_in_a_row", &self.max_errors_in_a_row)
            .field("max_reconciles", &self.max_reconciles)
            .finish_non_exhaustive()
    }
}

impl<R: StateResource> ReconcileLoop<R> {
    /// A loop over `machine` and `manager` with the defaults: pauses capped at 60 s, 1 s
    /// after an error without a hint, at most 10 errors in a row and 10,000 reconciles per
    /// [`ReconcileLoop::settle`].
    pub fn new(machine: impl Into<Arc<StateMachine<R>>>, manager: WorkflowManager<R>) -> Self {
        ReconcileLoop {
            machine: machine.into(),
            manager,
            max_pause: Duration::from_secs(60),
            error_pause: Duration::from_secs(1),
            max_errors_in_a_row: 10,
            max_reconciles: 10_000,
            stop: None,
            observer: None,
        }
    }

    /// The longest pause between two reconciles (a longer hint is cut to it).
    #[must_use]
    pub fn max_pause(mut self, pause: Duration) -> Self {
        self.max_pause = pause;
        self
    }

    /// The pause after an error that carries no requeue hint.
    #[must_use]
    pub fn error_pause(mut self, pause: Duration) -> Self {
        self.error_pause = pause;
        self
    }

    /// How many failed reconciles in a row end [`ReconcileLoop::settle`] with
    /// [`LoopOutcome::Failed`] (at least 1).
    #[must_use]
    pub fn max_errors_in_a_row(mut self, errors: u32) -> Self {
        self.max_errors_in_a_row = errors.max(1);
        self
    }

    /// How many reconciles one [`ReconcileLoop::settle`] makes at most (at least 1).
    #[must_use]
    pub fn max_reconciles(mut self, reconciles: u32) -> Self {
        self.max_reconciles = reconciles.max(1);
        self
    }

    /// Ends [`ReconcileLoop::settle`] with [`LoopOutcome::Stopped`] when `token` fires,
    /// between two reconciles (also during a pause). Pair it with
    /// [`WorkflowManager::set_draining`] to make a running flow park at its next step.
    #[must_use]
    pub fn stop_on(mut self, token: CancellationToken) -> Self {
        self.stop = Some(token);
        self
    }

    /// Calls `observer` after every reconcile with the resource and the result (to print
    /// or count them).
    #[must_use]
    pub fn observe(
        mut self,
        observer: impl Fn(&R, &Result<Reconciled, Error>) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The state machine.
    pub fn machine(&self) -> &StateMachine<R> {
        &self.machine
    }

    /// The workflow manager.
    pub fn manager(&self) -> &WorkflowManager<R> {
        &self.manager
    }

    /// Reconciles `resource` until nothing asks to come back, sleeping the requeue hints in
    /// between (each at most `max_pause`). A resource that is not found ends the loop as
    /// [`LoopOutcome::Gone`].
    pub async fn settle(&self, resource: &R) -> LoopOutcome<R> {
        let mut errors = 0;
        for _ in 0..self.max_reconciles {
            if self.stopped() {
                return self.last(resource, LoopOutcome::Stopped).await;
            }
            let result = self.machine.reconcile(resource, &self.manager).await;
            if let Some(observer) = &self.observer {
                observer(resource, &result);
            }
            let pause = match result {
                Ok(done) => {
                    errors = 0;
                    match done.requeue_after() {
                        None => return self.last(resource, LoopOutcome::Stable).await,
                        Some(pause) => pause,
                    }
                }
                Err(Error::Resource(err)) if err.is_not_found() => return LoopOutcome::Gone,
                Err(err) => {
                    errors += 1;
                    tracing::debug!(resource = %resource.key(), error = %err, errors, "reconcile failed");
                    if errors >= self.max_errors_in_a_row {
                        return LoopOutcome::Failed(err);
                    }
                    err.requeue_after().unwrap_or(self.error_pause)
                }
            };
            self.pause(pause.min(self.max_pause)).await;
        }
        self.last(resource, LoopOutcome::Unsettled).await
    }

    /// Settles every resource of `resources`, at most `workers` at once (each on its own
    /// task); one resource is never reconciled by two workers at a time (the machine's lock).
    pub async fn settle_all(
        &self,
        resources: impl IntoIterator<Item = R>,
        workers: usize,
    ) -> BTreeMap<ResourceKey, LoopOutcome<R>> {
        let permits = Arc::new(tokio::sync::Semaphore::new(workers.max(1)));
        let mut tasks = Vec::new();
        for resource in resources {
            let (driver, permits) = (self.clone(), permits.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = driver.settle(&resource).await;
                (resource.key(), outcome)
            }));
        }
        let mut results = BTreeMap::new();
        for task in tasks {
            match task.await {
                Ok((key, outcome)) => {
                    results.insert(key, outcome);
                }
                Err(err) => tracing::error!(%err, "a reconcile task died"),
            }
        }
        results
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }

    async fn pause(&self, pause: Duration) {
        match &self.stop {
            None => tokio::time::sleep(pause).await,
            Some(token) => {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// The fresh snapshot wrapped by `outcome`, or `Gone` / `Failed` when it cannot be read.
    async fn last(&self, resource: &R, outcome: fn(R) -> LoopOutcome<R>) -> LoopOutcome<R> {
        match resource.fetch().await {
            Ok(fresh) => outcome(fresh),
            Err(err) if err.is_not_found() => LoopOutcome::Gone,
            Err(err) => LoopOutcome::Failed(err.into()),
        }
    }
}
