//! `status.*` of an MPDCluster (domain §1.2).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
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

impl MPDClusterStatus {
    /// Sets `clusterStatus` and surfaces it for `kubectl` (weakness 30): `observedGeneration`
    /// and the `Ready` condition (true in `Running`; false otherwise, with the state as
    /// reason). The transition time changes only when the condition's status does.
    pub fn set_state(&mut self, state: &str, generation: Option<i64>) {
        self.cluster_status = state.to_owned();
        self.observed_generation = generation.or(self.observed_generation);
        let ready = state == "Running";
        let status = if ready { "True" } else { "False" };
        let reason = state_reason(state);
        let message = if ready {
            "the cluster is running".to_owned()
        } else {
            format!("the cluster is {state}")
        };
        self.set_ready(status, reason, message, generation);
    }

    /// Records a refused request on the `Ready` condition: `False` with the refusal's
    /// reason and message, for `generation` (the state and `observedGeneration` are left
    /// alone: the spec was not acted on).
    pub fn set_refusal(&mut self, reason: &str, message: &str, generation: Option<i64>) {
        self.set_ready("False", reason, message.to_owned(), generation);
    }

    /// The refusal the `Ready` condition records, as (reason, message, the generation it
    /// was recorded for): a `False` `Ready` whose reason is not the one its state gives.
    pub fn refusal(&self) -> Option<(String, String, Option<i64>)> {
        let ready = self.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "False" && ready.reason != state_reason(&self.cluster_status)).then(|| {
            (
                ready.reason.clone(),
                ready.message.clone(),
                ready.observed_generation,
            )
        })
    }

    fn set_ready(&mut self, status: &str, reason: &str, message: String, generation: Option<i64>) {
        match self.conditions.iter_mut().find(|c| c.type_ == "Ready") {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = Time(Timestamp::now());
                }
                existing.status = status.to_owned();
                existing.reason = reason.to_owned();
                existing.message = message;
                existing.observed_generation = generation;
            }
            None => self.conditions.push(Condition {
                type_: "Ready".to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message,
                observed_generation: generation,
                last_transition_time: Time(Timestamp::now()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakness_30_state_is_surfaced_as_ready_condition_and_observed_generation() {
        let mut status = MPDClusterStatus::default();
        status.set_state("ModifyClass", Some(3));
        assert_eq!(status.observed_generation, Some(3));
        let ready = &status.conditions[0];
        assert_eq!(
            (
                ready.type_.as_str(),
                ready.status.as_str(),
                ready.reason.as_str()
            ),
            ("Ready", "False", "ModifyClass")
        );
        let since = ready.last_transition_time.clone();
        status.set_state("Running", Some(3));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].status, "True");
        let again = status.conditions[0].last_transition_time.clone();
        status.set_state("Running", Some(4));
        assert_eq!(
            status.conditions[0].last_transition_time, again,
            "no transition, same time"
        );
        assert!(again.0 >= since.0);
        assert_eq!(status.observed_generation, Some(4));
    }

    #[test]
    fn a_refusal_is_the_ready_condition_with_its_generation_until_the_state_is_set() {
        let mut status = MPDClusterStatus::default();
        status.set_state("Running", Some(2));
        assert_eq!(status.refusal(), None);
        status.set_refusal(
            "UNKNOWN_CLASS",
            "class polar.o.bogus is not in the catalog",
            Some(2),
        );
        assert_eq!(status.cluster_status, "Running");
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "UNKNOWN_CLASS")
        );
        assert_eq!(
            status.refusal(),
            Some((
                "UNKNOWN_CLASS".into(),
                "class polar.o.bogus is not in the catalog".into(),
                Some(2)
            ))
        );
        status.set_state("Running", Some(2));
        assert_eq!(status.refusal(), None);
        assert_eq!(status.conditions[0].status, "True");
    }
}

/// The `Ready` reason of a state: the state itself, `Unknown` when empty.
fn state_reason(state: &str) -> &str {
    if state.is_empty() {
        "Unknown"
    } else {
        state
    }
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
