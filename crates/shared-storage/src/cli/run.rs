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

use wf_kube::{LeaseConfig, OperatorError};

use super::args::RunArgs;
use super::connection::{self, ConnectionError};
use super::{EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK};
use crate::cluster::{ClusterFilter, ClusterOperator, ClusterSettings};
use crate::ports::PortError;

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
enum RunError {
    /// The cluster could not be used.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A production adapter could not be built.
    #[error("cannot assemble the production ports: {0}")]
    Ports(#[from] PortError),
    /// The flows or the state machine are not valid.
    #[error("cannot set up the operator: {0}")]
    Setup(#[from] wf_engine::Error),
    /// The operator could not run (the metrics address is taken, a bad lease config).
    #[error(transparent)]
    Operator(#[from] OperatorError),
}

impl RunError {
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Connection(
                ConnectionError::Kubeconfig { .. } | ConnectionError::Config { .. },
            )
            | RunError::Setup(_) => EXIT_BAD_INPUT,
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

async fn start(args: RunArgs) -> Result<(), RunError> {
    let config =
        connection::client_config(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let url = config.cluster_url.to_string();
    let client = connection::client(config)?;
    let version = connection::check(&client, &url, args.startup_timeout).await?;
    tracing::info!(%url, %version, "connected to the Kubernetes API server");

    let ports = crate::ports::kube::connect(client.clone(), &args.ports_config())?;
    let identity = identity(args.pod_name.clone());
    let settings = ClusterSettings {
        filter: ClusterFilter::new(args.filter_operator_name.clone()),
        watch_namespace: args.watch_namespace.clone().filter(|n| !n.is_empty()),
        concurrency: args.max_concurrent_reconciles,
        flow_dir: args.flow_dir.clone(),
        instance: Some(identity.clone()),
        ..ClusterSettings::default()
    };
    let mut operator = ClusterOperator::build(client, ports, settings)?
        .into_operator()
        .with_http(args.metrics_addr);
    if args.leader_election {
        let namespace = args
            .leader_election_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| args.system_namespace.clone());
        operator = operator.with_leader_election(LeaseConfig::new(
            namespace,
            args.leader_election_id.clone(),
            identity,
        ));
    }
    operator.run().await?;
    Ok(())
}

/// Runs `run`; returns the exit code (0 after a graceful stop).
pub async fn run(args: RunArgs) -> u8 {
    match start(args).await {
        Ok(()) => EXIT_OK,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}
