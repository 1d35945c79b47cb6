//! The settings every production adapter reads: where the system objects live, host paths,
//! images and resources of what the operator creates, and HTTP timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

/// Settings of the production adapters. `Default` gives the original operator's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubePortsConfig {
    /// The namespace of the system objects (id/port ConfigMap, catalogs, templates, the SMS
    /// service, controller-config). Default `kube-system`.
    pub system_namespace: String,
    /// The host directory under which each instance keeps `<insId>/data`, `/log` and
    /// `/scripts` (`--dbcluster-log-dir`, joined without a separator). Default
    /// `/disk1/polardb/`.
    pub dbcluster_log_dir: String,
    /// The image pull policy of every container the operator creates
    /// (`--image-pull-policy`). Default `IfNotPresent`.
    pub image_pull_policy: String,
    /// The `dbType` label of the class and version ConfigMaps (`--db-type-label`). Default
    /// `PostgreSQL`.
    pub db_type_label: String,
    /// Whether instance containers run privileged (`--run-pod-in-privileged-mode`). Default
    /// false.
    pub privileged_pods: bool,
    /// CM container CPU as `request/limit` (`--cm-cpu-req-limit`). Default `200m/500m`.
    pub cm_cpu_req_limit: String,
    /// CM container memory as `request/limit` (`--cm-mem-req-limit`). Default `200Mi/512Mi`.
    pub cm_mem_req_limit: String,
    /// Host directory of the CM logs (`--cm-log-host-path`). Default
    /// `/var/log/polardb-box/polardb-cm`.
    pub cm_log_host_path: String,
    /// Where the CM log directory is mounted (`--cm-log-mount-path`). Default
    /// `/root/polardb_cluster_manager/log`.
    pub cm_log_mount_path: String,
    /// How long an HTTP call (SMS, CM) may take to connect. Default 3 s.
    pub http_connect_timeout: Duration,
    /// How long an HTTP action call (SMS, CM) may take in all. Default 10 s; the CM's
    /// `add_ins` blocks up to 60 s on the server, so it and the other blocking calls get
    /// [`KubePortsConfig::cm_add_ins_timeout`].
    pub http_request_timeout: Duration,
    /// How long a CM call that blocks on the server may take: `add_ins` (the server waits
    /// up to 60 s for the instance), `remove_ins` (20 s) and `switchover` (60 s for the new
    /// RW). A timeout of these is not retried. Default 75 s.
    pub cm_add_ins_timeout: Duration,
    /// How many times a transient HTTP failure (connect error, timeout, 5xx) is retried
    /// within one call. Default 2. The retries and their pauses hold the step's worker, so
    /// keep this small: a call that still fails returns an error and the engine's own
    /// retry with backoff takes over.
    pub http_retries: u32,
    /// The pause between those retries. Default 500 ms.
    pub http_retry_pause: Duration,
    /// The base URL of the storage-management service (`http://host:port`). `None`
    /// (default) looks it up: the cluster IP and first port of Service
    /// `<system_namespace>/polardb-sms-manager`.
    pub sms_base_url: Option<String>,
    /// The ClusterRole bound to the cluster manager's service account by the
    /// ClusterRoleBinding `<namespace>-cluster-manager-rolebinding`. Default
    /// `polardb4mpd-controller-manager-role` (the original's).
    pub cm_cluster_role: String,
    /// The service account the cluster-manager pods run as, one per namespace, created if
    /// missing and never deleted (other clusters of the namespace share it). Default
    /// `polardb-cluster-manager`, so that the CM's rights are not given to every pod that
    /// runs as the namespace's `default` account.
    pub cm_service_account: String,
    /// Environment copied into the cluster-manager container: the original passes on the
    /// operator's own `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT` and
    /// `KUBERNETES_ENDPOINTS` when they are set ([`KubePortsConfig::cm_api_server_env_from_process`]).
    /// Default empty.
    pub cm_api_server_env: BTreeMap<String, String>,
    /// How long one exec into an instance container may take. Default 60 s.
    pub exec_timeout: Duration,
    /// How many times a read-modify-write of a shared object (the id/port ConfigMap, the
    /// parameter ConfigMaps) is tried when its write loses an optimistic-concurrency race
    /// (HTTP 409), the first try included. Default 10.
    pub conflict_attempts: u32,
    /// The pause after the first lost race; each further pause doubles (up to 1 s) and is
    /// jittered, so that racing writers drift apart. Default 20 ms.
    pub conflict_backoff: Duration,
    /// The range the CM's host ports are allocated from when the id/port ConfigMap has no
    /// `polarbox.mpd.external.port.range` annotation (`a-b`, `a+n` or one port). Default
    /// `36000-39999`.
    pub external_port_range: String,
    /// The range the engine port must lie in when the id/port ConfigMap has no
    /// `polarbox.novip.engine.port.range` annotation. Default `5400-5800`.
    pub engine_port_range: String,
    /// The most bytes kept of an exec's stdout, and of its stderr (the rest is read and
    /// dropped). Default 1 MiB.
    pub exec_output_limit: usize,
    /// How long a graceful engine stop may take (the original's 10 s window). Default 10 s.
    pub graceful_stop_timeout: Duration,
    /// How long a new instance pod may stay unscheduled or not Ready before `ensure_pod`
    /// reports it failed (`PodUnscheduled`, `DbStartFail`); until then it is pending.
    /// Default 15 min (the original's 900 s watch).
    pub pod_ready_timeout: Duration,
    /// The ConfigMap (in [`KubePortsConfig::system_namespace`]) with `hybridDeployment`
    /// and `controllerNodeLabel`, read when an instance pod is created. Missing means
    /// hybrid (no controller-node rule). Default `controller-config`.
    pub controller_config_name: String,
    /// The `hugepages-2Mi` limit (a quantity) of the engine container. With it the pod
    /// gets the `hugepage` volume at `/hugepages`; without it neither, since a HugePages
    /// volume without a hugepages request keeps a pod from starting. Default none (the
    /// class's `hugepage_limit` does not reach the pod spec yet).
    pub engine_hugepages: Option<String>,
    /// Whether parameters the template marks not user-changeable may be changed
    /// (controller-config `canUpdateNotChangeableParams`), for the effective parameters the
    /// engine agent gets as `mycnf_dict`. Keep it equal to the service's setting. Default
    /// false.
    pub can_update_not_changeable_params: bool,
}

