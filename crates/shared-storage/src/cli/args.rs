//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::ports::kube::KubePortsConfig;

/// The exit codes, as `--help` lists them (see [`super::EXIT_OK`] and the others).
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every resource is Running (local), the command succeeded, or run stopped by SIGTERM
  1    a resource is Interrupt (local), a request was refused (recover, cancel, abandon, an
       invalid spec), an unknown name, or the command failed
  2    bad input (a missing or invalid file, a bad flag) or the state directory is locked
  130  stopped by Ctrl-C (local, run) once the running steps reached a saved transition
  143  local stopped by SIGTERM once the running steps reached a saved transition
A second Ctrl-C or SIGTERM stops at once, as a kill does (the next run resumes the step).";

/// The MPDCluster operator. `run` runs it on a Kubernetes cluster; `local` on an embedded
/// backend, no Kubernetes needed.
#[derive(Clone, Debug, Parser)]
#[command(name = "shared-storage-operator", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Where the local backend keeps its state (resources, runs, history, simulators).
    #[arg(long, global = true, default_value = "./.mpd-local")]
    pub state_dir: PathBuf,
    /// The namespace of the resources named on the command line.
    #[arg(long, short = 'n', global = true, default_value = "default")]
    pub namespace: String,
    /// Log more to stderr: `-v` warnings (with the engine's log of each step failure),
    /// `-vv` info, `-vvv` debug (`RUST_LOG` overrides). Without it: warnings and errors,
    /// but a step failure only as `local`'s own output line.
    #[arg(long, short = 'v', global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

/// The commands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Run the operator on a Kubernetes cluster until SIGTERM or ctrl-c.
    Run(Box<RunArgs>),
    /// Apply MPDCluster documents and reconcile until every resource is stable.
    #[command(after_help = EXIT_CODES_HELP)]
    Local(LocalArgs),
    /// The flow runs of a resource.
    Workflows(InspectArgs),
    /// The history events of a resource (on a cluster: its Kubernetes Events), with the run
    /// SEQ, millisecond times and the reason of each wait.
    History(HistoryArgs),
    /// Without a name: a table of the resources (NAME, STATUS, LEADER, RO, READY, AGE).
    /// With a name: the resource with its status, as YAML (`-o table|wide|json` too).
    Get(GetArgs),
    /// An overview of a resource: its state, the leader, each instance (role, node, engine
    /// state) and the running flow with its current step.
    Status(InspectArgs),
    /// Ask for recovery of an interrupted resource (annotation `interrupt.recover=T`).
    Recover(NameArgs),
    /// Cancel the running flow of a resource (annotation `cancelled=true`).
    Cancel(NameArgs),
    /// Abandon the stuck run of a resource (annotation `interrupt.abandon=T`): the run is
    /// closed as abandoned, what it left (temp ROs without a pod, the replacement plan) is
    /// cleaned up, and the resource goes to Running; the next request starts a new run.
    Abandon(NameArgs),
    /// Delete a resource: the deletion path runs (its volume is released, its cluster
    /// manager removed, the finalizer dropped) and the resource and its runs are gone.
    Delete(NameArgs),
}

/// Arguments of `local`.
#[derive(Clone, Debug, Args)]
pub struct LocalArgs {
    /// MPDCluster YAML files (several documents per file allowed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Keep running and re-apply a file when it changes.
    #[arg(long)]
    pub watch: bool,
    /// Latency of every simulated call, e.g. `50ms`.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub sim_latency: Duration,
    /// Probability that a simulated call fails (0.0 to 1.0).
    #[arg(long, value_parser = parse_rate, default_value_t = 0.0)]
    pub sim_fail_rate: f64,
    /// Seed of the simulators' fault injection.
    #[arg(long, default_value_t = 0)]
    pub sim_seed: u64,
    /// How many times a simulated long operation (a pod starting, a storage job) answers
    /// "not ready" before it is done: a step waits that often for each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub sim_ready_after_polls: u32,
    /// How many resources reconcile at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
}

