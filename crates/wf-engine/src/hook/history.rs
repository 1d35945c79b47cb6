//! The default hook: one JSON line per event in `<log dir>/<resource type>_workflow.txt`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{HookEvent, Transition, TransitionHook};
use crate::failpoints::{self, failpoint};
use crate::RefusalEvent;

/// The kind of a history event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryEventType {
    /// A run was created.
    WorkFlowStart,
    /// A step started.
    StepInited,
    /// A step waits.
    StepWaiting,
    /// A step failed.
    StepError,
    /// A step completed.
    StepCompleted,
    /// The run was interrupted.
    WorkFlowInterrupt,
    /// The run completed.
    WorkFlowCompleted,
    /// The run was abandoned on request.
    WorkFlowAbandoned,
    /// A request was refused before any run started ([`crate::Admission`]): `workflow_id`
    /// is 0, `flow_name` the flow it would have run, `error` is `<reason>: <message>`.
    RequestRefused,
}

/// One line of the history
/// ([semantics §13](../../../../docs/SEMANTICS.md#13-hooks-and-history)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// The resource's name.
    pub resource_name: String,
    /// The resource's namespace.
    pub namespace: String,
    /// The run's id: its start time in milliseconds.
    pub workflow_id: i64,
    /// The run's sequence number (the `SEQ` of `workflows`); 0 in lines written before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub seq: u64,
    /// `<workflow_id>-<step>`; `<workflow_id>-0` for flow events.
    pub step_id: String,
    /// The flow.
    pub flow_name: String,
    /// The step, empty for flow events.
    pub step_name: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: HistoryEventType,
    /// When the step (or run) started.
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended, if it did.
    pub end_time: Option<DateTime<Utc>>,
    /// The step's position, 1-based; 0 for flow events.
    pub step: usize,
    /// How many steps the flow has.
    pub step_count: usize,
    /// The step's retries after failures (or the run's, for flow events).
    pub retry: u32,
    /// The step's resumes after a crash (or the run's, for flow events); left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumes: u32,
    /// The error, if any.
    pub error: String,
    /// What a waiting step waits for (`StepWaiting` lines), when the step said; left out
    /// when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Written by a new process for a transition an earlier one saved but may not have
    /// recorded (it stopped between the save and its hooks); left out when false. A replay
    /// of an event the file already has is not written.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replayed: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

