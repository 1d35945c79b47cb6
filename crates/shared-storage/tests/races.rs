//! Writers in other processes against a running `local --watch`: every accepted write is
//! kept (issue 11, item 3). The cluster files are written by `local` (its apply of the
//! watched file and the reconcile), by `cancel` and `recover` (other processes, without the
//! state directory's lock), and here by this test process (an annotation as `cancel` and
//! `recover` write it, an apply as `local` makes it): each write must be a
//! compare-and-swap across processes, or a write lands on a stale copy and another is lost.
//!
//! Each write is made observable:
//! - an annotation or an apply from this process carries a key of its own (`race.test/…`),
//!   which nothing removes: every write that succeeded must be in the object at the end;
//! - a change of the watched file carries a key of its own and a new `followerNum` (so a
//!   flow runs that `cancel` can stop): the last one must be stored at the end;
//! - `cancel` (exit 0) writes `cancelled=true`, which only the engine removes (a consumed
//!   recovery, or the end of the run it was for): it must stay until the next `recover` or
//!   until a run has ended (a newer finished run, or a stable state); `recover` (exit 0) writes `interrupt.recover=T`,
//!   which `local` consumes: the cluster must leave `Interrupt`. A refusal (exit 1, nothing
//!   to cancel or recover) is not a write.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared_storage::crd::MPDCluster;
use shared_storage::local::FileClusterStore;

const NAME: &str = "demo";
const NAMESPACE: &str = "default";

/// `cancel`/`recover` attempts (the binary), annotations (two threads), applies.
const CANCEL_RECOVER: usize = 40;
const ANNOTATIONS_PER_THREAD: usize = 50;
const APPLIES: usize = 60;
/// The test's bound; the writers stop early when it comes near.
const LIMIT: Duration = Duration::from_secs(60);
const WRITERS_STOP: Duration = Duration::from_secs(35);

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shared-storage-operator"))
}

fn sample() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mpdcluster.yaml");
    std::fs::read_to_string(path).expect("the sample")
}

/// Kills the child when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The watched file: the sample with `followerNum` and the annotations written so far.
struct WatchedFile {
    path: PathBuf,
    sample: String,
    follower_num: i32,
    keys: Vec<String>,
}

impl WatchedFile {
    fn text(&self) -> String {
        let mut annotations = String::from("  annotations:\n");
        for key in &self.keys {
            annotations.push_str(&format!("    {key}: \"1\"\n"));
        }
        let text = self.sample.replace(
            "followerNum: 2",
            &format!("followerNum: {}", self.follower_num),
        );
        if self.keys.is_empty() {
            text
        } else {
            text.replace(
                "  namespace: default\n",
                &format!("  namespace: default\n{annotations}"),
            )
        }
    }

    fn write(&self) {
        std::fs::write(&self.path, self.text()).expect("write the watched file");
    }

    /// The document as `local` applies it.
    fn doc(&self) -> MPDCluster {
        serde_yaml::from_str(&self.text()).expect("the document")
    }
}

#[derive(Default, Debug)]
struct Tally {
    /// Per kind of write: accepted, refused.
    kinds: BTreeMap<&'static str, (usize, usize)>,
    written: usize,
    refused: usize,
    /// Errors the writer was told about (not silent).
    reported: usize,
    lost: Vec<String>,
    /// Keys written that must be in the object at the end.
    expected: Vec<String>,
}

impl Tally {
    fn count(&mut self, kind: &'static str, written: bool) {
        let entry = self.kinds.entry(kind).or_default();
        if written {
            self.written += 1;
            entry.0 += 1;
        } else {
            self.refused += 1;
            entry.1 += 1;
        }
    }

    fn add(&mut self, other: Tally) {
        for (kind, (written, refused)) in other.kinds {
            let entry = self.kinds.entry(kind).or_default();
            entry.0 += written;
            entry.1 += refused;
        }
        self.written += other.written;
        self.refused += other.refused;
        self.reported += other.reported;
        self.lost.extend(other.lost);
        self.expected.extend(other.expected);
    }
}

