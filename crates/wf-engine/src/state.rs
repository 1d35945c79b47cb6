//! The state string kept on a resource, and the well-known states.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A resource state such as `Running` or `Creating`.
///
/// States are plain strings on the wire (`status.clusterStatus` for an `MPDCluster`), so any
/// operator can define its own; the constants below are the ones the engine itself knows.
/// An empty state is read as [`State::CREATING`] by the state machine.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct State(Cow<'static, str>);

impl State {
    /// The first state of a new resource (stable).
    pub const INIT: State = State(Cow::Borrowed("Init"));
    /// The resource is being created (unstable); an empty state means this too.
    pub const CREATING: State = State(Cow::Borrowed("Creating"));
    /// Nothing to do (stable).
    pub const RUNNING: State = State(Cow::Borrowed("Running"));
    /// A flow was interrupted and waits for a human (stable).
    pub const INTERRUPT: State = State(Cow::Borrowed("Interrupt"));
    /// The resource is being rebuilt (unstable); recovery never retries into it.
    pub const REBUILD: State = State(Cow::Borrowed("Rebuild"));

    /// A state from any string.
    pub fn new(name: impl Into<String>) -> Self {
        State(Cow::Owned(name.into()))
    }

    /// A state from a static string, usable in `const` items.
    pub const fn from_static(name: &'static str) -> Self {
        State(Cow::Borrowed(name))
    }

    /// The state as it is stored on the resource.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the stored string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The state the state machine acts on: an empty state counts as [`State::CREATING`].
    pub fn effective(&self) -> State {
        if self.is_empty() {
            State::CREATING
        } else {
            self.clone()
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for State {
    fn from(value: &str) -> Self {
        State::new(value)
    }
}

impl From<String> for State {
    fn from(value: String) -> Self {
        State::new(value)
    }
}

impl PartialEq<str> for State {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for State {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_state_is_treated_as_creating() {
        assert_eq!(State::new("").effective(), State::CREATING);
        assert_eq!(State::RUNNING.effective(), State::RUNNING);
    }

    #[test]
    fn state_serializes_as_a_plain_string() {
        let json = serde_json::to_string(&State::INTERRUPT).unwrap();
        assert_eq!(json, "\"Interrupt\"");
        let back: State = serde_json::from_str("\"ModifyClass\"").unwrap();
        assert_eq!(back, "ModifyClass");
    }
}
