//! `local`: apply documents to the embedded backend and reconcile until stable.
//!
//! Ctrl-C or SIGTERM, at any point, drains: each running flow finishes the step it is in
//! (its transition is saved) and parks before the next one, then `local` exits
//! [`EXIT_SIGINT`] (130) or [`EXIT_SIGTERM`] (143); the next `local` resumes at that step.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wf_engine::{FileMementoStore, HistoryRecorder, ResourceKey, RetryPolicy, WorkflowConfig};

use super::args::{GlobalArgs, LocalArgs};
use super::exit::{self, Outcome};
use super::printer::TransitionPrinter;
use super::runner::{settle_all, Settled};
use super::signals::{Shutdown, StopSignal};
use super::stdout::Stdout;
#[cfg(doc)]
use super::{EXIT_SIGINT, EXIT_SIGTERM};
use crate::crd::MPDCluster;
use crate::local::{sim_requests, validate_paths, ApplyOutcome, LocalBackend, LocalError};
use crate::operator::{Operator, OperatorBuilder};
use crate::ports::sim::SimConfig;
use crate::ports::{CallRetry, ClusterStore};
use crate::registration::RESOURCE_TYPE;
use crate::service::ServiceConfig;
use crate::status::{Leadership, MonitorConfig, StatusMonitor};

fn exit_code(err: &LocalError) -> u8 {
    Outcome::of_code(err.exit_code()).code()
}

fn key_of(doc: &MPDCluster) -> ResourceKey {
    ResourceKey::new(
        doc.metadata.namespace.clone().unwrap_or_default(),
        doc.metadata.name.clone().unwrap_or_default(),
    )
}

/// Loads and validates every file; documents without a namespace get `namespace`.
fn documents(files: &[PathBuf], namespace: &str) -> Result<Vec<(PathBuf, MPDCluster)>, LocalError> {
    let mut docs = validate_paths(files)?;
    for (_, doc) in &mut docs {
        if doc
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            doc.metadata.namespace = Some(namespace.to_owned());
        }
    }
    Ok(docs)
}

/// Local-mode timings: short polls and backoff, so a person watches flows move.
fn operator(
    backend: &LocalBackend,
    printer: Arc<TransitionPrinter>,
) -> Result<Operator, wf_engine::Error> {
    // Two tries per call: transient faults mostly vanish, the rest show up as step retries.
    let ports = backend.ports().with_call_retries(CallRetry {
        attempts: 2,
        delay: Duration::from_millis(20),
    });
    let mut retry = RetryPolicy::default();
    retry.backoff.initial = Duration::from_millis(200);
    retry.backoff.max = Duration::from_secs(2);
    OperatorBuilder::embedded(ports)
        .service_config(ServiceConfig {
            poll_interval: Duration::from_millis(100),
            ..ServiceConfig::default()
        })
        .workflow_config(WorkflowConfig {
            wait_interval: Duration::from_millis(100),
            cancel_poll_interval: Duration::from_millis(500),
            default_retry: retry,
            ..WorkflowConfig::default()
        })
        .memento_store(FileMementoStore::new(backend.state.memento_dir()))
        .hook(Arc::new(HistoryRecorder::new(
            backend.state.history_dir(),
            RESOURCE_TYPE,
        )))
        .hook(printer)
        .build()
}

