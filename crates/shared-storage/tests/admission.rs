//! Weakness 27 through the binary in local mode: a request that cannot succeed is refused
//! before a flow starts (exit 1, the reason printed, no new run, `Ready=False` with the
//! reason on the resource, a `RequestRefused` history line), a satisfied one is consumed,
//! and a permanent failure found only at run time interrupts on its first attempt.

use std::path::{Path, PathBuf};
use std::process::Output;

use shared_storage::crd::MPDCluster;

mod local_binary;
use local_binary::{example, op, text};

fn local(state: &Path, file: &Path) -> Output {
    op(state, &["local", file.to_str().unwrap()])
}

fn get(state: &Path, name: &str) -> MPDCluster {
    let out = op(state, &["get", name]);
    assert!(out.status.success(), "{}", text(&out));
    serde_yaml::from_slice(&out.stdout).expect("get prints the resource as YAML")
}

fn runs(state: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = op(state, &["workflows", name, "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("workflows --output json")
}

fn history(state: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = op(state, &["history", name, "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("history --output json")
}

/// A copy of example `base` with each `(from, to)` replaced, written under `dir`.
fn variant(dir: &Path, base: &str, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut yaml = std::fs::read_to_string(example(base)).unwrap();
    for (from, to) in edits {
        assert!(yaml.contains(from), "{base} has no `{from}`");
        yaml = yaml.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A state directory with the sample `demo` Running.
fn running_demo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = local(&state, &example("mpdcluster.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (dir, state)
}

/// The `Ready` condition as (status, reason, message).
fn ready(cr: &MPDCluster) -> (String, String, String) {
    let c = cr
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("a Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Applies `file` to `name` and checks everything a refusal shows: exit 1, the reason
/// printed once, no new run, `Ready=False` with the reason, one history line; returns the
/// message.
fn assert_refused(state: &Path, file: &Path, name: &str, reason: &str) -> String {
    let exists = state.exists() && op(state, &["get", name]).status.success();
    let before = if exists { runs(state, name).len() } else { 0 };
    let out = local(state, file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed = format!("default/{name}: Refused: {reason}: ");
    assert_eq!(
        stdout.matches(&printed).count(),
        1,
        "printed once: {}",
        text(&out)
    );
    assert_eq!(runs(state, name).len(), before, "no new run");
    let cr = get(state, name);
    let (status, got, message) = ready(&cr);
    assert_eq!((status.as_str(), got.as_str()), ("False", reason));
    let refused: Vec<_> = history(state, name)
        .into_iter()
        .filter(|e| e["type"] == "RequestRefused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{reason}: ")),
        "{refused:#?}"
    );
    // The request stays on the object, and running again reports it but records nothing
    // new.
    let again = local(state, file);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let refused_again = history(state, name)
        .into_iter()
        .filter(|e| e["type"] == "RequestRefused")
        .count();
    assert_eq!(refused_again, 1, "not recorded again while nothing changed");
    message
}

#[test]
fn an_unknown_class_is_refused_without_starting_a_flow_and_a_fix_clears_it() {
    let (dir, state) = running_demo();
    let bogus = variant(
        dir.path(),
        "modify-class.yaml",
        "bogus-class.yaml",
        &[("className: polar.o.x4.large", "className: polar.o.bogus")],
    );
    let message = assert_refused(&state, &bogus, "demo", "UNKNOWN_CLASS");
    assert!(
        message.contains("spec.classInfoModifyTo.className") && message.contains("polar.o.bogus"),
        "{message}"
    );
    let cr = get(&state, "demo");
    assert_eq!(cr.spec.class_info_modify_to.class_name, "polar.o.bogus");
    assert_eq!(cr.status.as_ref().unwrap().cluster_status, "Running");
    // Withdrawn: the sample again, Ready is the state's again.
    let out = local(&state, &example("mpdcluster.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ready(&get(&state, "demo")).0, "True");
}

#[test]
fn an_unknown_version_is_refused_without_starting_a_flow() {
    let (dir, state) = running_demo();
    let bogus = variant(
        dir.path(),
        "upgrade.yaml",
        "bogus-version.yaml",
        &[("versionName: \"1.1.2\"", "versionName: \"9.9.9\"")],
    );
    let message = assert_refused(&state, &bogus, "demo", "UNKNOWN_VERSION");
    assert!(message.contains("9.9.9"), "{message}");
}

#[test]
fn a_negative_follower_num_is_refused_before_the_cluster_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bogus = variant(
        dir.path(),
        "mpdcluster.yaml",
        "negative.yaml",
        &[("followerNum: 2", "followerNum: -1")],
    );
    let message = assert_refused(&state, &bogus, "demo", "INVALID_FOLLOWER_NUM");
    assert!(message.contains("spec.followerNum is -1"), "{message}");
    assert!(runs(&state, "demo").is_empty(), "no run at all");
    assert_eq!(
        get(&state, "demo").status.unwrap().cluster_status,
        "",
        "never created"
    );
}

#[test]
fn a_negative_follower_num_on_a_running_cluster_is_refused_and_keeps_every_ro() {
    let (dir, state) = running_demo();
    let bogus = variant(
        dir.path(),
        "mpdcluster.yaml",
        "negative.yaml",
        &[("followerNum: 2", "followerNum: -1")],
    );
    let message = assert_refused(&state, &bogus, "demo", "INVALID_FOLLOWER_NUM");
    assert!(message.contains("spec.followerNum is -1"), "{message}");
    let cr = get(&state, "demo");
    assert_eq!(cr.status.as_ref().unwrap().cluster_status, "Running");
    let ros = cr
        .status
        .as_ref()
        .unwrap()
        .db_instance_status
        .values()
        .filter(|e| e.ins_type == "ro")
        .count();
    assert_eq!(ros, 2, "no RO was removed");
}

#[test]
fn a_second_cluster_on_a_volume_another_cluster_uses_is_refused() {
    let (dir, state) = running_demo();
    let thief = variant(
        dir.path(),
        "mpdcluster.yaml",
        "thief.yaml",
        &[("name: demo", "name: thief"), ("5432", "6432")],
    );
    let message = assert_refused(&state, &thief, "thief", "VOLUME_IN_USE");
    assert!(message.contains("default/demo"), "{message}");
}

#[test]
fn a_switchover_to_an_instance_that_is_not_an_ro_is_refused() {
    let (dir, state) = running_demo();
    let leader_host = get(&state, "demo").status.unwrap().leader_instance_host;
    assert!(!leader_host.is_empty());
    let bogus = variant(
        dir.path(),
        "switch-rw.yaml",
        "switch-nowhere.yaml",
        &[("switchRw: \"1004\"", "switchRw: \"4242\"")],
    );
    let message = assert_refused(&state, &bogus, "demo", "UNKNOWN_INSTANCE");
    assert!(message.contains("switchRw `4242`"), "{message}");
}

#[test]
fn more_ros_than_nodes_with_the_engine_port_free_are_refused() {
    let (dir, state) = running_demo();
    // The simulator has four nodes; demo holds three.
    let bigger = variant(
        dir.path(),
        "mpdcluster.yaml",
        "five-ros.yaml",
        &[("followerNum: 2", "followerNum: 5")],
    );
    let message = assert_refused(&state, &bigger, "demo", "NOT_ENOUGH_NODES");
    assert!(
        message.contains("engine port 5432") && message.contains("only 1 of the 4"),
        "{message}"
    );
}

#[test]
fn a_second_cluster_on_the_same_engine_port_without_enough_free_nodes_is_refused() {
    let (dir, state) = running_demo();
    let twin = variant(
        dir.path(),
        "mpdcluster.yaml",
        "twin.yaml",
        &[
            ("name: demo", "name: twin"),
            ("pvc-demo", "pvc-twin"),
            ("wwid-demo", "wwid-twin"),
        ],
    );
    let message = assert_refused(&state, &twin, "twin", "NOT_ENOUGH_NODES");
    assert!(
        message.contains("3 new instance(s)") && message.contains("engine port 5432"),
        "{message}"
    );
    // On another port it fits.
    let moved = variant(
        dir.path(),
        "mpdcluster.yaml",
        "twin-6432.yaml",
        &[
            ("name: demo", "name: twin"),
            ("pvc-demo", "pvc-twin"),
            ("wwid-demo", "wwid-twin"),
            ("5432", "6432"),
        ],
    );
    let out = local(&state, &moved);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ready(&get(&state, "twin")).0, "True");
}

#[test]
fn a_switchover_to_the_current_leader_is_consumed_without_a_run() {
    let (dir, state) = running_demo();
    let leader = get(&state, "demo").status.unwrap().leader_instance_id;
    let to_leader = variant(
        dir.path(),
        "switch-rw.yaml",
        "switch-to-leader.yaml",
        &[("switchRw: \"1004\"", &format!("switchRw: \"{leader}\""))],
    );
    let before = runs(&state, "demo").len();
    let out = local(&state, &to_leader);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(runs(&state, "demo").len(), before, "no run");
    let cr = get(&state, "demo");
    assert!(
        !cr.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("switchRw"),
        "the request was consumed"
    );
    assert_eq!(cr.status.unwrap().leader_instance_id, leader);
}

/// Edits the persisted simulation of a state directory (between two `local` runs).
fn edit_sim(state: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = state.join("sim.json");
    let mut sim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut sim);
    std::fs::write(&path, serde_json::to_vec(&sim).unwrap()).unwrap();
}

/// The last run's interrupting step as (reason prefix of its error, its retries).
fn interrupted_step(state: &Path, name: &str) -> (String, u64) {
    let events = history(state, name);
    let last = events
        .iter()
        .rev()
        .find(|e| e["type"] == "WorkFlowInterrupt")
        .expect("an interrupt");
    let failed = events
        .iter()
        .rev()
        .find(|e| e["type"] == "StepError" && e["workflow_id"] == last["workflow_id"])
        .expect("the failed step");
    (
        last["error"].as_str().unwrap().to_owned(),
        failed["retry"].as_u64().unwrap(),
    )
}

#[test]
fn a_class_whose_parameters_are_missing_at_run_time_interrupts_on_its_first_attempt() {
    let (_dir, state) = running_demo();
    // The catalog knows polar.o.x4.large (admission passes), its parameters are gone.
    edit_sim(&state, |sim| {
        let params = sim["class_params"].as_object_mut().unwrap();
        assert!(params.remove("polar.o.x4.large").is_some());
    });
    let out = local(&state, &example("modify-class.yaml"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("default/demo: Interrupt: UNKNOWN_CLASS"),
        "{}",
        text(&out)
    );
    let (error, retries) = interrupted_step(&state, "demo");
    assert!(error.starts_with("UNKNOWN_CLASS"), "{error}");
    assert_eq!(retries, 0, "no retry burnt on a permanent failure");
}

#[test]
fn a_volume_the_storage_manager_gives_another_owner_interrupts_on_its_first_attempt() {
    let (dir, state) = running_demo();
    // The storage manager holds pvc-other for a cluster this store does not know (so the
    // admission cannot see it): only PrepareStorage finds out.
    edit_sim(&state, |sim| {
        let storage = sim["storage"].as_array_mut().unwrap();
        let mut other = storage[0].clone();
        other[0][1] = "pvc-other".into();
        other[1]["state"]["owner"] = "alpha".into();
        other[1]["state"]["formatted_for"] = "alpha".into();
        storage.push(other);
    });
    let other = variant(
        dir.path(),
        "mpdcluster.yaml",
        "other.yaml",
        &[
            ("name: demo", "name: other"),
            ("pvc-demo", "pvc-other"),
            ("wwid-demo", "wwid-other"),
            ("5432", "6432"),
        ],
    );
    let out = local(&state, &other);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("default/other: Interrupt: STORAGE_REFUSED") && stdout.contains("alpha"),
        "{}",
        text(&out)
    );
    let (_, retries) = interrupted_step(&state, "other");
    assert_eq!(retries, 0, "no retry burnt on a permanent failure");
    let run = runs(&state, "other").pop().unwrap();
    assert_eq!(run["step_retries"], 0, "{run:#?}");
}
