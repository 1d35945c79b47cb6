//! The typed context a step reads: the init context merged with all earlier outputs.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::JsonMap;

/// A context key was missing or held a value of the wrong type. The message names the key,
/// the step and the expected type.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The key is not in the context.
    #[error("step `{step}` needs context key `{key}`, which is missing")]
    Missing {
        /// The step that asked.
        step: String,
        /// The key it asked for.
        key: String,
    },
    /// The key holds a value that does not deserialize into the expected type.
    #[error(
        "step `{step}` expected context key `{key}` to be a `{expected}`, found {found}: {source}"
    )]
    WrongType {
        /// The step that asked.
        step: String,
        /// The key it asked for.
        key: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The JSON value found, abbreviated.
        found: String,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// What a step sees in `init`: the flow's init context (resource name and namespace plus the
/// event parameters) merged with the outputs of ALL earlier steps, later keys winning.
#[derive(Clone, Debug)]
pub struct StepContext {
    flow: String,
    step: String,
    values: JsonMap,
    resource_name_key: String,
    resource_namespace_key: String,
    run: u64,
}

impl StepContext {
    /// A context for `step` of `flow`. The two keys name where the resource name and
    /// namespace live (see [`crate::WorkflowConfig`]).
    pub fn new(
        flow: impl Into<String>,
        step: impl Into<String>,
        values: JsonMap,
        resource_name_key: impl Into<String>,
        resource_namespace_key: impl Into<String>,
    ) -> Self {
        StepContext {
            flow: flow.into(),
            step: step.into(),
            values,
            resource_name_key: resource_name_key.into(),
            resource_namespace_key: resource_namespace_key.into(),
            run: 0,
        }
    }

    /// Sets the sequence number of the run this step belongs to.
    #[must_use]
    pub fn with_run(mut self, seq: u64) -> Self {
        self.run = seq;
        self
    }

    /// The sequence number of the run (the `<seq>` of its memento key; 0 outside a run).
    /// Steps use it to tell their own earlier progress from an older run's.
    pub fn run_seq(&self) -> u64 {
        self.run
    }

    /// The flow being run.
    pub fn flow_name(&self) -> &str {
        &self.flow
    }

    /// The step being run.
    pub fn step_name(&self) -> &str {
        &self.step
    }

    /// All values, for steps that want to look around.
    pub fn values(&self) -> &JsonMap {
        &self.values
    }

    /// Reads `key` as a `T`; an error names the key, this step and `T`.
    ///
    /// ```
    /// # use wf_engine::{JsonMap, StepContext};
    /// let mut values = JsonMap::new();
    /// values.insert("replicas".into(), 3.into());
    /// let ctx = StepContext::new("Scale", "Resize", values, "_resourceName", "_resourceNameSpace");
    /// assert_eq!(ctx.get::<u32>("replicas").unwrap(), 3);
    /// let err = ctx.get::<String>("replicas").unwrap_err();
    /// assert!(err.to_string().contains("`replicas`"));
    /// assert!(ctx.get::<u32>("missing").unwrap_err().to_string().contains("step `Resize`"));
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, ContextError> {
        self.get_opt(key)?.ok_or_else(|| ContextError::Missing {
            step: self.step.clone(),
            key: key.to_owned(),
        })
    }

    /// Reads `key` as a `T` when present: `Ok(None)` when missing (or `null`), an error when
    /// present with the wrong type.
    pub fn get_opt<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ContextError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(|source| {
                let mut found = value.to_string();
                if found.len() > 60 {
                    let mut cut = 57;
                    while !found.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    found.truncate(cut);
                    found.push_str("...");
                }
                ContextError::WrongType {
                    step: self.step.clone(),
                    key: key.to_owned(),
                    expected: std::any::type_name::<T>(),
                    found,
                    source,
                }
            }),
        }
    }

    /// The managed resource's name.
    pub fn resource_name(&self) -> Result<String, ContextError> {
        self.get(&self.resource_name_key)
    }

    /// The managed resource's namespace.
    pub fn resource_namespace(&self) -> Result<String, ContextError> {
        self.get(&self.resource_namespace_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(values: Value) -> StepContext {
        let Value::Object(map) = values else {
            panic!("object expected")
        };
        StepContext::new("Flow", "Step", map, "_resourceName", "_resourceNameSpace")
    }

    #[test]
    fn missing_context_key_error_names_key_and_step() {
        let err = ctx(json!({})).get::<String>("insId").unwrap_err();
        assert!(matches!(err, ContextError::Missing { .. }));
        assert_eq!(
            err.to_string(),
            "step `Step` needs context key `insId`, which is missing"
        );
    }

    #[test]
    fn wrong_type_context_value_error_names_key_step_and_type() {
        let err = ctx(json!({"modifyClass": "yes"}))
            .get::<bool>("modifyClass")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`modifyClass`"), "{text}");
        assert!(text.contains("step `Step`"), "{text}");
        assert!(text.contains("`bool`"), "{text}");
        assert!(text.contains("\"yes\""), "{text}");
    }

    #[test]
    fn optional_key_is_none_when_missing_or_null() {
        let c = ctx(json!({"a": null}));
        assert_eq!(c.get_opt::<u8>("a").unwrap(), None);
        assert_eq!(c.get_opt::<u8>("b").unwrap(), None);
    }

    #[test]
    fn resource_identity_comes_from_the_configured_keys() {
        let c = ctx(json!({"_resourceName": "c1", "_resourceNameSpace": "ns"}));
        assert_eq!(c.resource_name().unwrap(), "c1");
        assert_eq!(c.resource_namespace().unwrap(), "ns");
    }
}
