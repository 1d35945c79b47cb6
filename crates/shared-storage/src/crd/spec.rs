//! `spec.*` of an MPDCluster (domain §1.1).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MPDClusterStatus;

/// The desired state of a PolarDB cluster.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mpd.polardb.aliyun.com",
    version = "v1",
    kind = "MPDCluster",
    plural = "mpdclusters",
    namespaced,
    status = "MPDClusterStatus",
    derive = "Default",
    shortname = "mpd",
    category = "polardb",
    doc = "A PolarDB cluster on shared storage: one read-write instance and `followerNum` \
           read-only instances on one shared volume, run by the shared-storage operator. \
           Change `classInfoModifyTo`, `versionCfgModifyTo` or `followerNum`, or set one of \
           the request annotations, to start an operation; `status.clusterStatus` tells \
           which one runs.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.clusterStatus","description":"The cluster state: Running, Interrupt, or the operation in progress"}"#,
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leaderInstanceId","description":"The id of the read-write instance"}"#,
    printcolumn = r#"{"name":"RO","type":"integer","jsonPath":".spec.followerNum","description":"The desired number of read-only instances"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"The Ready condition"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MPDClusterSpec {
    /// Must equal the operator's `--filter-operator-name` (default `polar-mpd`).
    pub operator_name: String,
    /// `share` (this operator) or `local`.
    #[schemars(extend("enum" = ["share", "local"]))]
    pub db_cluster_type: String,
    /// Database type; unused by the shared path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_type: Option<String>,
    /// Free text, copied into the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The desired number of read-only instances. AddRo runs while it is above the count.
    #[schemars(range(min = 0))]
    pub follower_num: i32,
    /// The current instance class.
    pub class_info: ClassInfo,
    /// The target class: ModifyClass runs when its `className` is set and differs.
    pub class_info_modify_to: ClassInfo,
    /// Per-container extras, written by the operator from the class definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_additional: Option<BTreeMap<String, ResourceAdditional>>,
    /// Unused by the shared path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_vol_name: Option<String>,
    /// The shared storage; required for `share` clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_store: Option<ShareStore>,
    /// Unused by the shared path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_proxy_info: Option<DbProxyInfo>,
    /// Network configuration; `engineStartPort` is the engine port of every instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_cfg: Option<NetCfg>,
    /// The current version; the operator writes the resolved images back.
    pub version_cfg: VersionCfg,
    /// The target version: UpgradeMinorVersion runs when its `versionName` is set and differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_cfg_modify_to: Option<VersionCfg>,
}

/// An instance class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClassInfo {
    /// The class name, e.g. `polar.o.x4.medium`; may be empty in `classInfoModifyTo`.
    pub class_name: String,
    /// CPU, copied from the class (not used for sizing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, copied from the class (not used for sizing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
}

/// Per-container extras (`spec.resourceAdditional[container]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceAdditional {
    /// CPU cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<Quantity>,
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_memory: Option<Quantity>,
    /// Extra configuration; the `pfsd` entry's is passed to pfsd start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// The shared block storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareStore {
    /// `pvc` or `wwid`.
    pub drive: String,
    /// The PVC holding the PFS file system.
    #[serde(default)]
    pub share_pvc_name: String,
    /// The PVC's namespace; the cluster's namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_pvc_namespace: Option<String>,
    /// The WWID; devices appear at `/dev/mapper/<volumeId>`.
    #[serde(default)]
    pub volume_id: String,
    /// Passed to the storage manager.
    #[serde(default)]
    pub volume_type: String,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_quota: Option<String>,
    /// Unused.
    #[serde(
        default,
        rename = "shareVolumeWWID",
        skip_serializing_if = "Option::is_none"
    )]
    pub share_volume_wwid: Option<String>,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_volume_format: Option<bool>,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_format: Option<String>,
}

/// Proxy settings; unused by the shared path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbProxyInfo {
    /// Unused.
    #[serde(default)]
    pub enabled: bool,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_level: Option<String>,
}

/// Network configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetCfg {
    /// The engine port of every instance (host network).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub engine_start_port: i32,
}

/// A minor version and its images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCfg {
    /// Selects the minor-version definition; the latest when empty.
    #[serde(default)]
    pub version_name: String,
    /// Engine image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_image: Option<String>,
    /// Engine-agent image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_image: Option<String>,
    /// Cluster-manager image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_manager_image: Option<String>,
    /// pfsd image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfsd_image: Option<String>,
    /// pfsd tool image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pfsd_tool_image: Option<String>,
    /// Other images by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_images: Option<BTreeMap<String, String>>,
}
