//! A file-backed [`StateResource`]: one JSON file per resource, replaced atomically, so an
//! embedded operator keeps its resources across a restart (as [`crate::FileMementoStore`]
//! keeps their runs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::memento::write_atomically;
use crate::{AnnotationPatch, ResourceError, ResourceKey, ResourceRecord, State, StateResource};

/// A resource file could not be read or written, or a key cannot name a file.
#[derive(Debug, thiserror::Error)]
pub enum FileResourceError {
    /// The file or directory could not be read or written.
    #[error("resource file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a resource record (it is left as it is).
    #[error("resource file {path} is not a resource record: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The namespace or name cannot be used as a file name.
    #[error("resource key {key} cannot name a file: {reason}")]
    InvalidKey {
        /// The key.
        key: ResourceKey,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Resources under a root directory: `<root>/<namespace>/<name>.json` (the namespace `_`
/// for an empty one), each a [`ResourceRecord`] in JSON.
///
/// Every write replaces the file atomically and durably (temp file, fsync, rename, fsync of
/// the directory), so a crash leaves the old or the new record, never a mix; leftover temp
/// files (`.<name>.json.tmp-*`) are ignored. Reads go to the file, so a change made by
/// another process (an edit, a CLI) is seen by the next `fetch`. Writes within one process
/// are serialised; writes from several processes at once are not guarded (last one wins).
/// The files are small and read and written synchronously.
///
/// ```
/// use wf_engine::{FileResourceStore, ResourceKey, ResourceRecord, State, StateResource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let key = ResourceKey::new("default", "photos");
/// let store = FileResourceStore::open(dir.path())?;
/// let bucket = store.insert(key.clone(), ResourceRecord { state: State::INIT, ..Default::default() })?;
/// bucket.update_state(State::RUNNING).await?;
///
/// // A new process over the same directory finds the resource as it was left.
/// let reopened = FileResourceStore::open(dir.path())?;
/// assert_eq!(reopened.fetch(&key)?.state(), State::RUNNING);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct FileResourceStore {
    root: PathBuf,
    writes: Arc<Mutex<()>>,
}

impl FileResourceStore {
    /// A store under `root`, created when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FileResourceError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| FileResourceError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(FileResourceStore {
            root,
            writes: Arc::new(Mutex::new(())),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`; an error when the namespace or name cannot be a file name (empty
    /// name, a `/` or `\`, a leading `.`).
    pub fn path_of(&self, key: &ResourceKey) -> Result<PathBuf, FileResourceError> {
        let invalid = |reason| FileResourceError::InvalidKey {
            key: key.clone(),
            reason,
        };
        if key.name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        for part in [&key.namespace, &key.name] {
            if part.contains(['/', '\\', '\0']) {
                return Err(invalid("it contains a path separator or NUL"));
            }
            if part.starts_with('.') {
                return Err(invalid("it starts with a dot"));
            }
        }
        let namespace = if key.namespace.is_empty() {
            "_"
        } else {
            &key.namespace
        };
        Ok(self.root.join(namespace).join(format!("{}.json", key.name)))
    }

    /// Creates or replaces a resource and returns a snapshot of it.
    pub fn insert(
        &self,
        key: ResourceKey,
        record: ResourceRecord,
    ) -> Result<FileResource, ResourceError> {
        let _writing = self.lock();
        self.write(&key, &record)?;
        Ok(self.snapshot(key, record))
    }

    /// A snapshot of a resource; `None` when it has no file.
    pub fn get(&self, key: &ResourceKey) -> Result<Option<FileResource>, ResourceError> {
        Ok(self
            .read(key)?
            .map(|record| self.snapshot(key.clone(), record)))
    }

    /// A snapshot of a resource, or [`ResourceError::NotFound`].
    pub fn fetch(&self, key: &ResourceKey) -> Result<FileResource, ResourceError> {
        self.get(key)?
            .ok_or_else(|| ResourceError::NotFound(key.clone()))
    }

    /// Changes a resource (read, change, atomic write) and returns the new snapshot. A
    /// missing resource is [`ResourceError::NotFound`]; a corrupt file is an error naming
    /// it, and is not overwritten.
    pub fn update(
        &self,
        key: &ResourceKey,
        change: impl FnOnce(&mut ResourceRecord),
    ) -> Result<FileResource, ResourceError> {
        let _writing = self.lock();
        let mut record = self
            .read(key)?
            .ok_or_else(|| ResourceError::NotFound(key.clone()))?;
        change(&mut record);
        self.write(key, &record)?;
        Ok(self.snapshot(key.clone(), record))
    }

    /// Deletes a resource's file; returns whether it existed.
    pub fn remove(&self, key: &ResourceKey) -> Result<bool, ResourceError> {
        let _writing = self.lock();
        let path = self.path_of(key).map_err(|e| backend(key, e))?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(backend(key, FileResourceError::Io { path, source })),
        }
    }

    /// The keys of all resources, sorted.
    pub fn keys(&self) -> Result<Vec<ResourceKey>, FileResourceError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FileResourceError::Io { path, source }
        };
        let mut keys = Vec::new();
        for namespace in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let namespace = namespace.map_err(io(&self.root))?;
            if !namespace
                .file_type()
                .map_err(io(&namespace.path()))?
                .is_dir()
            {
                continue;
            }
            let ns_name = namespace.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(namespace.path()).map_err(io(&namespace.path()))? {
                let name = file
                    .map_err(io(&namespace.path()))?
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                if let Some(stem) = name.strip_suffix(".json").filter(|s| !s.starts_with('.')) {
                    let ns = if ns_name == "_" { "" } else { &ns_name };
                    keys.push(ResourceKey::new(ns, stem));
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self, key: ResourceKey, record: ResourceRecord) -> FileResource {
        FileResource {
            store: self.clone(),
            key,
            record,
        }
    }

    fn read(&self, key: &ResourceKey) -> Result<Option<ResourceRecord>, ResourceError> {
        let path = self.path_of(key).map_err(|e| backend(key, e))?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(backend(key, FileResourceError::Io { path, source })),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| backend(key, FileResourceError::Corrupt { path, source }))
    }

    fn write(&self, key: &ResourceKey, record: &ResourceRecord) -> Result<(), ResourceError> {
        let path = self.path_of(key).map_err(|e| backend(key, e))?;
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|source| {
            backend(
                key,
                FileResourceError::Corrupt {
                    path: path.clone(),
                    source,
                },
            )
        })?;
        bytes.push(b'\n');
        write_atomically(&path, &bytes)
            .map_err(|source| backend(key, FileResourceError::Io { path, source }))
    }
}

fn backend(key: &ResourceKey, err: FileResourceError) -> ResourceError {
    ResourceError::Backend {
        key: key.clone(),
        source: Box::new(err),
    }
}

/// A snapshot of one resource of a [`FileResourceStore`].
#[derive(Clone, Debug)]
pub struct FileResource {
    store: FileResourceStore,
    key: ResourceKey,
    record: ResourceRecord,
}

impl FileResource {
    /// The snapshot's record.
    pub fn record(&self) -> &ResourceRecord {
        &self.record
    }

    /// The store the resource lives in.
    pub fn store(&self) -> &FileResourceStore {
        &self.store
    }
}

#[async_trait]
impl StateResource for FileResource {
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
        self.store.fetch(&self.key)
    }

    async fn update_state(&self, state: State) -> Result<Self, ResourceError> {
        self.store.update(&self.key, |r| r.state = state)
    }

    async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError> {
        self.store.update(&self.key, |r| r.apply(patch))
    }

    async fn is_cancelled(&self) -> bool {
        match self.store.get(&self.key) {
            Ok(None) => true,
            Ok(Some(fresh)) => fresh.record.is_cancelled(),
            Err(err) => {
                // Cannot tell: keep the flow going; the next step's own read will fail.
                tracing::warn!(resource = %self.key, %err, "cannot read the resource to check for cancellation");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ResourceKey {
        ResourceKey::new("ns", "b1")
    }

    #[tokio::test]
    async fn file_resource_survives_a_new_store_over_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileResourceStore::open(dir.path()).unwrap();
        let record = ResourceRecord {
            state: State::INIT,
            spec: json!({"sizeGib": 10}),
            ..ResourceRecord::default()
        };
        let bucket = store.insert(key(), record).unwrap();
        bucket.update_state(State::new("Resizing")).await.unwrap();
        bucket
            .patch_annotations(&AnnotationPatch::from([(
                "resizeTo".to_string(),
                Some("20".to_string()),
            )]))
            .await
            .unwrap();

        let reopened = FileResourceStore::open(dir.path()).unwrap();
        let fresh = reopened.fetch(&key()).unwrap();
        assert_eq!(fresh.state(), "Resizing");
        assert_eq!(fresh.annotation("resizeTo").as_deref(), Some("20"));
        assert_eq!(fresh.record().spec["sizeGib"], 10);
        assert_eq!(reopened.keys().unwrap(), [key()]);
        assert!(dir.path().join("ns/b1.json").is_file());
    }

    #[tokio::test]
    async fn a_write_leaves_no_temp_file_and_a_leftover_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileResourceStore::open(dir.path()).unwrap();
        store.insert(key(), ResourceRecord::default()).unwrap();
        std::fs::write(dir.path().join("ns/.b1.json.tmp-1-0"), "garbage").unwrap();
        store.update(&key(), |r| r.state = State::RUNNING).unwrap();
        assert_eq!(store.keys().unwrap(), [key()]);
        let temps: Vec<_> = std::fs::read_dir(dir.path().join("ns"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-") && n != ".b1.json.tmp-1-0")
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }

    #[tokio::test]
    async fn a_corrupt_resource_file_is_an_error_naming_it_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileResourceStore::open(dir.path()).unwrap();
        let path = store.path_of(&key()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"state\": ").unwrap();
        let err = store.fetch(&key()).unwrap_err();
        assert!(err.to_string().contains("b1.json"), "{err}");
        let err = store
            .update(&key(), |r| r.state = State::RUNNING)
            .unwrap_err();
        assert!(err.to_string().contains("not a resource record"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"state\": ");
    }

    #[tokio::test]
    async fn missing_resource_is_not_found_and_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileResourceStore::open(dir.path()).unwrap();
        assert!(store.fetch(&key()).unwrap_err().is_not_found());
        let bucket = store.insert(key(), ResourceRecord::default()).unwrap();
        assert!(!bucket.is_cancelled().await);
        store
            .update(&key(), |r| {
                r.annotations.insert("cancelled".into(), "true".into());
            })
            .unwrap();
        assert!(bucket.is_cancelled().await);
        assert!(store.remove(&key()).unwrap());
        assert!(bucket.is_cancelled().await);
        assert!(bucket.fetch().await.unwrap_err().is_not_found());
        assert!(!store.remove(&key()).unwrap());
    }

    #[test]
    fn a_key_that_cannot_be_a_file_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileResourceStore::open(dir.path()).unwrap();
        for bad in [
            ResourceKey::new("ns", "../etc"),
            ResourceKey::new("ns", ""),
            ResourceKey::new("..", "b1"),
            ResourceKey::new("a/b", "b1"),
        ] {
            let err = store.path_of(&bad).unwrap_err();
            assert!(matches!(err, FileResourceError::InvalidKey { .. }), "{bad}");
            assert!(store.insert(bad, ResourceRecord::default()).is_err());
        }
        assert_eq!(
            store.path_of(&ResourceKey::new("", "b1")).unwrap(),
            dir.path().join("_/b1.json")
        );
    }
}
