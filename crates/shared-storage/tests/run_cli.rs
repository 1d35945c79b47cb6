//! `shared-storage-operator run` when the cluster cannot be used: each case exits non-zero
//! within 15 s with one line on stderr naming the problem (no panic, no retry loop).
//! The API servers are tiny hyper servers on 127.0.0.1.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const BIN: &str = env!("CARGO_BIN_EXE_shared-storage-operator");
const LIMIT: Duration = Duration::from_secs(15);

/// A self-signed CA (P-256, valid until 2126), only ever parsed.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUR5ETH5gdaxA01dy7tzm7O6SI6rswCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPd2Yta3ViZSB0ZXN0IENBMCAXDTI2MTIwMjA4MDA1MFoYDzIx
MjYxMTA4MDgwMDUwWjAaMRgwFgYDVQQDDA93Zi1rdWJlIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQYVk+4d/ALYRS5tNgVLKz4dq8Q0RLQrPJHrLR8
F6/Mp+H62Kh6VN5xixOhNXhkzhWYQfkEV5+vkQCa3IXWu677o1MwUTAdBgNVHQ4E
FgQUVjwMk9ir4J8Ef4KbgdTaTyshtmQwHwYDVR0jBBgwFoAUVjwMk9ir4J8Ef4Kb
gdTaTyshtmQwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAzDsV
d7on1Iy3VhyZY3pSKSd8qKkKWV82dWOKGp4BsyMCIFsf6IpM6eAfvBttakYs4Wmn
6esQgA1A9sG2VvGrw/ZY
-----END CERTIFICATE-----
";

/// A kubeconfig for `server` (a token user; the CA when the server is https).
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, CA_PEM).unwrap();
    let tls = if server.starts_with("https") {
        format!("\n    certificate-authority: {}", ca.display())
    } else {
        String::new()
    };
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}{tls}
users:
- name: operator
  user:
    token: not-a-real-token
contexts:
- name: test
  context: {{cluster: test, user: operator}}
current-context: test
"
        ),
    )
    .unwrap();
    path
}

/// Runs the binary with `args` (and no kubeconfig or cluster from the environment),
/// bounded by [`LIMIT`] plus a margin; returns the output and how long it took.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut command = Command::new(BIN);
    command
        .arg("run")
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .env("HOME", "/nonexistent-home")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn");
    // Never hang the test run: kill after the limit and a margin.
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > LIMIT + Duration::from_secs(10) {
            child.kill().ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (output, started.elapsed())
}

/// The run failed in time with exactly one stderr line; that line.
fn one_error_line(output: &Output, took: Duration) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(took < LIMIT, "took {took:?}: {stderr}");
    assert!(!output.status.success(), "exit {:?}", output.status);
    assert!(
        output.status.code().is_some(),
        "killed, not exited: {stderr}"
    );
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_owned()
}

/// An API server on 127.0.0.1 answering every request with `reply(method, path)`:
/// status and JSON body. Returns its address.
async fn api_server(reply: fn(&str, &str) -> (u16, String)) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service =
                    service_fn(move |request: Request<hyper::body::Incoming>| async move {
                        let (code, body) = reply(request.method().as_str(), request.uri().path());
                        let response = Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn status(code: u16, reason: &str, message: &str) -> (u16, String) {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (code, body.to_string())
}

fn version() -> (u16, String) {
    let body = serde_json::json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "0",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24",
        "compiler": "gc", "platform": "linux/amd64",
    });
    (200, body.to_string())
}

#[test]
fn a_missing_kubeconfig_exits_with_one_line_naming_the_file() {
    let (output, took) = run(&["--kubeconfig", "/nonexistent"], &[]);

    let line = one_error_line(&output, took);
    assert!(
        line.contains("cannot read the kubeconfig /nonexistent"),
        "{line}"
    );
    assert_eq!(output.status.code(), Some(2), "bad input: {line}");
}

#[test]
fn without_a_kubeconfig_outside_a_cluster_the_line_says_what_to_give() {
    let (output, took) = run(&[], &[]);

    let line = one_error_line(&output, took);
    assert!(
        line.contains(
            "not running in a cluster and no kubeconfig at /nonexistent-home/.kube/config"
        ),
        "{line}"
    );
    assert!(line.contains("--kubeconfig"), "{line}");
}

#[test]
fn the_kubeconfig_env_var_is_read_like_the_flag() {
    let (output, took) = run(&[], &[("KUBECONFIG", "/nonexistent/from-env")]);

    let line = one_error_line(&output, took);
    assert!(line.contains("/nonexistent/from-env"), "{line}");
}