impl HistoryEvent {
    /// Whether `other` records the same transition: everything but `replayed` equal, the
    /// times to the millisecond (what a memento keeps of them); a `seq` of 0 (a line
    /// written before the seq was recorded) matches any.
    pub fn same_transition(&self, other: &HistoryEvent) -> bool {
        fn millis(t: Option<DateTime<Utc>>) -> Option<i64> {
            t.map(|t| t.timestamp_millis())
        }
        let same_times = millis(self.start_time) == millis(other.start_time)
            && millis(self.end_time) == millis(other.end_time);
        let mut other = other.clone();
        other.replayed = self.replayed;
        if self.seq == 0 || other.seq == 0 {
            other.seq = self.seq;
        }
        other.start_time = self.start_time;
        other.end_time = self.end_time;
        same_times && *self == other
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_zero(value: &u32) -> bool {
    *value == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

/// History that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read.
    #[error("cannot read history {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a history event ([`read_history`] skips such a line with a warning;
    /// [`parse_history`] returns it).
    #[error("{path}:{line}: not a history event: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads every event of a history file (and of its rotated `.1` predecessor, first). A
/// missing file is an empty history. A line that is not a history event (a torn write, an
/// edit) is skipped with a warning naming the file and the line, so one bad line does not
/// hide the rest of the history.
pub fn read_history(path: &Path) -> Result<Vec<HistoryEvent>, HistoryError> {
    let mut events = Vec::new();
    for file in [rotated(path), path.to_path_buf()] {
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(HistoryError::Io { path: file, source }),
        };
        let (read, skipped) = parse_history(&file, &bytes);
        for bad in &skipped {
            if let HistoryError::Corrupt { path, line, source } = bad {
                tracing::warn!(file = %path.display(), line, error = %source, "skipping a history line that is not a history event");
            }
        }
        events.extend(read);
    }
    Ok(events)
}

/// Parses the content of a history file (`path` names it in errors): one event per line,
/// blank lines ignored. Returns the events and, for every line that is not an event (not
/// UTF-8, not JSON, not a history event), a [`HistoryError::Corrupt`] naming the file and
/// the line; such lines are left out of the events.
pub fn parse_history(path: &Path, bytes: &[u8]) -> (Vec<HistoryEvent>, Vec<HistoryError>) {
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<HistoryEvent>(raw) {
            Ok(event) => events.push(event),
            Err(source) => skipped.push(HistoryError::Corrupt {
                path: path.to_path_buf(),
                line: n + 1,
                source,
            }),
        }
    }
    (events, skipped)
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends history events as JSON lines. When the file passes `max_bytes` it is rotated to
/// `<file>.1` (one generation kept), so the history never grows without bound.
#[derive(Debug)]
pub struct HistoryRecorder {
    path: PathBuf,
    max_bytes: u64,
    lock: Mutex<()>,
}

impl HistoryRecorder {
    /// Default rotation size: 16 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

    /// A recorder writing `<log_dir>/<resource_type>_workflow.txt`.
    pub fn new(log_dir: impl AsRef<Path>, resource_type: &str) -> Self {
        HistoryRecorder {
            path: log_dir
                .as_ref()
                .join(format!("{resource_type}_workflow.txt")),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            lock: Mutex::new(()),
        }
    }

    /// Sets the rotation size.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The history line for `event`.
    pub fn event_line(event: &HookEvent<'_>, event_type: HistoryEventType) -> HistoryEvent {
        let rt = event.runtime;
        let workflow_id = rt.workflow_id();
        let (step, step_name, start, end, retry, resumes) = match event.step_runtime() {
            Some(s) => (
                event.step.map_or(0, |i| i + 1),
                s.step_name.clone(),
                s.step_start_time,
                s.last_step_complete_time,
                s.retry_times,
                s.resume_times,
            ),
            None => (
                0,
                String::new(),
                rt.start_time,
                rt.complete_time,
                rt.retry_times,
                rt.resume_times,
            ),
        };
        HistoryEvent {
            resource_name: event.resource.name.clone(),
            namespace: event.resource.namespace.clone(),
            workflow_id,
            seq: event.seq,
            step_id: format!("{workflow_id}-{step}"),
            flow_name: rt.flow_name.clone(),
            step_name,
            event_type,
            start_time: start,
            end_time: end,
            step,
            step_count: rt.running_steps.len(),
            retry,
            resumes,
            error: event.error.unwrap_or_default().to_owned(),
            reason: match event_type {
                HistoryEventType::StepWaiting => event.wait_reason().unwrap_or_default().to_owned(),
                _ => String::new(),
            },
            replayed: event.replayed,
        }
    }

    /// How much of the end of the file a replay is looked up in.
    const REPLAY_WINDOW: u64 = 1024 * 1024;

    /// Whether the last [`Self::REPLAY_WINDOW`] bytes of the file hold `line`'s transition.
    fn already_has(&self, line: &HistoryEvent) -> std::io::Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let from = len.saturating_sub(Self::REPLAY_WINDOW);
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        // A window that starts inside a line skips that partial line.
        let mut lines = text.lines();
        if from > 0 {
            lines.next();
        }
        Ok(lines
            .filter_map(|l| serde_json::from_str::<HistoryEvent>(l).ok())
            .any(|stored| stored.same_transition(line)))
    }

    fn append(&self, line: &HistoryEvent) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            std::fs::rename(&self.path, rotated(&self.path))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(text.as_bytes())
    }

    fn record(&self, event: &HookEvent<'_>, event_type: HistoryEventType) {
        let line = Self::event_line(event, event_type);
        if event.replayed {
            match self.already_has(&line) {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(path = %self.path.display(), %err, "cannot read workflow history to check a replay; writing it");
                }
            }
        }
        failpoint!(failpoints::HISTORY_WRITE_BEFORE);
        if let Err(err) = self.append(&line) {
            tracing::warn!(path = %self.path.display(), %err, "cannot append workflow history");
        }
        failpoint!(failpoints::HISTORY_WRITE_AFTER);
    }
}

