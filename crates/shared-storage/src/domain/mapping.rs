//! The repository mapping (domain §2.3): an MPDCluster object to the aggregate and back.
//! Pure functions; the service does the I/O with conflict retries.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::engine_state::set_rw_id;
use super::{
    image_key, ClassSpec, ContainerResources, DbIns, DomainError, EngineState, ImageInfo, InsType,
    InterruptInfo, LoadMode, SharedStorageCluster, StorageInfo,
};
use crate::crd::{
    annotations, ClassInfo, ClusterManagerStatus, EngineStateRecord, InstanceStatus, MPDCluster,
    MPDClusterStatus, NetInfo, ResourceAdditional, VersionCfg,
};

fn cluster_id(cr: &MPDCluster) -> String {
    format!(
        "{}/{}",
        cr.metadata.namespace.as_deref().unwrap_or_default(),
        cr.metadata.name.as_deref().unwrap_or_default()
    )
}

fn class_spec(class: &ClassInfo) -> ClassSpec {
    ClassSpec {
        class_name: class.class_name.clone(),
        cpu: class.cpu.clone().unwrap_or_default(),
        memory: class.memory.clone().unwrap_or_default(),
    }
}

fn image_info(version: &VersionCfg) -> ImageInfo {
    let mut images = BTreeMap::new();
    for (key, value) in [
        (image_key::ENGINE, &version.engine_image),
        (image_key::MANAGER, &version.manager_image),
        (image_key::CLUSTER_MANAGER, &version.cluster_manager_image),
        (image_key::PFSD, &version.pfsd_image),
        (image_key::PFSD_TOOL, &version.pfsd_tool_image),
    ] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            images.insert(key.to_owned(), value.clone());
        }
    }
    ImageInfo {
        version: version.version_name.clone(),
        images,
    }
}

fn version_cfg(info: &ImageInfo, previous: Option<&VersionCfg>) -> VersionCfg {
    let image = |key: &str| info.images.get(key).cloned();
    VersionCfg {
        version_name: info.version.clone(),
        engine_image: image(image_key::ENGINE),
        manager_image: image(image_key::MANAGER),
        cluster_manager_image: image(image_key::CLUSTER_MANAGER),
        pfsd_image: image(image_key::PFSD),
        pfsd_tool_image: image(image_key::PFSD_TOOL),
        other_images: previous.and_then(|p| p.other_images.clone()),
    }
}

fn engine_state(record: &EngineStateRecord) -> EngineState {
    EngineState {
        state: record.state.clone(),
        reason: record.reason.clone(),
        started_at: record.start_at.clone(),
    }
}

fn engine_record(state: &EngineState) -> EngineStateRecord {
    EngineStateRecord {
        state: state.state.clone(),
        reason: state.reason.clone(),
        start_at: state.started_at.clone(),
    }
}

fn db_ins(entry: &InstanceStatus) -> DbIns {
    DbIns {
        physical_ins_id: entry.physical_ins_id.clone(),
        ins_id: entry.ins_id.clone(),
        ins_name: entry.ins_name.clone(),
        pod_name: entry.pod_name.clone(),
        pod_namespace: entry.pod_name_space.clone(),
        host: entry.node_name.clone(),
        host_ip: entry.net_info.working_host_ip.clone(),
        client_ip: entry.host_client_ip.clone(),
        port: entry.net_info.working_port,
        fs_id: entry.polar_fs_host_id.clone(),
        installed: entry.installed,
        current_state: engine_state(&entry.current_state),
        last_state: engine_state(&entry.last_state),
        target_node: None,
    }
}

