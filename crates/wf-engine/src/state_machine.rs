//! The state machine ([semantics §3](../../../docs/SEMANTICS.md#3-the-state-machine)):
//! stable states, translations out of them, and one entry per unstable state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tracing::Instrument;

use crate::failpoints::{self, failpoint};
use crate::hook::Hooks;
use crate::{
    Admission, BoxError, Error, Event, Reconciled, Refusal, RefusalEvent, ResourceKey,
    ResourceLocks, Resumption, State, StateResource, Verdict, WorkflowManager,
};

/// An event checker: decides from a fresh copy of the resource whether it must leave its
/// stable state. Errors are logged and the next checker is tried.
pub type Checker<R> = Arc<dyn Fn(&R) -> Result<Option<Event>, BoxError> + Send + Sync>;

/// The entry of an unstable state: what runs while the resource is in it. Usually a
/// [`crate::FlowEntry`], made by [`WorkflowManager::flow_entry`].
#[async_trait]
pub trait MainEnter<R: StateResource>: Send + Sync {
    /// Runs the entry. `checker` is the one registered with the translation into this state
    /// (entries re-check it before starting a new flow).
    async fn enter(&self, resource: &R, checker: Option<&Checker<R>>) -> Result<Reconciled, Error>;

    /// Runs the entry for a resource *found* in its state: one that this process did not
    /// move there in its previous reconcile (the operator restarted mid-flow, or another
    /// replica moved it), so its run should be in its memento. The default is
    /// [`MainEnter::enter`]; a [`crate::FlowEntry`] also warns, naming the memento store,
    /// when the store holds no run at all (it was deleted or lost: the flow starts again
    /// from its first step).
    async fn enter_found(
        &self,
        resource: &R,
        checker: Option<&Checker<R>>,
    ) -> Result<Reconciled, Error> {
        self.enter(resource, checker).await
    }

    /// The flow the entry runs, if it runs one (for validation).
    fn flow_name(&self) -> Option<&str> {
        None
    }

    /// The entry's resumption policy, if it resumes runs (for inspection).
    fn resumption(&self) -> Option<Resumption> {
        None
    }
}

struct Translation<R> {
    checker: Checker<R>,
    target: State,
}

struct Entry<R: StateResource> {
    main_enter: Arc<dyn MainEnter<R>>,
    checker: Option<Checker<R>>,
}

/// One state machine per resource type.
///
/// ```
/// use wf_engine::{Event, MemoryResource, State, StateMachine, StateResource};
///
/// fn check_install(r: &MemoryResource) -> Result<Option<Event>, wf_engine::BoxError> {
///     Ok((r.state() == State::INIT).then(|| Event::new("Creating")))
/// }
///
/// let mut sm = StateMachine::<MemoryResource>::new("demo");
/// sm.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
/// sm.register_translation(State::INIT, check_install, State::CREATING);
/// assert!(sm.is_stable(&State::INIT));
/// ```
pub struct StateMachine<R: StateResource> {
    resource_type: String,
    stable: BTreeSet<State>,
    translations: HashMap<State, Vec<Translation<R>>>,
    entries: HashMap<State, Entry<R>>,
    ignored: HashSet<String>,
    admission: Option<Arc<dyn Admission<R>>>,
    locks: ResourceLocks,
    /// The resources this process moved into an unstable state and has not entered since:
    /// any other resource found in an unstable state was moved there before (another
    /// process, or this one before a restart), so it should have runs.
    moved: Mutex<HashSet<ResourceKey>>,
}

