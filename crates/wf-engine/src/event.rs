//! Events: what an event checker returns when a resource must leave a stable state.

use serde_json::Value;

use crate::JsonMap;

/// An event fired by a checker: a name and the parameters that become the new flow's
/// init context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// The event name; the state machine skips events whose name it was told to ignore.
    pub name: String,
    /// Parameters merged into the init context of the flow the event starts.
    pub params: JsonMap,
}

impl Event {
    /// An event with no parameters.
    pub fn new(name: impl Into<String>) -> Self {
        Event {
            name: name.into(),
            params: JsonMap::new(),
        }
    }

    /// Adds a parameter (builder style).
    #[must_use]
    pub fn with_param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_params_are_kept_in_order_given() {
        let event = Event::new("ModifyClass").with_param("modifyClass", true);
        assert_eq!(event.name, "ModifyClass");
        assert_eq!(event.params.get("modifyClass"), Some(&Value::Bool(true)));
    }
}
