//! `cargo xtask crash-sweep`: crashes each flow at every persisted transition, resumes it,
//! and checks that the engine kept its promises.
//!
//! The operator binary is built with `--features failpoints`; its failpoints
//! ([`wf_engine::failpoints`]) sit before and after every persisted write of a transition.
//! For each flow:
//!
//! 1. a *prepared* state directory holds the flow's precondition: nothing for Create; for a
//!    change flow, the sample `examples/mpdcluster.yaml` created to `Running` (once, shared by
//!    every flow), plus whatever the change needs in the state itself (RebuildRo: an RO whose
//!    status is `FAILED`). The *change file* is the document whose `local` runs the flow
//!    (`examples/*.yaml`, or the sample with one annotation);
//! 2. a *clean* run (`local CHANGE` on a copy, no crash) counts the failpoint hits `H` and
//!    gives the baseline: which runs of which flows end with which status;
//! 3. for each chosen `k` in `1..=H`: `local CHANGE` on a fresh copy with `WF_CRASH_AT=k`
//!    (the process must die by the crash), then `local CHANGE` again, without a crash, until
//!    it exits 0 (at most [`MAX_RERUNS`] times), and the checks of [`check_dir`].
//!
//! Every failure names the flow, `k`, the failpoint that crashed and what failed; the task
//! exits non-zero when there is any. The state directories of failed crashes are kept
//! under `<target>/crash-sweep/` for inspection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use wf_engine::hook::{HistoryEvent, HistoryEventType};
use wf_engine::{FlowStatus, StepStatus, WorkflowRuntime};

/// How often `local` is run again after the crash, at most, before the run counts as failed.
pub const MAX_RERUNS: usize = 3;
/// The crash of `--quick`: every this-many-th hit (and the first and the last). Prime to
/// the four hits of a transition (memento before/after, history before/after), so that the
/// quick sweep crashes at each failpoint in turn rather than always at the same one.
pub const QUICK_EVERY: usize = 5;
/// The flows CI sweeps: Create and three change flows.
pub const CI_FLOWS: &str = "Create,ModifyClass,RestartCluster,SwitchRw";
/// The cluster of the sample.
const NAME: &str = "demo";
/// The sample every change is made to.
const SAMPLE: &str = "examples/mpdcluster.yaml";

