//! The typed context a step reads: the init context merged with all earlier outputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::{JsonMap, ResourceKey};

/// A context key was missing or held a value of the wrong type, or a step's output could
/// not be read or written. The message names the key or step and the expected type.
///
/// These are programming errors, not transient ones: a step that fails with one (directly
/// or anywhere in its error's source chain) is interrupted with
/// [`crate::BAD_CONTEXT`] instead of being retried.
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
    /// [`StepContext::output`] asked for the output of a step that did not run before this
    /// one in this run.
    #[error(
        "step `{step}` needs the output of step `{from}`, which did not complete before it \
         in this run"
    )]
    NoOutput {
        /// The step that asked.
        step: String,
        /// The step whose output it asked for.
        from: String,
    },
    /// The output of an earlier step does not deserialize into the type asked for.
    #[error("step `{step}` expected the output of step `{from}` to be a `{expected}`: {source}")]
    WrongOutput {
        /// The step that asked.
        step: String,
        /// The step whose output it asked for.
        from: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A value given to [`crate::StepOutcome::done_with`] does not serialize into a JSON
    /// object (a struct or a map with string keys).
    #[error("a step output must serialize into a JSON object; a `{type_name}` did not: {reason}")]
    OutputNotAnObject {
        /// The Rust type of the value.
        type_name: &'static str,
        /// What serialization produced or why it failed.
        reason: String,
    },
}

/// Serializes `value` into a step output: a JSON object, or an error naming the type.
pub(crate) fn output_map<T: Serialize + ?Sized>(value: &T) -> Result<JsonMap, ContextError> {
    let type_name = std::any::type_name::<T>();
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ContextError::OutputNotAnObject {
            type_name,
            reason: format!("it serialized into {}", abbreviate(other.to_string())),
        }),
        Err(err) => Err(ContextError::OutputNotAnObject {
            type_name,
            reason: err.to_string(),
        }),
    }
}

