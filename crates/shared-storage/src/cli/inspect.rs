//! The read commands (`workflows`, `history`, `get`, `status`), the annotation commands
//! (`recover`, `cancel`, `abandon`) and `delete` (in [`super::delete`]), over either [`Backend`]: the state directory (without its lock,
//! so they work while `local --watch` runs) or a Kubernetes cluster. Each command builds
//! its rows from what the backend answers and prints them the same way for both.
//!
//! Each command is an `async fn` over a [`Backend`] writing to a [`Stdout`] (standard
//! output, or any writer in a test) and returning an [`InspectError`] on failure;
//! [`dispatch`] runs one from the command line.

use chrono::{DateTime, Utc};
use serde::Serialize;
use wf_engine::hook::HistoryEvent;
use wf_engine::memento::StoredRuntime;
use wf_engine::{FlowStatus, StepStatus, WorkflowRuntime};

use super::args::{Command, GlobalArgs, OutputFormat, TargetArgs};
use super::backend::{Backend, InspectError};
use super::exit::Outcome;
use super::format::{abbreviate, duration_ms, millis_between, or_dash, time, time_ms};
use super::listing::print_listing;
use super::stdout::Stdout;

pub use super::delete::delete;
use crate::crd::{annotations, ins_type, InstanceStatus, MPDCluster};
use crate::registration::STABLE_STATES;

/// Runs an inspection command of the command line (`workflows`, `history`, `get`,
/// `status`, `recover`, `cancel`, `abandon`, `delete`) on the backend its flags name; returns
/// the exit code. A failure is one line on stderr and exit 1 (see [`Outcome`]). Other
/// commands are not inspection commands: exit 2.
pub async fn dispatch(global: &GlobalArgs, command: Command) -> u8 {
    let target = |t: &TargetArgs| t.target(std::env::var("KUBECONFIG").ok());
    let target = match &command {
        Command::Workflows(a) | Command::Status(a) => target(&a.target),
        Command::History(a) => target(&a.inspect.target),
        Command::Get(a) => target(&a.target),
        Command::Recover(a) | Command::Cancel(a) | Command::Delete(a) => target(&a.target),
        Command::Abandon(a) => target(&a.target),
        Command::Run(_) | Command::Local(_) => return Outcome::BadInput.code(),
    };
    let backend = match Backend::open(&target, &global.state_dir, &global.namespace).await {
        Ok(backend) => backend,
        Err(err) => return fail(&err),
    };
    let mut out = Stdout::new();
    let result = match &command {
        Command::Workflows(a) => workflows(&backend, &a.name, a.output, &mut out).await,
        Command::History(a) => {
            let filter = HistoryFilter {
                seq: a.seq,
                flow: a.flow.clone(),
            };
            history_of(
                &backend,
                &a.inspect.name,
                a.inspect.output,
                &filter,
                &mut out,
            )
            .await
        }
        Command::Status(a) => status(&backend, &a.name, a.output, &mut out).await,
        Command::Get(a) => match &a.name {
            Some(name) => get_as(&backend, name, a.output, &mut out).await,
            None => list(&backend, a.output.unwrap_or(OutputFormat::Table), &mut out).await,
        },
        Command::Recover(a) => recover(&backend, &a.name, &mut out).await,
        Command::Cancel(a) => cancel(&backend, &a.name, &mut out).await,
        Command::Abandon(a) => abandon(&backend, &a.name, &mut out).await,
        Command::Delete(a) => super::delete::delete(&backend, &a.name, &mut out).await,
        Command::Run(_) | Command::Local(_) => Ok(()),
    };
    match result {
        Ok(()) => Outcome::Success.code(),
        Err(err) => fail(&err),
    }
}

