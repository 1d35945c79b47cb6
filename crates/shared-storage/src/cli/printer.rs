//! Prints one line per step transition of `local`; on a terminal, also a progress bar per
//! flow run.
//!
//! - A wait prints one line with what the step waits for; the calls that wait again for the
//!   same reason print nothing (they are folded), and the step's next line says how many
//!   waits it took (`after 7 waits`).
//! - The first transition this process sees of a run it did not start (a run stored by an
//!   earlier process, parked or stopped mid-step) is preceded by
//!   `resuming run N at step K/M`.
//! - A failure is printed here once, with its error (the engine's log of it is a `WARN`,
//!   shown only with `-v`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use wf_engine::async_trait;
use wf_engine::hook::{HookEvent, Transition, TransitionHook};

use super::stdout::Stdout;

/// The printing hook.
pub struct TransitionPrinter {
    bars: Option<MultiProgress>,
    runs: Mutex<HashMap<(String, u64), ProgressBar>>,
    seen: Mutex<HashMap<(String, u64), RunSeen>>,
}

/// What the printer has seen of a run in this process.
#[derive(Debug, Default)]
struct RunSeen {
    /// The step that waits and the reason last printed for it.
    waiting: Option<(usize, String)>,
    /// How many times that step waited.
    waits: u32,
    /// The error of the last failed step line printed, so the interrupt that follows it does
    /// not print it again.
    last_error: Option<String>,
}

/// What [`TransitionPrinter::note`] found about a transition.
#[derive(Debug, Default)]
struct Note {
    /// The `resuming` line to print first.
    resuming: Option<String>,
    /// A repeated wait: no line.
    folded: bool,
    /// The waits that ended with this transition.
    waited: u32,
    /// The error was printed already (on the failed step's line).
    error_printed: bool,
}

fn duration(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(start), Some(end)) if end >= start => {
            let ms = (end - start).num_milliseconds();
            if ms < 1000 {
                format!("{ms}ms")
            } else {
                format!("{:.1}s", ms as f64 / 1000.0)
            }
        }
        _ => "-".to_owned(),
    }
}

