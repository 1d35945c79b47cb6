//! The pod status a node reports: scheduled or not, containers running or waiting, failed.
//! Timestamps of an unchanged status are kept, so a status that did not change compares
//! equal and is not written again.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// What the node makes of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Not placed: `PodScheduled=False`, reason `Unschedulable`, with this message.
    Unscheduled(String),
    /// On a node with this InternalIP; the named containers (all when `None`) wait in
    /// `ContainerCreating`, the others run.
    Placed {
        host_ip: String,
        waiting: Option<BTreeSet<String>>,
    },
    /// The node reports the pod failed (evicted, say).
    Failed { reason: String, message: String },
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn short_hash(parts: &[&str]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for part in parts {
        part.hash(&mut hasher);
    }
    hasher.finish()
}

fn condition(
    current: &PodStatus,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<&str>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = current
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(now);
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_transition_time: Some(since),
        ..PodCondition::default()
    }
}

fn running_since(current: &PodStatus, name: &str) -> Time {
    current
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.clone())
        .unwrap_or_else(now)
}

/// The status the node reports for `pod` in the state `wanted`.
pub(crate) fn status(pod: &Pod, wanted: &Wanted) -> PodStatus {
    let current = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let container_id = |name: &str| format!("containerd://{:016x}", short_hash(&[&uid, name]));
    match wanted {
        Wanted::Unscheduled(message) => PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![condition(
                &current,
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(message),
            )]),
            ..PodStatus::default()
        },
        Wanted::Failed { reason, message } => PodStatus {
            phase: Some("Failed".into()),
            reason: Some(reason.clone()),
            message: Some(message.clone()),
            host_ip: current.host_ip.clone(),
            host_ips: current.host_ips.clone(),
            pod_ip: current.pod_ip.clone(),
            pod_ips: current.pod_ips.clone(),
            start_time: current.start_time.clone(),
            conditions: Some(vec![
                condition(&current, "PodScheduled", true, None, None),
                condition(&current, "Ready", false, Some("PodFailed"), None),
            ]),
            container_statuses: Some(
                spec.containers
                    .iter()
                    .map(|c| ContainerStatus {
                        name: c.name.clone(),
                        image: c.image.clone().unwrap_or_default(),
                        state: Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 137,
                                reason: Some(reason.clone()),
                                ..ContainerStateTerminated::default()
                            }),
                            ..ContainerState::default()
                        }),
                        ..ContainerStatus::default()
                    })
                    .collect(),
            ),
            ..PodStatus::default()
        },
        Wanted::Placed { host_ip, waiting } => {
            let is_waiting = |name: &str| waiting.as_ref().is_none_or(|w| w.contains(name));
            let waiting_any = spec.containers.iter().any(|c| is_waiting(&c.name));
            let all_waiting = spec.containers.iter().all(|c| is_waiting(&c.name));
            let pod_ip = if spec.host_network.unwrap_or(false) {
                host_ip.clone()
            } else {
                format!(
                    "10.244.{}.{}",
                    short_hash(&[&uid]) % 250,
                    short_hash(&[&uid, "ip"]) % 250 + 2
                )
            };
            let not_ready_names: Vec<&str> = spec
                .containers
                .iter()
                .filter(|c| is_waiting(&c.name))
                .map(|c| c.name.as_str())
                .collect();
            let not_ready = format!(
                "containers with unready status: [{}]",
                not_ready_names.join(" ")
            );
            let ready = |ok: bool, type_: &str| {
                if ok {
                    condition(&current, type_, true, None, None)
                } else {
                    condition(
                        &current,
                        type_,
                        false,
                        Some("ContainersNotReady"),
                        Some(&not_ready),
                    )
                }
            };
            let containers = spec
                .containers
                .iter()
                .map(|c| {
                    let waits = is_waiting(&c.name);
                    ContainerStatus {
                        name: c.name.clone(),
                        image: c.image.clone().unwrap_or_default(),
                        image_id: String::new(),
                        ready: !waits,
                        started: Some(!waits),
                        restart_count: 0,
                        container_id: (!waits).then(|| container_id(&c.name)),
                        state: Some(if waits {
                            ContainerState {
                                waiting: Some(ContainerStateWaiting {
                                    reason: Some("ContainerCreating".into()),
                                    message: None,
                                }),
                                ..ContainerState::default()
                            }
                        } else {
                            ContainerState {
                                running: Some(ContainerStateRunning {
                                    started_at: Some(running_since(&current, &c.name)),
                                }),
                                ..ContainerState::default()
                            }
                        }),
                        ..ContainerStatus::default()
                    }
                })
                .collect();
            let init = spec.init_containers.as_ref().map(|inits| {
                inits
                    .iter()
                    .map(|c| ContainerStatus {
                        name: c.name.clone(),
                        image: c.image.clone().unwrap_or_default(),
                        ready: true,
                        started: Some(false),
                        container_id: Some(container_id(&c.name)),
                        state: Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 0,
                                reason: Some("Completed".into()),
                                ..ContainerStateTerminated::default()
                            }),
                            ..ContainerState::default()
                        }),
                        ..ContainerStatus::default()
                    })
                    .collect()
            });
            PodStatus {
                phase: Some(if all_waiting { "Pending" } else { "Running" }.into()),
                host_ip: Some(host_ip.clone()),
                host_ips: Some(vec![HostIP {
                    ip: host_ip.clone(),
                }]),
                pod_ip: Some(pod_ip.clone()),
                pod_ips: Some(vec![PodIP { ip: pod_ip }]),
                start_time: Some(current.start_time.clone().unwrap_or_else(now)),
                conditions: Some(vec![
                    condition(&current, "PodScheduled", true, None, None),
                    condition(&current, "Initialized", true, None, None),
                    ready(!waiting_any, "ContainersReady"),
                    ready(!waiting_any, "Ready"),
                ]),
                container_statuses: Some(containers),
                init_container_statuses: init,
                ..PodStatus::default()
            }
        }
    }
}

/// Whether the pod reports `Ready=True`.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
