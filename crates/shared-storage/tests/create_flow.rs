//! The Create flow on the simulators.

mod support;

use shared_storage::ports::sim::SimConfig;
use support::Harness;

#[tokio::test]
async fn create_cluster_with_two_ros_ends_running() {
    let h = Harness::created(SimConfig::default(), 2).await;
    assert_eq!(h.of_type("rw").len(), 1);
    assert_eq!(h.of_type("ro").len(), 2);
    assert!(h.of_type("tempro").is_empty());
    let rw = &h.of_type("rw")[0];
    assert_eq!(h.leader(), rw.ins_id);
    assert!(h
        .instances()
        .values()
        .all(|i| i.installed && !i.node_name.is_empty()));
    let cm = h.sim.cm(&h.cluster_ref()).expect("cm deployed");
    assert_eq!(cm.instances.len(), 3);
    assert!(cm.instances.iter().all(|i| i.phase == "RUNNING"));
    assert_eq!(h.sim.pods(&h.cluster_ref()).len(), 3);
    assert_eq!(h.flows_run(), ["CreateSharedStorageCluster"]);
    h.assert_no_step_completed_twice();
}
