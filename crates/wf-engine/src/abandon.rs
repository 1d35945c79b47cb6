//! Abandoning a run on request
//! ([semantics §10](../../../docs/SEMANTICS.md#10-recovery-after-an-interrupt)): the way out
//! of a run that can never finish. A resource asks for it with the `interrupt.abandon`
//! annotation; the next reconcile, under the resource's lock and before recovery, closes
//! the run(s) [`runs_to_abandon`] names as `failedAndCompleted` with the reason
//! [`crate::ABANDONED`], after the operator's [`AbandonHandler`] cleaned up what the run
//! left, clears the interrupt record and the request, and moves the resource to `Running`:
//! the next request starts a new run instead of resuming the old one.

use async_trait::async_trait;

use crate::{BoxError, FlowStatus, StateResource, StoredRuntime, WorkflowRuntime, ABANDONED};
use crate::{InterruptAnnotations, SUPERSEDED};

/// One run being abandoned, as an [`AbandonHandler`] is told.
#[derive(Clone, Copy, Debug)]
pub struct AbandonedRun<'a> {
    /// The run's sequence number.
    pub seq: u64,
    /// The run as stored before it is closed (its flow, its steps, their outputs).
    pub runtime: &'a WorkflowRuntime,
}

/// The cleanup a flow needs when one of its runs is abandoned (temporary objects it made,
/// plans it recorded), registered with
/// [`crate::WorkflowManagerBuilder::on_abandon`]; one handler serves every flow and picks
/// by `run.runtime.flow_name`.
///
/// It runs before the run is closed; an error leaves the run and the request as they are
/// (the next reconcile tries again), so it must be idempotent.
#[async_trait]
pub trait AbandonHandler<R: StateResource>: Send + Sync {
    /// Cleans up after `run` of `resource`.
    async fn on_abandon(&self, resource: &R, run: AbandonedRun<'_>) -> Result<(), BoxError>;
}

/// Whether an annotation value asks to abandon: `T` or `true`.
pub fn abandon_requested(value: Option<&str>) -> bool {
    matches!(value, Some("T" | "true"))
}

/// Whether a finished run was closed by the engine without an interrupt (superseded by a
/// newer run of its flow, or abandoned): such a run is not "the interrupted run".
pub fn closed_by_engine(runtime: &WorkflowRuntime) -> bool {
    runtime.error_message.starts_with(ABANDONED) || runtime.error_message.starts_with(SUPERSEDED)
}

/// The runs an abandon closes, newest first, out of `runs` (a resource's runs, any order):
/// every run not finished, and, when the resource is `interrupted`, the interrupted run
/// (the newest run, when it is `failedAndCompleted` and was not closed by the engine). An
/// empty list means there is nothing to abandon.
pub fn runs_to_abandon(runs: &[StoredRuntime], interrupted: bool) -> Vec<&StoredRuntime> {
    let newest = runs.iter().map(|r| r.seq).max();
    let mut picked: Vec<&StoredRuntime> = runs
        .iter()
        .filter(|r| {
            !r.runtime.flow_status.is_finished()
                || (interrupted
                    && Some(r.seq) == newest
                    && r.runtime.flow_status == FlowStatus::FailedAndCompleted
                    && !closed_by_engine(&r.runtime))
        })
        .collect();
    picked.sort_by_key(|r| std::cmp::Reverse(r.seq));
    picked
}

/// What follows [`ABANDONED`] in the reason of a run abandoned on request.
const ON_REQUEST: &str = ": abandoned on request";

/// Whether `runtime` was abandoned on request (not closed by an entry's
/// [`crate::Resumption::AbandonOthers`]).
pub fn abandoned_on_request(runtime: &WorkflowRuntime) -> bool {
    runtime
        .error_message
        .strip_prefix(ABANDONED)
        .is_some_and(|rest| rest.starts_with(ON_REQUEST))
}

/// The reason an abandoned run records: [`ABANDONED`], the request, and the error the run
/// had (its interrupt), if any.
pub(crate) fn abandon_reason(keys: &InterruptAnnotations, runtime: &WorkflowRuntime) -> String {
    let mut reason = format!("{ABANDONED}{ON_REQUEST} (`{}`)", keys.abandon);
    if !runtime.error_message.is_empty() {
        reason.push_str("; it had failed with: ");
        reason.push_str(&runtime.error_message);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FlowMeta, JsonMap, RetryPolicy};

    fn run(seq: u64, status: FlowStatus, error: &str) -> StoredRuntime {
        let meta = FlowMeta {
            name: "F".into(),
            recover_from_first_step: false,
            steps: Vec::new(),
            retry: RetryPolicy::default(),
            max_resumes: None,
            source: std::path::PathBuf::new(),
        };
        let mut runtime = WorkflowRuntime::new(&meta, JsonMap::new(), chrono::Utc::now());
        runtime.flow_status = status;
        runtime.error_message = error.to_owned();
        StoredRuntime {
            seq,
            key: format!("{seq}-F"),
            runtime,
        }
    }

    fn seqs(runs: &[&StoredRuntime]) -> Vec<u64> {
        runs.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn only_t_and_true_ask_to_abandon() {
        assert!(abandon_requested(Some("T")));
        assert!(abandon_requested(Some("true")));
        for no in [None, Some(""), Some("F"), Some("false"), Some("yes")] {
            assert!(!abandon_requested(no), "{no:?}");
        }
    }

    #[test]
    fn an_interrupted_resource_abandons_its_interrupted_run_and_every_unfinished_one() {
        let runs = [
            run(1, FlowStatus::Completed, ""),
            run(2, FlowStatus::Running, ""),
            run(3, FlowStatus::FailedAndCompleted, "NO_AVAILABLE_NODE: full"),
        ];
        assert_eq!(seqs(&runs_to_abandon(&runs, true)), [3, 2]);
        assert_eq!(
            seqs(&runs_to_abandon(&runs, false)),
            [2],
            "not interrupted: the failed run is history, not stuck"
        );
    }

    #[test]
    fn a_run_closed_by_the_engine_or_an_older_failure_is_not_abandoned_again() {
        let abandoned = format!("{ABANDONED}: abandoned on request");
        let runs = [
            run(1, FlowStatus::FailedAndCompleted, "MANY_RETRY: old"),
            run(2, FlowStatus::FailedAndCompleted, &abandoned),
        ];
        assert!(runs_to_abandon(&runs, true).is_empty());
        let superseded = [run(4, FlowStatus::FailedAndCompleted, SUPERSEDED)];
        assert!(runs_to_abandon(&superseded, true).is_empty());
        assert!(runs_to_abandon(&[], true).is_empty());
    }

    #[test]
    fn the_reason_keeps_the_error_the_run_had() {
        let keys = InterruptAnnotations::default();
        let failed = run(3, FlowStatus::FailedAndCompleted, "NO_AVAILABLE_NODE: full");
        let reason = abandon_reason(&keys, &failed.runtime);
        assert!(reason.starts_with(ABANDONED), "{reason}");
        assert!(reason.contains("interrupt.abandon"), "{reason}");
        assert!(reason.ends_with("NO_AVAILABLE_NODE: full"), "{reason}");
        let mut closed = failed.runtime.clone();
        closed.error_message = reason;
        assert!(abandoned_on_request(&closed));
        assert!(!abandoned_on_request(&failed.runtime));
        closed.error_message = format!("{ABANDONED}: the entry of flow `X` abandons …");
        assert!(
            !abandoned_on_request(&closed),
            "an entry's abandon is not a request"
        );
    }
}
