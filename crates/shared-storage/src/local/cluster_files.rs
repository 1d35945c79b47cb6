//! A. The MPDCluster objects as JSON files: `<dir>/<namespace>/<name>.json`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::atomic::{remove_durably, write_atomically};
use super::last_applied;
use super::LocalError;
use crate::crd::MPDCluster;
use crate::ports::{ClusterStore, PortError};

/// The namespace of an object that names none.
const DEFAULT_NAMESPACE: &str = "default";

/// How long a writer waits for another writer's lock on an object before giving up with
/// [`LocalError::Busy`]. A writer holds it for one read-check-write (milliseconds).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The pause between two attempts to take a lock held by another writer.
const LOCK_POLL: Duration = Duration::from_millis(1);

/// What [`FileClusterStore::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The object did not exist and was created.
    Created,
    /// The spec, annotations or labels changed.
    Updated,
    /// The stored object already had this spec, annotations and labels.
    Unchanged,
}

/// Which part of the object a write replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Metadata (labels, annotations, finalizers) and spec.
    MetaSpec,
    /// The status.
    Status,
}

/// The MPDCluster objects in files `<dir>/<namespace>/<name>.json` (pretty JSON, replaced
/// atomically), with Kubernetes-like metadata:
/// - `resourceVersion`: a per-object counter bumped by every write; a write of a stale copy
///   is a conflict ([`PortError::Conflict`], [`LocalError::Conflict`]);
/// - `generation`: 1 on create, bumped when the spec changes;
/// - `uid` and `creationTimestamp`: set on create;
/// - deletion: [`FileClusterStore::delete`] sets `deletionTimestamp`; the file is removed
///   when the last finalizer goes (or at once when there is none).
///
/// As a [`ClusterStore`], `update` writes metadata and spec only and `update_status` the
/// status only. A file that does not parse is [`PortError::Unavailable`] naming the file.
///
/// Several processes write the files: the one running the operator (`local`, which holds
/// the [`StateDir`](super::StateDir) lock) and the commands that annotate (`cancel`,
/// `recover`), which do not. Every write is a read-check-write under an exclusive lock on
/// the object's lock file `<namespace>/<name>.json.lock` (`flock`, so it excludes other
/// processes and other stores of this one, and the operating system drops it when a process
/// dies), held for that one write only: a compare-and-swap on the resourceVersion, atomic
/// across processes as on the API server. The lock files stay (removing one would race with
/// a writer waiting on it); readers never take the lock (a file is replaced atomically).
/// The files are small: I/O runs on the calling thread.
#[derive(Debug)]
pub struct FileClusterStore {
    dir: PathBuf,
}

impl FileClusterStore {
    /// A store under `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileClusterStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `namespace/name` (an empty namespace is `default`), or `Invalid` when a
    /// part is not a safe file name.
    pub fn path_of(&self, namespace: &str, name: &str) -> Result<PathBuf, LocalError> {
        let namespace = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        for (field, part) in [("metadata.namespace", namespace), ("metadata.name", name)] {
            if part.is_empty() || part.starts_with('.') || part.contains(['/', '\\', '\0']) {
                return Err(LocalError::Invalid {
                    path: self.dir.clone(),
                    field: field.to_string(),
                    message: format!("{part:?} is not a valid name"),
                });
            }
        }
        Ok(self.dir.join(namespace).join(format!("{name}.json")))
    }

