//! The workflow manager, one per resource type
//! ([semantics §4](../../../docs/SEMANTICS.md#4-flows-and-step-groups)). Holds the flows,
//! the step registry, the hooks, the memento store and the recover strategy.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::abandon::{abandon_requested, AbandonHandler};
use crate::cancel::CancelRegistry;
use crate::failpoints::{self, failpoint};
use crate::hook::Hooks;
use crate::memento::{caretaker_name, MementoCaretaker, MementoStorageFactory};
use crate::{
    AnnotationPatch, AnnotationRecover, Checker, Error, FlowCatalog, FlowLoader,
    InMemoryMementoStore, MainEnter, Reconciled, RecoverStrategy, ResourceKey, ResourceWorkflow,
    Resumption, State, StateResource, Step, StepRegistry, WorkflowConfig, WorkflowHook,
    YamlDirLoader,
};

pub(crate) struct ManagerInner<R: StateResource> {
    pub(crate) resource_type: String,
    pub(crate) catalog: FlowCatalog,
    pub(crate) registry: StepRegistry,
    pub(crate) hooks: Hooks,
    pub(crate) storage: Arc<dyn MementoStorageFactory<R>>,
    pub(crate) recover: Arc<dyn RecoverStrategy<R>>,
    /// The cleanup of a run abandoned on request, if the operator registered one.
    pub(crate) on_abandon: Option<Arc<dyn AbandonHandler<R>>>,
    pub(crate) config: WorkflowConfig,
    pub(crate) cancels: CancelRegistry,
    /// Set while the operator shuts down or loses leadership: runs park at the next step
    /// boundary.
    pub(crate) draining: AtomicBool,
    /// The runs this process has created or taken up, so the first take-up of a stored run
    /// replays its last transition's hooks (an earlier process may have stopped before
    /// they ran) and later ones do not.
    /// Per resource, the newest [`TAKEN_UP_KEPT`] sequence numbers.
    pub(crate) taken_up:
        std::sync::Mutex<std::collections::HashMap<ResourceKey, std::collections::BTreeSet<u64>>>,
}

/// How many runs per resource [`ManagerInner::take_up`] remembers: older ones are long
/// finished; taking one up again replays once more, which the hooks drop as a duplicate.
const TAKEN_UP_KEPT: usize = 8;

impl<R: StateResource> ManagerInner<R> {
    /// Records that this process holds run `seq` of `key`; `true` the first time.
    pub(crate) fn take_up(&self, key: &ResourceKey, seq: u64) -> bool {
        let mut taken = self
            .taken_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seqs = taken.entry(key.clone()).or_default();
        let first = seqs.insert(seq);
        while seqs.len() > TAKEN_UP_KEPT {
            seqs.pop_first();
        }
        first
    }
}

/// Runs flows for one resource type. Cheap to clone (shared inside).
///
/// Built with [`WorkflowManager::builder`]; see the crate docs for a complete example.
pub struct WorkflowManager<R: StateResource> {
    pub(crate) inner: Arc<ManagerInner<R>>,
}

impl<R: StateResource> Clone for WorkflowManager<R> {
    fn clone(&self) -> Self {
        WorkflowManager {
            inner: self.inner.clone(),
        }
    }
}

impl<R: StateResource> std::fmt::Debug for WorkflowManager<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowManager")
            .field("resource_type", &self.inner.resource_type)
            .field("flows", &self.inner.catalog.len())
            .field("steps", &self.inner.registry)
            .finish()
    }
}

/// Builds a [`WorkflowManager`]; every part but the flows has a default.
pub struct WorkflowManagerBuilder<R: StateResource> {
    resource_type: String,
    flow_dir: Option<PathBuf>,
    loader: Option<Box<dyn FlowLoader>>,
    registry: StepRegistry,
    hooks: Vec<Arc<dyn WorkflowHook>>,
    storage: Option<Arc<dyn MementoStorageFactory<R>>>,
    recover: Option<Arc<dyn RecoverStrategy<R>>>,
    on_abandon: Option<Arc<dyn AbandonHandler<R>>>,
    config: WorkflowConfig,
}

