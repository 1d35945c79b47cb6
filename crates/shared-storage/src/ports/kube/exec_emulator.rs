//! Test support: an exec emulator on 127.0.0.1 and a `tower-test` mock client in front of
//! it, so the exec adapters are tested at request level (the mock sees each request) and
//! through a real websocket upgrade (hyper + tokio-tungstenite speaking the
//! `v5.channel.k8s.io` channel protocol).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{header, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::{self, protocol::Role, Message};
use tokio_tungstenite::WebSocketStream;
use tower_test::mock;

use super::exec::KubePodExec;
use super::KubePortsConfig;

/// The error type of a reply body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A reply the mock sends.
pub(crate) type Reply = Response<UnsyncBoxBody<Bytes, BoxError>>;
/// The test's end of the mock.
pub(crate) type Handle = mock::Handle<Request<kube::client::Body>, Reply>;

/// The exec settings of the tests: `timeout`, output kept up to 64 bytes.
pub(crate) fn config(timeout: Duration) -> Arc<KubePortsConfig> {
    Arc::new(KubePortsConfig {
        exec_timeout: timeout,
        exec_output_limit: 64,
        ..KubePortsConfig::default()
    })
}

/// An exec client on a `tower-test` mock: the test answers each request itself.
pub(crate) fn mock_exec(timeout: Duration) -> (KubePodExec, Handle) {
    let (service, handle) = mock::pair::<Request<kube::client::Body>, Reply>();
    let client = kube::Client::new(service, "db");
    (KubePodExec::new(client, config(timeout)), handle)
}

/// `args` as an owned argv.
pub(crate) fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_string()).collect()
}

/// A plain reply with `status` and an empty JSON body (no protocol switch).
pub(crate) fn plain(status: u16) -> Reply {
    let body = Full::new(Bytes::from_static(b"{}"))
        .map_err(|e| match e {})
        .boxed_unsync();
    Response::builder().status(status).body(body).unwrap()
}

/// The decoded query parameters of `uri`, in order.
pub(crate) fn query(uri: &http::Uri) -> Vec<(String, String)> {
    test_cluster::emulator::query_pairs(uri.query())
}

/// An exec emulator on 127.0.0.1: `echo ARGS`, `cat` (stdin to stdout), `fail CODE`
/// (stderr `boom`, exit CODE), `lost` (status channel failure), `cut` (closes without a
/// status), `hang` (never ends), `bash …` (exit 0, what the engine agent's command line
/// does with its environment on stdin). It records every argv it ran and every stdin.
pub(crate) struct Emulator {
    addr: SocketAddr,
    /// Every argv the emulator ran, from the request's `command` parameters.
    pub seen: Arc<Mutex<Vec<Vec<String>>>>,
    /// The stdin of every exec that had one, in order.
    pub stdins: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn behave(
    mut ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    argv: Vec<String>,
    stdin: bool,
    stdins: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    let frame = |channel: u8, data: &[u8]| {
        let mut v = vec![channel];
        v.extend_from_slice(data);
        Message::binary(v)
    };
    let status = |value: serde_json::Value| frame(3, value.to_string().as_bytes());
    let mut input = Vec::new();
    if stdin {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(bin) = msg {
                match bin.first() {
                    Some(0) => input.extend_from_slice(&bin[1..]),
                    Some(255) => break,
                    _ => {}
                }
            }
        }
        stdins.lock().unwrap().push(input.clone());
    }
    let success = serde_json::json!({"metadata": {}, "status": "Success"});
    let _ = match argv.first().map(String::as_str) {
        Some("bash") => ws.send(status(success)).await,
        Some("echo") => {
            let _ = ws
                .send(frame(1, format!("{}\n", argv[1..].join(" ")).as_bytes()))
                .await;
            ws.send(status(success)).await
        }
        Some("cat") => {
            let _ = ws.send(frame(1, &input)).await;
            ws.send(status(success)).await
        }
        Some("fail") => {
            let _ = ws.send(frame(2, b"boom")).await;
            let code = argv.get(1).cloned().unwrap_or_default();
            ws.send(status(serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code}]},
            })))
            .await
        }
        Some("lost") => {
            ws.send(status(serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": "container not found (\"manager\")",
                "reason": "InternalError",
            })))
            .await
        }
        Some("hang") => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        _ => Ok(()),
    };
    let _ = ws.close(None).await;
}

/// Starts an [`Emulator`] on a free port of 127.0.0.1.
pub(crate) async fn emulator() -> Emulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stdins = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let inputs = stdins.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let record = record.clone();
            let inputs = inputs.clone();
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    let inputs = inputs.clone();
                    async move {
                        let q = query(request.uri());
                        let argv: Vec<String> = q
                            .iter()
                            .filter(|(k, _)| k == "command")
                            .map(|(_, v)| v.clone())
                            .collect();
                        let stdin = q.contains(&("stdin".into(), "true".into()));
                        record.lock().unwrap().push(argv.clone());
                        let key = request.headers()[header::SEC_WEBSOCKET_KEY]
                            .as_bytes()
                            .to_vec();
                        let accept = tungstenite::handshake::derive_accept_key(&key);
                        tokio::spawn(async move {
                            if let Ok(upgraded) = hyper::upgrade::on(request).await {
                                let ws = WebSocketStream::from_raw_socket(
                                    TokioIo::new(upgraded),
                                    Role::Server,
                                    None,
                                )
                                .await;
                                behave(ws, argv, stdin, inputs).await;
                            }
                        });
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(101)
                                .header(header::UPGRADE, "websocket")
                                .header(header::CONNECTION, "Upgrade")
                                .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                                .header(header::SEC_WEBSOCKET_PROTOCOL, "v5.channel.k8s.io")
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    Emulator { addr, seen, stdins }
}

/// A client whose requests the mock forwards, over a real connection, to `emulator`.
pub(crate) fn bridged(emulator: &Emulator, timeout: Duration) -> KubePodExec {
    let (exec, mut handle) = mock_exec(timeout);
    let addr = emulator.addr;
    tokio::spawn(async move {
        while let Some((mut request, respond)) = handle.next_request().await {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection.with_upgrades());
            request
                .headers_mut()
                .insert(header::HOST, addr.to_string().parse().unwrap());
            let response = sender.send_request(request).await.unwrap();
            respond.send_response(
                response.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()),
            );
        }
    });
    exec
}
