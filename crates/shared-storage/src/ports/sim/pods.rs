//! F. Instance pods: placement, readiness, deletion and labels.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use async_trait::async_trait;

use super::world::{Key, World};
use super::{port, Simulation};
use crate::domain::{ContainerResources, InsType};
use crate::ports::{
    ClusterRef, InsPodSpec, PodFailure, PodManager, PodProgress, PortError, Progress,
};

/// The engine inside a pod, as the engine agent left it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimEngine {
    /// The engine is installed.
    pub installed: bool,
    /// The engine runs.
    pub running: bool,
    /// The next health probe answers `StartingUp`.
    pub starting_up: bool,
    /// The log agent is set up.
    pub log_agent: bool,
    /// The parameters applied, merged over all `update_params` calls.
    pub params: BTreeMap<String, String>,
    /// The accounts created in the engine, sorted.
    pub accounts: Vec<String>,
    /// How many times PFS was grown.
    pub grown: u32,
    /// How many times the engine was started (install and restart included).
    pub starts: u32,
    /// How many times the engine was stopped (restart included).
    pub stops: u32,
}

/// An instance pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPod {
    /// The namespace.
    pub namespace: String,
    /// The pod name.
    pub name: String,
    /// The cluster.
    pub cluster: ClusterRef,
    /// The node it was placed on.
    pub node: String,
    /// The node's internal IP.
    pub host_ip: String,
    /// The node's client IP.
    pub client_ip: String,
    /// The engine (host) port.
    pub port: i32,
    /// The physical id.
    pub physical_ins_id: String,
    /// The instance id.
    pub ins_id: String,
    /// The type it was created as.
    pub created_as: Option<InsType>,
    /// The `apsara.metric.db_ins_type` label, once set.
    pub label: Option<InsType>,
    /// Images by key.
    pub images: BTreeMap<String, String>,
    /// Container resources.
    pub resources: BTreeMap<String, ContainerResources>,
    /// The PVC.
    pub pvc_name: String,
    /// The node it was pinned to.
    pub target_node: Option<String>,
    /// Running and ready.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// The engine.
    pub engine: SimEngine,
    /// pfsd runs.
    pub pfsd_running: bool,
    /// The config pfsd was started with.
    pub pfsd_config: String,
    /// The volume pfsd was started on.
    pub pfsd_volume_id: String,
}

impl SimPod {
    /// The pod's type: its label, else the type it was created as.
    pub fn ins_type(&self) -> Option<InsType> {
        self.label.or(self.created_as)
    }
}

/// A pod and the calls left until it is ready.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct PodRecord {
    pub(super) pod: SimPod,
    pub(super) countdown: u32,
    pub(super) pfsd_starting: bool,
}

/// The simulated [`PodManager`].
pub(super) struct SimPodManager(pub(super) Simulation);

fn failed(failure: PodFailure, message: String) -> PodProgress {
    PodProgress::Failed { failure, message }
}

impl World {
    /// Whether `node` holds a pod other than `pod_name` of `cluster` or on `port`.
    fn node_taken(&self, node: &str, spec: &InsPodSpec) -> bool {
        self.pods.values().any(|r| {
            let p = &r.pod;
            p.node == node
                && !(p.namespace == spec.cluster.namespace && p.name == spec.pod_name)
                && (p.cluster == spec.cluster || p.port == spec.port)
        })
    }

    /// Why no node takes `spec`: how many available nodes have its engine port taken by
    /// another cluster, how many already hold this cluster, and what to change.
    fn no_node(&self, spec: &InsPodSpec) -> String {
        let on = |node: &str, mine: bool| {
            self.pods.values().any(|r| {
                let p = &r.pod;
                p.node == node
                    && !(p.namespace == spec.cluster.namespace && p.name == spec.pod_name)
                    && if mine {
                        p.cluster == spec.cluster
                    } else {
                        p.cluster != spec.cluster && p.port == spec.port
                    }
            })
        };
        let available: Vec<&str> = self
            .nodes
            .values()
            .filter(|n| n.available)
            .map(|n| n.name.as_str())
            .collect();
        let own = available.iter().filter(|n| on(n, true)).count();
        let port = available
            .iter()
            .filter(|n| !on(n, true) && on(n, false))
            .count();
        format!(
            "no node for pod {}: of {} available node(s) {own} already hold an instance of \
             this cluster and engine port {} is taken on {port} by another cluster ({} node(s) \
             unavailable); lower spec.followerNum, choose another spec.netCfg.engineStartPort, \
             or add nodes",
            spec.pod_name,
            available.len(),
            spec.port,
            self.nodes.len() - available.len()
        )
    }

