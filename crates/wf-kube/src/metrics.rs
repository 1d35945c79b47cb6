//! [`WorkflowMetrics`]: a [`TransitionHook`] counting flow runs, steps and interrupts per
//! resource type, rendered in the Prometheus text exposition format.
//!
//! Hand-rolled (a mutex around ordered maps) so the crate needs no metrics dependency; the
//! output is sorted by metric, then by labels, so it is stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

use wf_engine::async_trait;
use wf_engine::hook::{HookEvent, Transition, TransitionHook};

/// The default step latency buckets, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// A histogram: per-bucket counts (not cumulative), the sum and the count.
#[derive(Clone, Debug, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// `resource_type` -> runs started.
    started: BTreeMap<String, u64>,
    /// `(resource_type, result)` -> runs finished.
    finished: BTreeMap<(String, &'static str), u64>,
    /// `resource_type` -> steps completed.
    step_completed: BTreeMap<String, u64>,
    /// `resource_type` -> steps failed.
    step_failed: BTreeMap<String, u64>,
    /// `resource_type` -> retry attempts started.
    step_retries: BTreeMap<String, u64>,
    /// `(resource_type, reason)` -> interrupts.
    interrupts: BTreeMap<(String, String), u64>,
    /// `resource_type` -> step latency.
    latency: BTreeMap<String, Histogram>,
    /// `result` -> reconciles.
    reconciles: BTreeMap<String, u64>,
}

/// Workflow metrics. Register it as a hook (it is a [`wf_engine::WorkflowHook`]) and serve
/// [`WorkflowMetrics::render`] on the operator's `/metrics` endpoint.
///
/// Metrics (all labelled `resource_type` but the last):
/// - `wf_flow_runs_started_total`
/// - `wf_flow_runs_finished_total{result="completed"|"interrupted"|"abandoned"}`
/// - `wf_step_completions_total`
/// - `wf_step_failures_total` (each failure is retried on the next entry)
/// - `wf_step_retries_total`: step attempts started by a step that failed before (a step
///   run again after a crash is a resume, not a retry, and is not counted here)
/// - `wf_interrupts_total{reason}`: the reason is the error text before its first `:`
/// - `wf_step_duration_seconds` (histogram): from the step's start to its completion, for
///   completed steps
/// - `wf_reconciles_total{result}`, from [`WorkflowMetrics::record_reconcile`]
#[derive(Debug)]
pub struct WorkflowMetrics {
    bounds: Vec<f64>,
    inner: Mutex<Inner>,
}

impl Default for WorkflowMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkflowMetrics {
    /// Metrics with the [`DEFAULT_BUCKETS`].
    pub fn new() -> Self {
        Self::with_buckets(DEFAULT_BUCKETS)
    }

