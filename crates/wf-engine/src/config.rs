//! Engine configuration: context keys, interrupt annotations, retention and timings.

use std::time::Duration;

use crate::RetryPolicy;

/// The annotation keys of an interrupt record
/// ([semantics §5](../../../docs/SEMANTICS.md#5-steps-and-their-outcomes) and [§10](../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptAnnotations {
    /// Why the flow was interrupted (default `interrupt.reason`).
    pub reason: String,
    /// A human-readable message (default `interrupt.message`).
    pub message: String,
    /// The state the resource had before it was interrupted (default
    /// `interrupt.previous.status`).
    pub previous_status: String,
    /// Set to anything but `F` to ask for recovery (default `interrupt.recover`).
    pub recover: String,
    /// Set to `T` or `true` to abandon the uncompleted run (default `interrupt.abandon`;
    /// see [`crate::abandon`]). Not part of the interrupt record ([`Self::keys`]).
    pub abandon: String,
    /// The cancel request `is_cancelled()` reads by convention (default `cancelled`); the
    /// engine removes it once the run it cancelled has ended. Not part of the interrupt
    /// record ([`Self::keys`]).
    pub cancelled: String,
}

impl Default for InterruptAnnotations {
    fn default() -> Self {
        InterruptAnnotations {
            reason: "interrupt.reason".into(),
            message: "interrupt.message".into(),
            previous_status: "interrupt.previous.status".into(),
            recover: "interrupt.recover".into(),
            abandon: "interrupt.abandon".into(),
            cancelled: "cancelled".into(),
        }
    }
}

impl InterruptAnnotations {
    /// The value of the recover annotation that means "not yet asked for".
    pub const NOT_RECOVERED: &'static str = "F";

    /// The four keys, in the order reason, message, previous status, recover.
    pub fn keys(&self) -> [&str; 4] {
        [
            &self.reason,
            &self.message,
            &self.previous_status,
            &self.recover,
        ]
    }
}

/// Everything about the engine that an operator may tune. `Default` gives the values of
/// [the engine semantics](../../../docs/SEMANTICS.md).
#[derive(Clone, Debug)]
pub struct WorkflowConfig {
    /// Context key holding the resource name (default `_resourceName`).
    pub resource_name_key: String,
    /// Context key holding the resource namespace (default `_resourceNameSpace`).
    pub resource_namespace_key: String,
    /// Annotation keys of the interrupt record.
    pub annotations: InterruptAnnotations,
    /// How often a running flow checks `is_cancelled()` (default 5 s). A watch can cancel at
    /// once through [`crate::WorkflowManager::cancel`].
    pub cancel_poll_interval: Duration,
    /// How many finished runtimes to keep per resource (default 10); uncompleted runtimes
    /// are never pruned.
    pub retention: usize,
    /// The most bytes a resource's memento store may hold (default 900 KiB), checked before
    /// every write.
    pub byte_budget: usize,
    /// The requeue delay after a step reports `Waiting` without its own hint (default 5 s).
    pub wait_interval: Duration,
    /// The retry policy used where a flow or step does not set its own.
    pub default_retry: RetryPolicy,
    /// How many times a run may be taken up again after the process stopped while one of
    /// its steps ran (a crash, a kill), where the flow's YAML sets no `maxResumes` (default
    /// 10). One more interrupts the run with [`crate::MANY_RESUMES`]. Failures are not
    /// counted here: each step's `maxRetries` bounds its own.
    pub max_resumes: u32,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        WorkflowConfig {
            resource_name_key: "_resourceName".into(),
            resource_namespace_key: "_resourceNameSpace".into(),
            annotations: InterruptAnnotations::default(),
            cancel_poll_interval: Duration::from_secs(5),
            retention: 10,
            byte_budget: 900 * 1024,
            wait_interval: Duration::from_secs(5),
            default_retry: RetryPolicy::default(),
            max_resumes: 10,
        }
    }
}
