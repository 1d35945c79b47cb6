//! Memento bytes written per step for the 7-step no-op flow of the `engine_overhead` bench:
//! at most the original's 2.1 KB. The figure is deterministic: names are fixed and every
//! time is written in 24 bytes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wf_engine::memento::{MementoError, MementoStorage, MementoStorageFactory, MementoWrite};
use wf_engine::{
    async_trait, CancellationToken, InMemoryMementoStore, JsonMap, MemoryResource,
    MemoryResourceStore, ResourceKey, ResourceRecord, State, StaticLoader, Step, StepError,
    StepOutcome, WorkflowManager,
};

const STEPS: usize = 7;
/// The original operator's bytes per step for this flow.
const ORIGINAL_BYTES_PER_STEP: usize = 2100;

#[derive(Default)]
struct Noop;

#[async_trait]
impl Step for Noop {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Done)
    }
}

#[derive(Clone, Default)]
struct Counting {
    inner: InMemoryMementoStore,
    bytes: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

struct CountingStorage {
    inner: Arc<dyn MementoStorage>,
    counts: Counting,
}

#[async_trait]
impl MementoStorage for CountingStorage {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        self.inner.load_all().await
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        self.counts
            .bytes
            .fetch_add(change.value.len(), Ordering::Relaxed);
        self.counts.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write(change).await
    }
}

impl MementoStorageFactory<MemoryResource> for Counting {
    fn storage_for(&self, r: &MemoryResource) -> Result<Arc<dyn MementoStorage>, MementoError> {
        Ok(Arc::new(CountingStorage {
            inner: self.inner.storage_for(r)?,
            counts: self.clone(),
        }))
    }
}

#[tokio::test]
async fn memento_bytes_per_step_of_the_7_step_flow_are_at_most_the_originals_2_1_kb() {
    let mut yaml = String::from("flowName: Seven\nsteps:\n");
    let counting = Counting::default();
    let mut builder = WorkflowManager::builder("bench").memento_store(counting.clone());
    for i in 1..=STEPS {
        yaml.push_str(&format!(
            "  - {{className: bench.Noop{i}, stepName: Step{i}}}\n"
        ));
        builder = builder.step(format!("bench.Noop{i}"), || Noop);
    }
    let manager = builder
        .loader(StaticLoader::new().with("bench/Seven.yaml", yaml))
        .build()
        .unwrap();
    let resource = MemoryResourceStore::new().insert(
        ResourceKey::new("default", "bench"),
        ResourceRecord {
            state: State::CREATING,
            ..ResourceRecord::default()
        },
    );
    let mut workflow = manager.resource_workflow(&resource).await.unwrap();
    workflow
        .run("Seven", JsonMap::new(), &CancellationToken::new())
        .await
        .unwrap();

    let writes = counting.writes.load(Ordering::Relaxed);
    assert_eq!(writes, 1 + 2 * STEPS + 1, "one write per transition");
    let per_step = counting.bytes.load(Ordering::Relaxed) / STEPS;
    println!("memento bytes per step: {per_step}");
    assert!(
        per_step <= ORIGINAL_BYTES_PER_STEP,
        "{per_step} bytes per step, over the original's {ORIGINAL_BYTES_PER_STEP}"
    );
}