/// Loads the aggregate from an MPDCluster (§2.3 "Load"). In `modify_class` mode with a
/// target class the class comes from `classInfoModifyTo`; in `upgrade` mode with a target
/// version the images come from `versionCfgModifyTo`. A missing `shareStore` is an error
/// (the original crashed); an invalid `tempRoIds` annotation is ignored with a warning.
pub fn load(cr: &MPDCluster, mode: LoadMode) -> Result<SharedStorageCluster, DomainError> {
    let spec = &cr.spec;
    let name = cr.metadata.name.clone().unwrap_or_default();
    let namespace = cr.metadata.namespace.clone().unwrap_or_default();
    let share = spec
        .share_store
        .as_ref()
        .ok_or_else(|| DomainError::MissingShareStore {
            cluster: cluster_id(cr),
        })?;
    let status = cr.status.clone().unwrap_or_default();
    let annotations = cr.metadata.annotations.clone().unwrap_or_default();

    let mut cluster = SharedStorageCluster {
        name: name.clone(),
        namespace: namespace.clone(),
        description: spec.description.clone().unwrap_or_default(),
        logic_ins_id: status.logic_id.clone(),
        cluster_status: status.cluster_status.clone(),
        ro_replicas: spec.follower_num,
        port: spec.net_cfg.as_ref().map_or(0, |n| n.engine_start_port),
        class_info: class_spec(&spec.class_info),
        image_info: image_info(&spec.version_cfg),
        storage: StorageInfo {
            pvc_name: share.share_pvc_name.clone(),
            pvc_namespace: share
                .share_pvc_namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| namespace.clone()),
            volume_id: share.volume_id.clone(),
            volume_type: share.volume_type.clone(),
        },
        cm_port: status
            .cluster_manager_status
            .as_ref()
            .map(|c| c.working_port)
            .filter(|p| *p != 0),
        mode,
        loaded_leader: status.leader_instance_id.clone(),
        ..SharedStorageCluster::default()
    };
    if mode.modify_class && !spec.class_info_modify_to.class_name.is_empty() {
        cluster.old_class_info = Some(cluster.class_info.clone());
        cluster.class_info = class_spec(&spec.class_info_modify_to);
    }
    if let Some(target) = spec
        .version_cfg_modify_to
        .as_ref()
        .filter(|v| mode.upgrade && !v.version_name.is_empty())
    {
        cluster.old_image_info = Some(cluster.image_info.clone());
        cluster.image_info = image_info(target);
    }
    for (container, extra) in spec.resource_additional.iter().flatten() {
        cluster.resources.insert(
            container.clone(),
            ContainerResources {
                cpu: extra
                    .cpu_cores
                    .as_ref()
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
                mem_limit: extra
                    .limit_memory
                    .as_ref()
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
                config: extra.config.clone().unwrap_or_default(),
            },
        );
    }
    for (ins_id, entry) in &status.db_instance_status {
        let mut ins = db_ins(entry);
        if ins.ins_id.is_empty() {
            ins.ins_id = ins_id.clone();
        }
        match InsType::parse(&entry.ins_type) {
            Some(InsType::Rw) => {
                if let Some(previous) = cluster.rw.replace(ins) {
                    tracing::warn!(cluster = %cluster_id(cr), kept = %ins_id, dropped = %previous.ins_id, "several rw entries");
                }
            }
            Some(InsType::Ro) => {
                cluster.ros.insert(ins_id.clone(), ins);
            }
            Some(InsType::TempRo) => {
                cluster.temp_ros.insert(ins_id.clone(), ins);
            }
            None => {
                tracing::warn!(cluster = %cluster_id(cr), ins = %ins_id, ins_type = %entry.ins_type, "ignoring instance of unknown type");
            }
        }
    }
    if let Some(raw) = annotations.get(annotations::TEMP_RO_IDS) {
        match serde_json::from_str::<BTreeMap<String, String>>(raw) {
            Ok(plan) => cluster.temp_ro_ids = plan,
            Err(err) => {
                tracing::warn!(cluster = %cluster_id(cr), %err, "ignoring invalid tempRoIds annotation");
            }
        }
    }
    if status.cluster_status == "Interrupt" {
        cluster.interrupt = Some(InterruptInfo {
            reason: annotations
                .get(annotations::INTERRUPT_REASON)
                .cloned()
                .unwrap_or_default(),
            message: annotations
                .get(annotations::INTERRUPT_MESSAGE)
                .cloned()
                .unwrap_or_default(),
        });
    }
    Ok(cluster)
}

