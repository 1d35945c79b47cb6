//! The `shared-storage-operator` binary as a person uses it: `local` on the embedded
//! backend, crash and resume, change files, bad input, faults.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shared_storage::crd::MPDCluster;

mod local_binary;
use local_binary::{bin, example, op, text};

fn local(state: &Path, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["local", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    op(state, &args)
}

fn get(state: &Path, name: &str) -> MPDCluster {
    let out = op(state, &["get", name]);
    assert!(out.status.success(), "{}", text(&out));
    serde_yaml::from_slice(&out.stdout).expect("get prints the resource as YAML")
}

fn history(state: &Path, name: &str) -> Vec<serde_json::Value> {
    let out = op(state, &["history", name, "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("history --output json")
}

/// Every file under `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

const CREATE_STEPS: [&str; 6] = [
    "InitMeta",
    "PrepareStorage",
    "CreateClusterManager",
    "CreateRwPod",
    "CreateRoPods",
    "UpdateRunningStatus",
];

#[test]
fn local_runs_the_sample_to_running_and_prints_every_create_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = local(dir.path(), &example("mpdcluster.yaml"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for step in CREATE_STEPS {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("CreateSharedStorageCluster")
                    && l.contains(step)
                    && l.contains("completed")),
            "no completed line for {step}:\n{stdout}"
        );
    }
    assert!(stdout.contains("default/demo: Running"), "{stdout}");
    let cr = get(dir.path(), "demo");
    assert_eq!(cr.status.unwrap().cluster_status, "Running");
}

#[test]
fn killed_mid_flow_the_next_run_completes_each_step_exactly_once_and_shows_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args([
            "local",
            example("mpdcluster.yaml").to_str().unwrap(),
            "--sim-latency",
            "40ms",
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Killed while the third step runs (its `running` line is printed when it starts; the
    // simulated calls take 40 ms), so the next process finds it started: a resume.
    let mut completed = 0;
    let mut started_after = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 && fields[2] != "-" && fields[3] == "completed" {
            completed += 1;
        } else if completed == 2 && fields.len() > 3 && fields[3] == "running" {
            started_after = true;
            break;
        }
    }
    assert_eq!(completed, 2, "two steps completed before the kill");
    assert!(started_after, "the third step started before the kill");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let out = local(dir.path(), &example("mpdcluster.yaml"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = history(dir.path(), "demo");
    for step in CREATE_STEPS {
        let done = events
            .iter()
            .filter(|e| {
                e["flow_name"] == "CreateSharedStorageCluster"
                    && e["step_name"] == step
                    && e["type"] == "StepCompleted"
            })
            .count();
        assert_eq!(done, 1, "{step} completed {done} times: {events:#?}");
    }

    // The kill is a resume of the run, shown apart from retries (there were no failures).
    let runs = op(dir.path(), &["workflows", "demo", "--output", "json"]);
    assert!(runs.status.success(), "{}", text(&runs));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let create = runs
        .iter()
        .find(|r| r["flow"] == "CreateSharedStorageCluster")
        .expect("the create run");
    assert_eq!(create["resumes"], 1, "{create:#}");
    assert_eq!(create["run_retries"], 0, "{create:#}");
    assert_eq!(create["step_retries"], 0, "{create:#}");
    let table = op(dir.path(), &["workflows", "demo"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let column = header
        .iter()
        .position(|h| *h == "RESUMES")
        .expect("a RESUMES column");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.contains("CreateSharedStorageCluster"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[column], "1", "{table}");
}

#[test]
fn killed_in_the_last_save_twenty_times_one_rerun_completes_the_run_with_every_transition_once() {
    let sample = example("mpdcluster.yaml");
    for trial in 0..20u32 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin())
            .args(["local", sample.to_str().unwrap(), "--state-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // The last step's `completed` line is printed after its save; the run's own
        // `completed` save comes next. Kill there, a little later each trial.
        let mut completed = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 3 && fields[2] != "-" && fields[3] == "completed" {
                completed += 1;
                if completed == CREATE_STEPS.len() {
                    std::thread::sleep(std::time::Duration::from_micros(u64::from(trial) * 150));
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();

        let out = local(dir.path(), &sample, &[]);
        assert_eq!(out.status.code(), Some(0), "trial {trial}: {}", text(&out));
        let runs = op(dir.path(), &["workflows", "demo", "--output", "json"]);
        let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
        assert_eq!(runs.len(), 1, "trial {trial}: one run: {runs:#?}");
        assert_eq!(runs[0]["status"], "completed", "trial {trial}: {runs:#?}");
        let events = history(dir.path(), "demo");
        let count = |kind: &str, step: &str| {
            events
                .iter()
                .filter(|e| e["type"] == kind && e["step_name"] == step)
                .count()
        };
        assert_eq!(count("WorkFlowStart", ""), 1, "trial {trial}: {events:#?}");
        assert_eq!(
            count("WorkFlowCompleted", ""),
            1,
            "trial {trial}: {events:#?}"
        );
        for step in CREATE_STEPS {
            assert_eq!(
                count("StepInited", step),
                1,
                "trial {trial} {step}: {events:#?}"
            );
            assert_eq!(
                count("StepCompleted", step),
                1,
                "trial {trial} {step}: {events:#?}"
            );
        }
    }
}

fn apply_change(state: &Path, file: &Path) -> MPDCluster {
    let out = local(state, file, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        file.display(),
        text(&out)
    );
    get(state, "demo")
}

/// A fresh state dir with the sample cluster Running, then `change` applied.
fn changed(change: &Path) -> (tempfile::TempDir, MPDCluster, MPDCluster) {
    let dir = tempfile::tempdir().unwrap();
    let base = apply_change(dir.path(), &example("mpdcluster.yaml"));
    let after = apply_change(dir.path(), change);
    (dir, base, after)
}

fn count(cr: &MPDCluster, ty: &str) -> usize {
    cr.status
        .as_ref()
        .unwrap()
        .db_instance_status
        .values()
        .filter(|i| i.ins_type == ty)
        .count()
}

#[test]
fn modify_class_file_gives_the_new_class_and_a_new_rw() {
    let (_dir, base, after) = changed(&example("modify-class.yaml"));
    assert_eq!(after.spec.class_info.class_name, "polar.o.x4.large");
    assert_eq!(after.spec.class_info_modify_to.class_name, "");
    assert_ne!(
        after.status.as_ref().unwrap().leader_instance_id,
        base.status.as_ref().unwrap().leader_instance_id
    );
    assert_eq!(count(&after, "ro"), 2);
}

#[test]
fn add_ro_file_adds_a_third_ro() {
    let (_dir, _, after) = changed(&example("add-ro.yaml"));
    assert_eq!(count(&after, "ro"), 3);
    assert_eq!(after.spec.follower_num, 3);
}

#[test]
fn restart_file_restarts_the_cluster_and_consumes_the_request() {
    let (dir, _, after) = changed(&example("restart.yaml"));
    let annotations = after.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !annotations.contains_key("restartCluster"),
        "the request was consumed"
    );
    assert!(history(dir.path(), "demo")
        .iter()
        .any(|e| e["flow_name"] == "SharedStorageClusterRestartCluster"
            && e["type"] == "WorkFlowCompleted"));
}

#[test]
fn upgrade_file_moves_the_cluster_to_the_new_version() {
    let (_dir, base, after) = changed(&example("upgrade.yaml"));
    assert_eq!(after.spec.version_cfg.version_name, "1.1.2");
    assert!(after.spec.version_cfg_modify_to.is_none());
    assert_ne!(
        after.status.as_ref().unwrap().leader_instance_id,
        base.status.as_ref().unwrap().leader_instance_id
    );
}

/// The insId of an RO of `cr`.
fn an_ro(cr: &MPDCluster) -> String {
    cr.status
        .as_ref()
        .unwrap()
        .db_instance_status
        .values()
        .find(|i| i.ins_type == "ro")
        .unwrap()
        .ins_id
        .clone()
}

/// `examples/<template>` with the annotation `switchRw: target`, written into `dir`.
fn switching_to(dir: &Path, template: &str, target: &str) -> PathBuf {
    let text = std::fs::read_to_string(example(template)).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["metadata"]["annotations"]["switchRw"] = serde_yaml::Value::String(target.to_owned());
    let file = dir.join(format!("switch-{template}"));
    std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
    file
}

#[test]
fn switch_rw_file_makes_the_named_ro_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let base = apply_change(dir.path(), &example("mpdcluster.yaml"));
    // switch-rw.yaml names its target in the annotation; point it at an RO of this run.
    let target = an_ro(&base);
    let file = switching_to(dir.path(), "switch-rw.yaml", &target);
    let switched = apply_change(dir.path(), &file);
    assert_eq!(switched.status.unwrap().leader_instance_id, target);
}

#[test]
fn a_restart_and_a_switchover_applied_together_both_run_and_both_requests_are_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let base = apply_change(dir.path(), &example("mpdcluster.yaml"));
    let target = an_ro(&base);
    let file = switching_to(dir.path(), "restart.yaml", &target);
    let after = apply_change(dir.path(), &file);
    assert_eq!(
        after.status.unwrap().leader_instance_id,
        target,
        "the switchover ran too"
    );
    let annotations = after.metadata.annotations.unwrap_or_default();
    for key in ["restartCluster", "switchRw"] {
        assert!(
            !annotations.contains_key(key),
            "{key} left: {annotations:?}"
        );
    }
    let runs = op(dir.path(), &["workflows", "demo", "--output", "json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let flows: Vec<&str> = runs.iter().filter_map(|r| r["flow"].as_str()).collect();
    assert_eq!(
        flows,
        [
            "CreateSharedStorageCluster",
            "SharedStorageClusterRestartCluster",
            "SharedStorageClusterSwitchRw"
        ],
        "in the order of the translations"
    );
}

#[test]
fn killed_after_modify_class_cleaned_up_rerunning_the_same_file_starts_no_new_run() {
    let dir = tempfile::tempdir().unwrap();
    apply_change(dir.path(), &example("mpdcluster.yaml"));
    let change = example("modify-class.yaml");
    let mut child = Command::new(bin())
        .args(["local", change.to_str().unwrap(), "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut cleaned = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 && fields[2] == "CleanModifyClassTempMeta" && fields[3] == "completed" {
            cleaned = true;
            break;
        }
    }
    assert!(cleaned, "the cleanup step completed before the kill");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let out = local(dir.path(), &change, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let runs = op(dir.path(), &["workflows", "demo", "--output", "json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let modify: Vec<&serde_json::Value> = runs
        .iter()
        .filter(|r| r["flow"] == "SharedStorageClusterModifyClass")
        .collect();
    assert_eq!(modify.len(), 1, "one ModifyClass run: {runs:#?}");
    assert_eq!(modify[0]["status"], "completed");
    let cr = get(dir.path(), "demo");
    assert_eq!(cr.spec.class_info.class_name, "polar.o.x4.large");
    assert_eq!(cr.spec.class_info_modify_to.class_name, "");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_input_exits_2_naming_file_and_field_and_leaves_the_state_dir_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = local(&state, &example("mpdcluster.yaml"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = snapshot(&state);
    let sample = std::fs::read_to_string(example("mpdcluster.yaml")).unwrap();
    let cases = [
        (
            "malformed.yaml",
            "apiVersion: mpd.polardb.aliyun.com/v1\nkind: MPDCluster\nmetadata: {name: [x\n"
                .to_owned(),
            "malformed.yaml",
        ),
        (
            "unknown.yaml",
            sample.replace("followerNum:", "followerNumber: 1\n  followerNum:"),
            "followerNumber",
        ),
        (
            "wrong-type.yaml",
            sample.replace("followerNum: 2", "followerNum: two"),
            "followerNum",
        ),
        (
            "missing.yaml",
            sample.replace("  operatorName: polar-mpd\n", ""),
            "operatorName",
        ),
    ];
    for (name, body, field) in cases {
        let file = write(dir.path(), name, &body);
        let out = local(&state, &file, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(name),
            "{name}: the message names the file: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "{name}: the message names {field}: {stderr}"
        );
        assert_eq!(snapshot(&state), before, "{name}: the state dir changed");
    }
}

#[test]
fn a_second_process_on_the_same_state_dir_exits_2_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let sample = example("mpdcluster.yaml");
    let mut first = Command::new(bin())
        .args(["local", sample.to_str().unwrap(), "--watch", "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = first.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        if line.starts_with("watching") {
            break;
        }
        line.clear();
    }
    let before = snapshot(dir.path());
    let out = local(dir.path(), &sample, &[]);
    let after = snapshot(dir.path());
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(".lock") || stderr.contains("in use"),
        "{stderr}"
    );
    assert_eq!(before, after, "the second process changed nothing");
}

#[test]
fn twenty_percent_faults_still_end_running_with_retries_visible() {
    let dir = tempfile::tempdir().unwrap();
    let out = local(
        dir.path(),
        &example("mpdcluster.yaml"),
        &["--sim-fail-rate", "0.2", "--sim-seed", "7"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let runs = op(dir.path(), &["workflows", "demo", "--output", "json"]);
    assert!(runs.status.success(), "{}", text(&runs));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let retries: u64 = runs
        .iter()
        .map(|r| r["run_retries"].as_u64().unwrap_or(0) + r["step_retries"].as_u64().unwrap_or(0))
        .sum();
    assert!(retries > 0, "retries are visible: {runs:#?}");
    let table = op(dir.path(), &["workflows", "demo"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("CreateSharedStorageCluster"));
}

#[test]
fn an_interrupt_exits_1_printing_the_reason_and_the_recover_command() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = local(&state, &example("mpdcluster.yaml"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A class the catalog knows (so the request is admitted) whose parameters are gone:
    // the ModifyClass flow finds out at run time and interrupts. (Five instances on the
    // simulator's four nodes, the old way to get here, are now refused up front.)
    let sim_file = state.join("sim.json");
    let mut sim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sim_file).unwrap()).unwrap();
    sim["class_params"]
        .as_object_mut()
        .unwrap()
        .remove("polar.o.x4.large");
    std::fs::write(&sim_file, serde_json::to_vec(&sim).unwrap()).unwrap();
    let out = local(&state, &example("modify-class.yaml"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("default/demo: Interrupt: UNKNOWN_CLASS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shared-storage-operator recover demo --namespace default"),
        "{stdout}"
    );
}

#[test]
fn cancel_stops_the_flow_and_recover_resumes_it_to_running() {
    let dir = tempfile::tempdir().unwrap();
    let sample = example("mpdcluster.yaml");
    let mut child = Command::new(bin())
        .args([
            "local",
            sample.to_str().unwrap(),
            "--sim-latency",
            "40ms",
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("completed") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let out = op(dir.path(), &["cancel", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = local(dir.path(), &sample, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Interrupt: CANCELLED"),
        "{}",
        text(&out)
    );

    let out = op(dir.path(), &["recover", "demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = local(dir.path(), &sample, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cr = get(dir.path(), "demo");
    assert_eq!(cr.status.unwrap().cluster_status, "Running");
    assert!(!cr
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key("cancelled"));
}

#[test]
fn recover_of_a_running_cluster_and_cancel_with_no_flow_running_exit_1_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sample = example("mpdcluster.yaml");
    let out = local(dir.path(), &sample, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (verb, reason) in [
        (
            "recover",
            "is Running, not Interrupt: there is nothing to recover",
        ),
        (
            "cancel",
            "is Running with no flow running: there is nothing to cancel",
        ),
    ] {
        let out = op(dir.path(), &[verb, "demo"]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("mpdcluster default/demo {reason}")),
            "{verb}: {stderr}"
        );
    }
    let annotations = get(dir.path(), "demo")
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(!annotations.contains_key("cancelled"), "{annotations:?}");
    assert!(
        !annotations.contains_key("interrupt.recover"),
        "{annotations:?}"
    );
}

#[test]
fn several_resources_reconcile_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(example("mpdcluster.yaml")).unwrap();
    let second = sample
        .replace("name: demo", "name: demo2")
        .replace("pvc-demo", "pvc-demo2")
        .replace("wwid-demo", "wwid-demo2")
        // One engine port per node: the second cluster needs its own port to share the nodes.
        .replace("engineStartPort: 5432", "engineStartPort: 5433");
    let file = write(dir.path(), "two.yaml", &format!("{sample}\n---\n{second}"));
    let state = dir.path().join("state");
    let out = local(&state, &file, &["--workers", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("default/demo: Running") && stdout.contains("default/demo2: Running"),
        "{stdout}"
    );
}

#[test]
fn watch_reapplies_a_changed_file_and_runs_the_matching_flow() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(example("mpdcluster.yaml")).unwrap();
    let file = write(dir.path(), "watched.yaml", &sample);
    let state = dir.path().join("state");
    let mut child = Command::new(bin())
        .args(["local", file.to_str().unwrap(), "--watch", "--state-dir"])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("watching") {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&file, sample.replace("followerNum: 2", "followerNum: 3")).unwrap();
    let mut added = false;
    for line in lines {
        let line = line.unwrap();
        if line.contains("SharedStorageClusterAddRo")
            && line.contains(" - ")
            && line.contains("completed")
        {
            added = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(added, "AddRo ran after the file changed");
    let cr = get(&state, "demo");
    let ros = cr
        .status
        .unwrap()
        .db_instance_status
        .values()
        .filter(|i| i.ins_type == "ro")
        .count();
    assert_eq!(ros, 3);
}

#[test]
fn a_missing_input_file_is_bad_input_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let missing = dir.path().join("no-such-cluster.yaml");
    let out = local(&state, &missing, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-cluster.yaml"), "{stderr}");
    assert!(stderr.contains("cannot read the input file"), "{stderr}");
}

#[test]
fn history_into_a_closed_pipe_ends_quietly_and_workflows_of_an_unknown_cluster_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = local(dir.path(), &example("mpdcluster.yaml"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    for command in [["history", "demo"], ["workflows", "demo"]] {
        // The reader goes away before the output is written, as `| head -0` would.
        let mut child = Command::new(bin())
            .args(command)
            .arg("--state-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{command:?}: {stderr}");
    }
    let out = op(dir.path(), &["workflows", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuch"),
        "{}",
        text(&out)
    );
}

#[test]
fn status_shows_the_state_the_leader_and_every_instance_of_a_local_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let out = local(dir.path(), &example("mpdcluster.yaml"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let status = get(dir.path(), "demo").status.unwrap();

    let out = op(dir.path(), &["status", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains("State:    Running (Ready=True"), "{table}");
    assert!(
        table.contains(&format!(
            "Leader:   {} on {}",
            status.leader_instance_id, status.leader_instance_host
        )),
        "{table}"
    );
    assert!(
        table.contains("last: CreateSharedStorageCluster (#1) completed, 6/6 steps"),
        "{table}"
    );
    for ins in status.db_instance_status.values() {
        let row = table
            .lines()
            .find(|l| l.starts_with(&ins.ins_id))
            .unwrap_or_else(|| panic!("no row for {}: {table}", ins.ins_id));
        let fields: Vec<&str> = row.split_whitespace().collect();
        let role = if ins.ins_id == status.leader_instance_id {
            "RW*"
        } else {
            "RO"
        };
        assert_eq!(
            &fields[1..4],
            [role, &ins.pod_name, &ins.node_name],
            "{row}"
        );
    }

    let out = op(dir.path(), &["status", "demo", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status -o json");
    assert_eq!(view["leader"], status.leader_instance_id.as_str());
    assert_eq!(view["instances"].as_array().unwrap().len(), 3);

    let out = op(dir.path(), &["status", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "error: mpdcluster default/nosuch not found");
}

#[test]
fn inspection_with_a_kubeconfig_reads_the_cluster_and_a_missing_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = local(dir.path(), &example("mpdcluster.yaml"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    // The resource is in the state dir, but `--kubeconfig` asks the cluster.
    let out = op(
        dir.path(),
        &[
            "workflows",
            "demo",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot read the kubeconfig /nonexistent/kubeconfig: "),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

/// Starts `local` with 200 ms simulated calls on the sample, waits for the first completed
/// step, sends `signal` (`INT`, `TERM`) and returns the exit code, how long the drain took
/// and the output after the signal.
fn signal_mid_flow(state: &Path, watch: bool, signal: &str) -> (Option<i32>, Duration, String) {
    let sample = example("mpdcluster.yaml");
    let mut args = vec!["local", sample.to_str().unwrap(), "--sim-latency", "200ms"];
    if watch {
        args.push("--watch");
    }
    let mut child = Command::new(bin())
        .args(&args)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 && fields[2] != "-" && fields[3] == "completed" {
            break;
        }
    }
    let started = Instant::now();
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let limit = Duration::from_secs(15);
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    while child.try_wait().unwrap().is_none() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    child.kill().ok();
    let status = child.wait().unwrap();
    (status.code(), took, rest.join().unwrap().join("\n"))
}

/// After a drained stop: no step is left half-run, and the next `local` ends `Running`
/// with every step of the create flow completed once and no resume (nothing was cut short).
fn assert_drained_then_resumed(state: &Path) {
    let out = op(state, &["status", "demo", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flow = &status["running_flow"];
    assert_eq!(flow["flow"], "CreateSharedStorageCluster", "{status:#}");
    assert_ne!(
        flow["step_status"], "running",
        "a step left half-run: {status:#}"
    );
    // Every step started reached a saved transition (completed, waiting or failed).
    let events = history(state, "demo");
    for (i, event) in events.iter().enumerate() {
        if event["type"] == "StepInited" {
            assert!(
                events[i + 1..]
                    .iter()
                    .any(|later| later["step_name"] == event["step_name"]
                        && ["StepCompleted", "StepWaiting", "StepError"]
                            .contains(&later["type"].as_str().unwrap_or_default())),
                "{} left half-run: {events:#?}",
                event["step_name"]
            );
        }
    }

    let out = local(state, &example("mpdcluster.yaml"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = history(state, "demo");
    for step in CREATE_STEPS {
        let done = events
            .iter()
            .filter(|e| e["step_name"] == step && e["type"] == "StepCompleted")
            .count();
        assert_eq!(done, 1, "{step} completed {done} times: {events:#?}");
    }
    let runs = op(state, &["workflows", "demo", "--output", "json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let create = runs
        .iter()
        .find(|r| r["flow"] == "CreateSharedStorageCluster")
        .expect("the create run");
    assert_eq!(create["status"], "completed", "{create:#}");
    assert_eq!(
        create["resumes"], 0,
        "a drained stop is no resume: {create:#}"
    );
    assert_eq!(create["step_retries"], 0, "{create:#}");
}

#[test]
fn ctrl_c_in_local_watch_while_a_flow_runs_saves_the_step_exits_130_and_the_next_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, took, rest) = signal_mid_flow(dir.path(), true, "INT");
    assert_eq!(code, Some(130), "after {took:?}: {rest}");
    assert!(rest.contains("stopped by SIGINT"), "{rest}");
    assert_drained_then_resumed(dir.path());
}

#[test]
fn sigterm_in_local_while_a_flow_runs_saves_the_step_exits_143_and_the_next_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (code, took, rest) = signal_mid_flow(dir.path(), false, "TERM");
    assert_eq!(code, Some(143), "after {took:?}: {rest}");
    assert!(rest.contains("stopped by SIGTERM"), "{rest}");
    assert_drained_then_resumed(dir.path());
}
