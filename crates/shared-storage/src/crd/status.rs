//! `status.*` of an MPDCluster (domain §1.2).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MPDClusterStatus {
    /// The state-machine state.
    #[serde(default)]
    pub cluster_status: String,
    /// insId of the RW.
    #[serde(default)]
    pub leader_instance_id: String,
    /// Node name of the RW.
    #[serde(default)]
    pub leader_instance_host: String,
    /// Logical cluster id, allocated at creation.
    #[serde(default)]
    pub logic_id: String,
    /// One entry per RW, RO and temporary RO, by insId.
    #[serde(default)]
    pub db_instance_status: BTreeMap<String, InstanceStatus>,
    /// The cluster manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_manager_status: Option<ClusterManagerStatus>,
    /// The spec generation the status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions (e.g. `Ready`, `Progressing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The cluster manager's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManagerStatus {
    /// The CM's HTTP port.
    #[serde(default)]
    pub working_port: i32,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_name: Option<String>,
}

/// One instance (`dbInstanceStatus[insId]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The slot id; stays when the instance in the slot is replaced.
    #[serde(default)]
    pub physical_ins_id: String,
    /// The id of this incarnation (also the map key).
    #[serde(default)]
    pub ins_id: String,
    /// Set to insId at allocation.
    #[serde(default)]
    pub ins_name: String,
    /// `<cluster>-<physicalInsId>-<insId>`.
    #[serde(default)]
    pub pod_name: String,
    /// The pod's namespace.
    #[serde(default)]
    pub pod_name_space: String,
    /// The node the pod landed on.
    #[serde(default)]
    pub node_name: String,
    /// The node's client-network IP.
    #[serde(default, rename = "hostClientIP")]
    pub host_client_ip: String,
    /// Working address.
    #[serde(default)]
    pub net_info: NetInfo,
    /// The PFS host id ("fsId").
    #[serde(default)]
    pub polar_fs_host_id: String,
    /// Whether the engine install finished.
    #[serde(default)]
    pub installed: bool,
    /// `rw`, `ro` or `tempro`.
    #[serde(default)]
    pub ins_type: String,
    /// The engine state now.
    #[serde(default)]
    pub current_state: EngineStateRecord,
    /// The engine state before.
    #[serde(default)]
    pub last_state: EngineStateRecord,
}

/// Node IP and engine port of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetInfo {
    /// The node's internal IP.
    #[serde(default, rename = "workingHostIP")]
    pub working_host_ip: String,
    /// The engine port.
    #[serde(default)]
    pub working_port: i32,
}

/// An engine state as reported by the cluster manager.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineStateRecord {
    /// `PENDING`, `STARTING`, `RUNNING`, `STOPPING`, `STOPPED` or `FAILED` (compared
    /// case-insensitively).
    #[serde(default)]
    pub state: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Since when (RFC 3339).
    #[serde(default)]
    pub start_at: String,
}
