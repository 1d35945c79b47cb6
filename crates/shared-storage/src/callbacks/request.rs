//! The callback routes and bodies, as pure functions (domain §5, external APIs §2.6).

use std::collections::BTreeMap;

use crate::ports::ClusterRef;

/// Which callback a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    /// `.../rw_ins`: the CM moved the RW.
    RwIns,
    /// `.../meta/engine_status`: one engine's state.
    EngineStatus,
}

/// A routed callback: which one, for which cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The callback.
    pub callback: Callback,
    /// The cluster of the path.
    pub cluster: ClusterRef,
}

/// Routes `path`: `/api/v1/namespace/{ns}/name/{name}/rw_ins` or
/// `/api/v1/namespace/{ns}/name/{name}/meta/engine_status` (a trailing `/` is accepted);
/// `None` for anything else, including an empty namespace or name.
pub fn route(path: &str) -> Option<Route> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let (namespace, name, callback) = match segments.as_slice() {
        ["", "api", "v1", "namespace", ns, "name", name, "rw_ins"] => (ns, name, Callback::RwIns),
        ["", "api", "v1", "namespace", ns, "name", name, "meta", "engine_status"] => {
            (ns, name, Callback::EngineStatus)
        }
        _ => return None,
    };
    if namespace.is_empty() || name.is_empty() {
        return None;
    }
    Some(Route {
        callback,
        cluster: ClusterRef::new(*namespace, *name),
    })
}

/// What a callback body asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `rw_ins`: the new RW's endpoint.
    RwIns {
        /// `clientIP:port`.
        endpoint: String,
    },
    /// `meta/engine_status`.
    EngineStatus {
        /// `clientIP:port`.
        endpoint: String,
        /// The engine state, e.g. `FAILED`.
        engine_status: String,
        /// Why (may be empty).
        reason: String,
    },
}

/// Parses the body of `callback`: a JSON object of strings (any other value is refused, as
/// the original decoded a string map), with every key of the callback present
/// (`please input param: <key>`) and `endpoint` / `engineStatus` not empty. The error is
/// the text of the 400 answer.
pub fn parse_body(callback: Callback, bytes: &[u8]) -> Result<Body, String> {
    let map: BTreeMap<String, String> = serde_json::from_slice(bytes)
        .map_err(|e| format!("the body must be a JSON object of strings: {e}"))?;
    let take = |key: &str, non_empty: bool| -> Result<String, String> {
        match map.get(key) {
            None => Err(format!("please input param: {key}")),
            Some(value) if non_empty && value.trim().is_empty() => {
                Err(format!("param {key} must not be empty"))
            }
            Some(value) => Ok(value.clone()),
        }
    };
    match callback {
        Callback::RwIns => Ok(Body::RwIns {
            endpoint: take("endpoint", true)?,
        }),
        Callback::EngineStatus => {
            let endpoint = take("endpoint", true)?;
            let engine_status = take("engineStatus", true)?;
            let reason = take("reason", false)?;
            Ok(Body::EngineStatus {
                endpoint,
                engine_status,
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_callback_paths_route_and_nothing_else_does() {
        assert_eq!(
            route("/api/v1/namespace/db/name/c1/rw_ins"),
            Some(Route {
                callback: Callback::RwIns,
                cluster: ClusterRef::new("db", "c1")
            })
        );
        assert_eq!(
            route("/api/v1/namespace/db/name/c1/meta/engine_status/").map(|r| r.callback),
            Some(Callback::EngineStatus)
        );
        for path in [
            "/",
            "/api/v1/namespace/db/name/c1",
            "/api/v1/namespace//name/c1/rw_ins",
            "/api/v1/namespace/db/name//rw_ins",
            "/api/v2/namespace/db/name/c1/rw_ins",
            "/api/v1/namespace/db/name/c1/rw_ins/x",
            "/api/v1/namespace/db/name/c1/engine_status",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
    }

    #[test]
    fn bodies_need_every_key_as_a_string_and_non_empty_ids() {
        assert_eq!(
            parse_body(Callback::RwIns, br#"{"endpoint":"1.2.3.4:5432"}"#),
            Ok(Body::RwIns {
                endpoint: "1.2.3.4:5432".into()
            })
        );
        assert_eq!(
            parse_body(
                Callback::EngineStatus,
                br#"{"endpoint":"e:1","engineStatus":"FAILED","reason":""}"#
            ),
            Ok(Body::EngineStatus {
                endpoint: "e:1".into(),
                engine_status: "FAILED".into(),
                reason: String::new(),
            })
        );
        let err = |callback, body: &str| parse_body(callback, body.as_bytes()).unwrap_err();
        assert_eq!(err(Callback::RwIns, "{}"), "please input param: endpoint");
        assert_eq!(
            err(
                Callback::EngineStatus,
                r#"{"endpoint":"e:1","engineStatus":"X"}"#
            ),
            "please input param: reason"
        );
        assert_eq!(
            err(
                Callback::EngineStatus,
                r#"{"endpoint":"e:1","engineStatus":" ","reason":"r"}"#
            ),
            "param engineStatus must not be empty"
        );
        assert!(err(Callback::RwIns, r#"{"endpoint":5432}"#).contains("JSON object of strings"));
        assert!(err(Callback::RwIns, "not json").contains("JSON object of strings"));
        assert!(err(Callback::RwIns, r#"["endpoint"]"#).contains("JSON object of strings"));
    }
}
