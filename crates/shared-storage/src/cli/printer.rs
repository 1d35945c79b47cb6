//! Prints one line per step transition; on a terminal, also a progress bar per flow run.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use wf_engine::async_trait;
use wf_engine::hook::{HookEvent, Transition, TransitionHook};

/// The printing hook.
pub struct TransitionPrinter {
    bars: Option<MultiProgress>,
    runs: Mutex<HashMap<(String, u64), ProgressBar>>,
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
        }
    }

    fn print(&self, line: String) {
        match &self.bars {
            Some(bars) => {
                if bars.println(&line).is_err() {
                    println!("{line}");
                }
            }
            None => println!("{line}"),
        }
    }

    fn key(event: &HookEvent<'_>) -> (String, u64) {
        (event.resource.to_string(), event.seq)
    }

    fn line(&self, event: &HookEvent<'_>, status: &str) {
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
                if let Some(error) = event.error {
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
                if let Some(error) = event.error {
                    line.push_str("  error: ");
                    line.push_str(error);
                }
                line
            }
        };
        self.print(line);
        self.advance(event, status);
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
        self.line(event, status);
    }
}
