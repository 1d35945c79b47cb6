//! The errors of the local backend; every message names the file, field or lock at fault.

use std::path::PathBuf;

use crate::ports::{sim::port, PortError};

/// A local-backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Another process (or another [`StateDir`](super::StateDir) of this one) holds the lock.
    #[error(
        "state directory {} is in use by another process (lock {})",
        path.display(),
        path.join(".lock").display()
    )]
    Locked {
        /// The state directory.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An input file (a manifest given on the command line) cannot be read.
    #[error("{}: cannot read the input file: {source}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored file does not parse.
    #[error("{}: corrupt: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file is larger than the API server's object limit
    /// ([`MAX_DOCUMENT_BYTES`](super::MAX_DOCUMENT_BYTES)); it is refused unread.
    #[error(
        "{}: {bytes} bytes, over the limit of {limit} bytes (the API server's object limit)",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// An input file is not well-formed YAML.
    #[error("{}: malformed YAML: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column when known.
        message: String,
    },
    /// An input document is not a valid MPDCluster.
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted path of the field, e.g. `spec.classInfo.className`.
        field: String,
        /// What is wrong: `unknown field`, `missing required field`, a type error, ...
        message: String,
    },
    /// The MPDCluster does not exist.
    #[error("mpdcluster {namespace}/{name} not found")]
    NotFound {
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
    },
    /// A write of a stale copy lost against another write (optimistic concurrency).
    #[error("{}: conflict writing mpdcluster {namespace}/{name}: {message}", path.display())]
    Conflict {
        /// The file.
        path: PathBuf,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// Why, e.g. the stale resourceVersion.
        message: String,
    },
    /// Another writer kept an object's lock file locked longer than a write ever takes.
    #[error("{}: still locked by another writer after {waited:?}", path.display())]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long this writer waited.
        waited: std::time::Duration,
    },
}

impl LocalError {
    /// The process exit code for this error: 2 for bad input or a busy state directory
    /// (`Locked`, `Input`, `TooLarge`, `Yaml`, `Invalid`), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            LocalError::Locked { .. }
            | LocalError::Input { .. }
            | LocalError::TooLarge { .. }
            | LocalError::Yaml { .. }
            | LocalError::Invalid { .. } => 2,
            _ => 1,
        }
    }

    /// An [`LocalError::Io`] error naming `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LocalError::Io {
            path: path.into(),
            source,
        }
    }

    /// The port error the [`ClusterStore`](crate::ports::ClusterStore) returns for this
    /// error: `NotFound` and `Conflict` keep their meaning, I/O, corrupt files and a busy lock are
    /// `Unavailable` (the message names the file), the rest is `Rejected`.
    pub fn to_port_error(&self) -> PortError {
        match self {
            LocalError::NotFound { namespace, name } => PortError::NotFound {
                port: port::CLUSTERS,
                what: format!("mpdcluster {namespace}/{name}"),
            },
            LocalError::Conflict { .. } => PortError::Conflict {
                port: port::CLUSTERS,
                what: self.to_string(),
            },
            LocalError::Io { .. }
            | LocalError::Corrupt { .. }
            | LocalError::Locked { .. }
            | LocalError::Busy { .. } => PortError::Unavailable {
                port: port::CLUSTERS,
                message: self.to_string(),
            },
            LocalError::Input { .. }
            | LocalError::TooLarge { .. }
            | LocalError::Yaml { .. }
            | LocalError::Invalid { .. } => PortError::Rejected {
                port: port::CLUSTERS,
                message: self.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_messages_name_the_culprit() {
        let locked = LocalError::Locked {
            path: PathBuf::from("/tmp/st"),
        };
        assert_eq!(locked.exit_code(), 2);
        assert_eq!(
            locked.to_string(),
            "state directory /tmp/st is in use by another process (lock /tmp/st/.lock)"
        );
        let invalid = LocalError::Invalid {
            path: PathBuf::from("c.yaml"),
            field: "spec.followerNum".into(),
            message: "unknown field".into(),
        };
        assert_eq!(invalid.exit_code(), 2);
        assert_eq!(
            invalid.to_string(),
            "c.yaml: spec.followerNum: unknown field"
        );
        let missing = LocalError::NotFound {
            namespace: "default".into(),
            name: "c1".into(),
        };
        assert_eq!(missing.exit_code(), 1);
        assert!(missing.to_port_error().is_not_found());
        let corrupt = LocalError::Corrupt {
            path: PathBuf::from("x.json"),
            message: "eof".into(),
        };
        assert_eq!(corrupt.exit_code(), 1);
        let unreadable = LocalError::Input {
            path: PathBuf::from("missing.yaml"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            unreadable.exit_code(),
            2,
            "a missing input file is bad input"
        );
        assert!(unreadable
            .to_string()
            .starts_with("missing.yaml: cannot read the input file"));
        assert!(matches!(
            corrupt.to_port_error(),
            PortError::Unavailable { message, .. } if message.contains("x.json")
        ));
    }
}
