//! Every file in `examples/` does what its comment and the GUIDE say: applied with `local` to
//! a freshly created `demo`, it runs its flow to completion and the cluster ends `Running`
//! with the change made and the request consumed.

use std::path::Path;

use shared_storage::crd::MPDCluster;

mod local_binary;
use local_binary::{examples_dir, op, text};

fn apply(state: &Path, file: &str) {
    let path = examples_dir().join(file);
    let out = op(state, &["local", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "local {file}: {}", text(&out));
}

fn get(state: &Path) -> MPDCluster {
    let out = op(state, &["get", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_yaml::from_slice(&out.stdout).expect("get -o yaml prints the resource")
}

/// The flows of `demo`'s runs with their status, in run order.
fn runs(state: &Path) -> Vec<(String, String)> {
    let out = op(state, &["workflows", "demo", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["flow"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn ids_of(cr: &MPDCluster, ty: &str) -> Vec<String> {
    cr.status
        .as_ref()
        .map(|s| {
            s.db_instance_status
                .iter()
                .filter(|(_, e)| e.ins_type == ty)
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn annotation<'a>(cr: &'a MPDCluster, key: &str) -> Option<&'a str> {
    cr.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Creates `demo` from the sample, applies `file`, and checks that exactly `flows` ran after
/// the Create, each to completion, that the cluster is `Running` and that none of the
/// request annotations is left. Returns the cluster before and after.
fn run_example(file: &str, flows: &[&str]) -> (MPDCluster, MPDCluster) {
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), "mpdcluster.yaml");
    let before = get(dir.path());
    apply(dir.path(), file);
    let after = get(dir.path());
    let status = after.status.as_ref().expect("a status");
    assert_eq!(status.cluster_status, "Running", "{file}");
    let mut expected = vec![(
        "CreateSharedStorageCluster".to_owned(),
        "completed".to_owned(),
    )];
    expected.extend(
        flows
            .iter()
            .map(|f| ((*f).to_owned(), "completed".to_owned())),
    );
    assert_eq!(runs(dir.path()), expected, "{file}");
    for key in shared_storage::crd::annotations::CLEANUP_SET {
        assert_eq!(
            annotation(&after, key),
            None,
            "{file} left `{key}` on the cluster"
        );
    }
    (before, after)
}

/// The files this suite runs; a new example must be added here.
const COVERED: [&str; 16] = [
    "mpdcluster.yaml",
    "restart.yaml",
    "restart-ins.yaml",
    "flush-params.yaml",
    "switch-rw.yaml",
    "migrate-ro.yaml",
    "migrate-rw.yaml",
    "modify-class.yaml",
    "upgrade.yaml",
    "rebuild.yaml",
    "rebuild-ro.yaml",
    "add-ro.yaml",
    "remove-ro.yaml",
    "scale-in.yaml",
    "extend-storage.yaml",
    "stuck-add-ro.yaml",
];

#[test]
fn every_file_in_examples_is_run_by_this_suite() {
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = COVERED.iter().map(|s| (*s).to_owned()).collect();
    covered.sort();
    assert_eq!(files, covered);
}

#[test]
fn the_sample_creates_one_rw_and_two_ros() {
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), "mpdcluster.yaml");
    let cr = get(dir.path());
    assert_eq!(ids_of(&cr, "rw"), ["1002"]);
    assert_eq!(ids_of(&cr, "ro"), ["1004", "1006"]);
    assert_eq!(runs(dir.path()).len(), 1);
}

#[test]
fn restart_restarts_every_instance_in_place() {
    let (before, after) = run_example("restart.yaml", &["SharedStorageClusterRestartCluster"]);
    assert_eq!(ids_of(&before, "ro"), ids_of(&after, "ro"));
    assert_eq!(ids_of(&before, "rw"), ids_of(&after, "rw"));
}

#[test]
fn restart_ins_restarts_the_named_instance_in_place() {
    let (before, after) = run_example("restart-ins.yaml", &["SharedStorageClusterRestartIns"]);
    assert_eq!(ids_of(&before, "ro"), ids_of(&after, "ro"));
}

#[test]
fn flush_params_applies_the_parameters_and_consumes_the_request() {
    run_example("flush-params.yaml", &["SharedStorageClusterFlushParams"]);
}

#[test]
fn switch_rw_makes_ro_1004_the_leader() {
    let (_, after) = run_example("switch-rw.yaml", &["SharedStorageClusterSwitchRw"]);
    assert_eq!(after.status.as_ref().unwrap().leader_instance_id, "1004");
    assert_eq!(ids_of(&after, "rw"), ["1004"]);
}

fn node_of(cr: &MPDCluster, ty: &str) -> Vec<String> {
    cr.status
        .as_ref()
        .unwrap()
        .db_instance_status
        .values()
        .filter(|e| e.ins_type == ty)
        .map(|e| e.node_name.clone())
        .collect()
}

#[test]
fn migrate_ro_moves_an_ro_to_node_4() {
    let (_, after) = run_example("migrate-ro.yaml", &["SharedStorageClusterMigrateRo"]);
    assert!(node_of(&after, "ro").contains(&"node-4".to_owned()));
    assert_eq!(ids_of(&after, "ro").len(), 2);
}

#[test]
fn migrate_rw_moves_the_rw_to_node_4() {
    let (_, after) = run_example("migrate-rw.yaml", &["SharedStorageClusterMigrateRw"]);
    assert_eq!(node_of(&after, "rw"), ["node-4"]);
    assert_eq!(
        after.status.as_ref().unwrap().leader_instance_host,
        "node-4"
    );
}

#[test]
fn modify_class_moves_every_instance_to_the_new_class() {
    let (before, after) = run_example("modify-class.yaml", &["SharedStorageClusterModifyClass"]);
    assert_eq!(after.spec.class_info.class_name, "polar.o.x4.large");
    assert_ne!(ids_of(&before, "rw"), ids_of(&after, "rw"));
}

#[test]
fn upgrade_moves_the_cluster_to_version_1_1_2() {
    let (_, after) = run_example("upgrade.yaml", &["SharedStorageClusterUpgradeMinorVersion"]);
    assert_eq!(after.spec.version_cfg.version_name, "1.1.2");
}

#[test]
fn rebuild_rebuilds_the_cluster_and_consumes_force_rebuild() {
    let (_, after) = run_example("rebuild.yaml", &["SharedStorageClusterRebuild"]);
    assert_eq!(ids_of(&after, "rw").len(), 1);
    assert_eq!(ids_of(&after, "ro").len(), 2);
}

#[test]
fn rebuild_ro_replaces_the_failed_ro_with_a_new_incarnation() {
    let (before, after) = run_example("rebuild-ro.yaml", &["SharedStorageClusterRebuildRo"]);
    let ros = ids_of(&after, "ro");
    assert_eq!(ros.len(), 2);
    assert!(
        !ros.contains(&"1004".to_owned()),
        "1004 was replaced: {ros:?}"
    );
    assert!(ros.contains(&"1006".to_owned()));
    assert_eq!(ids_of(&before, "rw"), ids_of(&after, "rw"));
    let status = after.status.as_ref().unwrap();
    assert!(status
        .db_instance_status
        .values()
        .all(|e| !e.current_state.state.eq_ignore_ascii_case("failed")));
    assert_eq!(
        annotation(&after, shared_storage::local::sim_requests::FAIL_INSTANCE),
        None
    );
}

#[test]
fn a_simulated_failure_of_an_unknown_instance_is_bad_input_naming_the_annotation() {
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), "mpdcluster.yaml");
    let yaml = std::fs::read_to_string(examples_dir().join("rebuild-ro.yaml"))
        .unwrap()
        .replace("fail-instance: \"1004\"", "fail-instance: \"4242\"");
    let file = dir.path().join("fail-4242.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = op(dir.path(), &["local", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fail-4242.yaml")
            && stderr.contains("sim.mpd.polardb.aliyun.com/fail-instance")
            && stderr.contains("4242")
            && stderr.contains("1002, 1004, 1006"),
        "{stderr}"
    );
    assert_eq!(runs(dir.path()).len(), 1, "no flow started");
}

#[test]
fn add_ro_adds_a_third_ro() {
    let (_, after) = run_example("add-ro.yaml", &["SharedStorageClusterAddRo"]);
    assert_eq!(ids_of(&after, "ro").len(), 3);
}

#[test]
fn remove_ro_removes_the_named_ro() {
    let (_, after) = run_example("remove-ro.yaml", &["SharedStorageClusterRemoveRo"]);
    assert_eq!(ids_of(&after, "ro"), ["1004"]);
}

#[test]
fn scale_in_removes_the_newest_ro() {
    let (_, after) = run_example("scale-in.yaml", &["SharedStorageClusterRemoveRo"]);
    assert_eq!(ids_of(&after, "ro"), ["1004"]);
}

#[test]
fn extend_storage_grows_the_file_system_and_consumes_the_request() {
    run_example(
        "extend-storage.yaml",
        &["ExtendStorageSharedStorageCluster"],
    );
}

#[test]
fn stuck_add_ro_interrupts_and_abandon_then_restart_ends_running_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), "mpdcluster.yaml");
    let path = examples_dir().join("stuck-add-ro.yaml");
    let out = op(dir.path(), &["local", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("default/demo: simulator: port 5432 on node-4 is taken")
            && printed.contains("default/demo: Interrupt: NO_AVAILABLE_NODE")
            && printed.contains("engine port 5432"),
        "{}",
        text(&out)
    );
    let stuck = get(dir.path());
    assert_eq!(stuck.status.as_ref().unwrap().cluster_status, "Interrupt");
    let out = op(dir.path(), &["abandon", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    apply(dir.path(), "restart.yaml");
    let after = get(dir.path());
    let status = after.status.as_ref().unwrap();
    assert_eq!(status.cluster_status, "Running");
    assert!(ids_of(&after, "tempro").is_empty(), "no tempro entry left");
    assert_eq!(annotation(&after, "tempRoIds"), None, "no plan left");
    assert_eq!(ids_of(&after, "ro").len(), 2);
    let flows: Vec<(String, String)> = runs(dir.path());
    assert_eq!(
        flows,
        [
            (
                "CreateSharedStorageCluster".to_owned(),
                "completed".to_owned()
            ),
            (
                "SharedStorageClusterAddRo".to_owned(),
                "abandoned".to_owned()
            ),
            (
                "SharedStorageClusterRestartCluster".to_owned(),
                "completed".to_owned()
            ),
        ]
    );
}

#[test]
fn an_occupied_port_on_an_unknown_node_is_bad_input_naming_the_annotation() {
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), "mpdcluster.yaml");
    let yaml = std::fs::read_to_string(examples_dir().join("stuck-add-ro.yaml"))
        .unwrap()
        .replace("node-4:5432", "node-9:5432");
    let file = dir.path().join("node-9.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = op(dir.path(), &["local", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node-9.yaml")
            && stderr.contains("sim.mpd.polardb.aliyun.com/occupy-port")
            && stderr.contains("no node `node-9`"),
        "{stderr}"
    );
}