/// The runs of a cluster as `(flow, status)`, oldest first.
type Runs = Vec<(String, String)>;
/// Problems found as `(class, detail)`.
type Problems = Vec<(&'static str, String)>;

/// How a flow is started from a `Running` sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// The sample itself, on an empty state directory.
    Create,
    /// A file of `examples/`.
    File(&'static str),
    /// `examples/switch-rw.yaml` with its `switchRw` annotation set to the first RO.
    SwitchRw,
    /// The sample with one annotation.
    Annotate(&'static str, Target),
    /// The first RO's status set to `FAILED` in the stored cluster; the sample applied again.
    FailRo,
}

/// The value of an annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// This literal value.
    Literal(&'static str),
    /// The insId of the first RO.
    FirstRo,
    /// `<insId of the first RO>|<a node no instance uses>`.
    MigrateRo,
    /// `<insId of the RW>|<a node no instance uses>`.
    MigrateRw,
}

/// One of the 14 flows and how to start it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowCase {
    /// The short name of `--flows`.
    pub short: &'static str,
    /// The flow's name in `workflows/shared/`.
    pub flow: &'static str,
    change: Change,
}

/// The 14 flows of `workflows/shared/`, with the change that starts each (the triggers of
/// `crates/shared-storage/src/domain/triggers.rs`).
pub const FLOWS: [FlowCase; 14] = [
    case("Create", "CreateSharedStorageCluster", Change::Create),
    case(
        "ModifyClass",
        "SharedStorageClusterModifyClass",
        Change::File("examples/modify-class.yaml"),
    ),
    case(
        "UpgradeMinorVersion",
        "SharedStorageClusterUpgradeMinorVersion",
        Change::File("examples/upgrade.yaml"),
    ),
    case(
        "RestartCluster",
        "SharedStorageClusterRestartCluster",
        Change::File("examples/restart.yaml"),
    ),
    case("SwitchRw", "SharedStorageClusterSwitchRw", Change::SwitchRw),
    case(
        "AddRo",
        "SharedStorageClusterAddRo",
        Change::File("examples/add-ro.yaml"),
    ),
    case(
        "RestartIns",
        "SharedStorageClusterRestartIns",
        Change::Annotate("restartIns", Target::FirstRo),
    ),
    case(
        "FlushParams",
        "SharedStorageClusterFlushParams",
        Change::Annotate("flushParams", Target::Literal("T")),
    ),
    case(
        "MigrateRo",
        "SharedStorageClusterMigrateRo",
        Change::Annotate("migrate", Target::MigrateRo),
    ),
    case(
        "MigrateRw",
        "SharedStorageClusterMigrateRw",
        Change::Annotate("migrate", Target::MigrateRw),
    ),
    case("RebuildRo", "SharedStorageClusterRebuildRo", Change::FailRo),
    case(
        "RemoveRo",
        "SharedStorageClusterRemoveRo",
        Change::Annotate("removeIns", Target::FirstRo),
    ),
    case(
        "ExtendStorage",
        "ExtendStorageSharedStorageCluster",
        Change::Annotate("extendStorage", Target::Literal("T")),
    ),
    case(
        "Rebuild",
        "SharedStorageClusterRebuild",
        Change::Annotate("forceRebuild", Target::Literal("T")),
    ),
];

const fn case(short: &'static str, flow: &'static str, change: Change) -> FlowCase {
    FlowCase {
        short,
        flow,
        change,
    }
}

/// The flow named `name`: its short name or its full name, case-insensitive.
pub fn flow_by_name(name: &str) -> Option<FlowCase> {
    FLOWS
        .iter()
        .copied()
        .find(|c| c.short.eq_ignore_ascii_case(name) || c.flow.eq_ignore_ascii_case(name.trim()))
}

/// What to sweep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The flows, in this order.
    pub flows: Vec<FlowCase>,
    /// Crash at every this-many-th hit (1: every hit); the last hit is always crashed.
    pub every: usize,
    /// How many runs go at once.
    pub jobs: usize,
    /// The work directory (default `<target>/crash-sweep`).
    pub work: Option<PathBuf>,
}

/// Why the sweep could not run (not a failure it found).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Building the binary failed.
    #[error("cargo build of the failpoints binary failed ({0})")]
    Build(String),
    /// A command could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The command.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A precondition could not be prepared.
    #[error("{flow}: cannot prepare the precondition: {message}")]
    Prepare {
        /// The flow.
        flow: String,
        /// What went wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One failure the sweep found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The flow.
    pub flow: &'static str,
    /// The hit crashed at (0: the clean run).
    pub k: usize,
    /// The failpoint that crashed, as the binary logged it.
    pub failpoint: String,
    /// The check that failed (its class, e.g. `extra-run`).
    pub class: &'static str,
    /// What failed, in detail.
    pub detail: String,
    /// The state directory kept for inspection.
    pub dir: PathBuf,
}

/// The outcome of one flow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowResult {
    /// Failpoint hits of the clean run.
    pub hits: usize,
    /// Crashes made (the process died at the chosen hit).
    pub crashed: usize,
    /// Chosen hits at which the process did not crash (that run had fewer hits).
    pub not_reached: usize,
    /// Crashes after which some check failed.
    pub failed: usize,
    /// Wall time of the flow's runs, added up.
    pub busy: Duration,
}

