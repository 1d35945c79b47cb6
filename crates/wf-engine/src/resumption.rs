//! Resumption: which uncompleted run the entry of an unstable state finishes before it
//! starts a new one, and what it did with the others
//! ([semantics §7](../../../docs/SEMANTICS.md#7-resumption-which-run-an-entry-finishes)).

use std::fmt;

use crate::RunReport;

/// Recorded as the error of a run that was closed because a newer run of the same flow
/// started: such a run is never resumed.
pub const SUPERSEDED: &str = "SUPERSEDED";
/// Recorded as the error of a run of another flow that an entry with
/// [`Resumption::AbandonOthers`] closed.
pub const ABANDONED: &str = "ABANDONED";

/// Which uncompleted run the entry of an unstable state finishes before it looks at its
/// trigger again. Every policy only considers the newest uncompleted run of a flow: an
/// older one of the same flow is closed ([`SUPERSEDED`]) and never resumed.
///
/// ```
/// use wf_engine::Resumption;
/// assert_eq!(Resumption::default(), Resumption::ThisFlow);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Resumption {
    /// Finish the newest uncompleted run of *any* flow first (the original engine's
    /// behaviour): after a crash, the entry of whatever state the resource is in completes
    /// the interrupted run, even one of another flow, then checks its own trigger.
    AnyFlow,
    /// Finish only an uncompleted run of this entry's own flow. Runs of other flows are left
    /// as they are (neither run nor closed) and named in
    /// [`ResumeReport::left_alone`]; each resumes when the entry of its own flow runs.
    /// The default: an entry never runs steps written for another state, and never throws
    /// a run away.
    #[default]
    ThisFlow,
    /// Finish only an uncompleted run of this flow, and close every uncompleted run of
    /// another flow as `failedAndCompleted` with the reason [`ABANDONED`] (named in
    /// [`ResumeReport::abandoned`]): for flows that replace whatever was going on, such as
    /// a rebuild.
    AbandonOthers,
}

impl Resumption {
    /// A short name, for logs: `any-flow`, `this-flow`, `abandon-others`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resumption::AnyFlow => "any-flow",
            Resumption::ThisFlow => "this-flow",
            Resumption::AbandonOthers => "abandon-others",
        }
    }
}

impl fmt::Display for Resumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored run, by sequence number and flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRef {
    /// The run's sequence number (the `<seq>` of its memento key).
    pub seq: u64,
    /// Its flow.
    pub flow: String,
}

impl fmt::Display for RunRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run {} of flow `{}`", self.seq, self.flow)
    }
}

/// What [`crate::ResourceWorkflow::run_last_uncompleted`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeReport {
    /// The run that was finished or continued, and how it ended this time; `None` when
    /// there was none to resume under the policy.
    pub resumed: Option<RunReport>,
    /// Uncompleted runs of other flows that were not resumed and stay uncompleted
    /// ([`Resumption::ThisFlow`]), newest first.
    pub left_alone: Vec<RunRef>,
    /// Uncompleted runs of other flows that were closed ([`Resumption::AbandonOthers`]),
    /// newest first.
    pub abandoned: Vec<RunRef>,
    /// Older uncompleted runs that were closed because a newer run of their flow exists.
    pub superseded: Vec<RunRef>,
}
