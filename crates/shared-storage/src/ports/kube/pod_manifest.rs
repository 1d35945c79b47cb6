//! The instance pod: what [`KubePodManager`](super::KubePodManager) creates for an
//! [`InsPodSpec`]. Four containers (`pfsd-tool`, `pfsd`, `engine`, `manager`) on the host
//! network sharing one process namespace, the shared volume as a raw block device in each,
//! host directories for the instance's data, logs and scripts, and the labels the cluster
//! manager, the metrics and the operator's own watch select by.
//!
//! In place of the original's SSH to every node, an init container prepares the data
//! directory on the node the pod lands on: a non-empty `<dir><insId>/data` is moved aside to
//! `rm_data_<yyyymmddHHMMSS>` (nothing is deleted), then `data`, `log` and `scripts` are
//! created. Its command holds no value from the cluster.
//!
//! The pod carries the fingerprint of everything it was built from
//! ([`SPEC_ANNOTATION`]), so a pod whose spec no longer fits is told apart without
//! comparing container lists field by field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction,
    HostPathVolumeSource, Lifecycle, LifecycleHandler, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
    ResourceRequirements, SecurityContext, Toleration, Volume, VolumeDevice, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::KubePortsConfig;
use crate::domain::{image_key, InsType};
use crate::ports::InsPodSpec;

/// The annotation holding the fingerprint of the pod's inputs.
pub const SPEC_ANNOTATION: &str = "mpd.polardb.aliyun.com/pod-spec";

/// The label naming the instance's role (`polardb_mpd_rw` / `polardb_mpd_ro`).
pub const INS_TYPE_LABEL: &str = "apsara.metric.db_ins_type";

/// The node label an instance pod requires (the original's `nodeSelector`).
pub const NODE_SELECTOR_LABEL: &str = "node.kubernetes.io/node";

/// A node label that keeps instance pods off a node under maintenance.
pub const MAINTAIN_NODE_LABEL: &str = "mpd.polardb.aliyun.com/maintainNode";

/// The init container's script: moves a non-empty data directory aside, then creates the
/// instance's directories.
pub const PREPARE_SCRIPT: &str = "set -e; d=/instance; \
if [ -d \"$d/data\" ] && [ -n \"$(ls -A \"$d/data\")\" ]; then \
mv \"$d/data\" \"$d/rm_data_$(date +%Y%m%d%H%M%S)\"; fi; \
mkdir -p \"$d/data\" \"$d/log\" \"$d/scripts\"";

/// The label value of an instance type.
pub fn ins_type_label(ins_type: InsType) -> &'static str {
    match ins_type {
        InsType::Rw => "polardb_mpd_rw",
        InsType::Ro | InsType::TempRo => "polardb_mpd_ro",
    }
}

/// Where a pod may run, besides its target node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Nodes that fail their health conditions, sorted.
    pub unavailable: Vec<String>,
    /// A node label instance pods must not run on (controller nodes, when the deployment is
    /// not hybrid).
    pub controller_label: Option<String>,
}

/// The fingerprint of what a pod is built from: FNV-1a over the canonical JSON of the
/// inputs (stable across builds and versions, unlike the standard library's hasher).
pub fn fingerprint(spec: &InsPodSpec, config: &KubePortsConfig, placement: &Placement) -> String {
    let inputs = serde_json::json!({
        "images": spec.images,
        "resources": spec.resources.iter().map(|(k, r)| (k.clone(), (r.cpu.clone(), r.mem_limit.clone()))).collect::<BTreeMap<_, _>>(),
        "port": spec.port,
        "pvc": spec.pvc_name,
        "volume": spec.volume_id,
        "target": spec.target_node,
        "unavailable": placement.unavailable,
        "controller": placement.controller_label,
        "privileged": config.privileged_pods,
        "hugepages": config.engine_hugepages,
        "pullPolicy": config.image_pull_policy,
    });
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in inputs.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn host_path(name: &str, path: String) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path,
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, host_to_container: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        mount_propagation: host_to_container.then(|| "HostToContainer".into()),
        ..VolumeMount::default()
    }
}

fn resources(cpu: &str, memory: &str, extra: &[(&str, &str)]) -> Option<ResourceRequirements> {
    let mut limits = BTreeMap::new();
    if !cpu.is_empty() {
        limits.insert("cpu".to_owned(), Quantity(cpu.to_owned()));
    }
    if !memory.is_empty() {
        limits.insert("memory".to_owned(), Quantity(memory.to_owned()));
    }
    for (k, v) in extra {
        limits.insert((*k).to_owned(), Quantity((*v).to_owned()));
    }
    (!limits.is_empty()).then(|| ResourceRequirements {
        requests: Some(limits.clone()),
        limits: Some(limits),
        ..ResourceRequirements::default()
    })
}

