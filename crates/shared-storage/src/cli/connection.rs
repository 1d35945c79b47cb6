//! The connection to the cluster for `run` and the inspection commands ([`connect`], one
//! function for both): the client configuration (a kubeconfig, the
//! in-cluster service account), the `kube::Client` (TLS through rustls), and the start-up
//! checks (the API server answers and accepts the credentials, the MPDCluster CRD is
//! installed), each bounded by a timeout. Each failure is one [`ConnectionError`] whose
//! message names the problem on one line.

use std::time::Duration;

use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, CustomResourceExt};

use crate::crd::MPDCluster;

/// Why the operator cannot work with the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// A kubeconfig file could not be read or parsed.
    #[error("cannot read the kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// No configuration could be made (no kubeconfig, not in a cluster, an unknown
    /// context, unusable credentials).
    #[error("cannot configure the Kubernetes client: {message}")]
    Config {
        /// What went wrong.
        message: String,
    },
    /// The client could not be built (e.g. an invalid CA certificate).
    #[error("cannot build the Kubernetes client for {url}: {message}")]
    Client {
        /// The API server.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The API server could not be reached.
    #[error("cannot reach the Kubernetes API server at {url}: {message}")]
    Unreachable {
        /// The API server.
        url: String,
        /// The cause (connection refused, DNS, TLS).
        message: String,
    },
    /// A start-up check took too long.
    #[error("the Kubernetes API server at {url} did not answer {what} within {after:?}")]
    Timeout {
        /// The API server.
        url: String,
        /// Which check.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The API server refused the credentials.
    #[error("the Kubernetes API server at {url} refused the credentials (401 Unauthorized): check the user of the kubeconfig or the service account token")]
    Unauthorized {
        /// The API server.
        url: String,
    },
    /// The credentials may not do what the operator needs.
    #[error("the Kubernetes API server at {url} does not allow {what} (403 Forbidden): check the operator's RBAC")]
    Forbidden {
        /// The API server.
        url: String,
        /// What was refused.
        what: String,
    },
    /// The MPDCluster CRD is not installed.
    #[error("the MPDCluster CRD ({crd}) is not installed on {url}: apply deploy/crd.yaml first")]
    CrdMissing {
        /// The API server.
        url: String,
        /// The CRD's name.
        crd: String,
    },
    /// The API server answered a check with another error.
    #[error("the Kubernetes API server at {url} answered {what} with {code}: {message}")]
    Refused {
        /// The API server.
        url: String,
        /// Which check.
        what: &'static str,
        /// The HTTP status.
        code: u16,
        /// Its message.
        message: String,
    },
}

/// Every message of an error and its sources, on one line, repeats left out.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = next {
        let text = e.to_string().replace(['\n', '\r'], " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// The innermost cause of an error (e.g. `Connection refused (os error 111)`).
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string().replace(['\n', '\r'], " ")
}

/// Reads the kubeconfig files of `paths` (`:`-separated, merged in order as kubectl does).
fn read_kubeconfigs(paths: &str) -> Result<Kubeconfig, ConnectionError> {
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
        let shown = path.display().to_string();
        let one = Kubeconfig::read_from(&path).map_err(|e| ConnectionError::Kubeconfig {
            path: shown.clone(),
            message: root_cause(&e),
        })?;
        merged = Some(match merged {
            None => one,
            Some(m) => m.merge(one).map_err(|e| ConnectionError::Kubeconfig {
                path: shown,
                message: one_line(&e),
            })?,
        });
    }
    merged.ok_or_else(|| ConnectionError::Config {
        message: format!("the kubeconfig path {paths:?} names no file"),
    })
}