/// What the sweep found.
#[derive(Debug, Default)]
pub struct Report {
    /// Per flow, in the order swept.
    pub flows: Vec<(&'static str, FlowResult)>,
    /// Every failure.
    pub failures: Vec<Failure>,
    /// The wall time of the sweep (the build excluded).
    pub elapsed: Duration,
}

impl Report {
    /// The table: one row per flow, then the totals.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<42} {:>6} {:>8} {:>10} {:>7} {:>8}\n",
            "FLOW", "HITS", "CRASHED", "NOT-REACHED", "FAILED", "BUSY"
        );
        let mut total = FlowResult::default();
        for (flow, r) in &self.flows {
            out.push_str(&format!(
                "{:<42} {:>6} {:>8} {:>10} {:>7} {:>7.0}s\n",
                flow,
                r.hits,
                r.crashed,
                r.not_reached,
                r.failed,
                r.busy.as_secs_f64()
            ));
            total.hits += r.hits;
            total.crashed += r.crashed;
            total.not_reached += r.not_reached;
            total.failed += r.failed;
            total.busy += r.busy;
        }
        out.push_str(&format!(
            "{:<42} {:>6} {:>8} {:>10} {:>7} {:>7.0}s\n",
            "total",
            total.hits,
            total.crashed,
            total.not_reached,
            total.failed,
            total.busy.as_secs_f64()
        ));
        out
    }

    /// The failures grouped by class and failpoint, each with its first reproducer.
    pub fn classes(&self) -> Vec<(String, usize, &Failure)> {
        let mut groups: BTreeMap<(&str, &str), (usize, &Failure)> = BTreeMap::new();
        for failure in &self.failures {
            groups
                .entry((failure.class, failure.failpoint.as_str()))
                .and_modify(|(n, _)| *n += 1)
                .or_insert((1, failure));
        }
        groups
            .into_iter()
            .map(|((class, failpoint), (n, first))| (format!("{class} @ {failpoint}"), n, first))
            .collect()
    }

    /// The final line.
    pub fn summary(&self) -> String {
        let crashed: usize = self.flows.iter().map(|(_, r)| r.crashed).sum();
        let failed: usize = self.flows.iter().map(|(_, r)| r.failed).sum();
        format!(
            "crash-sweep: {} flow(s), {crashed} crash(es), {failed} failed, {} failure class(es), in {:.0}s",
            self.flows.len(),
            self.classes().len(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Builds the binary with `--features failpoints` and copies it to `work`; returns its path.
pub fn build(root: &Path, work: &Path) -> Result<PathBuf, SweepError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "-p",
            "shared-storage",
            "--features",
            "failpoints",
            "--bin",
            "shared-storage-operator",
        ])
        .status()
        .map_err(|source| SweepError::Spawn {
            what: "cargo build".to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(SweepError::Build(status.to_string()));
    }
    let built = target_dir(root).join("debug").join(format!(
        "shared-storage-operator{}",
        std::env::consts::EXE_SUFFIX
    ));
    std::fs::create_dir_all(work).map_err(io(work))?;
    // A copy: a later build of the workspace (without the feature) replaces the original.
    let copy = work.join("shared-storage-operator-failpoints");
    std::fs::copy(&built, &copy).map_err(io(&built))?;
    Ok(copy)
}

/// `CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        }
        None => root.join("target"),
    }
}

/// The crash hits chosen from `1..=hits`: every `every`-th, and the last.
pub fn chosen_hits(hits: usize, every: usize) -> Vec<usize> {
    let every = every.max(1);
    let mut ks: Vec<usize> = (1..=hits).filter(|k| k % every == 0).collect();
    if hits > 0 && ks.last() != Some(&hits) {
        ks.push(hits);
    }
    if every > 1 && hits > 0 && ks.first() != Some(&1) {
        ks.insert(0, 1);
    }
    ks
}

/// The tools of a sweep: the binary, the workspace, the work directory.
struct Sweeper {
    bin: PathBuf,
    root: PathBuf,
    work: PathBuf,
}

/// What a clean run of a flow established.
struct Baseline {
    case: FlowCase,
    prepared: PathBuf,
    change: PathBuf,
    hits: usize,
    runs: Vec<(String, String)>,
    busy: Duration,
}

/// One crash to make.
struct Job {
    flow: usize,
    k: usize,
}

/// The outcome of one crash.
struct JobResult {
    flow: usize,
    crashed: bool,
    failures: Vec<Failure>,
    busy: Duration,
}