#[async_trait]
impl TransitionHook for HistoryRecorder {
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
        let kind = match transition {
            Transition::FlowStarted => HistoryEventType::WorkFlowStart,
            Transition::StepStarted => HistoryEventType::StepInited,
            Transition::StepWaiting => HistoryEventType::StepWaiting,
            Transition::StepCompleted => HistoryEventType::StepCompleted,
            Transition::StepFailed => HistoryEventType::StepError,
            Transition::FlowCompleted => HistoryEventType::WorkFlowCompleted,
            Transition::FlowInterrupted => HistoryEventType::WorkFlowInterrupt,
            Transition::FlowAbandoned => HistoryEventType::WorkFlowAbandoned,
        };
        self.record(event, kind);
    }

    async fn on_refused(&self, event: &RefusalEvent<'_>) {
        let now = Utc::now();
        let line = HistoryEvent {
            resource_name: event.resource.name.clone(),
            namespace: event.resource.namespace.clone(),
            workflow_id: 0,
            step_id: "0-0".to_owned(),
            flow_name: event.flow.unwrap_or(event.target.as_str()).to_owned(),
            step_name: String::new(),
            event_type: HistoryEventType::RequestRefused,
            start_time: Some(now),
            end_time: Some(now),
            step: 0,
            step_count: 0,
            retry: 0,
            resumes: 0,
            error: event.refusal.to_string(),
            replayed: false,
            seq: 0,
            reason: String::new(),
        };
        if let Err(err) = self.append(&line) {
            tracing::warn!(path = %self.path.display(), %err, "cannot append workflow history");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkflowHook;
    use crate::{FlowStatus, JsonMap, ResourceKey, StepRuntime, StepStatus, WorkflowRuntime};

    fn runtime() -> WorkflowRuntime {
        WorkflowRuntime {
            flow_status: FlowStatus::Running,
            retry_times: 0,
            resume_times: 0,
            flow_name: "Create".into(),
            start_time: Some(DateTime::from_timestamp_millis(1_000).unwrap()),
            complete_time: None,
            error_message: String::new(),
            init_context: JsonMap::new(),
            running_steps: vec![StepRuntime {
                step_name: "InitMeta".into(),
                step_status: StepStatus::Failed,
                step_start_time: None,
                last_step_complete_time: None,
                context_output: JsonMap::new(),
                retry_times: 2,
                resume_times: 0,
                last_error: None,
                wait_reason: None,
            }],
        }
    }

    #[tokio::test]
    async fn history_recorder_writes_one_json_line_per_event_with_semantics_fields() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = HistoryRecorder::new(dir.path(), "shared");
        let key = ResourceKey::new("ns", "c1");
        let rt = runtime();
        let event = HookEvent {
            resource_type: "shared",
            resource: &key,
            seq: 1,
            runtime: &rt,
            step: Some(0),
            error: Some("boom"),
            replayed: false,
        };
        recorder
            .on_wf_init(&HookEvent {
                step: None,
                error: None,
                replayed: false,
                ..event
            })
            .await;
        recorder.on_step_completed(&event).await;
        let path = dir.path().join("shared_workflow.txt");
        let raw = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
        for field in [
            "resource_name",
            "namespace",
            "workflow_id",
            "step_id",
            "flow_name",
            "step_name",
            "type",
            "start_time",
            "end_time",
            "step",
            "step_count",
            "retry",
            "error",
        ] {
            assert!(first.get(field).is_some(), "missing {field} in {first}");
        }
        let events = read_history(&path).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event_type, HistoryEventType::WorkFlowStart);
        assert_eq!(events[1].event_type, HistoryEventType::StepError);
        assert_eq!(events[1].step, 1);
        assert_eq!(events[1].retry, 2);
        assert_eq!(events[1].error, "boom");
        assert_eq!(events[1].workflow_id, 1_000);
    }

    #[tokio::test]
    async fn a_replay_the_file_has_is_dropped_and_one_it_lacks_is_written_marked_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = HistoryRecorder::new(dir.path(), "shared");
        let key = ResourceKey::new("ns", "c1");
        let mut rt = runtime();
        // Saved with nanoseconds in memory; a memento keeps milliseconds.
        rt.running_steps[0].last_step_complete_time = DateTime::from_timestamp(2, 123_456_789);
        let event = HookEvent {
            resource_type: "shared",
            resource: &key,
            seq: 1,
            runtime: &rt,
            step: Some(0),
            error: Some("boom"),
            replayed: false,
        };
        recorder.on_step_completed(&event).await;
        let mut reloaded = rt.clone();
        reloaded.running_steps[0].last_step_complete_time =
            DateTime::from_timestamp(2, 123_000_000);
        let replay = HookEvent {
            runtime: &reloaded,
            replayed: true,
            ..event
        };
        recorder.on_step_completed(&replay).await;
        let events = read_history(recorder.path()).unwrap();
        assert_eq!(
            events.len(),
            1,
            "the replay of a recorded transition is dropped"
        );
        assert!(!events[0].replayed);

        recorder
            .on_wf_completed(&HookEvent {
                step: None,
                error: None,
                ..replay
            })
            .await;
        let events = read_history(recorder.path()).unwrap();
        assert_eq!(events.len(), 2, "a replay the file lacks is written");
        assert_eq!(events[1].event_type, HistoryEventType::WorkFlowCompleted);
        assert!(events[1].replayed, "and marked as a replay");
        let raw = std::fs::read_to_string(recorder.path()).unwrap();
        assert!(
            !raw.lines().next().unwrap().contains("replayed"),
            "false is left out"
        );
    }

    #[tokio::test]
    async fn a_waiting_line_carries_the_run_seq_and_the_wait_reason() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = HistoryRecorder::new(dir.path(), "shared");
        let key = ResourceKey::new("ns", "c1");
        let mut rt = runtime();
        rt.running_steps[0].step_status = StepStatus::Waiting;
        rt.running_steps[0].wait_reason = Some("pod c1-1 is Pending".into());
        let event = HookEvent {
            resource_type: "shared",
            resource: &key,
            seq: 7,
            runtime: &rt,
            step: Some(0),
            error: None,
            replayed: false,
        };
        recorder.on_step_waiting(&event).await;
        recorder.on_step_init(&event).await;
        let events = read_history(recorder.path()).unwrap();
        assert_eq!(events[0].event_type, HistoryEventType::StepWaiting);
        assert_eq!(
            (events[0].seq, events[0].reason.as_str()),
            (7, "pod c1-1 is Pending")
        );
        assert_eq!(
            events[1].reason, "",
            "only a waiting line carries the reason"
        );
        assert_eq!(events[1].seq, 7);
    }

    #[test]
    fn a_line_written_before_the_seq_and_the_reason_were_recorded_still_loads() {
        let old = r#"{"resource_name":"c1","namespace":"ns","workflow_id":1000,"step_id":"1000-1","flow_name":"Create","step_name":"A","type":"StepWaiting","start_time":null,"end_time":null,"step":1,"step_count":1,"retry":0,"error":""}"#;
        let (events, skipped) = parse_history(Path::new("h.txt"), old.as_bytes());
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!((events[0].seq, events[0].reason.as_str()), (0, ""));
    }

    #[tokio::test]
    async fn history_file_is_rotated_past_its_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = HistoryRecorder::new(dir.path(), "shared").max_bytes(200);
        let key = ResourceKey::new("ns", "c1");
        let rt = runtime();
        let event = HookEvent {
            resource_type: "shared",
            resource: &key,
            seq: 1,
            runtime: &rt,
            step: None,
            error: None,
            replayed: false,
        };
        for _ in 0..5 {
            recorder.on_wf_init(&event).await;
        }
        let main = std::fs::metadata(recorder.path()).unwrap().len();
        assert!(main < 1000, "{main}");
        assert!(dir.path().join("shared_workflow.txt.1").is_file());
    }
}
