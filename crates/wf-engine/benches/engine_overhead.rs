//! Engine overhead: flows of no-op steps on the in-memory memento store, next to the floor
//! (the same step bodies called directly). Every benchmark reports time per flow; divide by
//! the flow's step count for time per step. The figures and their ratios are kept in
//! docs/PERFORMANCE.md.
//!
//! Shapes:
//! - `engine_7_noop_steps`: a 7-step flow on a resource with the default retention (10
//!   finished runs kept).
//! - `engine_30_noop_steps`: the same with 30 steps (per-step cost against flow length).
//! - `engine_7_noop_steps_200_runs`: the 7-step flow on a resource that keeps 200 finished
//!   runs (retention 200; per-step cost against history).
//! - `common_main_enter_200_runs`: one reconcile through `common_main_enter` (cancellation
//!   watch, resume check, checker, then the 7-step run) on a resource with 200 runs.
//! - `floor_7_step_bodies`: the 7 step bodies (`init`, `do_step`, `output`) alone.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wf_engine::{
    async_trait, CancellationToken, Checker, Event, InMemoryMementoStore, JsonMap, MemoryResource,
    MemoryResourceStore, ResourceKey, ResourceRecord, State, StateResource, StaticLoader, Step,
    StepContext, StepError, StepOutcome, StepRegistry, WorkflowConfig, WorkflowManager,
};

/// The most steps a flow of this bench has.
const MAX_STEPS: usize = 30;
/// The finished runs kept by the long-history shapes.
const HISTORY: usize = 200;

#[derive(Default)]
struct Noop;

#[async_trait]
impl Step for Noop {
    async fn init(&mut self, ctx: &StepContext) -> Result<(), StepError> {
        black_box(ctx);
        Ok(())
    }

    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Done)
    }
}

fn flow_yaml(name: &str, steps: usize) -> String {
    let mut yaml = format!("flowName: {name}\nsteps:\n");
    for i in 1..=steps {
        yaml.push_str(&format!(
            "  - {{className: bench.Noop{i}, stepName: Step{i}}}\n"
        ));
    }
    yaml
}

fn registry() -> StepRegistry {
    let mut registry = StepRegistry::new();
    for i in 1..=MAX_STEPS {
        registry.register_default::<Noop>(format!("bench.Noop{i}"));
    }
    registry
}

fn manager(retention: usize) -> WorkflowManager<MemoryResource> {
    WorkflowManager::builder("bench")
        .loader(
            StaticLoader::new()
                .with("bench/Seven.yaml", flow_yaml("Seven", 7))
                .with("bench/Thirty.yaml", flow_yaml("Thirty", 30)),
        )
        .memento_store(InMemoryMementoStore::new())
        .registry(registry())
        .config(WorkflowConfig {
            retention,
            ..WorkflowConfig::default()
        })
        .build()
        .expect("manager")
}

fn resource(name: &str) -> MemoryResource {
    MemoryResourceStore::new().insert(
        ResourceKey::new("default", name),
        ResourceRecord {
            state: State::CREATING,
            ..ResourceRecord::default()
        },
    )
}

async fn run_once(
    manager: &WorkflowManager<MemoryResource>,
    resource: &MemoryResource,
    flow: &str,
    token: &CancellationToken,
) {
    let mut workflow = manager.resource_workflow(resource).await.expect("load");
    let report = workflow
        .run(flow, JsonMap::new(), token)
        .await
        .expect("run");
    black_box(report);
}

fn engine_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let token = CancellationToken::new();

    let short = manager(WorkflowConfig::default().retention);
    let short_resource = resource("bench");
    let long = manager(HISTORY);
    let long_resource = resource("bench-history");
    rt.block_on(async {
        for _ in 0..HISTORY {
            run_once(&long, &long_resource, "Seven", &token).await;
        }
    });
    // A reconcile as the machine runs it: the trigger fires, the flow runs, then the trigger
    // no longer fires (the engine checks it again) and the resource is set Running. The
    // checker is asked exactly twice per reconcile: it fires on the first call of each pair.
    // Each iteration first puts the resource back in `Creating` (one in-memory write).
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let always: Checker<MemoryResource> = Arc::new(move |_| {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((n % 2 == 0).then(|| Event::new("Creating")))
    });

    let mut group = c.benchmark_group("engine_overhead");

    group.throughput(Throughput::Elements(7));
    group.bench_function("engine_7_noop_steps", |b| {
        b.iter(|| rt.block_on(run_once(&short, &short_resource, "Seven", &token)))
    });

    group.throughput(Throughput::Elements(30));
    group.bench_function("engine_30_noop_steps", |b| {
        b.iter(|| rt.block_on(run_once(&short, &short_resource, "Thirty", &token)))
    });

    group.throughput(Throughput::Elements(7));
    group.bench_function("engine_7_noop_steps_200_runs", |b| {
        b.iter(|| rt.block_on(run_once(&long, &long_resource, "Seven", &token)))
    });

    group.bench_function("common_main_enter_200_runs", |b| {
        b.iter(|| {
            rt.block_on(async {
                // Back in the flow's state, as when the machine enters it.
                long_resource
                    .update_state(State::CREATING)
                    .await
                    .expect("state");
                let mut workflow = long.resource_workflow(&long_resource).await.expect("load");
                let reconciled = workflow
                    .common_main_enter("Seven", wf_engine::Resumption::AnyFlow, &always)
                    .await
                    .expect("reconcile");
                black_box(reconciled);
            })
        })
    });

    let registry = registry();
    let classes: Vec<String> = (1..=7).map(|i| format!("bench.Noop{i}")).collect();
    group.bench_function("floor_7_step_bodies", |b| {
        b.iter(|| {
            rt.block_on(async {
                for class in &classes {
                    let mut step = registry.create(class).expect("registered");
                    let ctx = StepContext::new(
                        "Seven",
                        class,
                        JsonMap::new(),
                        "_resourceName",
                        "_resourceNameSpace",
                    );
                    step.init(&ctx).await.expect("init");
                    black_box(step.do_step(&token).await.expect("do_step"));
                    black_box(step.output());
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, engine_overhead);
criterion_main!(benches);
