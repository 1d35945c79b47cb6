//! How a failed Kubernetes API call becomes a [`PortError`]: 404 is `NotFound`, 409 is
//! `Conflict`, a timeout, throttling or a server error is `Unavailable` (worth retrying),
//! anything else the server refused (bad request, forbidden, invalid) is `Rejected`, and a
//! transport failure is `Unavailable`.

use crate::ports::PortError;

/// The port error of a failed call on `what` (e.g. `configmap kube-system/x`).
pub(crate) fn port_error(port: &'static str, what: &str, err: kube::Error) -> PortError {
    match err {
        kube::Error::Api(status) => match status.code {
            404 => PortError::NotFound {
                port,
                what: what.to_owned(),
            },
            409 => PortError::Conflict {
                port,
                what: what.to_owned(),
            },
            408 | 429 | 500..=599 => PortError::Unavailable {
                port,
                message: format!("{what}: {} (HTTP {})", status.message, status.code),
            },
            code => PortError::Rejected {
                port,
                message: format!("{what}: {} (HTTP {code} {})", status.message, status.reason),
            },
        },
        kube::Error::SerdeError(e) => PortError::Rejected {
            port,
            message: format!("{what}: unreadable reply: {e}"),
        },
        other => PortError::Unavailable {
            port,
            message: format!("{what}: {other}"),
        },
    }
}

/// Whether a create failed because the object exists already.
pub(crate) fn is_already_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_already_exists())
}

/// Whether a call failed because the object does not exist.
pub(crate) fn not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            Status::failure("refused by the test", reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn status_codes_map_to_the_port_error_kinds() {
        let what = "configmap ns/x";
        assert!(port_error("p", what, api(404, "NotFound")).is_not_found());
        assert!(port_error("p", what, api(409, "Conflict")).is_conflict());
        for code in [408, 429, 500, 503] {
            assert!(matches!(
                port_error("p", what, api(code, "x")),
                PortError::Unavailable { .. }
            ));
        }
        for code in [400, 403, 422] {
            match port_error("p", what, api(code, "Forbidden")) {
                PortError::Rejected { message, .. } => {
                    assert!(message.contains(what) && message.contains("refused by the test"))
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn already_exists_is_told_apart_from_a_conflict() {
        assert!(is_already_exists(&api(409, "AlreadyExists")));
        assert!(!is_already_exists(&api(409, "Conflict")));
    }
}
