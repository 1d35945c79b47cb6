//! `run`: the operator on a Kubernetes cluster, until SIGTERM or ctrl-c.
//!
//! 1. The client configuration and the client (TLS through rustls), then the start-up
//!    checks: the API server answers and accepts the credentials, the MPDCluster CRD is
//!    installed, each within `--startup-timeout`. A failure is one line on stderr and a
//!    non-zero exit, never a retry loop.
//! 2. The production ports ([`crate::ports::kube::connect`]) and the operator
//!    ([`ClusterOperator`]): flows built in, or from `--flow-dir`.
//! 3. [`wf_kube::Operator`]: `/metrics`, `/healthz`, `/readyz` on `--metrics-addr`, leader
//!    election on the Lease `--leader-election-id` unless `--leader-election=false`, and a
//!    graceful stop that lets each running step reach its saved transition.
//! 4. Beside it, on the leader only and under the flows' per-cluster locks: the
//!    [`StatusMonitor`] (a resync every `--status-resync-interval`, a fold whenever an
//!    instance pod changes) and the cluster managers' callbacks on `--callback-addr`, with
//!    the bearer token of `--callback-token-secret` (`--callbacks=false` to serve none). A
//!    missing token Secret or a taken callback address is one line and a non-zero exit.
//!    Both stop after the operator has drained.
//!
//! SIGTERM (its normal stop) and Ctrl-C both drain: each running step reaches its saved
//! transition, then `run` exits 0 after SIGTERM, [`EXIT_SIGINT`] (130) after Ctrl-C.

use tokio::sync::watch;
use wf_kube::{LeaseConfig, OperatorError};

use super::args::RunArgs;
use super::connection::{self, ConnectionError};
use super::signals::{Shutdown, StopSignal};
#[cfg(doc)]
use super::EXIT_SIGINT;
use super::{EXIT_BAD_INPUT, EXIT_INTERRUPTED};
use crate::callbacks::{self, CallbackError, CallbackServer, CallbackToken, TokenError, TOKEN_KEY};
use crate::cluster::{ClusterFilter, ClusterOperator, ClusterSettings, INSTANCE_POD_SELECTOR};
use crate::ports::PortError;
use crate::status::{trigger_on_pod_events, Leadership, MonitorConfig, StatusMonitor};

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The client could not be configured, or a start-up check failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A production adapter could not be built.
    #[error("cannot assemble the production ports: {0}")]
    Ports(#[from] PortError),
    /// The flows or the state machine could not be set up.
    #[error("cannot set up the operator: {0}")]
    Setup(#[from] wf_engine::Error),
    /// The operator stopped with an error (lease, HTTP address).
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// The callback token Secret is missing or unusable.
    #[error("{0} (create it, or run with --callbacks=false)")]
    Token(#[from] TokenError),
    /// Reading the callback token Secret took too long.
    #[error("reading the callback token Secret {secret} took longer than {after:?}")]
    TokenTimeout {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The timeout.
        after: std::time::Duration,
    },
    /// The callback server could not start.
    #[error(transparent)]
    Callbacks(#[from] CallbackError),
    /// The handlers of Ctrl-C and SIGTERM could not be installed.
    #[error("cannot listen for Ctrl-C and SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
}

impl RunError {
    /// The exit code of `run` for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Connection(
                ConnectionError::Kubeconfig { .. } | ConnectionError::Config { .. },
            )
            | RunError::Setup(_)
            | RunError::Token(TokenError::Invalid { .. }) => EXIT_BAD_INPUT,
            _ => EXIT_INTERRUPTED,
        }
    }
}

/// This replica's identity: `--pod-name` (`POD_NAME`), else the host name with a random
/// suffix, so two replicas on one host never share a lease identity.
fn identity(pod_name: Option<String>) -> String {
    pod_name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "shared-storage-operator".to_owned());
        format!("{host}-{:08x}", rand::random::<u32>())
    })
}

