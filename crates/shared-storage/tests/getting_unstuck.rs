//! Getting a cluster out of a stuck state with the binary in local mode: declarative scale-in
//! (lowering `followerNum`), `abandon NAME` for a run that can never finish, and the cancel
//! mark that goes with the run it cancelled.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use shared_storage::crd::{InstanceStatus, MPDCluster};

mod local_binary;
use local_binary::{bin, example, op, stdout, text};
use shared_storage::local::sim_requests::OCCUPY_PORT;

fn local(state: &Path, file: &Path) -> Output {
    op(state, &["local", file.to_str().unwrap()])
}

fn get(state: &Path) -> MPDCluster {
    let out = op(state, &["get", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_yaml::from_slice(&out.stdout).expect("get prints the resource as YAML")
}

fn runs(state: &Path) -> Vec<serde_json::Value> {
    let out = op(state, &["workflows", "demo", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("workflows --output json")
}

fn annotation(cr: &MPDCluster, key: &str) -> Option<String> {
    cr.metadata.annotations.as_ref()?.get(key).cloned()
}

fn of_type(cr: &MPDCluster, ty: &str) -> Vec<InstanceStatus> {
    let status = cr.status.clone().unwrap_or_default();
    status
        .db_instance_status
        .into_values()
        .filter(|i| i.ins_type == ty)
        .collect()
}

fn ro_ids(cr: &MPDCluster) -> Vec<String> {
    let mut ids: Vec<String> = of_type(cr, "ro").into_iter().map(|i| i.ins_id).collect();
    ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
    ids
}

/// `examples/<name>` with `followerNum: <n>` and `extra` annotations, written into `dir`.
fn variant(dir: &Path, name: &str, follower_num: usize, extra: &[(&str, &str)]) -> PathBuf {
    let mut cr: MPDCluster =
        serde_yaml::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
    cr.spec.follower_num = i32::try_from(follower_num).unwrap();
    let map = cr.metadata.annotations.get_or_insert_with(Default::default);
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    let path = dir.join(format!("{follower_num}-{}-{name}", extra.len()));
    std::fs::write(&path, serde_yaml::to_string(&cr).unwrap()).unwrap();
    path
}

fn created(state: &Path) {
    let out = local(state, &example("mpdcluster.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn lowering_follower_num_from_2_to_1_removes_the_newest_ro_and_ends_running_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    created(&state);
    let before = ro_ids(&get(&state));
    assert_eq!(before.len(), 2, "{before:?}");
    let out = local(&state, &variant(dir.path(), "mpdcluster.yaml", 1, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cr = get(&state);
    assert_eq!(cr.status.as_ref().unwrap().cluster_status, "Running");
    assert_eq!(ro_ids(&cr), [before[0].clone()], "the newest RO went");
    assert_eq!(cr.spec.follower_num, 1);
    let flows: Vec<String> = runs(&state)
        .iter()
        .map(|r| format!("{} {}", r["flow"], r["status"]))
        .collect();
    assert_eq!(
        flows.last().unwrap(),
        "\"SharedStorageClusterRemoveRo\" \"completed\"",
        "{flows:?}"
    );
}

#[test]
fn remove_ins_still_removes_the_named_ro_even_when_it_is_not_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    created(&state);
    let before = ro_ids(&get(&state));
    let oldest = before[0].clone();
    let file = variant(dir.path(), "mpdcluster.yaml", 2, &[("removeIns", &oldest)]);
    let out = local(&state, &file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cr = get(&state);
    assert_eq!(ro_ids(&cr), [before[1].clone()], "the named RO went");
    assert_eq!(cr.spec.follower_num, 1, "a named removal lowers the count");
    assert_eq!(
        annotation(&cr, "removeIns"),
        None,
        "the request was consumed"
    );
}

#[test]
fn a_stuck_add_ro_is_abandoned_and_the_next_restart_ends_running_without_temp_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    created(&state);

    // Something that is no MPDCluster holds the engine port on the one free node (the
    // simulator's local-only request): the admission (which knows the MPDClusters) lets a
    // third RO in, and AddRo interrupts with NO_AVAILABLE_NODE when it places the pod.
    let out = local(
        &state,
        &variant(
            dir.path(),
            "mpdcluster.yaml",
            3,
            &[(OCCUPY_PORT, "node-4:5432")],
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains("NO_AVAILABLE_NODE"), "{}", text(&out));
    assert!(
        stdout(&out).contains("abandon demo"),
        "the way out is named: {}",
        text(&out)
    );
    let fits = ro_ids(&get(&state)).len();

    // The finding: lowering the count and recovering resumes the stuck run, which
    // interrupts again and leaves its temp RO and plan; a restart only resumes it again.
    let lowered = variant(dir.path(), "mpdcluster.yaml", fits, &[]);
    assert_eq!(local(&state, &lowered).status.code(), Some(1));
    let out = op(&state, &["recover", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = local(&state, &lowered);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let cr = get(&state);
    assert_eq!(of_type(&cr, "tempro").len(), 1, "the temp RO is left");
    assert!(annotation(&cr, "tempRoIds").is_some(), "the plan is left");
    let restart = variant(dir.path(), "restart.yaml", fits, &[]);
    assert_eq!(local(&state, &restart).status.code(), Some(1));
    assert_eq!(op(&state, &["recover", "demo"]).status.code(), Some(0));
    let out = local(&state, &restart);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("SharedStorageClusterAddRo"),
        "{}",
        text(&out)
    );
    assert!(
        !runs(&state)
            .iter()
            .any(|r| r["flow"] == "SharedStorageClusterRestartCluster"),
        "the restart never started"
    );

    // The way out: abandon, then the restart runs.
    let out = op(&state, &["abandon", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains("SharedStorageClusterAddRo"),
        "{}",
        text(&out)
    );
    let out = local(&state, &restart);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cr = get(&state);
    assert_eq!(cr.status.as_ref().unwrap().cluster_status, "Running");
    assert!(of_type(&cr, "tempro").is_empty(), "no tempro entry left");
    assert_eq!(annotation(&cr, "tempRoIds"), None, "no plan left");
    assert_eq!(annotation(&cr, "interrupt.abandon"), None);
    assert_eq!(ro_ids(&cr).len(), fits);
    let all = runs(&state);
    let add_ro = all
        .iter()
        .rfind(|r| r["flow"] == "SharedStorageClusterAddRo")
        .unwrap();
    assert_eq!(add_ro["status"], "abandoned", "{add_ro:#}");
    let reason = add_ro["error"].as_str().unwrap();
    assert!(
        reason.starts_with("ABANDONED") && reason.contains("NO_AVAILABLE_NODE"),
        "{reason}"
    );
    let restarted = all
        .iter()
        .find(|r| r["flow"] == "SharedStorageClusterRestartCluster")
        .expect("a RestartCluster run");
    assert_eq!(restarted["status"], "completed", "{restarted:#}");
    let out = op(&state, &["history", "demo", "--output", "json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "WorkFlowAbandoned"
                && e["flow_name"] == "SharedStorageClusterAddRo"),
        "the history records the abandon"
    );
}

#[test]
fn abandon_is_refused_with_exit_1_and_a_reason_when_no_run_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    created(&state);
    let out = op(&state, &["abandon", "demo"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "is Running with no uncompleted or interrupted run: there is nothing to abandon"
        ),
        "{stderr}"
    );
    assert_eq!(
        annotation(&get(&state), "interrupt.abandon"),
        None,
        "nothing written"
    );
    let out = op(&state, &["abandon", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn a_cancelled_run_takes_its_mark_with_it_and_the_next_request_runs_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    created(&state);
    // Stopped (killed) while a RestartCluster step runs: the run is left uncompleted.
    let mut child = Command::new(bin())
        .args([
            "local",
            example("restart.yaml").to_str().unwrap(),
            "--sim-latency",
            "40ms",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = false;
    for line in lines {
        let line = line.unwrap();
        if line.contains("SharedStorageClusterRestartCluster") && line.contains(" running ") {
            started = true;
            break;
        }
    }
    assert!(started, "a RestartCluster step started");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let out = op(&state, &["cancel", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        annotation(&get(&state), "cancelled").as_deref(),
        Some("true")
    );
    let out = local(&state, &example("restart.yaml"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains("CANCELLED"), "{}", text(&out));
    assert_eq!(
        annotation(&get(&state), "cancelled"),
        None,
        "the mark ended with the run it cancelled"
    );

    // A new request starts fresh and is not stopped.
    let out = op(&state, &["abandon", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = local(&state, &example("restart.yaml"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let restarts: Vec<String> = runs(&state)
        .iter()
        .filter(|r| r["flow"] == "SharedStorageClusterRestartCluster")
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(restarts, ["abandoned", "completed"]);
}

#[test]
fn abandon_of_a_creation_is_refused_naming_delete_which_then_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A fresh demo asking for a third RO while something outside holds the port on node-4:
    // the creation itself interrupts.
    let yaml = std::fs::read_to_string(example("stuck-add-ro.yaml")).unwrap();
    let file = dir.path().join("create-stuck.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = local(&state, &file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("default/demo: Interrupt: NO_AVAILABLE_NODE"),
        "{}",
        text(&out)
    );
    assert!(
        !stdout(&out).contains("abandon demo") && stdout(&out).contains("delete demo"),
        "a creation is not offered to be abandoned: {}",
        text(&out)
    );
    let out = op(&state, &["abandon", "demo"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a creation cannot be abandoned") && stderr.contains("`delete` it"),
        "{stderr}"
    );
    assert_eq!(
        annotation(&get(&state), "interrupt.abandon"),
        None,
        "nothing written"
    );
    let out = op(&state, &["delete", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(op(&state, &["get", "demo"]).status.code(), Some(1));
}
