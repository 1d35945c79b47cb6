//! Test doubles: scripted steps, a recording hook, and a harness wiring them together.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::hook::HookEvent;
use crate::{
    BoxError, Event, FlowStatus, InMemoryMementoStore, JsonMap, MemoryResource,
    MemoryResourceStore, ResourceKey, ResourceRecord, ResourceWorkflow, State, StateResource,
    StaticLoader, Step, StepContext, StepError, StepOutcome, StoredRuntime, WorkflowConfig,
    WorkflowHook, WorkflowManager,
};

/// What a scripted step does on one execution.
#[derive(Clone, Debug)]
pub enum Act {
    Done,
    Output(Value),
    Wait,
    /// Waits, saying why.
    WaitFor(&'static str),
    Fail(&'static str),
    Interrupt(&'static str, &'static str),
    Panic(&'static str),
    /// Never finishes on its own (until cancelled or timed out).
    Hang,
}

/// The shared script of a step class: the acts of successive executions (the last one
/// repeats), and what the executions saw.
#[derive(Clone, Debug, Default)]
pub struct Script {
    inner: Arc<Mutex<ScriptState>>,
}

#[derive(Debug, Default)]
struct ScriptState {
    acts: VecDeque<Act>,
    last: Option<Act>,
    contexts: Vec<JsonMap>,
    runs: usize,
    finished: usize,
}

impl Script {
    pub fn new(acts: impl IntoIterator<Item = Act>) -> Self {
        let script = Script::default();
        script.inner.lock().unwrap().acts = acts.into_iter().collect();
        script
    }

    fn next(&self) -> Act {
        let mut state = self.inner.lock().unwrap();
        state.runs += 1;
        match state.acts.pop_front() {
            Some(act) => {
                state.last = Some(act.clone());
                act
            }
            None => state.last.clone().unwrap_or(Act::Done),
        }
    }

    /// How many times `do_step` was entered.
    pub fn runs(&self) -> usize {
        self.inner.lock().unwrap().runs
    }

    /// How many `do_step` futures ran to their end (not dropped).
    pub fn finished(&self) -> usize {
        self.inner.lock().unwrap().finished
    }

    /// The contexts seen by `init`, in order.
    pub fn contexts(&self) -> Vec<JsonMap> {
        self.inner.lock().unwrap().contexts.clone()
    }
}

pub struct ScriptedStep(pub Script);

#[async_trait]
impl Step for ScriptedStep {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.0
            .inner
            .lock()
            .unwrap()
            .contexts
            .push(ctx.values().clone());
        Ok(())
    }

    async fn do_step(&mut self, _cancel: &CancellationToken) -> Result<StepOutcome, StepError> {
        let act = self.0.next();
        let result = match act {
            Act::Done | Act::Output(_) => Ok(StepOutcome::Done),
            Act::Wait => Ok(StepOutcome::waiting_for(Duration::from_millis(7))),
            Act::WaitFor(reason) => Ok(StepOutcome::waiting_because(
                Duration::from_millis(7),
                reason,
            )),
            Act::Fail(msg) => Err(StepError::failed(msg)),
            Act::Interrupt(reason, msg) => Err(StepError::interrupt(reason, msg)),
            Act::Panic(msg) => panic!("{msg}"),
            Act::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(StepOutcome::Done)
            }
        };
        self.0.inner.lock().unwrap().finished += 1;
        result
    }

    fn output(&self) -> JsonMap {
        match &self.0.inner.lock().unwrap().last {
            Some(Act::Output(Value::Object(map))) => map.clone(),
            _ => JsonMap::new(),
        }
    }
}

/// One recorded hook call: point, step name (or empty) and flow status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub point: &'static str,
    pub step: String,
    pub flow_status: FlowStatus,
    /// The event was a replay of a transition an earlier process saved.
    pub replayed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct RecordingHook {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl RecordingHook {
    fn push(&self, point: &'static str, event: &HookEvent<'_>) {
        self.calls.lock().unwrap().push(Call {
            point,
            step: event
                .step_runtime()
                .map(|s| s.step_name.clone())
                .unwrap_or_default(),
            flow_status: event.runtime.flow_status,
            replayed: event.replayed,
        });
    }

    pub fn points(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| {
                let point = if c.step.is_empty() {
                    c.point.to_string()
                } else {
                    format!("{}:{}", c.point, c.step)
                };
                if c.replayed {
                    format!("{point} (replayed)")
                } else {
                    point
                }
            })
            .collect()
    }
}

#[async_trait]
impl WorkflowHook for RecordingHook {
    async fn on_wf_init(&self, e: &HookEvent<'_>) {
        self.push("wf_init", e);
    }
    async fn on_step_init(&self, e: &HookEvent<'_>) {
        self.push("step_init", e);
    }
    async fn on_step_waiting(&self, e: &HookEvent<'_>) {
        self.push("step_waiting", e);
    }
    async fn on_step_completed(&self, e: &HookEvent<'_>) {
        self.push(
            if e.error.is_some() {
                "step_error"
            } else {
                "step_completed"
            },
            e,
        );
    }
    async fn on_wf_completed(&self, e: &HookEvent<'_>) {
        self.push("wf_completed", e);
    }
    async fn on_wf_interrupt(&self, e: &HookEvent<'_>) {
        self.push("wf_interrupt", e);
    }
    async fn on_wf_abandoned(&self, e: &HookEvent<'_>) {
        self.push("wf_abandoned", e);
    }
}

/// A manager over YAML text and scripted step classes, with one resource.
pub struct Harness {
    pub manager: WorkflowManager<MemoryResource>,
    pub resources: MemoryResourceStore,
    pub mementos: InMemoryMementoStore,
    pub resource: MemoryResource,
    pub hook: RecordingHook,
}

pub const KEY_NS: &str = "ns";
pub const KEY_NAME: &str = "c1";

pub fn key() -> ResourceKey {
    ResourceKey::new(KEY_NS, KEY_NAME)
}

/// A flow named `name` whose steps are `classes` (step name = class name).
pub fn flow_yaml(name: &str, classes: &[&str]) -> String {
    let mut yaml = format!("flowName: {name}\nsteps:\n");
    for class in classes {
        yaml.push_str(&format!("  - className: {class}\n    stepName: {class}\n"));
    }
    yaml
}

pub struct HarnessBuilder {
    loader: StaticLoader,
    steps: Vec<(String, Script)>,
    config: WorkflowConfig,
    state: State,
    mementos: Option<InMemoryMementoStore>,
    on_abandon: Option<CleanupScript>,
}

/// A scripted abandon handler: records the `(seq, flow)` of each run it cleaned up, and
/// fails while `failing` is set.
#[derive(Clone, Debug, Default)]
pub struct CleanupScript {
    pub cleaned: Arc<Mutex<Vec<(u64, String)>>>,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl crate::abandon::AbandonHandler<MemoryResource> for CleanupScript {
    async fn on_abandon(
        &self,
        _resource: &MemoryResource,
        run: crate::abandon::AbandonedRun<'_>,
    ) -> Result<(), BoxError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the temp instance cannot be deleted".into());
        }
        self.cleaned
            .lock()
            .unwrap()
            .push((run.seq, run.runtime.flow_name.clone()));
        Ok(())
    }
}

