//! With the simulators failing 20% of calls (seeded), every flow still ends `Running`
//! through retries, and no completed step runs twice.

mod support;

use shared_storage::crd::{annotations, ClassInfo, VersionCfg};
use shared_storage::ports::sim::SimConfig;
use support::Harness;

fn faulty(seed: u64) -> SimConfig {
    SimConfig {
        fail_rate: 0.2,
        seed,
        ready_after_polls: 1,
        ..SimConfig::default()
    }
}

type Trigger = fn(&Harness);

const OPERATIONS: [(&str, Trigger); 13] = [
    ("SharedStorageClusterModifyClass", |h| {
        h.edit(|cr| {
            cr.spec.class_info_modify_to = ClassInfo {
                class_name: "polar.o.x4.large".into(),
                ..ClassInfo::default()
            }
        })
    }),
    ("SharedStorageClusterUpgradeMinorVersion", |h| {
        h.edit(|cr| {
            cr.spec.version_cfg_modify_to = Some(VersionCfg {
                version_name: "1.1.2".into(),
                ..VersionCfg::default()
            })
        })
    }),
    ("SharedStorageClusterRestartCluster", |h| {
        h.annotate(annotations::RESTART_CLUSTER, "T")
    }),
    ("SharedStorageClusterRestartIns", |h| {
        let ro = h.of_type("ro")[0].ins_id.clone();
        h.annotate(annotations::RESTART_INS, &ro)
    }),
    ("SharedStorageClusterFlushParams", |h| {
        h.annotate(annotations::FLUSH_PARAMS, "T")
    }),
    ("SharedStorageClusterSwitchRw", |h| {
        let ro = h.of_type("ro")[0].ins_id.clone();
        h.annotate(annotations::SWITCH_RW, &ro)
    }),
    ("SharedStorageClusterMigrateRo", |h| {
        let ro = h.of_type("ro")[0].ins_id.clone();
        h.annotate(annotations::MIGRATE, &format!("{ro}|node-4"))
    }),
    ("SharedStorageClusterMigrateRw", |h| {
        let rw = h.of_type("rw")[0].ins_id.clone();
        h.annotate(annotations::MIGRATE, &format!("{rw}|node-4"))
    }),
    ("SharedStorageClusterRebuildRo", |h| {
        let ro = h.of_type("ro")[0].clone();
        h.sim.fail_instance(&h.cluster_ref(), &ro.pod_name);
        h.edit(|cr| {
            if let Some(e) = cr
                .status
                .as_mut()
                .and_then(|s| s.db_instance_status.get_mut(&ro.ins_id))
            {
                e.current_state.state = "FAILED".into();
            }
        })
    }),
    ("SharedStorageClusterAddRo", |h| {
        h.edit(|cr| cr.spec.follower_num = 3)
    }),
    ("SharedStorageClusterRemoveRo", |h| {
        let ro = h.of_type("ro")[0].ins_id.clone();
        h.annotate(annotations::REMOVE_INS, &ro)
    }),
    ("ExtendStorageSharedStorageCluster", |h| {
        h.annotate(annotations::EXTEND_STORAGE, "T")
    }),
    ("SharedStorageClusterRebuild", |h| {
        h.annotate(annotations::FORCE_REBUILD, "T")
    }),
];

async fn run(index: usize) {
    let (flow, trigger) = OPERATIONS[index];
    let mut h = Harness::created(faulty(7 + index as u64), 2).await;
    trigger(&h);
    assert_eq!(h.settle().await, "Running", "{flow}: {:?}", h.errors);
    assert_eq!(h.flows_run().last().map(String::as_str), Some(flow));
    h.assert_no_step_completed_twice();
    let faults = h
        .sim
        .call_log()
        .iter()
        .filter(|c| matches!(c.outcome, shared_storage::ports::sim::SimOutcome::Fault))
        .count();
    assert!(faults > 0, "{flow}: the simulators injected faults");
}

#[tokio::test]
async fn create_under_faults_ends_running_with_each_step_completed_once() {
    let h = Harness::created(faulty(7), 2).await;
    h.assert_no_step_completed_twice();
    assert_eq!(h.of_type("ro").len(), 2);
}

#[tokio::test]
async fn modify_class_under_faults() {
    run(0).await;
}
#[tokio::test]
async fn upgrade_under_faults() {
    run(1).await;
}
#[tokio::test]
async fn restart_cluster_under_faults() {
    run(2).await;
}
#[tokio::test]
async fn restart_ins_under_faults() {
    run(3).await;
}
#[tokio::test]
async fn flush_params_under_faults() {
    run(4).await;
}
#[tokio::test]
async fn switch_rw_under_faults() {
    run(5).await;
}
#[tokio::test]
async fn migrate_ro_under_faults() {
    run(6).await;
}
#[tokio::test]
async fn migrate_rw_under_faults() {
    run(7).await;
}
#[tokio::test]
async fn rebuild_ro_under_faults() {
    run(8).await;
}
#[tokio::test]
async fn add_ro_under_faults() {
    run(9).await;
}
#[tokio::test]
async fn remove_ro_under_faults() {
    run(10).await;
}
#[tokio::test]
async fn extend_storage_under_faults() {
    run(11).await;
}
#[tokio::test]
async fn rebuild_under_faults() {
    run(12).await;
}
