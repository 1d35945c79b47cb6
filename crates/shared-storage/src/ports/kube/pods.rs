//! F. Instance pods on the Pod objects ([`pod_manifest`](super::pod_manifest) builds them).
//!
//! Nothing here waits: each call looks once and says where the pod stands.
//!
//! | the pod | `ensure_pod` answers |
//! |---|---|
//! | the target node is unavailable or unknown | `Failed(TargetNodeUnavailable)` |
//! | no node is available | `Failed(NoAvailableNode)`, naming the nodes and why |
//! | missing | created; `Pending` |
//! | being deleted | `Pending` |
//! | built from other inputs (images, resources, port, placement: [`SPEC_ANNOTATION`]) | deleted; `Pending` (created again on a later call) |
//! | `Failed` or `Succeeded` (evicted, killed) | `Failed(PodLost)` |
//! | Ready | `Ready` with its node, the node's internal and client IPs |
//! | not Ready within `pod_ready_timeout` of its creation | `Failed(PodUnscheduled)` while unscheduled, else `Failed(DbStartFail)` |
//! | otherwise | `Pending`, saying what it waits for |

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::api_error::{is_already_exists, not_found, port_error};
use super::cm_objects::flag;
use super::owner::cluster_owner;
use super::pod_manifest::{
    ins_type_label, instance_pod, Placement, INS_TYPE_LABEL, SPEC_ANNOTATION,
};
use super::KubePortsConfig;
use crate::domain::InsType;
use crate::ports::sim::port::PODS;
use crate::ports::{
    InsPodSpec, NodeInfo, NodeInventory, PodFailure, PodManager, PodProgress, PortError, Progress,
};

/// The production [`PodManager`], on the Pod objects.
#[derive(Clone)]
pub struct KubePodManager {
    client: Client,
    config: Arc<KubePortsConfig>,
    nodes: Arc<dyn NodeInventory>,
}

impl std::fmt::Debug for KubePodManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePodManager").finish_non_exhaustive()
    }
}

fn condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
}

fn is_true(pod: &Pod, type_: &str) -> bool {
    condition(pod, type_).is_some_and(|c| c.status == "True")
}

/// What a pod that is not Ready waits for.
fn waiting_for(pod: &Pod) -> String {
    if let Some(c) = condition(pod, "PodScheduled").filter(|c| c.status == "False") {
        return format!(
            "unscheduled: {}",
            c.message
                .clone()
                .or_else(|| c.reason.clone())
                .unwrap_or_default()
        );
    }
    let not_ready: Vec<String> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|statuses| {
            statuses
                .iter()
                .filter(|s| !s.ready)
                .map(|s| s.name.clone())
                .collect()
        })
        .unwrap_or_default();
    if not_ready.is_empty() {
        "not Ready yet".to_owned()
    } else {
        format!("containers not ready: {}", not_ready.join(", "))
    }
}

impl KubePodManager {
    /// The pod manager on `client`, placing pods by the health of `nodes`.
    pub fn new(
        client: Client,
        config: Arc<KubePortsConfig>,
        nodes: Arc<dyn NodeInventory>,
    ) -> Self {
        KubePodManager {
            client,
            config,
            nodes,
        }
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The controller-node rule of `controller-config` (missing: hybrid, no rule).
    async fn controller_label(&self) -> Result<Option<String>, PortError> {
        let name = &self.config.controller_config_name;
        let ns = &self.config.system_namespace;
        let what = format!("configmap {ns}/{name}");
        let cm = Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| port_error(PODS, &what, e))?;
        let data = cm.and_then(|c| c.data).unwrap_or_default();
        let hybrid = flag(data.get("hybridDeployment"), true);
        let label = data
            .get("controllerNodeLabel")
            .map(|l| l.trim().to_owned())
            .unwrap_or_default();
        Ok((!hybrid && !label.is_empty()).then_some(label))
    }