    /// Creates the object, or applies the document to it as `kubectl apply` does
    /// ([`last_applied`](super::last_applied)): only what changed in the document since the
    /// previous apply is written, so a request the operator already served and cleared is
    /// not asked again by an unchanged file. The status, finalizers and the annotations the
    /// operator wrote are kept; the document's status and other metadata are ignored; a
    /// missing namespace is `default`.
    ///
    /// The merge is made on the stored object under the object's lock, so annotations
    /// another process wrote since (a `cancel`, a `recover`) are kept, never overwritten.
    pub fn apply(&self, doc: &MPDCluster) -> Result<ApplyOutcome, LocalError> {
        let name = doc.metadata.name.clone().unwrap_or_default();
        let namespace = namespace_of(doc);
        let path = self.path_of(&namespace, &name)?;
        let _lock = ObjectLock::acquire(&path, true)?;
        let invalid = |e: serde_json::Error| LocalError::Invalid {
            path: path.clone(),
            field: "metadata.annotations".to_string(),
            message: format!("cannot record the applied configuration: {e}"),
        };
        let Some(stored) = read_file(&path)? else {
            let mut cluster = MPDCluster::new(&name, doc.spec.clone());
            let meta = &mut cluster.metadata;
            meta.namespace = Some(namespace);
            meta.labels = doc.metadata.labels.clone().filter(|m| !m.is_empty());
            meta.annotations = doc.metadata.annotations.clone().filter(|m| !m.is_empty());
            let mut cluster = last_applied::three_way(&cluster, None, doc).map_err(invalid)?;
            let meta = &mut cluster.metadata;
            meta.uid = Some(new_uid());
            meta.creation_timestamp = Some(Time(Timestamp::now()));
            meta.generation = Some(1);
            meta.resource_version = Some("1".to_string());
            write_file(&path, &cluster)?;
            return Ok(ApplyOutcome::Created);
        };
        let last = last_applied::recorded(&stored);
        let mut next = last_applied::three_way(&stored, last.as_ref(), doc).map_err(invalid)?;
        // Only what `apply` owns comes from the merge.
        next.status = stored.status.clone();
        let mut meta = stored.metadata.clone();
        meta.labels = next.metadata.labels.take();
        meta.annotations = next.metadata.annotations.take();
        next.metadata = meta;
        let spec_changed = next.spec != stored.spec;
        if !spec_changed
            && next.metadata.annotations == stored.metadata.annotations
            && next.metadata.labels == stored.metadata.labels
        {
            return Ok(ApplyOutcome::Unchanged);
        }
        if spec_changed {
            next.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
        }
        next.metadata.resource_version = Some(next_resource_version(&path, &stored)?);
        write_file(&path, &next)?;
        Ok(ApplyOutcome::Updated)
    }

