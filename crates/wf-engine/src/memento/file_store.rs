//! A file-backed memento store: one JSON file per caretaker, replaced atomically.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{parse_memento_key, MementoEntries, MementoError, MementoStorage, MementoWrite};
use crate::WorkflowRuntime;

/// What identifies one version of a file: a write replaces the file (a new inode), and any
/// other change moves its length or modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    /// The stamp of the file at `path`; `None` when it does not exist or cannot be read.
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

/// A file's content as last read or written, and the stamp of that version.
#[derive(Debug)]
struct Cached {
    entries: MementoEntries,
    stamp: Option<Stamp>,
}

type Slot = Arc<Mutex<Option<Cached>>>;

/// Memento stores under a root directory: `<root>/<namespace>/<caretaker>.json`.
///
/// Every write replaces the file atomically (temp file, fsync, rename, fsync of the
/// directory), so a crash leaves either the old or the new content. Leftover temp files
/// (`.<caretaker>.json.tmp-*`) are ignored.
///
/// The content of each file is kept in memory once read or written, shared by the stores
/// that [`FileMementoStore::storage`] hands out (and by their clones): a load costs one
/// `stat` while the file is unchanged, and reads the file again when something else changed
/// it. [`crate::MementoStorageFactory::forget`] drops a file's cached content.
#[derive(Clone, Debug)]
pub struct FileMementoStore {
    root: PathBuf,
    cache: Arc<StdMutex<HashMap<PathBuf, Slot>>>,
}

impl FileMementoStore {
    /// Stores under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileMementoStore {
            root: root.into(),
            cache: Arc::default(),
        }
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
        let path = self.path_of(namespace, caretaker);
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(path.clone())
            .or_default()
            .clone();
        FileMementoStorage { path, cache }
    }

    /// Drops the cached content of `caretaker` in `namespace` (the file is not touched).
    pub fn forget(&self, namespace: &str, caretaker: &str) {
        let path = self.path_of(namespace, caretaker);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&path);
    }
}

/// One caretaker's file. Its content is cached once read (see [`FileMementoStore`]); one
/// process owns a file at a time.
#[derive(Debug)]
pub struct FileMementoStorage {
    path: PathBuf,
    cache: Slot,
}

impl FileMementoStorage {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The most bytes a memento document may hold: the API server's object limit (1 MiB), which
/// a ConfigMap memento cannot pass either. A larger file is refused unread.
pub const MAX_MEMENTO_BYTES: u64 = 1 << 20;

/// Decodes the content of a memento file (`location` names it in errors): a JSON object of
/// strings, at most [`MAX_MEMENTO_BYTES`], holding at least one run (`<seq>-<flowName>`)
/// whose every value is a [`WorkflowRuntime`]. Keys the engine did not write are kept as
/// they are.
///
/// Errors: [`MementoError::TooLarge`]; [`MementoError::Corrupt`] for content that is not a
/// JSON object of strings, or a value that is not a runtime (the location then names the
/// key); [`MementoError::NotARuntime`] for a file that holds no run (`{}`): the engine never
/// writes one, so such a file was damaged, and reading it as "no run yet" would start the
/// resource's flow again from its first step.
pub fn decode_memento_file(
    location: &str,
    bytes: &[u8],
) -> Result<BTreeMap<String, String>, MementoError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > MAX_MEMENTO_BYTES {
        return Err(MementoError::TooLarge {
            location: location.to_owned(),
            bytes: len,
            limit: MAX_MEMENTO_BYTES,
        });
    }
    let entries: BTreeMap<String, String> =
        serde_json::from_slice(bytes).map_err(|source| MementoError::Corrupt {
            location: location.to_owned(),
            source,
        })?;
    let mut runs = 0usize;
    for (key, value) in &entries {
        if parse_memento_key(key).is_some() {
            decode_runtime(&format!("{location} key {key}"), value)?;
            runs += 1;
        }
    }
    if runs == 0 {
        return Err(MementoError::NotARuntime {
            location: location.to_owned(),
            message: "the file holds no workflow run (the engine never writes such a file): \
                      restore it, or delete it to start the resource's flows over"
                .to_owned(),
        });
    }
    Ok(entries)
}

/// Decodes one stored runtime (`location` names the store and key in errors); a value that
/// is not a [`WorkflowRuntime`] is [`MementoError::Corrupt`], one over [`MAX_MEMENTO_BYTES`]
/// [`MementoError::TooLarge`].
pub fn decode_runtime(location: &str, json: &str) -> Result<WorkflowRuntime, MementoError> {
    let len = u64::try_from(json.len()).unwrap_or(u64::MAX);
    if len > MAX_MEMENTO_BYTES {
        return Err(MementoError::TooLarge {
            location: location.to_owned(),
            bytes: len,
            limit: MAX_MEMENTO_BYTES,
        });
    }
    serde_json::from_str(json).map_err(|source| MementoError::Corrupt {
        location: location.to_owned(),
        source,
    })
}

/// Reads a memento file: missing means empty; content that [`decode_memento_file`] refuses
/// is an error naming the file. A file over [`MAX_MEMENTO_BYTES`] is refused unread.
pub(crate) fn read_file(path: &Path) -> Result<BTreeMap<String, String>, MementoError> {
    let io = |source| MementoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(io(source)),
    };
    let location = path.display().to_string();
    let too_large = |bytes| MementoError::TooLarge {
        location: location.clone(),
        bytes,
        limit: MAX_MEMENTO_BYTES,
    };
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_MEMENTO_BYTES {
        return Err(too_large(len));
    }
    let mut bytes = Vec::new();
    file.take(MAX_MEMENTO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    decode_memento_file(&location, &bytes)
}

