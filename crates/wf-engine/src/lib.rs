//! `wf-engine`: a durable, crash-safe workflow engine and state machine for operators.
//!
//! An operator watches resources. A [`StateMachine`] decides, from a resource's state and
//! whatever it wants to look at, whether the resource must leave a *stable* state (`Running`,
//! `Interrupt`, `Init`) for an *unstable* one (`Creating`, `ModifyClass`, …). Each unstable
//! state runs a *flow*: an ordered list of [`Step`]s declared in YAML and implemented in
//! Rust. A [`WorkflowManager`] runs flows and persists every transition in a memento store,
//! so a crashed or restarted operator resumes where it stopped: a completed step never runs
//! again, a step that was running runs again (a *resume*, not a failure). Steps can retry
//! (with backoff returned as a requeue hint, never slept), wait for the outside world, be
//! interrupted, be recovered by a human and be cancelled.
//!
//! The contract (every rule, with the test that checks it) is
//! [`docs/SEMANTICS.md`](../../../docs/SEMANTICS.md); the guide walks through a whole
//! operator ([`docs/GUIDE.md`](../../../docs/GUIDE.md), Part 2, and
//! `cargo run -p wf-engine --example bucket`).
//!
//! This crate has no Kubernetes dependency; `wf-kube` puts it on Kubernetes. Start with
//! [`WorkflowManager::builder`] and [`StateMachine::new`], then let a [`ReconcileLoop`] call
//! [`StateMachine::reconcile`] until the resource rests (or call it yourself whenever the
//! resource changes or the returned [`Reconciled::requeue_after`] elapses).
//!
//! # The eight steps of an operator author
//!
//! ```
//! use wf_engine::{
//!     async_trait, BoxError, CancellationToken, Event, LoopOutcome, MemoryResource,
//!     MemoryResourceStore, ReconcileLoop, ResourceKey, ResourceRecord, State, StateMachine,
//!     StateResource, StaticLoader, Step, StepContext, StepError, StepOutcome, WorkflowManager,
//! };
//!
//! // 8. The flow metadata, normally a file `workflows/<resource type>/<Flow>.yaml`.
//! const CREATE: &str = r#"
//! flowName: CreateCluster
//! steps:
//!   - className: demo.InitMeta
//!     stepName: InitMeta
//!   - className: demo.UpdateRunningStatus
//!     stepName: UpdateRunningStatus
//! "#;
//!
//! // 3. The resource: anything that implements `StateResource`. `MemoryResource` lives in
//! //    memory, `FileResource` in files (it survives a restart); wf-kube's `KubeResource`
//! //    wraps any custom resource with a status.
//!
//! // 4 + 5. The steps. `init` loads what the step needs: the resource by its key, the
//! //    outputs of earlier steps, typed.
//! #[derive(serde::Serialize, serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Meta {
//!     meta_ready: bool,
//! }
//!
//! struct InitMeta;
//!
//! #[async_trait]
//! impl Step for InitMeta {
//!     async fn do_step(&mut self, _cancel: &CancellationToken) -> Result<StepOutcome, StepError> {
//!         Ok(StepOutcome::done_with(&Meta { meta_ready: true })?)
//!     }
//! }
//!
//! struct UpdateRunningStatus {
//!     resources: MemoryResourceStore,
//!     cluster: Option<MemoryResource>,
//! }
//!
//! #[async_trait]
//! impl Step for UpdateRunningStatus {
//!     async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
//!         // Every step sees the init context and ALL earlier outputs, typed. A missing or
//!         // mistyped key interrupts the run (`BAD_CONTEXT`); it is never retried.
//!         assert!(ctx.output::<Meta>("InitMeta")?.meta_ready);
//!         self.cluster = Some(self.resources.fetch(&ctx.resource_key()?)?);
//!         Ok(())
//!     }
//!     async fn do_step(&mut self, _cancel: &CancellationToken) -> Result<StepOutcome, StepError> {
//!         if let Some(cluster) = &self.cluster {
//!             cluster.update_state(State::RUNNING).await?;
//!         }
//!         Ok(StepOutcome::Done)
//!     }
//! }
//!
//! // 7a. The event checker of a translation out of a stable state.
//! fn check_install(r: &MemoryResource) -> Result<Option<Event>, BoxError> {
//!     let state = r.state().effective();
//!     Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Creating")))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wf_engine::Error> {
//! let resources = MemoryResourceStore::new();
//!
//! // 2 + 6. The workflow manager, with its flows, memento store and steps. `step_with`
//! //    gives each step instance its own clone of what the factory needs.
//! let manager = WorkflowManager::<MemoryResource>::builder("demo")
//!     .loader(StaticLoader::new().with("demo/CreateCluster.yaml", CREATE))
//!     .step("demo.InitMeta", || InitMeta)
//!     .step_with("demo.UpdateRunningStatus", &resources, |resources| {
//!         UpdateRunningStatus { resources, cluster: None }
//!     })
//!     .build()?;
//! manager.validate()?; // every className is registered
//!
//! // 1 + 7b. The state machine: stable states, then translation + entry in one call. The
//! //    entry finishes an uncompleted run of its own flow first (`Resumption::ThisFlow`).
//! let mut sm = StateMachine::new("demo");
//! sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
//! sm.register_translate_main_enter(
//!     State::INIT,
//!     check_install,
//!     State::CREATING,
//!     manager.flow_entry("CreateCluster"),
//! );
//! sm.validate_flows(&manager)?;
//!
//! // Reconcile until nothing asks to come back.
//! let cluster = resources.insert(
//!     ResourceKey::new("default", "c1"),
//!     ResourceRecord { state: State::INIT, ..ResourceRecord::default() },
//! );
//! let outcome = ReconcileLoop::new(sm, manager).settle(&cluster).await;
//! assert!(matches!(outcome, LoopOutcome::Stable(c) if c.state() == State::RUNNING));
//! # Ok(())
//! # }
//! ```
//!
//! # Where things are
//!
//! - [`StateMachine`]: stable states, translations, entries; [`Reconciled`] is what a call did.
//! - [`WorkflowManager`] and [`ResourceWorkflow`]: flows for a resource type and for one
//!   resource; [`FlowEntry`] and its [`Resumption`] policy.
//! - [`Step`], [`StepOutcome`], [`StepError`], [`StepContext`]: what a step author writes.
//! - [`ReconcileLoop`]: the controller loop of an embedded operator.
//! - [`MemoryResourceStore`] and [`FileResourceStore`]: resources in memory and in files.
//! - [`metadata`]: the YAML loader, step groups and the [`FlowCatalog`].
//! - [`RetryPolicy`]: `maxRetries`, `backoff`, `timeout`, in code and in YAML.
//! - [`memento`]: the storage trait, the caretaker (retention, byte budget), and the
//!   in-memory and file stores.
//! - [`hook`]: hook points, [`hook::TransitionHook`] and the JSON-lines
//!   [`hook::HistoryRecorder`].
//! - [`failpoints`]: failpoints before and after every persisted write of a transition
//!   (feature `failpoints`), and the crash counter of the crash sweep.
#![deny(missing_docs)]

