//! The Kubernetes objects of a cluster manager (CM), built from a [`CmSpec`]: what
//! [`KubeClusterManager`](super::KubeClusterManager) creates if missing.
//!
//! | object | name | content |
//! |--------|------|---------|
//! | Deployment | `<cluster>.cm` | one replica, container `manager`, host network, pod labels `app=<cluster>.cm` and `port=<cmPort>`; progressDeadlineSeconds 20; RollingUpdate 3/3 (an upgrade sets Recreate) |
//! | ConfigMap | `<cluster>.cm` | `subscribe.conf`: where the SMS is and which PVC is the cluster's |
//! | Secret | `<cluster>.cm` | `polardb_cluster_manager.conf`: consensus and CM ports, work mode, cluster, **the `aurora` and `replicator` accounts and their passwords** |
//! | ConfigMap | `<cluster>-cmconfig` | empty; the CM's meta store |
//! | ConfigMap | `<cluster>-cmflag` | `enable_all=1`, `enable_online_promote`, `enable_redline` (`1`/`0`) |
//! | ServiceAccount | `<cm_service_account>` in the namespace | the identity of the CM pods (shared by the namespace's clusters) |
//! | ClusterRoleBinding | `<namespace>-cluster-manager-rolebinding` | ClusterRole `<cm_cluster_role>` → that service account |
//!
//! The original wrote both passwords in clear text into the `<cluster>.cm` ConfigMap. Here
//! the file that holds them is a Secret, and the pod mounts the ConfigMap's and the Secret's
//! keys together, through one projected volume `polardb-cluster-manager-conf` (mode 0400), at
//! `/root/polardb_cluster_manager/conf` — the same two files where the CM image expects them.
//!
//! Everything but the ClusterRoleBinding and the ServiceAccount has a controller owner
//! reference to the MPDCluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapProjection, Container, ContainerPort, EnvVar,
    HostPathVolumeSource, KeyToPath, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, ResourceRequirements, Secret, SecretProjection, ServiceAccount, Volume,
    VolumeMount, VolumeProjection, WeightedPodAffinityTerm,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use serde_json::json;

use super::sms_jobs::MANAGED_BY;
use super::KubePortsConfig;
use crate::ports::{Account, ClusterRef, CmSpec, PortError};

/// The port name in errors.
const PORT: &str = "cluster_manager";
/// The CM's configuration directory in its image.
pub(crate) const CONF_DIR: &str = "/root/polardb_cluster_manager/conf";
/// The main configuration file (in the Secret).
pub(crate) const MAIN_CONF: &str = "polardb_cluster_manager.conf";
/// The subscription file (in the ConfigMap).
pub(crate) const SUBSCRIBE_CONF: &str = "subscribe.conf";
/// The container name.
pub(crate) const CONTAINER: &str = "manager";
/// The node label that takes a node out of service.
const MAINTAIN_NODE_LABEL: &str = "mpd.polardb.aliyun.com/maintainNode";
/// The CM's node-driver port (fixed in the original).
const NODE_DRIVER_PORT: i32 = 22345;

/// The names of a cluster's CM objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CmNames {
    /// The Deployment, the conf ConfigMap, the conf Secret and the `app` label value.
    pub(crate) app: String,
    /// `<cluster>-cmconfig`.
    pub(crate) meta: String,
    /// `<cluster>-cmflag`.
    pub(crate) flag: String,
    /// `<cluster>-cmleader` (the CM's; deleted on removal).
    pub(crate) leader: String,
    /// `<cluster>-global-cmconfig` (the CM's; deleted on removal).
    pub(crate) global: String,
    /// `<namespace>-cluster-manager-rolebinding`.
    pub(crate) binding: String,
}

impl CmNames {
    /// The names for `cluster`.
    pub(crate) fn of(cluster: &ClusterRef) -> Self {
        let c = &cluster.name;
        CmNames {
            app: format!("{c}.cm"),
            meta: format!("{c}-cmconfig"),
            flag: format!("{c}-cmflag"),
            leader: format!("{c}-cmleader"),
            global: format!("{c}-global-cmconfig"),
            binding: format!("{}-cluster-manager-rolebinding", cluster.namespace),
        }
    }

    /// Every ConfigMap removed with the CM.
    pub(crate) fn config_maps(&self) -> [&str; 5] {
        [
            &self.app,
            &self.meta,
            &self.flag,
            &self.leader,
            &self.global,
        ]
    }