/// Runs the sweep of `options` with the binary `bin`, in `work` (emptied first).
pub fn sweep(
    root: &Path,
    bin: &Path,
    work: &Path,
    options: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Report, SweepError> {
    let started = Instant::now();
    for entry in std::fs::read_dir(work).map_err(io(work))? {
        let entry = entry.map_err(io(work))?;
        if entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    let sweeper = Sweeper {
        bin: bin.to_path_buf(),
        root: root.to_path_buf(),
        work: work.to_path_buf(),
    };
    // The Running sample every change flow starts from.
    let running = work.join("running");
    if options.flows.iter().any(|c| c.change != Change::Create) {
        std::fs::create_dir_all(&running).map_err(io(&running))?;
        let (status, _) = sweeper.local(&running, &root.join(SAMPLE), &[])?;
        if status.code() != Some(0) {
            return Err(SweepError::Prepare {
                flow: "the sample".to_owned(),
                message: format!("`local {SAMPLE}` ended with {status}"),
            });
        }
    }
    let mut report = Report::default();
    // Clean runs: the hits and the baseline of each flow.
    let cleans: Vec<Result<(Baseline, Vec<Failure>), SweepError>> =
        pool(options.jobs, &options.flows, |case| {
            let result = sweeper.clean(*case, &running);
            if let Ok((base, _)) = &result {
                progress(&format!(
                    "{}: clean run, {} failpoint hits",
                    case.flow, base.hits
                ));
            }
            result
        });
    let mut baselines = Vec::new();
    for result in cleans {
        let (base, failures) = result?;
        report.flows.push((
            base.case.flow,
            FlowResult {
                hits: base.hits,
                failed: usize::from(!failures.is_empty()),
                busy: base.busy,
                ..FlowResult::default()
            },
        ));
        report.failures.extend(failures);
        baselines.push(base);
    }
    let jobs: Vec<Job> = baselines
        .iter()
        .enumerate()
        .flat_map(|(flow, base)| {
            chosen_hits(base.hits, options.every)
                .into_iter()
                .map(move |k| Job { flow, k })
        })
        .collect();
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let results = pool(options.jobs, &jobs, |job| {
        let result = sweeper.crash(job.flow, &baselines[job.flow], job.k);
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        if n.is_multiple_of(20) || n == total {
            progress(&format!("{n}/{total} crashes done"));
        }
        result
    });
    for result in results {
        let result = result?;
        let row = &mut report.flows[result.flow].1;
        row.busy += result.busy;
        if result.crashed {
            row.crashed += 1;
        } else {
            row.not_reached += 1;
        }
        if !result.failures.is_empty() {
            row.failed += 1;
        }
        report.failures.extend(result.failures);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Runs `work` on every item with at most `jobs` at once; the results in the items' order.
fn pool<T: Sync, R: Send>(jobs: usize, items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

impl Sweeper {
    /// `local FILE --state-dir DIR` with `env`; its status and stderr.
    fn local(
        &self,
        dir: &Path,
        file: &Path,
        env: &[(&str, String)],
    ) -> Result<(ExitStatus, String), SweepError> {
        let mut command = Command::new(&self.bin);
        command
            .current_dir(&self.root)
            .arg("local")
            .arg(file)
            .arg("--state-dir")
            .arg(dir)
            .env_remove(wf_engine::failpoints::CRASH_AT_ENV)
            .env_remove(wf_engine::failpoints::LOG_ENV)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        let output = command.output().map_err(|source| SweepError::Spawn {
            what: format!("{} local", self.bin.display()),
            source,
        })?;
        Ok((
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// An inspect command (`get`, `workflows`, `history`) on `dir`: its stdout, or why not.
    fn inspect(&self, dir: &Path, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.bin)
            .args(args)
            .arg("--state-dir")
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", args.join(" ")))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "`{}` ended with {}: {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// The prepared state directory and change file of `case`, then its clean run.
    fn clean(
        &self,
        case: FlowCase,
        running: &Path,
    ) -> Result<(Baseline, Vec<Failure>), SweepError> {
        let dir = self.work.join(case.short);
        let prepared = dir.join("prepared");
        std::fs::create_dir_all(&prepared).map_err(io(&prepared))?;
        if case.change != Change::Create {
            copy_dir(running, &prepared)?;
        }
        let change =
            prepare(&self.root, case, &prepared, &dir).map_err(|message| SweepError::Prepare {
                flow: case.flow.to_owned(),
                message,
            })?;
        let clean = dir.join("clean");
        copy_dir(&prepared, &clean)?;
        let hits_log = dir.join("clean.hits");
        let started = Instant::now();
        let (status, stderr) = self.local(
            &clean,
            &change,
            &[(
                wf_engine::failpoints::LOG_ENV,
                hits_log.display().to_string(),
            )],
        )?;
        let busy = started.elapsed();
        let hits = read_hits(&hits_log).len();
        let mut failures = Vec::new();
        let fail = |class, detail: String| Failure {
            flow: case.flow,
            k: 0,
            failpoint: "-".to_owned(),
            class,
            detail,
            dir: clean.clone(),
        };
        if status.code() != Some(0) {
            failures.push(fail(
                "clean-run",
                format!("the clean run ended with {status}: {}", last_line(&stderr)),
            ));
        }
        let found = self.check_dir(&clean, None);
        let runs = match found {
            Ok(runs) => runs,
            Err(problems) => {
                for (class, detail) in problems {
                    failures.push(fail(class, detail));
                }
                Vec::new()
            }
        };
        if !runs.iter().any(|(flow, _)| flow == case.flow) {
            failures.push(fail(
                "clean-run",
                format!("the clean run did not run {}: runs {runs:?}", case.flow),
            ));
        }
        if failures.is_empty() {
            let _ = std::fs::remove_dir_all(&clean);
        }
        Ok((
            Baseline {
                case,
                prepared,
                change,
                hits,
                runs,
                busy,
            },
            failures,
        ))
    }

    /// Crashes `base`'s flow (number `flow` of the sweep) at hit `k`, resumes, checks.
    fn crash(&self, flow: usize, base: &Baseline, k: usize) -> Result<JobResult, SweepError> {
        let dir = self.work.join(base.case.short).join(format!("k{k:04}"));
        copy_dir(&base.prepared, &dir)?;
        let hits_log = dir.with_extension("hits");
        let _ = std::fs::remove_file(&hits_log);
        let started = Instant::now();
        let (status, stderr) = self.local(
            &dir,
            &base.change,
            &[
                (wf_engine::failpoints::CRASH_AT_ENV, k.to_string()),
                (
                    wf_engine::failpoints::LOG_ENV,
                    hits_log.display().to_string(),
                ),
            ],
        )?;
        let hits = read_hits(&hits_log);
        let failpoint = hits
            .get(k - 1)
            .cloned()
            .unwrap_or_else(|| "(not reached)".to_owned());
        let crashed = !status.success() && status.code().is_none();
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        if crashed {
            let mut last = None;
            for _ in 0..MAX_RERUNS {
                let (status, stderr) = self.local(&dir, &base.change, &[])?;
                let code = status.code();
                last = Some((status, stderr));
                if code == Some(0) || code == Some(2) {
                    break;
                }
            }
            if let Some((status, stderr)) = last.filter(|(s, _)| s.code() != Some(0)) {
                problems.push((
                    "resume-exit",
                    format!(
                        "`local` after the crash ended with {status}: {}",
                        last_line(&stderr)
                    ),
                ));
            }
            match self.check_dir(&dir, Some(&base.runs)) {
                Ok(_) => {}
                Err(found) => problems.extend(found),
            }
        } else if status.code() != Some(0) {
            problems.push((
                "no-crash",
                format!(
                    "hit {k} was not reached and `local` ended with {status}: {}",
                    last_line(&stderr)
                ),
            ));
        }
        let busy = started.elapsed();
        let failures: Vec<Failure> = problems
            .into_iter()
            .map(|(class, detail)| Failure {
                flow: base.case.flow,
                k,
                failpoint: failpoint.clone(),
                class,
                detail,
                dir: dir.clone(),
            })
            .collect();
        if failures.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&hits_log);
        }
        Ok(JobResult {
            flow,
            crashed,
            failures,
            busy,
        })
    }

    /// The checks of a state directory after its last `local`; `Ok` with the runs as
    /// `(flow, status)` in order, or every problem found as `(class, detail)`:
    ///
    /// - `not-running`: `get NAME` does not show `clusterStatus: Running`;
    /// - `uncompleted-run`: a run (`workflows NAME -o json`) is neither `completed` nor
    ///   `failedAndCompleted`;
    /// - `extra-run` / `missing-run`: the runs differ from the clean run's (`baseline`), e.g.
    ///   a second run of the change: its completed steps were executed again;
    /// - `step-rerun`: within a run, a step was started again after it completed, or
    ///   completed twice (`history NAME -o json`);
    /// - `history-incomplete`: a persisted transition has no history event: a run without
    ///   `WorkFlowStart`, a step whose memento says completed without `StepCompleted`, a
    ///   completed run without `WorkFlowCompleted`.
    fn check_dir(
        &self,
        dir: &Path,
        baseline: Option<&[(String, String)]>,
    ) -> Result<Runs, Problems> {
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        match self.inspect(dir, &["get", NAME]) {
            Ok(yaml) => {
                let state = serde_yaml::from_str::<serde_yaml::Value>(&yaml)
                    .ok()
                    .and_then(|v| {
                        v.get("status")?
                            .get("clusterStatus")?
                            .as_str()
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                if state != "Running" {
                    problems.push(("not-running", format!("clusterStatus is {state:?}")));
                }
            }
            Err(e) => problems.push(("not-running", e)),
        }
        let runs: Vec<(String, String)> = match self
            .inspect(dir, &["workflows", NAME, "-o", "json"])
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()))
        {
            Ok(Value::Array(rows)) => rows
                .iter()
                .map(|row| {
                    let field = |f: &str| row[f].as_str().unwrap_or_default().to_owned();
                    (field("flow"), field("status"))
                })
                .collect(),
            Ok(other) => {
                problems.push(("uncompleted-run", format!("workflows: not a list: {other}")));
                Vec::new()
            }
            Err(e) => {
                problems.push(("uncompleted-run", e));
                Vec::new()
            }
        };
        for (i, (flow, status)) in runs.iter().enumerate() {
            if status != "completed" && status != "failedAndCompleted" {
                problems.push((
                    "uncompleted-run",
                    format!("run {} ({flow}) is left {status}", i + 1),
                ));
            }
        }
        if let Some(baseline) = baseline {
            let count = |list: &[(String, String)]| {
                let mut by_flow: BTreeMap<String, usize> = BTreeMap::new();
                for (flow, _) in list {
                    *by_flow.entry(flow.clone()).or_default() += 1;
                }
                by_flow
            };
            let (want, got) = (count(baseline), count(&runs));
            let flows: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
            for flow in flows {
                let (w, g) = (
                    want.get(flow).copied().unwrap_or(0),
                    got.get(flow).copied().unwrap_or(0),
                );
                if g > w {
                    problems.push((
                        "extra-run",
                        format!("{g} run(s) of {flow}, the clean run had {w}: {runs:?}"),
                    ));
                } else if g < w {
                    problems.push((
                        "missing-run",
                        format!("{g} run(s) of {flow}, the clean run had {w}: {runs:?}"),
                    ));
                }
            }
        }
        let history: Vec<HistoryEvent> = match self
            .inspect(dir, &["history", NAME, "-o", "json"])
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        {
            Ok(events) => events,
            Err(e) => {
                problems.push(("history-incomplete", e));
                Vec::new()
            }
        };
        problems.extend(check_steps(&history));
        match read_mementos(dir) {
            Ok(mementos) => problems.extend(check_history_complete(&mementos, &history)),
            Err(e) => problems.push(("history-incomplete", e)),
        }
        if problems.is_empty() {
            Ok(runs)
        } else {
            Err(problems)
        }
    }
}

/// Within each run: no step started again after it completed, none completed twice.
fn check_steps(history: &[HistoryEvent]) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut completed: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    for event in history {
        if event.step_name.is_empty() {
            continue;
        }
        let key = (event.workflow_id, event.step_name.as_str());
        match event.event_type {
            HistoryEventType::StepCompleted => {
                let n = completed.entry(key).or_default();
                *n += 1;
                if *n == 2 {
                    problems.push((
                        "step-rerun",
                        format!(
                            "{} step {} of run {} completed twice",
                            event.flow_name, event.step_name, event.workflow_id
                        ),
                    ));
                }
            }
            HistoryEventType::StepInited if completed.contains_key(&key) => problems.push((
                "step-rerun",
                format!(
                    "{} step {} of run {} started again after it completed",
                    event.flow_name, event.step_name, event.workflow_id
                ),
            )),
            _ => {}
        }
    }
    problems
}

/// Every persisted transition of every run has its history event.
fn check_history_complete(
    mementos: &[(String, WorkflowRuntime)],
    history: &[HistoryEvent],
) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let has = |id: i64, step: &str, kind: HistoryEventType| {
        history
            .iter()
            .any(|e| e.workflow_id == id && e.step_name == step && e.event_type == kind)
    };
    for (key, rt) in mementos {
        let Some(id) = rt.start_time.map(|t| t.timestamp_millis()) else {
            continue;
        };
        if !has(id, "", HistoryEventType::WorkFlowStart) {
            problems.push((
                "history-incomplete",
                format!("run {key}: no WorkFlowStart event"),
            ));
        }
        for step in &rt.running_steps {
            if step.step_status == StepStatus::Completed
                && !has(id, &step.step_name, HistoryEventType::StepCompleted)
            {
                problems.push((
                    "history-incomplete",
                    format!(
                        "run {key}: step {} is completed without a StepCompleted event",
                        step.step_name
                    ),
                ));
            }
        }
        if rt.flow_status == FlowStatus::Completed
            && !has(id, "", HistoryEventType::WorkFlowCompleted)
        {
            problems.push((
                "history-incomplete",
                format!("run {key}: completed without a WorkFlowCompleted event"),
            ));
        }
    }
    problems
}

/// The runs stored in `<dir>/mementos/default/<NAME>-workflow.json`, by key.
fn read_mementos(dir: &Path) -> Result<Vec<(String, WorkflowRuntime)>, String> {
    let path = dir
        .join("mementos")
        .join("default")
        .join(format!("{NAME}-workflow.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let map: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    map.into_iter()
        .map(|(key, json)| {
            serde_json::from_str(&json)
                .map(|rt| (key.clone(), rt))
                .map_err(|e| format!("{}: run {key}: {e}", path.display()))
        })
        .collect()
}

/// The failpoint names of a hit log, in hit order.
fn read_hits(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(_, name)| name.to_owned()))
        .collect()
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Copies the directory `from` into `to` (created; existing files replaced).
fn copy_dir(from: &Path, to: &Path) -> Result<(), SweepError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io(&src))?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

/// Makes the change file of `case` in `dir` (or names the one in `examples/`), changing the
/// prepared state directory where the change lives in the state itself.
fn prepare(root: &Path, case: FlowCase, prepared: &Path, dir: &Path) -> Result<PathBuf, String> {
    let cluster_file = prepared
        .join("clusters")
        .join("default")
        .join(format!("{NAME}.json"));
    let read_cluster = || -> Result<Value, String> {
        let text = std::fs::read_to_string(&cluster_file)
            .map_err(|e| format!("{}: {e}", cluster_file.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", cluster_file.display()))
    };
    let sample = root.join(SAMPLE);
    let write = |name: &str, text: String| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    match case.change {
        Change::Create => Ok(sample),
        Change::File(file) => Ok(root.join(file)),
        Change::SwitchRw => {
            let ro = first_of(&read_cluster()?, "ro")?;
            let path = root.join("examples/switch-rw.yaml");
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut doc: serde_yaml::Value =
                serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            doc["metadata"]["annotations"]["switchRw"] = serde_yaml::Value::String(ro);
            let text =
                serde_yaml::to_string(&doc).map_err(|e| format!("{}: {e}", path.display()))?;
            write("change.yaml", text)
        }
        Change::Annotate(key, target) => {
            let cluster = read_cluster()?;
            let value = match target {
                Target::Literal(v) => v.to_owned(),
                Target::FirstRo => first_of(&cluster, "ro")?,
                Target::MigrateRo => {
                    format!("{}|{}", first_of(&cluster, "ro")?, free_node(&cluster)?)
                }
                Target::MigrateRw => {
                    format!("{}|{}", first_of(&cluster, "rw")?, free_node(&cluster)?)
                }
            };
            let text = std::fs::read_to_string(&sample)
                .map_err(|e| format!("{}: {e}", sample.display()))?;
            let mut doc: serde_yaml::Value =
                serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
            let metadata = doc
                .get_mut("metadata")
                .and_then(serde_yaml::Value::as_mapping_mut)
                .ok_or("the sample has no metadata")?;
            let annotations = metadata
                .entry("annotations".into())
                .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            let annotations = annotations
                .as_mapping_mut()
                .ok_or("the sample's annotations are not a map")?;
            annotations.insert(key.into(), value.into());
            write(
                "change.yaml",
                serde_yaml::to_string(&doc).map_err(|e| e.to_string())?,
            )
        }
        Change::FailRo => {
            let mut cluster = read_cluster()?;
            let ro = first_of(&cluster, "ro")?;
            cluster["status"]["dbInstanceStatus"][&ro]["currentState"]["state"] =
                Value::String("FAILED".to_owned());
            let text = serde_json::to_string_pretty(&cluster).map_err(|e| e.to_string())?;
            std::fs::write(&cluster_file, text)
                .map_err(|e| format!("{}: {e}", cluster_file.display()))?;
            Ok(sample)
        }
    }
}

/// The insId of the first instance of type `ty` (`rw` or `ro`) in the stored cluster.
fn first_of(cluster: &Value, ty: &str) -> Result<String, String> {
    cluster["status"]["dbInstanceStatus"]
        .as_object()
        .and_then(|m| {
            m.iter()
                .find(|(_, e)| e["insType"].as_str() == Some(ty))
                .map(|(id, _)| id.clone())
        })
        .ok_or_else(|| format!("the Running sample has no instance of type {ty}"))
}

/// A node of the simulated world (`node-1` to `node-4`) no instance runs on.
fn free_node(cluster: &Value) -> Result<String, String> {
    let used: BTreeSet<&str> = cluster["status"]["dbInstanceStatus"]
        .as_object()
        .map(|m| m.values().filter_map(|e| e["nodeName"].as_str()).collect())
        .unwrap_or_default();
    (1..=4)
        .map(|n| format!("node-{n}"))
        .find(|n| !used.contains(n.as_str()))
        .ok_or_else(|| "every simulated node runs an instance".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_one_case_per_flow_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/shared");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        let mut flows: Vec<String> = FLOWS.iter().map(|c| c.flow.to_owned()).collect();
        flows.sort();
        assert_eq!(files, flows);
    }

    #[test]
    fn flows_are_found_by_short_or_full_name() {
        assert_eq!(
            flow_by_name("create").unwrap().flow,
            "CreateSharedStorageCluster"
        );
        assert_eq!(
            flow_by_name("SharedStorageClusterModifyClass")
                .unwrap()
                .short,
            "ModifyClass"
        );
        assert!(flow_by_name("Frobnicate").is_none());
        for short in CI_FLOWS.split(',') {
            assert!(flow_by_name(short).is_some(), "{short}");
        }
    }

    #[test]
    fn chosen_hits_take_every_nth_the_first_and_the_last() {
        assert_eq!(chosen_hits(5, 1), [1, 2, 3, 4, 5]);
        assert_eq!(chosen_hits(10, 4), [1, 4, 8, 10]);
        assert_eq!(chosen_hits(8, 4), [1, 4, 8]);
        assert!(chosen_hits(0, 4).is_empty());
    }

    fn event(id: i64, step: &str, kind: HistoryEventType) -> HistoryEvent {
        HistoryEvent {
            resource_name: NAME.into(),
            namespace: "default".into(),
            workflow_id: id,
            seq: 1,
            step_id: format!("{id}-x"),
            flow_name: "F".into(),
            step_name: step.into(),
            event_type: kind,
            start_time: None,
            end_time: None,
            step: 1,
            step_count: 1,
            retry: 0,
            resumes: 0,
            error: String::new(),
            reason: String::new(),
            replayed: false,
        }
    }

    #[test]
    fn a_step_started_after_it_completed_is_a_rerun() {
        use HistoryEventType::*;
        let ok = [
            event(1, "A", StepInited),
            event(1, "A", StepInited),
            event(1, "A", StepCompleted),
            event(2, "A", StepInited),
            event(2, "A", StepCompleted),
        ];
        assert!(check_steps(&ok).is_empty());
        let rerun = [
            event(1, "A", StepInited),
            event(1, "A", StepCompleted),
            event(1, "A", StepInited),
            event(1, "A", StepCompleted),
        ];
        let found = check_steps(&rerun);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|(class, _)| *class == "step-rerun"));
    }
}
