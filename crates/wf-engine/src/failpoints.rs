//! Failpoints before and after every persisted write of a transition, for crash tests.
//!
//! The engine persists a transition in four kinds of writes, and each write has a failpoint
//! right before it and right after it ([`NAMES`] lists them all):
//!
//! | failpoint | the write |
//! | --- | --- |
//! | `wf::memento::save::{before,after}` | a run's memento (a new run, each step transition, the run's end, a closed or recovered run), in [`crate::memento::MementoCaretaker`] |
//! | `wf::state::update::{before,after}` | the resource's state (a trigger's transition, back to `Running`, `Interrupt`, the state restored by a recovery) |
//! | `wf::history::write::{before,after}` | one line of the JSON-lines history ([`crate::HistoryRecorder`]) |
//! | `wf::annotations::interrupt::{before,after}` | the interrupt record written on the resource |
//! | `wf::annotations::recover::{before,after}` | the interrupt annotations cleared by a recovery |
//!
//! Without the cargo feature `failpoints` the failpoints compile to nothing (the `fail`
//! crate is not even a dependency). With it, they are the `fail` crate's failpoints: a test
//! may configure any of them with `fail::cfg`, and a binary can arm the crash counter with
//! `arm_from_env`:
//!
//! - `WF_CRASH_AT=N` (N ≥ 1): the N-th hit of any failpoint, counted over all of [`NAMES`]
//!   in the order they are reached, crashes the process;
//! - `WF_FAILPOINT_LOG=PATH`: each hit appends the line `<hit> <failpoint>` to `PATH` (the
//!   line of the crashing hit included, written before the crash). A run without
//!   `WF_CRASH_AT` counts the hits of a clean run this way.
//!
//! The crash is [`std::process::abort`]: the process dies at once by `SIGABRT`, as it would
//! by `SIGKILL` for what the engine persisted. No destructor runs, no buffer is flushed, no
//! unwinding happens (a `panic` action of the `fail` crate is not a crash: it unwinds, runs
//! destructors and may be caught). Only what already reached the file system stays, which is
//! what a kill leaves behind.

/// Every failpoint of the engine, in pairs: before and after the write.
pub const NAMES: &[&str] = &[
    MEMENTO_SAVE_BEFORE,
    MEMENTO_SAVE_AFTER,
    STATE_UPDATE_BEFORE,
    STATE_UPDATE_AFTER,
    HISTORY_WRITE_BEFORE,
    HISTORY_WRITE_AFTER,
    ANNOTATIONS_INTERRUPT_BEFORE,
    ANNOTATIONS_INTERRUPT_AFTER,
    ANNOTATIONS_RECOVER_BEFORE,
    ANNOTATIONS_RECOVER_AFTER,
];

/// Before a run's memento is written.
pub const MEMENTO_SAVE_BEFORE: &str = "wf::memento::save::before";
/// After a run's memento is written.
pub const MEMENTO_SAVE_AFTER: &str = "wf::memento::save::after";
/// Before the resource's state is written.
pub const STATE_UPDATE_BEFORE: &str = "wf::state::update::before";
/// After the resource's state is written.
pub const STATE_UPDATE_AFTER: &str = "wf::state::update::after";
/// Before a history line is appended.
pub const HISTORY_WRITE_BEFORE: &str = "wf::history::write::before";
/// After a history line is appended.
pub const HISTORY_WRITE_AFTER: &str = "wf::history::write::after";
/// Before the interrupt annotations are written.
pub const ANNOTATIONS_INTERRUPT_BEFORE: &str = "wf::annotations::interrupt::before";
/// After the interrupt annotations are written.
pub const ANNOTATIONS_INTERRUPT_AFTER: &str = "wf::annotations::interrupt::after";
/// Before a recovery clears the interrupt annotations.
pub const ANNOTATIONS_RECOVER_BEFORE: &str = "wf::annotations::recover::before";
/// After a recovery cleared the interrupt annotations.
pub const ANNOTATIONS_RECOVER_AFTER: &str = "wf::annotations::recover::after";