/// The client configuration: from `kubeconfig` (paths, `:`-separated) when given; else
/// the in-cluster service account when running in a pod (unless a `context` is asked
/// for); else `~/.kube/config`. `context` picks a kubeconfig context.
async fn client_config(
    kubeconfig: Option<&str>,
    context: Option<&str>,
) -> Result<kube::Config, ConnectionError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config_error = |e: &dyn std::error::Error| ConnectionError::Config {
        message: one_line(e),
    };
    match kubeconfig.filter(|k| !k.is_empty()) {
        Some(paths) => {
            let kubeconfig = read_kubeconfigs(paths)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| config_error(&e))
        }
        None if context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            kube::Config::incluster().map_err(|e| config_error(&e))
        }
        None => {
            let default = std::env::var_os("HOME")
                .map(|home| std::path::PathBuf::from(home).join(".kube").join("config"));
            if let Some(path) = default.filter(|p| !p.exists()) {
                return Err(ConnectionError::Config {
                    message: format!(
                        "not running in a cluster and no kubeconfig at {}: give --kubeconfig or set KUBECONFIG",
                        path.display()
                    ),
                });
            }
            kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| config_error(&e))
        }
    }
}

/// A client for `config`, TLS through rustls (ring).
fn client(config: kube::Config) -> Result<kube::Client, ConnectionError> {
    wf_kube::install_crypto_provider();
    let url = config.cluster_url.to_string();
    kube::Client::try_from(config).map_err(|e| ConnectionError::Client {
        url,
        message: one_line(&e),
    })
}

/// The client of `run` and of the inspection commands on a cluster: the configuration of
/// [`client_config`] (`kubeconfig` paths, `context`), TLS through rustls. Returns the client
/// and the API server's URL. Nothing is sent to the server yet.
pub async fn connect(
    kubeconfig: Option<&str>,
    context: Option<&str>,
) -> Result<(kube::Client, String), ConnectionError> {
    let config = client_config(kubeconfig, context).await?;
    let url = config.cluster_url.to_string();
    Ok((client(config)?, url))
}

fn api_error(url: &str, what: &'static str, error: kube::Error) -> ConnectionError {
    match error {
        kube::Error::Api(status) => match status.code {
            401 => ConnectionError::Unauthorized {
                url: url.to_owned(),
            },
            403 => ConnectionError::Forbidden {
                url: url.to_owned(),
                what: what.to_owned(),
            },
            code => ConnectionError::Refused {
                url: url.to_owned(),
                what,
                code,
                message: status.message.replace(['\n', '\r'], " "),
            },
        },
        other => ConnectionError::Unreachable {
            url: url.to_owned(),
            message: root_cause(&other),
        },
    }
}

/// Checks that the API server answers and accepts the credentials (`GET /version`), then
/// that the MPDCluster CRD is served (a list of at most one MPDCluster), each within
/// `timeout`. Returns the server's version.
pub async fn check(
    client: &kube::Client,
    url: &str,
    timeout: Duration,
) -> Result<String, ConnectionError> {
    let version = match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Err(_) => {
            return Err(ConnectionError::Timeout {
                url: url.to_owned(),
                what: "GET /version",
                after: timeout,
            })
        }
        Ok(Err(e)) => return Err(api_error(url, "GET /version", e)),
        Ok(Ok(info)) => info.git_version,
    };
    let clusters: Api<MPDCluster> = Api::all(client.clone());
    let what = "the list of mpdclusters";
    match tokio::time::timeout(timeout, clusters.list(&ListParams::default().limit(1))).await {
        Err(_) => Err(ConnectionError::Timeout {
            url: url.to_owned(),
            what,
            after: timeout,
        }),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
            Err(ConnectionError::CrdMissing {
                url: url.to_owned(),
                crd: MPDCluster::crd_name().to_owned(),
            })
        }
        Ok(Err(e)) => Err(api_error(url, what, e)),
        Ok(Ok(_)) => Ok(version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_sources_without_repeats_or_newlines() {
        let inner = std::io::Error::other("refused\nby peer");
        let outer = ConnectionError::Config {
            message: "x".into(),
        };
        assert_eq!(one_line(&inner), "refused by peer");
        assert_eq!(
            one_line(&outer),
            "cannot configure the Kubernetes client: x"
        );
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_file() {
        let err = client_config(Some("/nonexistent/kubeconfig"), None)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot read the kubeconfig /nonexistent/kubeconfig: "),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }

    #[tokio::test]
    async fn an_unknown_context_is_a_configuration_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\n\
             users:\n- name: u\n  user: {}\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\n",
        )
        .unwrap();
        let err = client_config(path.to_str(), Some("nope"))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectionError::Config { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
