//! `wf-engine`: a durable, crash-safe workflow engine and state machine for operators.
//!
//! An operator watches resources. A [`StateMachine`] decides, from a resource's state and
//! whatever it wants to look at, whether the resource must leave a *stable* state (`Running`,
//! `Interrupt`, `Init`) for an *unstable* one (`Creating`, `ModifyClass`, …). Each unstable
//! state runs a *flow*: an ordered list of [`Step`]s declared in YAML and implemented in
//! Rust. A [`WorkflowManager`] runs flows and persists every transition in a memento store,
//! so a crashed or restarted operator resumes where it stopped: a completed step never runs
//! again, a step that was running runs again. Steps can retry (with backoff returned as a
//! requeue hint, never slept), wait for the outside world, be interrupted, be recovered by a
//! human and be cancelled.
//!
//! This crate has no Kubernetes dependency; `wf-kube` puts it on Kubernetes. Start with
//! [`WorkflowManager::builder`] and [`StateMachine::new`], then call
//! [`StateMachine::reconcile`] whenever the resource changes or the returned
//! [`Reconciled::requeue_after`] elapses.
//!
//! # The eight steps of an operator author
//!
//! ```
//! use wf_engine::{
//!     async_trait, BoxError, CancellationToken, Event, InMemoryMementoStore, JsonMap,
//!     MemoryResource, MemoryResourceStore, ResourceKey, ResourceRecord, State, StateMachine,
//!     StateResource, StaticLoader, Step, StepContext, StepError, StepOutcome, WorkflowManager,
//! };
//!
//! // 8. The flow metadata, normally a file `workflows/<resource type>/<Flow>.yaml`.
//! const CREATE: &str = r#"
//! flowName: CreateCluster
//! recoverFromFirstStep: false
//! steps:
//!   - className: demo.InitMeta
//!     stepName: InitMeta
//!   - className: demo.UpdateRunningStatus
//!     stepName: UpdateRunningStatus
//! "#;
//!
//! // 3. The resource: anything that implements `StateResource`. `MemoryResource` lives in
//! //    memory; wf-kube's `KubeResource` wraps any custom resource with a status.
//!
//! // 4. A step base: what every step of this operator loads in `init`.
//! struct Base {
//!     store: MemoryResourceStore,
//!     resource: Option<MemoryResource>,
//! }
//!
//! impl Base {
//!     fn new(store: &MemoryResourceStore) -> Self {
//!         Base { store: store.clone(), resource: None }
//!     }
//!     fn load(&mut self, ctx: &StepContext) -> Result<&MemoryResource, StepError> {
//!         let key = ResourceKey::new(ctx.resource_namespace()?, ctx.resource_name()?);
//!         let found = self.store.get(&key);
//!         Ok(self.resource.insert(found.ok_or_else(|| StepError::failed(format!("{key} is gone")))?))
//!     }
//!     fn resource(&self) -> Result<&MemoryResource, StepError> {
//!         self.resource.as_ref().ok_or_else(|| StepError::failed("init did not run"))
//!     }
//! }
//!
//! // 5. The steps.
//! struct InitMeta(Base);
//!
//! #[async_trait]
//! impl Step for InitMeta {
//!     async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
//!         self.0.load(ctx)?;
//!         Ok(())
//!     }
//!     async fn do_step(&mut self, _cancel: &CancellationToken) -> Result<StepOutcome, StepError> {
//!         Ok(StepOutcome::Done)
//!     }
//!     fn output(&self) -> JsonMap {
//!         JsonMap::from_iter([("metaReady".to_string(), true.into())])
//!     }
//! }
//!
//! struct UpdateRunningStatus(Base);
//!
//! #[async_trait]
//! impl Step for UpdateRunningStatus {
//!     async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
//!         // Every step sees the init context and ALL earlier outputs, typed.
//!         assert!(ctx.get::<bool>("metaReady")?);
//!         self.0.load(ctx)?;
//!         Ok(())
//!     }
//!     async fn do_step(&mut self, _cancel: &CancellationToken) -> Result<StepOutcome, StepError> {
//!         self.0.resource()?.update_state(State::RUNNING).await?;
//!         Ok(StepOutcome::Done)
//!     }
//! }
//!
//! // 7a. The event checker of a translation out of a stable state.
//! fn check_install(r: &MemoryResource) -> Result<Option<Event>, BoxError> {
//!     let state = r.state();
//!     let installing = state.is_empty() || state == State::INIT || state == State::CREATING;
//!     Ok(installing.then(|| Event::new("Creating")))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wf_engine::Error> {
//! let resources = MemoryResourceStore::new();
//! let (a, b) = (resources.clone(), resources.clone());
//!
//! // 2 + 6. The workflow manager, with its flows, memento store and steps.
//! let manager = WorkflowManager::<MemoryResource>::builder("demo")
//!     .loader(StaticLoader::new().with("demo/CreateCluster.yaml", CREATE))
//!     .memento_store(InMemoryMementoStore::new())
//!     .step("demo.InitMeta", move || InitMeta(Base::new(&a)))
//!     .step("demo.UpdateRunningStatus", move || UpdateRunningStatus(Base::new(&b)))
//!     .build()?;
//! manager.validate()?; // every className is registered
//!
//! // 1 + 7b. The state machine: stable states, then translation + entry in one call.
//! let mut sm = StateMachine::new("demo");
//! sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
//! sm.register_translate_main_enter(
//!     State::INIT,
//!     check_install,
//!     State::CREATING,
//!     manager.flow_entry("CreateCluster", false),
//! );
//! sm.validate_flows(&manager)?;
//!
//! // Reconcile until nothing asks to come back.
//! let cluster = resources.insert(
//!     ResourceKey::new("default", "c1"),
//!     ResourceRecord { state: State::INIT, ..ResourceRecord::default() },
//! );
//! while sm.reconcile(&cluster, &manager).await?.requeue_after().is_some() {}
//! assert_eq!(cluster.fetch().await?.state(), State::RUNNING);
//! # Ok(())
//! # }
//! ```
//!
//! # Where things are
//!
//! - [`StateMachine`]: stable states, translations, entries; [`Reconciled`] is what a call did.
//! - [`WorkflowManager`] and [`ResourceWorkflow`]: flows for a resource type and for one resource.
//! - [`Step`], [`StepOutcome`], [`StepError`], [`StepContext`]: what a step author writes.
//! - [`metadata`]: the YAML loader, step groups and the [`FlowCatalog`].
//! - [`RetryPolicy`]: `maxRetries`, `backoff`, `timeout`, in code and in YAML.
//! - [`memento`]: the storage trait, the caretaker (retention, byte budget), and the
//!   in-memory and file stores.
//! - [`hook`]: hook points and the JSON-lines [`hook::HistoryRecorder`].
#![deny(missing_docs)]