/// The image pull policy of the containers the operator creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Pull on every start.
    #[value(name = "Always")]
    Always,
    /// Pull when the node does not have the image.
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    /// Never pull.
    #[value(name = "Never")]
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Arguments of `run`. Every flag can also be given by the environment variable shown in
/// `--help` (the flag wins).
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Kubeconfig file(s), `:`-separated as in KUBECONFIG. Without it: the in-cluster
    /// service account, else `~/.kube/config`.
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, env = "MPD_KUBE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// How long each start-up check (API server reachable, CRD installed) may take.
    #[arg(long, env = "MPD_STARTUP_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    pub startup_timeout: Duration,

    /// Reconcile only while holding the Lease `--leader-election-id` (`=false` to run
    /// without leader election, e.g. with one replica).
    #[arg(long, env = "MPD_LEADER_ELECTION", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_value_t = true, default_missing_value = "true")]
    pub leader_election: bool,
    /// The name of the Lease.
    #[arg(
        long,
        env = "MPD_LEADER_ELECTION_ID",
        default_value = "mpd.polardb.aliyun.com"
    )]
    pub leader_election_id: String,
    /// The namespace of the Lease (default: `--system-namespace`).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// This replica's identity in the Lease and in Events (default: the host name and a
    /// random suffix).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "MPD_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Watch MPDClusters of this namespace only (default: every namespace).
    #[arg(long, env = "MPD_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Handle MPDClusters whose `spec.operatorName` is this (empty: any).
    #[arg(long, env = "MPD_FILTER_OPERATOR_NAME", default_value = "polar-mpd")]
    pub filter_operator_name: String,
    /// How many clusters reconcile at once.
    #[arg(long, env = "MPD_MAX_CONCURRENT_RECONCILES", default_value_t = 26,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_concurrent_reconciles: u16,
    /// A directory holding `shared/*.yaml` to read the flows from instead of the flows
    /// built into the binary.
    #[arg(long, env = "MPD_FLOW_DIR", value_name = "DIR")]
    pub flow_dir: Option<PathBuf>,

    /// The namespace of the system objects (id/port ConfigMap, catalogs, SMS service).
    #[arg(long, env = "MPD_SYSTEM_NAMESPACE", default_value = "kube-system")]
    pub system_namespace: String,
    /// The host directory under which each instance keeps its data, logs and scripts.
    #[arg(long, env = "MPD_DBCLUSTER_LOG_DIR", default_value = "/disk1/polardb/")]
    pub dbcluster_log_dir: String,
    /// The image pull policy of every container the operator creates.
    #[arg(long, env = "MPD_IMAGE_PULL_POLICY", value_enum, default_value_t = PullPolicy::IfNotPresent)]
    pub image_pull_policy: PullPolicy,
    /// The `dbType` label of the class and version ConfigMaps.
    #[arg(long, env = "MPD_DB_TYPE_LABEL", default_value = "PostgreSQL")]
    pub db_type_label: String,
    /// Run the instance containers privileged.
    #[arg(long, env = "MPD_RUN_POD_IN_PRIVILEGED_MODE", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_value_t = false, default_missing_value = "true")]
    pub run_pod_in_privileged_mode: bool,
    /// CPU of the cluster-manager container, `request/limit`.
    #[arg(long, env = "MPD_CM_CPU_REQ_LIMIT", default_value = "200m/500m", value_parser = parse_req_limit)]
    pub cm_cpu_req_limit: String,
    /// Memory of the cluster-manager container, `request/limit`.
    #[arg(long, env = "MPD_CM_MEM_REQ_LIMIT", default_value = "200Mi/512Mi", value_parser = parse_req_limit)]
    pub cm_mem_req_limit: String,
    /// The host directory of the cluster-manager logs.
    #[arg(
        long,
        env = "MPD_CM_LOG_HOST_PATH",
        default_value = "/var/log/polardb-box/polardb-cm"
    )]
    pub cm_log_host_path: String,
    /// Where the cluster-manager log directory is mounted in its container.
    #[arg(
        long,
        env = "MPD_CM_LOG_MOUNT_PATH",
        default_value = "/root/polardb_cluster_manager/log"
    )]
    pub cm_log_mount_path: String,

    /// How long an HTTP call to the SMS or a CM may take to connect.
    #[arg(long, env = "MPD_HTTP_CONNECT_TIMEOUT", value_parser = parse_duration, default_value = "3s")]
    pub http_connect_timeout: Duration,
    /// How long an HTTP call to the SMS or a CM may take in all.
    #[arg(long, env = "MPD_HTTP_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub http_request_timeout: Duration,
    /// How long a CM `add_ins` may take (the CM waits up to 60 s itself).
    #[arg(long, env = "MPD_CM_ADD_INS_TIMEOUT", value_parser = parse_duration, default_value = "75s")]
    pub cm_add_ins_timeout: Duration,
    /// How many times a transient HTTP failure is retried within one call.
    #[arg(long, env = "MPD_HTTP_RETRIES", default_value_t = 2)]
    pub http_retries: u32,
    /// The pause between those retries.
    #[arg(long, env = "MPD_HTTP_RETRY_PAUSE", value_parser = parse_duration, default_value = "500ms")]
    pub http_retry_pause: Duration,
    /// The storage-management service's base URL (`http://host:port`); by default the
    /// cluster IP and first port of Service `<system namespace>/polardb-sms-manager`.
    #[arg(long, env = "MPD_SMS_BASE_URL")]
    pub sms_base_url: Option<String>,
    /// How long one exec into an instance container may take.
    #[arg(long, env = "MPD_EXEC_TIMEOUT", value_parser = parse_duration, default_value = "60s")]
    pub exec_timeout: Duration,

    /// Serve the cluster managers' callbacks (`rw_ins`, `meta/engine_status`) on
    /// `--callback-addr`, authenticated with the token of `--callback-token-secret`
    /// (`=false`: no callbacks; the status monitor's resync is then the only feed).
    #[arg(long, env = "MPD_CALLBACKS", action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_value_t = true, default_missing_value = "true")]
    pub callbacks: bool,
    /// Where the callbacks are served.
    #[arg(long, env = "MPD_CALLBACK_ADDR", default_value = "0.0.0.0:6099")]
    pub callback_addr: SocketAddr,
    /// The Secret holding the callback bearer token under the key `token`:
    /// `NAME` (in the operator's namespace, `POD_NAMESPACE`, else `--system-namespace`) or
    /// `NAMESPACE/NAME`.
    #[arg(
        long,
        env = "MPD_CALLBACK_TOKEN_SECRET",
        default_value = "polar-mpd-callback-token"
    )]
    pub callback_token_secret: String,
    /// How often the status monitor asks every cluster manager for its cluster's state
    /// (the callbacks and pod events fold a cluster at once in between).
    #[arg(long, env = "MPD_STATUS_RESYNC_INTERVAL", value_parser = parse_duration, default_value = "60s")]
    pub status_resync_interval: Duration,
}

