//! The SharedStorageCluster aggregate and its instances (domain §2.1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an instance is in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InsType {
    /// The read-write instance.
    Rw,
    /// A read-only instance.
    Ro,
    /// A planned replacement, not yet an RO.
    TempRo,
}

impl InsType {
    /// The wire value (`rw`, `ro`, `tempro`).
    pub fn as_str(self) -> &'static str {
        match self {
            InsType::Rw => crate::crd::ins_type::RW,
            InsType::Ro => crate::crd::ins_type::RO,
            InsType::TempRo => crate::crd::ins_type::TEMP_RO,
        }
    }

    /// Parses a wire value; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "rw" => Some(InsType::Rw),
            "ro" => Some(InsType::Ro),
            "tempro" => Some(InsType::TempRo),
            _ => None,
        }
    }
}

/// An engine state (`{state, reason, startAt}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    /// `PENDING`, `STARTING`, `RUNNING`, `STOPPING`, `STOPPED`, `FAILED`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Since when, as stored.
    pub started_at: String,
}

impl EngineState {
    /// Whether the state is `FAILED` (case-insensitive).
    pub fn is_failed(&self) -> bool {
        self.state.eq_ignore_ascii_case("failed")
    }
}

/// One database instance (one pod).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbIns {
    /// The slot id; a replacement keeps it.
    pub physical_ins_id: String,
    /// The id of this incarnation.
    pub ins_id: String,
    /// Set to `ins_id` at allocation.
    pub ins_name: String,
    /// The pod name, `<cluster>-<phys>-<ins>`.
    pub pod_name: String,
    /// The pod namespace.
    pub pod_namespace: String,
    /// The node the pod runs on (empty before scheduling).
    pub host: String,
    /// The node's internal IP.
    pub host_ip: String,
    /// The node's client-network IP.
    pub client_ip: String,
    /// The engine port.
    pub port: i32,
    /// The PFS host id.
    pub fs_id: String,
    /// Whether the engine install finished.
    pub installed: bool,
    /// The current engine state.
    pub current_state: EngineState,
    /// The previous engine state.
    pub last_state: EngineState,
    /// A node the instance must move to (migrate flows only; not persisted).
    pub target_node: Option<String>,
}

impl DbIns {
    /// The pod name of an instance of `cluster`: `<cluster>-<phys>-<ins>`.
    pub fn pod_name_for(cluster: &str, phys: &str, ins: &str) -> String {
        format!("{cluster}-{phys}-{ins}")
    }

    /// `clientIP:port`, how the cluster manager names the instance.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.client_ip, self.port)
    }
}

/// The instance class in use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSpec {
    /// The class name.
    pub class_name: String,
    /// CPU as written in the class.
    pub cpu: String,
    /// Memory as written in the class.
    pub memory: String,
}

/// Resources of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    /// CPU cores (a Kubernetes quantity).
    pub cpu: String,
    /// Memory limit (a Kubernetes quantity).
    pub mem_limit: String,
    /// Extra configuration (pfsd start options for `pfsd`).
    pub config: String,
}

/// The version in use and its images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The minor version name.
    pub version: String,
    /// Images by key: `engineImage`, `managerImage`, `pfsdImage`, `pfsdToolImage`,
    /// `clusterManagerImage`.
    pub images: BTreeMap<String, String>,
}

/// Image keys of [`ImageInfo::images`].
pub mod image_key {
    /// The engine.
    pub const ENGINE: &str = "engineImage";
    /// The engine agent.
    pub const MANAGER: &str = "managerImage";
    /// The cluster manager.
    pub const CLUSTER_MANAGER: &str = "clusterManagerImage";
    /// pfsd.
    pub const PFSD: &str = "pfsdImage";
    /// pfsd tool.
    pub const PFSD_TOOL: &str = "pfsdToolImage";
}

/// The shared storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInfo {
    /// The PVC name.
    pub pvc_name: String,
    /// The PVC namespace (`sharePvcNamespace`, else the cluster's; weakness 15).
    pub pvc_namespace: String,
    /// The WWID.
    pub volume_id: String,
    /// The volume type.
    pub volume_type: String,
}

/// How the aggregate was loaded (domain §2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadMode {
    /// Class comes from `classInfoModifyTo`.
    pub modify_class: bool,
    /// Images come from `versionCfgModifyTo`.
    pub upgrade: bool,
}

/// The interrupt record, for display.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptInfo {
    /// The reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

/// A shared-storage cluster: one RW, N ROs, temporary ROs during replacements, one shared
/// volume and one cluster manager.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedStorageCluster {
    /// The MPDCluster name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `spec.description`.
    pub description: String,
    /// The logical cluster id.
    pub logic_ins_id: String,
    /// The state-machine state.
    pub cluster_status: String,
    /// Desired RO count (`spec.followerNum`).
    pub ro_replicas: i32,
    /// The engine port of every instance.
    pub port: i32,
    /// The class in use (the target class in modify-class mode).
    pub class_info: ClassSpec,
    /// The class before the change (modify-class mode only).
    pub old_class_info: Option<ClassSpec>,
    /// Container resources by container name.
    pub resources: BTreeMap<String, ContainerResources>,
    /// The version in use (the target in upgrade mode).
    pub image_info: ImageInfo,
    /// The version before the upgrade (upgrade mode only).
    pub old_image_info: Option<ImageInfo>,
    /// The shared storage.
    pub storage: StorageInfo,
    /// The cluster manager's HTTP port, once allocated.
    pub cm_port: Option<i32>,
    /// The RW.
    pub rw: Option<DbIns>,
    /// ROs by insId.
    pub ros: BTreeMap<String, DbIns>,
    /// Temporary ROs by insId.
    pub temp_ros: BTreeMap<String, DbIns>,
    /// The replacement plan: physicalInsId -> new insId.
    pub temp_ro_ids: BTreeMap<String, String>,
    /// How the aggregate was loaded.
    pub mode: LoadMode,
    /// The interrupt record when the cluster is in `Interrupt`.
    pub interrupt: Option<InterruptInfo>,
    /// `status.leaderInstanceId` of the object the aggregate was loaded from (not written
    /// back). A save compares it with the stored leader to tell a role change of its own
    /// from a failover recorded after the load, which it keeps (weakness 21; see
    /// [`crate::domain::mapping::apply_status`]).
    #[serde(default)]
    pub loaded_leader: String,
}

impl SharedStorageCluster {
    /// Every instance: RW, ROs, temp ROs.
    pub fn all_instances(&self) -> impl Iterator<Item = &DbIns> {
        self.rw
            .iter()
            .chain(self.ros.values())
            .chain(self.temp_ros.values())
    }

    /// The instance with `ins_id`, wherever it is, and its type.
    pub fn find(&self, ins_id: &str) -> Option<(InsType, &DbIns)> {
        if let Some(rw) = self.rw.as_ref().filter(|rw| rw.ins_id == ins_id) {
            return Some((InsType::Rw, rw));
        }
        if let Some(ro) = self.ros.get(ins_id) {
            return Some((InsType::Ro, ro));
        }
        self.temp_ros.get(ins_id).map(|t| (InsType::TempRo, t))
    }

    /// The RW's insId, or `""`.
    pub fn rw_id(&self) -> &str {
        self.rw.as_ref().map_or("", |rw| rw.ins_id.as_str())
    }

    /// `namespace/name`, how errors name the cluster.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
