//! Creating a cluster: metadata, parameters, accounts, storage, the cluster manager, the
//! instances (domain §2.5 init_meta, create_and_install_ins; §4.3 the Create steps).

use std::collections::BTreeMap;

use chrono::Utc;

use super::{cluster_ref, Outcome, ServiceError, SharedStorageService};
use crate::crd::FINALIZER;
use crate::domain::{ids, image_key, topology, ClassSpec, InsType, SharedStorageCluster};
use crate::ports::{
    CmRole, CmSpec, ParamSet, ParamValue, PortCheck, PortPurpose, Progress, PvcRef, StorageRequest,
};

/// The annotation that keeps the CM's consensus port once allocated, so a re-run of
/// CreateClusterManager does not leak a port (weakness 25).
pub const CM_CONSENSUS_PORT: &str = "polardb.mpd/cmConsensusPort";

/// The database accounts every cluster gets: name and privilege.
pub const ACCOUNTS: [(&str, u32); 2] = [("aurora", 7), ("replicator", 15)];

impl SharedStorageService {
    /// Resolves the class (resources) and the version (images) of the model.
    pub async fn resolve_class_and_version(
        &self,
        model: &mut SharedStorageCluster,
    ) -> Result<(), ServiceError> {
        let class = self
            .ports
            .classes
            .class(&model.class_info.class_name)
            .await?;
        model.class_info = ClassSpec {
            class_name: class.name.clone(),
            cpu: class.cpu.clone(),
            memory: class.memory.clone(),
        };
        model.resources = class.resources;
        self.resolve_version(model).await
    }

    /// Resolves the images of the model's version (the latest when none is named).
    pub async fn resolve_version(
        &self,
        model: &mut SharedStorageCluster,
    ) -> Result<(), ServiceError> {
        let version = self
            .ports
            .versions
            .version(&model.image_info.version)
            .await?;
        model.image_info.version = version.name;
        model.image_info.images.extend(version.images);
        Ok(())
    }

    /// Creates the user and running parameters from the class if they do not exist yet;
    /// existing parameters (and user edits) are kept (weakness 25).
    pub async fn ensure_initial_params(
        &self,
        model: &SharedStorageCluster,
    ) -> Result<(), ServiceError> {
        let cluster = cluster_ref(model);
        let params = &self.ports.params;
        let user = params.user_params(&cluster).await?;
        let running = params.running_params(&cluster).await?;
        if user.is_some() && running.is_some() {
            return Ok(());
        }
        let now = Utc::now();
        let initial = ParamSet {
            params: params
                .class_params(&model.class_info.class_name)
                .await?
                .into_iter()
                .map(|(name, value)| {
                    let param = ParamValue {
                        name: name.clone(),
                        value,
                        update_time: Some(now),
                        inoperative_value: false,
                    };
                    (name, param)
                })
                .collect(),
            latest_flush_time: None,
        };
        if user.is_none() {
            params.save_user_params(&cluster, &initial).await?;
        }
        if running.is_none() {
            params.save_running_params(&cluster, &initial).await?;
        }
        Ok(())
    }

    /// InitMeta (§4.3): parameters, class and version, ids, instances and the CM port when
    /// there is no RW yet (state `Creating`), save, account Secrets, the finalizer.
    pub async fn init_meta(&self, model: &mut SharedStorageCluster) -> Outcome {
        self.ensure_initial_params(model).await?;
        self.resolve_class_and_version(model).await?;
        if model.rw.is_none() {
            let cluster = format!("{}/{}", model.namespace, model.name);
            match self.ports.ports.check_engine_port(model.port).await? {
                PortCheck::Free => {}
                other => {
                    let what = match other {
                        PortCheck::OutOfRange => "outside the allowed range",
                        _ => "in use on a node",
                    };
                    return Err(ServiceError::interrupt(
                        "ENGINE_PORT_UNAVAILABLE",
                        format!(
                            "cluster {cluster}: engine port {} is {what}; choose another \
                             spec.netCfg.engineStartPort, then run `recover`",
                            model.port
                        ),
                    ));
                }
            }
            let count = usize::try_from(model.ro_replicas.max(0)).unwrap_or(0);
            let allocated = self.ports.ids.next_ids(ids::ids_needed(count)).await?;
            let layout = ids::layout_ids(&cluster, &allocated, count)?;
            topology::build_initial_instances(model, &layout)?;
            if model.cm_port.is_none() {
                model.cm_port = Some(
                    self.ports
                        .ports
                        .allocate_port(PortPurpose::ClusterManager)
                        .await?,
                );
            }
            model.cluster_status = "Creating".to_owned();
        }
        self.save(model).await?;
        let cluster = cluster_ref(model);
        for (name, privilege) in ACCOUNTS {
            self.ports
                .accounts
                .ensure_account(&cluster, &model.logic_ins_id, name, privilege)
                .await?;
        }
        self.modify(&cluster, |cr| {
            let mut out = cr.clone();
            let finalizers = out.metadata.finalizers.get_or_insert_with(Vec::new);
            if !finalizers.iter().any(|f| f == FINALIZER) {
                finalizers.push(FINALIZER.to_owned());
            }
            out
        })
        .await?;
        Ok(Progress::Done(()))
    }

