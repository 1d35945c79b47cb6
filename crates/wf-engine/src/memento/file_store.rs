//! A file-backed memento store: one JSON file per caretaker, replaced atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{MementoError, MementoStorage, MementoWrite};

/// Memento stores under a root directory: `<root>/<namespace>/<caretaker>.json`.
///
/// Every write replaces the file atomically (temp file, fsync, rename, fsync of the
/// directory), so a crash leaves either the old or the new content. Leftover temp files
/// (`.<caretaker>.json.tmp-*`) are ignored.
#[derive(Clone, Debug)]
pub struct FileMementoStore {
    root: PathBuf,
}

impl FileMementoStore {
    /// Stores under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileMementoStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `caretaker` in `namespace`.
    pub fn path_of(&self, namespace: &str, caretaker: &str) -> PathBuf {
        let namespace = if namespace.is_empty() { "_" } else { namespace };
        self.root.join(namespace).join(format!("{caretaker}.json"))
    }

    /// The store of `caretaker` in `namespace`.
    pub fn storage(&self, namespace: &str, caretaker: &str) -> FileMementoStorage {
        FileMementoStorage {
            path: self.path_of(namespace, caretaker),
            cache: Mutex::new(None),
        }
    }
}

/// One caretaker's file. Reads the file once, then keeps its content cached; one process
/// owns a file at a time.
#[derive(Debug)]
pub struct FileMementoStorage {
    path: PathBuf,
    cache: Mutex<Option<BTreeMap<String, String>>>,
}

impl FileMementoStorage {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a memento file: missing means empty; content that is not a JSON object of strings
/// is an error naming the file.
pub(crate) fn read_file(path: &Path) -> Result<BTreeMap<String, String>, MementoError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| MementoError::Corrupt {
            location: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(MementoError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically and durably: a temp file beside it (named
/// `.<file>.tmp-*`, so readers can ignore leftovers), fsync, rename, fsync of the directory,
/// which is created when missing. A crash leaves the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[async_trait]
impl MementoStorage for FileMementoStorage {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        let mut cache = self.cache.lock().await;
        let path = self.path.clone();
        let map = tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(|e| MementoError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })??;
        *cache = Some(map.clone());
        Ok(map)
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        let mut cache = self.cache.lock().await;
        let mut map = match cache.take() {
            Some(map) => map,
            None => read_file(&self.path)?,
        };
        let before = map.clone();
        for key in &change.remove {
            map.remove(key);
        }
        map.insert(change.key.clone(), change.value.clone());
        let bytes = serde_json::to_vec_pretty(&map).map_err(|source| MementoError::Corrupt {
            location: self.path.display().to_string(),
            source,
        })?;
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        match written {
            Ok(()) => {
                *cache = Some(map);
                Ok(())
            }
            Err(source) => {
                *cache = Some(before);
                Err(MementoError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, value: &str) -> MementoWrite {
        MementoWrite {
            key: key.into(),
            value: value.into(),
            remove: vec![],
        }
    }

    #[tokio::test]
    async fn file_store_round_trips_one_file_per_caretaker() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMementoStore::new(dir.path());
        let storage = store.storage("ns", "c1-workflow");
        assert!(storage.load_all().await.unwrap().is_empty());
        storage.write(&change("1-Create", "{}")).await.unwrap();
        storage
            .write(&MementoWrite {
                key: "2-Create".into(),
                value: "{\"a\":1}".into(),
                remove: vec!["1-Create".into()],
            })
            .await
            .unwrap();
        assert!(dir.path().join("ns/c1-workflow.json").is_file());
        let fresh = store.storage("ns", "c1-workflow").load_all().await.unwrap();
        assert_eq!(
            fresh,
            BTreeMap::from([("2-Create".to_string(), "{\"a\":1}".to_string())])
        );
    }

    #[tokio::test]
    async fn corrupt_memento_file_is_an_error_naming_the_path_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMementoStore::new(dir.path());
        let path = store.path_of("ns", "c1-workflow");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"1-Create\": ").unwrap();
        let storage = store.storage("ns", "c1-workflow");
        let err = storage.load_all().await.unwrap_err();
        assert!(matches!(err, MementoError::Corrupt { .. }));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let err = storage.write(&change("2-Create", "{}")).await.unwrap_err();
        assert!(matches!(err, MementoError::Corrupt { .. }));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"1-Create\": ");
    }

    #[tokio::test]
    async fn leftover_temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMementoStore::new(dir.path());
        let storage = store.storage("ns", "c1-workflow");
        storage.write(&change("1-Create", "{}")).await.unwrap();
        let leftover = dir.path().join("ns/.c1-workflow.json.tmp-999-0");
        std::fs::write(&leftover, "garbage from a crash").unwrap();
        let fresh = store.storage("ns", "c1-workflow").load_all().await.unwrap();
        assert_eq!(fresh.len(), 1);
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("ns"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-") && !n.contains("999"))
            .collect();
        assert!(
            entries.is_empty(),
            "temp files of a successful write remain: {entries:?}"
        );
    }
}
