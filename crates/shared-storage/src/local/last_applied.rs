//! `kubectl apply`'s three-way merge, for `local`'s documents: re-applying a file changes
//! only what changed in the file since it was last applied, so what the operator rewrote
//! since (a served request cleared, a class recorded) stays as the operator left it.
//!
//! The applied part of a document (labels, annotations and spec) is kept on the object in
//! the annotation [`LAST_APPLIED`], as `kubectl apply` does. The next apply computes the
//! JSON merge patch (RFC 7386) from that configuration to the new document and applies it
//! to the stored object: fields the file did not change are not written, fields removed
//! from the file are removed from the object. Lists are replaced whole, as for custom
//! resources on an API server.
//!
//! ```
//! use serde_json::json;
//! use shared_storage::local::last_applied::{diff, merge_patch};
//!
//! let last = json!({"spec": {"followerNum": 2, "classInfoModifyTo": {"className": "large"}}});
//! let new = json!({"spec": {"followerNum": 2, "classInfoModifyTo": {"className": "large"}}});
//! // The operator served the request and cleared it; the file did not change.
//! let mut live = json!({"spec": {"followerNum": 2, "classInfoModifyTo": {"className": ""}}});
//! merge_patch(&mut live, &diff(&last, &new));
//! assert_eq!(live["spec"]["classInfoModifyTo"]["className"], "");
//! ```

use serde_json::{Map, Value};

use crate::crd::MPDCluster;

/// The annotation holding the configuration last applied (the name `kubectl` uses).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The applied part of `doc`: `metadata.labels`, `metadata.annotations` (without
/// [`LAST_APPLIED`]) and `spec`, as JSON.
pub fn applied_config(doc: &MPDCluster) -> Result<Value, serde_json::Error> {
    let mut annotations = doc.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    Ok(serde_json::json!({
        "metadata": {
            "labels": doc.metadata.labels.clone().unwrap_or_default(),
            "annotations": annotations,
        },
        "spec": serde_json::to_value(&doc.spec)?,
    }))
}

/// The JSON merge patch that turns `from` into `to`: changed and added keys with their new
/// values, removed keys as `null`; objects are compared key by key, anything else whole.
pub fn diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            let mut patch = Map::new();
            for (key, old) in from {
                match to.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        patch.insert(key.clone(), diff(old, new));
                    }
                    Some(_) => {}
                }
            }
            for (key, new) in to {
                if !from.contains_key(key) {
                    patch.insert(key.clone(), new.clone());
                }
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// `live` with `doc` applied over `last` (the configuration of the previous apply), and
/// `doc`'s configuration recorded as the new [`LAST_APPLIED`]. Without a previous
/// configuration every field of `doc` is set (its spec replaces the stored one; its labels
/// and annotations are merged into the stored ones).
pub fn three_way(
    live: &MPDCluster,
    last: Option<&Value>,
    doc: &MPDCluster,
) -> Result<MPDCluster, serde_json::Error> {
    let new = applied_config(doc)?;
    let mut next = live.clone();
    match last {
        Some(last) => {
            let mut value = serde_json::to_value(live)?;
            merge_patch(&mut value, &diff(last, &new));
            next = serde_json::from_value(value)?;
        }
        None => {
            next.spec = doc.spec.clone();
            for (into, from) in [
                (&mut next.metadata.labels, &doc.metadata.labels),
                (&mut next.metadata.annotations, &doc.metadata.annotations),
            ] {
                if let Some(from) = from.as_ref().filter(|m| !m.is_empty()) {
                    into.get_or_insert_default().extend(from.clone());
                }
            }
        }
    }
    let annotations = next.metadata.annotations.get_or_insert_default();
    annotations.insert(LAST_APPLIED.to_owned(), new.to_string());
    for map in [&mut next.metadata.labels, &mut next.metadata.annotations] {
        if map.as_ref().is_some_and(|m| m.is_empty()) {
            *map = None;
        }
    }
    Ok(next)
}

/// The configuration recorded on `live` by the previous apply, if any (an unreadable one
/// counts as none: the document is then applied whole).
pub fn recorded(live: &MPDCluster) -> Option<Value> {
    let text = live.metadata.annotations.as_ref()?.get(LAST_APPLIED)?;
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_patch_holds_changes_additions_and_removals_only() {
        let from = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "gone": true});
        let to = json!({"a": 1, "b": {"x": 1, "y": 3}, "c": [1], "new": "n"});
        assert_eq!(
            diff(&from, &to),
            json!({"b": {"y": 3}, "c": [1], "gone": null, "new": "n"})
        );
        assert_eq!(diff(&to, &to), json!({}));
    }

    #[test]
    fn a_merge_patch_sets_replaces_and_removes() {
        let mut target = json!({"a": 1, "b": {"x": 1, "y": 2}, "keep": 0});
        merge_patch(&mut target, &json!({"a": null, "b": {"y": 3, "z": 4}}));
        assert_eq!(target, json!({"b": {"x": 1, "y": 3, "z": 4}, "keep": 0}));
    }
}
