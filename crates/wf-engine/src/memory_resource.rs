//! An in-memory [`StateResource`]: for tests, examples and embedded use. Lost on exit; see
//! [`crate::FileResourceStore`] for resources that survive a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AnnotationPatch, Refusal, ResourceError, ResourceKey, State, StateResource};

/// What the store keeps of a resource (also the JSON document of a
/// [`crate::FileResourceStore`] file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceRecord {
    /// The state.
    pub state: State,
    /// The annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Free-form desired state, for the operator's own use.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub spec: Value,
    /// Whether the resource is being deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// The refusal of the request the resource carries, if it was refused
    /// ([`StateResource::record_refusal`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

impl ResourceRecord {
    /// Applies an annotation patch: `Some` sets a key, `None` removes it.
    pub(crate) fn apply(&mut self, patch: &AnnotationPatch) {
        for (key, value) in patch {
            match value {
                Some(v) => self.annotations.insert(key.clone(), v.clone()),
                None => self.annotations.remove(key),
            };
        }
    }

    /// Whether the record says the resource is cancelled: being deleted, or annotated
    /// `cancelled: "true"`.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.deleting || self.annotations.get("cancelled").map(String::as_str) == Some("true")
    }
}

/// Resources in memory, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct MemoryResourceStore {
    records: Arc<Mutex<HashMap<ResourceKey, ResourceRecord>>>,
}

impl MemoryResourceStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces a resource and returns a snapshot of it.
    pub fn insert(&self, key: ResourceKey, record: ResourceRecord) -> MemoryResource {
        self.lock().insert(key.clone(), record.clone());
        MemoryResource {
            store: self.clone(),
            key,
            record,
        }
    }

    /// A snapshot of a resource.
    pub fn get(&self, key: &ResourceKey) -> Option<MemoryResource> {
        let record = self.lock().get(key).cloned()?;
        Some(MemoryResource {
            store: self.clone(),
            key: key.clone(),
            record,
        })
    }

    /// A snapshot of a resource, or [`ResourceError::NotFound`]: what a step calls with
    /// [`crate::StepContext::resource_key`].
    pub fn fetch(&self, key: &ResourceKey) -> Result<MemoryResource, ResourceError> {
        self.get(key)
            .ok_or_else(|| ResourceError::NotFound(key.clone()))
    }

    /// Changes a resource in place and returns the new snapshot.
    pub fn update(
        &self,
        key: &ResourceKey,
        change: impl FnOnce(&mut ResourceRecord),
    ) -> Result<MemoryResource, ResourceError> {
        let mut records = self.lock();
        let record = records
            .get_mut(key)
            .ok_or_else(|| ResourceError::NotFound(key.clone()))?;
        change(record);
        Ok(MemoryResource {
            store: self.clone(),
            key: key.clone(),
            record: record.clone(),
        })
    }

    /// Deletes a resource; returns whether it existed.
    pub fn remove(&self, key: &ResourceKey) -> bool {
        self.lock().remove(key).is_some()
    }

    /// The keys of all resources, sorted.
    pub fn keys(&self) -> Vec<ResourceKey> {
        let mut keys: Vec<_> = self.lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ResourceKey, ResourceRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A snapshot of one resource of a [`MemoryResourceStore`].
#[derive(Clone, Debug)]
pub struct MemoryResource {
    store: MemoryResourceStore,
    key: ResourceKey,
    record: ResourceRecord,
}

impl MemoryResource {
    /// The snapshot's record.
    pub fn record(&self) -> &ResourceRecord {
        &self.record
    }

    /// The store the resource lives in.
    pub fn store(&self) -> &MemoryResourceStore {
        &self.store
    }
}

#[async_trait]
impl StateResource for MemoryResource {
    fn name(&self) -> &str {
        &self.key.name
    }

    fn namespace(&self) -> &str {
        &self.key.namespace
    }

    fn state(&self) -> State {
        self.record.state.clone()
    }

    fn annotation(&self, key: &str) -> Option<String> {
        self.record.annotations.get(key).cloned()
    }

    async fn fetch(&self) -> Result<Self, ResourceError> {
        self.store
            .get(&self.key)
            .ok_or_else(|| ResourceError::NotFound(self.key.clone()))
    }

    async fn update_state(&self, state: State) -> Result<Self, ResourceError> {
        self.store.update(&self.key, |r| r.state = state)
    }

    async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError> {
        self.store.update(&self.key, |r| r.apply(patch))
    }

    async fn is_cancelled(&self) -> bool {
        self.store
            .get(&self.key)
            .is_none_or(|fresh| fresh.record.is_cancelled())
    }

    fn refusal(&self) -> Option<Refusal> {
        self.record.refusal.clone()
    }

    async fn record_refusal(&self, refusal: Option<&Refusal>) -> Result<Self, ResourceError> {
        self.store
            .update(&self.key, |r| r.refusal = refusal.cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn is_cancelled_on_missing_deleting_or_annotated() {
        let store = MemoryResourceStore::new();
        let key = ResourceKey::new("ns", "c1");
        let res = store.insert(key.clone(), ResourceRecord::default());
        assert!(!res.is_cancelled().await);
        store
            .update(&key, |r| {
                r.annotations.insert("cancelled".into(), "true".into());
            })
            .unwrap();
        assert!(res.is_cancelled().await);
        store.update(&key, |r| r.annotations.clear()).unwrap();
        store.update(&key, |r| r.deleting = true).unwrap();
        assert!(res.is_cancelled().await);
        store.remove(&key);
        assert!(res.is_cancelled().await);
        assert!(res.fetch().await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn update_state_persists_and_returns_the_fresh_copy() {
        let store = MemoryResourceStore::new();
        let key = ResourceKey::new("ns", "c1");
        let res = store.insert(key.clone(), ResourceRecord::default());
        let fresh = res.update_state(State::RUNNING).await.unwrap();
        assert_eq!(fresh.state(), State::RUNNING);
        assert_eq!(store.get(&key).unwrap().state(), State::RUNNING);
        let patched = res
            .patch_annotations(&AnnotationPatch::from([(
                "a".to_string(),
                Some("1".to_string()),
            )]))
            .await
            .unwrap();
        assert_eq!(patched.annotation("a").as_deref(), Some("1"));
    }
}
