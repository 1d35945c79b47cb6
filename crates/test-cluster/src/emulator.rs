//! What the HTTP emulators ([`sms`](crate::sms), [`cm`](crate::cm)) share: a hyper server on
//! `127.0.0.1:0`, the log of the requests it received, and faults a test injects.
//!
//! A fault applies to the next matching requests ([`Scope`]): [`Fault::Http500`] and
//! [`Fault::Envelope500`] answer instead of the emulator (its state is unchanged);
//! [`Fault::Slow`] lets the emulator answer — its state changes as for any request — and
//! holds the reply back for the delay, as a server that is slow to reply would.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A request as the emulator received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The query parameters (url-decoded).
    pub query: BTreeMap<String, String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body: its JSON, `Null` when empty, a JSON string when it is not JSON.
    pub body: serde_json::Value,
}

/// A fault to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 (the SMS's error body `{"error":"injected failure"}`, the CM's plain text).
    Http500,
    /// HTTP 200 with the CM's failure envelope `{"code":500,"msg":<msg>}`.
    Envelope500(String),
    /// The normal answer, after this delay.
    Slow(Duration),
}

/// Which requests a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The next `k` requests, whatever their path.
    Next(u32),
    /// The next `times` requests to `path`.
    Path {
        /// The URL path, e.g. `/pvcs/use`.
        path: String,
        /// How many requests (`u32::MAX`: every one).
        times: u32,
    },
}

impl Scope {
    /// Every request to `path`.
    pub fn always(path: &str) -> Scope {
        Scope::Path {
            path: path.to_owned(),
            times: u32::MAX,
        }
    }

    /// The next `times` requests to `path`.
    pub fn path(path: &str, times: u32) -> Scope {
        Scope::Path {
            path: path.to_owned(),
            times,
        }
    }
}

/// An injected fault and how many more requests it applies to.
#[derive(Clone, Debug)]
struct Injected {
    fault: Fault,
    path: Option<String>,
    left: u32,
}

/// An emulator's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
}

impl Answer {
    /// 200 with `body`.
    pub(crate) fn ok(body: impl Into<String>) -> Self {
        Answer {
            status: StatusCode::OK,
            body: body.into(),
        }
    }

    /// 200 with `value` as JSON.
    pub(crate) fn json(value: &serde_json::Value) -> Self {
        Answer::ok(value.to_string())
    }

    /// `status` with `body`.
    pub(crate) fn status(status: StatusCode, body: impl Into<String>) -> Self {
        Answer {
            status,
            body: body.into(),
        }
    }
}

/// Answers a request from the emulator's state (called with no lock held by the server).
pub(crate) type Handler = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

/// Shared between the server task and the emulator handle.
#[derive(Default)]
struct Shared {
    log: Vec<Recorded>,
    faults: Vec<Injected>,
}

/// A running server. Dropping it stops the server and its connections.
pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
    http500_body: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    query_pairs(query).into_iter().collect()
}

/// The decoded `key=value` pairs of a URL query, in order and with repeated keys kept
/// (`command=a&command=b`, as the Kubernetes exec API sends an argv).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Server {
    /// Serves `handler` on `127.0.0.1:0`; `http500_body` is the body of an injected 500.
    pub(crate) async fn start(
        handler: Handler,
        http500_body: &'static str,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let handler = handler.clone();
                        let state = state.clone();
                        async move {
                            Ok::<_, Infallible>(serve_one(req, handler, state, http500_body).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Server {
            addr,
            shared,
            task,
            http500_body,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, oldest first.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).log.clone()
    }

    /// Forgets the requests received so far.
    pub(crate) fn clear_requests(&self) {
        lock(&self.shared).log.clear();
    }

    /// Injects `fault` for the requests of `scope`.
    pub(crate) fn inject(&self, fault: Fault, scope: Scope) {
        let (path, left) = match scope {
            Scope::Next(k) => (None, k),
            Scope::Path { path, times } => (Some(path), times),
        };
        lock(&self.shared)
            .faults
            .push(Injected { fault, path, left });
    }

    /// Removes every injected fault.
    pub(crate) fn clear_faults(&self) {
        lock(&self.shared).faults.clear();
    }

    /// The body of an injected HTTP 500.
    #[allow(dead_code)]
    pub(crate) fn http500_body(&self) -> &'static str {
        self.http500_body
    }
}

async fn serve_one(
    req: Request<Incoming>,
    handler: Handler,
    shared: Arc<Mutex<Shared>>,
    http500_body: &'static str,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = query_map(req.uri().query());
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    let recorded = Recorded {
        method,
        path,
        query,
        content_type,
        body,
    };
    let fault = {
        let mut shared = lock(&shared);
        shared.log.push(recorded.clone());
        let found = shared
            .faults
            .iter_mut()
            .find(|f| f.left > 0 && f.path.as_ref().is_none_or(|p| *p == recorded.path));
        let fault = found.map(|f| {
            if f.left != u32::MAX {
                f.left -= 1;
            }
            f.fault.clone()
        });
        shared.faults.retain(|f| f.left > 0);
        fault
    };
    let answer = match fault {
        Some(Fault::Http500) => Answer::status(StatusCode::INTERNAL_SERVER_ERROR, http500_body),
        Some(Fault::Envelope500(msg)) => {
            Answer::json(&serde_json::json!({"code": 500, "msg": msg}))
        }
        Some(Fault::Slow(delay)) => {
            let answer = handler(&recorded);
            tokio::time::sleep(delay).await;
            answer
        }
        None => handler(&recorded),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = query_map(Some("name=pvc+1&workflowId=a%26b&empty="));
        assert_eq!(q["name"], "pvc 1");
        assert_eq!(q["workflowId"], "a&b");
        assert_eq!(q["empty"], "");
        assert_eq!(decode("100%"), "100%");
    }
}
