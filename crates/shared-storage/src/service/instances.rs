//! Instance lifecycle primitives shared by the steps: create and install an instance, add
//! it to / remove it from the cluster manager, delete it, health checks and switchover.
//! Each is an idempotent "ensure": it looks at the world first and returns `Pending` while
//! the world catches up.

use super::{cluster_ref, Outcome, ServiceError, SharedStorageService};
use crate::domain::{DbIns, DomainError, InsType, SharedStorageCluster};
use crate::ports::{
    CmInstance, CmRole, EngineTarget, Health, InsPodSpec, PodProgress, Progress, PvcRef,
};

/// The engine phase the cluster manager reports for a healthy instance.
pub const PHASE_RUNNING: &str = "RUNNING";

fn unknown(model: &SharedStorageCluster, ins_id: &str) -> ServiceError {
    DomainError::UnknownInstance {
        cluster: format!("{}/{}", model.namespace, model.name),
        ins_id: ins_id.to_owned(),
    }
    .into()
}

/// A mutable reference to the instance `ins_id` wherever it is.
pub(crate) fn instance_mut<'a>(
    model: &'a mut SharedStorageCluster,
    ins_id: &str,
) -> Option<&'a mut DbIns> {
    if model.rw.as_ref().is_some_and(|rw| rw.ins_id == ins_id) {
        return model.rw.as_mut();
    }
    if model.ros.contains_key(ins_id) {
        return model.ros.get_mut(ins_id);
    }
    model.temp_ros.get_mut(ins_id)
}

impl SharedStorageService {
    /// Where engine commands for `ins` run.
    pub fn engine_target(model: &SharedStorageCluster, ins: &DbIns) -> EngineTarget {
        EngineTarget {
            namespace: if ins.pod_namespace.is_empty() {
                model.namespace.clone()
            } else {
                ins.pod_namespace.clone()
            },
            pod_name: ins.pod_name.clone(),
            ins_id: ins.ins_id.clone(),
            is_rw: model.rw_id() == ins.ins_id,
        }
    }

    /// The pod an instance needs.
    pub fn pod_spec(model: &SharedStorageCluster, ins: &DbIns, ins_type: InsType) -> InsPodSpec {
        InsPodSpec {
            cluster: cluster_ref(model),
            pod_name: ins.pod_name.clone(),
            physical_ins_id: ins.physical_ins_id.clone(),
            ins_id: ins.ins_id.clone(),
            ins_type: Some(ins_type),
            port: ins.port,
            images: model.image_info.images.clone(),
            resources: model.resources.clone(),
            pvc_name: model.storage.pvc_name.clone(),
            volume_id: model.storage.volume_id.clone(),
            logic_ins_id: model.logic_ins_id.clone(),
            target_node: ins.target_node.clone(),
        }
    }

    /// The CM's view of an instance.
    pub fn cm_instance(ins: &DbIns, role: CmRole) -> CmInstance {
        CmInstance {
            pod_name: ins.pod_name.clone(),
            host_ip: ins.host_ip.clone(),
            client_ip: ins.client_ip.clone(),
            host_name: ins.host.clone(),
            port: ins.port,
            role: Some(role),
        }
    }

    /// Creates the pod of `ins_id` and installs its engine (domain §2.5
    /// create_and_install_ins): pod ready (its node and IPs saved), for the RW the storage
    /// write lock on its node, pfsd, the engine (installed and started only when the health
    /// probe does not already answer), for the RW the database accounts, the log agent, then
    /// `installed` saved. Skipped when
    /// already installed. A pod that cannot become ready interrupts with the pod failure's
    /// reason.
    pub async fn ensure_instance_installed(
        &self,
        model: &mut SharedStorageCluster,
        ins_id: &str,
        as_type: InsType,
    ) -> Outcome {
        let ins = match model.find(ins_id) {
            Some((_, ins)) => ins.clone(),
            None => return Err(unknown(model, ins_id)),
        };
        if ins.installed {
            return Ok(Progress::Done(()));
        }
        let spec = Self::pod_spec(model, &ins, as_type);
        let (node, host_ip, client_ip) = match self.ports.pods.ensure_pod(&spec).await? {
            PodProgress::Ready {
                node,
                host_ip,
                client_ip,
            } => (node, host_ip, client_ip),
            PodProgress::Pending { reason } => return Ok(Progress::Pending { reason }),
            PodProgress::Failed { failure, message } => {
                return Err(ServiceError::interrupt(
                    failure.reason(),
                    format!("pod {}: {message}", ins.pod_name),
                ))
            }
        };
        if ins.host != node || ins.host_ip != host_ip || ins.client_ip != client_ip {
            if let Some(record) = instance_mut(model, ins_id) {
                record.host = node.clone();
                record.host_ip = host_ip;
                record.client_ip = client_ip;
            }
            self.save(model).await?;
        }
        if as_type == InsType::Rw {
            let pvc = PvcRef {
                namespace: model.storage.pvc_namespace.clone(),
                name: model.storage.pvc_name.clone(),
            };
            if let Progress::Pending { reason } =
                self.ports.storage.set_write_lock(&pvc, &node).await?
            {
                return Ok(Progress::Pending { reason });
            }
        }
        let ins = match model.find(ins_id) {
            Some((_, ins)) => ins.clone(),
            None => return Err(unknown(model, ins_id)),
        };
        let target = Self::engine_target(model, &ins);
        let pfsd_config = model
            .resources
            .get("pfsd")
            .map(|r| r.config.clone())
            .unwrap_or_default();
        if let Progress::Pending { reason } = self
            .ports
            .pfsd
            .start_pfsd(&target, &pfsd_config, &model.storage.volume_id)
            .await?
        {
            return Ok(Progress::Pending { reason });
        }
        match self.ports.engine.health(&target).await? {
            Health::Ok => {}
            Health::StartingUp => return Ok(Progress::pending("engine starting up")),
            Health::ContainerNotFound | Health::Unknown => {
                self.ports.engine.install(&target).await?;
                self.ports.engine.start(&target).await?;
                return Ok(Progress::pending("engine installed, starting"));
            }
        }
        if as_type == InsType::Rw {
            let accounts = self.ports.accounts.accounts(&cluster_ref(model)).await?;
            self.ports
                .engine
                .create_accounts(&target, &accounts)
                .await?;
        }
        self.ports.engine.setup_log_agent(&target).await?;
        if let Some(record) = instance_mut(model, ins_id) {
            record.installed = true;
        }
        self.save(model).await?;
        Ok(Progress::Done(()))
    }

