//! The JSON of one run, kept as one encoded fragment per step, so that a save re-encodes
//! only the run header and the step that moved, never the whole runtime.
//!
//! The document is byte for byte what `serde_json::to_string(&runtime)` writes (tests and,
//! in debug builds, every save check it): the header fields, then `"runningSteps":[…]` last.
//! It is written by hand rather than through serde because a save is the engine's hot path.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use super::wire::time as wire_time;
use crate::{JsonMap, StepRuntime, WorkflowRuntime};

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if short.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `,"<name>":"<time>"` when there is a time.
fn push_time(out: &mut String, name: &str, time: &Option<DateTime<Utc>>) {
    let Some(t) = time else {
        return;
    };
    push_name(out, name);
    let mut buf = [0u8; 24];
    match wire_time::format(t, &mut buf).and_then(|()| std::str::from_utf8(&buf).ok()) {
        Some(text) => {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        None => push_json_str(out, &t.to_rfc3339_opts(SecondsFormat::Millis, true)),
    }
}

/// Appends `,"<name>":` (never the first field: that one is written by the caller).
fn push_name(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

fn push_count(out: &mut String, name: &str, n: u32) {
    if n != 0 {
        push_name(out, name);
        let _ = write!(out, "{n}");
    }
}

fn push_map(out: &mut String, name: &str, map: &JsonMap) -> Result<(), serde_json::Error> {
    if !map.is_empty() {
        push_name(out, name);
        out.push_str(&serde_json::to_string(map)?);
    }
    Ok(())
}

/// A step's fragment, `{"StepName":…}`.
fn encode_step(step: &StepRuntime) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    encode_step_into(&mut out, step)?;
    Ok(out)
}

/// Appends a step's fragment to `out`.
fn encode_step_into(out: &mut String, step: &StepRuntime) -> Result<(), serde_json::Error> {
    // Naming every field: a field added to the step record fails to compile here until the
    // fragment writes it too.
    let StepRuntime {
        step_name,
        step_status,
        step_start_time,
        last_step_complete_time,
        context_output,
        retry_times,
        resume_times,
        last_error,
        wait_reason,
    } = step;
    out.reserve(64 + step_name.len() + 2 * 50);
    out.push_str("{\"StepName\":");
    push_json_str(out, step_name);
    out.push_str(",\"stepStatus\":\"");
    out.push_str(step_status.as_str());
    out.push('"');
    push_time(out, "stepStartTime", step_start_time);
    push_time(out, "lastStepCompleteTime", last_step_complete_time);
    push_map(out, "contextOutput", context_output)?;
    push_count(out, "retryTimes", *retry_times);
    push_count(out, "resumeTimes", *resume_times);
    if let Some(error) = last_error {
        push_name(out, "lastError");
        push_json_str(out, error);
    }
    if let Some(reason) = wait_reason {
        push_name(out, "waitReason");
        push_json_str(out, reason);
    }
    out.push('}');
    Ok(())
}

/// The run's fields from `flowName` to `initContext` as last encoded, with what they were
/// encoded from: within a run they seldom change (at its end, or on a failure).
#[derive(Debug, Default)]
struct EncodedTail {
    flow_name: String,
    start_time: Option<DateTime<Utc>>,
    complete_time: Option<DateTime<Utc>>,
    error_message: String,
    init_context: JsonMap,
    json: String,
}

impl EncodedTail {
    fn matches(&self, rt: &WorkflowRuntime) -> bool {
        !self.json.is_empty()
            && self.start_time == rt.start_time
            && self.complete_time == rt.complete_time
            && self.flow_name == rt.flow_name
            && self.error_message == rt.error_message
            && self.init_context == rt.init_context
    }

    fn encode(rt: &WorkflowRuntime) -> Result<Self, serde_json::Error> {
        let mut json = String::with_capacity(96 + rt.flow_name.len() + rt.error_message.len());
        push_name(&mut json, "flowName");
        push_json_str(&mut json, &rt.flow_name);
        push_time(&mut json, "startTime", &rt.start_time);
        push_time(&mut json, "completeTime", &rt.complete_time);
        if !rt.error_message.is_empty() {
            push_name(&mut json, "errorMessage");
            push_json_str(&mut json, &rt.error_message);
        }
        push_map(&mut json, "initContext", &rt.init_context)?;
        Ok(EncodedTail {
            flow_name: rt.flow_name.clone(),
            start_time: rt.start_time,
            complete_time: rt.complete_time,
            error_message: rt.error_message.clone(),
            init_context: rt.init_context.clone(),
            json,
        })
    }
}

/// The bytes a run still gains on its way to completion at the least: the times of every
/// step that has none yet, and the run's completion time. A new run is refused when even
/// that would not fit the budget, so that it does not stop half-way at the budget.
pub(crate) fn completion_reserve(rt: &WorkflowRuntime) -> usize {
    // `,"<name>":"` + 24 bytes of time + `"`.
    let time = |name: &str| name.len() + 6 + 24;
    let steps: usize = rt
        .running_steps
        .iter()
        .map(|s| {
            usize::from(s.step_start_time.is_none()) * time("stepStartTime")
                + usize::from(s.last_step_complete_time.is_none()) * time("lastStepCompleteTime")
        })
        .sum();
    steps + usize::from(rt.complete_time.is_none()) * time("completeTime")
}

/// One run's document, as its step fragments; the header is encoded on every save.
#[derive(Debug)]
pub(crate) struct RunDocument {
    /// The run's sequence number.
    pub(crate) seq: u64,
    /// The run's key, `<seq>-<flowName>`.
    pub(crate) key: String,
    steps: Vec<String>,
    steps_len: usize,
    tail: EncodedTail,
    /// The buffer of the last document, handed back after its write to be reused.
    buffer: String,
    /// The length of the document last written, and whether its run was finished.
    pub(crate) written: Option<(usize, bool)>,
}

impl RunDocument {
    /// Encodes every step of `rt` (stored as `seq` under `key`) and returns the document.
    pub(crate) fn encode(
        seq: u64,
        key: String,
        rt: &WorkflowRuntime,
    ) -> Result<(Self, String), serde_json::Error> {
        let steps = rt
            .running_steps
            .iter()
            .map(encode_step)
            .collect::<Result<Vec<_>, _>>()?;
        let steps_len = steps.iter().map(String::len).sum();
        let mut doc = RunDocument {
            seq,
            key,
            steps,
            steps_len,
            tail: EncodedTail::default(),
            buffer: String::new(),
            written: None,
        };
        let json = doc.assemble(rt)?;
        Ok((doc, json))
    }

    /// Whether this document can be updated to `rt` by re-encoding one step: same run, same
    /// number of steps.
    pub(crate) fn fits(&self, seq: u64, rt: &WorkflowRuntime) -> bool {
        self.seq == seq && self.steps.len() == rt.running_steps.len()
    }

    /// The document after the header and (when given) step `changed` of `rt` moved; every
    /// other step is taken as it was last encoded.
    pub(crate) fn update(
        &mut self,
        rt: &WorkflowRuntime,
        changed: Option<usize>,
    ) -> Result<String, serde_json::Error> {
        if let Some((step, fragment)) =
            changed.and_then(|p| rt.running_steps.get(p).zip(self.steps.get_mut(p)))
        {
            self.steps_len -= fragment.len();
            fragment.clear();
            encode_step_into(fragment, step)?;
            self.steps_len += fragment.len();
        }
        self.assemble(rt)
    }

    /// Takes back the buffer of a document once it is written, for the next one.
    pub(crate) fn reuse(&mut self, buffer: String) {
        self.buffer = buffer;
    }

    fn assemble(&mut self, rt: &WorkflowRuntime) -> Result<String, serde_json::Error> {
        // Naming every field: a field added to the runtime fails to compile here until the
        // header (or its tail) writes it too.
        let WorkflowRuntime {
            flow_status,
            retry_times,
            resume_times,
            flow_name: _,
            start_time: _,
            complete_time: _,
            error_message: _,
            init_context: _,
            running_steps: _,
        } = rt;
        if !self.tail.matches(rt) {
            self.tail = EncodedTail::encode(rt)?;
        }
        let mut out = std::mem::take(&mut self.buffer);
        out.clear();
        out.reserve(64 + self.tail.json.len() + self.steps_len + self.steps.len());
        out.push_str("{\"flowStatus\":\"");
        out.push_str(flow_status.as_str());
        out.push('"');
        push_count(&mut out, "retryTimes", *retry_times);
        push_count(&mut out, "resumeTimes", *resume_times);
        out.push_str(&self.tail.json);
        if !self.steps.is_empty() {
            out.push_str(",\"runningSteps\":[");
            for (i, fragment) in self.steps.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(fragment);
            }
            out.push(']');
        }
        out.push('}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlowStatus, StepStatus};
    use chrono::TimeZone;
    use serde_json::json;

    fn full() -> WorkflowRuntime {
        let t = Utc.with_ymd_and_hms(2026, 12, 2, 7, 41, 52).unwrap();
        WorkflowRuntime {
            flow_status: FlowStatus::Failed,
            retry_times: 2,
            resume_times: 3,
            flow_name: "CreateCluster".into(),
            start_time: Some(t),
            complete_time: Some(t),
            error_message: "boom \"quoted\" \\ \n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} é 雪".into(),
            init_context: JsonMap::from_iter([("_resourceName".into(), json!("c1"))]),
            running_steps: vec![
                StepRuntime {
                    step_name: "A \"1\"".into(),
                    step_status: StepStatus::Completed,
                    step_start_time: Some(t),
                    last_step_complete_time: Some(t),
                    context_output: JsonMap::from_iter([("k".into(), json!([1, 2]))]),
                    retry_times: 1,
                    resume_times: 1,
                    last_error: Some("was down".into()),
                    wait_reason: None,
                },
                StepRuntime {
                    step_name: "B".into(),
                    step_status: StepStatus::Prepared,
                    step_start_time: None,
                    last_step_complete_time: None,
                    context_output: JsonMap::new(),
                    retry_times: 0,
                    resume_times: 0,
                    last_error: None,
                    wait_reason: None,
                },
                StepRuntime {
                    step_name: "C".into(),
                    step_status: StepStatus::Waiting,
                    step_start_time: Some(t),
                    last_step_complete_time: Some(t),
                    context_output: JsonMap::new(),
                    retry_times: 0,
                    resume_times: 0,
                    last_error: None,
                    wait_reason: Some("pod \"c1-2\" is Pending".into()),
                },
            ],
        }
    }

    #[test]
    fn the_document_is_what_serde_writes_for_the_runtime() {
        let mut bare = full();
        bare.retry_times = 0;
        bare.resume_times = 0;
        bare.start_time = None;
        bare.complete_time = None;
        bare.error_message.clear();
        bare.init_context.clear();
        let mut no_steps = full();
        no_steps.running_steps.clear();
        for rt in [full(), bare, no_steps] {
            let (_, json) = RunDocument::encode(1, "1-F".into(), &rt).unwrap();
            assert_eq!(json, serde_json::to_string(&rt).unwrap());
            let back: WorkflowRuntime = serde_json::from_str(&json).unwrap();
            assert_eq!(back, rt);
        }
    }

    #[test]
    fn an_update_re_encodes_the_header_and_the_step_that_moved() {
        let mut rt = full();
        let (mut doc, _) = RunDocument::encode(1, "1-F".into(), &rt).unwrap();
        rt.flow_status = FlowStatus::Running;
        rt.running_steps[1].step_status = StepStatus::Inited;
        rt.running_steps[1].step_start_time = rt.start_time;
        let json = doc.update(&rt, Some(1)).unwrap();
        assert_eq!(json, serde_json::to_string(&rt).unwrap());
        assert!(doc.fits(1, &rt));
        assert!(!doc.fits(2, &rt));
    }

    #[test]
    fn the_completion_reserve_is_what_the_times_of_a_completed_run_add() {
        let mut rt = full();
        rt.complete_time = None;
        for step in &mut rt.running_steps {
            step.step_start_time = None;
            step.last_step_complete_time = None;
        }
        let before = serde_json::to_string(&rt).unwrap().len();
        let reserve = completion_reserve(&rt);
        let t = full().start_time;
        rt.complete_time = t;
        for step in &mut rt.running_steps {
            step.step_start_time = t;
            step.last_step_complete_time = t;
        }
        assert_eq!(before + reserve, serde_json::to_string(&rt).unwrap().len());
        assert_eq!(completion_reserve(&rt), 0);
    }

    #[test]
    fn defaults_are_left_out() {
        let (_, json) = RunDocument::encode(1, "1-F".into(), &{
            let mut rt = full();
            rt.running_steps.truncate(0);
            rt.running_steps.push(full().running_steps[1].clone());
            rt
        })
        .unwrap();
        assert!(
            json.ends_with(r#""runningSteps":[{"StepName":"B","stepStatus":"prepared"}]}"#),
            "{json}"
        );
    }
}
