//! The state directory of the local mode, and its process lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::LocalError;

/// The state directory: `clusters/`, `mementos/`, `history/`, `sim.json` and the lock file
/// `.lock`.
///
/// [`StateDir::open`] holds an exclusive lock on `<root>/.lock` for the life of the value
/// (the operating system releases it when the process dies, so a killed process never leaves
/// a stale lock); [`StateDir::inspect`] takes no lock, for read-only commands.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    /// The locked file; `None` for [`StateDir::inspect`].
    lock: Option<File>,
}

impl StateDir {
    /// Creates `root` when missing and locks it exclusively (non-blocking): a lock held by
    /// another process, or by another `StateDir` of this process, is [`LocalError::Locked`].
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, LocalError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| LocalError::io(&root, e))?;
        let lock_path = root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LocalError::io(&lock_path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(StateDir {
                root,
                lock: Some(file),
            }),
            Err(TryLockError::WouldBlock) => Err(LocalError::Locked { path: root }),
            Err(TryLockError::Error(e)) => Err(LocalError::io(&lock_path, e)),
        }
    }

    /// An existing state directory, without the lock (for read-only commands). A missing
    /// directory is an [`LocalError::Io`] error (kind `NotFound`) naming it.
    pub fn inspect(root: impl Into<PathBuf>) -> Result<StateDir, LocalError> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => Ok(StateDir { root, lock: None }),
            Ok(_) => Err(LocalError::io(
                &root,
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "the state directory is not a directory",
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LocalError::io(
                &root,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the state directory does not exist",
                ),
            )),
            Err(e) => Err(LocalError::io(&root, e)),
        }
    }

    /// Whether this value holds the lock (made by [`StateDir::open`]).
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/clusters`: one JSON file per MPDCluster.
    pub fn clusters_dir(&self) -> PathBuf {
        self.root.join("clusters")
    }

    /// `<root>/mementos`: the workflow engine's mementos.
    pub fn memento_dir(&self) -> PathBuf {
        self.root.join("mementos")
    }

    /// `<root>/history`: flow history.
    pub fn history_dir(&self) -> PathBuf {
        self.root.join("history")
    }

    /// `<root>/sim.json`: the persistent simulated world.
    pub fn sim_file(&self) -> PathBuf {
        self.root.join("sim.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_locked_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let first = StateDir::open(&root).unwrap();
        assert!(first.is_locked());
        let err = StateDir::open(&root).unwrap_err();
        assert!(matches!(&err, LocalError::Locked { path } if path == &root));
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(".lock"));
        // Read-only access still works while locked.
        let view = StateDir::inspect(&root).unwrap();
        assert!(!view.is_locked());
        drop(first);
        StateDir::open(&root).unwrap();
    }

    #[test]
    fn inspect_of_a_missing_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nope");
        let err = StateDir::inspect(&root).unwrap_err();
        assert!(matches!(&err, LocalError::Io { path, source }
            if path == &root && source.kind() == std::io::ErrorKind::NotFound));
        assert!(err.to_string().contains("nope"));
        assert!(!root.exists());
    }

    #[test]
    fn paths_are_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.root(), dir.path());
        assert_eq!(state.clusters_dir(), dir.path().join("clusters"));
        assert_eq!(state.memento_dir(), dir.path().join("mementos"));
        assert_eq!(state.history_dir(), dir.path().join("history"));
        assert_eq!(state.sim_file(), dir.path().join("sim.json"));
    }
}
