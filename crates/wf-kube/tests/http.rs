//! The `/metrics`, `/healthz` and `/readyz` server over a real socket, with a raw HTTP/1.1
//! client on a `TcpStream`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wf_kube::{http, Health, HttpError, WorkflowMetrics};

/// A server running on a task.
struct Running {
    addr: SocketAddr,
    metrics: Arc<WorkflowMetrics>,
    health: Arc<Health>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), HttpError>>,
}

impl Running {
    async fn start() -> Running {
        let listener = http::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let metrics = Arc::new(WorkflowMetrics::new());
        let health = Arc::new(Health::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(
            listener,
            metrics.clone(),
            health.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            addr,
            metrics,
            health,
            stop,
            task,
        }
    }

    /// Resolves the shutdown future and waits for `serve` to return.
    async fn stop(self) -> Result<(), HttpError> {
        let _ = self.stop.send(());
        self.task.await.expect("serve panicked")
    }

    /// `method path` with `Connection: close`, read to the end.
    async fn request(&self, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        Reply::parse(&raw)
    }

    async fn get(&self, path: &str) -> Reply {
        self.request("GET", path).await
    }
}

/// A parsed response.
#[derive(Debug)]
struct Reply {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    /// Parses a whole response (head and body).
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8(raw.to_vec()).expect("utf-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("end of head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line").to_owned();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header");
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Reply {
            status_line,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> usize {
        self.header("content-length")
            .expect("content-length")
            .parse()
            .expect("a number")
    }

    fn lines(&self) -> Vec<&str> {
        self.body.lines().collect()
    }
}

#[tokio::test]
async fn metrics_serves_the_recorded_reconciles_and_the_health_gauges() {
    let server = Running::start().await;
    server.metrics.record_reconcile("stable");
    server.metrics.record_reconcile("stable");
    server.metrics.record_reconcile("error");

    let reply = server.get("/metrics").await;
    assert_eq!(reply.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(reply.content_length(), reply.body.len());
    let lines = reply.lines();
    for want in [
        "# HELP wf_reconciles_total Reconciles, by result.",
        "# TYPE wf_reconciles_total counter",
        "wf_reconciles_total{result=\"error\"} 1",
        "wf_reconciles_total{result=\"stable\"} 2",
        "# TYPE wf_flow_runs_started_total counter",
        "# HELP wf_leader Whether this replica holds the leader lease (1) or not (0).",
        "# TYPE wf_leader gauge",
        "wf_leader 0",
        "# HELP wf_ready Whether the operator is ready (1) or not (0), as /readyz answers.",
        "# TYPE wf_ready gauge",
        "wf_ready 0",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{}", reply.body);
    }

    server.health.set_leader(true);
    server.health.set_ready(true);
    let lines_after = server.get("/metrics").await;
    let lines = lines_after.lines();
    assert!(lines.contains(&"wf_leader 1"), "{}", lines_after.body);
    assert!(lines.contains(&"wf_ready 1"), "{}", lines_after.body);

    server.stop().await.expect("serve");
}

#[tokio::test]
async fn healthz_is_ok_while_shutting_down_and_fails_with_the_reason_when_broken() {
    let server = Running::start().await;
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(reply.body, "ok");

    // Not ready yet, and then draining: still live.
    server.health.set_shutting_down();
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status_line, "HTTP/1.1 200 OK");

    server.health.set_broken("watch stream task died");
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(reply.body, "broken: watch stream task died");

    server.stop().await.expect("serve");
}

#[tokio::test]
async fn readyz_fails_before_set_ready_succeeds_after_and_fails_once_shutting_down() {
    let server = Running::start().await;
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(reply.body, "not ready");

    server.health.set_ready(true);
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status_line, "HTTP/1.1 200 OK");
    assert_eq!(reply.body, "ok");
    // The query string (e.g. `?verbose`) is ignored.
    let reply = server.get("/readyz?verbose").await;
    assert_eq!(reply.status_line, "HTTP/1.1 200 OK");

    server.health.set_shutting_down();
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(reply.body, "shutting down");

    server.stop().await.expect("serve");
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = Running::start().await;
    for path in ["/", "/nope", "/metrics/", "/healthz/extra"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status_line, "HTTP/1.1 404 Not Found", "{path}");
        assert_eq!(reply.body, "not found", "{path}");
    }
    // Whatever the method.
    let reply = server.request("DELETE", "/nope").await;
    assert_eq!(reply.status_line, "HTTP/1.1 404 Not Found");
    server.stop().await.expect("serve");
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let server = Running::start().await;
    for (method, path) in [
        ("POST", "/metrics"),
        ("PUT", "/healthz"),
        ("DELETE", "/readyz"),
    ] {
        let reply = server.request(method, path).await;
        assert_eq!(
            reply.status_line, "HTTP/1.1 405 Method Not Allowed",
            "{method} {path}"
        );
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
        assert_eq!(reply.body, "method not allowed");
    }
    server.stop().await.expect("serve");
}

#[tokio::test]
async fn head_answers_like_get_without_the_body() {
    let server = Running::start().await;
    server.metrics.record_reconcile("stable");
    let get = server.get("/metrics").await;
    let head = server.request("HEAD", "/metrics").await;
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.content_length(), get.body.len());
    assert_eq!(head.body, "");
    server.stop().await.expect("serve");
}

#[tokio::test]
async fn serve_returns_ok_after_shutdown_and_stops_listening() {
    let server = Running::start().await;
    let addr = server.addr;
    assert_eq!(server.get("/healthz").await.body, "ok");
    server.stop().await.expect("serve returns Ok");
    // The listener is closed.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_closes_an_idle_keep_alive_connection_and_returns_ok() {
    let server = Running::start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // Read exactly one response; the connection stays open.
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let reply = loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert_ne!(n, 0, "closed before the response");
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let partial = Reply::parse(&raw);
            if raw.len() >= end + 4 + partial.content_length() {
                break partial;
            }
        }
    };
    assert_eq!(reply.status_line, "HTTP/1.1 200 OK");
    assert_eq!(reply.body, "ok");

    // serve drains (closes) the idle connection and returns.
    server.stop().await.expect("serve returns Ok");
    let mut rest = Vec::new();
    let closed = stream.read_to_end(&mut rest).await;
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?} {rest:?}");
}

#[tokio::test]
async fn bind_failure_names_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = taken.local_addr().expect("local addr");
    match http::bind(addr).await {
        Err(HttpError::Bind { addr: failed, .. }) => assert_eq!(failed, addr),
        other => panic!("expected a bind error, got {other:?}"),
    }
    let error = http::bind(addr).await.expect_err("port taken");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot listen on {addr}: ")),
        "{error}"
    );
}