impl TransitionPrinter {
    /// A printer; `terminal` adds progress bars.
    pub fn new(terminal: bool) -> Self {
        TransitionPrinter {
            bars: terminal.then(MultiProgress::new),
            runs: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Prints one line; a closed standard output (`local ... | head -1`) drops it quietly
    /// (the reconcile goes on, and the exit code still tells how it ended).
    fn print(&self, line: String) {
        if let Some(bars) = &self.bars {
            if bars.println(&line).is_ok() {
                return;
            }
        }
        Stdout::new().line(line);
    }

    fn key(event: &HookEvent<'_>) -> (String, u64) {
        (event.resource.to_string(), event.seq)
    }

    /// What to print before and after the line of `event`: the `resuming` line of a run
    /// this process sees first mid-way, whether the line is a repeated wait (folded), and
    /// the number of waits that ended with this transition.
    fn note(&self, event: &HookEvent<'_>, transition: Transition) -> Note {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Self::key(event);
        let mut resuming = None;
        // A finished run met again (the replay of its last transition) is not resumed.
        if !seen.contains_key(&key)
            && transition != Transition::FlowStarted
            && !event.runtime.flow_status.is_finished()
        {
            let rt = event.runtime;
            let at = event.step.unwrap_or_else(|| rt.completed_steps());
            let step = rt
                .running_steps
                .get(at)
                .map_or("-", |s| s.step_name.as_str());
            resuming = Some(format!(
                "{:<20} {:<42} {step:<26} resuming   run {} at step {}/{}",
                event.resource.to_string(),
                rt.flow_name,
                event.seq,
                (at + 1).min(rt.running_steps.len()),
                rt.running_steps.len()
            ));
        }
        let run = seen.entry(key.clone()).or_default();
        let mut folded = false;
        let mut waited = 0;
        let error_printed = transition == Transition::FlowInterrupted
            && event.error.is_some()
            && run.last_error.as_deref() == event.error;
        run.last_error = match transition {
            Transition::StepFailed => event.error.map(str::to_owned),
            _ => None,
        };
        match (transition, event.step) {
            (Transition::StepWaiting, Some(at)) => {
                let reason = event.wait_reason().unwrap_or_default().to_owned();
                folded = run
                    .waiting
                    .as_ref()
                    .is_some_and(|(step, last)| *step == at && *last == reason);
                if run.waiting.as_ref().is_none_or(|(step, _)| *step != at) {
                    run.waits = 0;
                }
                run.waits += 1;
                run.waiting = Some((at, reason));
            }
            _ => {
                if run.waiting.take().is_some() {
                    waited = run.waits;
                }
                run.waits = 0;
            }
        }
        if matches!(
            transition,
            Transition::FlowCompleted | Transition::FlowInterrupted
        ) {
            seen.remove(&key);
        }
        Note {
            resuming,
            folded,
            waited,
            error_printed,
        }
    }

    fn line(&self, event: &HookEvent<'_>, status: &str, note: &Note) {
        let waited = note.waited;
        // The interrupt of a failed step: its error is on the step's line just above.
        let error = event.error.filter(|_| !note.error_printed);
        let resource = event.resource.to_string();
        let flow = &event.runtime.flow_name;
        let line = match event.step_runtime() {
            Some(step) => {
                let mut line = format!(
                    "{resource:<20} {flow:<42} {:<26} {status:<10} {:>8} retry={}",
                    step.step_name,
                    duration(step.step_start_time, step.last_step_complete_time),
                    step.retry_times,
                );
                if let Some(reason) = event.wait_reason() {
                    line.push_str("  for: ");
                    line.push_str(reason);
                }
                if waited > 1 {
                    line.push_str(&format!("  after {waited} waits"));
                } else if waited == 1 {
                    line.push_str("  after 1 wait");
                }
                if let Some(error) = error {
                    line.push_str("  error: ");
                    line.push_str(error);
                }
                line
            }
            None => {
                let mut line = format!(
                    "{resource:<20} {flow:<42} {:<26} {status:<10} {:>8} retry={}",
                    "-",
                    duration(event.runtime.start_time, event.runtime.complete_time),
                    event.runtime.retry_times,
                );
                if let Some(error) = error {
                    line.push_str("  error: ");
                    line.push_str(error);
                }
                line
            }
        };
        self.print(line);
    }

    fn advance(&self, event: &HookEvent<'_>, status: &str) {
        let Some(bars) = &self.bars else {
            return;
        };
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Self::key(event);
        let bar = runs.entry(key.clone()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::new(event.runtime.running_steps.len() as u64));
            if let Ok(style) =
                ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(format!("{} {}", event.resource, event.runtime.flow_name));
            bar
        });
        bar.set_position(event.runtime.completed_steps() as u64);
        if let Some(step) = event.step_runtime() {
            bar.set_message(format!("{} {status}", step.step_name));
        }
        if event.runtime.flow_status.is_finished() {
            bar.finish_with_message(status.to_owned());
            runs.remove(&key);
        }
    }
}

#[async_trait]
impl TransitionHook for TransitionPrinter {
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
        let note = self.note(event, transition);
        if let Some(resuming) = &note.resuming {
            self.print(resuming.clone());
        }
        // A replayed step line repeats what an earlier process printed; a replayed flow
        // completion is news (that process stopped before it).
        if event.replayed && transition != Transition::FlowCompleted {
            return;
        }
        let status = match transition {
            Transition::FlowStarted => "started",
            Transition::StepStarted => "running",
            Transition::StepWaiting => "waiting",
            Transition::StepCompleted | Transition::FlowCompleted => "completed",
            Transition::StepFailed => "failed",
            Transition::FlowInterrupted => "interrupted",
            Transition::FlowAbandoned => "abandoned",
        };
        if !note.folded {
            self.line(event, status, &note);
        }
        self.advance(event, status);
    }
}