    /// Where a new pod goes, or why it cannot go anywhere.
    fn place(&self, spec: &InsPodSpec) -> Result<String, PodProgress> {
        if let Some(target) = &spec.target_node {
            if !self.node_available(target) {
                return Err(failed(
                    PodFailure::TargetNodeUnavailable,
                    format!("target node {target} is unavailable"),
                ));
            }
            if self.node_taken(target, spec) {
                return Err(failed(
                    PodFailure::PodUnscheduled,
                    format!("host port {} is in use on target node {target}", spec.port),
                ));
            }
            return Ok(target.clone());
        }
        self.nodes
            .values()
            .find(|n| n.available && !self.node_taken(&n.name, spec))
            .map(|n| n.name.clone())
            .ok_or_else(|| failed(PodFailure::NoAvailableNode, self.no_node(spec)))
    }

    fn ensure_pod(&mut self, spec: &InsPodSpec) -> Result<PodProgress, PortError> {
        let key: Key = (spec.cluster.namespace.clone(), spec.pod_name.clone());
        if let Some(record) = self.pods.get(&key) {
            let pod = &record.pod;
            if pod.terminating {
                return Ok(PodProgress::Pending {
                    reason: format!("pod {} is terminating", pod.name),
                });
            }
            let misplaced = spec.target_node.as_ref().is_some_and(|t| *t != pod.node);
            if misplaced {
                // Stale placement rules: the pod is recreated on the target.
                self.pods.remove(&key);
            } else if !self.node_available(&pod.node) {
                return Ok(failed(
                    PodFailure::PodLost,
                    format!("node {} of pod {} became unavailable", pod.node, pod.name),
                ));
            }
        }
        if !self.pods.contains_key(&key) {
            let node = match self.place(spec) {
                Ok(node) => node,
                Err(failure) => return Ok(failure),
            };
            let info = self.nodes.get(&node).cloned().unwrap_or_default();
            let pod = SimPod {
                namespace: key.0.clone(),
                name: key.1.clone(),
                cluster: spec.cluster.clone(),
                node,
                host_ip: info.internal_ip,
                client_ip: info.client_ip,
                port: spec.port,
                physical_ins_id: spec.physical_ins_id.clone(),
                ins_id: spec.ins_id.clone(),
                created_as: spec.ins_type,
                images: spec.images.clone(),
                resources: spec.resources.clone(),
                pvc_name: spec.pvc_name.clone(),
                target_node: spec.target_node.clone(),
                ..SimPod::default()
            };
            let record = PodRecord {
                pod,
                countdown: self.config.ready_after_polls,
                pfsd_starting: false,
            };
            self.pods.insert(key.clone(), record);
        }
        let Some(record) = self.pods.get_mut(&key) else {
            return Ok(PodProgress::Pending {
                reason: format!("pod {} is being created", spec.pod_name),
            });
        };
        if record.countdown > 0 {
            record.countdown -= 1;
            return Ok(PodProgress::Pending {
                reason: format!("pod {} is starting on {}", spec.pod_name, record.pod.node),
            });
        }
        record.pod.ready = true;
        Ok(PodProgress::Ready {
            node: record.pod.node.clone(),
            host_ip: record.pod.host_ip.clone(),
            client_ip: record.pod.client_ip.clone(),
        })
    }

