//! Engine overhead: a 7-step flow of no-op steps on the in-memory memento store, next to
//! the floor (the same 7 step bodies called directly). Both report time per flow; divide by
//! 7 for time per step. The figures and their ratio are kept in docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wf_engine::{
    async_trait, CancellationToken, InMemoryMementoStore, JsonMap, MemoryResourceStore,
    ResourceKey, ResourceRecord, State, StaticLoader, Step, StepContext, StepError, StepOutcome,
    StepRegistry, WorkflowManager,
};

const STEPS: usize = 7;

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

fn flow_yaml() -> String {
    let mut yaml = String::from("flowName: Seven\nsteps:\n");
    for i in 1..=STEPS {
        yaml.push_str(&format!(
            "  - {{className: bench.Noop{i}, stepName: Step{i}}}\n"
        ));
    }
    yaml
}

fn engine_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut registry = StepRegistry::new();
    for i in 1..=STEPS {
        registry.register_default::<Noop>(format!("bench.Noop{i}"));
    }
    let manager = WorkflowManager::builder("bench")
        .loader(StaticLoader::new().with("bench/Seven.yaml", flow_yaml()))
        .memento_store(InMemoryMementoStore::new())
        .registry(registry.clone())
        .build()
        .expect("manager");
    let resource = MemoryResourceStore::new().insert(
        ResourceKey::new("default", "bench"),
        ResourceRecord {
            state: State::CREATING,
            ..ResourceRecord::default()
        },
    );
    let token = CancellationToken::new();

    let mut group = c.benchmark_group("engine_overhead");
    group.throughput(Throughput::Elements(STEPS as u64));

    group.bench_function("engine_7_noop_steps", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut workflow = manager.resource_workflow(&resource).await.expect("load");
                let report = workflow
                    .run("Seven", JsonMap::new(), &token)
                    .await
                    .expect("run");
                black_box(report);
            })
        })
    });

    let classes: Vec<String> = (1..=STEPS).map(|i| format!("bench.Noop{i}")).collect();
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