impl RunArgs {
    /// The settings of the production adapters.
    pub fn ports_config(&self) -> KubePortsConfig {
        KubePortsConfig {
            system_namespace: self.system_namespace.clone(),
            dbcluster_log_dir: self.dbcluster_log_dir.clone(),
            image_pull_policy: self.image_pull_policy.as_str().to_owned(),
            db_type_label: self.db_type_label.clone(),
            privileged_pods: self.run_pod_in_privileged_mode,
            cm_cpu_req_limit: self.cm_cpu_req_limit.clone(),
            cm_mem_req_limit: self.cm_mem_req_limit.clone(),
            cm_log_host_path: self.cm_log_host_path.clone(),
            cm_log_mount_path: self.cm_log_mount_path.clone(),
            http_connect_timeout: self.http_connect_timeout,
            http_request_timeout: self.http_request_timeout,
            cm_add_ins_timeout: self.cm_add_ins_timeout,
            http_retries: self.http_retries,
            http_retry_pause: self.http_retry_pause,
            exec_timeout: self.exec_timeout,
            sms_base_url: self.sms_base_url.clone(),
            ..KubePortsConfig::default()
        }
        .cm_api_server_env_from_process()
    }

    /// The namespace the operator runs in: `POD_NAMESPACE` (`--leader-election-namespace`),
    /// else `--system-namespace`.
    pub fn own_namespace(&self) -> String {
        self.leader_election_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.system_namespace.clone())
    }

    /// The callback token Secret as `(namespace, name)`.
    pub fn callback_token_secret(&self) -> (String, String) {
        match self.callback_token_secret.split_once('/') {
            Some((ns, name)) if !ns.is_empty() => (ns.to_owned(), name.to_owned()),
            Some((_, name)) => (self.own_namespace(), name.to_owned()),
            None => (self.own_namespace(), self.callback_token_secret.clone()),
        }
    }
}