    /// PrepareStorage: asks the storage manager to use (and, the first time, format) the
    /// volume for this cluster.
    pub async fn prepare_storage(&self, model: &SharedStorageCluster) -> Outcome {
        let request = StorageRequest {
            pvc: PvcRef {
                namespace: model.storage.pvc_namespace.clone(),
                name: model.storage.pvc_name.clone(),
            },
            volume_id: model.storage.volume_id.clone(),
            volume_type: model.storage.volume_type.clone(),
            owner: model.name.clone(),
            format: true,
        };
        Ok(self.ports.storage.use_storage(&request).await?)
    }

    /// CreateClusterManager: deploys the CM; the consensus port is allocated once and kept
    /// in an annotation.
    pub async fn create_cluster_manager(
        &self,
        model: &SharedStorageCluster,
        annotations_now: &BTreeMap<String, String>,
    ) -> Outcome {
        let cluster = cluster_ref(model);
        let consensus = match annotations_now
            .get(CM_CONSENSUS_PORT)
            .and_then(|p| p.parse::<i32>().ok())
        {
            Some(port) => port,
            None => {
                let port = self
                    .ports
                    .ports
                    .allocate_port(PortPurpose::Consensus)
                    .await?;
                self.patch_annotations(
                    &cluster,
                    &BTreeMap::from([(CM_CONSENSUS_PORT.to_owned(), Some(port.to_string()))]),
                )
                .await?;
                port
            }
        };
        let spec = CmSpec {
            cluster,
            logic_id: model.logic_ins_id.clone(),
            rw_physical_id: model
                .rw
                .as_ref()
                .map(|rw| rw.physical_ins_id.clone())
                .unwrap_or_default(),
            image: model
                .image_info
                .images
                .get(image_key::CLUSTER_MANAGER)
                .cloned()
                .unwrap_or_default(),
            port: model.cm_port.unwrap_or_default(),
            consensus_port: consensus,
            storage: model.storage.clone(),
        };
        Ok(self.ports.cluster_manager.ensure_deployed(&spec).await?)
    }

    /// CreateRwPod: creates and installs the RW (write lock, health check, engine accounts),
    /// then adds it to the CM and waits for it to run.
    pub async fn create_rw(&self, model: &mut SharedStorageCluster) -> Outcome {
        let rw_id = model.rw_id().to_owned();
        if let Progress::Pending { reason } = self
            .ensure_instance_installed(model, &rw_id, InsType::Rw)
            .await?
        {
            return Ok(Progress::Pending { reason });
        }
        self.ensure_in_cm(model, &rw_id, CmRole::Rw).await
    }

    /// CreateRoPods: creates and installs every RO (in id order) and adds each to the CM.
    pub async fn create_ros(&self, model: &mut SharedStorageCluster) -> Outcome {
        let ids: Vec<String> = model.ros.keys().cloned().collect();
        for id in ids {
            if let Progress::Pending { reason } = self
                .ensure_instance_installed(model, &id, InsType::Ro)
                .await?
            {
                return Ok(Progress::Pending { reason });
            }
            if let Progress::Pending { reason } = self.ensure_in_cm(model, &id, CmRole::Ro).await? {
                return Ok(Progress::Pending { reason });
            }
        }
        Ok(Progress::Done(()))
    }
}
