//! The read commands (`workflows`, `history`, `get`) and the annotation commands
//! (`recover`, `cancel`) over a state directory. None of them takes the directory's lock,
//! so they work while `local --watch` runs.

use std::sync::Arc;

use serde::Serialize;
use wf_engine::hook::{read_history, HistoryEvent};
use wf_engine::memento::{caretaker_name, MementoCaretaker};
use wf_engine::FileMementoStore;

use super::args::{GlobalArgs, OutputFormat};
use super::stdout::Stdout;
use super::{EXIT_INTERRUPTED, EXIT_OK};
use crate::crd::annotations;
use crate::local::{FileClusterStore, LocalError, StateDir};
use crate::registration::RESOURCE_TYPE;

fn fail(err: impl std::fmt::Display) -> u8 {
    eprintln!("error: {err}");
    EXIT_INTERRUPTED
}

fn state(global: &GlobalArgs) -> Result<StateDir, LocalError> {
    StateDir::inspect(&global.state_dir)
}

/// One row of `workflows`.
#[derive(Debug, Serialize)]
struct RunRow {
    seq: u64,
    flow: String,
    status: String,
    /// How many times the run was taken up again after a step failed.
    run_retries: u32,
    /// Retries of all its steps together (tries after a failure).
    step_retries: u32,
    /// How many times the run was taken up again after the process stopped while a step
    /// ran (a crash, a kill): not failures; bounded by the flow's `maxResumes`.
    resumes: u32,
    steps_done: usize,
    steps_total: usize,
    start: String,
    end: String,
    error: String,
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".to_owned())
}

/// `workflows NAME`: the runs of a resource.
pub async fn workflows(global: &GlobalArgs, name: &str, output: OutputFormat) -> u8 {
    let state = match state(global) {
        Ok(state) => state,
        Err(err) => return fail(err),
    };
    let storage = FileMementoStore::new(state.memento_dir())
        .storage(&global.namespace, &caretaker_name(name));
    let caretaker = match MementoCaretaker::load(
        caretaker_name(name),
        Arc::new(storage),
        usize::MAX,
        usize::MAX,
    )
    .await
    {
        Ok(c) => c,
        Err(err) => return fail(err),
    };
    let runs = match caretaker.runtimes() {
        Ok(runs) => runs,
        Err(err) => return fail(err),
    };
    let rows: Vec<RunRow> = runs
        .into_iter()
        .map(|stored| {
            let rt = stored.runtime;
            RunRow {
                seq: stored.seq,
                flow: rt.flow_name.clone(),
                status: rt.flow_status.as_str().to_owned(),
                run_retries: rt.retry_times,
                step_retries: rt.running_steps.iter().map(|s| s.retry_times).sum(),
                resumes: rt.resume_times,
                steps_done: rt.completed_steps(),
                steps_total: rt.running_steps.len(),
                start: time(rt.start_time),
                end: time(rt.complete_time),
                error: rt.error_message.clone(),
            }
        })
        .collect();
    if rows.is_empty() {
        // No runs: say so when there is no such resource either, as `get` does.
        if let Err(err) = store(global).and_then(|s| s.read(&global.namespace, name)) {
            return fail(err);
        }
    }
    match output {
        OutputFormat::Json => print_json(&rows),
        OutputFormat::Table => {
            let mut out = Stdout::new();
            out.line(format_args!(
                "{:<4} {:<42} {:<19} {:>7} {:>7} {:>7} {:>6}  {:<20} {:<20}",
                "SEQ", "FLOW", "STATUS", "RUN-RT", "STEP-RT", "RESUMES", "STEPS", "START", "END"
            ));
            for r in &rows {
                out.line(format_args!(
                    "{:<4} {:<42} {:<19} {:>7} {:>7} {:>7} {:>6}  {:<20} {:<20}",
                    r.seq,
                    r.flow,
                    r.status,
                    r.run_retries,
                    r.step_retries,
                    r.resumes,
                    format!("{}/{}", r.steps_done, r.steps_total),
                    r.start,
                    r.end
                ));
            }
            EXIT_OK
        }
    }
}

fn print_json<T: Serialize>(value: &T) -> u8 {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            Stdout::new().line(text);
            EXIT_OK
        }
        Err(err) => fail(err),
    }
}

/// `history NAME`: the history events of a resource.
pub fn history(global: &GlobalArgs, name: &str, output: OutputFormat) -> u8 {
    let state = match state(global) {
        Ok(state) => state,
        Err(err) => return fail(err),
    };
    let path = state
        .history_dir()
        .join(format!("{RESOURCE_TYPE}_workflow.txt"));
    let events: Vec<HistoryEvent> = match read_history(&path) {
        Ok(events) => events
            .into_iter()
            .filter(|e| e.resource_name == name && e.namespace == global.namespace)
            .collect(),
        Err(err) => return fail(err),
    };
    match output {
        OutputFormat::Json => print_json(&events),
        OutputFormat::Table => {
            let mut out = Stdout::new();
            out.line(format_args!(
                "{:<20} {:<42} {:<26} {:<18} {:>5} {:>5}  ERROR",
                "TIME", "FLOW", "STEP", "TYPE", "STEP#", "RETRY"
            ));
            for e in &events {
                if out.is_closed() {
                    break;
                }
                out.line(format_args!(
                    "{:<20} {:<42} {:<26} {:<18} {:>5} {:>5}  {}",
                    time(e.end_time.or(e.start_time)),
                    e.flow_name,
                    if e.step_name.is_empty() {
                        "-"
                    } else {
                        &e.step_name
                    },
                    format!("{:?}", e.event_type),
                    e.step,
                    e.retry,
                    e.error
                ));
            }
            EXIT_OK
        }
    }
}

fn store(global: &GlobalArgs) -> Result<FileClusterStore, LocalError> {
    Ok(FileClusterStore::new(state(global)?.clusters_dir()))
}

/// `get NAME`: the resource as YAML.
pub fn get(global: &GlobalArgs, name: &str) -> u8 {
    let cr = match store(global).and_then(|s| s.read(&global.namespace, name)) {
        Ok(cr) => cr,
        Err(err) => return fail(err),
    };
    match serde_yaml::to_string(&cr) {
        Ok(text) => {
            Stdout::new().text(&text);
            EXIT_OK
        }
        Err(err) => fail(err),
    }
}

fn annotate(global: &GlobalArgs, name: &str, key: &str, value: &str, done: &str) -> u8 {
    match store(global).and_then(|s| s.set_annotation(&global.namespace, name, key, value)) {
        Ok(_) => {
            Stdout::new().line(format_args!("{}/{name}: {done}", global.namespace));
            EXIT_OK
        }
        Err(err) => fail(err),
    }
}

/// `recover NAME`: `interrupt.recover=T`.
pub fn recover(global: &GlobalArgs, name: &str) -> u8 {
    annotate(
        global,
        name,
        annotations::INTERRUPT_RECOVER,
        "T",
        "recovery requested; run `local` again (or let `local --watch` pick it up)",
    )
}

/// `cancel NAME`: `cancelled=true`.
pub fn cancel(global: &GlobalArgs, name: &str) -> u8 {
    annotate(
        global,
        name,
        annotations::CANCELLED,
        "true",
        "cancellation requested; the running flow stops at once",
    )
}
