//! E. The cluster manager of each cluster: its deployment, HA flag and instance membership.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use async_trait::async_trait;

use super::world::{advance, Job, World};
use super::{port, Simulation};
use crate::domain::InsType;
use crate::ports::{
    ClusterManager, ClusterRef, CmInsStatus, CmInstance, CmRole, CmSpec, CmStatus, PortError,
    Progress,
};

/// Engine phase: added, not yet running.
const STARTING: &str = "STARTING";
/// Engine phase: running.
const RUNNING: &str = "RUNNING";
/// Engine phase: failed.
const FAILED: &str = "FAILED";
/// Cluster phase without a RW.
const PENDING: &str = "PENDING";

/// One instance as the simulated cluster manager knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCmInstance {
    /// `clientIP:port`.
    pub endpoint: String,
    /// The pod name.
    pub pod_name: String,
    /// The node name.
    pub host_name: String,
    /// RW or RO.
    pub role: CmRole,
    /// `STARTING`, `RUNNING`, `FAILED`, ...
    pub phase: String,
}

/// The cluster manager of one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCm {
    /// Whether it runs (false while it is being deployed or removed).
    pub deployed: bool,
    /// The node its pod runs on.
    pub node: String,
    /// The image.
    pub image: String,
    /// The HTTP port.
    pub port: i32,
    /// The consensus port.
    pub consensus_port: i32,
    /// The logical cluster id it was deployed with.
    pub logic_id: String,
    /// Whether automatic failover is on.
    pub ha: bool,
    /// The instances, by endpoint.
    pub instances: Vec<SimCmInstance>,
}

/// A job of the CM deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum CmJob {
    Deploy,
    Remove,
}

/// An instance record: what the CM shows, and the status calls left until it runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct InsRecord {
    pub(super) ins: SimCmInstance,
    pub(super) countdown: u32,
    pub(super) since_tick: u64,
}

/// One cluster's CM.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct CmRecord {
    pub(super) cm: SimCm,
    pub(super) instances: BTreeMap<String, InsRecord>,
    pub(super) job: Option<Job<CmJob>>,
}

impl CmRecord {
    fn snapshot(&self) -> SimCm {
        SimCm {
            instances: self.instances.values().map(|r| r.ins.clone()).collect(),
            ..self.cm.clone()
        }
    }

    fn rw(&self) -> Option<&InsRecord> {
        self.instances.values().find(|r| r.ins.role == CmRole::Rw)
    }
}

/// The simulated [`ClusterManager`].
pub(super) struct SimClusterManager(pub(super) Simulation);

fn unavailable(cluster: &ClusterRef) -> PortError {
    PortError::Unavailable {
        port: port::CLUSTER_MANAGER,
        message: format!("the cluster manager of {cluster} is not running"),
    }
}

fn rejected(message: String) -> PortError {
    PortError::Rejected {
        port: port::CLUSTER_MANAGER,
        message,
    }
}

impl World {
    /// The running CM of `cluster`, or `Unavailable`.
    fn running_cm(&mut self, cluster: &ClusterRef) -> Result<&mut CmRecord, PortError> {
        self.cms
            .get_mut(cluster)
            .filter(|r| r.cm.deployed)
            .ok_or_else(|| unavailable(cluster))
    }

    /// The first available node (name order) without a RW pod of `cluster`, else the first
    /// available node, never `avoid`.
    fn cm_node(&self, cluster: &ClusterRef, avoid: Option<&str>) -> Option<String> {
        let rw_nodes: Vec<&str> = self
            .pods
            .values()
            .filter(|p| p.pod.cluster == *cluster && p.pod.ins_type() == Some(InsType::Rw))
            .map(|p| p.pod.node.as_str())
            .collect();
        let candidates: Vec<&str> = self
            .nodes
            .values()
            .filter(|n| n.available && Some(n.name.as_str()) != avoid)
            .map(|n| n.name.as_str())
            .collect();
        candidates
            .iter()
            .find(|n| !rw_nodes.contains(n))
            .or(candidates.first())
            .map(|n| n.to_string())
    }

