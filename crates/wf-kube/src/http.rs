//! The operator's HTTP endpoints, served with hyper (HTTP/1.1 only):
//!
//! | route          | answer                                                                 |
//! |----------------|------------------------------------------------------------------------|
//! | `GET /metrics` | 200, [`WorkflowMetrics::render`] plus the `wf_leader` and `wf_ready` gauges, as `text/plain; version=0.0.4` |
//! | `GET /healthz` | 200 `ok` when [`Health::liveness`] is `Ok`, else 503 with the reason   |
//! | `GET /readyz`  | 200 `ok` when [`Health::readiness`] is `Ok`, else 503 with the reason  |
//! | other paths    | 404                                                                    |
//! | other methods  | 405 with `allow: GET, HEAD`                                            |
//!
//! `HEAD` is answered like `GET`, without the body. The query string is ignored.
//!
//! Each connection is served on its own task. When the shutdown future resolves, the server
//! stops accepting, lets the requests in flight finish, closes idle keep-alive connections,
//! and returns once they are all gone (or after [`HttpServer::drain_timeout`], dropping the
//! stragglers).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use wf_kube::{http, Health, WorkflowMetrics};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = Arc::new(WorkflowMetrics::new()); // also registered as a workflow hook
//! let health = Arc::new(Health::new());
//! let listener = http::bind(([0, 0, 0, 0], 8080).into()).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(http::serve(listener, metrics.clone(), health.clone(), async {
//!     let _ = stopped.await;
//! }));
//! health.set_ready(true);
//! // ... run the controller until SIGTERM ...
//! health.set_shutting_down();
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::{Health, WorkflowMetrics};

/// The content type of `/metrics`: the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of every other answer.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The methods the routes accept.
const ALLOWED: &str = "GET, HEAD";

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before accepting again after an accept error that is not about one
/// connection (e.g. too many open files).
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// An HTTP server failure.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The listener's local address could not be read.
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(#[source] io::Error),
}

/// Binds a TCP listener on `addr` for [`serve`] (port 0 picks a free port; read it with
/// [`TcpListener::local_addr`]).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// Serves the routes of the module table on `listener` until `shutdown` resolves, then
/// drains the connections (see [`HttpServer::serve`]).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<WorkflowMetrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HttpError> {
    HttpServer::new(metrics, health)
        .serve(listener, shutdown)
        .await
}

/// The `/metrics`, `/healthz` and `/readyz` server.
#[derive(Clone, Debug)]
pub struct HttpServer {
    metrics: Arc<WorkflowMetrics>,
    health: Arc<Health>,
    drain_timeout: Duration,
}

impl HttpServer {
    /// A server answering from `metrics` and `health`, with a drain timeout of 5 s.
    pub fn new(metrics: Arc<WorkflowMetrics>, health: Arc<Health>) -> Self {
        HttpServer {
            metrics,
            health,
            drain_timeout: Duration::from_secs(5),
        }
    }

