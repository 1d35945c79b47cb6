//! No input panics the engine's decoders: a bounded property-test run of the entry points
//! that the fuzz targets in `fuzz/` drive (`docs/FUZZING.md`), on random bytes and on
//! mutations (bit flips, byte changes, insertions, deletions, truncations, splices, YAML and
//! JSON tokens) of real inputs: the shipped flows `workflows/shared/*.yaml`, real memento
//! files and runtimes, a real history file. Errors are fine; a panic fails the test, naming
//! the input (saved under `target/no-panic/`).
//!
//! `NO_PANIC_CASES` sets the cases per entry point (default 3000), `NO_PANIC_SEED` the seed.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wf_engine::hook::parse_history;
use wf_engine::memento::{
    decode_memento_file, decode_runtime, MementoCaretaker, MementoEntries, MementoError,
    MementoStorage, MementoWrite,
};
use wf_engine::metadata::FlowSource;
use wf_engine::{async_trait, FlowCatalog, RetryPolicy};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cases() -> usize {
    std::env::var("NO_PANIC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn seed(name: &str) -> u64 {
    let base = std::env::var("NO_PANIC_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    name.bytes()
        .fold(base, |h, b| h.rotate_left(5) ^ u64::from(b))
}

/// Tokens that steer a mutation towards the parsers' corners.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-",
    "\n",
    "\r\n",
    "---\n",
    "...\n",
    "\u{feff}",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "\\u0000",
    "\\ud800",
    "&a ",
    "*a",
    "!!binary ",
    "!tag ",
    "? ",
    "- ",
    "  ",
    "\t",
    "#",
    "|\n",
    ">-\n",
    "~",
    "<<: *a\n",
    "\u{0}",
    "\u{10ffff}",
    "é",
    "0001-01-01 00:00:00",
    "9999-12-31T23:59:59.999Z",
    "+275760-09-13T00:00:00Z",
    "2021-07-21 08:32:47.4921234567",
    "\"flowStatus\":\"running\"",
    "\"runningSteps\":[]",
    "\"stepStatus\":\"running\"",
    "\"StepName\":\"\"",
    "steps:",
    "stepGroup:",
    "className:",
    "retry:",
    "backoff:",
    "maxRetries: -1",
    "initial: 0s",
    "max: 99999999999999h",
    "1-",
    "18446744073709551615-F",
    "0-F",
];

/// One mutation of `input`, steered by `rng`; `others` may be spliced in.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    // Mostly one change, so that most inputs stay close to valid and reach deep code.
    let changes = if rng.u8(0..4) < 3 {
        1
    } else {
        rng.usize(2..=6)
    };
    for _ in 0..changes {
        let len = out.len();
        match rng.u8(0..9) {
            0 if len > 0 => {
                let at = rng.usize(..len);
                out[at] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let at = rng.usize(..len);
                out[at] = rng.u8(..);
            }
            2 => {
                let at = rng.usize(..=len);
                let n = rng.usize(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.usize(..len);
                let end = (at + rng.usize(1..=32)).min(len);
                out.drain(at..end);
            }
            4 => out.truncate(rng.usize(..=len)),
            5 if len > 0 => {
                let at = rng.usize(..len);
                let end = (at + rng.usize(1..=64)).min(len);
                let piece = out[at..end].to_vec();
                let to = rng.usize(..=out.len());
                out.splice(to..to, piece);
            }
            6 | 7 => {
                let at = rng.usize(..=len);
                let token = TOKENS[rng.usize(..TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                if let Some(other) = others.get(rng.usize(..others.len().max(1))) {
                    if !other.is_empty() {
                        let from = rng.usize(..other.len());
                        let end = (from + rng.usize(1..=128)).min(other.len());
                        let at = rng.usize(..=out.len());
                        out.splice(at..at, other[from..end].iter().copied());
                    }
                }
            }
        }
    }
    out
}

/// Runs `check` on `cases()` inputs: a quarter random bytes, the rest mutations of `seeds`
/// (which are checked first, as they are). `check` tells whether the input was accepted (for
/// the figures). A panic fails the test with the input.
fn run(name: &str, seeds: &[Vec<u8>], check: impl Fn(&[u8]) -> bool) {
    run_with(name, seeds, |_, _| None, check);
}

/// [`run`], where `remix` may make a mutation of its own from a seed (one that knows the
/// seed's structure), used for half of the mutations when it does.
fn run_with(
    name: &str,
    seeds: &[Vec<u8>],
    remix: impl Fn(&mut fastrand::Rng, &[u8]) -> Option<Vec<u8>>,
    check: impl Fn(&[u8]) -> bool,
) {
    let cases = cases();
    let mut rng = fastrand::Rng::with_seed(seed(name));
    let started = std::time::Instant::now();
    let mut ran = 0usize;
    let mut accepted = 0usize;
    for i in 0..cases + seeds.len() {
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else if seeds.is_empty() || rng.u8(0..4) == 0 {
            let n = rng.usize(0..512);
            if rng.bool() {
                (0..n).map(|_| rng.u8(..)).collect()
            } else {
                (0..n).map(|_| rng.u8(0x20..0x7f)).collect()
            }
        } else {
            let base = &seeds[rng.usize(..seeds.len())];
            let remixed = if rng.bool() {
                remix(&mut rng, base)
            } else {
                None
            };
            remixed.unwrap_or_else(|| mutate(&mut rng, base, seeds))
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
        ran += 1;
        accepted += usize::from(matches!(outcome, Ok(true)));
        if outcome.is_err() {
            let dir = root().join("target/no-panic");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{i}.bin"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "{name}: case {i} panicked; input saved to {} ({:?})",
                file.display(),
                String::from_utf8_lossy(&input)
            );
        }
    }
    eprintln!(
        "no_panic {name}: {ran} cases ({accepted} accepted), 0 panics, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

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
