//! An in-memory memento store: for tests, examples and benchmarks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{MementoError, MementoStorage, MementoWrite};

type Stores = HashMap<(String, String), BTreeMap<String, String>>;

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
        InMemoryMementoStorage {
            stores: self.stores.clone(),
            id: (namespace.to_owned(), caretaker.to_owned()),
        }
    }

    /// A copy of the content of one store (empty when it does not exist).
    pub fn snapshot(&self, namespace: &str, caretaker: &str) -> BTreeMap<String, String> {
        self.stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_owned(), caretaker.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// One resource's store inside an [`InMemoryMementoStore`].
#[derive(Clone, Debug)]
pub struct InMemoryMementoStorage {
    stores: Arc<Mutex<Stores>>,
    id: (String, String),
}

#[async_trait]
impl MementoStorage for InMemoryMementoStorage {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        Ok(self
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&self.id)
            .cloned()
            .unwrap_or_default())
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        let map = stores.entry(self.id.clone()).or_default();
        for key in &change.remove {
            map.remove(key);
        }
        map.insert(change.key.clone(), change.value.clone());
        Ok(())
    }
}
