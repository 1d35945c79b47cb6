//! [`CallbackServer`]: the hyper server of the callbacks (HTTP/1.1).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body as HttpBody;
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::request::{self, Body, Callback};
use super::CallbackToken;
use crate::ports::PortError;
use crate::status::{StatusError, StatusMonitor, SyncOutcome};

/// The body of a successful answer, as the original's.
pub const OK_BODY: &str = r#"{"status":"ok","msg":{}}"#;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// How long to wait before accepting again after an accept error that is not about one
/// connection (e.g. too many open files).
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Why the callback server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The address could not be bound.
    #[error("cannot listen for callbacks on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The listener's local address could not be read.
    #[error("cannot read the callback listener's address: {0}")]
    LocalAddr(#[source] io::Error),
}

/// Tunables of the [`CallbackServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackConfig {
    /// The largest body accepted; a larger one is 413. Default 64 KiB (a callback body is
    /// under 200 bytes; the original allowed 10 MB).
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long [`CallbackServer::serve`] waits for open connections after the shutdown.
    /// Default 5 s.
    pub drain_timeout: Duration,
    /// The `Retry-After` seconds of a 503 (follower, busy cluster). Default 5.
    pub retry_after_secs: u32,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            max_body_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
            retry_after_secs: 5,
        }
    }
}

/// Binds a TCP listener on `addr` for [`CallbackServer::serve`] (port 0 picks a free
/// port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, CallbackError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CallbackError::Bind { addr, source })
}

/// The callback server; see the [module](super) docs for the routes and answers.
#[derive(Clone, Debug)]
pub struct CallbackServer {
    monitor: StatusMonitor,
    token: Arc<CallbackToken>,
    config: CallbackConfig,
}

impl CallbackServer {
    /// A server applying the callbacks through `monitor` (whose leadership it obeys) to
    /// requests that present `token`.
    pub fn new(monitor: StatusMonitor, token: CallbackToken) -> Self {
        CallbackServer {
            monitor,
            token: Arc::new(token),
            config: CallbackConfig::default(),
        }
    }

    /// Replaces the tunables.
    #[must_use]
    pub fn with_config(mut self, config: CallbackConfig) -> Self {
        self.config = config;
        self
    }

    /// The tunables.
    pub fn config(&self) -> &CallbackConfig {
        &self.config
    }

