//! The wf-engine quickstart: one in-memory resource, three steps, one flow, driven by the
//! state machine until the resource is stable `Running`.
//!
//! - `AllocateVolume` waits once for the (pretend) outside world, then succeeds.
//! - `StartDatabase` fails once (a transient error), then succeeds on retry.
//! - `MarkRunning` sets the resource's state to `Running`.
//!
//! Run it with `cargo run -p wf-engine --example quickstart`. The `bucket` example shows a
//! resource that survives a restart, two flows and a crash.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wf_engine::hook::{HookEvent, Transition, TransitionHook};
use wf_engine::{
    async_trait, BoxError, CancellationToken, Event, JsonMap, LoopOutcome, MemoryResource,
    MemoryResourceStore, ReconcileLoop, ResourceKey, ResourceRecord, State, StateMachine,
    StateResource, Step, StepContext, StepError, StepOutcome, WorkflowManager,
};

/// Pretends to ask a storage service for a volume: the first call finds it still
/// provisioning and asks to be called again.
struct AllocateVolume {
    polls: Arc<AtomicU32>,
}

#[async_trait]
impl Step for AllocateVolume {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(StepOutcome::waiting_for(Duration::from_millis(300)));
        }
        Ok(StepOutcome::Done)
    }

    fn output(&self) -> JsonMap {
        JsonMap::from_iter([("volumeId".to_string(), "vol-0001".into())])
    }
}

/// Starts the database on the volume; the first try hits a transient error.
struct StartDatabase {
    tries: Arc<AtomicU32>,
    volume: String,
}

#[async_trait]
impl Step for StartDatabase {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.volume = ctx.get("volumeId")?;
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if self.tries.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StepError::failed(format!(
                "engine on {} not reachable yet",
                self.volume
            )));
        }
        Ok(StepOutcome::Done)
    }
}

/// Records the end of the flow on the resource.
struct MarkRunning {
    resources: MemoryResourceStore,
    resource: Option<MemoryResource>,
}

#[async_trait]
impl Step for MarkRunning {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.resource = Some(self.resources.fetch(&ctx.resource_key()?)?);
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        if let Some(resource) = &self.resource {
            resource.update_state(State::RUNNING).await?;
        }
        Ok(StepOutcome::Done)
    }
}

/// Prints one line per step transition.
struct PrintTransitions {
    started: Instant,
}

impl PrintTransitions {
    fn line(&self, event: &HookEvent<'_>, what: &str) {
        let at = self.started.elapsed().as_millis();
        match event.step_runtime() {
            Some(step) => println!(
                "{at:>6} ms  {:<18} {:<15} {:<10} retry={}{}",
                event.runtime.flow_name,
                step.step_name,
                what,
                step.retry_times,
                event
                    .error
                    .map(|e| format!("  error: {e}"))
                    .unwrap_or_default()
            ),
            None => println!("{at:>6} ms  {:<18} {what}", event.runtime.flow_name),
        }
    }
}

#[async_trait]
impl TransitionHook for PrintTransitions {
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
        let what = match transition {
            Transition::FlowStarted => "flow started",
            Transition::StepStarted => "inited",
            Transition::StepWaiting => "waiting",
            Transition::StepCompleted => "completed",
            Transition::StepFailed => "failed",
            Transition::FlowCompleted => "flow completed",
            Transition::FlowInterrupted => "flow interrupted",
            Transition::FlowAbandoned => "flow abandoned",
        };
        self.line(event, what);
    }
}

fn check_provision(resource: &MemoryResource) -> Result<Option<Event>, BoxError> {
    let state = resource.state();
    let provisioning = state.is_empty() || state == State::INIT || state == State::CREATING;
    Ok(provisioning.then(|| Event::new("Provision")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), wf_engine::Error> {
    let flows = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let resources = MemoryResourceStore::new();
    let polls = Arc::new(AtomicU32::new(0));
    let tries = Arc::new(AtomicU32::new(0));

    let manager = WorkflowManager::<MemoryResource>::builder("quickstart")
        .flow_dir(flows)
        .hook(PrintTransitions {
            started: Instant::now(),
        })
        // Each factory gets its own clone of what it captures.
        .step_with("quickstart.AllocateVolume", &polls, |polls| {
            AllocateVolume { polls }
        })
        .step_with("quickstart.StartDatabase", &tries, |tries| StartDatabase {
            tries,
            volume: String::new(),
        })
        .step_with("quickstart.MarkRunning", &resources, |resources| {
            MarkRunning {
                resources,
                resource: None,
            }
        })
        .build()?;
    manager.validate()?;

    let mut machine = StateMachine::new("quickstart");
    machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    machine.register_translate_main_enter(
        State::INIT,
        check_provision,
        State::CREATING,
        manager.flow_entry("ProvisionDatabase"),
    );
    machine.validate_flows(&manager)?;

    let db = resources.insert(
        ResourceKey::new("default", "orders-db"),
        ResourceRecord {
            state: State::INIT,
            ..ResourceRecord::default()
        },
    );
    println!("resource default/orders-db is {}", db.state());

    // The controller loop: reconcile, then come back when the engine says so.
    let driver = ReconcileLoop::new(machine, manager).observe(|_, result| match result {
        Ok(done) => println!("           reconcile: {done:?}"),
        Err(err) => println!("           reconcile failed: {err}"),
    });
    match driver.settle(&db).await {
        LoopOutcome::Stable(fresh) if fresh.state() == State::RUNNING => {
            println!("resource default/orders-db is {}", fresh.state());
            Ok(())
        }
        other => {
            println!("resource default/orders-db did not end Running: {other:?}");
            std::process::exit(1);
        }
    }
}
