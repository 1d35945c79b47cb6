//! The Bucket operator of docs/GUIDE.md, Part 2: a resource with a Create and a Resize flow
//! (`workflows/bucket/`), kept in files so that it survives a crash. `--crash-at STEP` starts
//! from an empty state directory and exits (code 3) when STEP starts; a run without it
//! resumes. `--size GIB` (default 20) is the size asked for; `--state-dir DIR` (default
//! `<tmp>/wf-engine-bucket`) holds the resources and the runs.
//!
//! `cargo run -p wf-engine --example bucket -- --crash-at FinishResize`, then without it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wf_engine::hook::{HookEvent, Transition, TransitionHook};
use wf_engine::{
    async_trait, BoxError, CancellationToken, Event, FileMementoStore, FileResource,
    FileResourceStore, LoopOutcome, ReconcileLoop, ResourceKey, ResourceRecord, State,
    StateMachine, StateResource, Step, StepContext, StepError, StepOutcome, WorkflowManager,
};

/// What `AllocateBucket` hands to the steps after it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Allocated {
    bucket_id: String,
}

type Work = fn(&FileResourceStore, &StepContext) -> Result<StepOutcome, StepError>;

/// Every step of the example: `init` keeps the run's context (which names the bucket),
/// `do_step` does the step's work on the store. Each step must be idempotent: after a
/// crash, a step that had started runs again.
struct BucketStep(FileResourceStore, Option<StepContext>, Work);

#[async_trait]
impl Step for BucketStep {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        self.0.fetch(&ctx.resource_key()?)?; // the bucket must exist
        self.1 = Some(ctx.clone());
        Ok(())
    }
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        let ctx = self
            .1
            .as_ref()
            .ok_or_else(|| StepError::failed("no init"))?;
        (self.2)(&self.0, ctx)
    }
}

/// The factory of a step class: each instance gets its own clone of the store.
fn step(work: Work) -> impl Fn(FileResourceStore) -> BucketStep + Send + Sync {
    move |store| BucketStep(store, None, work)
}

/// Allocates the bucket (the same id every time, so a rerun is harmless).
fn allocate(store: &FileResourceStore, ctx: &StepContext) -> Result<StepOutcome, StepError> {
    let key = ctx.resource_key()?;
    let bucket_id = format!("bkt-{}", key.name);
    store.update(&key, |r| r.spec["bucketId"] = bucket_id.clone().into())?;
    Ok(StepOutcome::done_with(&Allocated { bucket_id })?)
}

/// Reads AllocateBucket's output, typed, and sets Running.
fn mark_running(store: &FileResourceStore, ctx: &StepContext) -> Result<StepOutcome, StepError> {
    let allocated: Allocated = ctx.output("AllocateBucket")?;
    store.update(&ctx.resource_key()?, |r| r.state = State::RUNNING)?;
    println!("              bucket {} created", allocated.bucket_id);
    Ok(StepOutcome::Done)
}

/// Asks the (pretend) storage service for the new size; it is there at the next recheck.
fn start_resize(store: &FileResourceStore, ctx: &StepContext) -> Result<StepOutcome, StepError> {
    let (key, size) = (ctx.resource_key()?, ctx.get::<u64>("sizeGib")?); // the event's number
    if store.fetch(&key)?.record().spec["pendingGib"] == size {
        return Ok(StepOutcome::Done);
    }
    store.update(&key, |r| r.spec["pendingGib"] = size.into())?;
    Ok(StepOutcome::waiting_for(Duration::from_millis(200)))
}

/// Records the new size, removes the request it served (only that one), sets Running.
fn finish_resize(store: &FileResourceStore, ctx: &StepContext) -> Result<StepOutcome, StepError> {
    let size: u64 = ctx.get("sizeGib")?;
    store.update(&ctx.resource_key()?, |r| {
        r.spec["sizeGib"] = size.into();
        if r.annotations.get("resizeTo") == Some(&size.to_string()) {
            r.annotations.remove("resizeTo");
        }
        r.state = State::RUNNING;
    })?;
    Ok(StepOutcome::Done)
}