    fn ensure_cm(&mut self, spec: &CmSpec) -> Result<Progress, PortError> {
        let ready_after = self.config.ready_after_polls;
        let deploying = self.cms.get(&spec.cluster).is_some_and(|r| {
            r.cm.deployed
                || matches!(
                    r.job,
                    Some(Job {
                        kind: CmJob::Deploy,
                        ..
                    })
                )
        });
        if !deploying {
            let Some(node) = self.cm_node(&spec.cluster, None) else {
                return Ok(Progress::pending(
                    "no available node for the cluster manager",
                ));
            };
            let record = self.cms.entry(spec.cluster.clone()).or_default();
            record.instances.clear();
            record.cm.node = node;
            record.cm.ha = true;
        }
        let record = self.cms.entry(spec.cluster.clone()).or_default();
        record.cm.image = spec.image.clone();
        record.cm.port = spec.port;
        record.cm.consensus_port = spec.consensus_port;
        record.cm.logic_id = spec.logic_id.clone();
        if record.cm.deployed {
            return Ok(Progress::Done(()));
        }
        if advance(&mut record.job, CmJob::Deploy, ready_after) {
            record.cm.deployed = true;
            Ok(Progress::Done(()))
        } else {
            Ok(Progress::pending(format!(
                "cluster manager of {} starting on {}",
                spec.cluster, record.cm.node
            )))
        }
    }

    fn remove_cm(&mut self, cluster: &ClusterRef) -> Result<Progress, PortError> {
        let ready_after = self.config.ready_after_polls;
        let Some(record) = self.cms.get_mut(cluster) else {
            return Ok(Progress::Done(()));
        };
        record.cm.deployed = false;
        if advance(&mut record.job, CmJob::Remove, ready_after) {
            self.cms.remove(cluster);
            Ok(Progress::Done(()))
        } else {
            Ok(Progress::pending(format!(
                "cluster manager of {cluster} terminating"
            )))
        }
    }

    fn cm_affinity(&mut self, cluster: &ClusterRef, rw_node: &str) -> Result<Progress, PortError> {
        if self.running_cm(cluster)?.cm.node != rw_node {
            return Ok(Progress::Done(()));
        }
        let Some(node) = self.cm_node(cluster, Some(rw_node)) else {
            return Ok(Progress::pending(format!(
                "no available node other than {rw_node} for the cluster manager"
            )));
        };
        self.running_cm(cluster)?.cm.node = node.clone();
        Ok(Progress::pending(format!(
            "cluster manager moving from {rw_node} to {node}"
        )))
    }