    /// Adds `ins_id` to the cluster manager as `role` and waits until the CM reports it
    /// `RUNNING` (`FAILED` is an error, retried).
    pub async fn ensure_in_cm(
        &self,
        model: &SharedStorageCluster,
        ins_id: &str,
        role: CmRole,
    ) -> Outcome {
        let (_, ins) = model.find(ins_id).ok_or_else(|| unknown(model, ins_id))?;
        let cluster = cluster_ref(model);
        let cm = &self.ports.cluster_manager;
        let status = cm.status(&cluster).await?;
        match status.instance(&ins.endpoint()) {
            Some(found) if found.phase.eq_ignore_ascii_case(PHASE_RUNNING) => {
                Ok(Progress::Done(()))
            }
            Some(found) if found.phase.eq_ignore_ascii_case("failed") => {
                Err(ServiceError::Port(crate::ports::PortError::Unavailable {
                    port: "cluster-manager",
                    message: format!("instance {ins_id} is FAILED in the cluster manager"),
                }))
            }
            Some(found) => Ok(Progress::pending(format!(
                "instance {ins_id} is {} in the cluster manager",
                found.phase
            ))),
            None => {
                cm.add_ins(&cluster, &Self::cm_instance(ins, role)).await?;
                Ok(Progress::pending(format!(
                    "instance {ins_id} added to the cluster manager"
                )))
            }
        }
    }

    /// Removes `ins` from the cluster manager if it is there; `Done(true)` when it was.
    pub async fn ensure_not_in_cm(
        &self,
        model: &SharedStorageCluster,
        ins: &DbIns,
    ) -> Outcome<bool> {
        let cluster = cluster_ref(model);
        let cm = &self.ports.cluster_manager;
        if cm
            .status(&cluster)
            .await?
            .instance(&ins.endpoint())
            .is_some()
        {
            let role = if model.rw_id() == ins.ins_id {
                CmRole::Rw
            } else {
                CmRole::Ro
            };
            cm.remove_ins(&cluster, &Self::cm_instance(ins, role))
                .await?;
            return Ok(Progress::Done(true));
        }
        Ok(Progress::Done(false))
    }

    /// Takes `ins` out of the cluster manager, stops its engine (errors ignored) and deletes
    /// its pod; done when the pod is gone. The engine is stopped by the run that takes the
    /// instance out of the CM: a re-run polling the terminating pod does not stop it again.
    pub async fn ensure_instance_deleted(
        &self,
        model: &SharedStorageCluster,
        ins: &DbIns,
    ) -> Outcome {
        let removed = match self.ensure_not_in_cm(model, ins).await? {
            Progress::Done(removed) => removed,
            Progress::Pending { reason } => return Ok(Progress::Pending { reason }),
        };
        let target = Self::engine_target(model, ins);
        if removed {
            if let Err(err) = self.ports.engine.graceful_stop(&target).await {
                tracing::debug!(pod = %ins.pod_name, %err, "graceful stop failed; deleting the pod anyway");
            }
        }
        Ok(self
            .ports
            .pods
            .delete_pod(&target.namespace, &ins.pod_name)
            .await?)
    }

