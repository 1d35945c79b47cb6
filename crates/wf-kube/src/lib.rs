//! `wf-kube`: the Kubernetes backend of `wf-engine`.
//!
//! - [`KubeResource`] makes any namespaced object with a status a
//!   [`wf_engine::StateResource`]: the state is read from the object and written with a merge
//!   patch on the status subresource, annotations are changed with a merge patch of
//!   `metadata.annotations`, and the resource counts as cancelled when it is gone, being
//!   deleted, or annotated `cancelled: "true"`.
//! - [`ConfigMapMementoFactory`] keeps each resource's runtimes in the ConfigMap
//!   `<name>-workflow` of its namespace (label `flowJobsDomain: <name>`, a controller owner
//!   reference to the resource), with optimistic concurrency on `resourceVersion` and a cache
//!   so a step costs no read and one write per save in the steady state.
//! - [`WorkflowMetrics`] is a hook counting runs, steps and interrupts, rendered in the
//!   Prometheus text format; [`EventRecorderHook`] is an optional, rate-limited hook
//!   publishing a Kubernetes Event on the resource at each transition.
//! - [`http::serve`] answers `/metrics` (with `wf_leader` and `wf_ready` gauges), `/healthz`
//!   and `/readyz` from the [`WorkflowMetrics`] and the [`Health`] flags, with hyper and a
//!   graceful shutdown.
//! - [`LeaderElector`] elects one leader among operator replicas on a
//!   `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! - [`Reconciler`] maps each reconcile of `kube::runtime::Controller` onto the state machine
//!   (recovery first) and its result onto a requeue decision; [`Operator`] runs it with
//!   leader election, the HTTP endpoints and a graceful stop that lets the running step
//!   reach a saved transition. The engine's resource is a [`KubeResource`]
//!   ([`Reconciler::new`]) or any [`wf_engine::StateResource`] built from the watched object
//!   ([`Reconciler::with_resource`]; implement [`ObjectSnapshot`] for it to keep its runs in
//!   ConfigMaps). A [`Watch`] says what the controller watches (selectors, a filter, owned
//!   child types); a [`Guard`] runs before the state machine (finalizers, deletion).
//! - [`install_crypto_provider`] makes ring rustls' crypto provider, so https kubeconfigs
//!   work in any build.
//!
//! # Example
//!
//! A custom resource `Db` whose state is `status.state`, a one-step flow that marks it
//! `Running`, and reconciles driven by hand until the runner waits for a change. It runs
//! here on `kube-fake-client`; on a cluster, `kube::Client::try_default()` replaces the fake
//! and [`Operator::run`] (or [`Reconciler::run`]) drives the reconciles.
//!
//! ```
//! use std::sync::Arc;
//! use kube::CustomResource;
//! use serde::{Deserialize, Serialize};
//! use wf_engine::{
//!     async_trait, BoxError, CancellationToken, Event, State, StateMachine, StateResource, Step,
//!     StepContext, StepError, StepOutcome, StaticLoader, WorkflowManager,
//! };
//! use wf_kube::{ConfigMapMementoFactory, KubeResource, Reconciler, StateField};
//!
//! #[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
//! #[kube(group = "example.com", version = "v1", kind = "Db", namespaced, status = "DbStatus",
//!        derive = "Default")]
//! pub struct DbSpec {
//!     replicas: i32,
//! }
//!
//! #[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
//! pub struct DbStatus {
//!     #[serde(default)]
//!     state: String,
//! }
//!
//! /// Where the state lives: `status.state`, written with a status merge patch.
//! struct StateOf;
//! impl StateField<Db> for StateOf {
//!     fn read(object: &Db) -> String {
//!         object.status.as_ref().map(|s| s.state.clone()).unwrap_or_default()
//!     }
//!     fn patch(state: &str) -> serde_json::Value {
//!         serde_json::json!({ "status": { "state": state } })
//!     }
//! }
//! type DbResource = KubeResource<Db, StateOf>;
//!
//! /// The flow's only step: mark the resource `Running`.
//! struct MarkRunning {
//!     client: kube::Client,
//!     target: (String, String),
//! }
//! #[async_trait]
//! impl Step for MarkRunning {
//!     async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
//!         self.target = (ctx.resource_namespace()?, ctx.resource_name()?);
//!         Ok(())
//!     }
//!     async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
//!         let (ns, name) = &self.target;
//!         let db = DbResource::get(self.client.clone(), ns, name)
//!             .await
//!             .map_err(|e| StepError::failed(e.to_string()))?;
//!         db.update_state(State::RUNNING).await?;
//!         Ok(StepOutcome::Done)
//!     }
//! }
//!
//! /// Init and Creating ask for the flow; the entry checks again before it starts one.
//! fn needs_create(db: &DbResource) -> Result<Option<Event>, BoxError> {
//!     let state = db.state().effective();
//!     Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut db = Db::new("orders", DbSpec { replicas: 1 });
//! db.metadata.namespace = Some("shop".into());
//! db.status = Some(DbStatus { state: "Init".into() });
//! let client = kube_fake_client::ClientBuilder::new()
//!     .with_resource::<Db>()
//!     .with_status_subresource::<Db>()
//!     .with_object(db.clone())
//!     .build()
//!     .await?;
//!
//! let flows = StaticLoader::new().with(
//!     "Db/create.yaml",
//!     "flowName: Create\nsteps:\n  - {className: db.MarkRunning, stepName: MarkRunning}\n",
//! );
//! let c = client.clone();
//! let manager = WorkflowManager::<DbResource>::builder("Db")
//!     .loader(flows)
//!     .step("db.MarkRunning", move || MarkRunning { client: c.clone(), target: Default::default() })
//!     // Runs are kept in the ConfigMap `orders-workflow`, owned by the resource.
//!     .memento_store(ConfigMapMementoFactory::new(client.clone()))
//!     .build()?;
//! let mut machine = StateMachine::new("Db");
//! machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
//! machine.register_translate_main_enter(
//!     State::INIT, needs_create, State::CREATING, manager.flow_entry("Create"),
//! );
//! machine.validate_flows(&manager)?;
//! let reconciler = Reconciler::new(Arc::new(machine), manager, client.clone());
//!
//! // What `kube::runtime::Controller` does: reconcile, then come back when told to.
//! let mut decisions = Vec::new();
//! loop {
//!     let decision = reconciler.decide(&db).await?;
//!     decisions.push(decision.label());
//!     match decision.requeue_after {
//!         Some(delay) => tokio::time::sleep(delay).await,
//!         None => break,
//!     }
//! }
//! assert_eq!(decisions, ["transitioned", "completed", "stable"]);
//! assert_eq!(DbResource::get(client, "shop", "orders").await?.state(), State::RUNNING);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod controller;
pub mod events;
pub mod guard;
pub mod health;
pub mod http;
pub mod leader;
pub mod memento;
pub mod metrics;
pub mod operator;
pub mod resource;
pub mod tls;
pub mod watch;

pub use controller::{decide, shutdown_signal, Config, Decision, ReconcileError, Reconciler};
pub use events::{EventRecorderHook, RateLimiter};
pub use guard::Guard;
pub use health::Health;
pub use http::{HttpError, HttpServer};
pub use leader::{LeaderElector, LeaderError, LeaderHandle, LeaseConfig};
pub use memento::{ConfigMapMementoFactory, ConfigMapMementoStorage, DOMAIN_LABEL};
pub use metrics::WorkflowMetrics;
pub use operator::{Operator, OperatorError};
pub use resource::{
    map_error, KubeObject, KubeResource, ObjectSnapshot, StateField, CANCELLED_ANNOTATION,
};
pub use tls::install_crypto_provider;
pub use watch::Watch;