fn fail(err: &InspectError) -> u8 {
    eprintln!("error: {err}");
    err.exit_code()
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
    /// How long the run took (to its end, or until now while it is not finished).
    duration_ms: Option<u64>,
    /// The first step not completed (the current one), if any.
    step: Option<String>,
    /// How long the current step has been at it (since its try started), while the run is
    /// not finished.
    step_age_ms: Option<u64>,
    /// Why the run stands where it does: the interrupt reason and message, the error of a
    /// failed step, or what a waiting step waits for; empty for a completed run.
    reason: String,
}

impl RunRow {
    fn new(stored: &StoredRuntime, now: DateTime<Utc>) -> Self {
        let rt = &stored.runtime;
        let finished = rt.flow_status.is_finished();
        let current = rt
            .running_steps
            .iter()
            .find(|s| s.step_status != StepStatus::Completed);
        let end = if finished {
            rt.complete_time
        } else {
            Some(now)
        };
        let reason = match current {
            _ if rt.flow_status == FlowStatus::Completed => String::new(),
            Some(step) if step.step_status == StepStatus::Waiting => step
                .wait_reason
                .as_deref()
                .map(|r| format!("waiting: {r}"))
                .unwrap_or_default(),
            Some(step) if step.step_status == StepStatus::Failed => step
                .last_error
                .clone()
                .unwrap_or_else(|| rt.error_message.clone()),
            _ => rt.error_message.clone(),
        };
        RunRow {
            seq: stored.seq,
            flow: rt.flow_name.clone(),
            // A run abandoned on request reads `abandoned` (its error says why).
            status: if wf_engine::abandon::abandoned_on_request(rt) {
                "abandoned".to_owned()
            } else {
                rt.flow_status.as_str().to_owned()
            },
            run_retries: rt.retry_times,
            step_retries: rt.running_steps.iter().map(|s| s.retry_times).sum(),
            resumes: rt.resume_times,
            steps_done: rt.completed_steps(),
            steps_total: rt.running_steps.len(),
            start: time(rt.start_time),
            end: time(rt.complete_time),
            error: rt.error_message.clone(),
            duration_ms: rt
                .start_time
                .zip(end)
                .map(|(start, end)| millis_between(start, end)),
            step: current.map(|s| s.step_name.clone()),
            step_age_ms: current
                .filter(|_| !finished)
                .and_then(|s| s.step_start_time)
                .map(|t| millis_between(t, now)),
            reason,
        }
    }
}

/// The longest reason a table shows (`-o json` has it whole).
const REASON_WIDTH: usize = 72;

/// Prints `value` as `-o json` or `-o yaml` ask; `false` for a table format.
fn print_document<T: Serialize>(
    value: &T,
    output: OutputFormat,
    out: &mut Stdout<'_>,
) -> Result<bool, InspectError> {
    match output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(value)
                .map_err(|e| InspectError::Encode(e.to_string()))?;
            out.line(text);
            Ok(true)
        }
        OutputFormat::Yaml => {
            let text =
                serde_yaml::to_string(value).map_err(|e| InspectError::Encode(e.to_string()))?;
            out.text(&text);
            Ok(true)
        }
        OutputFormat::Table | OutputFormat::Wide => Ok(false),
    }
}

/// `workflows NAME`: the runs of a resource, oldest first. An unknown resource is an error.
pub async fn workflows(
    backend: &Backend,
    name: &str,
    output: OutputFormat,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    backend.object(name).await?;
    let now = Utc::now();
    let rows: Vec<RunRow> = backend
        .runtimes(name)
        .await?
        .iter()
        .map(|r| RunRow::new(r, now))
        .collect();
    if print_document(&rows, output, out)? {
        return Ok(());
    }
    let dash = |ms: Option<u64>| ms.map_or_else(|| "-".to_owned(), duration_ms);
    out.line(format_args!(
        "{:<4} {:<34} {:<18} {:>5} {:>8} {:>11} {:>12} {:>7}  {:<20} {:<22} {:>8}  REASON",
        "SEQ",
        "FLOW",
        "STATUS",
        "STEPS",
        "DURATION",
        "RUN-RETRIES",
        "STEP-RETRIES",
        "RESUMES",
        "START",
        "STEP",
        "STEP-AGE"
    ));
    for r in &rows {
        if out.is_closed() {
            break;
        }
        out.line(format_args!(
            "{:<4} {:<34} {:<18} {:>5} {:>8} {:>11} {:>12} {:>7}  {:<20} {:<22} {:>8}  {}",
            r.seq,
            r.flow,
            r.status,
            format!("{}/{}", r.steps_done, r.steps_total),
            dash(r.duration_ms),
            r.run_retries,
            r.step_retries,
            r.resumes,
            r.start,
            r.step.as_deref().unwrap_or("-"),
            dash(r.step_age_ms),
            abbreviate(&r.reason, REASON_WIDTH)
        ));
    }
    Ok(())
}