/// Connects, checks and runs the operator until SIGTERM or Ctrl-C; the signal that stopped
/// it (a signal during the start-up checks ends the process as usual).
async fn start(args: RunArgs) -> Result<StopSignal, RunError> {
    let (client, url) =
        connection::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let version = connection::check(&client, &url, args.startup_timeout).await?;
    tracing::info!(%url, %version, "connected to the Kubernetes API server");

    let ports = crate::ports::kube::connect(client.clone(), &args.ports_config())?;
    let shutdown = Shutdown::listen().map_err(RunError::Signals)?;
    let until = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.stopped().await;
        }
    };
    operate(client, ports, &args, until).await?;
    Ok(shutdown.signal().unwrap_or(StopSignal::Terminate))
}

/// Runs the operator of `run` on `client` with `ports` until `stop` resolves: everything
/// `run` does after its start-up checks (the reconciler with leader election and
/// `/metrics`, the status monitor, the pod trigger, the callback server). Tests run it on a
/// fake API server.
pub async fn operate<S>(
    client: kube::Client,
    ports: crate::ports::Ports,
    args: &RunArgs,
    until: S,
) -> Result<(), RunError>
where
    S: std::future::Future<Output = ()> + Send + 'static,
{
    let identity = identity(args.pod_name.clone());
    let watch_namespace = args.watch_namespace.clone().filter(|n| !n.is_empty());
    let settings = ClusterSettings {
        filter: ClusterFilter::new(args.filter_operator_name.clone()),
        watch_namespace: watch_namespace.clone(),
        concurrency: args.max_concurrent_reconciles,
        flow_dir: args.flow_dir.clone(),
        instance: Some(identity.clone()),
        ..ClusterSettings::default()
    };
    let cluster_operator = ClusterOperator::build(client.clone(), ports, settings)?;
    let (service, locks) = (
        cluster_operator.service.clone(),
        cluster_operator.locks.clone(),
    );
    let mut operator = cluster_operator
        .into_operator()
        .with_http(args.metrics_addr);
    if args.leader_election {
        operator = operator.with_leader_election(LeaseConfig::new(
            args.own_namespace(),
            args.leader_election_id.clone(),
            identity,
        ));
    }
    let monitor = StatusMonitor::new(
        service,
        locks,
        Leadership::from_health(operator.health()),
        MonitorConfig {
            resync_interval: args.status_resync_interval,
            operator_name: args.filter_operator_name.clone(),
            ..MonitorConfig::default()
        },
    );
    let callback_server = if args.callbacks {
        let (namespace, name) = args.callback_token_secret();
        let read = CallbackToken::from_secret(client.clone(), &namespace, &name, TOKEN_KEY);
        let token = tokio::time::timeout(args.startup_timeout, read)
            .await
            .map_err(|_| RunError::TokenTimeout {
                secret: format!("{namespace}/{name}"),
                after: args.startup_timeout,
            })??;
        let listener = callbacks::bind(args.callback_addr).await?;
        Some((CallbackServer::new(monitor.clone(), token), listener))
    } else {
        tracing::info!("callbacks off (--callbacks=false): the status resync is the only feed");
        None
    };

    // The monitor and the callbacks stop once the operator has drained.
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let mut side_tasks = tokio::task::JoinSet::new();
    side_tasks.spawn(monitor.clone().run_until(until_stopped()));
    side_tasks.spawn({
        let (client, stopped) = (client.clone(), until_stopped());
        async move {
            trigger_on_pod_events(
                client,
                watch_namespace.as_deref(),
                INSTANCE_POD_SELECTOR,
                monitor,
                stopped,
            )
            .await;
        }
    });
    if let Some((server, listener)) = callback_server {
        let stopped = until_stopped();
        side_tasks.spawn(async move {
            if let Err(error) = server.serve(listener, stopped).await {
                tracing::warn!(%error, "callback server");
            }
        });
    }
    let result = operator.run_until(until).await;
    let _ = stop.send(true);
    while let Some(joined) = side_tasks.join_next().await {
        if let Err(error) = joined {
            tracing::warn!(%error, "a status task ended abnormally");
        }
    }
    result?;
    Ok(())
}

/// Runs `run`; returns the exit code (after a graceful stop: 0 for SIGTERM, 130 for
/// Ctrl-C).
pub async fn run(args: RunArgs) -> u8 {
    match start(args).await {
        Ok(signal) => signal.exit_code(true),
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}