    /// Metrics with these latency bucket bounds (seconds); they are sorted and deduplicated,
    /// and non-finite bounds are dropped (`+Inf` is always there).
    pub fn with_buckets(bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        WorkflowMetrics {
            bounds,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while counting leaves the counters usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one reconcile with its result (e.g. `ok`, `error`, `requeue`).
    pub fn record_reconcile(&self, result: &str) {
        *self.lock().reconciles.entry(result.to_owned()).or_default() += 1;
    }

    /// Counts one transition. This is what the hook does; it is public for callers that do
    /// not go through a [`wf_engine::WorkflowManager`].
    pub fn record(&self, event: &HookEvent<'_>, transition: Transition) {
        let rt = event.resource_type.to_owned();
        let mut inner = self.lock();
        match transition {
            Transition::FlowStarted => *inner.started.entry(rt).or_default() += 1,
            Transition::FlowCompleted => *inner.finished.entry((rt, "completed")).or_default() += 1,
            Transition::FlowAbandoned => *inner.finished.entry((rt, "abandoned")).or_default() += 1,
            Transition::FlowInterrupted => {
                let reason = interrupt_reason(event);
                *inner
                    .finished
                    .entry((rt.clone(), "interrupted"))
                    .or_default() += 1;
                *inner.interrupts.entry((rt, reason)).or_default() += 1;
            }
            Transition::StepFailed => *inner.step_failed.entry(rt).or_default() += 1,
            Transition::StepCompleted => {
                *inner.step_completed.entry(rt.clone()).or_default() += 1;
                if let Some(seconds) = step_seconds(event) {
                    let bounds = &self.bounds;
                    let h = inner.latency.entry(rt).or_insert_with(|| Histogram {
                        buckets: vec![0; bounds.len()],
                        ..Histogram::default()
                    });
                    if let Some(i) = bounds.iter().position(|b| seconds <= *b) {
                        h.buckets[i] += 1;
                    }
                    h.sum += seconds;
                    h.count += 1;
                }
            }
            Transition::StepStarted => {
                if event.step_runtime().is_some_and(|s| s.retry_times > 0) {
                    *inner.step_retries.entry(rt).or_default() += 1;
                }
            }
            Transition::StepWaiting => {}
        }
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        header(
            &mut out,
            "wf_flow_runs_started_total",
            "counter",
            "Flow runs started.",
        );
        for (rt, n) in &inner.started {
            sample(
                &mut out,
                "wf_flow_runs_started_total",
                &[("resource_type", rt)],
                n,
            );
        }
        header(
            &mut out,
            "wf_flow_runs_finished_total",
            "counter",
            "Flow runs finished, by result.",
        );
        for ((rt, result), n) in &inner.finished {
            let labels = [("resource_type", rt.as_str()), ("result", result)];
            sample(&mut out, "wf_flow_runs_finished_total", &labels, n);
        }
        header(
            &mut out,
            "wf_step_completions_total",
            "counter",
            "Steps completed.",
        );
        for (rt, n) in &inner.step_completed {
            sample(
                &mut out,
                "wf_step_completions_total",
                &[("resource_type", rt)],
                n,
            );
        }
        header(
            &mut out,
            "wf_step_failures_total",
            "counter",
            "Step failures (each is retried).",
        );
        for (rt, n) in &inner.step_failed {
            sample(
                &mut out,
                "wf_step_failures_total",
                &[("resource_type", rt)],
                n,
            );
        }
        header(
            &mut out,
            "wf_step_retries_total",
            "counter",
            "Step attempts started again after a failure or a crash.",
        );
        for (rt, n) in &inner.step_retries {
            sample(
                &mut out,
                "wf_step_retries_total",
                &[("resource_type", rt)],
                n,
            );
        }
        header(
            &mut out,
            "wf_interrupts_total",
            "counter",
            "Flow runs interrupted, by reason.",
        );
        for ((rt, reason), n) in &inner.interrupts {
            let labels = [("resource_type", rt.as_str()), ("reason", reason.as_str())];
            sample(&mut out, "wf_interrupts_total", &labels, n);
        }
        header(
            &mut out,
            "wf_step_duration_seconds",
            "histogram",
            "Step duration from start to completion.",
        );
        for (rt, h) in &inner.latency {
            let mut cumulative = 0;
            for (bound, n) in self.bounds.iter().zip(&h.buckets) {
                cumulative += n;
                let le = bound.to_string();
                let labels = [("resource_type", rt.as_str()), ("le", le.as_str())];
                sample(
                    &mut out,
                    "wf_step_duration_seconds_bucket",
                    &labels,
                    cumulative,
                );
            }
            let labels = [("resource_type", rt.as_str()), ("le", "+Inf")];
            sample(
                &mut out,
                "wf_step_duration_seconds_bucket",
                &labels,
                h.count,
            );
            let labels = [("resource_type", rt.as_str())];
            sample(&mut out, "wf_step_duration_seconds_sum", &labels, h.sum);
            sample(&mut out, "wf_step_duration_seconds_count", &labels, h.count);
        }
        header(
            &mut out,
            "wf_reconciles_total",
            "counter",
            "Reconciles, by result.",
        );
        for (result, n) in &inner.reconciles {
            sample(&mut out, "wf_reconciles_total", &[("result", result)], n);
        }
        out
    }
}

#[async_trait]
impl TransitionHook for WorkflowMetrics {
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
        // A replay was counted by the process that saved it, or lost with its counters.
        if !event.replayed {
            self.record(event, transition);
        }
    }
}

/// The reason of an interrupt: the error text (the event's, else the run's) before its first
/// `:`, trimmed; `unknown` when empty.
pub fn interrupt_reason(event: &HookEvent<'_>) -> String {
    let text = event.error.unwrap_or(&event.runtime.error_message);
    let reason = text.split(':').next().unwrap_or_default().trim();
    if reason.is_empty() {
        "unknown".to_owned()
    } else {
        reason.to_owned()
    }
}

/// Seconds from the step's start to its last completion, if both are known and in order.
fn step_seconds(event: &HookEvent<'_>) -> Option<f64> {
    let step = event.step_runtime()?;
    let elapsed = step.last_step_complete_time? - step.step_start_time?;
    let millis = elapsed.num_milliseconds();
    (millis >= 0).then(|| millis as f64 / 1000.0)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = write!(out, "{name}{{");
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{key}=\"{}\"", escape(value));
    }
    let _ = writeln!(out, "}} {value}");
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use wf_engine::hook::WorkflowHook;
    use wf_engine::{FlowStatus, JsonMap, ResourceKey, StepRuntime, StepStatus, WorkflowRuntime};

    fn runtime(step_millis: &[i64]) -> WorkflowRuntime {
        let t0 = Utc.timestamp_millis_opt(1_700_000_000_000).single();
        WorkflowRuntime {
            flow_status: FlowStatus::Running,
            retry_times: 0,
            resume_times: 0,
            flow_name: "CreateCluster".into(),
            start_time: t0,
            complete_time: None,
            error_message: String::new(),
            init_context: JsonMap::new(),
            running_steps: step_millis
                .iter()
                .enumerate()
                .map(|(i, ms)| StepRuntime {
                    step_name: format!("S{i}"),
                    step_status: StepStatus::Completed,
                    step_start_time: t0,
                    last_step_complete_time: t0.map(|t| t + chrono::Duration::milliseconds(*ms)),
                    context_output: JsonMap::new(),
                    retry_times: 0,
                    resume_times: 0,
                    last_error: None,
                    wait_reason: None,
                })
                .collect(),
        }
    }

    fn event<'a>(
        rt: &'a WorkflowRuntime,
        key: &'a ResourceKey,
        step: Option<usize>,
        error: Option<&'a str>,
    ) -> HookEvent<'a> {
        HookEvent {
            resource_type: "MPDCluster",
            resource: key,
            seq: 1,
            runtime: rt,
            step,
            error,
            replayed: false,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[tokio::test]
    async fn counts_a_flow_through_the_workflow_hook_and_renders_exact_lines() {
        let metrics = WorkflowMetrics::new();
        let key = ResourceKey::new("ns", "c1");
        let rt = runtime(&[30, 2_000]);
        metrics.on_wf_init(&event(&rt, &key, None, None)).await;
        metrics.on_step_init(&event(&rt, &key, Some(0), None)).await;
        metrics
            .on_step_completed(&event(&rt, &key, Some(0), None))
            .await;
        metrics
            .on_step_completed(&event(&rt, &key, Some(1), Some("boom")))
            .await;
        metrics
            .on_step_completed(&event(&rt, &key, Some(1), None))
            .await;
        metrics.on_wf_completed(&event(&rt, &key, None, None)).await;
        metrics.record_reconcile("ok");
        metrics.record_reconcile("ok");
        metrics.record_reconcile("error");
        let text = metrics.render();
        let got = lines(&text);
        for want in [
            "# HELP wf_flow_runs_started_total Flow runs started.",
            "# TYPE wf_flow_runs_started_total counter",
            "wf_flow_runs_started_total{resource_type=\"MPDCluster\"} 1",
            "wf_flow_runs_finished_total{resource_type=\"MPDCluster\",result=\"completed\"} 1",
            "wf_step_completions_total{resource_type=\"MPDCluster\"} 2",
            "wf_step_failures_total{resource_type=\"MPDCluster\"} 1",
            "# TYPE wf_step_duration_seconds histogram",
            "wf_step_duration_seconds_bucket{resource_type=\"MPDCluster\",le=\"0.01\"} 0",
            "wf_step_duration_seconds_bucket{resource_type=\"MPDCluster\",le=\"0.05\"} 1",
            "wf_step_duration_seconds_bucket{resource_type=\"MPDCluster\",le=\"1\"} 1",
            "wf_step_duration_seconds_bucket{resource_type=\"MPDCluster\",le=\"5\"} 2",
            "wf_step_duration_seconds_bucket{resource_type=\"MPDCluster\",le=\"600\"} 2",
            "wf_step_duration_seconds_bucket{resource_type=\"MPDCluster\",le=\"+Inf\"} 2",
            "wf_step_duration_seconds_sum{resource_type=\"MPDCluster\"} 2.03",
            "wf_step_duration_seconds_count{resource_type=\"MPDCluster\"} 2",
            "wf_reconciles_total{result=\"error\"} 1",
            "wf_reconciles_total{result=\"ok\"} 2",
        ] {
            assert!(got.contains(&want), "missing {want:?} in\n{text}");
        }
        // No interrupt was counted.
        assert!(!text.contains("wf_interrupts_total{"), "{text}");
        assert!(!text.contains("result=\"interrupted\""), "{text}");
    }

    #[tokio::test]
    async fn interrupts_are_counted_by_the_error_prefix() {
        let metrics = WorkflowMetrics::new();
        let key = ResourceKey::new("ns", "c1");
        let mut rt = runtime(&[]);
        metrics
            .on_wf_interrupt(&event(
                &rt,
                &key,
                None,
                Some("MANY_RETRY: step S1 failed 5 times"),
            ))
            .await;
        metrics
            .on_wf_interrupt(&event(&rt, &key, None, Some("MANY_RETRY: again")))
            .await;
        rt.error_message = "CANCELLED: by annotation".into();
        metrics.on_wf_interrupt(&event(&rt, &key, None, None)).await;
        metrics
            .on_wf_interrupt(&event(&rt, &key, None, Some("")))
            .await;
        let text = metrics.render();
        let got = lines(&text);
        for want in [
            "wf_flow_runs_finished_total{resource_type=\"MPDCluster\",result=\"interrupted\"} 4",
            "wf_interrupts_total{resource_type=\"MPDCluster\",reason=\"CANCELLED\"} 1",
            "wf_interrupts_total{resource_type=\"MPDCluster\",reason=\"MANY_RETRY\"} 2",
            "wf_interrupts_total{resource_type=\"MPDCluster\",reason=\"unknown\"} 1",
        ] {
            assert!(got.contains(&want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn an_empty_registry_renders_only_headers_and_label_values_are_escaped() {
        let metrics = WorkflowMetrics::new();
        let text = metrics.render();
        assert!(text
            .lines()
            .all(|l| l.starts_with("# HELP ") || l.starts_with("# TYPE ")));
        assert_eq!(text.lines().count(), 16);
        metrics.record_reconcile("a\"b\\c\nd");
        assert!(metrics
            .render()
            .lines()
            .any(|l| l == r#"wf_reconciles_total{result="a\"b\\c\nd"} 1"#));
    }
}
