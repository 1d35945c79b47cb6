//! The one HTTP client of the SMS and CM adapters: real timeouts and bounded retries of
//! transient failures.
//!
//! [`HttpClient::new`] builds a `reqwest` client (rustls) with the connect timeout of
//! [`KubePortsConfig::http_connect_timeout`]; every call has a total timeout (connect, send,
//! and reading the whole reply), [`KubePortsConfig::http_request_timeout`] unless the call
//! sets its own ([`Call::timeout`]). The original had neither (weakness 7).
//!
//! [`HttpClient::send`] retries a **transient** failure — no connection, a timeout, an
//! HTTP 5xx — [`KubePortsConfig::http_retries`] times, [`KubePortsConfig::http_retry_pause`]
//! apart, logging each retry. Anything else is returned at once:
//!
//! | outcome                                   | result                                |
//! |-------------------------------------------|---------------------------------------|
//! | any reply but a 5xx                       | `Ok(Reply)`; the caller reads it      |
//! | a 5xx whose body has a [`Call::final_texts`] text | `Ok(Reply)`: a definite answer (`can not find …`), not a fault |
//! | a 5xx, no connection, a timeout, after the retries | [`HttpFailure::ServerError`] / [`HttpFailure::NoAnswer`] → `PortError::Unavailable` |
//!
//! Errors name the method and the URL path, never the host, the query or the body, so no
//! credential a URL or a body might hold reaches a log line or an error.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use super::KubePortsConfig;
use crate::ports::PortError;

/// The largest reply read; a longer one is a bad reply.
const MAX_REPLY_BYTES: usize = 4 << 20;

/// How much of a server message an error quotes.
const MAX_MESSAGE_CHARS: usize = 512;

/// Why an HTTP call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpFailure {
    /// The base URL and the path do not make a URL.
    #[error("{method} {path}: invalid URL: {message}")]
    InvalidUrl {
        /// The method.
        method: Method,
        /// The URL path.
        path: String,
        /// Why.
        message: String,
    },
    /// The request could not be built (a body that does not serialise).
    #[error("{method} {path}: invalid request: {message}")]
    InvalidRequest {
        /// The method.
        method: Method,
        /// The URL path.
        path: String,
        /// Why.
        message: String,
    },
    /// The reply cannot be used (too large).
    #[error("{method} {path}: unusable reply: {message}")]
    BadReply {
        /// The method.
        method: Method,
        /// The URL path.
        path: String,
        /// Why.
        message: String,
    },
    /// No reply: no connection, a reset, or the timeout, on the last attempt.
    #[error("{method} {path}: no answer after {attempts} attempt(s): {cause}")]
    NoAnswer {
        /// The method.
        method: Method,
        /// The URL path.
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// The transport error of the last attempt, without the URL.
        cause: String,
    },
    /// The server answered 5xx on every attempt.
    #[error("{method} {path}: HTTP {} after {attempts} attempt(s): {message}", .status.as_u16())]
    ServerError {
        /// The method.
        method: Method,
        /// The URL path.
        path: String,
        /// The last status.
        status: StatusCode,
        /// How many attempts were made.
        attempts: u32,
        /// The server's message.
        message: String,
    },
}

impl HttpFailure {
    /// The port error: transient failures are `Unavailable`, the others `Rejected`.
    pub(crate) fn into_port_error(self, port: &'static str) -> PortError {
        let message = self.to_string();
        match self {
            HttpFailure::NoAnswer { .. } | HttpFailure::ServerError { .. } => {
                PortError::Unavailable { port, message }
            }
            HttpFailure::InvalidUrl { .. }
            | HttpFailure::InvalidRequest { .. }
            | HttpFailure::BadReply { .. } => PortError::Rejected { port, message },
        }
    }
}

/// One HTTP call: method, base URL, path, query, JSON body and its retry rules.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    method: Method,
    base: String,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    timeout: Option<Duration>,
    retry_timeouts: bool,
    final_texts: &'static [&'static str],
}

impl Call {
    /// A `GET` of `path` under `base` (`http://host:port`).
    pub(crate) fn get(base: &str, path: impl Into<String>) -> Call {
        Call::new(Method::GET, base, path.into(), None)
    }

