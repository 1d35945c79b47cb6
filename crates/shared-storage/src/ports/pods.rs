//! F. Instance pods.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{ClusterRef, PortError, Progress};
use crate::domain::{ContainerResources, InsType};

/// What an instance pod needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InsPodSpec {
    /// The cluster.
    pub cluster: ClusterRef,
    /// The pod name.
    pub pod_name: String,
    /// The physical id.
    pub physical_ins_id: String,
    /// The instance id.
    pub ins_id: String,
    /// RW, RO or temp RO.
    pub ins_type: Option<InsType>,
    /// The engine port (host network).
    pub port: i32,
    /// Images by key.
    pub images: BTreeMap<String, String>,
    /// Container resources.
    pub resources: BTreeMap<String, ContainerResources>,
    /// The PVC holding the shared volume.
    pub pvc_name: String,
    /// The shared volume's id: the block device is `/dev/mapper/<volume_id>`.
    pub volume_id: String,
    /// The cluster's logic id (the agent container's `logic_ins_id`).
    pub logic_ins_id: String,
    /// Schedule on this node only (migrations).
    pub target_node: Option<String>,
}

/// Why a pod cannot become ready: each maps to an interrupt of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodFailure {
    /// No node passes the health probe.
    NoAvailableNode,
    /// The migration target is unhealthy.
    TargetNodeUnavailable,
    /// The pod disappeared after it was ready.
    PodLost,
    /// The pod cannot be scheduled.
    PodUnscheduled,
    /// Containers not ready after the pod was.
    DbStartFail,
}

impl PodFailure {
    /// The interrupt reason: `NO_AVAILABLE_NODE`, `TARGET_NODE_UNAVAILABLE`, `POD_LOST`,
    /// `POD_UNSCHEDULED`, `DB_START_FAIL`.
    pub fn reason(self) -> &'static str {
        match self {
            PodFailure::NoAvailableNode => "NO_AVAILABLE_NODE",
            PodFailure::TargetNodeUnavailable => "TARGET_NODE_UNAVAILABLE",
            PodFailure::PodLost => "POD_LOST",
            PodFailure::PodUnscheduled => "POD_UNSCHEDULED",
            PodFailure::DbStartFail => "DB_START_FAIL",
        }
    }
}

/// Where a pod stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodProgress {
    /// Running and ready.
    Ready {
        /// The node name.
        node: String,
        /// The node's internal IP.
        host_ip: String,
        /// The node's client IP.
        client_ip: String,
    },
    /// Being created, scheduled or started.
    Pending {
        /// What it waits for.
        reason: String,
    },
    /// It will not become ready without a human.
    Failed {
        /// Which failure.
        failure: PodFailure,
        /// Details.
        message: String,
    },
}

/// Creates, deletes and labels instance pods.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PodManager: Send + Sync {
    /// Creates the pod if missing (recreating it when its placement rules are stale) and
    /// reports where it stands.
    async fn ensure_pod(&self, spec: &InsPodSpec) -> Result<PodProgress, PortError>;
    /// Deletes the pod; done when it is gone (a missing pod is done).
    async fn delete_pod(&self, namespace: &str, pod_name: &str) -> Result<Progress, PortError>;
    /// Sets the `apsara.metric.db_ins_type` label.
    async fn label_ins_type(
        &self,
        namespace: &str,
        pod_name: &str,
        ins_type: InsType,
    ) -> Result<(), PortError>;
}
