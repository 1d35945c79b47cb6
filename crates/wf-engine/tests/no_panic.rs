//! No input panics the engine's decoders: a bounded property-test run of the entry points
//! that the fuzz targets in `fuzz/` drive (`docs/FUZZING.md`), on random bytes and on
//! mutations (bit flips, byte changes, insertions, deletions, truncations, splices, YAML and
//! JSON tokens) of real inputs: the shipped flows `workflows/shared/*.yaml`, real memento
//! files and runtimes, a real history file. Errors are fine; a panic fails the test, naming
//! the input (saved under `target/no-panic/`).
//!
//! `NO_PANIC_CASES` sets the cases per entry point (default 3000), `NO_PANIC_SEED` the seed
//! (the harness: `tests/common/no_panic.rs`).

#[path = "common/no_panic.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harness::{mutate, root, run, run_with};

use wf_engine::hook::parse_history;
use wf_engine::memento::{
    decode_memento_file, decode_runtime, MementoCaretaker, MementoEntries, MementoError,
    MementoStorage, MementoWrite,
};
use wf_engine::metadata::FlowSource;
use wf_engine::{async_trait, FlowCatalog, RetryPolicy};

fn shipped_flows() -> Vec<Vec<u8>> {
    let dir = root().join("workflows/shared");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the shipped flows in {}", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The flow YAML loader on one file's text, as a flow file and as a step-group file.
fn load_flows(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let defaults = RetryPolicy::default();
    let mut ok = false;
    for path in ["fuzz/Flow.yaml", "fuzz/fuzz_step_group.yaml"] {
        ok |= FlowCatalog::from_sources(&[FlowSource::new(path, text)], &defaults).is_ok();
    }
    // Beside a group that the text may refer to.
    let group = FlowSource::new(
        "fuzz/common_step_group.yaml",
        "groupName: Common\nsteps:\n  - {className: a.B, stepName: B}\n",
    );
    ok | FlowCatalog::from_sources(&[group, FlowSource::new("fuzz/F.yaml", text)], &defaults)
        .is_ok()
}

#[test]
fn the_flow_yaml_loader_never_panics() {
    let mut seeds = shipped_flows();
    seeds.push(
        b"groupName: Common\nsteps:\n  - {className: a.B, stepName: B}\n  - stepGroup: Common\n"
            .to_vec(),
    );
    seeds.push(
        b"flowName: F\nmaxResumes: 3\nretry: {maxRetries: 2}\nbackoff: {initial: 5ms, max: 10ms}\nsteps:\n  - {className: A, stepName: A, retry: {maxRetries: 1}}\n  - stepGroup: Common\n"
            .to_vec(),
    );
    run("flow_yaml", &seeds, load_flows);
}

/// A store that hands out fixed content and accepts every write.
struct Fixed(BTreeMap<String, String>);

#[async_trait]
impl MementoStorage for Fixed {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        Ok(self.0.clone())
    }

    async fn write(&self, _: &MementoWrite) -> Result<(), MementoError> {
        Ok(())
    }
}

/// The memento decoder on a file's bytes, then what the engine does with a store: the
/// caretaker's queries, and a save of every run it read (the hand-written encoder, whose
/// output debug builds check against serde's).
fn decode_memento(runtime: &tokio::runtime::Runtime, bytes: &[u8]) -> bool {
    let decoded = decode_memento_file("fuzz.json", bytes);
    let accepted = decoded.is_ok();
    let entries = match decoded {
        Ok(entries) => entries,
        Err(_) => {
            // Still exercise the lazy path: a store whose values were never checked.
            match serde_json::from_slice::<BTreeMap<String, String>>(bytes) {
                Ok(raw) => raw,
                Err(_) => return false,
            }
        }
    };
    let shared = MementoEntries::from(entries.clone());
    let _ = (shared.len(), shared.bytes(), shared.to_map());
    for (key, _) in shared.iter() {
        let _ = shared.get(key);
    }
    runtime.block_on(async {
        let Ok(mut caretaker) =
            MementoCaretaker::load("fuzz-workflow", Arc::new(Fixed(entries)), 3, 1 << 20).await
        else {
            return;
        };
        let _ = caretaker.next_seq();
        let _ = caretaker.latest();
        let _ = caretaker.latest_uncompleted();
        let _ = caretaker.uncompleted();
        if let Ok(runs) = caretaker.runtimes() {
            for run in runs {
                let _ = caretaker.save(run.seq, &run.runtime).await;
                let next = caretaker.next_seq();
                let _ = caretaker.save(next, &run.runtime).await;
            }
        }
    });
    accepted
}

fn memento_seeds() -> Vec<Vec<u8>> {
    let two_runs = fixture("memento_file_two_runs.json");
    let mut seeds = vec![two_runs.clone()];
    // Each run alone, as a file.
    let map: BTreeMap<String, String> = serde_json::from_slice(&two_runs).unwrap();
    for (key, value) in &map {
        seeds.push(serde_json::to_vec(&BTreeMap::from([(key.clone(), value.clone())])).unwrap());
    }
    for name in [
        "memento_current_failed_run.json",
        "memento_original_failed_run.json",
    ] {
        let value = String::from_utf8(fixture(name)).unwrap();
        seeds.push(serde_json::to_vec(&BTreeMap::from([("7-CreateCluster", value)])).unwrap());
    }
    seeds
}

#[test]
fn the_memento_decoder_never_panics() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seeds = memento_seeds();
    let values: Vec<Vec<u8>> = seeds.clone();
    // A mutation inside one stored runtime, the file around it kept well-formed.
    let remix = |rng: &mut fastrand::Rng, seed: &[u8]| {
        let mut map: BTreeMap<String, String> = serde_json::from_slice(seed).ok()?;
        let keys: Vec<String> = map.keys().cloned().collect();
        let key = keys.get(rng.usize(..keys.len().max(1)))?.clone();
        let value = map.get(&key)?.clone();
        let mutated = mutate(rng, value.as_bytes(), &values);
        map.insert(key, String::from_utf8_lossy(&mutated).into_owned());
        serde_json::to_vec(&map).ok()
    };
    run_with("memento_file", &seeds, remix, |bytes| {
        decode_memento(&runtime, bytes)
    });
}

/// One stored runtime (a value of a memento file), decoded and saved again.
fn decode_one_runtime(runtime: &tokio::runtime::Runtime, bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let Ok(decoded) = decode_runtime("fuzz/1-F", text) else {
        return false;
    };
    let _ = serde_json::to_string(&decoded);
    runtime.block_on(async {
        let storage = Arc::new(Fixed(BTreeMap::new()));
        if let Ok(mut caretaker) =
            MementoCaretaker::load("fuzz-workflow", storage, 3, 1 << 20).await
        {
            let _ = caretaker.save(1, &decoded).await;
            let _ = caretaker.save(1, &decoded).await;
        }
    });
    true
}

#[test]
fn the_runtime_decoder_never_panics() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut seeds = vec![
        fixture("memento_current_failed_run.json"),
        fixture("memento_original_failed_run.json"),
    ];
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&fixture("memento_file_two_runs.json")).unwrap();
    seeds.extend(map.into_values().map(String::into_bytes));
    run("memento_runtime", &seeds, |bytes| {
        decode_one_runtime(&runtime, bytes)
    });
}

#[test]
fn the_history_decoder_never_panics() {
    let seeds = vec![fixture("history_twelve_events.txt")];
    run("history", &seeds, |bytes| {
        let (events, skipped) = parse_history(Path::new("fuzz.txt"), bytes);
        skipped.is_empty() && !events.is_empty()
    });
}
