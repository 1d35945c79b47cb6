//! The runtime record: one execution of one flow for one resource, as persisted in a
//! memento. Field names are the wire names of the original, so stored runs stay readable.
//!
//! A field at its default value (no time, `0` retries, an empty map, message or list) is left
//! out when written and read back as that default; `null` reads as the default too, as the
//! original wrote for an empty map. Times are written as RFC 3339 in UTC with millisecond
//! precision (`2021-07-21T08:32:47.492Z`) and read in any RFC 3339 form or in the original's
//! `2021-07-21 08:32:47.492` (no zone: read as UTC).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{FlowMeta, JsonMap};

use crate::memento::wire::{is_zero, null_as_default, time as wire_time};

/// The status of a flow run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlowStatus {
    /// Created, no step started.
    Prepared,
    /// A step is running (or the process died while it was).
    Running,
    /// A step waits for the outside world.
    Waiting,
    /// A step failed; the next entry retries from it.
    Failed,
    /// Interrupted; only recovery resumes it.
    FailedAndCompleted,
    /// All steps completed.
    Completed,
}

impl FlowStatus {
    /// Whether the run is over (`completed` or `failedAndCompleted`).
    pub fn is_finished(self) -> bool {
        matches!(self, FlowStatus::Completed | FlowStatus::FailedAndCompleted)
    }

    /// The wire name, e.g. `failedAndCompleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Prepared => "prepared",
            FlowStatus::Running => "running",
            FlowStatus::Waiting => "waiting",
            FlowStatus::Failed => "failed",
            FlowStatus::FailedAndCompleted => "failedAndCompleted",
            FlowStatus::Completed => "completed",
        }
    }
}

/// The status of one step of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// Not started.
    Prepared,
    /// Started (initialised); if the process dies now, the step runs again.
    Inited,
    /// Parked until the outside world is ready.
    Waiting,
    /// Failed; retried on the next entry.
    Failed,
    /// Done; never run again for this runtime.
    Completed,
}

impl StepStatus {
    /// The wire name, e.g. `inited`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Prepared => "prepared",
            StepStatus::Inited => "inited",
            StepStatus::Waiting => "waiting",
            StepStatus::Failed => "failed",
            StepStatus::Completed => "completed",
        }
    }
}

/// One step's record in a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRuntime {
    /// The step name (capitalised on the wire, as in the original).
    #[serde(rename = "StepName")]
    pub step_name: String,
    /// Where the step is.
    pub step_status: StepStatus,
    /// When the current try started.
    #[serde(default, with = "wire_time", skip_serializing_if = "Option::is_none")]
    pub step_start_time: Option<DateTime<Utc>>,
    /// When the step last completed, waited or failed.
    #[serde(default, with = "wire_time", skip_serializing_if = "Option::is_none")]
    pub last_step_complete_time: Option<DateTime<Utc>>,
    /// The step's output once completed.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "JsonMap::is_empty"
    )]
    pub context_output: JsonMap,
    /// How many times the step was tried again after it failed (its `maxRetries` budget).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub retry_times: u32,
    /// How many times the step was run again because the process stopped while it ran (a
    /// crash, a kill): found `inited` on resume. Not a failure; not counted in
    /// `retry_times`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub resume_times: u32,
    /// The last failure's message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the step waits for, while it is `waiting` and said why
    /// ([`crate::StepOutcome::waiting_because`]); cleared when it completes or fails. Left
    /// out when none (older mementos have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<String>,
}

/// A run of a flow: what a memento holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRuntime {
    /// Where the run is.
    pub flow_status: FlowStatus,
    /// How many times the run was taken up again after a step failed.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub retry_times: u32,
    /// How many times the run was taken up again after the process stopped while a step
    /// ran (found `running`): the count the flow's `maxResumes` budget bounds.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub resume_times: u32,
    /// The flow run.
    pub flow_name: String,
    /// When the run was created.
    #[serde(default, with = "wire_time", skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the run finished.
    #[serde(default, with = "wire_time", skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<DateTime<Utc>>,
    /// The error that failed or interrupted the run.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub error_message: String,
    /// The init context: resource name and namespace plus the event parameters.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "JsonMap::is_empty"
    )]
    pub init_context: JsonMap,
    /// One record per step, in flow order (written last, so a save can splice the steps in).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub running_steps: Vec<StepRuntime>,
}

impl WorkflowRuntime {
    /// A new run of `flow`: every step `prepared`, the flow `prepared`, the start time now.
    pub fn new(flow: &FlowMeta, init_context: JsonMap, now: DateTime<Utc>) -> Self {
        WorkflowRuntime {
            flow_status: FlowStatus::Prepared,
            retry_times: 0,
            resume_times: 0,
            flow_name: flow.name.clone(),
            start_time: Some(now),
            complete_time: None,
            error_message: String::new(),
            init_context,
            running_steps: flow
                .steps
                .iter()
                .map(|s| StepRuntime {
                    step_name: s.step_name.clone(),
                    step_status: StepStatus::Prepared,
                    step_start_time: None,
                    last_step_complete_time: None,
                    context_output: JsonMap::new(),
                    retry_times: 0,
                    resume_times: 0,
                    last_error: None,
                    wait_reason: None,
                })
                .collect(),
        }
    }

    /// The record of `step_name`.
    pub fn step(&self, step_name: &str) -> Option<&StepRuntime> {
        self.running_steps.iter().find(|s| s.step_name == step_name)
    }

    /// The id the history uses for this run: its start time in milliseconds.
    pub fn workflow_id(&self) -> i64 {
        self.start_time.map_or(0, |t| t.timestamp_millis())
    }

    /// How many steps completed.
    pub fn completed_steps(&self) -> usize {
        self.running_steps
            .iter()
            .filter(|s| s.step_status == StepStatus::Completed)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_uses_the_original_wire_names() {
        let rt: WorkflowRuntime = serde_json::from_value(json!({
            "flowStatus": "failedAndCompleted",
            "retryTimes": 2,
            "flowName": "F",
            "startTime": "2024-01-02T03:04:05Z",
            "completeTime": null,
            "errorMessage": "boom",
            "initContext": {"_resourceName": "c1"},
            "runningSteps": [{
                "StepName": "A",
                "stepStatus": "inited",
                "stepStartTime": "2024-01-02T03:04:05Z",
                "lastStepCompleteTime": null,
                "contextOutput": {},
                "retryTimes": 1
            }]
        }))
        .unwrap();
        assert_eq!(rt.flow_status, FlowStatus::FailedAndCompleted);
        assert_eq!(rt.running_steps[0].step_status, StepStatus::Inited);
        let back = serde_json::to_value(&rt).unwrap();
        assert_eq!(back["runningSteps"][0]["StepName"], "A");
        assert_eq!(back["flowStatus"], "failedAndCompleted");
        assert_eq!(rt.workflow_id(), 1_704_164_645_000);
    }
}