    /// Done when the engine of `ins` answers its health probe.
    pub async fn health_check(&self, model: &SharedStorageCluster, ins: &DbIns) -> Outcome {
        match self
            .ports
            .engine
            .health(&Self::engine_target(model, ins))
            .await?
        {
            Health::Ok => Ok(Progress::Done(())),
            other => Ok(Progress::pending(format!(
                "engine of {} is {other:?}",
                ins.ins_id
            ))),
        }
    }
}

/// Makes the RO `target_id` the RW and the old RW an RO, in the model.
fn swap_rw(model: &mut SharedStorageCluster, target_id: &str) -> bool {
    let Some(new_rw) = model.ros.remove(target_id) else {
        return false;
    };
    if let Some(old_rw) = model.rw.replace(new_rw) {
        model.ros.insert(old_rw.ins_id.clone(), old_rw);
    }
    true
}

impl SharedStorageService {
    /// Makes `target_id` the RW through a planned switchover (domain §2.5 switchover): done
    /// when the cluster manager reports it as the RW, which is then saved. The target must be
    /// an RO; a switch to the current RW is done at once.
    pub async fn ensure_rw(&self, model: &mut SharedStorageCluster, target_id: &str) -> Outcome {
        if model.rw_id() == target_id {
            return Ok(Progress::Done(()));
        }
        let Some(target) = model.ros.get(target_id).cloned() else {
            return Err(DomainError::Invalid {
                cluster: format!("{}/{}", model.namespace, model.name),
                message: format!("switchover target {target_id} is not a read-only instance"),
            }
            .into());
        };
        let cluster = cluster_ref(model);
        let cm = &self.ports.cluster_manager;
        let status = cm.status(&cluster).await?;
        if status
            .rw
            .as_ref()
            .is_some_and(|rw| rw.endpoint == target.endpoint())
        {
            swap_rw(model, target_id);
            self.save(model).await?;
            return Ok(Progress::Done(()));
        }
        match status.instance(&target.endpoint()) {
            Some(found) if found.phase.eq_ignore_ascii_case(PHASE_RUNNING) => {
                let from = model.rw.as_ref().map(DbIns::endpoint).unwrap_or_default();
                cm.switchover(&cluster, &from, &target.endpoint()).await?;
                Ok(Progress::pending(format!(
                    "switchover to {target_id} requested"
                )))
            }
            Some(found) => Ok(Progress::pending(format!(
                "switchover target {target_id} is {}",
                found.phase
            ))),
            None => Ok(Progress::pending(format!(
                "switchover target {target_id} is not in the cluster manager yet"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ports::{CmInsStatus, CmRole, CmStatus, PortError, Progress};
    use crate::steps::testing::{ready_on, Fixture};

    fn cm_with(endpoint: &str, phase: &str) -> CmStatus {
        CmStatus {
            phase: "RUNNING".into(),
            ha_enabled: true,
            rw: None,
            ro: vec![CmInsStatus {
                endpoint: endpoint.into(),
                pod_name: String::new(),
                phase: phase.into(),
                start_at: String::new(),
            }],
        }
    }

    #[tokio::test]
    async fn weakness_6_a_failed_ro_is_noticed_from_its_own_phase_at_once() {
        let mut f = Fixture::running();
        // The RO 1004 runs on node-2 (client IP 192.168.0.2); the CM reports it FAILED.
        f.cm.expect_status()
            .returning(|_| Ok(cm_with("192.168.0.2:5432", "FAILED")));
        f.cm.expect_add_ins().never();
        let f = f.build();
        let loaded = f
            .service
            .load(&f.cluster, Default::default())
            .await
            .unwrap();
        let err = f
            .service
            .ensure_in_cm(&loaded.model, "1004", CmRole::Ro)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1004 is FAILED"), "{err}");
    }

    #[tokio::test]
    async fn weakness_9_a_pfsd_start_failure_is_an_error_not_a_started_pfsd() {
        let mut f = Fixture::creating();
        f.pods.expect_ensure_pod().returning(|_| Ok(ready_on(2)));
        f.pfsd.expect_start_pfsd().returning(|_, _, _| {
            Err(PortError::Unavailable {
                port: "pfsd",
                message: "exec failed".into(),
            })
        });
        f.engine.expect_health().never();
        f.engine.expect_install().never();
        let f = f.build();
        let mut loaded = f
            .service
            .load(&f.cluster, Default::default())
            .await
            .unwrap();
        let err = f
            .service
            .ensure_instance_installed(&mut loaded.model, "1004", crate::domain::InsType::Ro)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exec failed"), "{err}");
        assert!(!f.instance("1004").installed);
    }

    #[tokio::test]
    async fn weakness_8_cm_affinity_waits_until_the_cm_has_moved() {
        let mut f = Fixture::running();
        f.cm.expect_ensure_affinity()
            .returning(|_, _| Ok(Progress::pending("moving the cluster manager off node-1")));
        let f = f.build();
        let outcome = f.run("EnsureCmRwAffinity").await.unwrap();
        assert!(matches!(outcome, Progress::Pending { .. }), "{outcome:?}");
    }
}