    fn cm_add_ins(&mut self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError> {
        let countdown = self.config.ready_after_polls;
        let since_tick = self.tick;
        let record = self.running_cm(cluster)?;
        if ins.client_ip.is_empty() || ins.port <= 0 {
            return Err(rejected(format!(
                "invalid endpoint {:?} of {}",
                ins.endpoint(),
                ins.pod_name
            )));
        }
        let endpoint = ins.endpoint();
        if record.instances.contains_key(&endpoint) {
            return Ok(());
        }
        let role = ins.role.unwrap_or(CmRole::Ro);
        if role == CmRole::Rw {
            if let Some(rw) = record.rw() {
                return Err(rejected(format!("{} is already the RW", rw.ins.endpoint)));
            }
        }
        let ins = SimCmInstance {
            endpoint: endpoint.clone(),
            pod_name: ins.pod_name.clone(),
            host_name: ins.host_name.clone(),
            role,
            phase: STARTING.to_string(),
        };
        record.instances.insert(
            endpoint,
            InsRecord {
                ins,
                countdown,
                since_tick,
            },
        );
        Ok(())
    }

    fn cm_remove_ins(&mut self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError> {
        let endpoint = ins.endpoint();
        let record = self.running_cm(cluster)?;
        record.instances.retain(|e, r| {
            *e != endpoint && (ins.pod_name.is_empty() || r.ins.pod_name != ins.pod_name)
        });
        Ok(())
    }

    fn cm_switchover(
        &mut self,
        cluster: &ClusterRef,
        from: &str,
        to: &str,
    ) -> Result<(), PortError> {
        let since_tick = self.tick;
        let record = self.running_cm(cluster)?;
        let rw = record.rw().map(|r| r.ins.endpoint.clone());
        if rw.as_deref() == Some(to) {
            return Ok(());
        }
        match record.instances.get(to) {
            Some(r) if r.ins.role == CmRole::Ro && r.ins.phase == RUNNING => {}
            Some(r) => {
                return Err(rejected(format!(
                    "switchover target {to} is {:?} in phase {}",
                    r.ins.role, r.ins.phase
                )))
            }
            None => return Err(rejected(format!("switchover target {to} is unknown"))),
        }
        if rw.as_deref() != Some(from) {
            return Err(rejected(format!("switchover source {from} is not the RW")));
        }
        for (endpoint, r) in record.instances.iter_mut() {
            if endpoint == from {
                r.ins.role = CmRole::Ro;
                r.since_tick = since_tick;
            } else if endpoint == to {
                r.ins.role = CmRole::Rw;
                r.since_tick = since_tick;
            }
        }
        Ok(())
    }

    fn cm_status(&mut self, cluster: &ClusterRef) -> Result<CmStatus, PortError> {
        let (now, tick) = (self.now(), self.tick);
        let record = self.cms.get_mut(cluster).filter(|r| r.cm.deployed);
        let record = record.ok_or_else(|| unavailable(cluster))?;
        for r in record.instances.values_mut() {
            if r.ins.phase == STARTING {
                if r.countdown == 0 {
                    r.ins.phase = RUNNING.to_string();
                } else {
                    r.countdown -= 1;
                }
            }
        }
        let mut status = CmStatus {
            phase: PENDING.to_string(),
            ha_enabled: record.cm.ha,
            rw: None,
            ro: Vec::new(),
        };
        for r in record.instances.values() {
            let since = i64::try_from(tick.saturating_sub(r.since_tick)).unwrap_or(0);
            let ins = CmInsStatus {
                endpoint: r.ins.endpoint.clone(),
                pod_name: r.ins.pod_name.clone(),
                phase: r.ins.phase.clone(),
                start_at: (now - chrono::Duration::seconds(since))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            };
            match r.ins.role {
                CmRole::Rw => {
                    status.phase = ins.phase.clone();
                    status.rw = Some(ins);
                }
                CmRole::Ro => status.ro.push(ins),
            }
        }
        Ok(status)
    }
}

fn ins_summary(cluster: &ClusterRef, ins: &CmInstance) -> String {
    format!(
        "{cluster} {} {} {:?}",
        ins.pod_name,
        ins.endpoint(),
        ins.role.unwrap_or(CmRole::Ro)
    )
}

#[async_trait]
impl ClusterManager for SimClusterManager {
    async fn ensure_deployed(&self, spec: &CmSpec) -> Result<Progress, PortError> {
        let args = format!("{} image={} port={}", spec.cluster, spec.image, spec.port);
        self.0
            .call(port::CLUSTER_MANAGER, "ensure_deployed", args, |w| {
                w.ensure_cm(spec)
            })
            .await
    }

    async fn remove(&self, cluster: &ClusterRef) -> Result<Progress, PortError> {
        self.0
            .call(port::CLUSTER_MANAGER, "remove", cluster.to_string(), |w| {
                w.remove_cm(cluster)
            })
            .await
    }

    async fn upgrade(&self, cluster: &ClusterRef, image: &str) -> Result<(), PortError> {
        let args = format!("{cluster} image={image}");
        self.0
            .call(port::CLUSTER_MANAGER, "upgrade", args, |w| {
                w.running_cm(cluster)?.cm.image = image.to_string();
                Ok(())
            })
            .await
    }

    async fn ensure_affinity(
        &self,
        cluster: &ClusterRef,
        rw_node: &str,
    ) -> Result<Progress, PortError> {
        let args = format!("{cluster} rw_node={rw_node}");
        self.0
            .call(port::CLUSTER_MANAGER, "ensure_affinity", args, |w| {
                w.cm_affinity(cluster, rw_node)
            })
            .await
    }

    async fn set_ha(&self, cluster: &ClusterRef, enabled: bool) -> Result<(), PortError> {
        let args = format!("{cluster} enabled={enabled}");
        self.0
            .call(port::CLUSTER_MANAGER, "set_ha", args, |w| {
                w.running_cm(cluster)?.cm.ha = enabled;
                Ok(())
            })
            .await
    }

    async fn add_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError> {
        self.0
            .call(
                port::CLUSTER_MANAGER,
                "add_ins",
                ins_summary(cluster, ins),
                |w| w.cm_add_ins(cluster, ins),
            )
            .await
    }

    async fn remove_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError> {
        self.0
            .call(
                port::CLUSTER_MANAGER,
                "remove_ins",
                ins_summary(cluster, ins),
                |w| w.cm_remove_ins(cluster, ins),
            )
            .await
    }

    async fn switchover(
        &self,
        cluster: &ClusterRef,
        from: &str,
        to: &str,
    ) -> Result<(), PortError> {
        let args = format!("{cluster} from={from} to={to}");
        self.0
            .call(port::CLUSTER_MANAGER, "switchover", args, |w| {
                w.cm_switchover(cluster, from, to)
            })
            .await
    }

    async fn status(&self, cluster: &ClusterRef) -> Result<CmStatus, PortError> {
        self.0
            .call(port::CLUSTER_MANAGER, "status", cluster.to_string(), |w| {
                w.cm_status(cluster)
            })
            .await
    }
}

impl Simulation {
    /// The cluster manager of `cluster` (`None` before the first deploy and after removal).
    pub fn cm(&self, cluster: &ClusterRef) -> Option<SimCm> {
        self.lock().cms.get(cluster).map(CmRecord::snapshot)
    }

    /// Sets the phase the CM reports for the instance in `pod_name`; returns whether the
    /// CM knows it.
    pub fn set_instance_phase(&self, cluster: &ClusterRef, pod_name: &str, phase: &str) -> bool {
        let mut world = self.lock();
        let Some(record) = world.cms.get_mut(cluster) else {
            return false;
        };
        let mut found = false;
        for r in record
            .instances
            .values_mut()
            .filter(|r| r.ins.pod_name == pod_name)
        {
            r.ins.phase = phase.to_string();
            found = true;
        }
        found
    }

    /// The CM reports the instance in `pod_name` `FAILED` from now on (no failover happens;
    /// see [`Simulation::promote`]). Returns whether the CM knows it.
    pub fn fail_instance(&self, cluster: &ClusterRef, pod_name: &str) -> bool {
        self.set_instance_phase(cluster, pod_name, FAILED)
    }

    /// An automatic failover: the instance in `pod_name` becomes the RW and the RW (if any)
    /// an RO. Returns whether the CM knows the instance.
    pub fn promote(&self, cluster: &ClusterRef, pod_name: &str) -> bool {
        let mut world = self.lock();
        let Some(record) = world.cms.get_mut(cluster) else {
            return false;
        };
        if !record
            .instances
            .values()
            .any(|r| r.ins.pod_name == pod_name)
        {
            return false;
        }
        for r in record.instances.values_mut() {
            r.ins.role = if r.ins.pod_name == pod_name {
                CmRole::Rw
            } else {
                CmRole::Ro
            };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::{c1, sim};
    use crate::ports::InsPodSpec;

    fn spec() -> CmSpec {
        CmSpec {
            cluster: c1(),
            logic_id: "1000".into(),
            rw_physical_id: "1001".into(),
            image: "cm:1".into(),
            port: 30000,
            consensus_port: 30001,
            ..Default::default()
        }
    }

    fn ins(pod: &str, n: u32, role: CmRole) -> CmInstance {
        CmInstance {
            pod_name: pod.into(),
            host_ip: format!("10.0.0.{n}"),
            client_ip: format!("192.168.0.{n}"),
            host_name: format!("node-{n}"),
            port: 5432,
            role: Some(role),
        }
    }

    async fn deployed(ready_after: u32) -> (Simulation, std::sync::Arc<dyn ClusterManager>) {
        let sim = sim(ready_after);
        let cm = sim.ports().cluster_manager;
        while !cm.ensure_deployed(&spec()).await.unwrap().is_done() {}
        (sim, cm)
    }

    async fn running(cm: &dyn ClusterManager) -> CmStatus {
        loop {
            let s = cm.status(&c1()).await.unwrap();
            if s.rw.iter().chain(s.ro.iter()).all(|i| i.phase == RUNNING) {
                return s;
            }
        }
    }

    #[tokio::test]
    async fn deploy_is_pending_then_done_with_ha_on() {
        let sim = sim(1);
        let cm = sim.ports().cluster_manager;
        assert!(!cm.ensure_deployed(&spec()).await.unwrap().is_done());
        assert!(!sim.cm(&c1()).unwrap().deployed);
        assert!(cm.ensure_deployed(&spec()).await.unwrap().is_done());
        let state = sim.cm(&c1()).unwrap();
        assert!(state.deployed && state.ha);
        assert_eq!(
            (state.node.as_str(), state.image.as_str(), state.port),
            ("node-1", "cm:1", 30000)
        );
        assert!(cm.ensure_deployed(&spec()).await.unwrap().is_done());
    }

    #[tokio::test]
    async fn deploy_prefers_a_node_without_the_rw_pod() {
        let sim = sim(0);
        let p = sim.ports();
        let pod = InsPodSpec {
            cluster: c1(),
            pod_name: "c1-1001-1002".into(),
            ins_type: Some(InsType::Rw),
            port: 5432,
            ..Default::default()
        };
        p.pods.ensure_pod(&pod).await.unwrap();
        assert!(p
            .cluster_manager
            .ensure_deployed(&spec())
            .await
            .unwrap()
            .is_done());
        assert_eq!(sim.cm(&c1()).unwrap().node, "node-2");
    }

    #[tokio::test]
    async fn calls_to_an_undeployed_cm_are_unavailable() {
        let sim = sim(1);
        let cm = sim.ports().cluster_manager;
        let is_unavailable =
            |r: Result<(), PortError>| matches!(r, Err(PortError::Unavailable { .. }));
        assert!(is_unavailable(cm.set_ha(&c1(), false).await));
        assert!(is_unavailable(
            cm.add_ins(&c1(), &ins("p", 1, CmRole::Rw)).await
        ));
        assert!(matches!(
            cm.status(&c1()).await,
            Err(PortError::Unavailable { .. })
        ));
        cm.ensure_deployed(&spec()).await.unwrap();
        assert!(is_unavailable(cm.upgrade(&c1(), "cm:2").await));
    }

    #[tokio::test]
    async fn remove_is_pending_then_done_and_forgets_everything() {
        let (sim, cm) = deployed(1).await;
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        assert!(!cm.remove(&c1()).await.unwrap().is_done());
        assert!(matches!(
            cm.status(&c1()).await,
            Err(PortError::Unavailable { .. })
        ));
        assert!(cm.remove(&c1()).await.unwrap().is_done());
        assert_eq!(sim.cm(&c1()), None);
        assert!(cm.remove(&c1()).await.unwrap().is_done());
        while !cm.ensure_deployed(&spec()).await.unwrap().is_done() {}
        assert!(sim.cm(&c1()).unwrap().instances.is_empty());
    }

    #[tokio::test]
    async fn added_instances_are_starting_then_running_after_ready_after_polls_status_calls() {
        let (_sim, cm) = deployed(2).await;
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        let phases = [
            cm.status(&c1()).await.unwrap().rw.unwrap().phase,
            cm.status(&c1()).await.unwrap().rw.unwrap().phase,
            cm.status(&c1()).await.unwrap().rw.unwrap().phase,
        ];
        assert_eq!(phases, [STARTING, STARTING, RUNNING]);
    }

    #[tokio::test]
    async fn add_and_remove_ins_are_idempotent() {
        let (sim, cm) = deployed(0).await;
        let rw = ins("p1", 1, CmRole::Rw);
        cm.add_ins(&c1(), &rw).await.unwrap();
        cm.add_ins(&c1(), &rw).await.unwrap();
        assert_eq!(sim.cm(&c1()).unwrap().instances.len(), 1);
        cm.remove_ins(&c1(), &rw).await.unwrap();
        cm.remove_ins(&c1(), &rw).await.unwrap();
        assert!(sim.cm(&c1()).unwrap().instances.is_empty());
    }

    #[tokio::test]
    async fn a_second_rw_or_an_empty_ip_is_rejected() {
        let (_sim, cm) = deployed(0).await;
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        let err = cm
            .add_ins(&c1(), &ins("p2", 2, CmRole::Rw))
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        let mut empty = ins("p3", 3, CmRole::Ro);
        empty.client_ip.clear();
        let err = cm.add_ins(&c1(), &empty).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
    }

    #[tokio::test]
    async fn status_lists_rw_and_sorted_ros_by_client_endpoint() {
        let (_sim, cm) = deployed(0).await;
        cm.add_ins(&c1(), &ins("p3", 3, CmRole::Ro)).await.unwrap();
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        cm.add_ins(&c1(), &ins("p2", 2, CmRole::Ro)).await.unwrap();
        let s = running(cm.as_ref()).await;
        assert_eq!(s.phase, RUNNING);
        assert!(s.ha_enabled);
        assert_eq!(s.rw.as_ref().unwrap().endpoint, "192.168.0.1:5432");
        let ros: Vec<_> = s.ro.iter().map(|i| i.endpoint.as_str()).collect();
        assert_eq!(ros, ["192.168.0.2:5432", "192.168.0.3:5432"]);
        assert_eq!(s.instance("192.168.0.2:5432").unwrap().pod_name, "p2");
        assert_eq!(s.rw.unwrap().start_at.len(), "2024-01-01 00:00:00".len());
    }

    #[tokio::test]
    async fn switchover_swaps_roles_and_is_idempotent() {
        let (_sim, cm) = deployed(0).await;
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        cm.add_ins(&c1(), &ins("p2", 2, CmRole::Ro)).await.unwrap();
        running(cm.as_ref()).await;
        let (from, to) = ("192.168.0.1:5432", "192.168.0.2:5432");
        cm.switchover(&c1(), from, to).await.unwrap();
        let s = cm.status(&c1()).await.unwrap();
        assert_eq!(s.rw.unwrap().pod_name, "p2");
        assert_eq!(s.ro[0].pod_name, "p1");
        cm.switchover(&c1(), from, to).await.unwrap();
    }

    #[tokio::test]
    async fn switchover_to_a_target_that_is_not_a_running_ro_is_rejected() {
        let (sim, cm) = deployed(1).await;
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        cm.add_ins(&c1(), &ins("p2", 2, CmRole::Ro)).await.unwrap();
        let (from, to) = ("192.168.0.1:5432", "192.168.0.2:5432");
        // Still STARTING.
        let err = cm.switchover(&c1(), from, to).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        running(cm.as_ref()).await;
        let err = cm
            .switchover(&c1(), from, "192.168.0.9:5432")
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert!(sim.fail_instance(&c1(), "p2"));
        let err = cm.switchover(&c1(), from, to).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
    }

    #[tokio::test]
    async fn affinity_moves_the_cm_off_the_rw_node_once() {
        let (sim, cm) = deployed(0).await;
        assert!(cm.ensure_affinity(&c1(), "node-3").await.unwrap().is_done());
        let node = sim.cm(&c1()).unwrap().node;
        assert!(!cm.ensure_affinity(&c1(), &node).await.unwrap().is_done());
        let moved = sim.cm(&c1()).unwrap().node;
        assert_ne!(moved, node);
        assert!(cm.ensure_affinity(&c1(), &node).await.unwrap().is_done());
    }

    #[tokio::test]
    async fn set_ha_and_upgrade_change_the_cm() {
        let (sim, cm) = deployed(0).await;
        cm.set_ha(&c1(), false).await.unwrap();
        cm.upgrade(&c1(), "cm:2").await.unwrap();
        let state = sim.cm(&c1()).unwrap();
        assert!(!state.ha);
        assert_eq!(state.image, "cm:2");
        assert!(!cm.status(&c1()).await.unwrap().ha_enabled);
    }

    #[tokio::test]
    async fn fail_instance_and_promote_change_what_the_cm_reports() {
        let (sim, cm) = deployed(0).await;
        cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.unwrap();
        cm.add_ins(&c1(), &ins("p2", 2, CmRole::Ro)).await.unwrap();
        assert!(sim.fail_instance(&c1(), "p1"));
        assert!(!sim.fail_instance(&c1(), "nope"));
        assert_eq!(cm.status(&c1()).await.unwrap().phase, FAILED);
        assert!(sim.promote(&c1(), "p2"));
        let s = cm.status(&c1()).await.unwrap();
        assert_eq!(s.rw.unwrap().pod_name, "p2");
        assert_eq!(s.ro[0].phase, FAILED);
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let (sim, cm) = deployed(0).await;
        sim.set_fail_rate(1.0);
        assert!(cm.add_ins(&c1(), &ins("p1", 1, CmRole::Rw)).await.is_err());
        assert!(cm.set_ha(&c1(), false).await.is_err());
        assert!(cm.remove(&c1()).await.is_err());
        let state = sim.cm(&c1()).unwrap();
        assert!(state.deployed && state.ha && state.instances.is_empty());
    }
}