    async fn create(
        &self,
        spec: &InsPodSpec,
        placement: &Placement,
    ) -> Result<PodProgress, PortError> {
        let owner = cluster_owner(&self.client, PODS, &spec.cluster).await?;
        let pod = instance_pod(spec, &self.config, placement, owner);
        let what = format!("pod {}/{}", spec.cluster.namespace, spec.pod_name);
        match self
            .pods(&spec.cluster.namespace)
            .create(&PostParams::default(), &pod)
            .await
        {
            Ok(_) => tracing::info!(pod = %spec.pod_name, "instance pod created"),
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(port_error(PODS, &what, e)),
        }
        Ok(PodProgress::Pending {
            reason: format!("pod {} created", spec.pod_name),
        })
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), PortError> {
        match self
            .pods(namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(port_error(PODS, &format!("pod {namespace}/{name}"), e)),
        }
    }
}

fn unavailable_reason(nodes: &[NodeInfo]) -> String {
    if nodes.is_empty() {
        return "the cluster has no nodes".to_owned();
    }
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    format!(
        "no node is available for instances (storage or client network unavailable on {})",
        names.join(", ")
    )
}

#[async_trait]
impl PodManager for KubePodManager {
    async fn ensure_pod(&self, spec: &InsPodSpec) -> Result<PodProgress, PortError> {
        let nodes = self.nodes.nodes().await?;
        let mut unavailable: Vec<String> = nodes
            .iter()
            .filter(|n| !n.available)
            .map(|n| n.name.clone())
            .collect();
        unavailable.sort();
        if let Some(target) = &spec.target_node {
            if !nodes.iter().any(|n| &n.name == target && n.available) {
                return Ok(PodProgress::Failed {
                    failure: PodFailure::TargetNodeUnavailable,
                    message: format!("target node {target} is unavailable or unknown"),
                });
            }
        }
        if !nodes.iter().any(|n| n.available) {
            return Ok(PodProgress::Failed {
                failure: PodFailure::NoAvailableNode,
                message: unavailable_reason(&nodes),
            });
        }
        let placement = Placement {
            unavailable,
            controller_label: self.controller_label().await?,
        };
        let namespace = &spec.cluster.namespace;
        let what = format!("pod {namespace}/{}", spec.pod_name);
        let Some(pod) = self
            .pods(namespace)
            .get_opt(&spec.pod_name)
            .await
            .map_err(|e| port_error(PODS, &what, e))?
        else {
            return self.create(spec, &placement).await;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(PodProgress::Pending {
                reason: format!("pod {} is terminating", spec.pod_name),
            });
        }
        let wanted = super::pod_manifest::fingerprint(spec, &self.config, &placement);
        let built_from = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SPEC_ANNOTATION));
        if built_from != Some(&wanted) {
            tracing::info!(pod = %spec.pod_name, "instance pod no longer fits its spec; recreating");
            self.delete(namespace, &spec.pod_name).await?;
            return Ok(PodProgress::Pending {
                reason: format!("pod {} no longer fits its spec; recreating", spec.pod_name),
            });
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Failed" || phase == "Succeeded" {
            let why = pod
                .status
                .as_ref()
                .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
                .unwrap_or_default();
            return Ok(PodProgress::Failed {
                failure: PodFailure::PodLost,
                message: format!("pod {} is {phase}: {why}", spec.pod_name),
            });
        }
        if is_true(&pod, "Ready") {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let host_ip = pod
                .status
                .as_ref()
                .and_then(|s| s.host_ip.clone())
                .unwrap_or_default();
            let client_ip = nodes
                .iter()
                .find(|n| n.name == node)
                .map(|n| n.client_ip.clone())
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| host_ip.clone());
            return Ok(PodProgress::Ready {
                node,
                host_ip,
                client_ip,
            });
        }
        let waiting = waiting_for(&pod);
        let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let age = created
            .map(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t))
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .unwrap_or_default();
        if age > self.config.pod_ready_timeout {
            let failure = if condition(&pod, "PodScheduled").is_some_and(|c| c.status == "False") {
                PodFailure::PodUnscheduled
            } else {
                PodFailure::DbStartFail
            };
            return Ok(PodProgress::Failed {
                failure,
                message: format!(
                    "pod {} not Ready after {:?}: {waiting}",
                    spec.pod_name, self.config.pod_ready_timeout
                ),
            });
        }
        Ok(PodProgress::Pending {
            reason: format!("pod {}: {waiting}", spec.pod_name),
        })
    }

    async fn delete_pod(&self, namespace: &str, pod_name: &str) -> Result<Progress, PortError> {
        let what = format!("pod {namespace}/{pod_name}");
        let Some(pod) = self
            .pods(namespace)
            .get_opt(pod_name)
            .await
            .map_err(|e| port_error(PODS, &what, e))?
        else {
            return Ok(Progress::Done(()));
        };
        if pod.metadata.deletion_timestamp.is_none() {
            self.delete(namespace, pod_name).await?;
        }
        Ok(Progress::pending(format!(
            "pod {pod_name} is being deleted"
        )))
    }

    async fn label_ins_type(
        &self,
        namespace: &str,
        pod_name: &str,
        ins_type: InsType,
    ) -> Result<(), PortError> {
        let patch = json!({"metadata": {"labels": {INS_TYPE_LABEL: ins_type_label(ins_type)}}});
        self.pods(namespace)
            .patch(pod_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| port_error(PODS, &format!("pod {namespace}/{pod_name}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use test_cluster::{FakeCluster, FakeNode};

    use super::*;
    use crate::crd::MPDCluster;
    use crate::domain::{image_key, ContainerResources};
    use crate::ports::kube::fake_api::{c1, cluster};
    use crate::ports::kube::pod_manifest::PREPARE_SCRIPT;
    use crate::ports::kube::KubeNodeInventory;

    fn node(n: u8) -> FakeNode {
        FakeNode::new(format!("node-{n}"))
            .internal_ip(format!("10.1.0.{n}"))
            .client_ip(format!("192.168.1.{n}"))
            .label("node.kubernetes.io/node", "")
    }

    async fn fake(nodes: Vec<FakeNode>) -> FakeCluster {
        let mut builder = FakeCluster::builder().with_resource::<MPDCluster>();
        for n in nodes {
            builder = builder.node(n);
        }
        let fake = builder.build().await.unwrap();
        Api::<MPDCluster>::namespaced(fake.client(), "default")
            .create(&PostParams::default(), &cluster("default", "c1"))
            .await
            .unwrap();
        fake
    }

    fn manager(fake: &FakeCluster, timeout: Duration) -> KubePodManager {
        let config = Arc::new(KubePortsConfig {
            pod_ready_timeout: timeout,
            ..KubePortsConfig::default()
        });
        let nodes = Arc::new(KubeNodeInventory::new(fake.client(), config.clone()));
        KubePodManager::new(fake.client(), config, nodes)
    }

    fn spec() -> InsPodSpec {
        InsPodSpec {
            cluster: c1(),
            pod_name: "c1-1001-1002".into(),
            physical_ins_id: "1001".into(),
            ins_id: "1002".into(),
            ins_type: Some(InsType::Rw),
            port: 5432,
            images: [
                (image_key::ENGINE, "engine:1"),
                (image_key::MANAGER, "manager:1"),
                (image_key::PFSD, "pfsd:1"),
                (image_key::PFSD_TOOL, "pfsd-tool:1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            resources: BTreeMap::from([(
                "engine".to_owned(),
                ContainerResources {
                    cpu: "2".into(),
                    mem_limit: "8Gi".into(),
                    config: String::new(),
                },
            )]),
            pvc_name: "pvc-c1".into(),
            volume_id: "wwid-c1".into(),
            logic_ins_id: "1000".into(),
            target_node: None,
        }
    }

    async fn until_ready(
        fake: &FakeCluster,
        pods: &KubePodManager,
        spec: &InsPodSpec,
    ) -> PodProgress {
        for _ in 0..10 {
            let progress = pods.ensure_pod(spec).await.unwrap();
            if !matches!(progress, PodProgress::Pending { .. }) {
                return progress;
            }
            fake.sync().await.unwrap();
        }
        panic!("never settled");
    }

    #[tokio::test]
    async fn a_new_pod_is_pending_never_waited_on_then_ready_with_its_node_and_addresses() {
        let fake = fake(vec![node(1), node(2)]).await;
        let pods = manager(&fake, Duration::from_secs(600));
        let first = pods.ensure_pod(&spec()).await.unwrap();
        assert!(matches!(first, PodProgress::Pending { .. }), "{first:?}");
        let ready = until_ready(&fake, &pods, &spec()).await;
        let PodProgress::Ready {
            node,
            host_ip,
            client_ip,
        } = ready
        else {
            panic!("{ready:?}");
        };
        let n = node.trim_start_matches("node-");
        assert_eq!(host_ip, format!("10.1.0.{n}"));
        assert_eq!(client_ip, format!("192.168.1.{n}"));
    }

    #[tokio::test]
    async fn the_pod_has_the_instance_manifest_and_prepares_its_directory_without_values() {
        let fake = fake(vec![node(1)]).await;
        let pods = manager(&fake, Duration::from_secs(600));
        pods.ensure_pod(&spec()).await.unwrap();
        let pod = Api::<Pod>::namespaced(fake.client(), "default")
            .get("c1-1001-1002")
            .await
            .unwrap();
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels[INS_TYPE_LABEL], "polardb_mpd_rw");
        assert_eq!(labels["apsara.metric.clusterName"], "c1");
        assert_eq!(labels["apsara.metric.ins_name"], "1001");
        assert_eq!(labels["apsara.metric.pv_name"], "wwid-c1");
        assert_eq!(labels["apsara.ins.port"], "5432");
        let owner = &pod.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("MPDCluster", "c1", Some(true))
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(spec.share_process_namespace, Some(true));
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pfsd-tool", "pfsd", "engine", "manager"]);
        for c in &spec.containers {
            let devices = c.volume_devices.clone().unwrap();
            assert_eq!(devices[0].device_path, "/dev/mapper/wwid-c1", "{}", c.name);
        }
        let engine = &spec.containers[2];
        assert_eq!(engine.image.as_deref(), Some("engine:1"));
        let limits = engine.resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["cpu"].0, "2");
        assert_eq!(limits["memory"].0, "8Gi");
        let init = &spec.init_containers.unwrap()[0];
        let command = init.command.clone().unwrap();
        assert_eq!(command[2], PREPARE_SCRIPT);
        assert!(
            !command.join(" ").contains("1002"),
            "no value of the cluster in the command"
        );
        let volumes = spec.volumes.unwrap();
        let data = volumes.iter().find(|v| v.name == "config-data").unwrap();
        assert_eq!(
            data.host_path.as_ref().unwrap().path,
            "/disk1/polardb/1002/data"
        );
        let pvc = volumes.iter().find(|v| v.name == "data").unwrap();
        assert_eq!(
            pvc.persistent_volume_claim.as_ref().unwrap().claim_name,
            "pvc-c1"
        );
    }

    #[tokio::test]
    async fn a_target_node_that_is_unavailable_or_no_available_node_fails_at_once() {
        let fake = fake(vec![node(1), node(2).storage_unavailable()]).await;
        let pods = manager(&fake, Duration::from_secs(600));
        let mut to_2 = spec();
        to_2.target_node = Some("node-2".into());
        let got = pods.ensure_pod(&to_2).await.unwrap();
        assert!(
            matches!(
                got,
                PodProgress::Failed {
                    failure: PodFailure::TargetNodeUnavailable,
                    ..
                }
            ),
            "{got:?}"
        );
        fake.set_node_condition("node-1", "PlugInStorageUnavailable", true, "down")
            .await
            .unwrap();
        let got = pods.ensure_pod(&spec()).await.unwrap();
        let PodProgress::Failed { failure, message } = got else {
            panic!("{got:?}")
        };
        assert_eq!(failure, PodFailure::NoAvailableNode);
        assert!(
            message.contains("node-1") && message.contains("node-2"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_pod_built_for_other_unavailable_nodes_is_recreated() {
        let fake = fake(vec![node(1), node(2)]).await;
        let pods = manager(&fake, Duration::from_secs(600));
        let ready = until_ready(&fake, &pods, &spec()).await;
        assert!(matches!(ready, PodProgress::Ready { .. }));
        let api = Api::<Pod>::namespaced(fake.client(), "default");
        let uid = api.get("c1-1001-1002").await.unwrap().metadata.uid;
        fake.set_node_condition("node-2", "PlugInStorageUnavailable", true, "down")
            .await
            .unwrap();
        let got = pods.ensure_pod(&spec()).await.unwrap();
        assert!(
            matches!(&got, PodProgress::Pending { reason } if reason.contains("recreating")),
            "{got:?}"
        );
        let ready = until_ready(&fake, &pods, &spec()).await;
        let PodProgress::Ready { node, .. } = ready else {
            panic!("{ready:?}")
        };
        assert_eq!(node, "node-1");
        let pod = api.get("c1-1001-1002").await.unwrap();
        assert_ne!(pod.metadata.uid, uid, "a new pod");
        let rules = serde_json::to_string(&pod.spec.unwrap().affinity).unwrap();
        assert!(
            rules.contains("NotIn") && rules.contains("node-2"),
            "{rules}"
        );
    }

    #[tokio::test]
    async fn a_pod_not_ready_in_time_fails_unscheduled_or_db_start_and_an_evicted_pod_is_lost() {
        let fake = fake(vec![node(1)]).await;
        let pods = manager(&fake, Duration::ZERO);
        fake.kubelet().hold_unscheduled("default", "c1-1001-1002");
        pods.ensure_pod(&spec()).await.unwrap();
        fake.sync().await.unwrap();
        let got = pods.ensure_pod(&spec()).await.unwrap();
        assert!(
            matches!(
                got,
                PodProgress::Failed {
                    failure: PodFailure::PodUnscheduled,
                    ..
                }
            ),
            "{got:?}"
        );

        let mut other = spec();
        other.pod_name = "c1-1001-1003".into();
        fake.kubelet().hold_not_ready("default", "c1-1001-1003");
        pods.ensure_pod(&other).await.unwrap();
        fake.sync().await.unwrap();
        let got = pods.ensure_pod(&other).await.unwrap();
        assert!(
            matches!(
                got,
                PodProgress::Failed {
                    failure: PodFailure::DbStartFail,
                    ..
                }
            ),
            "{got:?}"
        );

        let mut third = spec();
        third.pod_name = "c1-1001-1004".into();
        fake.kubelet()
            .fail_pod("default", "c1-1001-1004", "Evicted", "low on memory");
        pods.ensure_pod(&third).await.unwrap();
        fake.sync().await.unwrap();
        let got = pods.ensure_pod(&third).await.unwrap();
        let PodProgress::Failed { failure, message } = got else {
            panic!("{got:?}")
        };
        assert_eq!(failure, PodFailure::PodLost);
        assert!(message.contains("low on memory"), "{message}");
    }

    #[tokio::test]
    async fn delete_is_pending_until_the_pod_is_gone_and_a_missing_pod_is_done_and_labels_patch() {
        let fake = fake(vec![node(1)]).await;
        let pods = manager(&fake, Duration::from_secs(600));
        until_ready(&fake, &pods, &spec()).await;
        pods.label_ins_type("default", "c1-1001-1002", InsType::Ro)
            .await
            .unwrap();
        let api = Api::<Pod>::namespaced(fake.client(), "default");
        let labels = api
            .get("c1-1001-1002")
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap();
        assert_eq!(labels[INS_TYPE_LABEL], "polardb_mpd_ro");
        assert!(!pods
            .delete_pod("default", "c1-1001-1002")
            .await
            .unwrap()
            .is_done());
        fake.sync().await.unwrap();
        assert!(pods
            .delete_pod("default", "c1-1001-1002")
            .await
            .unwrap()
            .is_done());
        assert!(pods
            .delete_pod("default", "nosuch")
            .await
            .unwrap()
            .is_done());
    }
}
