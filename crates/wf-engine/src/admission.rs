//! Admission: the check between "a checker fired" and "the resource leaves its stable state"
//! ([semantics §3](../../../docs/SEMANTICS.md#3-the-state-machine)).
//!
//! A checker only says that a request is there; an [`Admission`] says whether it can be
//! served. It looks at what can be known up front (the request itself, the world through
//! side-effect-free reads) and answers [`Verdict::Admit`] (leave the stable state and run
//! the flow), [`Verdict::Refuse`] (no state change, no run: the [`Refusal`] is recorded on
//! the resource and delivered to the hooks) or [`Verdict::Satisfied`] (the request is
//! already met: the admission consumed it, no flow starts).

use async_trait::async_trait;

use crate::{BoxError, Event, ResourceKey, State, StateResource};

/// Why a request was refused: a short machine-readable reason (e.g. `UNKNOWN_CLASS`) and a
/// message for a person that says what to change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// The reason, e.g. `UNKNOWN_CLASS`.
    pub reason: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Refusal {
    /// A refusal with `reason` and `message`.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// What an [`Admission`] decided about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it: the resource moves to the target state.
    Admit,
    /// Do not serve it: the resource stays where it is and the refusal is recorded.
    Refuse(Refusal),
    /// The request is already met; the admission consumed it (e.g. removed the annotation
    /// that asked for it). No flow starts; the machine looks again at once.
    Satisfied,
}

/// Decides whether a request a checker found may leave the stable state. Registered with
/// [`crate::StateMachine::register_admission`].
#[async_trait]
pub trait Admission<R: StateResource>: Send + Sync {
    /// The verdict on `event` (fired from `resource`, a fresh copy) moving it to `target`.
    /// An error is neither an admission nor a refusal: the reconcile fails and is retried.
    async fn admit(&self, resource: &R, event: &Event, target: &State)
        -> Result<Verdict, BoxError>;
}

/// What a hook is told about a refusal.
#[derive(Clone, Copy, Debug)]
pub struct RefusalEvent<'a> {
    /// The resource type of the manager (e.g. `shared`).
    pub resource_type: &'a str,
    /// The resource.
    pub resource: &'a ResourceKey,
    /// The stable state the resource stays in.
    pub state: &'a State,
    /// The event the checker fired.
    pub event: &'a str,
    /// The state it would have moved to.
    pub target: &'a State,
    /// The flow the target's entry runs, if it runs one.
    pub flow: Option<&'a str>,
    /// Why.
    pub refusal: &'a Refusal,
}