/// Which events `history` prints.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// Only the run with this SEQ.
    pub seq: Option<u64>,
    /// Only this flow.
    pub flow: Option<String>,
}

impl HistoryFilter {
    fn keeps(&self, event: &HistoryEvent) -> bool {
        self.seq.is_none_or(|seq| event.seq == seq)
            && self.flow.as_deref().is_none_or(|f| event.flow_name == f)
    }
}

/// `history NAME`: every history event of a resource, oldest first (see [`history_of`]).
pub async fn history(
    backend: &Backend,
    name: &str,
    output: OutputFormat,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    history_of(backend, name, output, &HistoryFilter::default(), out).await
}

/// `history NAME [--seq N] [--flow NAME]`: the history events of a resource that `filter`
/// keeps, oldest first (on a cluster: its Kubernetes Events; see [`Backend::history`]),
/// with the run's SEQ, millisecond times, and the error of a failure or the reason of a
/// wait. An unknown resource is an error.
pub async fn history_of(
    backend: &Backend,
    name: &str,
    output: OutputFormat,
    filter: &HistoryFilter,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    backend.object(name).await?;
    let events: Vec<HistoryEvent> = backend
        .history(name)
        .await?
        .into_iter()
        .filter(|e| filter.keeps(e))
        .collect();
    if print_document(&events, output, out)? {
        return Ok(());
    }
    out.line(format_args!(
        "{:<4} {:<24} {:<34} {:<26} {:<18} {:>5} {:>5}  REASON",
        "SEQ", "TIME", "FLOW", "STEP", "TYPE", "STEP#", "RETRY"
    ));
    for e in &events {
        if out.is_closed() {
            break;
        }
        let reason = if e.error.is_empty() {
            &e.reason
        } else {
            &e.error
        };
        out.line(format_args!(
            "{:<4} {:<24} {:<34} {:<26} {:<18} {:>5} {:>5}  {}",
            if e.seq == 0 {
                "-".to_owned()
            } else {
                e.seq.to_string()
            },
            time_ms(e.end_time.or(e.start_time)),
            e.flow_name,
            or_dash(&e.step_name),
            format!("{:?}", e.event_type),
            e.step,
            e.retry,
            abbreviate(reason, REASON_WIDTH)
        ));
    }
    Ok(())
}

/// `get NAME`: the resource as YAML.
pub async fn get(backend: &Backend, name: &str, out: &mut Stdout<'_>) -> Result<(), InspectError> {
    get_as(backend, name, None, out).await
}

/// `get NAME -o FORMAT`: the resource as YAML (the default) or JSON, or its row of the
/// listing (`table`, `wide`).
pub async fn get_as(
    backend: &Backend,
    name: &str,
    output: Option<OutputFormat>,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let cr = backend.object(name).await?;
    match output.unwrap_or(OutputFormat::Yaml) {
        format @ (OutputFormat::Table | OutputFormat::Wide) => {
            print_listing(&[cr], format == OutputFormat::Wide, out);
            Ok(())
        }
        format => print_document(&cr, format, out).map(|_| ()),
    }
}

