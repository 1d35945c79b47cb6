//! From `Running`, each of the 13 other operations ends `Running` with the expected
//! topology (on the simulators, no faults).

mod support;

use shared_storage::crd::{annotations, ClassInfo, VersionCfg};
use shared_storage::ports::sim::SimConfig;
use support::Harness;

async fn running() -> Harness {
    Harness::created(SimConfig::default(), 2).await
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[tokio::test]
async fn modify_class_gives_every_instance_the_new_class_and_a_new_rw_incarnation() {
    let mut h = running().await;
    let old_leader = h.leader();
    let old_ids = sorted(h.instances().into_keys().collect());
    h.edit(|cr| {
        cr.spec.class_info_modify_to = ClassInfo {
            class_name: "polar.o.x4.large".into(),
            ..ClassInfo::default()
        }
    });
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(
        h.flows_run().last().map(String::as_str),
        Some("SharedStorageClusterModifyClass")
    );
    let cr = h.cr();
    assert_eq!(cr.spec.class_info.class_name, "polar.o.x4.large");
    assert_eq!(cr.spec.class_info_modify_to.class_name, "");
    assert_ne!(h.leader(), old_leader, "the RW changed incarnation");
    assert_eq!(h.of_type("ro").len(), 2);
    assert!(h.of_type("tempro").is_empty());
    let new_ids = sorted(h.instances().into_keys().collect::<Vec<_>>());
    assert!(
        new_ids.iter().all(|id| !old_ids.contains(id)),
        "every instance replaced: {old_ids:?} -> {new_ids:?}"
    );
    for pod in h.sim.pods(&h.cluster_ref()) {
        let pfsd = pod
            .resources
            .get("pfsd")
            .map(|r| r.config.clone())
            .unwrap_or_default();
        assert!(
            pfsd.starts_with("-w 4"),
            "pod {} has the large class: {pfsd}",
            pod.name
        );
    }
    assert_eq!(h.sim.pods(&h.cluster_ref()).len(), 3);
    assert_eq!(h.annotation(annotations::TEMP_RO_IDS), None);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn upgrade_minor_version_moves_every_instance_and_the_cm_to_the_new_images() {
    let mut h = running().await;
    let old_leader = h.leader();
    h.edit(|cr| {
        cr.spec.version_cfg_modify_to = Some(VersionCfg {
            version_name: "1.1.2".into(),
            ..VersionCfg::default()
        })
    });
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let cr = h.cr();
    assert_eq!(cr.spec.version_cfg.version_name, "1.1.2");
    assert!(cr.spec.version_cfg_modify_to.is_none());
    assert_ne!(h.leader(), old_leader);
    for pod in h.sim.pods(&h.cluster_ref()) {
        assert!(
            pod.images.values().all(|i| i.ends_with(":1.1.2")),
            "{:?}",
            pod.images
        );
    }
    let cm = h.sim.cm(&h.cluster_ref()).unwrap();
    assert!(cm.image.ends_with(":1.1.2"), "{}", cm.image);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn restart_cluster_restarts_every_engine_and_clears_the_request() {
    let mut h = running().await;
    let starts_before: Vec<u32> = h
        .sim
        .pods(&h.cluster_ref())
        .iter()
        .map(|p| p.engine.starts)
        .collect();
    h.annotate(annotations::RESTART_CLUSTER, "T");
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let starts_after: Vec<u32> = h
        .sim
        .pods(&h.cluster_ref())
        .iter()
        .map(|p| p.engine.starts)
        .collect();
    assert!(
        starts_after
            .iter()
            .zip(&starts_before)
            .all(|(a, b)| a == &(b + 1)),
        "{starts_before:?} -> {starts_after:?}"
    );
    assert_eq!(h.annotation(annotations::RESTART_CLUSTER), None);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn restart_ins_restarts_only_that_instance() {
    let mut h = running().await;
    let ro = h.of_type("ro")[0].clone();
    let before: Vec<(String, u32)> = h
        .sim
        .pods(&h.cluster_ref())
        .iter()
        .map(|p| (p.name.clone(), p.engine.starts))
        .collect();
    h.annotate(annotations::RESTART_INS, &ro.ins_id);
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    for (name, starts) in before {
        let now = h
            .sim
            .pods(&h.cluster_ref())
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
            .engine
            .starts;
        let expected = if name == ro.pod_name {
            starts + 1
        } else {
            starts
        };
        assert_eq!(now, expected, "{name}");
    }
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn flush_params_pushes_changed_user_parameters_to_every_engine() {
    let mut h = running().await;
    let cluster = h.cluster_ref();
    let mut params = h.sim.params(&cluster);
    let user = params.user.as_mut().expect("user params");
    let entry = user.params.entry("work_mem".into()).or_default();
    entry.name = "work_mem".into();
    entry.value = "64MB".into();
    entry.update_time = Some(chrono::Utc::now());
    h.sim.set_params(&cluster, params);
    h.annotate(annotations::FLUSH_PARAMS, "true");
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    for pod in h.sim.pods(&cluster) {
        assert_eq!(
            pod.engine.params.get("work_mem").map(String::as_str),
            Some("64MB"),
            "{}",
            pod.name
        );
    }
    let running = h.sim.params(&cluster).running.unwrap();
    assert_eq!(running.params["work_mem"].value, "64MB");
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn switch_rw_makes_the_target_the_leader() {
    let mut h = running().await;
    let target = h.of_type("ro")[0].ins_id.clone();
    h.annotate(annotations::SWITCH_RW, &target);
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.leader(), target);
    let cm = h.sim.cm(&h.cluster_ref()).unwrap();
    let rw = cm
        .instances
        .iter()
        .find(|i| i.role == shared_storage::ports::CmRole::Rw)
        .map(|i| i.pod_name.clone());
    assert_eq!(rw.as_deref(), Some(h.of_type("rw")[0].pod_name.as_str()));
    assert_eq!(h.of_type("ro").len(), 2);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn migrate_ro_moves_that_slot_to_the_target_node() {
    let mut h = running().await;
    let ro = h.of_type("ro")[0].clone();
    h.annotate(annotations::MIGRATE, &format!("{}|node-4", ro.ins_id));
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let moved: Vec<_> = h
        .of_type("ro")
        .into_iter()
        .filter(|i| i.physical_ins_id == ro.physical_ins_id)
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].node_name, "node-4");
    assert_ne!(moved[0].ins_id, ro.ins_id);
    assert_eq!(h.instances().len(), 3);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn migrate_rw_moves_the_rw_to_the_target_node() {
    let mut h = running().await;
    let rw = h.of_type("rw")[0].clone();
    h.annotate(annotations::MIGRATE, &format!("{}|node-4", rw.ins_id));
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let new_rw = h.of_type("rw")[0].clone();
    assert_eq!(new_rw.physical_ins_id, rw.physical_ins_id);
    assert_ne!(new_rw.ins_id, rw.ins_id);
    assert_eq!(new_rw.node_name, "node-4");
    assert_eq!(h.instances().len(), 3);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn rebuild_ro_replaces_the_failed_ro_in_its_slot() {
    let mut h = running().await;
    let ro = h.of_type("ro")[0].clone();
    // The status monitor would record the engine failure the cluster manager reports.
    h.sim.fail_instance(&h.cluster_ref(), &ro.pod_name);
    h.edit(|cr| {
        if let Some(entry) = cr
            .status
            .as_mut()
            .and_then(|s| s.db_instance_status.get_mut(&ro.ins_id))
        {
            entry.current_state.state = "FAILED".into();
        }
    });
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    let slot: Vec<_> = h
        .of_type("ro")
        .into_iter()
        .filter(|i| i.physical_ins_id == ro.physical_ins_id)
        .collect();
    assert_eq!(slot.len(), 1);
    assert_ne!(slot[0].ins_id, ro.ins_id);
    assert!(!slot[0].current_state.state.eq_ignore_ascii_case("failed"));
    assert_eq!(h.instances().len(), 3);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn add_ro_adds_one_ro_per_run_until_follower_num() {
    let mut h = running().await;
    h.edit(|cr| cr.spec.follower_num = 3);
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.of_type("ro").len(), 3);
    assert_eq!(h.sim.cm(&h.cluster_ref()).unwrap().instances.len(), 4);
    assert_eq!(h.cr().spec.follower_num, 3);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn remove_ro_removes_one_ro_and_follower_num_follows() {
    let mut h = running().await;
    let ro = h.of_type("ro")[0].clone();
    h.annotate(annotations::REMOVE_INS, &ro.ins_id);
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(h.of_type("ro").len(), 1);
    assert!(!h.instances().contains_key(&ro.ins_id));
    assert_eq!(h.cr().spec.follower_num, 1);
    assert!(h.sim.pod(support::NS, &ro.pod_name).is_none());
    assert_eq!(h.annotation(annotations::REMOVE_INS), None);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn extend_storage_grows_pfs_on_every_instance() {
    let mut h = running().await;
    h.annotate(annotations::EXTEND_STORAGE, "1");
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert!(h
        .sim
        .pods(&h.cluster_ref())
        .iter()
        .all(|p| p.engine.grown > 0));
    assert_eq!(h.annotation(annotations::EXTEND_STORAGE), None);
    h.assert_no_step_completed_twice();
}

#[tokio::test]
async fn rebuild_recreates_the_cm_and_every_pod_keeping_the_ids() {
    let mut h = running().await;
    let ids = sorted(h.instances().into_keys().collect::<Vec<_>>());
    let logic = h.cr().status.unwrap().logic_id;
    h.annotate(annotations::FORCE_REBUILD, "true");
    assert_eq!(h.settle().await, "Running", "{:?}", h.errors);
    assert_eq!(
        h.flows_run().last().map(String::as_str),
        Some("SharedStorageClusterRebuild")
    );
    assert_eq!(sorted(h.instances().into_keys().collect::<Vec<_>>()), ids);
    assert_eq!(h.cr().status.unwrap().logic_id, logic);
    assert!(h.instances().values().all(|i| i.installed));
    assert_eq!(h.annotation(annotations::FORCE_REBUILD), None);
    h.assert_no_step_completed_twice();
}