/// Prints every transition; with `--crash-at`, ends the process when that step starts.
struct Print(Option<String>);

#[async_trait]
impl TransitionHook for Print {
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
        let flow = &event.runtime.flow_name;
        let Some(step) = event.step_runtime() else {
            return println!("{flow:<13} {transition:?}");
        };
        let (name, what) = (&step.step_name, format!("{transition:?}"));
        let (retry, resume) = (step.retry_times, step.resume_times);
        println!("{flow:<13} {name:<15} {what:<14} retry={retry} resume={resume}");
        if transition == Transition::StepStarted && self.0.as_deref() == Some(&step.step_name) {
            eprintln!("crashing in {} as asked (--crash-at)", step.step_name);
            std::process::exit(3);
        }
    }
}

fn creating(b: &FileResource) -> Result<Option<Event>, BoxError> {
    let state = b.state().effective();
    Ok((state == State::INIT || state == State::CREATING).then(|| Event::new("Create")))
}

/// A resize request is the annotation `resizeTo: "<GiB>"`; the event carries it as a number.
fn resize_requested(b: &FileResource) -> Result<Option<Event>, BoxError> {
    let size = b
        .annotation("resizeTo")
        .map(|s| s.parse::<u64>())
        .transpose()?;
    Ok(size.map(|gib| Event::new("Resize").with_param("sizeGib", gib)))
}

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let crash_at = arg("--crash-at");
    let size: u64 = arg("--size").map_or(Ok(20), |s| s.parse())?;
    let dir = arg("--state-dir").map_or_else(
        || std::env::temp_dir().join("wf-engine-bucket"),
        PathBuf::from,
    );
    if crash_at.is_some() && dir.exists() {
        std::fs::remove_dir_all(&dir)?; // a crash demo starts over
    }
    let store = FileResourceStore::open(dir.join("resources"))?;
    let manager = WorkflowManager::builder("bucket")
        .flow_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows"))
        .memento_store(FileMementoStore::new(dir.join("runs")))
        .hook(Print(crash_at))
        .step_with("bucket.AllocateBucket", &store, step(allocate))
        .step_with("bucket.MarkRunning", &store, step(mark_running))
        .step_with("bucket.StartResize", &store, step(start_resize))
        .step_with("bucket.FinishResize", &store, step(finish_resize))
        .build()?;
    manager.validate()?;

    let mut machine = StateMachine::new("bucket");
    machine.register_stable_states([State::RUNNING, State::INTERRUPT, State::INIT]);
    // Both entries keep the default resumption (`Resumption::ThisFlow`): the Create entry
    // never finishes a Resize run, nor the Resize entry a Create run.
    machine.register_translate_main_enter(
        State::INIT,
        creating,
        State::CREATING,
        manager.flow_entry("CreateBucket"),
    );
    machine.register_translate_main_enter(
        State::RUNNING,
        resize_requested,
        State::new("Resizing"),
        manager.flow_entry("ResizeBucket"),
    );
    machine.validate_flows(&manager)?;
    let driver = ReconcileLoop::new(machine, manager).max_pause(Duration::from_secs(1));

    let key = ResourceKey::new("default", "photos");
    let bucket = match store.get(&key)? {
        Some(bucket) => bucket, // what an earlier run left
        None => store.insert(key.clone(), ResourceRecord::default())?, // no state: Creating
    };
    println!("bucket {key} is {}", bucket.state().effective());
    for _ in 0..2 {
        let fresh = match driver.settle(&bucket).await {
            LoopOutcome::Stable(fresh) if fresh.state() == State::RUNNING => fresh,
            other => return Err(format!("bucket {key} did not end Running: {other:?}").into()),
        };
        if fresh.record().spec["sizeGib"] == size {
            println!("bucket {key} is Running with {size} GiB");
            return Ok(());
        }
        store.update(&key, |r| {
            drop(r.annotations.insert("resizeTo".into(), size.to_string()))
        })?;
    }
    Err(format!("bucket {key} was not resized").into())
}