    /// The pod label selector.
    pub(crate) fn selector(&self) -> String {
        format!("app={}", self.app)
    }
}

/// What the CM objects take from the system ConfigMaps `ccm-config` and
/// `controller-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CmSettings {
    /// `ccm-config` `NET_CARD_NAME` (default `bond1`).
    pub(crate) client_interface: String,
    /// `ccm-config` `INTERNAL_NETWORK_CARD_NAME` (default `bond1`).
    pub(crate) service_interface: String,
    /// `controller-config` `enableOnlinePromote` (default false).
    pub(crate) online_promote: bool,
    /// `controller-config` `enableRedline` (default true).
    pub(crate) redline: bool,
    /// `controller-config` `cmHybridDeployment` (default false).
    pub(crate) cm_hybrid: bool,
    /// `controller-config` `controllerNodeLabel` (empty: none).
    pub(crate) controller_node_label: String,
}

impl Default for CmSettings {
    fn default() -> Self {
        CmSettings::from_data(None, None)
    }
}

/// A `controller-config` flag: `1/T/Y/TRUE/YES` (any case) is true; empty is `default`;
/// for a default-true flag anything but `0/F/N/FALSE/NO` is true.
pub(crate) fn flag(value: Option<&String>, default: bool) -> bool {
    let value = value
        .map(|v| v.trim().to_ascii_uppercase())
        .unwrap_or_default();
    if value.is_empty() {
        return default;
    }
    if default {
        !matches!(value.as_str(), "0" | "F" | "N" | "FALSE" | "NO")
    } else {
        matches!(value.as_str(), "1" | "T" | "Y" | "TRUE" | "YES")
    }
}

impl CmSettings {
    /// The settings from the data of `ccm-config` and `controller-config` (either may be
    /// missing: defaults).
    pub(crate) fn from_data(
        ccm: Option<&BTreeMap<String, String>>,
        controller: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let nic = |key: &str| {
            ccm.and_then(|d| d.get(key))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "bond1".to_owned())
        };
        let get = |key: &str| controller.and_then(|d| d.get(key));
        CmSettings {
            client_interface: nic("NET_CARD_NAME"),
            service_interface: nic("INTERNAL_NETWORK_CARD_NAME"),
            online_promote: flag(get("enableOnlinePromote"), false),
            redline: flag(get("enableRedline"), true),
            cm_hybrid: flag(get("cmHybridDeployment"), false),
            controller_node_label: get("controllerNodeLabel")
                .map(|v| v.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// The two accounts the CM connects with. The passwords never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CmAccounts {
    /// `aurora`.
    pub(crate) aurora: Account,
    /// `replicator`.
    pub(crate) replicator: Account,
}

impl std::fmt::Debug for CmAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmAccounts")
            .field("aurora", &self.aurora)
            .field("replicator", &self.replicator)
            .finish()
    }
}

impl CmAccounts {
    /// Picks `aurora` and `replicator` out of a cluster's accounts.
    pub(crate) fn pick(cluster: &ClusterRef, accounts: Vec<Account>) -> Result<Self, PortError> {
        let find = |name: &str| {
            accounts
                .iter()
                .find(|a| a.name == name)
                .cloned()
                .ok_or_else(|| PortError::NotFound {
                    port: PORT,
                    what: format!("account {name} of {cluster} (needed by the cluster manager)"),
                })
        };
        Ok(CmAccounts {
            aurora: find("aurora")?,
            replicator: find("replicator")?,
        })
    }
}

fn meta(
    name: &str,
    namespace: &str,
    owner: Option<&OwnerReference>,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    let mut labels = labels;
    labels.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()).filter(|n| !n.is_empty()),
        labels: Some(labels),
        owner_references: owner.map(|o| vec![o.clone()]),
        ..ObjectMeta::default()
    }
}

fn cluster_label(cluster: &ClusterRef) -> BTreeMap<String, String> {
    BTreeMap::from([("apsara.metric.clusterName".to_owned(), cluster.name.clone())])
}