impl HarnessBuilder {
    /// Shares another harness's memento store: a restarted process over the same data.
    pub fn mementos(mut self, store: &InMemoryMementoStore) -> Self {
        self.mementos = Some(store.clone());
        self
    }

    pub fn flow(mut self, name: &str, classes: &[&str]) -> Self {
        self.loader = self
            .loader
            .with(format!("test/{name}.yaml"), flow_yaml(name, classes));
        self
    }

    pub fn yaml(mut self, file: &str, yaml: &str) -> Self {
        self.loader = self.loader.with(file, yaml);
        self
    }

    pub fn step(mut self, class: &str, script: &Script) -> Self {
        self.steps.push((class.to_owned(), script.clone()));
        self
    }

    pub fn config(mut self, config: WorkflowConfig) -> Self {
        self.config = config;
        self
    }

    pub fn state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    pub fn on_abandon(mut self, cleanup: &CleanupScript) -> Self {
        self.on_abandon = Some(cleanup.clone());
        self
    }

    pub fn build(self) -> Harness {
        let mementos = self.mementos.unwrap_or_default();
        let hook = RecordingHook::default();
        let mut builder = WorkflowManager::builder("test")
            .loader(self.loader)
            .memento_store(mementos.clone())
            .hook(hook.clone())
            .config(self.config);
        if let Some(cleanup) = self.on_abandon {
            builder = builder.on_abandon(cleanup);
        }
        for (class, script) in self.steps {
            builder = builder.step(class, move || ScriptedStep(script.clone()));
        }
        let manager = builder.build().expect("harness manager");
        let resources = MemoryResourceStore::new();
        let resource = resources.insert(
            key(),
            ResourceRecord {
                state: self.state,
                ..ResourceRecord::default()
            },
        );
        Harness {
            manager,
            resources,
            mementos,
            resource,
            hook,
        }
    }
}

pub fn harness() -> HarnessBuilder {
    HarnessBuilder {
        loader: StaticLoader::new(),
        steps: Vec::new(),
        config: WorkflowConfig::default(),
        state: State::CREATING,
        mementos: None,
        on_abandon: None,
    }
}

impl Harness {
    pub async fn workflow(&self) -> ResourceWorkflow<MemoryResource> {
        self.manager
            .resource_workflow(&self.resource)
            .await
            .unwrap()
    }

    pub async fn runtimes(&self) -> Vec<StoredRuntime> {
        self.workflow().await.runtimes().unwrap()
    }

    pub async fn last(&self) -> StoredRuntime {
        self.runtimes().await.pop().expect("a runtime")
    }

    pub fn state(&self) -> State {
        self.resources.get(&key()).unwrap().state()
    }

    pub fn annotation(&self, key_name: &str) -> Option<String> {
        self.resources.get(&key()).unwrap().annotation(key_name)
    }
}

/// A checker that always fires `event`.
pub fn always(event: Event) -> crate::Checker<MemoryResource> {
    Arc::new(
        move |_: &MemoryResource| -> Result<Option<Event>, BoxError> { Ok(Some(event.clone())) },
    )
}

/// A checker that fires `event` the first time only: a request the flow's run served.
pub fn once(event: Event) -> crate::Checker<MemoryResource> {
    let fired = std::sync::atomic::AtomicBool::new(false);
    Arc::new(
        move |_: &MemoryResource| -> Result<Option<Event>, BoxError> {
            let first = !fired.swap(true, std::sync::atomic::Ordering::SeqCst);
            Ok(first.then(|| event.clone()))
        },
    )
}

/// A checker that never fires.
pub fn never() -> crate::Checker<MemoryResource> {
    Arc::new(|_: &MemoryResource| -> Result<Option<Event>, BoxError> { Ok(None) })
}

pub fn token() -> CancellationToken {
    CancellationToken::new()
}