impl<R: StateResource> std::fmt::Debug for StateMachine<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("resource_type", &self.resource_type)
            .field("stable", &self.stable)
            .field("unstable", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<R: StateResource> StateMachine<R> {
    /// An empty state machine for `resource_type`.
    pub fn new(resource_type: impl Into<String>) -> Self {
        StateMachine {
            resource_type: resource_type.into(),
            stable: BTreeSet::new(),
            translations: HashMap::new(),
            entries: HashMap::new(),
            ignored: HashSet::new(),
            admission: None,
            locks: ResourceLocks::new(),
            moved: Mutex::default(),
        }
    }

    /// The resource type.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// Registers stable states.
    pub fn register_stable_states(&mut self, states: impl IntoIterator<Item = State>) -> &mut Self {
        self.stable.extend(states);
        self
    }

    /// Whether `state` is registered as stable.
    pub fn is_stable(&self, state: &State) -> bool {
        self.stable.contains(state)
    }

    /// Registers a translation out of the stable state `from`: when `checker` fires, the
    /// resource moves to `to`. Translations of a state are tried in registration order.
    pub fn register_translation<C>(&mut self, from: State, checker: C, to: State) -> &mut Self
    where
        C: Fn(&R) -> Result<Option<Event>, BoxError> + Send + Sync + 'static,
    {
        self.add_translation(from, Arc::new(checker), to);
        self
    }

    fn add_translation(&mut self, from: State, checker: Checker<R>, to: State) {
        self.translations
            .entry(from)
            .or_default()
            .push(Translation {
                checker,
                target: to,
            });
    }

    /// Registers the entry of the unstable state `state` (replacing an earlier one).
    pub fn register_main_enter(
        &mut self,
        state: State,
        entry: impl MainEnter<R> + 'static,
    ) -> &mut Self {
        self.entries.insert(
            state,
            Entry {
                main_enter: Arc::new(entry),
                checker: None,
            },
        );
        self
    }

    /// Registers a translation `from --checker--> to` and the entry of `to` in one call. The
    /// entry receives the same checker. When several translations lead to `to`, the first
    /// registered entry and checker are kept.
    pub fn register_translate_main_enter<C>(
        &mut self,
        from: State,
        checker: C,
        to: State,
        entry: impl MainEnter<R> + 'static,
    ) -> &mut Self
    where
        C: Fn(&R) -> Result<Option<Event>, BoxError> + Send + Sync + 'static,
    {
        let checker: Checker<R> = Arc::new(checker);
        self.add_translation(from, checker.clone(), to.clone());
        self.entries.entry(to).or_insert_with(|| Entry {
            main_enter: Arc::new(entry),
            checker: Some(checker),
        });
        self
    }

    /// Events with these names are ignored: a checker that fires one leaves the resource
    /// where it is.
    pub fn ignore_events(
        &mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> &mut Self {
        self.ignored.extend(names.into_iter().map(Into::into));
        self
    }

    /// Registers the admission every fired event passes before the resource leaves its
    /// stable state (replacing an earlier one); see [`Admission`]. It also sees the implicit
    /// move of a resource with an empty state into `Creating`, before that entry runs.
    pub fn register_admission(&mut self, admission: impl Admission<R> + 'static) -> &mut Self {
        self.admission = Some(Arc::new(admission));
        self
    }

    /// The unstable states with an entry, and the flow each entry runs.
    pub fn entries(&self) -> impl Iterator<Item = (&State, Option<&str>)> {
        self.entries
            .iter()
            .map(|(s, e)| (s, e.main_enter.flow_name()))
    }

    /// The resumption policy of the entry of `state`, when it has one that resumes runs.
    pub fn entry_resumption(&self, state: &State) -> Option<Resumption> {
        self.entries.get(state)?.main_enter.resumption()
    }

    /// The per-resource locks (keyed by namespace and name) that [`StateMachine::reconcile`]
    /// and [`StateMachine::do_state_main_enter`] hold for the whole call.
    ///
    /// Clones share the locks, so another writer of the same resources (a status monitor,
    /// a callback handler) serialises with the flows by taking a clone's lock of the
    /// resource's key before it reads and writes: it never runs in the middle of a step.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wf_engine::{MemoryResource, ResourceKey, StateMachine};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let machine = StateMachine::<MemoryResource>::new("demo");
    /// let locks = machine.locks().clone(); // hand this to the other writer
    /// let key = ResourceKey::new("ns", "db1");
    /// let _guard = locks.lock(&key).await; // a reconcile of ns/db1 would wait here
    /// assert!(machine.locks().lock_timeout(&key, Duration::from_millis(10)).await.is_none());
    /// # }
    /// ```
    pub fn locks(&self) -> &ResourceLocks {
        &self.locks
    }

    /// Checks that every entry's flow exists in `manager`'s catalog.
    pub fn validate_flows(&self, manager: &WorkflowManager<R>) -> Result<(), Error> {
        for (state, flow) in self.entries() {
            if let Some(flow) = flow {
                if manager.catalog().get(flow).is_none() {
                    return Err(Error::Setup(format!(
                        "state `{state}` runs flow `{flow}`, which no YAML of resource type `{}` defines",
                        manager.resource_type()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs one step of the machine for `resource`
    /// ([semantics §3](../../../docs/SEMANTICS.md#3-the-state-machine)), holding its lock.
    ///
    /// Without a manager there are no hooks: a refusal is recorded on the resource only.
    pub async fn do_state_main_enter(&self, resource: &R) -> Result<Reconciled, Error> {
        let _guard = self.locks.lock(&resource.key()).await;
        self.enter_locked(resource).await
    }

    /// A whole reconcile under the resource's lock: an abandon request first
    /// ([`crate::abandon`]), then recovery
    /// ([semantics §10](../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt)), then the
    /// machine.
    pub async fn reconcile(
        &self,
        resource: &R,
        manager: &WorkflowManager<R>,
    ) -> Result<Reconciled, Error> {
        let _guard = self.locks.lock(&resource.key()).await;
        // One read serves both the recovery check and the machine.
        let fresh = resource.fetch().await?;
        if let Some((runs, state)) = manager.abandon_fresh(&fresh).await? {
            return Ok(Reconciled::Abandoned { runs, state });
        }
        if let Some(state) = manager.recover_fresh(&fresh).await? {
            return Ok(Reconciled::Recovered { state });
        }
        if self.stable.contains(&fresh.state().effective()) {
            // A run left uncompleted with every step done (a step moved the resource to a
            // stable state, then the process stopped before the run's own save).
            manager.close_finished_runs(&fresh).await?;
        }
        let hooks = Refusals {
            resource_type: manager.resource_type(),
            hooks: Some(&manager.inner.hooks),
        };
        self.enter_fresh(fresh, hooks).await
    }

    async fn enter_locked(&self, resource: &R) -> Result<Reconciled, Error> {
        let hooks = Refusals {
            resource_type: &self.resource_type,
            hooks: None,
        };
        self.enter_fresh(resource.fetch().await?, hooks).await
    }

    /// The machine on a copy just read, under the resource's lock.
    async fn enter_fresh(&self, fresh: R, hooks: Refusals<'_>) -> Result<Reconciled, Error> {
        let state = fresh.state().effective();
        let span = tracing::info_span!("reconcile", resource = %fresh.key(), state = %state);
        async {
            if self.stable.contains(&state) {
                return self.leave_stable(&fresh, state, hooks).await;
            }
            if fresh.state().is_empty() && self.admission.is_some() {
                // A new resource: the implicit move into `Creating` is a request too.
                let event = Event::new(state.as_str());
                let empty = State::new("");
                if let Some(done) = self.admit(&fresh, &empty, &event, &state, hooks).await? {
                    return Ok(done);
                }
            }
            let Some(entry) = self.entries.get(&state) else {
                return Err(Error::NoEntry {
                    resource: fresh.key(),
                    state,
                });
            };
            let moved_here = self
                .moved
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&fresh.key());
            if moved_here {
                entry.main_enter.enter(&fresh, entry.checker.as_ref()).await
            } else {
                entry
                    .main_enter
                    .enter_found(&fresh, entry.checker.as_ref())
                    .await
            }
        }
        .instrument(span)
        .await
    }

    async fn leave_stable(
        &self,
        resource: &R,
        state: State,
        hooks: Refusals<'_>,
    ) -> Result<Reconciled, Error> {
        let mut last_error = None;
        for translation in self.translations.get(&state).into_iter().flatten() {
            match (translation.checker)(resource) {
                Err(err) => {
                    tracing::warn!(target_state = %translation.target, error = %err, "event checker failed");
                    last_error = Some(err);
                }
                Ok(None) => {}
                Ok(Some(event)) => {
                    if self.ignored.contains(&event.name) {
                        tracing::debug!(event = %event.name, "event ignored");
                        return Ok(Reconciled::Stable { state });
                    }
                    if let Some(done) = self
                        .admit(resource, &state, &event, &translation.target, hooks)
                        .await?
                    {
                        return Ok(done);
                    }
                    failpoint!(failpoints::STATE_UPDATE_BEFORE);
                    resource.update_state(translation.target.clone()).await?;
                    failpoint!(failpoints::STATE_UPDATE_AFTER);
                    if self.entries.contains_key(&translation.target) {
                        self.moved
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(resource.key());
                    }
                    tracing::info!(from = %state, to = %translation.target, event = %event.name, "state changed");
                    return Ok(Reconciled::Transitioned {
                        from: state,
                        to: translation.target.clone(),
                    });
                }
            }
        }
        if last_error.is_none() && resource.refusal().is_some() {
            // Nothing is asked any more: the refused request was withdrawn.
            resource.record_refusal(None).await?;
        }
        match last_error {
            Some(source) => Err(Error::Checker {
                resource: resource.key(),
                state,
                source,
            }),
            None => Ok(Reconciled::Stable { state }),
        }
    }
}

/// Where a refusal is reported: the manager's resource type and hooks (none without a
/// manager).
#[derive(Clone, Copy)]
struct Refusals<'a> {
    resource_type: &'a str,
    hooks: Option<&'a Hooks>,
}

impl<R: StateResource> StateMachine<R> {
    /// Passes `event` (moving `resource` from `state` to `target`) through the admission.
    /// `None`: admitted (any recorded refusal is cleared), go on; `Some`: the reconcile's
    /// result (refused or satisfied).
    async fn admit(
        &self,
        resource: &R,
        state: &State,
        event: &Event,
        target: &State,
        hooks: Refusals<'_>,
    ) -> Result<Option<Reconciled>, Error> {
        let Some(admission) = &self.admission else {
            return Ok(None);
        };
        let verdict = admission
            .admit(resource, event, target)
            .await
            .map_err(|source| Error::Admission {
                resource: resource.key(),
                target: target.clone(),
                source,
            })?;
        match verdict {
            Verdict::Admit => {
                if resource.refusal().is_some() {
                    resource.record_refusal(None).await?;
                }
                Ok(None)
            }
            Verdict::Satisfied => {
                if resource.refusal().is_some() {
                    resource.record_refusal(None).await?;
                }
                tracing::info!(event = %event.name, "request already satisfied; consumed");
                Ok(Some(Reconciled::Satisfied {
                    state: state.clone(),
                    event: event.name.clone(),
                }))
            }
            Verdict::Refuse(refusal) => {
                self.refuse(resource, state, event, target, &refusal, hooks)
                    .await?;
                Ok(Some(Reconciled::Refused {
                    state: state.clone(),
                    reason: refusal.reason,
                    message: refusal.message,
                }))
            }
        }
    }

    /// Records a refusal and tells the hooks, unless the resource already records this one.
    async fn refuse(
        &self,
        resource: &R,
        state: &State,
        event: &Event,
        target: &State,
        refusal: &Refusal,
        hooks: Refusals<'_>,
    ) -> Result<(), Error> {
        if resource.refusal().as_ref() == Some(refusal) && resource.refusal_is_current() {
            tracing::debug!(reason = %refusal.reason, "request still refused");
            return Ok(());
        }
        resource.record_refusal(Some(refusal)).await?;
        tracing::info!(event = %event.name, target = %target, reason = %refusal.reason, message = %refusal.message, "request refused");
        if let Some(list) = hooks.hooks {
            let key = resource.key();
            let flow = self
                .entries
                .get(target)
                .and_then(|e| e.main_enter.flow_name());
            list.refused(&RefusalEvent {
                resource_type: hooks.resource_type,
                resource: &key,
                state,
                event: &event.name,
                target,
                flow,
                refusal,
            })
            .await;
        }
        Ok(())
    }
}