/// `get` without a name: every resource of the namespace, as a table (the CRD's printer
/// columns: NAME, STATUS, LEADER, RO, READY, AGE; `wide` adds more), or as one JSON or
/// YAML list (`kind: List`, as kubectl prints it).
pub async fn list(
    backend: &Backend,
    output: OutputFormat,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let clusters = backend.list().await?;
    match output {
        OutputFormat::Table | OutputFormat::Wide => {
            if clusters.is_empty() {
                eprintln!("No resources found in {} namespace.", backend.namespace());
                return Ok(());
            }
            print_listing(&clusters, output == OutputFormat::Wide, out);
            Ok(())
        }
        format => {
            let list = serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": clusters,
            });
            print_document(&list, format, out).map(|_| ())
        }
    }
}

async fn annotate(
    backend: &Backend,
    name: &str,
    (key, value): (&str, &str),
    done: &str,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    backend.annotate(name, key, value).await?;
    out.line(format_args!("{}/{name}: {done}", backend.namespace()));
    Ok(())
}

/// The resource's `status.clusterStatus` (empty for one never reconciled).
async fn state_of(backend: &Backend, name: &str) -> Result<String, InspectError> {
    Ok(backend
        .object(name)
        .await?
        .status
        .unwrap_or_default()
        .cluster_status)
}

/// A state as a refusal names it: `new` for the empty state.
fn shown(state: &str) -> &str {
    if state.is_empty() {
        "new"
    } else {
        state
    }
}

fn refused(backend: &Backend, name: &str, reason: String) -> InspectError {
    InspectError::Refused {
        namespace: backend.namespace().to_owned(),
        name: name.to_owned(),
        reason,
    }
}

/// `recover NAME`: `interrupt.recover=T`. Refused (nothing written) unless the resource is
/// `Interrupt`: on any other state the mark would linger and fire at a later interrupt.
pub async fn recover(
    backend: &Backend,
    name: &str,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let state = state_of(backend, name).await?;
    if state != "Interrupt" {
        return Err(refused(
            backend,
            name,
            format!(
                "is {}, not Interrupt: there is nothing to recover",
                shown(&state)
            ),
        ));
    }
    let done = if backend.is_cluster() {
        "recovery requested; the operator resumes the interrupted flow"
    } else {
        "recovery requested; run `local` again (or let `local --watch` pick it up)"
    };
    annotate(
        backend,
        name,
        (annotations::INTERRUPT_RECOVER, "T"),
        done,
        out,
    )
    .await
}

/// `cancel NAME`: `cancelled=true`. Refused (nothing written) when no flow runs: the
/// resource is in a stable state and every run has finished, so the mark would only stop
/// the next flow.
pub async fn cancel(
    backend: &Backend,
    name: &str,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let state = state_of(backend, name).await?;
    let running = backend
        .runtimes(name)
        .await?
        .iter()
        .any(|stored| !stored.runtime.flow_status.is_finished());
    if !running && (state.is_empty() || STABLE_STATES.contains(&state.as_str())) {
        return Err(refused(
            backend,
            name,
            format!(
                "is {} with no flow running: there is nothing to cancel",
                shown(&state)
            ),
        ));
    }
    annotate(
        backend,
        name,
        (annotations::CANCELLED, "true"),
        "cancellation requested; the running flow stops at once",
        out,
    )
    .await
}