    /// A `POST` of the JSON `body` to `path` under `base`.
    pub(crate) fn post(
        base: &str,
        path: impl Into<String>,
        body: &impl Serialize,
    ) -> Result<Call, HttpFailure> {
        let path = path.into();
        let body = serde_json::to_value(body).map_err(|err| HttpFailure::InvalidRequest {
            method: Method::POST,
            path: path.clone(),
            message: err.to_string(),
        })?;
        Ok(Call::new(Method::POST, base, path, Some(body)))
    }

    fn new(method: Method, base: &str, path: String, body: Option<serde_json::Value>) -> Call {
        Call {
            method,
            base: base.trim_end_matches('/').to_owned(),
            path,
            query: Vec::new(),
            body,
            timeout: None,
            retry_timeouts: true,
            final_texts: &[],
        }
    }

    /// Adds a query parameter (url-encoded).
    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Call {
        self.query.push((key, value.into()));
        self
    }

    /// This call's total timeout, instead of the client's.
    pub(crate) fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// A timeout of this call is not retried (the server may still be working on it; the
    /// caller learns the outcome another way).
    pub(crate) fn no_retry_on_timeout(mut self) -> Call {
        self.retry_timeouts = false;
        self
    }

    /// Texts that make a 5xx reply a definite answer, returned at once.
    pub(crate) fn final_texts(mut self, texts: &'static [&'static str]) -> Call {
        self.final_texts = texts;
        self
    }

    /// `METHOD /path`, for logs and errors.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn url(&self) -> Result<Url, HttpFailure> {
        let invalid = |message: String| HttpFailure::InvalidUrl {
            method: self.method.clone(),
            path: self.path.clone(),
            message,
        };
        let mut url = Url::parse(&format!("{}{}", self.base, self.path))
            .map_err(|err| invalid(err.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme {} is not http(s)", url.scheme())));
        }
        if !self.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(self.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }
}

/// A reply that is not a transient failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The body.
    pub(crate) body: String,
}

impl Reply {
    /// A reply of HTTP status `status` with `body`, for the decoders of replies; a number
    /// that is not an HTTP status is `Rejected`.
    pub(crate) fn of(port: &'static str, status: u16, body: &str) -> Result<Reply, PortError> {
        let code = StatusCode::from_u16(status).map_err(|err| PortError::Rejected {
            port,
            message: format!("HTTP status {status}: {err}"),
        })?;
        Ok(Reply {
            status: code,
            body: body.to_owned(),
        })
    }

    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// Whether the body contains `text`.
    pub(crate) fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// The server's message: the `error` or `msg` field of a JSON body, else the body,
    /// trimmed and cut to a readable length.
    pub(crate) fn message(&self) -> String {
        server_message(&self.body)
    }

    /// The body as JSON of type `T`; a body that does not parse is `Rejected`.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        port: &'static str,
        call: &Call,
    ) -> Result<T, PortError> {
        serde_json::from_str(&self.body).map_err(|err| PortError::Rejected {
            port,
            message: format!(
                "{}: unexpected reply ({err}): {}",
                call.describe(),
                server_message(&self.body)
            ),
        })
    }

    /// `Rejected` with the status and the server's message.
    pub(crate) fn refused(&self, port: &'static str, call: &Call) -> PortError {
        PortError::Rejected {
            port,
            message: format!(
                "{}: HTTP {}: {}",
                call.describe(),
                self.status.as_u16(),
                self.message()
            ),
        }
    }
}

/// The message of an error body, as the ports quote it in errors: its `error`, `msg` or
/// `message` field when the body is JSON, else the body, trimmed and cut to a readable length.
pub fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["error", "msg", "message"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
        });
    let text = from_json.unwrap_or_else(|| body.trim().to_owned());
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// A transport error with its causes, without the URL.
fn transport_cause(err: reqwest::Error) -> String {
    let timeout = err.is_timeout();
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

/// The shared HTTP client: a connection pool, the timeouts and the retry policy.
#[derive(Clone, Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    request_timeout: Duration,
    retries: u32,
    pause: Duration,
}