pub mod abandon;
mod admission;
mod cancel;
mod config;
mod context;
mod error;
mod event;
mod execution;
pub mod failpoints;
mod file_resource;
pub mod hook;
mod lock;
mod manager;
pub mod memento;
mod memory_resource;
pub mod metadata;
mod reconcile_loop;
mod reconciled;
mod recover;
mod registry;
mod resource;
mod resumption;
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

pub use admission::{Admission, Refusal, RefusalEvent, Verdict};
pub use config::{InterruptAnnotations, WorkflowConfig};
pub use context::{ContextError, StepContext};
pub use error::{BoxError, Error};
pub use event::Event;
pub use execution::{
    BAD_CONTEXT, CANCELLED, LEFT_UNSTABLE, MANY_RESUMES, MANY_RETRY, UNKNOWN_TASK,
};
pub use file_resource::{FileResource, FileResourceError, FileResourceStore};
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
pub use reconcile_loop::{LoopOutcome, ReconcileLoop};
pub use reconciled::Reconciled;
pub use recover::{AnnotationRecover, RecoverStrategy};
pub use registry::{StepFactory, StepRegistry};
pub use resource::{AnnotationPatch, ResourceError, ResourceKey, StateResource};
pub use resumption::{ResumeReport, Resumption, RunRef, ABANDONED, SUPERSEDED};
pub use retry::{Backoff, BackoffSpec, RetryPolicy, RetryPolicyError, RetrySpec};
pub use runtime::{FlowStatus, StepRuntime, StepStatus, WorkflowRuntime};
pub use state::State;
pub use state_machine::{Checker, MainEnter, StateMachine};
pub use step::{Step, StepError, StepOutcome};
pub use workflow::{ResourceWorkflow, RunOutcome, RunReport};

/// A JSON object: contexts, event parameters and step outputs.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