    fn delete_pod(&mut self, key: &Key) -> Result<Progress, PortError> {
        let Some(record) = self.pods.get_mut(key) else {
            return Ok(Progress::Done(()));
        };
        if record.pod.terminating {
            self.pods.remove(key);
            return Ok(Progress::Done(()));
        }
        record.pod.terminating = true;
        record.pod.ready = false;
        record.pod.engine.running = false;
        record.pod.pfsd_running = false;
        Ok(Progress::pending(format!("pod {} is terminating", key.1)))
    }

    /// The pod `namespace/name`, or NotFound for `port`.
    pub(super) fn pod_mut(
        &mut self,
        port: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<&mut PodRecord, PortError> {
        self.pods
            .get_mut(&(namespace.to_string(), name.to_string()))
            .ok_or_else(|| PortError::NotFound {
                port,
                what: format!("pod {namespace}/{name}"),
            })
    }
}

#[async_trait]
impl PodManager for SimPodManager {
    async fn ensure_pod(&self, spec: &InsPodSpec) -> Result<PodProgress, PortError> {
        let args = format!(
            "{}/{} {:?} port={} target={}",
            spec.cluster.namespace,
            spec.pod_name,
            spec.ins_type,
            spec.port,
            spec.target_node.as_deref().unwrap_or("-")
        );
        self.0
            .call(port::PODS, "ensure_pod", args, |w| w.ensure_pod(spec))
            .await
    }

    async fn delete_pod(&self, namespace: &str, pod_name: &str) -> Result<Progress, PortError> {
        let key: Key = (namespace.to_string(), pod_name.to_string());
        self.0
            .call(
                port::PODS,
                "delete_pod",
                format!("{namespace}/{pod_name}"),
                |w| w.delete_pod(&key),
            )
            .await
    }

    async fn label_ins_type(
        &self,
        namespace: &str,
        pod_name: &str,
        ins_type: InsType,
    ) -> Result<(), PortError> {
        let args = format!("{namespace}/{pod_name} {}", ins_type.as_str());
        self.0
            .call(port::PODS, "label_ins_type", args, |w| {
                w.pod_mut(port::PODS, namespace, pod_name)?.pod.label = Some(ins_type);
                Ok(())
            })
            .await
    }
}

/// The namespace of the pods [`Simulation::occupy_port`] puts on nodes: they belong to no
/// MPDCluster.
pub const OUTSIDE_NAMESPACE: &str = "sim-outside";

impl Simulation {
    /// Puts a pod that belongs to no MPDCluster on `node`, holding host port `port` (as a
    /// database someone runs beside the operator): a pod of any cluster on that port can no
    /// longer be placed there. Returns `false`, changing nothing, when the node does not
    /// exist. Saved at once in a persistent world.
    pub fn occupy_port(&self, node: &str, port: i32) -> Result<bool, crate::local::LocalError> {
        {
            let mut world = self.lock();
            let Some(info) = world.nodes.get(node).cloned() else {
                return Ok(false);
            };
            let name = format!("port-{port}-on-{node}");
            let pod = SimPod {
                namespace: OUTSIDE_NAMESPACE.to_owned(),
                name: name.clone(),
                cluster: ClusterRef::new(OUTSIDE_NAMESPACE, name.clone()),
                node: node.to_owned(),
                host_ip: info.internal_ip,
                client_ip: info.client_ip,
                port,
                ready: true,
                ..SimPod::default()
            };
            world.pods.insert(
                (OUTSIDE_NAMESPACE.to_owned(), name),
                PodRecord {
                    pod,
                    countdown: 0,
                    pfsd_starting: false,
                },
            );
        }
        self.save()?;
        Ok(true)
    }

    /// Removes what Kubernetes' garbage collector removes with a deleted cluster, by the
    /// owner references: its pods (freeing their engine ports on their nodes), and the
    /// accounts and parameters kept in its Secrets and ConfigMaps. Returns how many pods
    /// went. Saved at once in a persistent world.
    pub fn collect_garbage(&self, cluster: &ClusterRef) -> Result<usize, crate::local::LocalError> {
        let removed = {
            let mut world = self.lock();
            let before = world.pods.len();
            world.pods.retain(|_, r| r.pod.cluster != *cluster);
            world.accounts.remove(cluster);
            world.params.remove(cluster);
            before - world.pods.len()
        };
        self.save()?;
        Ok(removed)
    }