/// `request/limit`, each side non-empty, e.g. `200m/500m`.
fn parse_req_limit(value: &str) -> Result<String, String> {
    match value.split_once('/') {
        Some((request, limit))
            if !request.trim().is_empty() && !limit.trim().is_empty() && !limit.contains('/') =>
        {
            Ok(value.to_owned())
        }
        _ => Err(format!(
            "{value:?} is not request/limit (write e.g. 200m/500m)"
        )),
    }
}

/// Where the inspection commands look: the state directory (`--state-dir`, the default) or,
/// with `--kubeconfig`, `--context` or `--cluster`, a Kubernetes cluster.
#[derive(Clone, Debug, Default, Args)]
pub struct TargetArgs {
    /// Read the Kubernetes cluster of this kubeconfig (`:`-separated files, as in
    /// KUBECONFIG) instead of `--state-dir`.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<String>,
    /// Read the Kubernetes cluster of this kubeconfig context instead of `--state-dir`.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Read the Kubernetes cluster instead of `--state-dir`: the kubeconfig of KUBECONFIG,
    /// else the in-cluster service account, else `~/.kube/config`. (KUBECONFIG alone does
    /// not switch: the state directory stays the default.)
    #[arg(long)]
    pub cluster: bool,
}

/// Which backend [`TargetArgs`] name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The state directory.
    Local,
    /// A Kubernetes cluster.
    Cluster {
        /// The kubeconfig paths (`--kubeconfig`, else KUBECONFIG), if any.
        kubeconfig: Option<String>,
        /// The kubeconfig context, if any.
        context: Option<String>,
    },
}

impl TargetArgs {
    /// The backend: a cluster when `--kubeconfig`, `--context` or `--cluster` is given,
    /// with the kubeconfig of `--kubeconfig`, else of `kubeconfig_env` (KUBECONFIG).
    pub fn target(&self, kubeconfig_env: Option<String>) -> Target {
        if self.kubeconfig.is_none() && self.context.is_none() && !self.cluster {
            return Target::Local;
        }
        Target::Cluster {
            kubeconfig: self
                .kubeconfig
                .clone()
                .or(kubeconfig_env)
                .filter(|k| !k.is_empty()),
            context: self.context.clone().filter(|c| !c.is_empty()),
        }
    }
}