    /// Serves `listener` until `shutdown` resolves: each connection on its own task, with
    /// keep-alive and the header read timeout. On shutdown the listener closes, requests in
    /// flight finish (their folds run to the end on their own tasks), and this returns when
    /// the connections are gone or after the drain timeout.
    ///
    /// # Errors
    /// [`CallbackError::LocalAddr`] when the listener's address cannot be read.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CallbackError> {
        let addr = listener.local_addr().map_err(CallbackError::LocalAddr)?;
        tracing::info!(%addr, "serving the cluster manager callbacks");
        let server = Arc::new(self);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(server.config.header_read_timeout);
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
                            let handler = Arc::clone(&handler);
                            async move { Ok::<_, Infallible>(handler.handle(request, peer).await) }
                        });
                        let connection =
                            graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        connections.spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%peer, %error, "callback connection failed");
                            }
                        });
                    }
                    Err(error) if is_connection_error(&error) => {
                        tracing::debug!(%error, "callback accept failed");
                    }
                    Err(error) => {
                        tracing::warn!(%error, backoff = ?ACCEPT_BACKOFF, "callback accept failed");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                },
            }
        }
        drop(listener);
        let drain_timeout = server.config.drain_timeout;
        tokio::select! {
            () = graceful.shutdown() => tracing::info!(%addr, "callback server stopped"),
            () = tokio::time::sleep(drain_timeout) => {
                tracing::warn!(%addr, ?drain_timeout, "callback connections still open after the drain timeout; dropping them");
                connections.abort_all();
            }
        }
        Ok(())
    }

    /// Answers one request (see the [module](super) table), and logs its method, path,
    /// peer and status — never a header or the body.
    pub async fn handle<B>(&self, request: Request<B>, peer: SocketAddr) -> Response<Full<Bytes>>
    where
        B: HttpBody<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = self.respond(request).await;
        let status = response.status().as_u16();
        if response.status().is_success() {
            tracing::info!(%peer, %method, %path, status, "callback applied");
        } else {
            tracing::info!(%peer, %method, %path, status, "callback refused");
        }
        response
    }

    async fn respond<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: HttpBody<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(route) = request::route(request.uri().path()) else {
            return text(StatusCode::NOT_FOUND, "not found");
        };
        if request.method() != Method::POST {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        if !self.authorized(&request) {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="mpd-callbacks""#),
            );
            return response;
        }
        if !self.monitor.leadership().is_leader() {
            return self.unavailable("not the leader: callbacks are applied by the leader replica");
        }
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes) {
            return too_large(self.config.max_body_bytes);
        }
        let bytes = match Limited::new(request.into_body(), self.config.max_body_bytes)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return too_large(self.config.max_body_bytes);
            }
            Err(error) => {
                return owned_text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {error}"),
                )
            }
        };
        let body = match request::parse_body(route.callback, &bytes) {
            Ok(body) => body,
            Err(message) => return owned_text(StatusCode::BAD_REQUEST, message),
        };
        // The fold runs on its own task: a client that goes away does not cut it short.
        let monitor = self.monitor.clone();
        let cluster = route.cluster.clone();
        let applied = tokio::spawn(async move {
            match body {
                Body::RwIns { endpoint } => monitor.record_rw(&cluster, &endpoint).await,
                Body::EngineStatus {
                    endpoint,
                    engine_status,
                    reason,
                } => {
                    monitor
                        .record_engine_status(&cluster, &endpoint, &engine_status, &reason)
                        .await
                }
            }
        })
        .await;
        match applied {
            Ok(outcome) => self.answer(route.callback, &route.cluster, outcome),
            Err(error) => owned_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the callback failed: {error}"),
            ),
        }
    }

    fn authorized<B>(&self, request: &Request<B>) -> bool {
        let mut values = request.headers().get_all(AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => self.token.matches_header(value.as_bytes()),
            _ => false,
        }
    }

    fn answer(
        &self,
        callback: Callback,
        cluster: &crate::ports::ClusterRef,
        outcome: Result<SyncOutcome, StatusError>,
    ) -> Response<Full<Bytes>> {
        match outcome {
            Ok(SyncOutcome::Updated { .. } | SyncOutcome::Unchanged) => {
                response(StatusCode::OK, JSON, OK_BODY)
            }
            Ok(SyncOutcome::Skipped(skip)) => owned_text(
                StatusCode::CONFLICT,
                format!(
                    "cluster {cluster} is {}: {callback:?} not applied",
                    skip.reason()
                ),
            ),
            Err(error) => {
                let message = error.to_string();
                match error {
                    StatusError::NotLeader | StatusError::Busy { .. } => self.unavailable(&message),
                    StatusError::NotFound { .. }
                    | StatusError::Port(PortError::NotFound { .. }) => {
                        owned_text(StatusCode::NOT_FOUND, message)
                    }
                    StatusError::Domain(_) => owned_text(StatusCode::BAD_REQUEST, message),
                    StatusError::Port(PortError::Unavailable { .. }) => self.unavailable(&message),
                    StatusError::Port(_) | StatusError::Write(_) => {
                        owned_text(StatusCode::INTERNAL_SERVER_ERROR, message)
                    }
                }
            }
        }
    }

    fn unavailable(&self, message: &str) -> Response<Full<Bytes>> {
        let mut response = owned_text(StatusCode::SERVICE_UNAVAILABLE, message.to_owned());
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(self.config.retry_after_secs));
        response
    }
}

fn too_large(limit: usize) -> Response<Full<Bytes>> {
    owned_text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {limit} bytes"),
    )
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    response(status, TEXT, body)
}

fn owned_text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    response(status, TEXT, body)
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

/// Accept errors about one connection, which the next accept does not repeat.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