/// The spec and metadata the aggregate implies (§2.3 "Save" step 1): resources, the
/// version (the target in upgrade mode), the `tempRoIds` annotation (created even when the
/// object has no annotations; weakness 11) and `followerNum`. Everything else is kept.
pub fn apply_spec(model: &SharedStorageCluster, cr: &MPDCluster) -> MPDCluster {
    let mut out = cr.clone();
    if !model.resources.is_empty() {
        out.spec.resource_additional = Some(
            model
                .resources
                .iter()
                .map(|(container, r)| {
                    let quantity = |v: &str| (!v.is_empty()).then(|| Quantity(v.to_owned()));
                    (
                        container.clone(),
                        ResourceAdditional {
                            cpu_cores: quantity(&r.cpu),
                            limit_memory: quantity(&r.mem_limit),
                            config: (!r.config.is_empty()).then(|| r.config.clone()),
                        },
                    )
                })
                .collect(),
        );
    }
    if model.mode.upgrade && model.old_image_info.is_some() {
        let previous = out.spec.version_cfg_modify_to.clone();
        out.spec.version_cfg_modify_to = Some(version_cfg(&model.image_info, previous.as_ref()));
    } else {
        out.spec.version_cfg = version_cfg(&model.image_info, Some(&cr.spec.version_cfg));
    }
    let annotations = out.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if model.temp_ro_ids.is_empty() {
        annotations.remove(annotations::TEMP_RO_IDS);
    } else if let Ok(plan) = serde_json::to_string(&model.temp_ro_ids) {
        annotations.insert(annotations::TEMP_RO_IDS.to_owned(), plan);
    }
    out.spec.follower_num = model.ro_replicas;
    out
}

fn instance_status(
    ins: &DbIns,
    ins_type: InsType,
    previous: Option<&InstanceStatus>,
) -> InstanceStatus {
    InstanceStatus {
        physical_ins_id: ins.physical_ins_id.clone(),
        ins_id: ins.ins_id.clone(),
        ins_name: ins.ins_name.clone(),
        pod_name: ins.pod_name.clone(),
        pod_name_space: ins.pod_namespace.clone(),
        node_name: ins.host.clone(),
        host_client_ip: ins.client_ip.clone(),
        net_info: NetInfo {
            working_host_ip: ins.host_ip.clone(),
            working_port: ins.port,
        },
        polar_fs_host_id: ins.fs_id.clone(),
        installed: ins.installed,
        ins_type: ins_type.as_str().to_owned(),
        current_state: previous
            .map(|p| p.current_state.clone())
            .unwrap_or_else(|| engine_record(&ins.current_state)),
        last_state: previous
            .map(|p| p.last_state.clone())
            .unwrap_or_else(|| engine_record(&ins.last_state)),
    }
}

/// How [`apply_status`] treats engine states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineStates {
    /// Copy `currentState`/`lastState` through from the stored entry with the same insId (an
    /// ordinary save must not clobber states the cluster manager reported meanwhile).
    Keep,
    /// Write the model's engine states (state sync, rebuild).
    FromModel,
}

/// The status the aggregate implies (§2.3 "Save" step 2): logic id, state (when the model
/// has one), CM port, every instance entry, and the leader.
///
/// Roles are the cluster manager's to change (weakness 21): when the stored leader differs
/// from the one the model was loaded with ([`SharedStorageCluster::loaded_leader`]) and the
/// model did not change the leader itself, a failover was recorded after the load (by the
/// status monitor or a callback), and the stored leader is kept: it is made the RW of the
/// model written ([`set_rw_id`]), so the save neither reverts the failover nor loses its own
/// changes. A step that changed the leader itself (a switchover it saw the CM complete, the
/// first RW of a new cluster) writes its own.
pub fn apply_status(
    model: &SharedStorageCluster,
    cr: &MPDCluster,
    states: EngineStates,
) -> MPDCluster {
    let mut out = cr.clone();
    let previous = cr.status.clone().unwrap_or_default();
    let rebased = with_recorded_leader(model, &previous.leader_instance_id);
    let model = rebased.as_ref().unwrap_or(model);
    let mut status = previous.clone();
    status.logic_id = model.logic_ins_id.clone();
    if !model.cluster_status.is_empty() {
        status.cluster_status = model.cluster_status.clone();
    }
    if let Some(port) = model.cm_port {
        let cm = status
            .cluster_manager_status
            .get_or_insert_with(ClusterManagerStatus::default);
        cm.working_port = port;
    }
    let keep = |id: &str| match states {
        EngineStates::Keep => previous.db_instance_status.get(id),
        EngineStates::FromModel => None,
    };
    let mut entries = BTreeMap::new();
    if let Some(rw) = &model.rw {
        entries.insert(
            rw.ins_id.clone(),
            instance_status(rw, InsType::Rw, keep(&rw.ins_id)),
        );
    }
    for (id, ro) in &model.ros {
        entries.insert(id.clone(), instance_status(ro, InsType::Ro, keep(id)));
    }
    for (id, temp) in &model.temp_ros {
        entries.insert(id.clone(), instance_status(temp, InsType::TempRo, keep(id)));
    }
    status.db_instance_status = entries;
    set_leader(&mut status, model);
    out.status = Some(status);
    out
}

