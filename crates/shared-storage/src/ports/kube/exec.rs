//! Running a command in a container: the [`PodExec`] seam and its implementation on the
//! Kubernetes exec API ([`KubePodExec`], `GET .../pods/{pod}/exec` upgraded to a
//! websocket, `v5.channel.k8s.io` or `v4.channel.k8s.io`).
//!
//! The engine agent and pfsd adapters call [`PodExec`]; their tests, and the end-to-end
//! suite, put a stand-in behind it. A command that ran is always an [`ExecOutput`], whatever
//! its exit code; an [`ExecError`] means it could not be run or its end was not seen.
//! Nothing here logs the argv or the output: callers decide what is safe to show.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use kube::Api;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::KubePortsConfig;

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code: 0 on success.
    pub exit_code: i32,
    /// Standard output (invalid UTF-8 replaced), at most the configured limit.
    pub stdout: String,
    /// Standard error, likewise.
    pub stderr: String,
}

impl ExecOutput {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Why a command could not be run or its end not seen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The pod does not exist (HTTP 404 on the exec request).
    #[error("exec in {namespace}/{pod}: pod does not exist")]
    PodNotFound {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
    },
    /// The API server refused the exec request (a container that is not running, a
    /// missing permission): the HTTP status of the refused upgrade.
    #[error("exec in {namespace}/{pod} container {container}: refused with HTTP {status}")]
    Refused {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The HTTP status.
        status: u16,
    },
    /// The command could not be started or ended without an exit code (the status
    /// channel's message, e.g. `container not found`).
    #[error("exec in {namespace}/{pod} container {container}: {message}")]
    Failed {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// What the API server said.
        message: String,
    },
    /// The command did not end within the timeout (the stream is dropped).
    #[error("exec in {namespace}/{pod} container {container}: no result within {after:?}")]
    Timeout {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection failed or closed before the command's status arrived.
    #[error("exec in {namespace}/{pod} container {container}: connection failed: {message}")]
    Connection {
        /// The namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// What failed.
        message: String,
    },
}

/// Runs a command in a container of a pod, without a TTY.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PodExec: Send + Sync {
    /// Runs `argv` (no shell unless `argv` starts one) in `container` of
    /// `namespace/pod`, with `stdin` written then closed when given, and waits for the
    /// exit within the implementation's timeout.
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ExecError>;
}

/// [`PodExec`] on the Kubernetes exec API (kube's `ws` feature).
#[derive(Clone)]
pub struct KubePodExec {
    client: kube::Client,
    timeout: Duration,
    output_limit: usize,
}

impl std::fmt::Debug for KubePodExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePodExec")
            .field("timeout", &self.timeout)
            .field("output_limit", &self.output_limit)
            .finish_non_exhaustive()
    }
}

/// Reads `reader` to its end, keeping the first `limit` bytes.
async fn read_limited(reader: Option<impl AsyncRead + Unpin>, limit: usize) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The exit code a status reports: 0 for `Success`, N for `NonZeroExitCode` with an
/// `ExitCode` cause, otherwise the status message.
pub(crate) fn exit_code(status: &Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(status
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "the command failed without an exit code".into()))
}

impl KubePodExec {
    /// An exec client on `client`, with `config.exec_timeout` and
    /// `config.exec_output_limit`.
    pub fn new(client: kube::Client, config: Arc<KubePortsConfig>) -> Self {
        KubePodExec {
            client,
            timeout: config.exec_timeout,
            output_limit: config.exec_output_limit,
        }
    }