fn read(store: &FileClusterStore) -> Option<MPDCluster> {
    store.read(NAMESPACE, NAME).ok()
}

fn annotation(cr: &MPDCluster, key: &str) -> Option<String> {
    cr.metadata.annotations.as_ref()?.get(key).cloned()
}

fn state(cr: &MPDCluster) -> String {
    cr.status
        .as_ref()
        .map(|s| s.cluster_status.clone())
        .unwrap_or_default()
}

fn verb(state_dir: &Path, verb: &str) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args([verb, NAME, "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The highest sequence of a finished run (0 without one): it grows when a run ends, since
/// the runs of one cluster follow each other.
fn newest_finished_run(state_dir: &Path) -> u64 {
    let out = Command::new(bin())
        .args(["workflows", NAME, "--output", "json", "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("run the binary");
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    runs.iter()
        .filter(|r| {
            matches!(
                r["status"].as_str(),
                Some("completed" | "failedAndCompleted" | "abandoned")
            )
        })
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// `cancel` and `recover` through the binary, one at a time: `recover` when the cluster is
/// interrupted (mostly), `cancel` otherwise.
fn cancel_and_recover(state_dir: &Path, store: &FileClusterStore, seed: u64) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    // Whether a cancel mark was written and no recovery has withdrawn it since, and the
    // newest finished run when it was written.
    let mut cancel_mark = false;
    let mut finished_at_cancel = 0;
    // The engine removes the mark once the run it was for has ended.
    let consumed = |finished_at_cancel: u64, cr: Option<&MPDCluster>| {
        cr.is_some_and(|c| matches!(state(c).as_str(), "Running" | "Interrupt"))
            || newest_finished_run(state_dir) > finished_at_cancel
    };
    let started = Instant::now();
    for i in 0..CANCEL_RECOVER {
        if started.elapsed() > WRITERS_STOP {
            break;
        }
        // The first write comes within milliseconds of `local` starting.
        std::thread::sleep(Duration::from_millis(if i == 0 {
            0
        } else {
            rng.u64(50..400)
        }));
        let cr = read(store);
        if cancel_mark
            && cr.as_ref().and_then(|c| annotation(c, "cancelled")) != Some("true".into())
        {
            if !consumed(finished_at_cancel, cr.as_ref()) {
                tally
                    .lost
                    .push(format!("cancel before attempt {i}: mark gone"));
            }
            cancel_mark = false;
        }
        let interrupted = cr.as_ref().is_some_and(|c| state(c) == "Interrupt");
        let recover = if interrupted {
            rng.u8(0..10) < 9
        } else {
            rng.u8(0..10) == 0
        };
        // Read before the cancel: a run that ends right after it consumes its mark.
        let finished_before = if recover {
            0
        } else {
            newest_finished_run(state_dir)
        };
        let (code, stderr) = verb(state_dir, if recover { "recover" } else { "cancel" });
        match code {
            Some(0) if recover => {
                tally.count("recover", true);
                // Consumed once the cluster leaves Interrupt (the mark is cleared first).
                let waited = Instant::now();
                loop {
                    let cr = read(store);
                    if cr.as_ref().is_some_and(|c| state(c) != "Interrupt") {
                        cancel_mark = false;
                        break;
                    }
                    if waited.elapsed() > Duration::from_secs(10) {
                        let mark = cr.and_then(|c| annotation(&c, "interrupt.recover"));
                        tally.lost.push(if mark.is_some() {
                            format!("recover {i}: written but never consumed")
                        } else {
                            format!("recover {i}: mark gone, still Interrupt")
                        });
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Some(0) => {
                tally.count("cancel", true);
                cancel_mark = true;
                finished_at_cancel = finished_before;
                if read(store).and_then(|c| annotation(&c, "cancelled")) != Some("true".into()) {
                    tally.lost.push(format!("cancel {i}: mark not stored"));
                    cancel_mark = false;
                }
            }
            Some(1) if stderr.contains("there is nothing to") || stderr.contains("not found") => {
                tally.count(if recover { "recover" } else { "cancel" }, false);
            }
            _ => {
                eprintln!(
                    "{} {i}: exit {code:?}: {stderr}",
                    if recover { "recover" } else { "cancel" }
                );
                tally.reported += 1;
            }
        }
    }
    let cr = read(store);
    if cancel_mark
        && cr.as_ref().and_then(|c| annotation(c, "cancelled")) != Some("true".into())
        && !consumed(finished_at_cancel, cr.as_ref())
    {
        tally.lost.push("the last cancel: mark gone".to_owned());
    }
    tally
}

/// Annotations as `cancel` and `recover` write them, each with a key of its own.
fn annotate(store: &FileClusterStore, thread: usize, seed: u64) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..ANNOTATIONS_PER_THREAD {
        if started.elapsed() > WRITERS_STOP {
            break;
        }
        std::thread::sleep(Duration::from_millis(if i == 0 {
            0
        } else {
            rng.u64(0..400)
        }));
        let key = format!("race.test/annotation-{thread}-{i}");
        match store.set_annotation(NAMESPACE, NAME, &key, "1") {
            Ok(_) => {
                tally.count("annotate", true);
                tally.expected.push(key);
            }
            // Before `local` created the object.
            Err(shared_storage::local::LocalError::NotFound { .. }) => {
                tally.count("annotate", false);
            }
            Err(err) => {
                eprintln!("annotate {key}: {err}");
                tally.reported += 1;
            }
        }
    }
    tally
}

/// Applies as `local` makes them, of the watched file with a key of its own added.
fn apply(store: &FileClusterStore, file: &Mutex<WatchedFile>, seed: u64) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..APPLIES {
        if started.elapsed() > WRITERS_STOP {
            break;
        }
        std::thread::sleep(Duration::from_millis(if i == 0 {
            0
        } else {
            rng.u64(0..500)
        }));
        let key = format!("race.test/apply-{i}");
        // Applies are three-way merges (`kubectl apply`): a key the file loses is removed.
        // So the key goes into the watched file, as a user adds a line and applies it,
        // and this apply races `local --watch`'s apply of the same file.
        let mut file = file.lock().unwrap();
        file.keys.push(key.clone());
        file.write();
        match store.apply(&file.doc()) {
            Ok(_) => {
                tally.count("apply", true);
                tally.expected.push(key);
            }
            Err(err) => {
                eprintln!("apply {key}: {err}");
                tally.reported += 1;
            }
        }
    }
    tally
}

/// Changes of the watched file, each with a key of its own and the other `followerNum`.
fn edit_file(file: &Mutex<WatchedFile>, done: &AtomicBool) -> usize {
    let mut edits = 0;
    let started = Instant::now();
    while !done.load(Ordering::SeqCst) && started.elapsed() < WRITERS_STOP {
        std::thread::sleep(Duration::from_millis(1500));
        let mut file = file.lock().unwrap();
        file.follower_num = if file.follower_num == 2 { 3 } else { 2 };
        file.keys.push(format!("race.test/file-{edits}"));
        file.write();
        edits += 1;
    }
    edits
}

/// Waits until `check` holds for the stored object, at most `limit`.
fn wait_for(
    store: &FileClusterStore,
    limit: Duration,
    check: impl Fn(&MPDCluster) -> bool,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if read(store).is_some_and(|c| check(&c)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn two_hundred_writes_from_other_processes_against_a_running_local_lose_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let file = Arc::new(Mutex::new(WatchedFile {
        path: dir.path().join("watched.yaml"),
        sample: sample(),
        follower_num: 2,
        keys: Vec::new(),
    }));
    file.lock().unwrap().write();
    let watched = file.lock().unwrap().path.clone();
    let mut child = Command::new(bin())
        .args(["local", watched.to_str().unwrap(), "--watch"])
        .args(["--sim-latency", "10ms", "--state-dir"])
        .arg(&state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start local");
    let output = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let _local = Running(child);
    let drain = {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                output.lock().unwrap().push(line);
            }
        })
    };

    let seed = std::env::var("RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("RACE_SEED={seed}");
    let clusters = state_dir.join("clusters");
    let done = Arc::new(AtomicBool::new(false));
    let editor = {
        let (file, done) = (file.clone(), done.clone());
        std::thread::spawn(move || edit_file(&file, &done))
    };
    let mut writers = Vec::new();
    {
        let (state_dir, clusters) = (state_dir.clone(), clusters.clone());
        writers.push(std::thread::spawn(move || {
            cancel_and_recover(&state_dir, &FileClusterStore::new(clusters), seed)
        }));
    }
    for thread in 0..2 {
        let clusters = clusters.clone();
        writers.push(std::thread::spawn(move || {
            annotate(
                &FileClusterStore::new(clusters),
                thread,
                seed + 1 + thread as u64,
            )
        }));
    }
    {
        let (clusters, file) = (clusters.clone(), file.clone());
        writers.push(std::thread::spawn(move || {
            apply(&FileClusterStore::new(clusters), &file, seed + 3)
        }));
    }
    let mut tally = Tally::default();
    for writer in writers {
        tally.add(writer.join().expect("a writer"));
    }
    done.store(true, Ordering::SeqCst);
    let edits = editor.join().expect("the editor");

    // The end: `local` applies the last file; a cancelled flow is recovered so that it
    // ends; then every write must be in the object.
    let store = FileClusterStore::new(&clusters);
    let (last_key, follower_num) = {
        let file = file.lock().unwrap();
        (file.keys.last().cloned(), file.follower_num)
    };
    if let Some(key) = &last_key {
        assert!(
            wait_for(&store, Duration::from_secs(10), |c| annotation(c, key)
                .is_some()),
            "local never applied the last change of the file"
        );
    }
    let settled = |c: &MPDCluster| state(c) == "Running" || state(c) == "Interrupt";
    for _ in 0..3 {
        wait_for(&store, Duration::from_secs(10), settled);
        if read(&store).is_some_and(|c| state(&c) == "Interrupt") {
            let (code, stderr) = verb(&state_dir, "recover");
            assert_eq!(code, Some(0), "{stderr}");
            wait_for(&store, Duration::from_secs(5), |c| state(c) != "Interrupt");
        }
    }
    let cr = read(&store).expect("the object");
    let annotations: BTreeMap<String, String> = cr.metadata.annotations.clone().unwrap_or_default();
    let file_keys = file.lock().unwrap().keys.clone();
    for key in tally.expected.iter().chain(&file_keys) {
        if !annotations.contains_key(key) {
            tally.lost.push(format!("{key}: not in the object"));
        }
    }
    if cr.spec.follower_num != follower_num {
        tally.lost.push(format!(
            "the file's followerNum {follower_num}: stored {}",
            cr.spec.follower_num
        ));
    }
    drop(_local);
    drain.join().ok();
    let took = started.elapsed();
    let kinds: Vec<String> = tally
        .kinds
        .iter()
        .map(|(kind, (written, refused))| format!("{kind} {written}/{refused}"))
        .collect();
    eprintln!(
        "writes: {} accepted, {} refused (accepted/refused: {}), {} reported errors, \
         + {edits} changes of the watched file; lost: {}; ended {} after {took:?}",
        tally.written,
        tally.refused,
        kinds.join(", "),
        tally.reported,
        tally.lost.len(),
        state(&cr),
    );
    let output = output.lock().unwrap();
    assert!(
        tally.lost.is_empty(),
        "lost writes (seed {seed}): {:#?}\nlocal's output (last 40 lines):\n{}",
        tally.lost,
        output[output.len().saturating_sub(40)..].join("\n")
    );
    assert_eq!(
        tally.reported, 0,
        "errors reported to writers (seed {seed})"
    );
    assert!(
        tally.written + tally.refused >= 150,
        "too few attempts (seed {seed}): {tally:?}"
    );
    assert_eq!(state(&cr), "Running", "{}", output.join("\n"));
    assert!(took < LIMIT, "took {took:?}");
}
