//! The controller runner: one [`Reconciler`] maps each reconcile of a `K` onto
//! [`wf_engine::StateMachine::reconcile`] and the result onto a
//! [`kube::runtime::controller::Action`].
//!
//! | engine result                         | action                         |
//! |---------------------------------------|--------------------------------|
//! | stable, interrupted                   | `await_change`                 |
//! | refused                               | requeue after [`REFUSED_RECHECK`] |
//! | transitioned, completed, recovered    | requeue at once                |
//! | waiting                               | requeue after the step's delay |
//! | retryable step failure                | requeue after the backoff      |
//! | resource not found                    | `await_change`, no error       |
//! | any other error                       | `Err`, `error_policy` requeues |
//!
//! Before the state machine, a reconcile passes the [`Watch`] filter (objects it refuses end
//! at once, label `filtered`) and the optional [`Guard`] (finalizers, deletion), which may end
//! the reconcile with its own [`Decision`].
//!
//! The engine's resource is built from the watched object by a factory: [`Reconciler::new`]
//! uses [`KubeResource`] (state in a status field); [`Reconciler::with_resource`] takes any
//! [`StateResource`] (e.g. one written through a repository of the operator's domain).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use kube::CustomResource;
//! use serde::{Deserialize, Serialize};
//! use wf_engine::{StateMachine, WorkflowManager};
//! use wf_kube::{Config, ConfigMapMementoFactory, KubeResource, Reconciler, StateField};
//!
//! #[derive(CustomResource, Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
//! #[kube(group = "example.com", version = "v1", kind = "Db", namespaced, status = "DbStatus")]
//! pub struct DbSpec {}
//!
//! #[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
//! pub struct DbStatus {
//!     #[serde(default)]
//!     state: String,
//! }
//!
//! struct StateOf;
//! impl StateField<Db> for StateOf {
//!     fn read(object: &Db) -> String {
//!         object.status.as_ref().map(|s| s.state.clone()).unwrap_or_default()
//!     }
//!     fn patch(state: &str) -> serde_json::Value {
//!         serde_json::json!({ "status": { "state": state } })
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let manager = WorkflowManager::<KubeResource<Db, StateOf>>::builder("Db")
//!     .flow_dir("/etc/operator/flows")
//!     .memento_store(ConfigMapMementoFactory::new(client.clone()))
//!     .build()?;
//! let machine = StateMachine::new("Db"); // register states, translations and entries here
//! let reconciler = Reconciler::new(Arc::new(machine), manager, client.clone())
//!     .with_config(Config::default().concurrency(4));
//! reconciler.run(kube::Api::<Db>::all(client)).await;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use tokio_util::task::TaskTracker;
use wf_engine::{BoxError, Reconciled, StateMachine, StateResource, WorkflowManager};

use crate::{Guard, KubeObject, KubeResource, StateField, Watch, WorkflowMetrics};

/// The runner's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How many resources are reconciled at once (0 = unbounded). Default 4.
    pub concurrency: u16,
    /// When to retry after a non-retryable error. Default 30 s.
    pub error_requeue: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: 4,
            error_requeue: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Sets [`Config::concurrency`].
    pub fn concurrency(mut self, n: u16) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets [`Config::error_requeue`].
    pub fn error_requeue(mut self, delay: Duration) -> Self {
        self.error_requeue = delay;
        self
    }
}

/// A reconcile that failed and needs a fix rather than a scheduled retry.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The engine failed (a setup error, an API error that is not NotFound, …).
    #[error("reconcile failed: {0}")]
    Engine(#[from] wf_engine::Error),
    /// The [`Guard`] failed (e.g. a finalizer patch was refused).
    #[error("reconcile of {resource} failed before the state machine: {source}")]
    Guard {
        /// `namespace/name`.
        resource: String,
        /// What the guard said.
        #[source]
        source: BoxError,
    },
    /// The reconcile task panicked or was aborted.
    #[error("reconcile of {resource} did not finish: {message}")]
    Task {
        /// `namespace/name`.
        resource: String,
        /// What happened to the task.
        message: String,
    },
}