#[test]
fn a_closed_port_exits_within_15_s_with_one_line_naming_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is dropped: nothing listens on the port any more.
    let server = format!("https://127.0.0.1:{port}");
    let config = kubeconfig(dir.path(), &server);

    let (output, took) = run(&["--kubeconfig", config.to_str().unwrap()], &[]);

    let line = one_error_line(&output, took);
    assert!(
        line.contains("cannot reach the Kubernetes API server")
            && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_the_credentials_exits_with_one_line_saying_so() {
    let addr = api_server(|_, _| status(401, "Unauthorized", "Unauthorized")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://{addr}"));

    let (output, took) =
        tokio::task::spawn_blocking(move || run(&["--kubeconfig", config.to_str().unwrap()], &[]))
            .await
            .unwrap();

    let line = one_error_line(&output, took);
    assert!(
        line.contains("refused the credentials (401 Unauthorized)"),
        "{line}"
    );
    assert!(line.contains(&addr.to_string()), "{line}");
    assert!(
        !line.contains("not-a-real-token"),
        "no credential in the error: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_crd_exits_with_one_line_saying_to_install_it() {
    let addr = api_server(|_, path| match path {
        "/version" => version(),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://{addr}"));

    let (output, took) =
        tokio::task::spawn_blocking(move || run(&["--kubeconfig", config.to_str().unwrap()], &[]))
            .await
            .unwrap();

    let line = one_error_line(&output, took);
    assert!(
        line.contains("the MPDCluster CRD (mpdclusters.mpd.polardb.aliyun.com) is not installed")
            && line.contains("deploy/crd.yaml"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_within_15_s() {
    // Accepts connections and reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://{addr}"));

    let (output, took) = tokio::task::spawn_blocking(move || {
        run(
            &[
                "--kubeconfig",
                config.to_str().unwrap(),
                "--startup-timeout",
                "1s",
            ],
            &[],
        )
    })
    .await
    .unwrap();

    let line = one_error_line(&output, took);
    assert!(
        line.contains("did not answer GET /version within 1s"),
        "{line}"
    );
}

/// The callback token of the healthy cluster's Secret, and as the Secret holds it.
const CALLBACK_TOKEN: &str = "callback-token-of-the-run-test-0001";
const CALLBACK_TOKEN_BASE64: &str = "Y2FsbGJhY2stdG9rZW4tb2YtdGhlLXJ1bi10ZXN0LTAwMDE=";

/// The empty lists and the token Secret of a healthy cluster with no MPDCluster.
fn healthy(path: &str) -> (u16, String) {
    let list = |kind: &str, api_version: &str| {
        (
            200,
            serde_json::json!({"apiVersion": api_version, "kind": kind,
                               "metadata": {"resourceVersion": "1"}, "items": []})
            .to_string(),
        )
    };
    match path {
        "/version" => version(),
        "/apis/mpd.polardb.aliyun.com/v1/mpdclusters" => {
            list("MPDClusterList", "mpd.polardb.aliyun.com/v1")
        }
        "/api/v1/pods" => list("PodList", "v1"),
        "/api/v1/namespaces/kube-system/secrets/polar-mpd-callback-token" => (
            200,
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "polar-mpd-callback-token", "namespace": "kube-system"},
                "data": {"token": CALLBACK_TOKEN_BASE64}})
            .to_string(),
        ),
        _ => status(404, "NotFound", "not found"),
    }
}

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status code of a raw HTTP/1.1 `POST path` to `port`, with `authorization` if given.
fn post_status(port: u16, path: &str, authorization: Option<&str>) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let body = r#"{"endpoint":"10.0.0.1:5432"}"#;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_token_secret_missing_exits_with_one_line_naming_it() {
    let addr = api_server(|_, path| match path {
        "/api/v1/namespaces/kube-system/secrets/polar-mpd-callback-token" => status(
            404,
            "NotFound",
            "secrets \"polar-mpd-callback-token\" not found",
        ),
        other => healthy(other),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://{addr}"));
    let port = free_port().to_string();

    let (output, took) = tokio::task::spawn_blocking(move || {
        run(
            &[
                "--kubeconfig",
                config.to_str().unwrap(),
                "--callback-addr",
                &format!("127.0.0.1:{port}"),
            ],
            &[],
        )
    })
    .await
    .unwrap();

    let line = one_error_line(&output, took);
    assert!(
        line.contains("callback token Secret kube-system/polar-mpd-callback-token")
            && line.contains("--callbacks=false"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_passes_the_checks_serves_authenticated_callbacks_and_stops_on_sigterm() {
    let addr = api_server(|_, path| healthy(path)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://{addr}"));
    let port = free_port();

    let (output, took, answers) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(["run", "--kubeconfig", config.to_str().unwrap()])
            .args(["--metrics-addr", "127.0.0.1:0", "--leader-election=false"])
            .args(["--callback-addr", &format!("127.0.0.1:{port}")])
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", "/nonexistent-home")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the operator runs past its checks"
        );
        let path = "/api/v1/namespace/db/name/nosuch/rw_ins";
        let answers = [
            post_status(port, path, None),
            post_status(port, path, Some("Bearer wrong-token-of-the-same-size-000")),
            post_status(port, path, Some(&format!("Bearer {CALLBACK_TOKEN}"))),
        ];
        let started = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(signalled.success());
        while child.try_wait().expect("wait").is_none() && started.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().ok();
        let took = started.elapsed();
        (child.wait_with_output().expect("output"), took, answers)
    })
    .await
    .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    // Without the token and with a wrong one: 401; with it, the unknown cluster is 404.
    assert_eq!(answers, [Some(401), Some(401), Some(404)], "{stderr}");
    assert!(
        !stderr.contains(CALLBACK_TOKEN),
        "the token is never logged"
    );
    assert!(took < LIMIT, "stopped in {took:?}: {stderr}");
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
