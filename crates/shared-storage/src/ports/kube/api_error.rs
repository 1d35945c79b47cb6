//! Kubernetes API errors as port errors.

use crate::ports::PortError;

/// Maps a `kube` error on `what` (e.g. `configmap ns/name`) to the port error of `port`:
/// 404 → `NotFound`, 409 → `Conflict`, another 4xx → `Rejected` with the API server's
/// message, anything else (5xx, no connection) → `Unavailable`.
pub(crate) fn port_error(port: &'static str, what: &str, err: kube::Error) -> PortError {
    match err {
        kube::Error::Api(status) if status.code == 404 => PortError::NotFound {
            port,
            what: what.to_owned(),
        },
        kube::Error::Api(status) if status.code == 409 => PortError::Conflict {
            port,
            what: what.to_owned(),
        },
        kube::Error::Api(status) if (400..500).contains(&status.code) => PortError::Rejected {
            port,
            message: format!("{what}: {} ({})", status.message, status.code),
        },
        other => PortError::Unavailable {
            port,
            message: format!("{what}: {other}"),
        },
    }
}

/// Whether `err` is a 409 `AlreadyExists` (or a conflict) from a create.
pub(crate) fn already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Whether `err` is a 404.
pub(crate) fn not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}
