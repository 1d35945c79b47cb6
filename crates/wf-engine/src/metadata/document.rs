//! The YAML documents as written: flows and step groups.

use serde::Deserialize;

use crate::retry::{BackoffSpec, RetrySpec};

/// A flow file: `flowName`, `recoverFromFirstStep`, `steps`, optional retry fields, and
/// the optional run-level `maxResumes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FlowDocument {
    pub flow_name: String,
    #[serde(default)]
    pub recover_from_first_step: bool,
    #[serde(default)]
    pub steps: Vec<StepDocument>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub backoff: Option<BackoffSpec>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub max_resumes: Option<u32>,
}

/// A `*_step_group.yaml` file: `groupName` and `steps`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GroupDocument {
    pub group_name: String,
    #[serde(default)]
    pub steps: Vec<StepDocument>,
}

/// One entry of `steps`: a step class, or the name of a step group.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StepDocument {
    pub class_name: String,
    #[serde(default)]
    pub step_name: Option<String>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub backoff: Option<BackoffSpec>,
    #[serde(default)]
    pub timeout: Option<String>,
}

impl FlowDocument {
    pub fn retry_spec(&self) -> RetrySpec {
        RetrySpec {
            max_retries: self.max_retries,
            backoff: self.backoff.clone(),
            timeout: self.timeout.clone(),
        }
    }
}

impl StepDocument {
    pub fn retry_spec(&self) -> RetrySpec {
        RetrySpec {
            max_retries: self.max_retries,
            backoff: self.backoff.clone(),
            timeout: self.timeout.clone(),
        }
    }
}
