//! Errors of the flow metadata loader.

use std::path::PathBuf;

use crate::RetryPolicyError;

/// Flow metadata that cannot be loaded. Every variant names the file it comes from.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The directory or a file could not be read.
    #[error("cannot read flow metadata {path}: {source}")]
    Io {
        /// The path read.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML for a flow or group (syntax, a wrong type, an unknown field
    /// such as `stepname:`, a missing required field).
    #[error("{path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_yaml::Error,
    },
    /// Two documents define the same flow.
    #[error("flow `{flow}` is defined twice: in {first} and in {second}")]
    DuplicateFlow {
        /// The flow name.
        flow: String,
        /// The first definition.
        first: PathBuf,
        /// The second definition.
        second: PathBuf,
    },
    /// Two documents define the same step group.
    #[error("step group `{group}` is defined twice: in {first} and in {second}")]
    DuplicateGroup {
        /// The group name.
        group: String,
        /// The first definition.
        first: PathBuf,
        /// The second definition.
        second: PathBuf,
    },
    /// A flow has no steps (after group expansion).
    #[error("{path}: flow `{flow}` has no steps")]
    EmptyFlow {
        /// The file.
        path: PathBuf,
        /// The flow.
        flow: String,
    },
    /// A flow uses the same step name twice (after group expansion).
    #[error("{path}: flow `{flow}` has step `{step}` more than once")]
    DuplicateStep {
        /// The file.
        path: PathBuf,
        /// The flow.
        flow: String,
        /// The repeated step name.
        step: String,
    },
    /// A step has no `stepName`.
    #[error("{path}: a step of class `{class}` in `{owner}` has no `stepName`")]
    MissingStepName {
        /// The file.
        path: PathBuf,
        /// The flow or group holding the step.
        owner: String,
        /// The step's class.
        class: String,
    },
    /// Step groups use each other in a cycle.
    #[error("{path}: step group cycle {}", .chain.join(" -> "))]
    GroupCycle {
        /// The file of the group that closes the cycle.
        path: PathBuf,
        /// The groups in the cycle, the first repeated at the end.
        chain: Vec<String>,
    },
    /// A retry policy in YAML is invalid.
    #[error("{path}: invalid retry policy in {owner}: {source}")]
    InvalidRetry {
        /// The file.
        path: PathBuf,
        /// `flow X` or `flow X, step Y`.
        owner: String,
        /// What is wrong.
        #[source]
        source: RetryPolicyError,
    },
    /// A step names a class that is not registered.
    #[error("{path}: flow `{flow}`, step `{step}`: unknown className `{class}`")]
    UnknownClass {
        /// The file.
        path: PathBuf,
        /// The flow.
        flow: String,
        /// The step.
        step: String,
        /// The class.
        class: String,
    },
}
