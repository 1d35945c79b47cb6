//! The fake API server: a `tower` service in front of `kube-fake-client` that adds what the
//! fake leaves out and the operator relies on.
//!
//! - **Finalizers.** A DELETE of an object with finalizers sets `metadata.deletionTimestamp`
//!   and keeps the object; it goes once an update or patch leaves its finalizers empty.
//!   The fake stores `deletionTimestamp` as immutable and deletes at once, so the timestamp
//!   lives here, beside the fake, and is added to every object this server returns (GET,
//!   LIST, the reply of a PUT or PATCH). Bodies sent back with the timestamp have it removed
//!   before they reach the fake.
//! - **Graceful pod deletion.** A DELETE of a pod without `gracePeriodSeconds: 0` marks it
//!   terminating the same way; the test kubelet removes it on its next pass, as a node would
//!   once the containers stopped.
//! - **Background garbage collection.** A DELETE reaches the fake with
//!   `propagationPolicy=Orphan`: the fake would cascade at once and ignore the dependents'
//!   finalizers. The kubelet's garbage collector removes dependents whose controller owner
//!   is gone, through this server, so their finalizers are honoured. `Foreground` is treated
//!   as `Background`.
//! - **Watches** (`watch=true`) get a stream that stays open and sends nothing (the fake
//!   has no watch), so a `kube::runtime` watcher can start; it sees changes only through
//!   its re-lists.
//!
//! The server also remembers every collection it saw objects of (and the `apiVersion` and
//! `kind` they hold), which is what the garbage collector lists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, StreamBody};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use serde_json::Value;

use crate::emulator::query_pairs;

/// The error type of the service (what `kube::Client::new` accepts).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A collection of one resource type: `/api/v1` + `pods`, `/apis/apps/v1` + `deployments`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Collection {
    /// `/api/<version>` or `/apis/<group>/<version>`.
    pub prefix: String,
    /// The plural resource name.
    pub plural: String,
}

impl Collection {
    /// A collection from its prefix and plural.
    pub fn new(prefix: impl Into<String>, plural: impl Into<String>) -> Self {
        Collection {
            prefix: prefix.into(),
            plural: plural.into(),
        }
    }

    /// The collection of a resource type, from its `url_path` (`/api/v1/namespaces/x/pods`
    /// or `/api/v1/nodes`).
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Option<Self> {
        let path = K::url_path(&(), Some("x"));
        parse_path(&path).map(|target| target.collection)
    }

    /// The core pods collection.
    pub fn pods() -> Self {
        Collection::new("/api/v1", "pods")
    }

    /// The path that lists the collection in every namespace.
    pub fn list_path(&self) -> String {
        format!("{}/{}", self.prefix, self.plural)
    }

    /// The path of one object (`namespace` empty or `None` for cluster-scoped objects).
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace.filter(|ns| !ns.is_empty()) {
            Some(ns) => format!("{}/namespaces/{ns}/{}/{name}", self.prefix, self.plural),
            None => format!("{}/{}/{name}", self.prefix, self.plural),
        }
    }
}

/// What a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) collection: Collection,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

/// Parses `/api/v1/namespaces/ns/pods/name/status` and the like; `None` for other paths
/// (discovery, `/version`).
pub(crate) fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match *segs.first()? {
        "api" => (format!("/api/{}", segs.get(1)?), segs.get(2..)?),
        "apis" => (
            format!("/apis/{}/{}", segs.get(1)?, segs.get(2)?),
            segs.get(3..)?,
        ),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some((*ns).to_string()), tail),
        other => (None, other),
    };
    let plural = rest.first()?.to_string();
    if plural.is_empty() {
        return None;
    }
    Some(Target {
        collection: Collection::new(prefix, plural),
        namespace,
        name: rest.get(1).map(|s| (*s).to_string()),
        subresource: rest.get(2).map(|s| (*s).to_string()),
    })
}

/// One object: collection, namespace (empty when cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub(crate) collection: Collection,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ObjectKey {
    pub(crate) fn path(&self) -> String {
        self.collection
            .object_path(Some(&self.namespace), &self.name)
    }
}

/// An object being deleted.
#[derive(Clone, Debug)]
struct Deleting {
    /// The uid of the object the mark belongs to (a new object of the same name is not
    /// being deleted).
    uid: String,
    /// The JSON `deletionTimestamp`.
    at: Value,
    /// A pod in graceful termination: the kubelet removes it, not the last finalizer.
    graceful_pod: bool,
}

/// What the server remembers besides the fake's objects.
#[derive(Debug, Default)]
struct ServerState {
    deleting: HashMap<ObjectKey, Deleting>,
    collections: BTreeSet<Collection>,
    kinds: BTreeMap<(String, String), Collection>,
}

/// The fake API server (see the module docs). Cheap to clone; clones share state.
#[derive(Clone)]
pub struct ApiServer {
    inner: kube::Client,
    state: Arc<Mutex<ServerState>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").finish_non_exhaustive()
    }
}