/// What one attempt gave.
enum Attempt {
    Reply(Reply),
    Transport(reqwest::Error),
    TooLarge,
}

impl HttpClient {
    /// A client with the timeouts and retries of `config`.
    pub(crate) fn new(port: &'static str, config: &KubePortsConfig) -> Result<Self, PortError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.http_connect_timeout)
            .timeout(config.http_request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| PortError::Rejected {
                port,
                message: format!("cannot build the HTTP client: {}", transport_cause(err)),
            })?;
        Ok(HttpClient {
            client,
            request_timeout: config.http_request_timeout,
            retries: config.http_retries,
            pause: config.http_retry_pause,
        })
    }

    /// Runs `call`, retrying transient failures (see the module documentation).
    pub(crate) async fn send(&self, call: &Call) -> Result<Reply, HttpFailure> {
        let url = call.url()?;
        let attempts = self.retries.saturating_add(1);
        let span = tracing::debug_span!("http", method = %call.method, path = %call.path);
        async move {
            let mut attempt = 1;
            loop {
                let failure = match self.attempt(call, url.clone()).await {
                    Attempt::Reply(reply)
                        if reply.status.is_server_error()
                            && !call.final_texts.iter().any(|t| reply.contains(t)) =>
                    {
                        HttpFailure::ServerError {
                            method: call.method.clone(),
                            path: call.path.clone(),
                            status: reply.status,
                            attempts: attempt,
                            message: reply.message(),
                        }
                    }
                    Attempt::Reply(reply) => return Ok(reply),
                    Attempt::TooLarge => {
                        return Err(HttpFailure::BadReply {
                            method: call.method.clone(),
                            path: call.path.clone(),
                            message: format!("reply larger than {MAX_REPLY_BYTES} bytes"),
                        })
                    }
                    Attempt::Transport(err) => {
                        let timed_out = err.is_timeout();
                        let failure = HttpFailure::NoAnswer {
                            method: call.method.clone(),
                            path: call.path.clone(),
                            attempts: attempt,
                            cause: transport_cause(err),
                        };
                        if timed_out && !call.retry_timeouts {
                            return Err(failure);
                        }
                        failure
                    }
                };
                if attempt >= attempts {
                    return Err(failure);
                }
                tracing::warn!(
                    attempt,
                    attempts,
                    pause = ?self.pause,
                    failure = %failure,
                    "transient HTTP failure; retrying"
                );
                tokio::time::sleep(self.pause).await;
                attempt += 1;
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt(&self, call: &Call, url: Url) -> Attempt {
        let mut request = self
            .client
            .request(call.method.clone(), url)
            .header(CONTENT_TYPE, "application/json")
            .timeout(call.timeout.unwrap_or(self.request_timeout));
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(err) => return Attempt::Transport(err),
        };
        let status = response.status();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_REPLY_BYTES {
                        return Attempt::TooLarge;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Attempt::Transport(err),
            }
        }
        Attempt::Reply(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_message_is_the_error_field_or_the_body() {
        assert_eq!(
            server_message(r#"{"error":"can not find pvc x"}"#),
            "can not find pvc x"
        );
        assert_eq!(server_message(r#"{"code":500,"msg":"boom"}"#), "boom");
        assert_eq!(server_message("  plain text \n"), "plain text");
        assert_eq!(server_message(""), "(empty body)");
        let long = "x".repeat(2000);
        assert_eq!(server_message(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn the_url_joins_base_path_and_encoded_query() {
        let call = Call::get("http://10.0.0.1:2002/", "/pvcs/ready")
            .query("name", "pvc 1")
            .query("workflowId", "a&b");
        assert_eq!(
            call.url().unwrap().as_str(),
            "http://10.0.0.1:2002/pvcs/ready?name=pvc+1&workflowId=a%26b"
        );
    }

    #[test]
    fn a_bad_base_url_is_rejected_without_quoting_it() {
        let call = Call::get("ftp://user:secret@host", "/v1/status");
        let err = call.url().unwrap_err().into_port_error("cluster_manager");
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("GET /v1/status"), "{err}");
    }
}