    /// How long [`HttpServer::serve`] waits, after the shutdown future resolved, for the open
    /// connections to finish before dropping them. Keep it under the pod's
    /// `terminationGracePeriodSeconds`.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The answer to `method path` (see the module table), with the full body even for
    /// `HEAD` (hyper leaves it out on the wire).
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let route = match path {
            "/metrics" => Route::Metrics,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            _ => return text(StatusCode::NOT_FOUND, "not found"),
        };
        if method != Method::GET && method != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOWED));
            return response;
        }
        match route {
            Route::Metrics => response(StatusCode::OK, METRICS_CONTENT_TYPE, self.render_metrics()),
            Route::Healthz => probe(self.health.liveness()),
            Route::Readyz => probe(self.health.readiness()),
        }
    }

    /// The `/metrics` body: [`WorkflowMetrics::render`], then the gauges `wf_leader` and
    /// `wf_ready` (1 or 0, from [`Health::is_leader`] and [`Health::is_ready`]).
    pub fn render_metrics(&self) -> String {
        let mut out = self.metrics.render();
        gauge(
            &mut out,
            "wf_leader",
            "Whether this replica holds the leader lease (1) or not (0).",
            self.health.is_leader(),
        );
        gauge(
            &mut out,
            "wf_ready",
            "Whether the operator is ready (1) or not (0), as /readyz answers.",
            self.health.is_ready(),
        );
        out
    }

    /// Serves `listener` until `shutdown` resolves: each connection on its own task, with
    /// HTTP/1.1 keep-alive and a 10 s limit to send a request's headers. Accept errors are
    /// logged and retried. On shutdown the listener is closed, idle connections are closed,
    /// requests in flight finish, and this returns when every connection is gone or after the
    /// [drain timeout](HttpServer::drain_timeout).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), HttpError> {
        let addr = listener.local_addr().map_err(HttpError::LocalAddr)?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        let server = Arc::new(self);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let handler = Arc::clone(&server);
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            let response = handler.handle(&request, peer);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let connection =
                            graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        connections.spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%peer, %error, "http connection failed");
                            }
                        });
                    }
                    Err(error) if is_connection_error(&error) => {
                        tracing::debug!(%error, "http accept failed");
                    }
                    Err(error) => {
                        tracing::warn!(%error, backoff = ?ACCEPT_BACKOFF, "http accept failed");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                },
            }
        }
        drop(listener);
        tracing::debug!(
            %addr,
            connections = connections.len(),
            "http server stopped accepting; draining"
        );
        let drain_timeout = server.drain_timeout;
        tokio::select! {
            () = graceful.shutdown() => {
                tracing::info!(%addr, "http server stopped");
            }
            () = tokio::time::sleep(drain_timeout) => {
                tracing::warn!(
                    %addr,
                    connections = connections.len(),
                    ?drain_timeout,
                    "http connections still open after the drain timeout; dropping them"
                );
                connections.abort_all();
            }
        }
        Ok(())
    }

    /// One request: route it and log it.
    fn handle<B>(&self, request: &Request<B>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let response = self.respond(request.method(), request.uri().path());
        tracing::debug!(
            %peer,
            method = %request.method(),
            path = request.uri().path(),
            status = response.status().as_u16(),
            "http request"
        );
        response
    }
}

#[derive(Clone, Copy)]
enum Route {
    Metrics,
    Healthz,
    Readyz,
}

/// 200 `ok`, or 503 with the reason.
fn probe(result: Result<(), String>) -> Response<Full<Bytes>> {
    match result {
        Ok(()) => text(StatusCode::OK, "ok"),
        Err(reason) => response(StatusCode::SERVICE_UNAVAILABLE, TEXT_CONTENT_TYPE, reason),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(status, TEXT_CONTENT_TYPE, body)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn gauge(out: &mut String, name: &str, help: &str, value: bool) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {}", u8::from(value));
}

/// Accept errors about one connection, which the next accept does not repeat.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn server() -> HttpServer {
        HttpServer::new(Arc::new(WorkflowMetrics::new()), Arc::new(Health::new()))
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        match response.into_body().collect().await {
            Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn routes_answer_without_a_socket() {
        let server = server();
        let metrics = server.respond(&Method::GET, "/metrics");
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(
            metrics.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static(METRICS_CONTENT_TYPE))
        );
        let text = body(metrics).await;
        assert!(
            text.ends_with("# TYPE wf_ready gauge\nwf_ready 0\n"),
            "{text}"
        );

        let healthz = server.respond(&Method::HEAD, "/healthz");
        assert_eq!(healthz.status(), StatusCode::OK);
        assert_eq!(body(healthz).await, "ok");

        let readyz = server.respond(&Method::GET, "/readyz");
        assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(readyz).await, "not ready");

        assert_eq!(
            server.respond(&Method::GET, "/").status(),
            StatusCode::NOT_FOUND
        );
        // An unknown path is 404 whatever the method.
        assert_eq!(
            server.respond(&Method::DELETE, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        let post = server.respond(&Method::POST, "/readyz");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            post.headers().get(ALLOW),
            Some(&HeaderValue::from_static("GET, HEAD"))
        );
    }

    #[test]
    fn gauges_follow_the_health_flags() {
        let server = server();
        server.health.set_leader(true);
        server.health.set_ready(true);
        let text = server.render_metrics();
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# HELP wf_leader Whether this replica holds the leader lease (1) or not (0).",
            "# TYPE wf_leader gauge",
            "wf_leader 1",
            "# TYPE wf_ready gauge",
            "wf_ready 1",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in\n{text}");
        }
        server.health.set_shutting_down();
        assert!(server.render_metrics().ends_with("\nwf_ready 0\n"));
    }

    #[test]
    fn only_per_connection_accept_errors_are_retried_at_once() {
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!is_connection_error(&io::Error::other(
            "too many open files"
        )));
    }
}