    /// Every object, sorted by namespace and name. A missing directory is empty; temp files
    /// (names starting with `.`) are skipped; a file that does not parse is `Corrupt`.
    pub fn list(&self) -> Result<Vec<MPDCluster>, LocalError> {
        let mut out = Vec::new();
        for ns_dir in read_dir(&self.dir)? {
            if !ns_dir.is_dir() {
                continue;
            }
            for file in read_dir(&ns_dir)? {
                if file.extension().is_some_and(|e| e == "json") && file.is_file() {
                    if let Some(cluster) = read_file(&file)? {
                        out.push(cluster);
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        Ok(out)
    }

    /// The object `namespace/name`; [`LocalError::NotFound`] when it does not exist.
    pub fn read(&self, namespace: &str, name: &str) -> Result<MPDCluster, LocalError> {
        let path = self.path_of(namespace, name)?;
        read_file(&path)?.ok_or_else(|| not_found(namespace, name))
    }

    /// Sets one annotation, as a user's `kubectl annotate` (a merge patch): the stored
    /// object is read, changed and written back under the object's lock, so no other
    /// writer comes in between and nothing is lost. Returns the stored object (not written
    /// again when the annotation already has this value).
    pub fn set_annotation(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<MPDCluster, LocalError> {
        let path = self.path_of(namespace, name)?;
        let Some(_lock) = ObjectLock::acquire(&path, false)? else {
            return Err(not_found(namespace, name));
        };
        let mut stored = read_file(&path)?.ok_or_else(|| not_found(namespace, name))?;
        let annotations = stored.metadata.annotations.get_or_insert_default();
        if annotations.get(key).map(String::as_str) == Some(value) {
            return Ok(stored);
        }
        annotations.insert(key.to_string(), value.to_string());
        stored.metadata.resource_version = Some(next_resource_version(&path, &stored)?);
        write_file(&path, &stored)?;
        Ok(stored)
    }

    /// Deletes the object as Kubernetes does: removed at once when it has no finalizer,
    /// else marked with `deletionTimestamp` (and removed when the operator drops its
    /// finalizer). Returns whether the file is gone.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<bool, LocalError> {
        let path = self.path_of(namespace, name)?;
        let Some(_lock) = ObjectLock::acquire(&path, false)? else {
            return Err(not_found(namespace, name));
        };
        let mut stored = read_file(&path)?.ok_or_else(|| not_found(namespace, name))?;
        if stored
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            remove_durably(&path).map_err(|e| LocalError::io(&path, e))?;
            return Ok(true);
        }
        if stored.metadata.deletion_timestamp.is_none() {
            stored.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
            stored.metadata.resource_version = Some(next_resource_version(&path, &stored)?);
            write_file(&path, &stored)?;
        }
        Ok(false)
    }

    /// Writes `part` of `cluster` if its resourceVersion is the stored one (a
    /// compare-and-swap under the object's lock); a stale copy is [`LocalError::Conflict`]
    /// and changes nothing.
    fn write(&self, cluster: &MPDCluster, part: Part) -> Result<MPDCluster, LocalError> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let namespace = namespace_of(cluster);
        let path = self.path_of(&namespace, &name)?;
        let Some(_lock) = ObjectLock::acquire(&path, false)? else {
            return Err(not_found(&namespace, &name));
        };
        let mut stored = read_file(&path)?.ok_or_else(|| not_found(&namespace, &name))?;
        match &cluster.metadata.resource_version {
            None => {
                return Err(LocalError::Invalid {
                    path,
                    field: "metadata.resourceVersion".to_string(),
                    message: "must be specified for an update".to_string(),
                })
            }
            Some(rv) if Some(rv) != stored.metadata.resource_version.as_ref() => {
                return Err(LocalError::Conflict {
                    message: format!(
                        "resourceVersion {rv} is stale (stored {})",
                        stored.metadata.resource_version.as_deref().unwrap_or("-")
                    ),
                    path,
                    namespace,
                    name,
                })
            }
            Some(_) => {}
        }
        let rv = next_resource_version(&path, &stored)?;
        match part {
            Part::MetaSpec => {
                if stored.spec != cluster.spec {
                    stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(0) + 1);
                }
                stored.metadata.labels = cluster.metadata.labels.clone();
                stored.metadata.annotations = cluster.metadata.annotations.clone();
                stored.metadata.finalizers = cluster.metadata.finalizers.clone();
                stored.spec = cluster.spec.clone();
            }
            Part::Status => stored.status = cluster.status.clone(),
        }
        stored.metadata.resource_version = Some(rv);
        let deleted = stored.metadata.deletion_timestamp.is_some()
            && stored
                .metadata
                .finalizers
                .as_ref()
                .is_none_or(Vec::is_empty);
        if deleted {
            remove_durably(&path).map_err(|e| LocalError::io(&path, e))?;
        } else {
            write_file(&path, &stored)?;
        }
        Ok(stored)
    }
}

/// The exclusive lock on an object's lock file `<name>.json.lock`, held while the value
/// lives (one read-check-write); dropping it releases the lock.
#[derive(Debug)]
struct ObjectLock {
    file: File,
}

impl ObjectLock {
    /// Locks the object stored in `path`, waiting at most [`LOCK_WAIT`] for another writer.
    /// `create`: make the namespace directory when missing (to create the object); without
    /// it, a missing directory is `None` (no such object, nothing to lock).
    fn acquire(path: &Path, create: bool) -> Result<Option<ObjectLock>, LocalError> {
        let lock_path = lock_path(path);
        if create {
            if let Some(dir) = lock_path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| LocalError::io(dir, e))?;
            }
        }
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
        {
            Ok(file) => file,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LocalError::io(&lock_path, e)),
        };
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(ObjectLock { file })),
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(LOCK_POLL);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LocalError::Busy {
                        path: lock_path,
                        waited: LOCK_WAIT,
                    })
                }
                Err(TryLockError::Error(e)) => return Err(LocalError::io(&lock_path, e)),
            }
        }
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it explicit.
        let _ = self.file.unlock();
    }
}

/// The lock file of the object stored in `path`: `path` with `.lock` appended.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[async_trait]
impl ClusterStore for FileClusterStore {
    async fn get(&self, namespace: &str, name: &str) -> Result<MPDCluster, PortError> {
        self.read(namespace, name).map_err(|e| e.to_port_error())
    }

    async fn list(&self) -> Result<Vec<MPDCluster>, PortError> {
        FileClusterStore::list(self).map_err(|e| e.to_port_error())
    }

    async fn update(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.write(cluster, Part::MetaSpec)
            .map_err(|e| e.to_port_error())
    }

    async fn update_status(&self, cluster: &MPDCluster) -> Result<MPDCluster, PortError> {
        self.write(cluster, Part::Status)
            .map_err(|e| e.to_port_error())
    }
}