fn pre_stop(command: &str) -> Option<Lifecycle> {
    Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["/bin/sh".into(), "-c".into(), command.into()]),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    })
}

fn requirement(key: &str, operator: &str, values: Option<Vec<String>>) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values,
    }
}

fn affinity(spec: &InsPodSpec, placement: &Placement) -> Affinity {
    let mut rules = Vec::new();
    if let Some(target) = &spec.target_node {
        rules.push(requirement(
            "kubernetes.io/hostname",
            "In",
            Some(vec![target.clone()]),
        ));
    }
    if let Some(label) = &placement.controller_label {
        rules.push(requirement(label, "DoesNotExist", None));
    }
    if !placement.unavailable.is_empty() {
        rules.push(requirement(
            "kubernetes.io/hostname",
            "NotIn",
            Some(placement.unavailable.clone()),
        ));
    }
    rules.push(requirement(MAINTAIN_NODE_LABEL, "DoesNotExist", None));
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(rules),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// The labels of an instance pod.
pub fn labels(spec: &InsPodSpec) -> BTreeMap<String, String> {
    let cluster = spec.cluster.name.clone();
    [
        (
            INS_TYPE_LABEL,
            ins_type_label(spec.ins_type.unwrap_or(InsType::Ro)).to_owned(),
        ),
        ("apsara.metric.clusterName", cluster.clone()),
        ("apsara.metric.db_type", "polardb".to_owned()),
        ("apsara.metric.logic_custins_name", cluster),
        ("apsara.metric.ins_name", spec.physical_ins_id.clone()),
        ("apsara.metric.pv_name", spec.volume_id.clone()),
        ("apsara.ins.port", spec.port.to_string()),
        ("apsara.metric.logic_custins_id", spec.ins_id.clone()),
        (
            "apsara.metric.physical_custins_id",
            spec.physical_ins_id.clone(),
        ),
        ("apsara.metric.ins_id", spec.ins_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The pod of `spec`, owned by `owner`.
pub fn instance_pod(
    spec: &InsPodSpec,
    config: &KubePortsConfig,
    placement: &Placement,
    owner: OwnerReference,
) -> Pod {
    let dir = format!("{}{}", config.dbcluster_log_dir, spec.ins_id);
    let image = |key: &str| spec.images.get(key).cloned();
    let limits = |container: &str| {
        spec.resources
            .get(container)
            .map(|r| (r.cpu.clone(), r.mem_limit.clone()))
            .unwrap_or_default()
    };
    let device = format!("/dev/mapper/{}", spec.volume_id);
    let security = Some(SecurityContext {
        capabilities: Some(Capabilities {
            add: Some(vec!["SYS_PTRACE".into()]),
            ..Capabilities::default()
        }),
        privileged: Some(config.privileged_pods),
        ..SecurityContext::default()
    });
    let common = [
        mount("config-data", "/data", false),
        mount("config-log", "/log", false),
        mount("pfs-scripts", "/scripts", false),
        mount("pfs-var-log", "/var/log", false),
    ];
    let container = |name: &str, image_key: &str, extra: Vec<VolumeMount>, pfs_run_h: bool| {
        let (cpu, memory) = limits(name);
        let mut mounts: Vec<VolumeMount> = common.to_vec();
        mounts.push(mount("var-run-pfs", "/var/run/pfs", pfs_run_h));
        mounts.extend(extra);
        Container {
            name: name.into(),
            image: image(image_key),
            image_pull_policy: Some(config.image_pull_policy.clone()),
            resources: resources(&cpu, &memory, &[]),
            volume_mounts: Some(mounts),
            volume_devices: Some(vec![VolumeDevice {
                name: "data".into(),
                device_path: device.clone(),
            }]),
            security_context: security.clone(),
            ..Container::default()
        }
    };
    let shm_pfsd = || {
        vec![
            mount("devshmpfsd", "/dev/shm/pfsd", true),
            mount("runpfsd", "/var/run/pfsd", true),
        ]
    };
    let pg_hba = VolumeMount {
        read_only: Some(true),
        ..mount("common-pg-hba-cfg", "/etc/postgres/", true)
    };

    let pfsd_tool = container(
        "pfsd-tool",
        image_key::PFSD_TOOL,
        vec![mount("devshm", "/dev/shm", true)],
        false,
    );
    let mut pfsd_mounts = shm_pfsd();
    pfsd_mounts.push(mount("polartrace-run", "/var/run/polartrace", true));
    pfsd_mounts.push(mount("polartrace-shm", "/dev/shm/polartrace", true));
    let mut pfsd = container("pfsd", image_key::PFSD, pfsd_mounts, true);
    pfsd.lifecycle = pre_stop(&format!(
        "/usr/local/polarstore/pfsd/bin/pre_stop_pfsd.sh mapper_{}",
        spec.volume_id
    ));
    let mut engine_mounts = vec![mount("devshm", "/dev/shm", true)];
    engine_mounts.extend(shm_pfsd());
    engine_mounts.push(pg_hba.clone());
    if config.engine_hugepages.is_some() {
        engine_mounts.push(mount("hugepage", "/hugepages", false));
    }
    let mut engine = container("engine", image_key::ENGINE, engine_mounts, false);
    let (cpu, memory) = limits("engine");
    let hugepages: Vec<(&str, &str)> = config
        .engine_hugepages
        .as_deref()
        .map(|h| vec![("hugepages-2Mi", h)])
        .unwrap_or_default();
    engine.resources = resources(&cpu, &memory, &hugepages);
    engine.ports = Some(vec![ContainerPort {
        container_port: spec.port,
        ..ContainerPort::default()
    }]);
    engine.env = Some(vec![
        EnvVar {
            name: "host_data_dir".into(),
            value: Some(format!("{dir}/data")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "host_log_dir".into(),
            value: Some(format!("{dir}/log")),
            ..EnvVar::default()
        },
    ]);
    engine.lifecycle = pre_stop(
        "srv_opr_type=hostins_ops srv_opr_action=process_cleanup /docker_script/entry_point.py",
    );
    let mut manager_mounts = shm_pfsd();
    manager_mounts.push(pg_hba);
    let mut manager = container("manager", image_key::MANAGER, manager_mounts, false);
    manager.env = Some(vec![EnvVar {
        name: "logic_ins_id".into(),
        value: Some(spec.logic_ins_id.clone()),
        ..EnvVar::default()
    }]);
    let prepare = Container {
        name: "prepare-data-dir".into(),
        image: image(image_key::MANAGER),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), PREPARE_SCRIPT.into()]),
        volume_mounts: Some(vec![mount("instance-dir", "/instance", false)]),
        ..Container::default()
    };

    let mut volumes = vec![
        host_path("config-data", format!("{dir}/data")),
        host_path("config-log", format!("{dir}/log")),
        host_path("pfs-scripts", format!("{dir}/scripts")),
        host_path("instance-dir", dir.clone()),
        host_path("var-run-pfs", "/var/run/pfs".into()),
        host_path("pfs-var-log", "/var/log/pfs_log".into()),
        Volume {
            name: "devshm".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        host_path("devshmpfsd", "/dev/shm/pfsd".into()),
        host_path("runpfsd", "/var/run/pfsd".into()),
        host_path("polartrace-run", "/var/run/polartrace".into()),
        host_path("polartrace-shm", "/dev/shm/polartrace".into()),
        host_path("common-pg-hba-cfg", "/etc/postgres/".into()),
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: spec.pvc_name.clone(),
                read_only: None,
            }),
            ..Volume::default()
        },
    ];
    if config.engine_hugepages.is_some() {
        volumes.push(Volume {
            name: "hugepage".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("HugePages".into()),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let tolerations = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/unschedulable",
    ]
    .into_iter()
    .map(|key| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Toleration::default()
    })
    .collect();

    Pod {
        metadata: ObjectMeta {
            name: Some(spec.pod_name.clone()),
            namespace: Some(spec.cluster.namespace.clone()),
            labels: Some(labels(spec)),
            annotations: Some(BTreeMap::from([(
                SPEC_ANNOTATION.to_owned(),
                fingerprint(spec, config, placement),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            host_network: Some(true),
            share_process_namespace: Some(true),
            dns_policy: Some("ClusterFirstWithHostNet".into()),
            restart_policy: Some("Always".into()),
            scheduler_name: Some("default-scheduler".into()),
            node_selector: Some(BTreeMap::from([(
                NODE_SELECTOR_LABEL.to_owned(),
                String::new(),
            )])),
            tolerations: Some(tolerations),
            affinity: Some(affinity(spec, placement)),
            init_containers: Some(vec![prepare]),
            containers: vec![pfsd_tool, pfsd, engine, manager],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}