/// A reply: status and JSON body.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

fn json_reply(status: StatusCode, value: &Value) -> Reply {
    Reply {
        status,
        body: Bytes::from(value.to_string()),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn has_finalizers(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null)
}

/// Removes `metadata.deletionTimestamp` (and the grace period) from a body the client sends
/// back; JSON-patch operations on them are dropped.
fn strip_deletion(body: &mut Value) {
    match body {
        Value::Object(obj) => {
            if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
                meta.remove("deletionTimestamp");
                meta.remove("deletionGracePeriodSeconds");
            }
        }
        Value::Array(ops) => ops.retain(|op| {
            op.get("path")
                .and_then(Value::as_str)
                .is_none_or(|p| !p.starts_with("/metadata/deletion"))
        }),
        _ => {}
    }
}

impl ApiServer {
    /// A server in front of `inner` (a `kube-fake-client` client).
    pub fn new(inner: kube::Client) -> Self {
        ApiServer {
            inner,
            state: Arc::new(Mutex::new(ServerState::default())),
        }
    }

    /// A `kube::Client` that talks to this server, with `default_namespace`.
    pub fn client(&self, default_namespace: &str) -> kube::Client {
        kube::Client::new(self.clone(), default_namespace)
    }

    fn state(&self) -> MutexGuard<'_, ServerState> {
        // A panic while the lock was held leaves plain maps behind; keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that `collection` holds objects of `apiVersion`/`kind`.
    pub fn remember(&self, collection: Collection, api_version: &str, kind: &str) {
        let mut state = self.state();
        state.collections.insert(collection.clone());
        if !api_version.is_empty() && !kind.is_empty() {
            state
                .kinds
                .insert((api_version.to_string(), kind.to_string()), collection);
        }
    }

    /// Every collection seen so far.
    pub fn collections(&self) -> Vec<Collection> {
        self.state().collections.iter().cloned().collect()
    }