mod cancel;
mod config;
mod context;
mod error;
mod event;
mod execution;
pub mod hook;
mod lock;
mod manager;
pub mod memento;
mod memory_resource;
pub mod metadata;
mod reconciled;
mod recover;
mod registry;
mod resource;
mod retry;
mod runtime;
mod state;
mod state_machine;
mod step;
mod workflow;

#[cfg(test)]
mod tests;

pub use async_trait::async_trait;
pub use tokio_util::sync::CancellationToken;

pub use config::{InterruptAnnotations, WorkflowConfig};
pub use context::{ContextError, StepContext};
pub use error::{BoxError, Error};
pub use event::Event;
pub use execution::{CANCELLED, MANY_RETRY, UNKNOWN_TASK};
pub use hook::{HistoryRecorder, HookEvent, WorkflowHook};
pub use lock::{ResourceLockGuard, ResourceLocks};
pub use manager::{FlowEntry, WorkflowManager, WorkflowManagerBuilder};
pub use memento::{
    FileMementoStore, InMemoryMementoStore, MementoError, MementoStorage, MementoStorageFactory,
    StoredRuntime,
};
pub use memory_resource::{MemoryResource, MemoryResourceStore, ResourceRecord};
pub use metadata::{
    FlowCatalog, FlowLoader, FlowMeta, MetadataError, StaticLoader, StepMeta, YamlDirLoader,
};
pub use reconciled::Reconciled;
pub use recover::{AnnotationRecover, RecoverStrategy};
pub use registry::{StepFactory, StepRegistry};
pub use resource::{AnnotationPatch, ResourceError, ResourceKey, StateResource};
pub use retry::{Backoff, BackoffSpec, RetryPolicy, RetryPolicyError, RetrySpec};
pub use runtime::{FlowStatus, StepRuntime, StepStatus, WorkflowRuntime};
pub use state::State;
pub use state_machine::{Checker, MainEnter, StateMachine};
pub use step::{Step, StepError, StepOutcome};
pub use workflow::{ResourceWorkflow, RunOutcome, RunReport};

/// A JSON object: contexts, event parameters and step outputs.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