fn set_leader(status: &mut MPDClusterStatus, model: &SharedStorageCluster) {
    status.leader_instance_id = model.rw_id().to_owned();
    status.leader_instance_host = model
        .rw
        .as_ref()
        .map(|rw| rw.host.clone())
        .unwrap_or_default();
}

/// The model with `stored_leader` as its RW, when the stored leader changed since the model
/// was loaded and the model did not change it; `None` when the model's roles stand.
fn with_recorded_leader(
    model: &SharedStorageCluster,
    stored_leader: &str,
) -> Option<SharedStorageCluster> {
    let own_change = model.rw_id() != model.loaded_leader;
    if stored_leader.is_empty()
        || stored_leader == model.loaded_leader
        || stored_leader == model.rw_id()
        || own_change
    {
        return None;
    }
    let mut rebased = model.clone();
    if set_rw_id(&mut rebased, stored_leader) {
        tracing::info!(
            cluster = %model.qualified_name(),
            loaded = %model.loaded_leader,
            recorded = %stored_leader,
            "keeping the leader recorded since the load"
        );
        Some(rebased)
    } else {
        tracing::warn!(
            cluster = %model.qualified_name(),
            recorded = %stored_leader,
            "the recorded leader is not an instance of the model; saving the model's leader"
        );
        None
    }
}

