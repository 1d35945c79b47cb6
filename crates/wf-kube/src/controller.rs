//! The controller runner: one [`Reconciler`] maps each reconcile of a `K` onto
//! [`wf_engine::StateMachine::reconcile`] and the result onto a
//! [`kube::runtime::controller::Action`].
//!
//! | engine result                         | action                         |
//! |---------------------------------------|--------------------------------|
//! | stable, interrupted                   | `await_change`                 |
//! | transitioned, completed, recovered    | requeue at once                |
//! | waiting                               | requeue after the step's delay |
//! | retryable step failure                | requeue after the backoff      |
//! | resource not found                    | `await_change`, no error       |
//! | any other error                       | `Err`, `error_policy` requeues |
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
use kube::runtime::{watcher, Controller};
use kube::ResourceExt;
use tokio_util::task::TaskTracker;
use wf_engine::{Reconciled, StateMachine, StateResource, WorkflowManager};

use crate::{KubeObject, KubeResource, StateField, WorkflowMetrics};

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
    /// The reconcile task panicked or was aborted.
    #[error("reconcile of {resource} did not finish: {message}")]
    Task {
        /// `namespace/name`.
        resource: String,
        /// What happened to the task.
        message: String,
    },
}

/// What a reconcile decided: the engine's result (`None` when the resource is gone) and when
/// to come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The engine's result; `None` when the resource was not found or a step failed.
    pub reconciled: Option<Reconciled>,
    /// When to reconcile again (`None`: on the next change).
    pub requeue_after: Option<Duration>,
}

impl Decision {
    /// A short label of what happened, for the `wf_reconciles_total{result}` metric:
    /// `stable`, `transitioned`, `completed`, `settled`, `waiting`, `interrupted`,
    /// `recovered`, `retry` (a retryable step failure) or `not_found`.
    pub fn label(&self) -> &'static str {
        match &self.reconciled {
            Some(Reconciled::Stable { .. }) => "stable",
            Some(Reconciled::Transitioned { .. }) => "transitioned",
            Some(Reconciled::FlowCompleted { .. }) => "completed",
            Some(Reconciled::Settled) => "settled",
            Some(Reconciled::Waiting { .. }) => "waiting",
            Some(Reconciled::Interrupted { .. }) => "interrupted",
            Some(Reconciled::Recovered { .. }) => "recovered",
            None if self.is_gone() => "not_found",
            None => "retry",
        }
    }

    /// Whether the resource was not found (deleted).
    pub fn is_gone(&self) -> bool {
        self.reconciled.is_none() && self.requeue_after.is_none()
    }

    /// The controller action.
    pub fn action(&self) -> Action {
        match self.requeue_after {
            Some(delay) => Action::requeue(delay),
            None => Action::await_change(),
        }
    }
}

/// Maps an engine result to a decision (see the module table).
pub fn decide(result: Result<Reconciled, wf_engine::Error>) -> Result<Decision, ReconcileError> {
    match result {
        Ok(reconciled) => Ok(Decision {
            requeue_after: reconciled.requeue_after(),
            reconciled: Some(reconciled),
        }),
        Err(wf_engine::Error::Resource(e)) if e.is_not_found() => Ok(Decision {
            reconciled: None,
            requeue_after: None,
        }),
        Err(e) => match e.requeue_after() {
            Some(delay) => {
                tracing::warn!(error = %e, ?delay, "retryable step failure");
                Ok(Decision {
                    reconciled: None,
                    requeue_after: Some(delay),
                })
            }
            None => Err(ReconcileError::Engine(e)),
        },
    }
}

/// Runs the state machine of `K` for each reconcile of the controller.
pub struct Reconciler<K: KubeObject, F: StateField<K>> {
    machine: Arc<StateMachine<KubeResource<K, F>>>,
    manager: WorkflowManager<KubeResource<K, F>>,
    client: kube::Client,
    config: Config,
    metrics: Option<Arc<WorkflowMetrics>>,
    /// The reconciles in flight, so a shutdown can wait for the last one.
    in_flight: TaskTracker,
}

impl<K: KubeObject, F: StateField<K>> Clone for Reconciler<K, F> {
    /// A handle on the same machine, manager, metrics and in-flight reconciles.
    fn clone(&self) -> Self {
        Reconciler {
            machine: self.machine.clone(),
            manager: self.manager.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

impl<K: KubeObject, F: StateField<K>> Reconciler<K, F> {
    /// A reconciler with the default [`Config`].
    pub fn new(
        machine: Arc<StateMachine<KubeResource<K, F>>>,
        manager: WorkflowManager<KubeResource<K, F>>,
        client: kube::Client,
    ) -> Self {
        Reconciler {
            machine,
            manager,
            client,
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

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The metrics counting reconciles, if any.
    pub fn metrics(&self) -> Option<&Arc<WorkflowMetrics>> {
        self.metrics.as_ref()
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// One reconcile, returning the full decision: the state machine (recovery first) under
    /// the resource's lock. `obj` may be a stale copy (the controller's cache): the engine
    /// reads the object fresh before it decides anything, and a resource that is gone ends
    /// the reconcile quietly.
    pub async fn decide(&self, obj: &K) -> Result<Decision, ReconcileError> {
        let resource = KubeResource::<K, F>::new(self.client.clone(), obj.clone());
        let decision = decide(self.machine.reconcile(&resource, &self.manager).await);
        if decision.as_ref().is_ok_and(Decision::is_gone) {
            // Gone: drop what is cached for it (the memento store).
            self.manager.forget(&resource.key());
        }
        if let Some(metrics) = &self.metrics {
            metrics.record_reconcile(decision.as_ref().map_or("error", Decision::label));
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

    /// Runs the controller over `api` until `stop` resolves, then shuts down gracefully:
    /// the manager starts draining ([`WorkflowManager::set_draining`]), so each running flow
    /// finishes its current step, saves it and parks; the controller starts no new
    /// reconcile, and this returns once no reconcile of this reconciler is running any more.
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
        Controller::new(api, watcher::Config::default())
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
    pub fn manager(&self) -> &WorkflowManager<KubeResource<K, F>> {
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