    async fn run(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ExecError> {
        let connection = |message: String| ExecError::Connection {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
            message,
        };
        let params = AttachParams::default()
            .container(container)
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut attached =
            api.exec(pod, argv.to_vec(), &params)
                .await
                .map_err(|err| match err {
                    kube::Error::UpgradeConnection(
                        kube::client::UpgradeConnectionError::ProtocolSwitch(status),
                    ) if status.as_u16() == 404 => ExecError::PodNotFound {
                        namespace: namespace.into(),
                        pod: pod.into(),
                    },
                    kube::Error::UpgradeConnection(
                        kube::client::UpgradeConnectionError::ProtocolSwitch(status),
                    ) => ExecError::Refused {
                        namespace: namespace.into(),
                        pod: pod.into(),
                        container: container.into(),
                        status: status.as_u16(),
                    },
                    kube::Error::Api(status) if status.is_not_found() => ExecError::PodNotFound {
                        namespace: namespace.into(),
                        pod: pod.into(),
                    },
                    other => connection(other.to_string()),
                })?;
        let status = attached.take_status();
        let stdout = attached.stdout();
        let stderr = attached.stderr();
        let writer = attached.stdin();
        let feed = async move {
            if let (Some(mut writer), Some(data)) = (writer, stdin) {
                // A failed write shows up as the missing status below.
                let _ = writer.write_all(&data).await;
                let _ = writer.shutdown().await;
            }
        };
        let (_, out, err) = tokio::join!(
            feed,
            read_limited(stdout, self.output_limit),
            read_limited(stderr, self.output_limit)
        );
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let ended = attached.join().await;
        let Some(status) = status else {
            let why = match ended {
                Err(e) => e.to_string(),
                Ok(()) => "the stream closed before the command's status arrived".into(),
            };
            return Err(connection(why));
        };
        match exit_code(&status) {
            Ok(exit_code) => Ok(ExecOutput {
                exit_code,
                stdout: out,
                stderr: err,
            }),
            Err(message) => Err(ExecError::Failed {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                message,
            }),
        }
    }
}

#[async_trait]
impl PodExec for KubePodExec {
    async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        argv: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, ExecError> {
        match tokio::time::timeout(
            self.timeout,
            self.run(namespace, pod, container, argv, stdin),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(ExecError::Timeout {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                after: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The exec request at request level (`tower-test`), and whole execs through a real
    //! websocket upgrade to the exec emulator of [`exec_emulator`](super::super::exec_emulator).

    use super::super::exec_emulator::{argv, bridged, emulator, mock_exec, plain, query};
    use super::*;
    use http::header;

    #[tokio::test]
    async fn the_exec_request_names_the_pod_the_container_and_every_argument_in_order() {
        let (exec, mut handle) = mock_exec(Duration::from_secs(5));
        let call = tokio::spawn(async move {
            exec.exec(
                "db",
                "c1-1001-1002",
                "manager",
                &argv(&["bash", "-c", "echo a b", "x=1&y"]),
                None,
            )
            .await
        });
        let (request, respond) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/db/pods/c1-1001-1002/exec"
        );
        let q = query(request.uri());
        let values = |key: &str| -> Vec<String> {
            q.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(values("container"), ["manager"]);
        assert_eq!(values("command"), ["bash", "-c", "echo a b", "x=1&y"]);
        assert_eq!(values("stdout"), ["true"]);
        assert_eq!(values("stderr"), ["true"]);
        assert!(values("stdin").iter().all(|v| v == "false"));
        assert!(values("tty").iter().all(|v| v == "false"));
        let headers = request.headers();
        assert_eq!(headers[header::UPGRADE], "websocket");
        let protocols = headers[header::SEC_WEBSOCKET_PROTOCOL].to_str().unwrap();
        assert!(protocols.contains("v5.channel.k8s.io") && protocols.contains("v4.channel.k8s.io"));
        respond.send_response(plain(404));
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(
            err,
            ExecError::PodNotFound {
                namespace: "db".into(),
                pod: "c1-1001-1002".into()
            }
        );
        assert!(err.to_string().contains("pod does not exist"), "{err}");
    }

    #[tokio::test]
    async fn stdin_is_requested_only_when_given() {
        let (exec, mut handle) = mock_exec(Duration::from_secs(5));
        let call = tokio::spawn(async move {
            exec.exec(
                "db",
                "p",
                "pfsd-tool",
                &argv(&["cat"]),
                Some(b"data".to_vec()),
            )
            .await
        });
        let (request, respond) = handle.next_request().await.unwrap();
        assert!(query(request.uri()).contains(&("stdin".into(), "true".into())));
        respond.send_response(plain(400));
        assert!(matches!(
            call.await.unwrap().unwrap_err(),
            ExecError::Refused { status: 400, .. }
        ));
    }

    #[tokio::test]
    async fn an_upgrade_answered_with_another_status_is_refused_with_that_status() {
        // 403: no permission; 500: the kubelet could not start the command; 200: no
        // protocol switch at all.
        for status in [403, 500, 200] {
            let (exec, mut handle) = mock_exec(Duration::from_secs(5));
            let call = tokio::spawn(async move {
                exec.exec("db", "p", "manager", &argv(&["true"]), None)
                    .await
            });
            let (_, respond) = handle.next_request().await.unwrap();
            respond.send_response(plain(status));
            assert_eq!(
                call.await.unwrap().unwrap_err(),
                ExecError::Refused {
                    namespace: "db".into(),
                    pod: "p".into(),
                    container: "manager".into(),
                    status
                }
            );
        }
    }

    #[tokio::test]
    async fn a_command_returns_its_stdout_stderr_and_exit_code() {
        let emulator = emulator().await;
        let exec = bridged(&emulator, Duration::from_secs(10));
        let out = exec
            .exec(
                "db",
                "p",
                "manager",
                &argv(&["echo", "hello", "world"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            ExecOutput {
                exit_code: 0,
                stdout: "hello world\n".into(),
                stderr: String::new()
            }
        );
        assert!(out.success());
        let out = exec
            .exec("db", "p", "manager", &argv(&["fail", "3"]), None)
            .await
            .unwrap();
        assert_eq!(
            (out.exit_code, out.stderr.as_str(), out.stdout.as_str()),
            (3, "boom", "")
        );
        assert!(!out.success());
        let out = exec
            .exec(
                "db",
                "p",
                "pfsd-tool",
                &argv(&["cat"]),
                Some(b"from stdin".to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(out.stdout, "from stdin");
        assert_eq!(
            emulator.seen.lock().unwrap().clone(),
            vec![
                argv(&["echo", "hello", "world"]),
                argv(&["fail", "3"]),
                argv(&["cat"])
            ]
        );
    }

    #[tokio::test]
    async fn output_beyond_the_limit_is_dropped() {
        let emulator = emulator().await;
        let exec = bridged(&emulator, Duration::from_secs(10));
        let long = "x".repeat(200);
        let out = exec
            .exec("db", "p", "manager", &argv(&["echo", &long]), None)
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 64);
    }

    #[tokio::test]
    async fn a_status_without_exit_code_a_cut_stream_and_a_hang_are_errors() {
        let emulator = emulator().await;
        let exec = bridged(&emulator, Duration::from_millis(300));
        let err = exec
            .exec("db", "p", "manager", &argv(&["lost"]), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExecError::Failed { message, .. } if message.contains("container not found")),
            "{err:?}"
        );
        let err = exec
            .exec("db", "p", "manager", &argv(&["cut"]), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Connection { .. }), "{err:?}");
        let err = exec
            .exec("db", "p", "manager", &argv(&["hang"]), None)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ExecError::Timeout {
                namespace: "db".into(),
                pod: "p".into(),
                container: "manager".into(),
                after: Duration::from_millis(300)
            }
        );
    }

    #[test]
    fn exit_codes_come_from_the_status_channel() {
        let status = |v: serde_json::Value| serde_json::from_value::<Status>(v).unwrap();
        assert_eq!(
            exit_code(&status(serde_json::json!({"status": "Success"}))),
            Ok(0)
        );
        assert_eq!(
            exit_code(&status(serde_json::json!({
                "status": "Failure", "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}
            }))),
            Ok(137)
        );
        assert_eq!(
            exit_code(&status(
                serde_json::json!({"status": "Failure", "message": "pod does not exist"})
            )),
            Err("pod does not exist".to_string())
        );
    }
}
