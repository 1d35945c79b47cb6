//! The cluster manager's callbacks, served by the operator (domain §5): a CM reports a new
//! RW or an engine's state, and the [`StatusMonitor`](crate::status::StatusMonitor) folds
//! it into the MPDCluster at once instead of at the next resync.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v1/namespace/{ns}/name/{name}/rw_ins`, body `{"endpoint":"<clientIP>:<port>"}` | the RW moves to that endpoint, the status is written, the two pods are relabelled; 200 `{"status":"ok","msg":{}}` |
//! | `POST /api/v1/namespace/{ns}/name/{name}/meta/engine_status`, body `{"endpoint","engineStatus","reason"}` | the instance's current state becomes `{engineStatus, reason, now}`, the former one its last state; 200 `{"status":"ok","msg":{}}` |
//! | no `Authorization: Bearer <token>`, a wrong token, or several `Authorization` headers | 401 with `WWW-Authenticate: Bearer` |
//! | this replica is not the leader | 503 with `Retry-After`; nothing applied |
//! | a body that is not a JSON object of strings, a missing key (`please input param: <key>`), an empty `endpoint` or `engineStatus` | 400, the reason as text |
//! | an endpoint no instance of the cluster has | 400 |
//! | a body over [`CallbackConfig::max_body_bytes`] | 413 |
//! | an unknown cluster | 404 |
//! | a cluster the monitor leaves alone (another operator's, a local one, being deleted, not created yet) | 409 |
//! | a flow held the cluster longer than the monitor waits, or its store is unreachable | 503 with `Retry-After` |
//! | a failed write | 500 |
//! | another path | 404; another method on a callback path: 405 with `Allow: POST` |
//!
//! Errors are plain text. The order of the checks is: route, method, token, leadership,
//! body: a caller without the token learns nothing about leadership or bodies.
//!
//! **The token** ([`CallbackToken`]) is read from a Secret (by default
//! [`DEFAULT_TOKEN_SECRET`], key [`TOKEN_KEY`], in the operator's namespace), compared in
//! constant time, and never logged: the server logs a request's peer, method, path and
//! status, never its headers or body.
//!
//! **Own listener.** The callbacks are served on their own port (the original's
//! [`DEFAULT_PORT`]), not on the `/metrics` server of wf-kube: they are reached by the
//! cluster managers (host-network pods on the database nodes) while `/metrics` and the
//! probes are for Prometheus and the kubelet; they need the bearer token while the probes
//! must not; and wf-kube stays generic, with no routes of one operator.
//!
//! **On a follower** every replica listens, but only the leader applies: a follower answers
//! 503 and the caller retries (the Service may route it to either replica). What a caller
//! gives up on is picked up by the periodic resync.
//!
//! # Example
//!
//! ```no_run
//! use shared_storage::callbacks::{self, CallbackServer, CallbackToken};
//! # async fn run(monitor: shared_storage::status::StatusMonitor, client: kube::Client)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let token = CallbackToken::from_secret(
//!     client,
//!     "polardb-mpd-system",
//!     callbacks::DEFAULT_TOKEN_SECRET,
//!     callbacks::TOKEN_KEY,
//! )
//! .await?;
//! let listener = callbacks::bind(([0, 0, 0, 0], callbacks::DEFAULT_PORT).into()).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(CallbackServer::new(monitor, token).serve(listener, async {
//!     let _ = stopped.await;
//! }));
//! // ... until SIGTERM ...
//! let _ = stop.send(());
//! server.await??;
//! # Ok(()) }
//! ```

mod request;
mod server;
mod token;

pub use request::{parse_body, route, Body, Callback, Route};
pub use server::{bind, CallbackConfig, CallbackError, CallbackServer, OK_BODY};
pub use token::{CallbackToken, TokenError, DEFAULT_TOKEN_SECRET, MIN_TOKEN_LEN, TOKEN_KEY};

/// The callback port: the one the original's Deployment and Service used (6099; NodePort
/// 16099 in front of it).
pub const DEFAULT_PORT: u16 = 6099;
