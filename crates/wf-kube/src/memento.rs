//! Memento storage in a ConfigMap `<name>-workflow`
//! ([semantics §12](../../../docs/SEMANTICS.md#12-persistence-retention-and-the-byte-budget)).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Api, Resource};
use tokio::sync::Mutex;
use wf_engine::memento::{
    caretaker_name, MementoEntries, MementoError, MementoStorage, MementoStorageFactory,
    MementoWrite,
};
use wf_engine::{Backoff, ResourceKey};

use crate::resource::{status_code, KubeObject, ObjectSnapshot};

/// The label that ties a memento ConfigMap to its resource.
pub const DOMAIN_LABEL: &str = "flowJobsDomain";

/// How many times a write is tried when it keeps conflicting.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The pause after a conflict: 10 ms, doubling per attempt up to 1 s, jittered, so two
/// writers that keep colliding fall out of step instead of one starving.
pub const DEFAULT_CONFLICT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(10),
    max: Duration::from_secs(1),
    factor: 2.0,
};

/// One resource's memento store: the ConfigMap `<name>-workflow` in its namespace.
///
/// The ConfigMap (with its `resourceVersion`) is cached after the first read; a write is a
/// single replace carrying that version. On a 409 the ConfigMap is re-read and only this
/// write's change (its key and its removals) is applied again, so another writer's keys are
/// never lost.
///
/// `load_all` reads the ConfigMap once and then answers from the cache, so a store kept by
/// [`ConfigMapMementoFactory`] costs no read per reconcile. The cache is refreshed whenever a
/// write conflicts, and dropped after any other failed write. The data is cached as
/// [`MementoEntries`], so a load (`load_entries`, what the engine calls) shares it instead of
/// copying every stored run, and a write builds its request from the cache plus its change. This assumes the usual setup:
/// one operator (holding the engine's per-resource lock) drives a resource's workflows; a
/// second writer is detected by the 409 and never clobbered.
pub struct ConfigMapMementoStorage {
    api: Api<ConfigMap>,
    name: String,
    resource_name: String,
    owner: OwnerReference,
    max_attempts: u32,
    conflict_backoff: Backoff,
    /// `None`: not read yet. `Some(None)`: read, does not exist. `Some(Some(_))`: cached.
    cache: Mutex<Option<Option<Cached>>>,
}

/// The ConfigMap as last read or written: its metadata (with the `resourceVersion` the next
/// write carries), and its data as entries.
struct Cached {
    /// The object without its data.
    config_map: ConfigMap,
    entries: MementoEntries,
}

impl Cached {
    fn new(mut config_map: ConfigMap) -> Self {
        let entries = config_map
            .data
            .take()
            .map(MementoEntries::from)
            .unwrap_or_default();
        Cached {
            config_map,
            entries,
        }
    }
}

impl std::fmt::Debug for ConfigMapMementoStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapMementoStorage")
            .field("name", &self.name)
            .finish()
    }
}

impl ConfigMapMementoStorage {
    /// The store of the resource named `resource_name` in `namespace`, owned by `owner`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        resource_name: &str,
        owner: OwnerReference,
    ) -> Self {
        ConfigMapMementoStorage {
            api: Api::namespaced(client, namespace),
            name: caretaker_name(resource_name),
            resource_name: resource_name.to_string(),
            owner,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            conflict_backoff: DEFAULT_CONFLICT_BACKOFF,
            cache: Mutex::new(None),
        }
    }

    /// The store of `object` (a controller owner reference to it is set on the ConfigMap).
    pub fn for_object<K: KubeObject>(
        client: kube::Client,
        object: &K,
    ) -> Result<Self, MementoError> {
        let name = object.meta().name.clone().unwrap_or_default();
        let namespace = object.meta().namespace.clone().unwrap_or_default();
        let owner = object
            .controller_owner_ref(&())
            .ok_or_else(|| MementoError::Backend {
                caretaker: caretaker_name(&name),
                source: "the resource has no uid: cannot set the owner reference".into(),
            })?;
        Ok(Self::new(client, &namespace, &name, owner))
    }

    /// Sets how many times a conflicting write is tried (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the pause after a conflict (default [`DEFAULT_CONFLICT_BACKOFF`]; a zero
    /// `initial` retries at once).
    pub fn with_conflict_backoff(mut self, backoff: Backoff) -> Self {
        self.conflict_backoff = backoff;
        self
    }

    /// The ConfigMap's name, `<resource name>-workflow`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn backend(&self, error: kube::Error) -> MementoError {
        MementoError::Backend {
            caretaker: self.name.clone(),
            source: Box::new(error),
        }
    }

    async fn read(&self) -> Result<Option<Cached>, MementoError> {
        Ok(self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.backend(e))?
            .map(Cached::new))
    }

    fn new_config_map(&self, data: BTreeMap<String, String>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(BTreeMap::from([(
                    DOMAIN_LABEL.to_string(),
                    self.resource_name.clone(),
                )])),
                owner_references: Some(vec![self.owner.clone()]),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        }
    }
}