impl Default for KubePortsConfig {
    fn default() -> Self {
        KubePortsConfig {
            system_namespace: "kube-system".into(),
            dbcluster_log_dir: "/disk1/polardb/".into(),
            image_pull_policy: "IfNotPresent".into(),
            db_type_label: "PostgreSQL".into(),
            privileged_pods: false,
            cm_cpu_req_limit: "200m/500m".into(),
            cm_mem_req_limit: "200Mi/512Mi".into(),
            cm_log_host_path: "/var/log/polardb-box/polardb-cm".into(),
            cm_log_mount_path: "/root/polardb_cluster_manager/log".into(),
            http_connect_timeout: Duration::from_secs(3),
            http_request_timeout: Duration::from_secs(10),
            cm_add_ins_timeout: Duration::from_secs(75),
            http_retries: 2,
            http_retry_pause: Duration::from_millis(500),
            sms_base_url: None,
            cm_cluster_role: crate::rbac::CM_CLUSTER_ROLE.into(),
            cm_service_account: "polardb-cluster-manager".into(),
            cm_api_server_env: BTreeMap::new(),
            exec_timeout: Duration::from_secs(60),
            conflict_attempts: 10,
            conflict_backoff: Duration::from_millis(20),
            external_port_range: "36000-39999".into(),
            engine_port_range: "5400-5800".into(),
            exec_output_limit: 1 << 20,
            graceful_stop_timeout: Duration::from_secs(10),
            pod_ready_timeout: Duration::from_secs(15 * 60),
            controller_config_name: "controller-config".into(),
            engine_hugepages: None,
            can_update_not_changeable_params: false,
        }
    }
}

/// The variables of the operator's environment that reach the cluster-manager container.
pub const CM_API_SERVER_ENV: [&str; 3] = [
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBERNETES_ENDPOINTS",
];

impl KubePortsConfig {
    /// Fills [`KubePortsConfig::cm_api_server_env`] from this process's environment (the
    /// variables of [`CM_API_SERVER_ENV`] that are set).
    pub fn cm_api_server_env_from_process(mut self) -> Self {
        self.cm_api_server_env = CM_API_SERVER_ENV
            .iter()
            .filter_map(|key| std::env::var(key).ok().map(|v| ((*key).to_owned(), v)))
            .collect();
        self
    }
}