/// What a cluster-manager report changed in the aggregate, applied to `cr` as a patch of
/// the status (the status monitor and the callbacks write with it): the leader, and for
/// every entry whose insId the model has, its `insType` (from where the model holds it)
/// and its engine states. Entries the model does not know and every other field are left
/// as stored.
pub fn apply_reported(model: &SharedStorageCluster, cr: &MPDCluster) -> MPDCluster {
    let mut out = cr.clone();
    let status = out.status.get_or_insert_with(MPDClusterStatus::default);
    let typed = model
        .rw
        .iter()
        .map(|ins| (ins, InsType::Rw))
        .chain(model.ros.values().map(|ins| (ins, InsType::Ro)))
        .chain(model.temp_ros.values().map(|ins| (ins, InsType::TempRo)));
    for (ins, ins_type) in typed {
        if let Some(entry) = status.db_instance_status.get_mut(&ins.ins_id) {
            entry.ins_type = ins_type.as_str().to_owned();
            entry.current_state = engine_record(&ins.current_state);
            entry.last_state = engine_record(&ins.last_state);
        }
    }
    set_leader(status, model);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MPDClusterSpec, MPDClusterStatus, NetCfg, ShareStore};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cr() -> MPDCluster {
        let mut cr = MPDCluster::new(
            "c1",
            MPDClusterSpec {
                operator_name: "polar-mpd".into(),
                db_cluster_type: "share".into(),
                follower_num: 1,
                class_info: ClassInfo {
                    class_name: "small".into(),
                    ..ClassInfo::default()
                },
                class_info_modify_to: ClassInfo {
                    class_name: "large".into(),
                    ..ClassInfo::default()
                },
                share_store: Some(ShareStore {
                    drive: "pvc".into(),
                    share_pvc_name: "pvc-1".into(),
                    volume_id: "wwid-1".into(),
                    ..ShareStore::default()
                }),
                net_cfg: Some(NetCfg {
                    engine_start_port: 5432,
                }),
                version_cfg: VersionCfg {
                    version_name: "1.1.1".into(),
                    engine_image: Some("engine:1".into()),
                    ..VersionCfg::default()
                },
                ..MPDClusterSpec::default()
            },
        );
        cr.metadata.namespace = Some("ns".into());
        let mut status = MPDClusterStatus {
            cluster_status: "Running".into(),
            logic_id: "1000".into(),
            ..MPDClusterStatus::default()
        };
        for (id, phys, ty, state) in [
            ("1002", "1001", "rw", "RUNNING"),
            ("1004", "1003", "ro", "FAILED"),
        ] {
            status.db_instance_status.insert(
                id.into(),
                InstanceStatus {
                    physical_ins_id: phys.into(),
                    ins_id: id.into(),
                    ins_type: ty.into(),
                    current_state: EngineStateRecord {
                        state: state.into(),
                        ..EngineStateRecord::default()
                    },
                    ..InstanceStatus::default()
                },
            );
        }
        cr.status = Some(status);
        cr
    }

    #[test]
    fn load_sorts_instances_by_type_and_reads_scalars() {
        let model = load(&cr(), LoadMode::default()).unwrap();
        assert_eq!(model.rw_id(), "1002");
        assert_eq!(model.ros.keys().collect::<Vec<_>>(), ["1004"]);
        assert_eq!(model.port, 5432);
        assert_eq!(model.storage.pvc_namespace, "ns");
        assert_eq!(model.class_info.class_name, "small");
        assert_eq!(model.image_info.images[image_key::ENGINE], "engine:1");
    }

    #[test]
    fn modify_class_mode_loads_the_target_class() {
        let mode = LoadMode {
            modify_class: true,
            upgrade: false,
        };
        let model = load(&cr(), mode).unwrap();
        assert_eq!(model.class_info.class_name, "large");
        assert_eq!(model.old_class_info.unwrap().class_name, "small");
    }

    #[test]
    fn weakness_15_missing_share_store_is_an_error_and_pvc_namespace_is_honoured() {
        let mut no_store = cr();
        no_store.spec.share_store = None;
        assert!(matches!(
            load(&no_store, LoadMode::default()),
            Err(DomainError::MissingShareStore { .. })
        ));
        let mut other_ns = cr();
        if let Some(store) = other_ns.spec.share_store.as_mut() {
            store.share_pvc_namespace = Some("storage".into());
        }
        assert_eq!(
            load(&other_ns, LoadMode::default())
                .unwrap()
                .storage
                .pvc_namespace,
            "storage"
        );
    }

    #[test]
    fn weakness_11_save_creates_the_annotation_map_when_missing() {
        let mut bare = cr();
        bare.metadata = ObjectMeta {
            name: Some("c1".into()),
            namespace: Some("ns".into()),
            annotations: None,
            ..ObjectMeta::default()
        };
        let mut model = load(&bare, LoadMode::default()).unwrap();
        model.temp_ro_ids.insert("1001".into(), "1005".into());
        let saved = apply_spec(&model, &bare);
        assert_eq!(
            saved.metadata.annotations.unwrap()[annotations::TEMP_RO_IDS],
            "{\"1001\":\"1005\"}"
        );
    }

    #[test]
    fn save_round_trips_and_keeps_engine_states_of_the_stored_entries() {
        let original = cr();
        let mut model = load(&original, LoadMode::default()).unwrap();
        if let Some(ro) = model.ros.get_mut("1004") {
            ro.current_state.state = "RUNNING".into();
        }
        let saved = apply_status(&model, &apply_spec(&model, &original), EngineStates::Keep);
        let status = saved.status.unwrap();
        assert_eq!(
            status.db_instance_status["1004"].current_state.state,
            "FAILED"
        );
        assert_eq!(status.leader_instance_id, "1002");
        let synced = apply_status(&model, &original, EngineStates::FromModel);
        assert_eq!(
            synced.status.unwrap().db_instance_status["1004"]
                .current_state
                .state,
            "RUNNING"
        );
        let reloaded = load(&saved_spec_round_trip(), LoadMode::default()).unwrap();
        assert_eq!(reloaded.rw_id(), "1002");
    }

    /// `cr()` with its leader recorded: 1002.
    fn led() -> MPDCluster {
        let mut out = cr();
        out.status.as_mut().unwrap().leader_instance_id = "1002".into();
        out
    }

    /// `led()` after the CM failed over to 1004: 1004 leads, 1002 is an RO.
    fn failed_over(cr: &MPDCluster) -> MPDCluster {
        let mut out = cr.clone();
        let status = out.status.as_mut().unwrap();
        status.leader_instance_id = "1004".into();
        status.db_instance_status.get_mut("1004").unwrap().ins_type = "rw".into();
        status.db_instance_status.get_mut("1002").unwrap().ins_type = "ro".into();
        out
    }

    #[test]
    fn weakness_21_a_save_keeps_a_leader_recorded_after_the_load() {
        let loaded = led();
        let mut model = load(&loaded, LoadMode::default()).unwrap();
        assert_eq!(model.loaded_leader, "1002");
        model.ros.get_mut("1004").unwrap().installed = true;
        let stored = failed_over(&loaded);
        let saved = apply_status(&model, &stored, EngineStates::Keep)
            .status
            .unwrap();
        assert_eq!(saved.leader_instance_id, "1004");
        assert_eq!(saved.db_instance_status["1004"].ins_type, "rw");
        assert_eq!(saved.db_instance_status["1002"].ins_type, "ro");
        assert!(
            saved.db_instance_status["1004"].installed,
            "the save's own change is written too"
        );
    }

    #[test]
    fn weakness_21_a_leader_change_of_the_save_itself_is_written() {
        let loaded = led();
        let mut model = load(&loaded, LoadMode::default()).unwrap();
        // The step saw the CM switch over to 1004 and swaps the roles itself.
        assert!(set_rw_id(&mut model, "1004"));
        let saved = apply_status(&model, &loaded, EngineStates::Keep)
            .status
            .unwrap();
        assert_eq!(saved.leader_instance_id, "1004");
        // A model with no leader at load (a new cluster) writes the RW it made.
        let mut fresh = led();
        fresh.status.as_mut().unwrap().leader_instance_id.clear();
        let mut model = load(&fresh, LoadMode::default()).unwrap();
        assert_eq!(model.loaded_leader, "");
        model.rw.as_mut().unwrap().installed = true;
        let saved = apply_status(&model, &fresh, EngineStates::Keep);
        assert_eq!(saved.status.unwrap().leader_instance_id, "1002");
    }

    #[test]
    fn apply_reported_changes_only_roles_states_and_the_leader() {
        let stored = led();
        let mut model = load(&stored, LoadMode::default()).unwrap();
        assert!(set_rw_id(&mut model, "1004"));
        model.ros.get_mut("1002").unwrap().current_state.state = "FAILED".into();
        model.ros.get_mut("1002").unwrap().pod_name = "not written".into();
        let mut with_extra = stored.clone();
        let extra = InstanceStatus {
            ins_id: "1009".into(),
            ins_type: "unknown".into(),
            ..InstanceStatus::default()
        };
        with_extra
            .status
            .as_mut()
            .unwrap()
            .db_instance_status
            .insert("1009".into(), extra.clone());
        let out = apply_reported(&model, &with_extra).status.unwrap();
        assert_eq!(out.leader_instance_id, "1004");
        assert_eq!(out.db_instance_status["1004"].ins_type, "rw");
        let old_rw = &out.db_instance_status["1002"];
        assert_eq!(old_rw.ins_type, "ro");
        assert_eq!(old_rw.current_state.state, "FAILED");
        assert_eq!(old_rw.pod_name, "", "only roles and states are patched");
        assert_eq!(
            out.db_instance_status["1009"], extra,
            "unknown entries stay"
        );
        assert_eq!(out.cluster_status, "Running");
    }

    fn saved_spec_round_trip() -> MPDCluster {
        let original = cr();
        let model = load(&original, LoadMode::default()).unwrap();
        apply_status(&model, &apply_spec(&model, &original), EngineStates::Keep)
    }
}