fn namespace_of(cluster: &MPDCluster) -> String {
    cluster
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn not_found(namespace: &str, name: &str) -> LocalError {
    LocalError::NotFound {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// The stored resourceVersion plus one.
fn next_resource_version(path: &Path, stored: &MPDCluster) -> Result<String, LocalError> {
    let rv = stored.metadata.resource_version.as_deref().unwrap_or("0");
    let rv: u64 = rv.parse().map_err(|_| LocalError::Corrupt {
        path: path.to_path_buf(),
        message: format!("metadata.resourceVersion {rv:?} is not a number"),
    })?;
    Ok((rv + 1).to_string())
}

fn new_uid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "local-{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The object in `path`; `None` when the file does not exist.
/// The most a stored object file may hold: a document of at most
/// [`MAX_DOCUMENT_BYTES`](super::documents::MAX_DOCUMENT_BYTES), its status and its
/// last-applied configuration. A bigger file is refused unread, naming it and its size.
const MAX_STORED_BYTES: u64 = 4 * super::documents::MAX_DOCUMENT_BYTES;

fn read_file(path: &Path) -> Result<Option<MPDCluster>, LocalError> {
    use super::documents::{read_limited, Limited};
    match read_limited(path, MAX_STORED_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LocalError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(Limited::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(Limited::Io(e)) => Err(LocalError::io(path, e)),
        Err(Limited::TooLarge(bytes)) => Err(LocalError::TooLarge {
            path: path.to_path_buf(),
            bytes,
            limit: MAX_STORED_BYTES,
        }),
    }
}

fn write_file(path: &Path, cluster: &MPDCluster) -> Result<(), LocalError> {
    let mut bytes = serde_json::to_vec_pretty(cluster).map_err(|e| LocalError::Corrupt {
        path: path.to_path_buf(),
        message: format!("cannot serialise: {e}"),
    })?;
    bytes.push(b'\n');
    write_atomically(path, &bytes).map_err(|e| LocalError::io(path, e))
}

/// The entries of `dir` not starting with `.`, sorted; a missing directory is empty.
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LocalError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LocalError::io(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::{MPDClusterSpec, MPDClusterStatus, FINALIZER};

    fn doc(name: &str, followers: i32) -> MPDCluster {
        let mut c = MPDCluster::new(
            name,
            MPDClusterSpec {
                follower_num: followers,
                ..MPDClusterSpec::default()
            },
        );
        c.metadata.annotations = Some(BTreeMap::from([("a".to_string(), "1".to_string())]));
        c
    }

    fn store() -> (tempfile::TempDir, FileClusterStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileClusterStore::new(dir.path().join("clusters"));
        (dir, store)
    }

    #[tokio::test]
    async fn apply_creates_updates_and_reports_unchanged() {
        let (_dir, store) = store();
        assert_eq!(store.apply(&doc("c1", 1)).unwrap(), ApplyOutcome::Created);
        let c = store.read("default", "c1").unwrap();
        assert_eq!(c.metadata.generation, Some(1));
        assert_eq!(c.metadata.resource_version.as_deref(), Some("1"));
        assert!(c.metadata.uid.is_some() && c.metadata.creation_timestamp.is_some());
        assert!(store.dir().join("default").join("c1.json").is_file());

        assert_eq!(store.apply(&doc("c1", 1)).unwrap(), ApplyOutcome::Unchanged);
        assert_eq!(store.apply(&doc("c1", 2)).unwrap(), ApplyOutcome::Updated);
        let c2 = store.read("default", "c1").unwrap();
        assert_eq!(c2.spec.follower_num, 2);
        assert_eq!(c2.metadata.generation, Some(2));
        assert_eq!(c2.metadata.resource_version.as_deref(), Some("2"));
        assert_eq!(c2.metadata.uid, c.metadata.uid);
    }

    #[tokio::test]
    async fn apply_merges_annotations_and_keeps_status_and_operator_annotations() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let mut c = store.read("default", "c1").unwrap();
        c.status = Some(MPDClusterStatus {
            cluster_status: "Running".into(),
            ..Default::default()
        });
        let c = store.update_status(&c).await.unwrap();
        store
            .set_annotation("default", "c1", "tempRoIds", "{}")
            .unwrap();
        let gen = c.metadata.generation;

        let mut again = doc("c1", 1);
        again.metadata.annotations = Some(BTreeMap::from([
            ("a".to_string(), "2".to_string()),
            ("b".to_string(), "x".to_string()),
        ]));
        again.metadata.labels = Some(BTreeMap::from([("l".to_string(), "v".to_string())]));
        assert_eq!(store.apply(&again).unwrap(), ApplyOutcome::Updated);
        let out = store.read("default", "c1").unwrap();
        let annotations = out.metadata.annotations.unwrap();
        assert_eq!(annotations["a"], "2");
        assert_eq!(annotations["b"], "x");
        assert_eq!(annotations["tempRoIds"], "{}");
        assert_eq!(out.metadata.labels.unwrap()["l"], "v");
        assert_eq!(out.status.unwrap().cluster_status, "Running");
        assert_eq!(out.metadata.generation, gen, "the spec did not change");
        assert_eq!(store.apply(&again).unwrap(), ApplyOutcome::Unchanged);
    }

    #[tokio::test]
    async fn a_stale_write_is_a_conflict() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let stale = store.get("default", "c1").await.unwrap();
        let fresh = store.update(&stale).await.unwrap();
        assert!(store.update(&stale).await.unwrap_err().is_conflict());
        assert!(store.update_status(&stale).await.unwrap_err().is_conflict());
        store.update_status(&fresh).await.unwrap();
        let err = store.write(&fresh, Part::MetaSpec).unwrap_err();
        assert!(matches!(err, LocalError::Conflict { .. }));
        assert!(err.to_string().contains("c1.json"), "{err}");
        let mut no_rv = fresh.clone();
        no_rv.metadata.resource_version = None;
        assert!(matches!(
            store.update(&no_rv).await.unwrap_err(),
            PortError::Rejected { .. }
        ));
    }

    #[tokio::test]
    async fn update_writes_meta_and_spec_and_bumps_generation_only_on_spec_change() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let mut c = store.get("default", "c1").await.unwrap();
        c.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
        c.status = Some(MPDClusterStatus {
            cluster_status: "Ignored".into(),
            ..Default::default()
        });
        let mut c = store.update(&c).await.unwrap();
        assert_eq!(c.metadata.generation, Some(1));
        assert_eq!(c.status, None);
        assert_eq!(
            c.metadata.finalizers.as_deref(),
            Some(&[FINALIZER.to_string()][..])
        );
        c.spec.follower_num = 3;
        c.metadata.generation = Some(99);
        let mut c = store.update(&c).await.unwrap();
        assert_eq!(c.metadata.generation, Some(2));
        c.spec.follower_num = 0;
        c.status = Some(MPDClusterStatus {
            cluster_status: "Creating".into(),
            ..Default::default()
        });
        let c = store.update_status(&c).await.unwrap();
        assert_eq!(c.spec.follower_num, 3, "update_status leaves the spec");
        assert_eq!(c.status.unwrap().cluster_status, "Creating");
        assert_eq!(c.metadata.resource_version.as_deref(), Some("4"));
    }

    #[tokio::test]
    async fn delete_waits_for_the_finalizer() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let mut c = store.get("default", "c1").await.unwrap();
        c.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
        store.update(&c).await.unwrap();
        assert!(!store.delete("default", "c1").unwrap());
        let mut c = store.get("default", "c1").await.unwrap();
        assert!(c.metadata.deletion_timestamp.is_some());
        c.metadata.finalizers = None;
        store.update(&c).await.unwrap();
        assert!(store.get("default", "c1").await.unwrap_err().is_not_found());
        store.apply(&doc("c2", 0)).unwrap();
        assert!(store.delete("default", "c2").unwrap());
        assert!(matches!(
            store.delete("default", "c2").unwrap_err(),
            LocalError::NotFound { .. }
        ));
    }

    #[tokio::test]
    async fn list_is_sorted_and_a_corrupt_file_is_named() {
        let (_dir, store) = store();
        let mut b = doc("b", 0);
        b.metadata.namespace = Some("ns2".into());
        store.apply(&b).unwrap();
        store.apply(&doc("z", 0)).unwrap();
        store.apply(&doc("a", 0)).unwrap();
        std::fs::write(store.dir().join("default").join(".a.json.tmp-1-1"), "x").unwrap();
        let names: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.metadata.namespace.unwrap(),
                    c.metadata.name.unwrap()
                )
            })
            .collect();
        assert_eq!(names, ["default/a", "default/z", "ns2/b"]);

        let path = store.dir().join("default").join("a.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = store.get("default", "a").await.unwrap_err();
        assert!(
            matches!(&err, PortError::Unavailable { message, .. } if message.contains("a.json"))
        );
        assert!(
            matches!(store.list().unwrap_err(), LocalError::Corrupt { path: p, .. } if p == path)
        );
    }

    #[tokio::test]
    async fn missing_and_unsafe_names() {
        let (_dir, store) = store();
        assert!(matches!(
            store.read("default", "nope").unwrap_err(),
            LocalError::NotFound { .. }
        ));
        assert!(store
            .get("default", "nope")
            .await
            .unwrap_err()
            .is_not_found());
        assert!(matches!(
            store.read("default", "../x").unwrap_err(),
            LocalError::Invalid { .. }
        ));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn a_write_waits_for_the_lock_another_writer_holds_and_then_keeps_its_change() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let path = store.path_of("default", "c1").unwrap();
        // Another writer (another store, as another process has) holds the object's lock.
        let held = ObjectLock::acquire(&path, false).unwrap().unwrap();
        let other = FileClusterStore::new(store.dir());
        let writer = std::thread::spawn(move || {
            other
                .set_annotation("default", "c1", "cancelled", "true")
                .map(|c| c.metadata.resource_version)
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!writer.is_finished(), "the write waits for the lock");
        let mut stale = store.read("default", "c1").unwrap();
        stale.spec.follower_num = 2;
        drop(held);
        assert_eq!(writer.join().unwrap().unwrap().as_deref(), Some("2"));
        // The copy read before the annotation is stale now: a conflict, nothing written.
        let err = store.write(&stale, Part::MetaSpec).unwrap_err();
        assert!(matches!(err, LocalError::Conflict { .. }), "{err}");
        let stored = store.read("default", "c1").unwrap();
        assert_eq!(stored.spec.follower_num, 1);
        assert_eq!(stored.metadata.annotations.unwrap()["cancelled"], "true");
        assert!(lock_path(&path).is_file(), "the lock file stays");
        assert_eq!(store.list().unwrap().len(), 1, "lock files are not objects");
    }

    #[test]
    fn a_stored_file_over_the_limit_is_refused_unread_naming_it_and_its_size() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let path = store.path_of("default", "c1").unwrap();
        let huge = vec![b' '; usize::try_from(MAX_STORED_BYTES).unwrap() + 1];
        std::fs::write(&path, huge).unwrap();
        let err = store.read("default", "c1").unwrap_err();
        assert!(matches!(err, LocalError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("c1.json"), "{err}");
    }

    #[test]
    fn writers_in_many_threads_with_their_own_stores_lose_no_annotation() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let other = FileClusterStore::new(store.dir());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        other
                            .set_annotation("default", "c1", &format!("k{t}-{i}"), "v")
                            .unwrap();
                    }
                })
            })
            .collect();
        let mut applied = doc("c1", 1);
        for i in 0..25 {
            applied
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(format!("apply-{i}"), "v".into());
            store.apply(&applied).unwrap();
        }
        for writer in writers {
            writer.join().unwrap();
        }
        let stored = store.read("default", "c1").unwrap();
        let mut annotations = stored.metadata.annotations.unwrap();
        assert!(annotations.remove(last_applied::LAST_APPLIED).is_some());
        assert_eq!(annotations.len(), 1 + 100 + 25, "{annotations:?}");
        assert_eq!(stored.metadata.resource_version.as_deref(), Some("126"));
    }

    #[test]
    fn set_annotation_of_an_unchanged_value_writes_nothing() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let out = store.set_annotation("default", "c1", "a", "1").unwrap();
        assert_eq!(out.metadata.resource_version.as_deref(), Some("1"));
        assert!(matches!(
            store
                .set_annotation("ns-missing", "c1", "k", "v")
                .unwrap_err(),
            LocalError::NotFound { .. }
        ));
        assert!(!store.dir().join("ns-missing").exists());
    }

    #[tokio::test]
    async fn set_annotation_keeps_the_rest() {
        let (_dir, store) = store();
        store.apply(&doc("c1", 1)).unwrap();
        let out = store
            .set_annotation("default", "c1", "switchRw", "1001")
            .unwrap();
        let annotations = out.metadata.annotations.unwrap();
        assert_eq!(annotations["switchRw"], "1001");
        assert_eq!(annotations["a"], "1");
        assert_eq!(out.metadata.generation, Some(1));
        assert!(matches!(
            store.set_annotation("default", "zz", "k", "v").unwrap_err(),
            LocalError::NotFound { .. }
        ));
    }
}