fn abbreviate(mut text: String) -> String {
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// What a step sees in `init`: the flow's init context (resource name and namespace plus the
/// event parameters) merged with the outputs of ALL earlier steps, later keys winning.
#[derive(Clone, Debug)]
pub struct StepContext {
    flow: String,
    step: String,
    /// Shared: the steps of a run that read no earlier output all see the init context.
    values: Arc<JsonMap>,
    outputs: BTreeMap<String, JsonMap>,
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
        Self::with_shared_values(
            flow,
            step,
            Arc::new(values),
            resource_name_key,
            resource_namespace_key,
        )
    }

    /// [`StepContext::new`] over values shared with other contexts (the engine hands every
    /// step that reads no earlier output the run's init context this way, without a copy).
    pub fn with_shared_values(
        flow: impl Into<String>,
        step: impl Into<String>,
        values: Arc<JsonMap>,
        resource_name_key: impl Into<String>,
        resource_namespace_key: impl Into<String>,
    ) -> Self {
        StepContext {
            flow: flow.into(),
            step: step.into(),
            values,
            outputs: BTreeMap::new(),
            resource_name_key: resource_name_key.into(),
            resource_namespace_key: resource_namespace_key.into(),
            run: 0,
        }
    }

    /// Sets the outputs of the earlier steps, by step name, for [`StepContext::output`].
    /// (Their keys are expected in the merged values too; the engine does both.)
    #[must_use]
    pub fn with_outputs(mut self, outputs: BTreeMap<String, JsonMap>) -> Self {
        self.outputs = outputs;
        self
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
            Some(value) => {
                T::deserialize(value)
                    .map(Some)
                    .map_err(|source| ContextError::WrongType {
                        step: self.step.clone(),
                        key: key.to_owned(),
                        expected: std::any::type_name::<T>(),
                        found: abbreviate(value.to_string()),
                        source,
                    })
            }
        }
    }

    /// The whole output of the earlier step `step` of this run, as a `T` (usually a serde
    /// struct the step returned with [`crate::StepOutcome::done_with`]). An error names
    /// both steps: when `step` did not complete before this one or completed without an
    /// output, or its output is not a `T`.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use wf_engine::{JsonMap, StepContext};
    /// #[derive(Debug, serde::Deserialize)]
    /// #[serde(rename_all = "camelCase")]
    /// struct Allocated { bucket_id: String }
    ///
    /// let mut out = JsonMap::new();
    /// out.insert("bucketId".into(), "b-1".into());
    /// let ctx = StepContext::new("Create", "MarkRunning", out.clone(), "_resourceName", "_resourceNameSpace")
    ///     .with_outputs(BTreeMap::from([("Allocate".to_string(), out)]));
    /// assert_eq!(ctx.output::<Allocated>("Allocate").unwrap().bucket_id, "b-1");
    /// assert!(ctx.output::<Allocated>("Nope").unwrap_err().to_string().contains("`Nope`"));
    /// ```
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<T, ContextError> {
        let Some(map) = self.outputs.get(step) else {
            return Err(ContextError::NoOutput {
                step: self.step.clone(),
                from: step.to_owned(),
            });
        };
        T::deserialize(map).map_err(|source| ContextError::WrongOutput {
            step: self.step.clone(),
            from: step.to_owned(),
            expected: std::any::type_name::<T>(),
            source,
        })
    }

    /// The managed resource's name.
    pub fn resource_name(&self) -> Result<String, ContextError> {
        self.get(&self.resource_name_key)
    }

    /// The managed resource's namespace.
    pub fn resource_namespace(&self) -> Result<String, ContextError> {
        self.get(&self.resource_namespace_key)
    }

    /// The managed resource's namespace and name: what a step looks the resource up by.
    pub fn resource_key(&self) -> Result<ResourceKey, ContextError> {
        Ok(ResourceKey::new(
            self.resource_namespace()?,
            self.resource_name()?,
        ))
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
        assert_eq!(c.resource_key().unwrap(), ResourceKey::new("ns", "c1"));
        let missing = ctx(json!({"_resourceName": "c1"}))
            .resource_key()
            .unwrap_err();
        assert!(
            missing.to_string().contains("`_resourceNameSpace`"),
            "{missing}"
        );
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Allocated {
        bucket_id: String,
        size_gib: u64,
    }

    #[test]
    fn typed_output_of_an_earlier_step_round_trips_through_a_serde_struct() {
        let written = Allocated {
            bucket_id: "b-1".into(),
            size_gib: 20,
        };
        let map = output_map(&written).unwrap();
        assert_eq!(
            Value::Object(map.clone()),
            json!({"bucketId": "b-1", "sizeGib": 20})
        );
        let c = ctx(json!({})).with_outputs(BTreeMap::from([("Allocate".to_string(), map)]));
        assert_eq!(c.output::<Allocated>("Allocate").unwrap(), written);
    }

    #[test]
    fn typed_output_errors_name_both_steps_and_the_type() {
        let c = ctx(json!({})).with_outputs(BTreeMap::from([(
            "Allocate".to_string(),
            JsonMap::from_iter([("bucketId".to_string(), json!(7))]),
        )]));
        let missing = c.output::<Allocated>("Resize").unwrap_err();
        assert!(matches!(missing, ContextError::NoOutput { .. }));
        assert!(missing
            .to_string()
            .contains("step `Step` needs the output of step `Resize`"));
        let wrong = c.output::<Allocated>("Allocate").unwrap_err();
        let text = wrong.to_string();
        assert!(
            text.contains("`Allocate`") && text.contains("Allocated"),
            "{text}"
        );
    }

    #[test]
    fn an_output_that_is_not_a_json_object_is_an_error_naming_its_type() {
        let err = output_map(&42_u32).unwrap_err();
        assert!(matches!(err, ContextError::OutputNotAnObject { .. }));
        assert!(err.to_string().contains("`u32`"), "{err}");
    }
}