/// The environment variable naming the hit that crashes the process.
pub const CRASH_AT_ENV: &str = "WF_CRASH_AT";
/// The environment variable naming the file that each hit is logged to.
pub const LOG_ENV: &str = "WF_FAILPOINT_LOG";

/// A failpoint: nothing without the feature `failpoints`, `fail::fail_point!` with it.
macro_rules! failpoint {
    ($name:expr) => {{
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
        #[cfg(not(feature = "failpoints"))]
        let _ = $name;
    }};
}
pub(crate) use failpoint;

/// Why `arm_from_env` could not arm the failpoints.
#[derive(Debug, thiserror::Error)]
pub enum FailpointError {
    /// `WF_CRASH_AT` is not a positive integer.
    #[error("{CRASH_AT_ENV}={value:?} is not a positive integer")]
    BadCrashAt {
        /// The value found.
        value: String,
    },
    /// The log file cannot be opened.
    #[error("cannot open the failpoint log {path}: {source}")]
    Log {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `fail` crate refused a callback.
    #[error("cannot configure failpoint {name}: {message}")]
    Configure {
        /// The failpoint.
        name: &'static str,
        /// The `fail` crate's message.
        message: String,
    },
}

/// What `arm_from_env` armed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Armed {
    /// The hit that crashes the process, if any.
    pub crash_at: Option<u64>,
    /// The file each hit is logged to, if any.
    pub log: Option<std::path::PathBuf>,
}

/// Reads `WF_CRASH_AT` and `WF_FAILPOINT_LOG` and, when either is set, registers a callback
/// on every failpoint of [`NAMES`] that counts the hits, logs them and crashes at the chosen
/// one (see the [module documentation](self)). Neither set: nothing is configured and
/// `Ok(Armed::default())` is returned. Call it once, at the start of the process.
#[cfg(feature = "failpoints")]
pub fn arm_from_env() -> Result<Armed, FailpointError> {
    let crash_at = match std::env::var(CRASH_AT_ENV) {
        Ok(value) => match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(FailpointError::BadCrashAt { value }),
        },
        Err(_) => None,
    };
    let log = std::env::var_os(LOG_ENV).map(std::path::PathBuf::from);
    let armed = Armed { crash_at, log };
    arm(&armed)?;
    Ok(armed)
}

/// Arms the failpoints as `arm_from_env` does, from `armed` rather than the environment.
#[cfg(feature = "failpoints")]
pub fn arm(armed: &Armed) -> Result<(), FailpointError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    if armed.crash_at.is_none() && armed.log.is_none() {
        return Ok(());
    }
    let file = match &armed.log {
        Some(path) => Some(Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| FailpointError::Log {
                    path: path.clone(),
                    source,
                })?,
        )),
        None => None,
    };
    let hits = Arc::new(AtomicU64::new(0));
    for &name in NAMES {
        let (hits, file, crash_at) = (hits.clone(), file.clone(), armed.crash_at);
        fail::cfg_callback(name, move || {
            let hit = hits.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(file) = &file {
                use std::io::Write;
                // One unbuffered append per hit; a failed log write cannot be reported here.
                let _ = (&**file).write_all(format!("{hit} {name}\n").as_bytes());
            }
            if crash_at == Some(hit) {
                std::process::abort();
            }
        })
        .map_err(|message| FailpointError::Configure { name, message })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failpoint_comes_in_a_before_and_after_pair_under_wf() {
        assert_eq!(NAMES.len() % 2, 0);
        for pair in NAMES.chunks(2) {
            let before = pair[0].strip_suffix("::before").unwrap();
            let after = pair[1].strip_suffix("::after").unwrap();
            assert_eq!(before, after);
            assert!(before.starts_with("wf::"), "{before}");
        }
    }
}