/// What a reconcile decided: the engine's result (`None` when the state machine did not
/// run or the step failed) and when to come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The engine's result; `None` when the resource was not found, a step failed, or the
    /// filter or a [`Guard`] ended the reconcile.
    pub reconciled: Option<Reconciled>,
    /// When to reconcile again (`None`: on the next change).
    pub requeue_after: Option<Duration>,
    /// The label of what ended the reconcile instead of the state machine (`filtered`, or a
    /// [`Guard`]'s label such as `finalizing`); `None` when the state machine ran.
    pub handled_by: Option<&'static str>,
    /// Whether the resource is gone, or let go of everything so the API server deletes it:
    /// what is cached for it (the memento store) is dropped.
    pub gone: bool,
}

impl Decision {
    /// The label of a reconcile the filter refused.
    pub const FILTERED: &'static str = "filtered";

    /// A reconcile ended by a [`Guard`] (or the filter) under `label`, coming back after
    /// `requeue_after` (`None`: on the next change).
    pub fn handled(label: &'static str, requeue_after: Option<Duration>) -> Self {
        Decision {
            reconciled: None,
            requeue_after,
            handled_by: Some(label),
            gone: false,
        }
    }

    /// The resource let go of everything (e.g. its finalizer is removed): the API server
    /// deletes it; nothing is requeued and what is cached for it is dropped.
    pub fn released(label: &'static str) -> Self {
        Decision {
            gone: true,
            ..Decision::handled(label, None)
        }
    }

    /// The resource was not found.
    pub fn not_found() -> Self {
        Decision {
            reconciled: None,
            requeue_after: None,
            handled_by: None,
            gone: true,
        }
    }

    /// A short label of what happened, for the `wf_reconciles_total{result}` metric:
    /// `stable`, `transitioned`, `completed`, `settled`, `waiting`, `interrupted`,
    /// `recovered`, `refused`, `satisfied`, `retry` (a retryable step failure), `not_found`, `filtered`, or the
    /// label a [`Guard`] gave.
    pub fn label(&self) -> &'static str {
        if let Some(label) = self.handled_by {
            return label;
        }
        match &self.reconciled {
            Some(Reconciled::Stable { .. }) => "stable",
            Some(Reconciled::Transitioned { .. }) => "transitioned",
            Some(Reconciled::FlowCompleted { .. }) => "completed",
            Some(Reconciled::Settled) => "settled",
            Some(Reconciled::Waiting { .. }) => "waiting",
            Some(Reconciled::Interrupted { .. }) => "interrupted",
            Some(Reconciled::Recovered { .. }) => "recovered",
            Some(Reconciled::Abandoned { .. }) => "abandoned",
            Some(Reconciled::Refused { .. }) => "refused",
            Some(Reconciled::Satisfied { .. }) => "satisfied",
            None if self.gone => "not_found",
            None => "retry",
        }
    }

    /// Whether the resource is gone (deleted, or released for deletion).
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// The controller action.
    pub fn action(&self) -> Action {
        match self.requeue_after {
            Some(delay) => Action::requeue(delay),
            None => Action::await_change(),
        }
    }
}

/// How long a refused resource rests before it is looked at again without a change: what
/// refused it (a node or volume in use) can free up by itself.
pub const REFUSED_RECHECK: std::time::Duration = std::time::Duration::from_secs(300);

/// Maps an engine result to a decision (see the module table).
pub fn decide(result: Result<Reconciled, wf_engine::Error>) -> Result<Decision, ReconcileError> {
    match result {
        Ok(reconciled) => Ok(Decision {
            requeue_after: match reconciled {
                Reconciled::Refused { .. } => Some(REFUSED_RECHECK),
                _ => reconciled.requeue_after(),
            },
            reconciled: Some(reconciled),
            handled_by: None,
            gone: false,
        }),
        Err(wf_engine::Error::Resource(e)) if e.is_not_found() => Ok(Decision::not_found()),
        Err(e) => match e.requeue_after() {
            Some(delay) => {
                tracing::warn!(error = %e, ?delay, "retryable step failure");
                Ok(Decision {
                    reconciled: None,
                    requeue_after: Some(delay),
                    handled_by: None,
                    gone: false,
                })
            }
            None => Err(ReconcileError::Engine(e)),
        },
    }
}

/// Builds the engine's resource from a watched object.
type Factory<K, R> = Arc<dyn Fn(&kube::Client, K) -> R + Send + Sync>;