/// `abandon NAME`: `interrupt.abandon=T`. Refused (nothing written) when there is no run to
/// abandon: every run has finished and the resource is not interrupted in one
/// ([`wf_engine::abandon::runs_to_abandon`], the rule the engine applies).
pub async fn abandon(
    backend: &Backend,
    name: &str,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let state = state_of(backend, name).await?;
    let runs = backend.runtimes(name).await?;
    let stuck = wf_engine::abandon::runs_to_abandon(&runs, state == "Interrupt");
    let Some(newest) = stuck.first() else {
        return Err(refused(
            backend,
            name,
            format!(
                "is {} with no uncompleted or interrupted run: there is nothing to abandon",
                shown(&state)
            ),
        ));
    };
    let creation = crate::registration::TRANSLATIONS
        .iter()
        .any(|t| t.target == "Creating" && t.flow == newest.runtime.flow_name);
    if creation {
        // Given up, a creation leaves a half-made cluster that no other flow can finish.
        return Err(refused(
            backend,
            name,
            format!(
                "was never created (run {} of {} stopped): a creation cannot be abandoned; \
                 `delete` it (its volume is released), or fix the cause and `recover` it",
                newest.seq, newest.runtime.flow_name
            ),
        ));
    }
    let what = format!(
        "abandon of run {} ({}) requested; ",
        newest.seq, newest.runtime.flow_name
    );
    let done = if backend.is_cluster() {
        format!("{what}the operator closes it, cleans up and sets Running")
    } else {
        format!("{what}run `local` again (or let `local --watch` pick it up)")
    };
    annotate(
        backend,
        name,
        (annotations::INTERRUPT_ABANDON, "T"),
        &done,
        out,
    )
    .await
}

/// `status NAME` as JSON: the overview of a resource.
#[derive(Debug, Serialize)]
struct StatusView {
    namespace: String,
    name: String,
    /// `status.clusterStatus`.
    state: String,
    /// The `Ready` condition's status (`True`, `False`), if any.
    ready: Option<String>,
    generation: Option<i64>,
    observed_generation: Option<i64>,
    /// `status.leaderInstanceId`.
    leader: String,
    /// `status.leaderInstanceHost`.
    leader_host: String,
    /// RW first, then ROs, then temporary ROs.
    instances: Vec<InstanceView>,
    /// The run not completed yet, if any.
    running_flow: Option<FlowView>,
    /// The latest run.
    last_flow: Option<FlowView>,
}

/// One instance of `status`.
#[derive(Debug, Serialize)]
struct InstanceView {
    ins_id: String,
    /// `RW`, `RO`, `TEMP-RO`.
    role: String,
    leader: bool,
    pod: String,
    node: String,
    /// `host:port` of the engine.
    address: String,
    /// The engine state the cluster manager reported (`RUNNING`, …).
    engine: String,
    /// Why, when given.
    reason: String,
    /// Since when.
    since: String,
    installed: bool,
}

/// A run in `status`.
#[derive(Debug, Serialize)]
struct FlowView {
    seq: u64,
    flow: String,
    status: String,
    /// The first step not completed (the current one), if any.
    step: Option<String>,
    /// Its status (`prepared`, `inited`, `waiting`, `failed`).
    step_status: Option<String>,
    steps_done: usize,
    steps_total: usize,
    start: String,
    end: String,
    error: String,
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Prepared => "prepared",
        StepStatus::Inited => "running",
        StepStatus::Waiting => "waiting",
        StepStatus::Failed => "failed",
        StepStatus::Completed => "completed",
    }
}

impl FlowView {
    fn new(seq: u64, rt: &WorkflowRuntime) -> Self {
        let current = rt
            .running_steps
            .iter()
            .find(|s| s.step_status != StepStatus::Completed);
        FlowView {
            seq,
            flow: rt.flow_name.clone(),
            status: rt.flow_status.as_str().to_owned(),
            step: current.map(|s| s.step_name.clone()),
            step_status: current.map(|s| step_status(s.step_status).to_owned()),
            steps_done: rt.completed_steps(),
            steps_total: rt.running_steps.len(),
            start: time(rt.start_time),
            end: time(rt.complete_time),
            error: rt.error_message.clone(),
        }
    }

    fn line(&self) -> String {
        let mut line = format!(
            "{} (#{}) {}, {}/{} steps",
            self.flow, self.seq, self.status, self.steps_done, self.steps_total
        );
        if let (Some(step), Some(status)) = (&self.step, &self.step_status) {
            line.push_str(&format!(", at {step} ({status})"));
        }
        if !self.error.is_empty() {
            line.push_str(&format!(", error: {}", self.error));
        }
        line
    }
}