/// ConfigMap `<cluster>.cm`: `subscribe.conf`.
pub(crate) fn conf_config_map(
    spec: &CmSpec,
    config: &KubePortsConfig,
    owner: &OwnerReference,
) -> ConfigMap {
    let names = CmNames::of(&spec.cluster);
    let pvc_namespace = if spec.storage.pvc_namespace.is_empty() {
        spec.cluster.namespace.clone()
    } else {
        spec.storage.pvc_namespace.clone()
    };
    let subscribe = json!({
        "type": "mpd",
        "polar_stack": {"storage_api_info": {
            "svc_name": "polardb-sms-manager",
            "svc_namespace": config.system_namespace,
            "pvc_name": spec.storage.pvc_name,
            "pvc_namespace": pvc_namespace,
            "lock_svc_url": "/pvcs/lock",
            "get_topo_url": "/pvcs/topo",
        }},
    });
    ConfigMap {
        metadata: meta(
            &names.app,
            &spec.cluster.namespace,
            Some(owner),
            cluster_label(&spec.cluster),
        ),
        data: Some(BTreeMap::from([(
            SUBSCRIBE_CONF.to_owned(),
            subscribe.to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// The content of `polardb_cluster_manager.conf`.
pub(crate) fn main_conf(spec: &CmSpec, accounts: &CmAccounts) -> String {
    json!({
        "consensus": {"port": spec.consensus_port, "etcd_storage": true},
        "work_mode": "PolarPure",
        "cluster_info": {
            "namespace": spec.cluster.namespace,
            "name": spec.cluster.name,
            "port": spec.port,
        },
        "account_info": {
            "aurora_user": accounts.aurora.name,
            "aurora_password": accounts.aurora.password,
            "replica_user": accounts.replicator.name,
            "replica_password": accounts.replicator.password,
        },
        "node_driver_info": {"port": NODE_DRIVER_PORT},
    })
    .to_string()
}

/// Secret `<cluster>.cm`: `polardb_cluster_manager.conf`, which holds the passwords.
pub(crate) fn conf_secret(spec: &CmSpec, accounts: &CmAccounts, owner: &OwnerReference) -> Secret {
    let names = CmNames::of(&spec.cluster);
    Secret {
        metadata: meta(
            &names.app,
            &spec.cluster.namespace,
            Some(owner),
            cluster_label(&spec.cluster),
        ),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            MAIN_CONF.to_owned(),
            ByteString(main_conf(spec, accounts).into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// ConfigMap `<cluster>-cmconfig` (empty).
pub(crate) fn meta_config_map(cluster: &ClusterRef, owner: &OwnerReference) -> ConfigMap {
    ConfigMap {
        metadata: meta(
            &CmNames::of(cluster).meta,
            &cluster.namespace,
            Some(owner),
            cluster_label(cluster),
        ),
        ..ConfigMap::default()
    }
}

/// ConfigMap `<cluster>-cmflag`.
pub(crate) fn flag_config_map(
    cluster: &ClusterRef,
    settings: &CmSettings,
    owner: &OwnerReference,
) -> ConfigMap {
    let bit = |b: bool| if b { "1" } else { "0" }.to_owned();
    ConfigMap {
        metadata: meta(
            &CmNames::of(cluster).flag,
            &cluster.namespace,
            Some(owner),
            cluster_label(cluster),
        ),
        data: Some(BTreeMap::from([
            ("enable_all".to_owned(), "1".to_owned()),
            (
                "enable_online_promote".to_owned(),
                bit(settings.online_promote),
            ),
            ("enable_redline".to_owned(), bit(settings.redline)),
        ])),
        ..ConfigMap::default()
    }
}

/// The CM's service account in `namespace`.
pub(crate) fn service_account(namespace: &str, config: &KubePortsConfig) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(&config.cm_service_account, namespace, None, BTreeMap::new()),
        ..ServiceAccount::default()
    }
}

/// The subject of the binding: the CM's service account in `namespace`.
pub(crate) fn subject(namespace: &str, config: &KubePortsConfig) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: config.cm_service_account.clone(),
        namespace: Some(namespace.to_owned()),
        api_group: None,
    }
}

/// ClusterRoleBinding `<namespace>-cluster-manager-rolebinding`.
pub(crate) fn role_binding(namespace: &str, config: &KubePortsConfig) -> ClusterRoleBinding {
    let names = CmNames::of(&ClusterRef::new(namespace, ""));
    ClusterRoleBinding {
        metadata: meta(&names.binding, "", None, BTreeMap::new()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: config.cm_cluster_role.clone(),
        },
        subjects: Some(vec![subject(namespace, config)]),
    }
}

/// `request/limit` of a resource setting, e.g. `200m/500m`.
fn request_limit(setting: &str, value: &str) -> Result<(Quantity, Quantity), PortError> {
    match value.split_once('/') {
        Some((req, lim)) if !req.trim().is_empty() && !lim.trim().is_empty() => Ok((
            Quantity(req.trim().to_owned()),
            Quantity(lim.trim().to_owned()),
        )),
        _ => Err(PortError::Rejected {
            port: PORT,
            message: format!(
                "setting {setting} is {value:?}, expected request/limit such as 200m/500m"
            ),
        }),
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn pod_affinity_term(cluster: &ClusterRef, ins_type: &str) -> PodAffinityTerm {
    let mut labels = cluster_label(cluster);
    labels.insert("apsara.metric.db_ins_type".to_owned(), ins_type.to_owned());
    PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        }),
        topology_key: "kubernetes.io/hostname".to_owned(),
        ..PodAffinityTerm::default()
    }
}

fn affinity(cluster: &ClusterRef, settings: &CmSettings) -> Affinity {
    let mut expressions = vec![NodeSelectorRequirement {
        key: MAINTAIN_NODE_LABEL.to_owned(),
        operator: "DoesNotExist".to_owned(),
        values: None,
    }];
    if !settings.cm_hybrid && !settings.controller_node_label.is_empty() {
        expressions.push(NodeSelectorRequirement {
            key: settings.controller_node_label.clone(),
            operator: "Exists".to_owned(),
            values: None,
        });
    }
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(expressions),
                    match_fields: None,
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![pod_affinity_term(
                cluster,
                "polardb_mpd_rw",
            )]),
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 2,
                    pod_affinity_term: pod_affinity_term(cluster, "polardb_mpd_ro"),
                },
            ]),
        }),
        pod_affinity: None,
    }
}

