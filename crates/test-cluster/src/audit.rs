//! What a client asked the API server for, as its RBAC authoriser sees it: each request
//! becomes an [`Access`] (verb, API group, resource or `resource/subresource`), the triple
//! a `PolicyRule` grants. A [`Recording`] client records every request it sends into an
//! [`AccessLog`] and forwards it to the [`ApiServer`], so a test can run an operator on it
//! and compare what it used with the RBAC it ships.
//!
//! The verbs follow the API server's request-info rules: `GET` of one object is `get`, of
//! a collection `list`, with `watch=true` `watch`; `POST` is `create`, `PUT` `update`,
//! `PATCH` `patch`; `DELETE` of one object `delete`, of a collection `deletecollection`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Node;
//! use kube::api::{Api, ListParams};
//! use test_cluster::audit::{Access, AccessLog};
//! use test_cluster::FakeCluster;
//!
//! let cluster = FakeCluster::builder().build().await?;
//! let log = AccessLog::default();
//! let client = cluster.server().recording_client("default", &log);
//! Api::<Node>::all(client).list(&ListParams::default()).await?;
//! assert_eq!(log.accesses(), vec![Access::new("list", "", "nodes")]);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use kube::client::Body;

use crate::api_server::{parse_path, ApiServer};
use crate::emulator::query_pairs;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One kind of access: what an RBAC rule must grant for a request to pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The plural resource, with `/subresource` when the request names one.
    pub resource: String,
}

impl Access {
    /// An access from its parts.
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        Access {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// The access a request needs; `None` for requests no resource rule governs
    /// (discovery, `/version`, `/healthz`).
    pub fn of_request(method: &Method, path: &str, query: Option<&str>) -> Option<Self> {
        let target = parse_path(path)?;
        let group = match target.collection.prefix.split('/').collect::<Vec<_>>()[..] {
            ["", "apis", group, _] => group.to_owned(),
            _ => String::new(),
        };
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.collection.plural),
            None => target.collection.plural.clone(),
        };
        let watch = query_pairs(query)
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
        let named = target.name.is_some();
        let verb = match *method {
            Method::GET if watch => "watch",
            Method::GET if named => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => return None,
        };
        Some(Access {
            verb: verb.to_owned(),
            group,
            resource,
        })
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)
    }
}

/// The accesses a [`Recording`] client made. Cheap to clone; clones share the log.
#[derive(Clone, Debug, Default)]
pub struct AccessLog(Arc<Mutex<BTreeSet<Access>>>);

impl AccessLog {
    /// Adds one access (for requests made by a stand-in rather than through the client).
    pub fn record(&self, access: Access) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(access);
    }

    /// Every access seen, sorted, each once.
    pub fn accesses(&self) -> Vec<Access> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// A client-side service that records each request's [`Access`] and forwards it.
#[derive(Clone, Debug)]
pub struct Recording {
    server: ApiServer,
    log: AccessLog,
}

impl Recording {
    /// Records into `log`, forwards to `server`.
    pub fn new(server: ApiServer, log: AccessLog) -> Self {
        Recording { server, log }
    }
}

impl tower::Service<Request<Body>> for Recording {
    type Response = Response<UnsyncBoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.server, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let uri = request.uri();
        if let Some(access) = Access::of_request(request.method(), uri.path(), uri.query()) {
            self.log.record(access);
        }
        tower::Service::call(&mut self.server, request)
    }
}

impl ApiServer {
    /// A `kube::Client` on this server (default namespace `default_namespace`) that records
    /// every request's [`Access`] in `log`.
    pub fn recording_client(&self, default_namespace: &str, log: &AccessLog) -> kube::Client {
        kube::Client::new(Recording::new(self.clone(), log.clone()), default_namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(method: Method, path: &str, query: Option<&str>) -> Option<String> {
        Access::of_request(&method, path, query).map(|a| a.to_string())
    }

    #[test]
    fn verbs_follow_the_api_servers_request_info_rules() {
        let pods = "/api/v1/namespaces/ns/pods";
        let cases = [
            (Method::GET, format!("{pods}/p"), None, "get core/pods"),
            (Method::GET, pods.to_owned(), None, "list core/pods"),
            (
                Method::GET,
                "/api/v1/pods".into(),
                Some("watch=true"),
                "watch core/pods",
            ),
            (Method::POST, pods.to_owned(), None, "create core/pods"),
            (Method::PUT, format!("{pods}/p"), None, "update core/pods"),
            (
                Method::PATCH,
                format!("{pods}/p/status"),
                None,
                "patch core/pods/status",
            ),
            (
                Method::DELETE,
                format!("{pods}/p"),
                None,
                "delete core/pods",
            ),
            (
                Method::DELETE,
                pods.to_owned(),
                None,
                "deletecollection core/pods",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l".into(),
                None,
                "update coordination.k8s.io/leases",
            ),
            (Method::GET, "/api/v1/nodes".into(), None, "list core/nodes"),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(
                access(method, &path, query).as_deref(),
                Some(want),
                "{path}"
            );
        }
    }

    #[test]
    fn discovery_and_version_need_no_resource_rule() {
        assert_eq!(access(Method::GET, "/version", None), None);
        assert_eq!(access(Method::GET, "/apis", None), None);
    }
}