    /// The pods of `cluster`, by name.
    pub fn pods(&self, cluster: &ClusterRef) -> Vec<SimPod> {
        self.lock()
            .pods
            .values()
            .filter(|r| r.pod.cluster == *cluster)
            .map(|r| r.pod.clone())
            .collect()
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<SimPod> {
        self.lock()
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(|r| r.pod.clone())
    }

    /// The pod vanishes at once (evicted, deleted by hand); returns whether it existed.
    pub fn remove_pod(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .pods
            .remove(&(namespace.to_string(), name.to_string()))
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::{c1, sim};
    use crate::ports::NodeInfo;

    fn spec(pod: &str) -> InsPodSpec {
        InsPodSpec {
            cluster: c1(),
            pod_name: pod.into(),
            physical_ins_id: "1001".into(),
            ins_id: "1002".into(),
            ins_type: Some(InsType::Ro),
            port: 5432,
            pvc_name: "pvc-1".into(),
            ..Default::default()
        }
    }

    async fn ready(pods: &dyn PodManager, spec: &InsPodSpec) -> PodProgress {
        loop {
            let p = pods.ensure_pod(spec).await.unwrap();
            if !matches!(p, PodProgress::Pending { .. }) {
                return p;
            }
        }
    }

    #[tokio::test]
    async fn pod_is_pending_for_ready_after_polls_calls_then_ready() {
        let sim = sim(2);
        let pods = sim.ports().pods;
        for _ in 0..2 {
            assert!(matches!(
                pods.ensure_pod(&spec("a")).await.unwrap(),
                PodProgress::Pending { .. }
            ));
        }
        assert_eq!(
            pods.ensure_pod(&spec("a")).await.unwrap(),
            PodProgress::Ready {
                node: "node-1".into(),
                host_ip: "10.0.0.1".into(),
                client_ip: "192.168.0.1".into()
            }
        );
        let pod = sim.pod("default", "a").unwrap();
        assert!(pod.ready);
        assert_eq!((pod.ins_id.as_str(), pod.port), ("1002", 5432));
        assert_eq!(sim.pods(&c1()).len(), 1);
    }

    #[tokio::test]
    async fn pod_lands_on_a_node_without_another_pod_of_the_cluster() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        let mut nodes = Vec::new();
        for name in ["a", "b", "c", "d"] {
            match pods.ensure_pod(&spec(name)).await.unwrap() {
                PodProgress::Ready { node, .. } => nodes.push(node),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(nodes, ["node-1", "node-2", "node-3", "node-4"]);
        // Another cluster with another port may share a node.
        let mut other = spec("x");
        other.cluster = ClusterRef::new("default", "c2");
        other.port = 5433;
        assert!(
            matches!(pods.ensure_pod(&other).await.unwrap(), PodProgress::Ready { node, .. } if node == "node-1")
        );
    }

    #[tokio::test]
    async fn no_free_available_node_is_no_available_node() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        for name in ["a", "b"] {
            pods.ensure_pod(&spec(name)).await.unwrap();
        }
        sim.set_node_available("node-3", false);
        sim.set_node_available("node-4", false);
        let p = pods.ensure_pod(&spec("c")).await.unwrap();
        let PodProgress::Failed {
            failure: PodFailure::NoAvailableNode,
            message,
        } = p
        else {
            panic!("{p:?}");
        };
        // The message says how the nodes are taken and what to change.
        assert!(
            message.contains("of 2 available node(s) 2 already hold an instance of this cluster")
                && message.contains("engine port")
                && message.contains("spec.netCfg.engineStartPort"),
            "{message}"
        );
        assert_eq!(sim.pod("default", "c"), None);
    }

    #[tokio::test]
    async fn pods_of_other_clusters_on_the_same_port_block_a_node() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        let mut other = spec("x");
        other.cluster = ClusterRef::new("default", "c2");
        pods.ensure_pod(&other).await.unwrap();
        assert!(
            matches!(pods.ensure_pod(&spec("a")).await.unwrap(), PodProgress::Ready { node, .. } if node == "node-2")
        );
    }

    #[tokio::test]
    async fn target_node_is_used_and_must_be_available() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        let mut s = spec("a");
        s.target_node = Some("node-3".into());
        assert!(
            matches!(pods.ensure_pod(&s).await.unwrap(), PodProgress::Ready { node, .. } if node == "node-3")
        );
        sim.set_node_available("node-4", false);
        let mut s = spec("b");
        s.target_node = Some("node-4".into());
        let p = pods.ensure_pod(&s).await.unwrap();
        assert!(matches!(
            p,
            PodProgress::Failed {
                failure: PodFailure::TargetNodeUnavailable,
                ..
            }
        ));
        s.target_node = Some("node-3".into());
        let p = pods.ensure_pod(&s).await.unwrap();
        assert!(matches!(
            p,
            PodProgress::Failed {
                failure: PodFailure::PodUnscheduled,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_pod_is_recreated_on_a_new_target_node() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        pods.ensure_pod(&spec("a")).await.unwrap();
        let mut s = spec("a");
        s.target_node = Some("node-2".into());
        assert!(
            matches!(pods.ensure_pod(&s).await.unwrap(), PodProgress::Ready { node, .. } if node == "node-2")
        );
        assert_eq!(sim.pods(&c1()).len(), 1);
    }

    #[tokio::test]
    async fn a_pod_on_a_node_that_became_unavailable_is_lost() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        ready(pods.as_ref(), &spec("a")).await;
        sim.set_node_available("node-1", false);
        let p = pods.ensure_pod(&spec("a")).await.unwrap();
        assert!(matches!(
            p,
            PodProgress::Failed {
                failure: PodFailure::PodLost,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn delete_is_pending_once_then_done_and_frees_the_node() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        pods.ensure_pod(&spec("a")).await.unwrap();
        assert!(!pods.delete_pod("default", "a").await.unwrap().is_done());
        assert!(sim.pod("default", "a").unwrap().terminating);
        // A terminating pod still holds its node.
        assert!(
            matches!(pods.ensure_pod(&spec("b")).await.unwrap(), PodProgress::Ready { node, .. } if node == "node-2")
        );
        assert!(pods.delete_pod("default", "a").await.unwrap().is_done());
        assert_eq!(sim.pod("default", "a"), None);
        assert!(pods.delete_pod("default", "a").await.unwrap().is_done());
        assert!(
            matches!(pods.ensure_pod(&spec("c")).await.unwrap(), PodProgress::Ready { node, .. } if node == "node-1")
        );
    }

    #[tokio::test]
    async fn label_records_the_type_and_needs_the_pod() {
        let sim = sim(0);
        let pods = sim.ports().pods;
        assert!(pods
            .label_ins_type("default", "a", InsType::Rw)
            .await
            .unwrap_err()
            .is_not_found());
        pods.ensure_pod(&spec("a")).await.unwrap();
        pods.label_ins_type("default", "a", InsType::Rw)
            .await
            .unwrap();
        let pod = sim.pod("default", "a").unwrap();
        assert_eq!(
            (pod.label, pod.ins_type()),
            (Some(InsType::Rw), Some(InsType::Rw))
        );
    }

    #[tokio::test]
    async fn added_nodes_take_pods() {
        let sim = sim(0);
        for n in 1..=4 {
            sim.set_node_available(&format!("node-{n}"), false);
        }
        sim.add_node(NodeInfo {
            name: "node-9".into(),
            internal_ip: "10.0.0.9".into(),
            client_ip: "192.168.0.9".into(),
            available: true,
        });
        let p = sim.ports().pods.ensure_pod(&spec("a")).await.unwrap();
        assert!(
            matches!(p, PodProgress::Ready { node, client_ip, .. } if node == "node-9" && client_ip == "192.168.0.9")
        );
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = sim(0);
        sim.set_fail_rate(1.0);
        assert!(sim.ports().pods.ensure_pod(&spec("a")).await.is_err());
        assert!(sim.pods(&c1()).is_empty());
    }
}
