//! [`Operator`]: the [`Reconciler`] with what runs around it in a deployment — leader
//! election, the `/metrics`, `/healthz` and `/readyz` endpoints, and a graceful stop.
//!
//! [`Operator::run_until`]:
//! 1. binds the HTTP endpoints (when asked) and marks the process ready;
//! 2. without leader election, runs the controller until the stop; with it, waits to lead,
//!    runs the controller while leading, and when leadership is lost stops reconciling
//!    (the running flows park at their next step, see [`Reconciler::run_until`]) and stands
//!    by as a candidate again;
//! 3. on the stop: `/readyz` fails at once, the controller drains, then the lease is
//!    released (a standby takes over without waiting for it to expire) and the HTTP server
//!    stops.
//!
//! # Example
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use kube::CustomResource;
//! # use serde::{Deserialize, Serialize};
//! # use wf_engine::{StateMachine, WorkflowManager};
//! # use wf_kube::{ConfigMapMementoFactory, KubeResource, StateField};
//! # #[derive(CustomResource, Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
//! # #[kube(group = "example.com", version = "v1", kind = "Db", namespaced, status = "DbStatus")]
//! # pub struct DbSpec {}
//! # #[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
//! # pub struct DbStatus { state: String }
//! # struct StateOf;
//! # impl StateField<Db> for StateOf {
//! #     fn read(o: &Db) -> String { o.status.as_ref().map(|s| s.state.clone()).unwrap_or_default() }
//! #     fn patch(state: &str) -> serde_json::Value { serde_json::json!({"status": {"state": state}}) }
//! # }
//! use wf_kube::{LeaseConfig, Operator, Reconciler, WorkflowMetrics};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let metrics = Arc::new(WorkflowMetrics::new());
//! let manager = WorkflowManager::<KubeResource<Db, StateOf>>::builder("Db")
//!     .flow_dir("/etc/operator/flows")
//!     .memento_store(ConfigMapMementoFactory::new(client.clone()))
//!     .shared_hook(metrics.clone())
//!     .build()?;
//! let machine = StateMachine::new("Db"); // states, translations and entries go here
//! let reconciler = Reconciler::new(Arc::new(machine), manager, client.clone());
//! Operator::new(reconciler, kube::Api::<Db>::all(client))
//!     .with_metrics(metrics)
//!     .with_http(([0, 0, 0, 0], 8080).into())
//!     .with_leader_election(LeaseConfig::new("operators", "db-operator", std::env::var("POD_NAME")?))
//!     .run() // until SIGTERM
//!     .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use kube::Api;
use wf_engine::CancellationToken;

use crate::controller::shutdown_signal;
use crate::http::{self, HttpError, HttpServer};
use wf_engine::StateResource;

use crate::{
    Health, KubeObject, LeaderElector, LeaderError, LeaderHandle, LeaseConfig, Reconciler,
    WorkflowMetrics,
};

/// Why an [`Operator`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The leader election could not start (e.g. an invalid [`LeaseConfig`]).
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// The HTTP endpoints could not be served (e.g. the address is taken).
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// A [`Reconciler`] with leader election, HTTP endpoints and a graceful stop; see the
/// [module](self) docs.
pub struct Operator<K: KubeObject, R: StateResource> {
    reconciler: Reconciler<K, R>,
    api: Api<K>,
    lease: Option<LeaseConfig>,
    http: Option<HttpBind>,
    metrics: Arc<WorkflowMetrics>,
    health: Arc<Health>,
}

/// Where the HTTP endpoints listen.
enum HttpBind {
    Addr(SocketAddr),
    Listener(tokio::net::TcpListener),
}

impl<K: KubeObject, R: StateResource> Operator<K, R> {
    /// An operator running `reconciler` over the objects of `api` (and the owned types of its
    /// [`crate::Watch`]): no leader election, no
    /// HTTP endpoints; reconciles are counted in the reconciler's metrics (a fresh
    /// [`WorkflowMetrics`] when it has none).
    pub fn new(reconciler: Reconciler<K, R>, api: Api<K>) -> Self {
        let metrics = reconciler
            .metrics()
            .cloned()
            .unwrap_or_else(|| Arc::new(WorkflowMetrics::new()));
        Operator {
            reconciler: reconciler.with_metrics(metrics.clone()),
            api,
            lease: None,
            http: None,
            metrics,
            health: Arc::new(Health::new()),
        }
    }

    /// Uses `metrics` for the reconcile counts and the `/metrics` endpoint. Register the same
    /// value as a hook of the workflow manager to count flows and steps too.
    pub fn with_metrics(mut self, metrics: Arc<WorkflowMetrics>) -> Self {
        self.reconciler = self.reconciler.with_metrics(metrics.clone());
        self.metrics = metrics;
        self
    }