impl<R: StateResource> WorkflowManagerBuilder<R> {
    /// Reads flows from `<dir>/<resource type>/*.yaml` with the default [`YamlDirLoader`].
    #[must_use]
    pub fn flow_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.flow_dir = Some(dir.into());
        self
    }

    /// Uses a custom loader instead of a flow directory.
    #[must_use]
    pub fn loader(mut self, loader: impl FlowLoader + 'static) -> Self {
        self.loader = Some(Box::new(loader));
        self
    }

    /// Uses a boxed custom loader instead of a flow directory.
    #[must_use]
    pub fn boxed_loader(mut self, loader: Box<dyn FlowLoader>) -> Self {
        self.loader = Some(loader);
        self
    }

    /// Registers a step class made by `factory` (a fresh instance per execution).
    #[must_use]
    pub fn step<S, F>(mut self, class_name: impl Into<String>, factory: F) -> Self
    where
        S: Step,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.registry.register(class_name, factory);
        self
    }

    /// Registers a step class made by `factory` from a clone of `captured` (see
    /// [`StepRegistry::register_with`]):
    /// `.step_with("bucket.Resize", &store, |store| Resize { store, size: 0 })`.
    #[must_use]
    pub fn step_with<C, S, F>(
        mut self,
        class_name: impl Into<String>,
        captured: &C,
        factory: F,
    ) -> Self
    where
        C: Clone + Send + Sync + 'static,
        S: Step,
        F: Fn(C) -> S + Send + Sync + 'static,
    {
        self.registry.register_with(class_name, captured, factory);
        self
    }

    /// Uses a whole registry (replacing steps registered so far).
    #[must_use]
    pub fn registry(mut self, registry: StepRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Adds a hook; hooks run in the order added.
    #[must_use]
    pub fn hook(mut self, hook: impl WorkflowHook + 'static) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Adds a shared hook.
    #[must_use]
    pub fn shared_hook(mut self, hook: Arc<dyn WorkflowHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Where runtimes are persisted (default: in memory, lost on exit).
    #[must_use]
    pub fn memento_store(mut self, factory: impl MementoStorageFactory<R> + 'static) -> Self {
        self.storage = Some(Arc::new(factory));
        self
    }

    /// How an interrupted resource asks for recovery (default: [`AnnotationRecover`] with the
    /// configured annotation keys).
    #[must_use]
    pub fn recover(mut self, strategy: impl RecoverStrategy<R> + 'static) -> Self {
        self.recover = Some(Arc::new(strategy));
        self
    }

    /// The cleanup a run needs when it is abandoned on request
    /// ([`crate::abandon`]); without one, abandoning only closes the run.
    #[must_use]
    pub fn on_abandon(mut self, handler: impl AbandonHandler<R> + 'static) -> Self {
        self.on_abandon = Some(Arc::new(handler));
        self
    }

    /// Engine configuration (keys, retention, budget, timings, default retry policy).
    #[must_use]
    pub fn config(mut self, config: WorkflowConfig) -> Self {
        self.config = config;
        self
    }

    /// Loads the flows and builds the manager. Fails on an empty resource type, a missing
    /// flow source, invalid YAML, or an invalid default retry policy.
    pub fn build(self) -> Result<WorkflowManager<R>, Error> {
        if self.resource_type.trim().is_empty() {
            return Err(Error::Setup("the resource type is empty".into()));
        }
        self.config
            .default_retry
            .validate()
            .map_err(|e| Error::Setup(format!("default retry policy: {e}")))?;
        let loader: Box<dyn FlowLoader> = match (self.loader, self.flow_dir) {
            (Some(loader), _) => loader,
            (None, Some(dir)) if !dir.as_os_str().is_empty() => {
                Box::new(YamlDirLoader::new(dir, &self.resource_type))
            }
            _ => {
                return Err(Error::Setup(
                    "no flow source: set a flow directory or a loader".into(),
                ))
            }
        };
        let catalog = loader.load(&self.config.default_retry)?;
        let recover = self
            .recover
            .unwrap_or_else(|| Arc::new(AnnotationRecover::new(self.config.annotations.clone())));
        Ok(WorkflowManager {
            inner: Arc::new(ManagerInner {
                resource_type: self.resource_type,
                catalog,
                registry: self.registry,
                hooks: Hooks(self.hooks),
                storage: self
                    .storage
                    .unwrap_or_else(|| Arc::new(InMemoryMementoStore::new())),
                recover,
                on_abandon: self.on_abandon,
                config: self.config,
                cancels: CancelRegistry::default(),
                draining: AtomicBool::new(false),
                taken_up: std::sync::Mutex::default(),
            }),
        })
    }
}

impl<R: StateResource> WorkflowManager<R> {
    /// Starts building a manager for `resource_type` (also the name of the flow
    /// subdirectory and of the history file).
    pub fn builder(resource_type: impl Into<String>) -> WorkflowManagerBuilder<R> {
        WorkflowManagerBuilder {
            resource_type: resource_type.into(),
            flow_dir: None,
            loader: None,
            registry: StepRegistry::new(),
            hooks: Vec::new(),
            storage: None,
            recover: None,
            on_abandon: None,
            config: WorkflowConfig::default(),
        }
    }

    /// The resource type.
    pub fn resource_type(&self) -> &str {
        &self.inner.resource_type
    }

    /// The loaded flows.
    pub fn catalog(&self) -> &FlowCatalog {
        &self.inner.catalog
    }

    /// The registered step classes.
    pub fn registry(&self) -> &StepRegistry {
        &self.inner.registry
    }

    /// The configuration.
    pub fn config(&self) -> &WorkflowConfig {
        &self.inner.config
    }

    /// Checks that every class a flow names is registered; the error names file, flow and step.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(self.inner.catalog.check_classes(&self.inner.registry)?)
    }

    /// The workflow of one resource: loads its memento store once.
    pub async fn resource_workflow(&self, resource: &R) -> Result<ResourceWorkflow<R>, Error> {
        let storage = self.inner.storage.storage_for(resource)?;
        let caretaker = MementoCaretaker::load(
            caretaker_name(resource.name()),
            storage,
            self.inner.config.retention,
            self.inner.config.byte_budget,
        )
        .await?;
        Ok(ResourceWorkflow::new(
            self.clone(),
            resource.clone(),
            caretaker,
        ))
    }

    /// An entry for [`crate::StateMachine`]: runs `flow` through
    /// [`ResourceWorkflow::common_main_enter`]. It finishes only an uncompleted run of
    /// `flow` first ([`Resumption::ThisFlow`], the default); choose another policy with
    /// [`FlowEntry::resumption`].
    pub fn flow_entry(&self, flow: impl Into<String>) -> FlowEntry<R> {
        FlowEntry {
            manager: self.clone(),
            flow: flow.into(),
            resumption: Resumption::default(),
        }
    }

    /// Forgets what is kept in memory for a resource that is gone (e.g. the memento
    /// factory's cached store), so a long-running operator does not grow with every deleted
    /// resource. Persisted runs are not touched.
    pub fn forget(&self, key: &ResourceKey) {
        self.inner.storage.forget(key);
        self.inner
            .taken_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Cancels the flow running for `key` at once (e.g. from a watch event); returns whether
    /// one was running. The step's future is dropped and the run is interrupted `CANCELLED`.
    pub fn cancel(&self, key: &ResourceKey) -> bool {
        self.inner.cancels.cancel(key)
    }

    /// Starts (`true`) or ends (`false`) draining, for a graceful shutdown or a lost
    /// leadership. While draining, a running flow finishes the step it is in (its
    /// transition is saved as usual), then parks before the next one: the run is saved as
    /// `waiting` and reported as [`crate::RunOutcome::Waiting`] on that step (after the
    /// configured `wait_interval`).
    /// Nothing is interrupted and no retry is counted, so whoever reconciles next (this
    /// process after `set_draining(false)`, or another replica) resumes at that step.
    pub fn set_draining(&self, draining: bool) {
        self.inner.draining.store(draining, Ordering::SeqCst);
        if draining {
            tracing::info!(resource_type = %self.inner.resource_type, "draining: running flows park at the next step");
        }
    }

    /// Whether the manager is draining (see [`WorkflowManager::set_draining`]).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Recovery after an interrupt
    /// ([semantics §10](../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt)). For a resource in `Interrupt` whose
    /// recover strategy asks for it: retries the interrupted step (unless the previous state
    /// is `Rebuild`), clears the interrupt record and restores the previous state, which is
    /// returned. `None` when recovery does not apply. A failed write is an error.
    pub async fn check_recovery(&self, resource: &R) -> Result<Option<State>, Error> {
        self.recover_fresh(&resource.fetch().await?).await
    }

    /// In a stable state, finishes what a stopped process left
    /// ([semantics §6](../../../docs/SEMANTICS.md#6-runs-statuses-and-saves)): the runs
    /// whose steps all completed but whose own completion was never saved are saved
    /// `completed`, a run stopped in its last step is finished (that step runs again, as a
    /// resume), and the newest finished run's last hooks are replayed once per process (it
    /// may have stopped between that save and its hooks). Returns the runs closed.
    pub(crate) async fn close_finished_runs(&self, fresh: &R) -> Result<Vec<u64>, Error> {
        let mut workflow = self.resource_workflow(fresh).await?;
        workflow.close_finished_runs().await
    }

    /// Abandoning on request ([`crate::abandon`]). For a resource carrying the abandon
    /// annotation (`T` or `true`): the runs [`crate::abandon::runs_to_abandon`] names are
    /// cleaned up by the abandon handler and closed as abandoned, the interrupt record is
    /// cleared (with what the recover strategy clears alongside it), the resource goes to
    /// `Running` when it was in `Interrupt` or a run was closed (`Init` when the run was a
    /// creation: the resource was never created), and the request is removed
    /// last (so a stop in between only repeats the idempotent part). Returns the runs
    /// closed and the state, `None` when not asked. A failed cleanup or write is an error,
    /// and the request stays for the next reconcile.
    pub async fn check_abandon(&self, resource: &R) -> Result<Option<(Vec<u64>, State)>, Error> {
        self.abandon_fresh(&resource.fetch().await?).await
    }

    /// [`WorkflowManager::check_abandon`] on a copy just read.
    pub(crate) async fn abandon_fresh(
        &self,
        fresh: &R,
    ) -> Result<Option<(Vec<u64>, State)>, Error> {
        let keys = &self.inner.config.annotations;
        if !abandon_requested(fresh.annotation(&keys.abandon).as_deref()) {
            return Ok(None);
        }
        let interrupted = fresh.state().effective() == State::INTERRUPT;
        // The state the abandoned run ran in: recorded by the interrupt, else the current one.
        let ran_in = if interrupted {
            fresh
                .annotation(&keys.previous_status)
                .map_or(State::RUNNING, State::new)
                .effective()
        } else {
            fresh.state().effective()
        };
        let mut workflow = self.resource_workflow(fresh).await?;
        let closed = workflow.abandon_runs(interrupted).await?;
        let mut current = self.inner.recover.clear(fresh).await?;
        if interrupted || !closed.is_empty() {
            // A resource whose creation was given up was never created: `Init`, so that
            // the next reconcile creates it again from the first step.
            let settled = if ran_in == State::CREATING {
                State::INIT
            } else {
                State::RUNNING
            };
            failpoint!(failpoints::STATE_UPDATE_BEFORE);
            current = current.update_state(settled).await?;
            failpoint!(failpoints::STATE_UPDATE_AFTER);
        }
        let done = AnnotationPatch::from([(keys.abandon.clone(), None)]);
        let current = current.patch_annotations(&done).await?;
        let state = current.state().effective();
        tracing::info!(resource = %fresh.key(), runs = ?closed, %state, "abandoned on request");
        Ok(Some((closed, state)))
    }

    /// [`WorkflowManager::check_recovery`] on a copy just read.
    pub(crate) async fn recover_fresh(&self, fresh: &R) -> Result<Option<State>, Error> {
        if fresh.state().effective() != State::INTERRUPT {
            return Ok(None);
        }
        let Some(previous) = self.inner.recover.recovery_requested(fresh) else {
            return Ok(None);
        };
        if previous != State::REBUILD {
            let mut workflow = self.resource_workflow(fresh).await?;
            workflow.retry_interrupted_step().await?;
        }
        failpoint!(failpoints::ANNOTATIONS_RECOVER_BEFORE);
        let cleared = self.inner.recover.clear(fresh).await?;
        failpoint!(failpoints::ANNOTATIONS_RECOVER_AFTER);
        failpoint!(failpoints::STATE_UPDATE_BEFORE);
        cleared.update_state(previous.clone()).await?;
        failpoint!(failpoints::STATE_UPDATE_AFTER);
        tracing::info!(resource = %fresh.key(), state = %previous, "recovered from interrupt");
        Ok(Some(previous))
    }
}

/// The entry of an unstable state that runs one flow; see [`WorkflowManager::flow_entry`].
pub struct FlowEntry<R: StateResource> {
    manager: WorkflowManager<R>,
    flow: String,
    resumption: Resumption,
}

impl<R: StateResource> FlowEntry<R> {
    /// Which uncompleted run the entry finishes before it checks its trigger again
    /// ([semantics §7](../../../docs/SEMANTICS.md#7-resumption-which-run-an-entry-finishes)).
    ///
    /// ```
    /// # use wf_engine::{MemoryResource, Resumption, StaticLoader, WorkflowManager};
    /// # let manager = WorkflowManager::<MemoryResource>::builder("demo")
    /// #     .loader(StaticLoader::new().with("demo/R.yaml", "flowName: Rebuild\nsteps:\n  - {className: demo.A, stepName: A}\n"))
    /// #     .build().unwrap();
    /// let entry = manager.flow_entry("Rebuild").resumption(Resumption::AbandonOthers);
    /// assert_eq!(entry.policy(), Resumption::AbandonOthers);
    /// ```
    #[must_use]
    pub fn resumption(mut self, resumption: Resumption) -> Self {
        self.resumption = resumption;
        self
    }

    /// The entry's resumption policy.
    pub fn policy(&self) -> Resumption {
        self.resumption
    }
}

#[async_trait]
impl<R: StateResource> MainEnter<R> for FlowEntry<R> {
    async fn enter(&self, resource: &R, checker: Option<&Checker<R>>) -> Result<Reconciled, Error> {
        let Some(checker) = checker else {
            return Err(Error::Setup(format!(
                "the entry of flow `{}` has no checker; register it with register_translate_main_enter",
                self.flow
            )));
        };
        let mut workflow = self.manager.resource_workflow(resource).await?;
        workflow
            .common_main_enter(&self.flow, self.resumption, checker)
            .await
    }

    async fn enter_found(
        &self,
        resource: &R,
        checker: Option<&Checker<R>>,
    ) -> Result<Reconciled, Error> {
        let Some(checker) = checker else {
            return self.enter(resource, None).await;
        };
        let mut workflow = self.manager.resource_workflow(resource).await?;
        workflow.warn_if_memento_lost(&self.flow);
        workflow
            .common_main_enter(&self.flow, self.resumption, checker)
            .await
    }

    fn flow_name(&self) -> Option<&str> {
        Some(&self.flow)
    }

    fn resumption(&self) -> Option<Resumption> {
        Some(self.resumption)
    }
}