fn role(ty: &str) -> String {
    match ty {
        ins_type::RW => "RW".to_owned(),
        ins_type::RO => "RO".to_owned(),
        ins_type::TEMP_RO => "TEMP-RO".to_owned(),
        "" => "-".to_owned(),
        other => other.to_uppercase(),
    }
}

fn rank(ty: &str) -> u8 {
    match ty {
        ins_type::RW => 0,
        ins_type::RO => 1,
        ins_type::TEMP_RO => 2,
        _ => 3,
    }
}

fn instance_view(ins: &InstanceStatus, leader: &str) -> InstanceView {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    InstanceView {
        ins_id: ins.ins_id.clone(),
        role: role(&ins.ins_type),
        leader: !leader.is_empty() && ins.ins_id == leader,
        pod: dash(&ins.pod_name),
        node: dash(&ins.node_name),
        address: if ins.net_info.working_host_ip.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{}:{}",
                ins.net_info.working_host_ip, ins.net_info.working_port
            )
        },
        engine: dash(&ins.current_state.state),
        reason: ins.current_state.reason.clone(),
        since: dash(&ins.current_state.start_at),
        installed: ins.installed,
    }
}

fn status_view(cr: &MPDCluster, runs: &[StoredRuntime]) -> StatusView {
    let status = cr.status.clone().unwrap_or_default();
    let leader = status.leader_instance_id.clone();
    let mut instances: Vec<&InstanceStatus> = status.db_instance_status.values().collect();
    instances.sort_by(|a, b| (rank(&a.ins_type), &a.ins_id).cmp(&(rank(&b.ins_type), &b.ins_id)));
    StatusView {
        namespace: cr.metadata.namespace.clone().unwrap_or_default(),
        name: cr.metadata.name.clone().unwrap_or_default(),
        state: status.cluster_status.clone(),
        ready: status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone()),
        generation: cr.metadata.generation,
        observed_generation: status.observed_generation,
        leader: leader.clone(),
        leader_host: status.leader_instance_host.clone(),
        instances: instances
            .into_iter()
            .map(|i| instance_view(i, &leader))
            .collect(),
        running_flow: runs
            .iter()
            .rev()
            .find(|r| !r.runtime.flow_status.is_finished())
            .map(|r| FlowView::new(r.seq, &r.runtime)),
        last_flow: runs.last().map(|r| FlowView::new(r.seq, &r.runtime)),
    }
}