    /// Reconciles only while holding the lease of `config`.
    pub fn with_leader_election(mut self, config: LeaseConfig) -> Self {
        self.lease = Some(config);
        self
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `addr` (bound when the operator
    /// starts; a taken address fails [`Operator::run_until`]).
    pub fn with_http(mut self, addr: SocketAddr) -> Self {
        self.http = Some(HttpBind::Addr(addr));
        self
    }

    /// Serves the HTTP endpoints on a listener bound already (e.g. on port 0 in a test).
    pub fn with_http_listener(mut self, listener: tokio::net::TcpListener) -> Self {
        self.http = Some(HttpBind::Listener(listener));
        self
    }

    /// The health flags behind `/healthz` and `/readyz` (e.g. to mark the process broken).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// The metrics behind `/metrics`.
    pub fn metrics(&self) -> Arc<WorkflowMetrics> {
        self.metrics.clone()
    }

    /// Runs until SIGTERM or ctrl-c; see [`Operator::run_until`].
    pub async fn run(self) -> Result<(), OperatorError> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `stop` resolves, then stops gracefully (see the [module](self) docs).
    /// Fails before reconciling anything when the lease config is invalid or the HTTP
    /// address cannot be bound.
    pub async fn run_until<S>(self, stop: S) -> Result<(), OperatorError>
    where
        S: Future<Output = ()> + Send + 'static,
    {
        let Operator {
            reconciler,
            api,
            lease,
            http,
            metrics,
            health,
        } = self;
        let elector = match lease {
            Some(config) => Some(Arc::new(LeaderElector::new(
                reconciler.client().clone(),
                config,
            )?)),
            None => None,
        };
        // Cancelled once the controller has drained: stops the elector (releasing the
        // lease) and the HTTP server.
        let background = CancellationToken::new();
        let server = match http {
            Some(bind) => {
                let listener = match bind {
                    HttpBind::Addr(addr) => http::bind(addr).await?,
                    HttpBind::Listener(listener) => listener,
                };
                let addr = listener.local_addr().map_err(HttpError::LocalAddr)?;
                tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
                let server = HttpServer::new(metrics, health.clone());
                Some(tokio::spawn(
                    server.serve(listener, background.clone().cancelled_owned()),
                ))
            }
            None => None,
        };
        let stopping = CancellationToken::new();
        let watcher = tokio::spawn({
            let (stopping, health) = (stopping.clone(), health.clone());
            async move {
                stop.await;
                health.set_shutting_down();
                stopping.cancel();
            }
        });
        let election = elector.map(|elector| elector.spawn(background.clone()));
        health.set_ready(true);

        match &election {
            None => {
                health.set_leader(true);
                reconciler
                    .run_until(api, stopping.clone().cancelled_owned())
                    .await;
                health.set_leader(false);
            }
            Some(election) => {
                reconcile_while_leading(&reconciler, &api, election, &stopping, &health).await;
            }
        }

        health.set_shutting_down();
        background.cancel();
        watcher.abort();
        if let Some(election) = election {
            if let Err(error) = election.join().await {
                tracing::warn!(%error, "leader election task ended abnormally");
            }
        }
        if let Some(server) = server {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "HTTP server"),
                Err(error) => tracing::warn!(%error, "HTTP server task ended abnormally"),
            }
        }
        tracing::info!("operator stopped");
        Ok(())
    }
}

/// Runs the controller during each term of leadership, until `stopping` is cancelled: wait
/// to lead, reconcile until the lease is lost (or the stop), then stand by again.
async fn reconcile_while_leading<K: KubeObject, R: StateResource>(
    reconciler: &Reconciler<K, R>,
    api: &Api<K>,
    election: &LeaderHandle,
    stopping: &CancellationToken,
    health: &Health,
) {
    loop {
        let mut leading = election.subscribe();
        let became_leader = tokio::select! {
            _ = stopping.cancelled() => false,
            changed = leading.wait_for(|leader| *leader) => changed.is_ok(),
        };
        if !became_leader {
            return;
        }
        health.set_leader(true);
        tracing::info!("leading: reconciling");
        let mut lost = election.subscribe();
        let until = stopping.clone();
        reconciler
            .clone()
            .run_until(api.clone(), async move {
                tokio::select! {
                    _ = until.cancelled() => {}
                    _ = lost.wait_for(|leader| !*leader) => {}
                }
            })
            .await;
        health.set_leader(false);
        if stopping.is_cancelled() {
            return;
        }
        tracing::warn!("leadership lost: stopped reconciling, standing by");
    }
}