/// A resource name.
#[derive(Clone, Debug, Args)]
pub struct NameArgs {
    /// The MPDCluster name.
    pub name: String,
    /// Where to look.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// A resource name and an output format.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// The MPDCluster name.
    pub name: String,
    /// How to print.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Where to look.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Arguments of `history`: a resource name, an output format and filters.
#[derive(Clone, Debug, Args)]
pub struct HistoryArgs {
    /// The name and the output format.
    #[command(flatten)]
    pub inspect: InspectArgs,
    /// Only the events of the run with this SEQ (the SEQ of `workflows`).
    #[arg(long, value_name = "N")]
    pub seq: Option<u64>,
    /// Only the events of this flow (e.g. `CreateSharedStorageCluster`).
    #[arg(long, value_name = "NAME")]
    pub flow: Option<String>,
}

/// Arguments of `get`: an optional name and an output format.
#[derive(Clone, Debug, Args)]
pub struct GetArgs {
    /// The MPDCluster name; without it, every MPDCluster of the namespace.
    pub name: Option<String>,
    /// How to print (default: `yaml` for a named resource, `table` for the list).
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<OutputFormat>,
    /// Where to look.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// How a command prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// Aligned columns with more of them (`get`: the namespace, version, class and
    /// storage; the other commands print their table).
    Wide,
    /// JSON (one object, or one array for a listing).
    Json,
    /// YAML (the same document as JSON).
    Yaml,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{e} (write e.g. 50ms, 1s)"))
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_options_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "op",
            "local",
            "a.yaml",
            "--state-dir",
            "/tmp/x",
            "--sim-fail-rate",
            "0.2",
            "--sim-seed",
            "7",
        ])
        .unwrap();
        assert_eq!(cli.global.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cli.global.namespace, "default");
        let Command::Local(local) = cli.command else {
            panic!("local")
        };
        assert_eq!(local.sim_fail_rate, 0.2);
        assert_eq!(local.sim_seed, 7);
    }

    #[test]
    fn a_fail_rate_outside_zero_to_one_is_refused() {
        assert!(Cli::try_parse_from(["op", "local", "a.yaml", "--sim-fail-rate", "1.5"]).is_err());
    }

    fn run(args: &[&str]) -> RunArgs {
        let mut argv = vec!["op", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(run) => *run,
            other => panic!("run, got {other:?}"),
        }
    }

    #[test]
    fn run_defaults_are_the_originals_and_map_onto_the_adapter_settings() {
        let args = run(&[]);
        assert!(args.leader_election);
        assert_eq!(args.leader_election_id, "mpd.polardb.aliyun.com");
        assert_eq!(args.filter_operator_name, "polar-mpd");
        assert_eq!(args.max_concurrent_reconciles, 26);
        assert_eq!(args.metrics_addr.port(), 8080);
        assert_eq!(args.ports_config(), KubePortsConfig::default());
    }

    #[test]
    fn run_flags_set_the_adapter_settings() {
        let args = run(&[
            "--leader-election=false",
            "--filter-operator-name",
            "",
            "--image-pull-policy",
            "Always",
            "--run-pod-in-privileged-mode",
            "--cm-cpu-req-limit",
            "1/2",
            "--http-request-timeout",
            "1500ms",
            "--dbcluster-log-dir",
            "/data/",
        ]);
        assert!(!args.leader_election);
        assert_eq!(args.filter_operator_name, "");
        let config = args.ports_config();
        assert_eq!(config.image_pull_policy, "Always");
        assert!(config.privileged_pods);
        assert_eq!(config.cm_cpu_req_limit, "1/2");
        assert_eq!(config.http_request_timeout, Duration::from_millis(1500));
        assert_eq!(config.dbcluster_log_dir, "/data/");
    }

    #[test]
    fn a_malformed_request_limit_or_pull_policy_is_refused_naming_the_value() {
        let err = Cli::try_parse_from(["op", "run", "--cm-mem-req-limit", "512Mi"]).unwrap_err();
        assert!(err.to_string().contains("512Mi"), "{err}");
        assert!(Cli::try_parse_from(["op", "run", "--image-pull-policy", "Sometimes"]).is_err());
        assert!(Cli::try_parse_from(["op", "run", "--max-concurrent-reconciles", "0"]).is_err());
    }

    #[test]
    fn outputs_parse() {
        let cli = Cli::try_parse_from(["op", "workflows", "demo", "--output", "json", "-n", "ns"])
            .unwrap();
        let Command::Workflows(args) = cli.command else {
            panic!("workflows")
        };
        assert_eq!(args.output, OutputFormat::Json);
        assert_eq!(cli.global.namespace, "ns");
    }

    fn target(args: &[&str], env: Option<&str>) -> Target {
        let mut argv = vec!["op", "status", "demo"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Status(args) => args.target.target(env.map(str::to_owned)),
            other => panic!("status, got {other:?}"),
        }
    }

    #[test]
    fn inspection_reads_the_state_dir_unless_a_kubeconfig_a_context_or_cluster_is_given() {
        assert_eq!(target(&[], Some("/k")), Target::Local, "KUBECONFIG alone");
        assert_eq!(
            target(&["--kubeconfig", "/a"], Some("/k")),
            Target::Cluster {
                kubeconfig: Some("/a".into()),
                context: None
            }
        );
        assert_eq!(
            target(&["--context", "prod"], Some("/k")),
            Target::Cluster {
                kubeconfig: Some("/k".into()),
                context: Some("prod".into())
            }
        );
        assert_eq!(
            target(&["--cluster"], None),
            Target::Cluster {
                kubeconfig: None,
                context: None
            }
        );
    }
}