#[async_trait]
impl MementoStorage for ConfigMapMementoStorage {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        Ok(self.load_entries().await?.to_map())
    }

    async fn load_entries(&self) -> Result<MementoEntries, MementoError> {
        let mut cache = self.cache.lock().await;
        if cache.is_none() {
            *cache = Some(self.read().await?);
        }
        Ok(cache
            .as_mut()
            .and_then(Option::as_mut)
            .map(|cached| {
                cached.entries.compact();
                cached.entries.clone()
            })
            .unwrap_or_default())
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        let mut cache = self.cache.lock().await;
        for attempt in 1..=self.max_attempts {
            if cache.is_none() {
                *cache = Some(self.read().await?);
            }
            let current = cache.as_ref().and_then(Option::as_ref);
            let mut entries = current.map(|c| c.entries.clone()).unwrap_or_default();
            entries.apply(change);
            let result = match current {
                Some(cached) => {
                    let mut cm = cached.config_map.clone();
                    cm.data = Some(entries.to_map());
                    // `cm` carries the cached resourceVersion: a stale copy gets a 409.
                    self.api
                        .replace(&self.name, &PostParams::default(), &cm)
                        .await
                }
                None => {
                    self.api
                        .create(
                            &PostParams::default(),
                            &self.new_config_map(entries.to_map()),
                        )
                        .await
                }
            };
            match result {
                Ok(mut written) => {
                    // The data is what was sent; keep the entries, not a copy of the reply's.
                    written.data = None;
                    *cache = Some(Some(Cached {
                        config_map: written,
                        entries,
                    }));
                    return Ok(());
                }
                Err(error) if status_code(&error) == Some(409) => {
                    tracing::debug!(
                        configmap = %self.name, attempt, %error,
                        "memento write conflicted; re-reading"
                    );
                    // Pause (another writer is active), re-read, then re-apply only this
                    // change on the fresh data.
                    if attempt < self.max_attempts {
                        tokio::time::sleep(self.conflict_backoff.delay(attempt)).await;
                    }
                    *cache = Some(self.read().await?);
                }
                Err(error) => {
                    // The cache may be stale now; read again next time.
                    *cache = None;
                    return Err(self.backend(error));
                }
            }
        }
        Err(MementoError::Conflict {
            caretaker: self.name.clone(),
            attempts: self.max_attempts,
        })
    }
}

/// Hands out one cached [`ConfigMapMementoStorage`] per resource (keyed by namespace and
/// name), so the ConfigMap cache survives across reconciles. Clones share the cache; a
/// resource that is gone is dropped from it with [`ConfigMapMementoFactory::forget`] (the
/// [`crate::Reconciler`] does it when a reconcile finds the resource deleted).
#[derive(Clone)]
pub struct ConfigMapMementoFactory {
    client: kube::Client,
    max_attempts: u32,
    conflict_backoff: Backoff,
    stores: Arc<StdMutex<HashMap<ResourceKey, Arc<ConfigMapMementoStorage>>>>,
}

impl std::fmt::Debug for ConfigMapMementoFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapMementoFactory").finish()
    }
}

impl ConfigMapMementoFactory {
    /// A factory writing ConfigMaps through `client`.
    pub fn new(client: kube::Client) -> Self {
        ConfigMapMementoFactory {
            client,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            conflict_backoff: DEFAULT_CONFLICT_BACKOFF,
            stores: Arc::new(StdMutex::new(HashMap::new())),
        }
    }

    /// Sets how many times a conflicting write is tried.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the pause after a conflict of the stores it makes.
    pub fn with_conflict_backoff(mut self, backoff: Backoff) -> Self {
        self.conflict_backoff = backoff;
        self
    }

    /// Drops the cached store of a resource (e.g. once it is deleted).
    pub fn forget(&self, key: &ResourceKey) {
        if let Ok(mut stores) = self.stores.lock() {
            stores.remove(key);
        }
    }

    /// How many resources have a cached store.
    pub fn cached(&self) -> usize {
        self.stores.lock().map_or(0, |stores| stores.len())
    }

    /// The cached store of `object`, made on first use.
    pub fn storage_for_object<K: KubeObject>(
        &self,
        object: &K,
    ) -> Result<Arc<ConfigMapMementoStorage>, MementoError> {
        let key = ResourceKey::new(
            object.meta().namespace.clone().unwrap_or_default(),
            object.meta().name.clone().unwrap_or_default(),
        );
        let uid = object.meta().uid.clone();
        let mut stores = self.stores.lock().map_err(|_| MementoError::Backend {
            caretaker: caretaker_name(&key.name),
            source: "memento factory lock poisoned".into(),
        })?;
        if let Some(store) = stores.get(&key) {
            // A resource re-created under the same name gets a fresh store.
            if store.owner.uid == uid.clone().unwrap_or_default() {
                return Ok(store.clone());
            }
        }
        let store = Arc::new(
            ConfigMapMementoStorage::for_object(self.client.clone(), object)?
                .with_max_attempts(self.max_attempts)
                .with_conflict_backoff(self.conflict_backoff),
        );
        stores.insert(key, store.clone());
        Ok(store)
    }
}

impl<R: ObjectSnapshot> MementoStorageFactory<R> for ConfigMapMementoFactory {
    fn storage_for(&self, resource: &R) -> Result<Arc<dyn MementoStorage>, MementoError> {
        debug_assert_eq!(
            resource.name(),
            resource.object().meta().name.as_deref().unwrap_or("")
        );
        let store: Arc<dyn MementoStorage> = self.storage_for_object(resource.object())?;
        Ok(store)
    }

    fn forget(&self, key: &ResourceKey) {
        ConfigMapMementoFactory::forget(self, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_pause_grows_per_attempt_and_is_capped() {
        let base = DEFAULT_CONFLICT_BACKOFF.initial;
        for _ in 0..200 {
            assert!(DEFAULT_CONFLICT_BACKOFF.delay(1) <= base);
            assert!(DEFAULT_CONFLICT_BACKOFF.delay(3) <= base * 4);
            assert!(DEFAULT_CONFLICT_BACKOFF.delay(40) <= Duration::from_secs(1));
        }
        let none = Backoff {
            initial: Duration::ZERO,
            ..DEFAULT_CONFLICT_BACKOFF
        };
        assert_eq!(none.delay(5), Duration::ZERO);
    }
}
