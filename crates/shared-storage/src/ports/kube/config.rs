//! The settings every production adapter reads: where the system objects live, host paths,
//! images and resources of what the operator creates, and HTTP timeouts.

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
    /// `add_ins` blocks up to 60 s on the server, so its calls get
    /// [`KubePortsConfig::cm_add_ins_timeout`].
    pub http_request_timeout: Duration,
    /// How long a CM `add_ins` may take (the server waits up to 60 s). Default 75 s.
    pub cm_add_ins_timeout: Duration,
    /// How many times a transient HTTP failure (connect error, timeout, 5xx) is retried
    /// within one call. Default 3.
    pub http_retries: u32,
    /// The pause between those retries. Default 2 s.
    pub http_retry_pause: Duration,
    /// How long one exec into an instance container may take. Default 60 s.
    pub exec_timeout: Duration,
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
            http_retries: 3,
            http_retry_pause: Duration::from_secs(2),
            exec_timeout: Duration::from_secs(60),
            exec_output_limit: 1 << 20,
            graceful_stop_timeout: Duration::from_secs(10),
            pod_ready_timeout: Duration::from_secs(15 * 60),
            controller_config_name: "controller-config".into(),
            engine_hugepages: None,
            can_update_not_changeable_params: false,
        }
    }
}