fn conf_volume(names: &CmNames) -> Volume {
    Volume {
        name: "polardb-cluster-manager-conf".to_owned(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o400),
            sources: Some(vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: names.app.clone(),
                        items: Some(vec![KeyToPath {
                            key: SUBSCRIBE_CONF.to_owned(),
                            path: SUBSCRIBE_CONF.to_owned(),
                            mode: None,
                        }]),
                        optional: Some(false),
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: names.app.clone(),
                        items: Some(vec![KeyToPath {
                            key: MAIN_CONF.to_owned(),
                            path: MAIN_CONF.to_owned(),
                            mode: None,
                        }]),
                        optional: Some(false),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
        }),
        ..Volume::default()
    }
}

/// Deployment `<cluster>.cm`.
pub(crate) fn deployment(
    spec: &CmSpec,
    config: &KubePortsConfig,
    settings: &CmSettings,
    owner: &OwnerReference,
) -> Result<Deployment, PortError> {
    let cluster = &spec.cluster;
    let names = CmNames::of(cluster);
    let (cpu_req, cpu_lim) = request_limit("cm_cpu_req_limit", &config.cm_cpu_req_limit)?;
    let (mem_req, mem_lim) = request_limit("cm_mem_req_limit", &config.cm_mem_req_limit)?;
    let selector = BTreeMap::from([("app".to_owned(), names.app.clone())]);
    let mut pod_labels = selector.clone();
    pod_labels.insert("port".to_owned(), spec.port.to_string());
    let mut envs = vec![
        env("client_interface_name", &settings.client_interface),
        env(
            "POLAR_ENABLE_ONLINE_PROMOTE",
            if settings.online_promote {
                "true"
            } else {
                "false"
            },
        ),
        env("work_mode", "PolarPure"),
        env("dma_standby", "true"),
        env(
            "CM_LOG_FILE_NAME",
            format!("/kube-log/{}.log", cluster.name),
        ),
        env("CM_LOG_FILE_ROTATE_BY_DAY", "TRUE"),
    ];
    envs.extend(
        config
            .cm_api_server_env
            .iter()
            .map(|(k, v)| env(k, v.clone())),
    );
    envs.push(env("service_interface_name", &settings.service_interface));
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("cm".to_owned()),
            container_port: spec.port,
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), cpu_req),
                ("memory".to_owned(), mem_req),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), cpu_lim),
                ("memory".to_owned(), mem_lim),
            ])),
            ..ResourceRequirements::default()
        }),
        env: Some(envs),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "kube-log".to_owned(),
                mount_path: config.cm_log_mount_path.clone(),
                mount_propagation: Some("None".to_owned()),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "polardb-cluster-manager-conf".to_owned(),
                mount_path: CONF_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let log_dir = format!(
        "{}/{}",
        config.cm_log_host_path.trim_end_matches('/'),
        cluster.name
    );
    let pod = PodSpec {
        containers: vec![container],
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".to_owned()),
        restart_policy: Some("Always".to_owned()),
        service_account_name: Some(config.cm_service_account.clone()),
        affinity: Some(affinity(cluster, settings)),
        volumes: Some(vec![
            Volume {
                name: "kube-log".to_owned(),
                host_path: Some(HostPathVolumeSource {
                    path: log_dir,
                    type_: Some("DirectoryOrCreate".to_owned()),
                }),
                ..Volume::default()
            },
            conf_volume(&names),
        ]),
        ..PodSpec::default()
    };
    Ok(Deployment {
        metadata: meta(
            &names.app,
            &cluster.namespace,
            Some(owner),
            cluster_label(cluster),
        ),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            progress_deadline_seconds: Some(20),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(3)),
                    max_surge: Some(IntOrString::Int(3)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StorageInfo;

    fn spec() -> CmSpec {
        CmSpec {
            cluster: ClusterRef::new("ns1", "c1"),
            logic_id: "1000".into(),
            rw_physical_id: "1001".into(),
            image: "cm:1".into(),
            port: 30000,
            consensus_port: 30001,
            storage: StorageInfo {
                pvc_name: "pvc-1".into(),
                pvc_namespace: "ns1".into(),
                volume_id: "36e0".into(),
                volume_type: "multipath".into(),
            },
        }
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "mpd.polardb.aliyun.com/v1".into(),
            kind: "MPDCluster".into(),
            name: "c1".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn accounts() -> CmAccounts {
        CmAccounts {
            aurora: Account {
                name: "aurora".into(),
                password: "Secret-A-123".into(),
                privilege: 7,
            },
            replicator: Account {
                name: "replicator".into(),
                password: "Secret-R-456".into(),
                privilege: 15,
            },
        }
    }

    #[test]
    fn controller_config_flags_follow_the_original_rules() {
        let v = |s: &str| Some(s.to_owned());
        assert!(flag(v("yes").as_ref(), false));
        assert!(flag(v("T").as_ref(), false));
        assert!(!flag(v("on").as_ref(), false));
        assert!(flag(v("on").as_ref(), true));
        assert!(!flag(v("No").as_ref(), true));
        assert!(flag(v(" ").as_ref(), true));
        assert!(!flag(None, false));
    }

    #[test]
    fn settings_default_to_bond1_and_the_original_flags() {
        let s = CmSettings::default();
        assert_eq!(
            (s.client_interface.as_str(), s.service_interface.as_str()),
            ("bond1", "bond1")
        );
        assert!(!s.online_promote && s.redline && !s.cm_hybrid);
        let ccm = BTreeMap::from([("NET_CARD_NAME".to_owned(), "eth1".to_owned())]);
        let ctl = BTreeMap::from([
            ("cmHybridDeployment".to_owned(), "false".to_owned()),
            ("controllerNodeLabel".to_owned(), "node-role/ctl".to_owned()),
            ("enableOnlinePromote".to_owned(), "1".to_owned()),
        ]);
        let s = CmSettings::from_data(Some(&ccm), Some(&ctl));
        assert_eq!(s.client_interface, "eth1");
        assert_eq!(s.service_interface, "bond1");
        assert!(s.online_promote);
        assert_eq!(s.controller_node_label, "node-role/ctl");
    }

    #[test]
    fn the_passwords_are_in_the_secret_and_not_in_the_config_map() {
        let cm = conf_config_map(&spec(), &KubePortsConfig::default(), &owner());
        let text = serde_json::to_string(&cm).unwrap();
        assert!(!text.contains("Secret-A-123") && !text.contains("Secret-R-456"));
        assert!(!text.contains("password"));
        let subscribe: serde_json::Value =
            serde_json::from_str(&cm.data.unwrap()[SUBSCRIBE_CONF]).unwrap();
        assert_eq!(
            subscribe["polar_stack"]["storage_api_info"]["pvc_name"],
            "pvc-1"
        );
        assert_eq!(
            subscribe["polar_stack"]["storage_api_info"]["svc_namespace"],
            "kube-system"
        );

        let secret = conf_secret(&spec(), &accounts(), &owner());
        let conf: serde_json::Value =
            serde_json::from_slice(&secret.data.unwrap()[MAIN_CONF].0).unwrap();
        assert_eq!(
            conf,
            json!({
                "consensus": {"port": 30001, "etcd_storage": true},
                "work_mode": "PolarPure",
                "cluster_info": {"namespace": "ns1", "name": "c1", "port": 30000},
                "account_info": {"aurora_user": "aurora", "aurora_password": "Secret-A-123",
                                  "replica_user": "replicator", "replica_password": "Secret-R-456"},
                "node_driver_info": {"port": 22345},
            })
        );
        assert!(!format!("{:?}", accounts()).contains("Secret-A-123"));
    }

    #[test]
    fn the_deployment_has_the_documented_shape() {
        let mut config = KubePortsConfig::default();
        config
            .cm_api_server_env
            .insert("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into());
        let settings = CmSettings {
            controller_node_label: "ctl".into(),
            ..CmSettings::default()
        };
        let d = deployment(&spec(), &config, &settings, &owner()).unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("c1.cm"));
        assert_eq!(d.metadata.owner_references.unwrap()[0].uid, "uid-1");
        let ds = d.spec.unwrap();
        assert_eq!(ds.replicas, Some(1));
        assert_eq!(ds.progress_deadline_seconds, Some(20));
        let strategy = ds.strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        let labels = ds.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["app"], "c1.cm");
        assert_eq!(labels["port"], "30000");
        let pod = ds.template.spec.unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("polardb-cluster-manager")
        );
        let c = &pod.containers[0];
        assert_eq!(c.name, "manager");
        assert_eq!(c.image.as_deref(), Some("cm:1"));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 30000);
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"],
            Quantity("500m".into())
        );
        let envs: BTreeMap<_, _> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.clone().unwrap()))
            .collect();
        assert_eq!(envs["work_mode"], "PolarPure");
        assert_eq!(envs["CM_LOG_FILE_NAME"], "/kube-log/c1.log");
        assert_eq!(envs["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(envs["service_interface_name"], "bond1");
        assert!(
            !envs.keys().any(|k| k.to_lowercase().contains("password")),
            "no password in the env"
        );
        let volumes = pod.volumes.unwrap();
        assert_eq!(
            volumes[0].host_path.as_ref().unwrap().path,
            "/var/log/polardb-box/polardb-cm/c1"
        );
        let projected = volumes[1].projected.as_ref().unwrap();
        let sources = projected.sources.as_ref().unwrap();
        assert_eq!(sources[0].config_map.as_ref().unwrap().name, "c1.cm");
        assert_eq!(sources[1].secret.as_ref().unwrap().name, "c1.cm");
        let mounts = c.volume_mounts.as_ref().unwrap();
        assert_eq!(mounts[1].mount_path, CONF_DIR);
        let affinity = pod.affinity.unwrap();
        let terms = affinity
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        let keys: Vec<_> = terms[0]
            .match_expressions
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.key.as_str(), e.operator.as_str()))
            .collect();
        assert_eq!(
            keys,
            [(MAINTAIN_NODE_LABEL, "DoesNotExist"), ("ctl", "Exists")]
        );
        let anti = affinity.pod_anti_affinity.unwrap();
        let required = &anti
            .required_during_scheduling_ignored_during_execution
            .unwrap()[0];
        assert_eq!(
            required
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["apsara.metric.db_ins_type"],
            "polardb_mpd_rw"
        );
        assert_eq!(
            anti.preferred_during_scheduling_ignored_during_execution
                .unwrap()[0]
                .weight,
            2
        );
    }

    #[test]
    fn a_malformed_resource_setting_is_rejected_naming_it() {
        let config = KubePortsConfig {
            cm_cpu_req_limit: "500m".into(),
            ..KubePortsConfig::default()
        };
        let err = deployment(&spec(), &config, &CmSettings::default(), &owner()).unwrap_err();
        assert!(err.to_string().contains("cm_cpu_req_limit"), "{err}");
    }

    #[test]
    fn the_binding_gives_the_cm_role_to_the_cm_service_account() {
        let b = role_binding("ns1", &KubePortsConfig::default());
        assert_eq!(
            b.metadata.name.as_deref(),
            Some("ns1-cluster-manager-rolebinding")
        );
        assert_eq!(b.role_ref.name, "polardb4mpd-controller-manager-role");
        let s = &b.subjects.unwrap()[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            ("ServiceAccount", "polardb-cluster-manager", Some("ns1"))
        );
    }
}