    /// The collection of objects of `apiVersion`/`kind`, if one was seen.
    pub fn collection_of(&self, api_version: &str, kind: &str) -> Option<Collection> {
        self.state()
            .kinds
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    /// Removes an object at once, whatever its finalizers (a node that vanished, a
    /// terminated pod). Returns whether it existed.
    pub async fn remove(
        &self,
        collection: &Collection,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, kube::Error> {
        let key = ObjectKey {
            collection: collection.clone(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: name.to_string(),
        };
        let reply = self.forward_delete_orphan(&key.path()).await?;
        self.state().deleting.remove(&key);
        Ok(reply.is_success())
    }

    async fn send(&self, request: Request<Body>) -> Result<Reply, kube::Error> {
        let response = self.inner.send(request).await?;
        let status = response.status();
        let body = response.into_body().collect_bytes().await?;
        Ok(Reply { status, body })
    }

    async fn get(&self, path: &str) -> Result<Reply, kube::Error> {
        let request = Request::get(path)
            .body(Body::empty())
            .map_err(kube::Error::HttpError)?;
        self.send(request).await
    }

    async fn forward_delete_orphan(&self, path: &str) -> Result<Reply, kube::Error> {
        let request = Request::delete(format!("{path}?propagationPolicy=Orphan"))
            .body(Body::empty())
            .map_err(kube::Error::HttpError)?;
        self.send(request).await
    }

    /// Adds the deletion timestamp to `obj` if it is being deleted (clearing a mark that
    /// belongs to an older object of the same name).
    fn decorate(&self, key: &ObjectKey, obj: &mut Value) {
        let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
        let mut state = self.state();
        let Some(mark) = state.deleting.get(key) else {
            return;
        };
        if mark.uid != uid {
            state.deleting.remove(key);
            return;
        }
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            meta.insert("deletionTimestamp".into(), mark.at.clone());
            if mark.graceful_pod {
                meta.insert("deletionGracePeriodSeconds".into(), Value::from(30));
            }
        }
    }

    fn key_of(target: &Target, obj: &Value) -> Option<ObjectKey> {
        let name = target
            .name
            .clone()
            .or_else(|| meta_str(obj, "name").map(str::to_string))?;
        let namespace = target
            .namespace
            .clone()
            .or_else(|| meta_str(obj, "namespace").map(str::to_string))
            .unwrap_or_default();
        Some(ObjectKey {
            collection: target.collection.clone(),
            namespace,
            name,
        })
    }

    fn remember_object(&self, collection: &Collection, obj: &Value) {
        let api_version = obj.get("apiVersion").and_then(Value::as_str);
        let kind = obj.get("kind").and_then(Value::as_str);
        self.remember(
            collection.clone(),
            api_version.unwrap_or_default(),
            kind.unwrap_or_default(),
        );
    }

    async fn handle(&self, request: Request<Body>) -> Result<Response<Body>, kube::Error> {
        let target = parse_path(request.uri().path());
        let (parts, body) = request.into_parts();
        let body = body.collect_bytes().await?;
        let Some(target) = target else {
            return self.passthrough(parts, body).await;
        };
        let reply = match (parts.method.clone(), target.subresource.as_deref()) {
            (Method::DELETE, None) if target.name.is_some() => {
                self.delete(&target, parts.uri.query(), &body).await?
            }
            (Method::PUT | Method::PATCH, None | Some("status")) if target.name.is_some() => {
                self.write(&target, parts, body).await?
            }
            (Method::GET, None | Some("status")) => {
                let reply = self
                    .send(Request::from_parts(parts, Body::from(body)))
                    .await?;
                self.decorate_reply(&target, reply)
            }
            (Method::POST, None) if target.name.is_none() => {
                let reply = self
                    .send(Request::from_parts(parts, Body::from(body)))
                    .await?;
                if let (true, Some(obj)) = (reply.is_success(), reply.json()) {
                    self.remember_object(&target.collection, &obj);
                }
                reply
            }
            _ => {
                self.send(Request::from_parts(parts, Body::from(body)))
                    .await?
            }
        };
        Ok(into_response(reply))
    }

    async fn passthrough(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Body>, kube::Error> {
        let reply = self
            .send(Request::from_parts(parts, Body::from(body)))
            .await?;
        Ok(into_response(reply))
    }

    fn decorate_reply(&self, target: &Target, reply: Reply) -> Reply {
        if !reply.is_success() {
            return reply;
        }
        let Some(mut value) = reply.json() else {
            return reply;
        };
        if target.name.is_some() {
            if let Some(key) = Self::key_of(target, &value) {
                self.decorate(&key, &mut value);
            }
        } else if let Some(Value::Array(items)) = value.get_mut("items") {
            for item in items.iter_mut() {
                self.remember_object(&target.collection, item);
                let item_target = Target {
                    namespace: None,
                    ..target.clone()
                };
                if let Some(key) = Self::key_of(&item_target, item) {
                    self.decorate(&key, item);
                }
            }
        }
        json_reply(reply.status, &value)
    }

    async fn write(
        &self,
        target: &Target,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<Reply, kube::Error> {
        let body = match serde_json::from_slice::<Value>(&body) {
            Ok(mut value) => {
                strip_deletion(&mut value);
                Bytes::from(value.to_string())
            }
            Err(_) => body,
        };
        let reply = self
            .send(Request::from_parts(parts, Body::from(body)))
            .await?;
        let Some(mut obj) = reply.json().filter(|_| reply.is_success()) else {
            return Ok(reply);
        };
        let Some(key) = Self::key_of(target, &obj) else {
            return Ok(reply);
        };
        self.decorate(&key, &mut obj);
        let finished = {
            let state = self.state();
            state
                .deleting
                .get(&key)
                .is_some_and(|mark| !mark.graceful_pod && !has_finalizers(&obj))
        };
        if finished {
            self.forward_delete_orphan(&key.path()).await?;
            self.state().deleting.remove(&key);
        }
        Ok(json_reply(reply.status, &obj))
    }

    async fn delete(
        &self,
        target: &Target,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, kube::Error> {
        let path = target.collection.object_path(
            target.namespace.as_deref(),
            target.name.as_deref().unwrap_or_default(),
        );
        let current = self.get(&path).await?;
        let Some(mut obj) = current.json().filter(|_| current.is_success()) else {
            return Ok(current);
        };
        let Some(key) = Self::key_of(target, &obj) else {
            return Ok(current);
        };
        let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let grace = query_pairs(query)
            .into_iter()
            .find(|(k, _)| k == "gracePeriodSeconds")
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .or_else(|| options.get("gracePeriodSeconds").and_then(Value::as_i64));
        let is_pod = target.collection == Collection::pods();
        let graceful_pod = is_pod && grace != Some(0);
        let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
        let already = self
            .state()
            .deleting
            .get(&key)
            .is_some_and(|mark| mark.uid == uid);
        if already && !(is_pod && grace == Some(0)) {
            self.decorate(&key, &mut obj);
            return Ok(json_reply(StatusCode::OK, &obj));
        }
        if has_finalizers(&obj) || graceful_pod {
            self.state().deleting.insert(
                key.clone(),
                Deleting {
                    uid,
                    at: now(),
                    graceful_pod,
                },
            );
            self.decorate(&key, &mut obj);
            return Ok(json_reply(StatusCode::OK, &obj));
        }
        let reply = self.forward_delete_orphan(&path).await?;
        self.state().deleting.remove(&key);
        Ok(reply)
    }
}

fn into_response(reply: Reply) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl tower::Service<Request<Body>> for ApiServer {
    type Response = Response<UnsyncBoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let is_watch = query_pairs(request.uri().query())
                .iter()
                .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
            if is_watch && parse_path(request.uri().path()).is_some() {
                let open = futures::stream::pending::<Result<http_body::Frame<Bytes>, BoxError>>();
                return Ok(Response::new(UnsyncBoxBody::new(StreamBody::new(open))));
            }
            let response = this.handle(request).await?;
            Ok(response.map(|body| body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()))
        })
    }
}
