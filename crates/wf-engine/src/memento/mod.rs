//! Persistence of runtimes ([semantics §12](../../../../docs/SEMANTICS.md#12-persistence-retention-and-the-byte-budget)): the storage trait, the caretaker that applies
//! retention and the byte budget, and two stores (in memory, and files).
//!
//! A save costs what changed, not the whole history: the caretaker keeps the run it writes as
//! one encoded fragment per step and re-encodes only the run header and the step that moved
//! (the document stays one JSON object per run); stores hand their content over as
//! [`MementoEntries`], which shares the stored bytes, and the caretaker parses only the run
//! it is asked for.

mod caretaker;
mod document;
mod entries;
mod error;
mod file_store;
mod memory_store;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

pub use caretaker::{memento_key, parse_memento_key, MementoCaretaker, StoredRuntime};
pub use entries::MementoEntries;
pub use error::MementoError;
pub use file_store::{
    decode_memento_file, decode_runtime, write_atomically, FileMementoStorage, FileMementoStore,
    MAX_MEMENTO_BYTES,
};
pub use memory_store::{InMemoryMementoStorage, InMemoryMementoStore};

use crate::{ResourceKey, StateResource};

/// The name of a resource's memento store: `<resource name>-workflow`.
pub fn caretaker_name(resource_name: &str) -> String {
    format!("{resource_name}-workflow")
}

/// One write to a memento store: put one key, remove others (pruned runtimes), atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MementoWrite {
    /// The key written, `<seq>-<flowName>`.
    pub key: String,
    /// The runtime's JSON.
    pub value: String,
    /// Keys to remove in the same write.
    pub remove: Vec<String>,
}

/// Where one resource's runtimes live: a map from key to JSON.
#[async_trait]
pub trait MementoStorage: Send + Sync {
    /// Every key and value of the store (empty when it does not exist yet).
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError>;

    /// Applies one write; either all of it lands or none. The store is created on first write.
    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError>;

    /// [`MementoStorage::write`], with the value also given as a shared string (`value` is
    /// `change.value`): a store that keeps its content in memory as [`MementoEntries`] may
    /// keep `value` instead of copying the document, as the in-memory store does. The
    /// caretaker writes through this; the default calls [`MementoStorage::write`].
    async fn write_shared(
        &self,
        change: &MementoWrite,
        value: Arc<str>,
    ) -> Result<(), MementoError> {
        let _ = value;
        self.write(change).await
    }

    /// Where the store lives, for errors and warnings (a file's path); `None` when the
    /// caretaker's name says it all (the default).
    fn location(&self) -> Option<String> {
        None
    }

    /// The store's content as [`MementoEntries`], which the caretaker loads. A store that
    /// keeps its content as entries hands out a clone, sharing the stored bytes; the default
    /// converts [`MementoStorage::load_all`].
    async fn load_entries(&self) -> Result<MementoEntries, MementoError> {
        Ok(MementoEntries::from(self.load_all().await?))
    }
}

#[cfg(test)]
mockall::mock! {
    /// A mock of the two required methods; `load_entries` keeps its default.
    pub MementoStorage {}

    #[async_trait]
    impl MementoStorage for MementoStorage {
        async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError>;
        async fn write(&self, change: &MementoWrite) -> Result<(), MementoError>;
    }
}

/// Makes the memento storage of a resource.
pub trait MementoStorageFactory<R>: Send + Sync {
    /// The storage of `resource` (its caretaker is [`caretaker_name`] of its name).
    fn storage_for(&self, resource: &R) -> Result<Arc<dyn MementoStorage>, MementoError>;

    /// Drops whatever the factory keeps in memory for `key` (a cache of its store), once the
    /// resource is gone. The stored data is not touched. Default: nothing is kept.
    fn forget(&self, key: &ResourceKey) {
        let _ = key;
    }
}

impl<R: StateResource> MementoStorageFactory<R> for InMemoryMementoStore {
    fn storage_for(&self, resource: &R) -> Result<Arc<dyn MementoStorage>, MementoError> {
        Ok(Arc::new(self.storage(
            resource.namespace(),
            &caretaker_name(resource.name()),
        )))
    }
}

impl<R: StateResource> MementoStorageFactory<R> for FileMementoStore {
    fn storage_for(&self, resource: &R) -> Result<Arc<dyn MementoStorage>, MementoError> {
        Ok(Arc::new(self.storage(
            resource.namespace(),
            &caretaker_name(resource.name()),
        )))
    }

    fn forget(&self, key: &ResourceKey) {
        FileMementoStore::forget(self, &key.namespace, &caretaker_name(&key.name));
    }
}