/// Reads a memento file as entries with the stamp of the version read.
fn read_cached(path: &Path) -> Result<Cached, MementoError> {
    let stamp = Stamp::of(path);
    let entries = MementoEntries::from(read_file(path)?);
    // Changed while being read: do not trust the stamp; the next load reads again.
    let stamp = stamp.filter(|s| Stamp::of(path) == Some(*s));
    Ok(Cached { entries, stamp })
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

impl FileMementoStorage {
    /// The cached content, read again when the file is no longer the version cached.
    async fn current(&self, cache: &mut Option<Cached>) -> Result<MementoEntries, MementoError> {
        if let Some(cached) = cache.as_mut() {
            if cached.stamp.is_some() && cached.stamp == Stamp::of(&self.path) {
                cached.entries.compact();
                return Ok(cached.entries.clone());
            }
        }
        // A file this process read or wrote with runs in it, gone now: the runs are lost, and
        // the next run of the resource starts again from its first step. Loud, not silent.
        let had_runs = cache.as_ref().map_or(0, |c| c.entries.len());
        if had_runs > 0
            && matches!(std::fs::metadata(&self.path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        {
            tracing::warn!(
                file = %self.path.display(),
                runs = had_runs,
                "memento file was deleted while this process held its runs; they are lost, and \
                 the resource's next flow starts from its first step"
            );
        }
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || read_cached(&path))
            .await
            .map_err(|e| MementoError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })??;
        let entries = read.entries.clone();
        *cache = Some(read);
        Ok(entries)
    }
}

#[async_trait]
impl MementoStorage for FileMementoStorage {
    async fn load_all(&self) -> Result<BTreeMap<String, String>, MementoError> {
        Ok(self.load_entries().await?.to_map())
    }

    fn location(&self) -> Option<String> {
        Some(self.path.display().to_string())
    }

    async fn load_entries(&self) -> Result<MementoEntries, MementoError> {
        let mut cache = self.cache.lock().await;
        self.current(&mut cache).await
    }

    async fn write(&self, change: &MementoWrite) -> Result<(), MementoError> {
        let mut cache = self.cache.lock().await;
        // The content this write applies to: the file as it is now (read again only when
        // something else changed it since this process last read or wrote it).
        let mut entries = self.current(&mut cache).await?;
        entries.apply(change);
        let sorted: BTreeMap<&str, &str> = entries.iter().collect();
        let bytes = serde_json::to_vec_pretty(&sorted).map_err(|source| MementoError::Corrupt {
            location: self.path.display().to_string(),
            source,
        })?;
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            write_atomically(&path, &bytes).map(|()| Stamp::of(&path))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match written {
            Ok(stamp) => {
                *cache = Some(Cached { entries, stamp });
                Ok(())
            }
            Err(source) => Err(MementoError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime's JSON, as the engine writes it.
    fn rt(flow: &str) -> String {
        format!(r#"{{"flowStatus":"running","flowName":"{flow}"}}"#)
    }

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
        storage
            .write(&change("1-Create", &rt("Create")))
            .await
            .unwrap();
        storage
            .write(&MementoWrite {
                key: "2-Create".into(),
                value: rt("Create"),
                remove: vec!["1-Create".into()],
            })
            .await
            .unwrap();
        assert!(dir.path().join("ns/c1-workflow.json").is_file());
        let fresh = store.storage("ns", "c1-workflow").load_all().await.unwrap();
        assert_eq!(
            fresh,
            BTreeMap::from([("2-Create".to_string(), rt("Create"))])
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
        let err = storage
            .write(&change("2-Create", &rt("Create")))
            .await
            .unwrap_err();
        assert!(matches!(err, MementoError::Corrupt { .. }));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"1-Create\": ");
    }

    #[tokio::test]
    async fn a_change_made_to_the_file_by_someone_else_is_seen_by_the_next_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMementoStore::new(dir.path());
        let storage = store.storage("ns", "c1-workflow");
        storage
            .write(&change("1-Create", &rt("Create")))
            .await
            .unwrap();
        assert_eq!(
            storage.load_all().await.unwrap().len(),
            1,
            "served from the cache"
        );
        let path = store.path_of("ns", "c1-workflow");
        let both = serde_json::json!({"1-Create": rt("Create"), "2-Upgrade": rt("Upgrade")});
        write_atomically(&path, both.to_string().as_bytes()).unwrap();
        let again = store.storage("ns", "c1-workflow").load_all().await.unwrap();
        assert_eq!(again.keys().collect::<Vec<_>>(), ["1-Create", "2-Upgrade"]);
        store.forget("ns", "c1-workflow");
        assert_eq!(
            store
                .storage("ns", "c1-workflow")
                .load_all()
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_failed_write_leaves_the_cached_content_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMementoStore::new(dir.path().join("root"));
        let storage = store.storage("ns", "c1-workflow");
        storage
            .write(&change("1-Create", &rt("Create")))
            .await
            .unwrap();
        // The namespace directory becomes a file: the next write cannot create its temp file.
        std::fs::remove_dir_all(dir.path().join("root/ns")).unwrap();
        std::fs::write(dir.path().join("root/ns"), "not a directory").unwrap();
        let err = storage
            .write(&change("2-Upgrade", &rt("Upgrade")))
            .await
            .unwrap_err();
        assert!(matches!(err, MementoError::Io { .. }), "{err}");
        let cache = storage.cache.lock().await;
        let cached = cache.as_ref().unwrap();
        assert_eq!(
            cached.entries.to_map().into_keys().collect::<Vec<_>>(),
            ["1-Create"]
        );
    }

    #[tokio::test]
    async fn leftover_temp_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMementoStore::new(dir.path());
        let storage = store.storage("ns", "c1-workflow");
        storage
            .write(&change("1-Create", &rt("Create")))
            .await
            .unwrap();
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