/// Runs the state machine of the resource `R` built from each watched `K`.
///
/// `R` is [`KubeResource<K, F>`] with [`Reconciler::new`], or any [`StateResource`] with
/// [`Reconciler::with_resource`].
pub struct Reconciler<K: KubeObject, R: StateResource> {
    machine: Arc<StateMachine<R>>,
    manager: WorkflowManager<R>,
    client: kube::Client,
    factory: Factory<K, R>,
    watch: Watch<K>,
    guard: Option<Arc<dyn Guard<K>>>,
    config: Config,
    metrics: Option<Arc<WorkflowMetrics>>,
    /// The reconciles in flight, so a shutdown can wait for the last one.
    in_flight: TaskTracker,
}

impl<K: KubeObject, R: StateResource> Clone for Reconciler<K, R> {
    /// A handle on the same machine, manager, metrics and in-flight reconciles.
    fn clone(&self) -> Self {
        Reconciler {
            machine: self.machine.clone(),
            manager: self.manager.clone(),
            client: self.client.clone(),
            factory: self.factory.clone(),
            watch: self.watch.clone(),
            guard: self.guard.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

impl<K: KubeObject, F: StateField<K>> Reconciler<K, KubeResource<K, F>> {
    /// A reconciler of [`KubeResource`]s with the default [`Config`] and [`Watch`].
    pub fn new(
        machine: Arc<StateMachine<KubeResource<K, F>>>,
        manager: WorkflowManager<KubeResource<K, F>>,
        client: kube::Client,
    ) -> Self {
        Reconciler::with_resource(machine, manager, client, |client, object| {
            KubeResource::new(client.clone(), object)
        })
    }
}

impl<K: KubeObject, R: StateResource> Reconciler<K, R> {
    /// A reconciler whose engine resource is `factory(client, object)` for each watched
    /// object (the controller's copy; the engine reads the resource fresh before it decides
    /// anything), with the default [`Config`] and [`Watch`].
    pub fn with_resource(
        machine: Arc<StateMachine<R>>,
        manager: WorkflowManager<R>,
        client: kube::Client,
        factory: impl Fn(&kube::Client, K) -> R + Send + Sync + 'static,
    ) -> Self {
        Reconciler {
            machine,
            manager,
            client,
            factory: Arc::new(factory),
            watch: Watch::default(),
            guard: None,
            config: Config::default(),
            metrics: None,
            in_flight: TaskTracker::new(),
        }
    }

    /// Counts every reconcile in `metrics` (`wf_reconciles_total{result}`, see
    /// [`Decision::label`]; failed reconciles count as `error`). Register the same metrics
    /// as a hook of the manager to get the flow and step counters too.
    pub fn with_metrics(mut self, metrics: Arc<WorkflowMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replaces the config.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Replaces what the controller watches (selectors, filter, owned types).
    pub fn with_watch(mut self, watch: Watch<K>) -> Self {
        self.watch = watch;
        self
    }

    /// Runs `guard` before the state machine in every reconcile the filter admits.
    pub fn with_guard(mut self, guard: impl Guard<K>) -> Self {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the controller watches.
    pub fn watch(&self) -> &Watch<K> {
        &self.watch
    }

    /// The metrics counting reconciles, if any.
    pub fn metrics(&self) -> Option<&Arc<WorkflowMetrics>> {
        self.metrics.as_ref()
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// One reconcile, returning the full decision: the filter, the guard, then the state
    /// machine (recovery first) under the resource's lock. `obj` may be a stale copy (the
    /// controller's cache): the engine reads the object fresh before it decides anything,
    /// and a resource that is gone ends the reconcile quietly.
    pub async fn decide(&self, obj: &K) -> Result<Decision, ReconcileError> {
        let decision = self.decide_inner(obj).await;
        if let Some(metrics) = &self.metrics {
            metrics.record_reconcile(decision.as_ref().map_or("error", Decision::label));
        }
        decision
    }

    async fn decide_inner(&self, obj: &K) -> Result<Decision, ReconcileError> {
        if !self.watch.admits(obj) {
            return Ok(Decision::handled(Decision::FILTERED, None));
        }
        let key = wf_engine::ResourceKey::new(obj.namespace().unwrap_or_default(), obj.name_any());
        let decision = match &self.guard {
            Some(guard) => guard
                .before(obj)
                .await
                .map_err(|source| ReconcileError::Guard {
                    resource: key.to_string(),
                    source,
                })?,
            None => None,
        };
        let decision = match decision {
            Some(decision) => Ok(decision),
            None => {
                let resource = (self.factory)(&self.client, obj.clone());
                decide(self.machine.reconcile(&resource, &self.manager).await)
            }
        };
        if decision.as_ref().is_ok_and(Decision::is_gone) {
            // Gone: drop what is cached for it (the memento store).
            self.manager.forget(&key);
        }
        decision
    }

    /// One reconcile, as the controller calls it.
    pub async fn reconcile(&self, obj: Arc<K>) -> Result<Action, ReconcileError> {
        self.in_flight
            .track_future(self.decide(&obj))
            .await
            .map(|d| d.action())
    }

    /// [`Reconciler::reconcile`] on a task of its own, which the controller only awaits: if
    /// the controller drops the reconcile (it can while shutting down), the flow still
    /// reaches its next persisted transition, and [`Reconciler::run_until`] waits for it.
    async fn reconcile_detached(self: Arc<Self>, obj: Arc<K>) -> Result<Action, ReconcileError> {
        let (this, target) = (self.clone(), obj.clone());
        let task = self
            .in_flight
            .spawn(async move { this.decide(&target).await.map(|d| d.action()) });
        task.await.map_err(|e| ReconcileError::Task {
            resource: format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
            message: e.to_string(),
        })?
    }

    /// The controller's error policy: retry after [`Config::error_requeue`].
    pub fn error_policy(&self, obj: Arc<K>, err: &ReconcileError) -> Action {
        tracing::error!(resource = %obj.name_any(), error = %err, "reconcile failed");
        Action::requeue(self.config.error_requeue)
    }

    /// Runs the controller over `api` until SIGTERM or ctrl-c (see
    /// [`Reconciler::run_until`]).
    pub async fn run(self, api: kube::Api<K>) {
        self.run_until(api, shutdown_signal()).await;
    }

    /// Runs the controller over `api` (and the owned types of the [`Watch`]) until `stop`
    /// resolves, then shuts down gracefully: the manager starts draining
    /// ([`WorkflowManager::set_draining`]), so each running flow finishes its current step,
    /// saves it and parks; the controller starts no new reconcile, and this returns once no
    /// reconcile of this reconciler is running any more.
    ///
    /// The manager stays draining after the return, so a reconcile that outlives the
    /// controller cannot start another step; calling `run_until` again (e.g. when
    /// leadership comes back) switches draining off first.
    pub async fn run_until<S>(self, api: kube::Api<K>, stop: S)
    where
        S: std::future::Future<Output = ()> + Send + 'static,
    {
        let manager = self.manager.clone();
        let in_flight = self.in_flight.clone();
        manager.set_draining(false);
        in_flight.reopen();
        let drain = manager.clone();
        let concurrency = self.config.concurrency;
        // The controller wants a `Sync` trigger; `stop` need not be one.
        let (fire, fired) = tokio::sync::oneshot::channel::<()>();
        let watcher_task = tokio::spawn(async move {
            stop.await;
            let _ = fire.send(());
        });
        self.watch
            .controller(api)
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(async move {
                // A dropped sender (the task aborted) also ends the controller.
                let _ = fired.await;
                tracing::info!("stopping: draining running flows");
                drain.set_draining(true);
            })
            .run(
                |obj, ctx: Arc<Self>| ctx.reconcile_detached(obj),
                |obj, err, ctx| ctx.error_policy(obj, err),
                Arc::new(self),
            )
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "controller");
                }
            })
            .await;
        watcher_task.abort();
        // The controller may end with a reconcile still running (a requeue picked up during
        // the shutdown): wait until it has parked.
        manager.set_draining(true);
        in_flight.close();
        in_flight.wait().await;
        tracing::info!("controller stopped");
    }

    /// The workflow manager.
    pub fn manager(&self) -> &WorkflowManager<R> {
        &self.manager
    }
}

/// Resolves on SIGTERM or ctrl-c (ctrl-c only where there are no Unix signals).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
