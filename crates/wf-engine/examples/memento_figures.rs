//! Two figures of docs/PERFORMANCE.md that criterion does not give:
//!
//! - memento bytes written per step: the JSON written to the memento store by one run of the
//!   7-step no-op flow of the `engine_overhead` bench, divided by 7;
//! - memory: the resident set (RSS, from `/proc/self/status`) of 10,000 resources with one
//!   completed 7-step run each, on the in-memory memento store.
//!
//! Run it with `cargo run --release -p wf-engine --example memento_figures`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wf_engine::memento::{MementoError, MementoStorage, MementoStorageFactory, MementoWrite};
use wf_engine::{
    async_trait, CancellationToken, InMemoryMementoStore, JsonMap, MemoryResource,
    MemoryResourceStore, ResourceKey, ResourceRecord, State, StaticLoader, Step, StepError,
    StepOutcome, StepRegistry, WorkflowManager,
};

const STEPS: usize = 7;
const RESOURCES: usize = 10_000;

#[derive(Default)]
struct Noop;

#[async_trait]
impl Step for Noop {
    async fn do_step(&mut self, _: &CancellationToken) -> Result<StepOutcome, StepError> {
        Ok(StepOutcome::Done)
    }
}

/// The in-memory store, counting the bytes of every document written.
#[derive(Clone, Default)]
struct Counting {
    inner: InMemoryMementoStore,
    bytes: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

struct CountingStorage {
    inner: Arc<dyn MementoStorage>,
    bytes: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

#[async_trait]
impl MementoStorage for CountingStorage {
    async fn load_all(&self) -> Result<std::collections::BTreeMap<String, String>, MementoError> {
        self.inner.load_all().await
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        self.bytes.fetch_add(change.value.len(), Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write(change).await
    }
}

impl MementoStorageFactory<MemoryResource> for Counting {
    fn storage_for(
        &self,
        resource: &MemoryResource,
    ) -> Result<Arc<dyn MementoStorage>, MementoError> {
        Ok(Arc::new(CountingStorage {
            inner: self.inner.storage_for(resource)?,
            bytes: self.bytes.clone(),
            writes: self.writes.clone(),
        }))
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

fn manager(
    store: impl MementoStorageFactory<MemoryResource> + 'static,
) -> WorkflowManager<MemoryResource> {
    let mut registry = StepRegistry::new();
    for i in 1..=STEPS {
        registry.register_default::<Noop>(format!("bench.Noop{i}"));
    }
    WorkflowManager::builder("bench")
        .loader(StaticLoader::new().with("bench/Seven.yaml", flow_yaml()))
        .memento_store(store)
        .registry(registry)
        .build()
        .expect("manager")
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn run_seven(
    manager: &WorkflowManager<MemoryResource>,
    resource: &MemoryResource,
    token: &CancellationToken,
) {
    let mut workflow = manager.resource_workflow(resource).await.expect("load");
    workflow
        .run("Seven", JsonMap::new(), token)
        .await
        .expect("run");
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let token = CancellationToken::new();
    let resources = MemoryResourceStore::new();
    let creating = ResourceRecord {
        state: State::CREATING,
        ..ResourceRecord::default()
    };

    rt.block_on(async {
        let counting = Counting::default();
        let counted = manager(counting.clone());
        let bench = resources.insert(ResourceKey::new("default", "bench"), creating.clone());
        run_seven(&counted, &bench, &token).await;
        let bytes = counting.bytes.load(Ordering::Relaxed);
        let writes = counting.writes.load(Ordering::Relaxed);
        println!(
            "memento bytes per step (7-step flow): {} ({bytes} bytes in {writes} writes)",
            bytes / STEPS
        );

        let store = InMemoryMementoStore::new();
        let many = manager(store.clone());
        let before = rss_kib();
        for i in 0..RESOURCES {
            let resource = resources.insert(
                ResourceKey::new("default", format!("c{i}")),
                creating.clone(),
            );
            run_seven(&many, &resource, &token).await;
        }
        let after = rss_kib();
        match (before, after) {
            (Some(before), Some(after)) => println!(
                "RSS with {RESOURCES} resources, one completed 7-step run each: {:.1} MiB \
                 ({:.1} MiB more than before them, {:.0} bytes per resource)",
                after as f64 / 1024.0,
                (after - before) as f64 / 1024.0,
                (after - before) as f64 * 1024.0 / RESOURCES as f64
            ),
            _ => println!("RSS: /proc/self/status is not readable here"),
        }
        drop((many, store));
    });
}