/// `status NAME`: an overview of a resource: its state, the leader, one row per instance
/// (role, pod, node, engine state) and the running flow with its current step.
pub async fn status(
    backend: &Backend,
    name: &str,
    output: OutputFormat,
    out: &mut Stdout<'_>,
) -> Result<(), InspectError> {
    let cr = backend.object(name).await?;
    let runs = backend.runtimes(name).await?;
    let view = status_view(&cr, &runs);
    if print_document(&view, output, out)? {
        return Ok(());
    }
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    out.line(format_args!("Cluster:  {}/{}", view.namespace, view.name));
    let mut state = or_dash(&view.state);
    if let Some(ready) = &view.ready {
        state.push_str(&format!(" (Ready={ready})"));
    }
    if let (Some(generation), Some(observed)) = (view.generation, view.observed_generation) {
        state.push_str(&format!(", generation {generation}, observed {observed}"));
    }
    out.line(format_args!("State:    {state}"));
    let leader = if view.leader.is_empty() {
        "-".to_owned()
    } else if view.leader_host.is_empty() {
        view.leader.clone()
    } else {
        format!("{} on {}", view.leader, view.leader_host)
    };
    out.line(format_args!("Leader:   {leader}"));
    let flow = match (&view.running_flow, &view.last_flow) {
        (Some(running), _) => running.line(),
        (None, Some(last)) => format!("none running; last: {}, ended {}", last.line(), last.end),
        (None, None) => "none".to_owned(),
    };
    out.line(format_args!("Flow:     {flow}"));
    out.line("");
    out.line(format_args!("Instances: {}", view.instances.len()));
    out.line(format_args!(
        "{:<24} {:<8} {:<40} {:<16} {:<22} {:<10} {:<9} {:<25} REASON",
        "INSTANCE", "ROLE", "POD", "NODE", "ADDRESS", "ENGINE", "INSTALLED", "SINCE"
    ));
    for i in &view.instances {
        let role = if i.leader {
            format!("{}*", i.role)
        } else {
            i.role.clone()
        };
        let row = format!(
            "{:<24} {:<8} {:<40} {:<16} {:<22} {:<10} {:<9} {:<25} {}",
            i.ins_id,
            role,
            i.pod,
            i.node,
            i.address,
            i.engine,
            if i.installed { "yes" } else { "no" },
            i.since,
            i.reason
        );
        out.line(row.trim_end());
    }
    if view.instances.iter().any(|i| i.leader) {
        out.line("(* the leader)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EngineStateRecord, MPDClusterStatus};

    fn run(seq: u64, flow: &str, status: &str, steps: &[(&str, &str)]) -> StoredRuntime {
        let steps: Vec<_> = steps
            .iter()
            .map(|(name, status)| serde_json::json!({"StepName": name, "stepStatus": status}))
            .collect();
        let runtime = serde_json::from_value(serde_json::json!({
            "flowStatus": status,
            "flowName": flow,
            "runningSteps": steps,
        }))
        .unwrap();
        StoredRuntime {
            seq,
            key: format!("{seq}-{flow}"),
            runtime,
        }
    }

    fn cluster() -> MPDCluster {
        let mut cr = MPDCluster::new("c1", Default::default());
        cr.metadata.namespace = Some("ns".into());
        let mut status = MPDClusterStatus {
            leader_instance_id: "2".into(),
            leader_instance_host: "node-2".into(),
            ..MPDClusterStatus::default()
        };
        status.set_state("AddRo", Some(2));
        for (id, ty) in [("3", "ro"), ("2", "rw"), ("4", "tempro")] {
            status.db_instance_status.insert(
                id.into(),
                InstanceStatus {
                    ins_id: id.into(),
                    ins_type: ty.into(),
                    node_name: format!("node-{id}"),
                    current_state: EngineStateRecord {
                        state: "RUNNING".into(),
                        ..EngineStateRecord::default()
                    },
                    ..InstanceStatus::default()
                },
            );
        }
        cr.status = Some(status);
        cr
    }

    #[test]
    fn status_names_the_uncompleted_run_and_its_first_step_not_completed() {
        let runs = [
            run(1, "Create", "completed", &[("A", "completed")]),
            run(
                2,
                "AddRo",
                "waiting",
                &[("A", "completed"), ("B", "waiting"), ("C", "prepared")],
            ),
        ];
        let view = status_view(&cluster(), &runs);
        let flow = view.running_flow.expect("a running flow");
        assert_eq!((flow.seq, flow.flow.as_str()), (2, "AddRo"));
        assert_eq!(flow.step.as_deref(), Some("B"));
        assert_eq!(flow.step_status.as_deref(), Some("waiting"));
        assert_eq!((flow.steps_done, flow.steps_total), (1, 3));
        assert_eq!(flow.line(), "AddRo (#2) waiting, 1/3 steps, at B (waiting)");
        assert_eq!(view.state, "AddRo");
        assert_eq!(view.ready.as_deref(), Some("False"));
    }

    #[test]
    fn status_lists_the_rw_first_marked_as_leader_then_the_ros_then_temporary_ros() {
        let view = status_view(&cluster(), &[]);
        let rows: Vec<(&str, &str, bool)> = view
            .instances
            .iter()
            .map(|i| (i.ins_id.as_str(), i.role.as_str(), i.leader))
            .collect();
        assert_eq!(
            rows,
            [
                ("2", "RW", true),
                ("3", "RO", false),
                ("4", "TEMP-RO", false)
            ]
        );
        assert!(view.running_flow.is_none() && view.last_flow.is_none());
    }
}
