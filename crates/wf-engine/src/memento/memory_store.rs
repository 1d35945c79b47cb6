//! An in-memory memento store: for tests, examples and benchmarks. Each store's content is
//! kept as [`MementoEntries`], so a load shares it instead of copying it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{MementoEntries, MementoError, MementoStorage, MementoWrite};

/// One store's content.
type Slot = Arc<Mutex<MementoEntries>>;
type Stores = HashMap<(String, String), Slot>;

/// Memento stores of many resources, in memory, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct InMemoryMementoStore {
    stores: Arc<Mutex<Stores>>,
}

impl InMemoryMementoStore {
    /// An empty set of stores.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store `caretaker` in `namespace`.
    pub fn storage(&self, namespace: &str, caretaker: &str) -> InMemoryMementoStorage {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (namespace.to_owned(), caretaker.to_owned());
        let slot = match stores.get(&id) {
            Some(slot) => slot.clone(),
            None => stores.entry(id).or_default().clone(),
        };
        InMemoryMementoStorage { slot }
    }

    /// A copy of the content of one store (empty when it does not exist).
    pub fn snapshot(&self, namespace: &str, caretaker: &str) -> BTreeMap<String, String> {
        let slot = self
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_owned(), caretaker.to_owned()))
            .cloned();
        slot.map(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).to_map())
            .unwrap_or_default()
    }
}

/// One resource's store inside an [`InMemoryMementoStore`].
#[derive(Clone, Debug)]
pub struct InMemoryMementoStorage {
    slot: Slot,
}

#[async_trait]
impl MementoStorage for InMemoryMementoStorage {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        Ok(self.load_entries().await?.to_map())
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(change);
        Ok(())
    }

    async fn write_shared(
        &self,
        change: &MementoWrite,
        value: Arc<str>,
    ) -> Result<(), MementoError> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply_shared(change, value);
        Ok(())
    }

    async fn load_entries(&self) -> Result<MementoEntries, MementoError> {
        let mut entries = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        entries.compact();
        Ok(entries.clone())
    }
}
