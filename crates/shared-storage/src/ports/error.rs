//! The error every port returns.

/// A port operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The object does not exist.
    #[error("{port}: {what} not found")]
    NotFound {
        /// Which port.
        port: &'static str,
        /// What was looked for.
        what: String,
    },
    /// An optimistic-concurrency write lost; re-read and retry.
    #[error("{port}: conflict writing {what}")]
    Conflict {
        /// Which port.
        port: &'static str,
        /// What was written.
        what: String,
    },
    /// A transient failure (network, timeout, a busy backend); retrying may succeed.
    #[error("{port}: {message}")]
    Unavailable {
        /// Which port.
        port: &'static str,
        /// What happened.
        message: String,
    },
    /// The request is invalid or refused; retrying the same request will not help.
    #[error("{port} refused: {message}")]
    Rejected {
        /// Which port.
        port: &'static str,
        /// Why.
        message: String,
    },
}

impl PortError {
    /// Whether the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PortError::NotFound { .. })
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, PortError::Conflict { .. })
    }

    /// The interrupt of a failure that retrying the same request cannot fix, as (reason,
    /// message saying what to do); `None` for a failure that may pass on a retry
    /// (`Unavailable`, `Conflict`, most `NotFound`s).
    ///
    /// | error | reason |
    /// |---|---|
    /// | `Rejected` by `storage` (e.g. the volume is another cluster's) | `STORAGE_REFUSED` |
    /// | `Rejected` by any other port | `<PORT>_REFUSED` (e.g. `ENGINE_REFUSED`) |
    /// | `NotFound` from `classes`, or the `params` of a class | `UNKNOWN_CLASS` |
    /// | `NotFound` from `versions` | `UNKNOWN_VERSION` |
    pub fn permanent(&self) -> Option<(String, String)> {
        let then = "then run `recover` on the cluster";
        match self {
            PortError::Rejected {
                port: "storage",
                message,
            } => Some((
                "STORAGE_REFUSED".to_owned(),
                format!(
                    "the storage manager refused: {message}; retrying will not help: give the \
                     cluster a volume of its own (spec.shareStore) or release the volume from \
                     its owner, {then}"
                ),
            )),
            PortError::Rejected { port, message } => Some((
                format!("{}_REFUSED", port.to_uppercase()),
                format!("{port} refused: {message}; retrying will not help: fix the cause, {then}"),
            )),
            PortError::NotFound {
                port: "classes",
                what,
            } => Some((
                "UNKNOWN_CLASS".to_owned(),
                format!("classes: {what} not found; set the class to one the catalog has, {then}"),
            )),
            PortError::NotFound {
                port: "params",
                what,
            } if what.starts_with("parameters of class") => Some((
                "UNKNOWN_CLASS".to_owned(),
                format!("params: {what} not found; set the class to one the catalog has, {then}"),
            )),
            PortError::NotFound {
                port: "versions",
                what,
            } => Some((
                "UNKNOWN_VERSION".to_owned(),
                format!(
                    "versions: {what} not found; set the version to one the catalog has, {then}"
                ),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_or_unknown_catalog_entry_is_permanent_and_a_transient_failure_is_not() {
        let storage = PortError::Rejected {
            port: "storage",
            message: "volume default/pvc-demo is used by alpha".into(),
        };
        let (reason, message) = storage.permanent().unwrap();
        assert_eq!(reason, "STORAGE_REFUSED");
        assert!(
            message.contains("used by alpha") && message.contains("recover"),
            "{message}"
        );
        let engine = PortError::Rejected {
            port: "engine",
            message: "exit 3".into(),
        };
        assert_eq!(engine.permanent().unwrap().0, "ENGINE_REFUSED");
        let class = PortError::NotFound {
            port: "params",
            what: "parameters of class x".into(),
        };
        assert_eq!(class.permanent().unwrap().0, "UNKNOWN_CLASS");
        let version = PortError::NotFound {
            port: "versions",
            what: "version 9.9.9".into(),
        };
        assert_eq!(version.permanent().unwrap().0, "UNKNOWN_VERSION");
        for transient in [
            PortError::Unavailable {
                port: "storage",
                message: "timeout".into(),
            },
            PortError::Conflict {
                port: "clusters",
                what: "c1".into(),
            },
            PortError::NotFound {
                port: "pods",
                what: "pod p".into(),
            },
        ] {
            assert_eq!(transient.permanent(), None, "{transient}");
        }
    }
}