fn apply(
    backend: &LocalBackend,
    docs: &[(PathBuf, MPDCluster)],
) -> Result<Vec<ResourceKey>, LocalError> {
    let mut keys = Vec::new();
    for (path, doc) in docs {
        let key = key_of(doc);
        let outcome = backend.clusters.apply(doc)?;
        let what = match outcome {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Updated => "updated",
            ApplyOutcome::Unchanged => "unchanged",
        };
        Stdout::new().line(format_args!("{key}: {what} from {}", path.display()));
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Serves the simulator requests of the applied documents ([`sim_requests`]), printing
/// each one served.
async fn serve_sim_requests(
    backend: &LocalBackend,
    op: &Operator,
    docs: &[(PathBuf, MPDCluster)],
) -> Result<(), LocalError> {
    let monitor = StatusMonitor::new(
        op.service.clone(),
        op.machine.locks().clone(),
        Leadership::always(),
        MonitorConfig::default(),
    );
    for (path, doc) in docs {
        let key = key_of(doc);
        let served = sim_requests::serve(
            &backend.clusters,
            &backend.sim,
            &monitor,
            path,
            &key.namespace,
            &key.name,
        )
        .await?;
        for what in served {
            Stdout::new().line(format_args!("{key}: simulator: {what}"));
        }
    }
    Ok(())
}

/// The exit code of the summary: the worst outcome of the resources (see
/// [`exit::of_settled`]).
fn exit_code_of(results: &BTreeMap<ResourceKey, Settled>) -> u8 {
    exit::worst(results.values().map(exit::of_settled)).code()
}

/// Prints the summary; returns the exit code.
fn report(global: &GlobalArgs, results: &BTreeMap<ResourceKey, Settled>) -> u8 {
    let mut out = Stdout::new();
    for (key, settled) in results {
        match settled {
            Settled::Running => out.line(format_args!("{key}: Running")),
            Settled::Interrupted {
                reason,
                message,
                creation,
            } => {
                out.line(format_args!("{key}: Interrupt: {reason}: {message}"));
                out.line(format_args!(
                    "  to recover: shared-storage-operator recover {} --namespace {} --state-dir {}  (then run `local` again)",
                    key.name,
                    key.namespace,
                    global.state_dir.display()
                ));
                if !creation {
                    out.line(format_args!(
                        "  to give the run up: shared-storage-operator abandon {} --namespace {} --state-dir {}  (then run `local` again)",
                        key.name,
                        key.namespace,
                        global.state_dir.display()
                    ));
                }
                out.line(format_args!(
                    "  to remove it instead: shared-storage-operator delete {} --namespace {} --state-dir {}",
                    key.name,
                    key.namespace,
                    global.state_dir.display()
                ));
            }
            Settled::Refused { reason, message } => {
                out.line(format_args!("{key}: Refused: {reason}: {message}"));
                out.line(format_args!(
                    "  nothing was started; change the request in the file and run `local` again"
                ));
            }
            Settled::Other(state) => out.line(format_args!("{key}: stopped in state {state}")),
            Settled::Gone => out.line(format_args!("{key}: deleted")),
            Settled::Failed(error) => {
                out.line(format_args!("{key}: reconcile keeps failing: {error}"));
            }
        }
    }
    exit_code_of(results)
}

/// The first line of `local`: what it applies, and where.
fn header(files: &[PathBuf], documents: usize, state_dir: &std::path::Path) -> String {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!(
        "local: applying {documents} document(s) from {} to state dir {}",
        files.join(", "),
        state_dir.display()
    )
}

/// Prints where a signal stopped `local`; returns its exit code.
fn stopped(global: &GlobalArgs, signal: StopSignal) -> u8 {
    Stdout::new().line(format_args!(
        "stopped by {}: the running steps were saved; run `local` again (same --state-dir {}) to resume",
        signal.name(),
        global.state_dir.display()
    ));
    signal.exit_code(false)
}

fn modified(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Runs `local`.
pub async fn run(global: &GlobalArgs, args: LocalArgs) -> u8 {
    // Listen first: from here on a Ctrl-C drains instead of killing the process.
    let shutdown = match Shutdown::listen() {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("error: cannot listen for Ctrl-C and SIGTERM: {err}");
            return Outcome::Failed.code();
        }
    };
    // Validate every input before the state directory is touched.
    let docs = match documents(&args.files, &global.namespace) {
        Ok(docs) => docs,
        Err(err) => {
            eprintln!("error: {err}");
            return exit_code(&err);
        }
    };
    let sim = SimConfig {
        latency: args.sim_latency,
        fail_rate: args.sim_fail_rate,
        seed: args.sim_seed,
        ready_after_polls: args.sim_ready_after_polls,
    };
    let backend = match LocalBackend::open(&global.state_dir, sim) {
        Ok(backend) => backend,
        Err(err) => {
            eprintln!("error: {err}");
            return exit_code(&err);
        }
    };
    let printer = Arc::new(TransitionPrinter::new(std::io::stdout().is_terminal()));
    let op = match operator(&backend, printer) {
        Ok(op) => Arc::new(op),
        Err(err) => {
            eprintln!("error: {err}");
            return Outcome::Failed.code();
        }
    };
    // At the signal, each running flow parks before its next step; the reconcile loops
    // stop once their reconcile returned.
    let stop = shutdown.token().clone();
    tokio::spawn({
        let (stop, manager) = (stop.clone(), op.manager.clone());
        async move {
            stop.cancelled().await;
            manager.set_draining(true);
        }
    });
    let store: Arc<dyn ClusterStore> = backend.clusters.clone();
    Stdout::new().line(header(&args.files, docs.len(), &global.state_dir));
    let keys = match apply(&backend, &docs) {
        Ok(keys) => keys,
        Err(err) => {
            eprintln!("error: {err}");
            return exit_code(&err);
        }
    };
    if let Err(err) = serve_sim_requests(&backend, &op, &docs).await {
        eprintln!("error: {err}");
        return exit_code(&err);
    }
    let workers = usize::from(args.workers);
    // Read before the settle: a write that lands during it (a `recover` from another
    // process just after the reconcile looked) is a change the watch loop still sees.
    let mut versions = resource_versions(&backend, &keys);
    let mut results = settle_all(op.clone(), store.clone(), keys.clone(), workers, &stop).await;
    if let Some(signal) = shutdown.signal() {
        return stopped(global, signal);
    }
    let code = report(global, &results);
    if !args.watch {
        return code;
    }

    Stdout::new().line(format_args!(
        "watching {} file(s); Ctrl-C to stop",
        args.files.len()
    ));
    let mut seen = modified(&args.files);
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                return stopped(global, shutdown.signal().unwrap_or(StopSignal::Interrupt));
            }
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = modified(&args.files);
        let mut changed: Vec<ResourceKey> = Vec::new();
        if now != seen {
            seen = now;
            let applied = match documents(&args.files, &global.namespace)
                .and_then(|docs| apply(&backend, &docs).map(|keys| (docs, keys)))
            {
                Ok((docs, keys)) => serve_sim_requests(&backend, &op, &docs)
                    .await
                    .map(|()| keys),
                Err(err) => Err(err),
            };
            match applied {
                Ok(applied) => changed.extend(applied),
                Err(err) => {
                    eprintln!("error: {err} (not applied; fix the file)");
                    continue;
                }
            }
        }
        let applied = !changed.is_empty();
        let current = resource_versions(&backend, &keys);
        for key in &keys {
            if current.get(key) != versions.get(key) && !changed.contains(key) {
                changed.push(key.clone());
            }
        }
        versions = current;
        if changed.is_empty() {
            continue;
        }
        let settled = settle_all(op.clone(), store.clone(), changed, workers, &stop).await;
        if let Some(signal) = shutdown.signal() {
            return stopped(global, signal);
        }
        // The settle's own writes bring one more settle (it finds nothing to do): print
        // the summary only when it says something new.
        let news = applied || settled.iter().any(|(k, s)| results.get(k) != Some(s));
        results.extend(settled);
        if news {
            report(global, &results);
        }
    }
}

fn resource_versions(
    backend: &LocalBackend,
    keys: &[ResourceKey],
) -> BTreeMap<ResourceKey, String> {
    keys.iter()
        .filter_map(|k| {
            let cr = backend.clusters.read(&k.namespace, &k.name).ok()?;
            Some((k.clone(), cr.metadata.resource_version.unwrap_or_default()))
        })
        .collect()
}
