//! What `shared-storage-operator` prints, as a kubectl/argo user reads it: the `get`
//! listing and its formats, `delete`, the reason and duration columns of `workflows`, the
//! SEQ, millisecond times, wait reasons and filters of `history`, one error line and exit 1
//! for an unknown name, no panic into a closed pipe, and `local`'s header, folded waits,
//! resume line and single failure lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use shared_storage::crd::MPDCluster;

mod local_binary;
use local_binary::{bin, example, op, stdout, text};

fn local(state: &Path, files: &[&Path], extra: &[&str]) -> Output {
    let mut args: Vec<&str> = vec!["local"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend_from_slice(extra);
    op(state, &args)
}

/// `local` on the sample in a fresh state directory, which must end `Running`.
fn sample(dir: &Path) -> PathBuf {
    let state = dir.join("state");
    let out = local(&state, &[&example("mpdcluster.yaml")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    state
}

/// Creates the sample in `state` and returns `examples/stuck-add-ro.yaml`: the sample with
/// `followerNum: 3` and the local-only request that something that is no MPDCluster takes
/// engine port 5432 on node-4, the one node the sample leaves free. The admission lets the
/// third RO in (it sees only MPDClusters), and AddRo interrupts `NO_AVAILABLE_NODE` when it
/// places the pod.
fn too_big(state: &Path) -> PathBuf {
    let out = local(state, &[&example("mpdcluster.yaml")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    example("stuck-add-ro.yaml")
}

/// A second cluster `second` that fits beside the sample: its own volume, engine port 5433.
fn second(dir: &Path) -> PathBuf {
    let sample = std::fs::read_to_string(example("mpdcluster.yaml")).unwrap();
    let file = dir.join("second.yaml");
    std::fs::write(
        &file,
        sample
            .replace("name: demo", "name: second")
            .replace("pvc-demo", "pvc-second")
            .replace("wwid-demo", "wwid-second")
            .replace("5432", "5433")
            .replace("followerNum: 2", "followerNum: 1"),
    )
    .unwrap();
    file
}

/// The header's columns and the rows split at the columns' starts (so a last column with
/// spaces stays whole).
fn table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header_line = lines.next().unwrap_or("");
    let mut starts = Vec::new();
    let mut header = Vec::new();
    let mut previous = ' ';
    for (i, c) in header_line.char_indices() {
        if c != ' ' && previous == ' ' {
            starts.push(i);
        }
        previous = c;
    }
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(header_line.len());
        header.push(header_line[start..end].trim().to_owned());
    }
    // A right-aligned column starts before its header: split each row on whitespace for
    // every column but the last, which is the rest of the line.
    let rows = lines
        .map(|l| {
            let mut fields = Vec::new();
            let mut rest = l;
            for _ in 0..header.len().saturating_sub(1) {
                let trimmed = rest.trim_start();
                let end = trimmed.find(' ').unwrap_or(trimmed.len());
                fields.push(trimmed[..end].to_owned());
                rest = &trimmed[end..];
            }
            fields.push(rest.trim().to_owned());
            fields
        })
        .collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn workflows_of_an_interrupted_run_shows_its_reason_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = local(&state, &[&too_big(&state)], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let out = op(&state, &["workflows", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    let (header, rows) = table(&printed);
    assert_eq!(
        header,
        [
            "SEQ",
            "FLOW",
            "STATUS",
            "STEPS",
            "DURATION",
            "RUN-RETRIES",
            "STEP-RETRIES",
            "RESUMES",
            "START",
            "STEP",
            "STEP-AGE",
            "REASON"
        ],
        "{printed}"
    );
    let row = &rows[1];
    assert_eq!(row[column(&header, "FLOW")], "SharedStorageClusterAddRo");
    assert_eq!(row[column(&header, "STATUS")], "failedAndCompleted");
    assert_eq!(
        row[column(&header, "STEP")],
        "EnsureNewRoUpToDate",
        "{printed}"
    );
    assert!(
        row[column(&header, "REASON")].starts_with("NO_AVAILABLE_NODE: "),
        "{printed}"
    );
    let duration = &row[column(&header, "DURATION")];
    assert!(
        duration.ends_with('s') && duration != "-",
        "a duration: {printed}"
    );
    assert_eq!(
        row[column(&header, "STEP-AGE")],
        "-",
        "a finished run has no step age: {printed}"
    );

    let out = op(&state, &["workflows", "demo", "-o", "json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(runs[1]["reason"]
        .as_str()
        .unwrap()
        .starts_with("NO_AVAILABLE_NODE: "));
    assert!(runs[1]["duration_ms"].as_u64().unwrap() > 0, "{runs:#?}");
    assert_eq!(runs[1]["step"], "EnsureNewRoUpToDate");
}

#[test]
fn history_rows_carry_the_run_seq_millisecond_times_and_the_wait_reason() {
    let dir = tempfile::tempdir().unwrap();
    let state = sample(dir.path());
    let out = op(&state, &["history", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    let (header, rows) = table(&printed);
    assert_eq!(
        header,
        ["SEQ", "TIME", "FLOW", "STEP", "TYPE", "STEP#", "RETRY", "REASON"],
        "{printed}"
    );
    let (seq, time, kind, reason) = (
        column(&header, "SEQ"),
        column(&header, "TIME"),
        column(&header, "TYPE"),
        column(&header, "REASON"),
    );
    assert!(rows.len() > 10, "{printed}");
    let mut waits = 0;
    for row in &rows {
        assert_eq!(row[seq], "1", "the SEQ of workflows: {printed}");
        let t = &row[time];
        // 2026-12-03T14:46:02.153Z
        assert!(
            t.len() == 24 && t.as_bytes()[19] == b'.' && t.ends_with('Z'),
            "milliseconds: {t}"
        );
        if row[kind] == "StepWaiting" {
            waits += 1;
            assert_ne!(row[reason], "-", "a wait says why: {printed}");
        }
    }
    assert!(waits > 0, "{printed}");

    let out = op(&state, &["history", "demo", "-o", "json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(events.iter().all(|e| e["seq"] == 1), "{events:#?}");
    let pod_wait = events.iter().find(|e| {
        e["type"] == "StepWaiting"
            && e["step_name"] == "CreateRwPod"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("is starting on"))
    });
    assert!(
        pod_wait.is_some(),
        "the pod wait names its pod: {events:#?}"
    );
}

#[test]
fn history_filters_by_seq_and_flow() {
    let dir = tempfile::tempdir().unwrap();
    let state = sample(dir.path());
    let out = local(&state, &[&example("restart.yaml")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["history", "demo", "-o", "json"];
        all.extend_from_slice(args);
        let out = op(&state, &all);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let all = events(&[]);
    let second = events(&["--seq", "2"]);
    assert!(!second.is_empty());
    assert!(second.iter().all(|e| e["seq"] == 2), "{second:#?}");
    let restart = second[0]["flow_name"].as_str().unwrap().to_owned();
    assert_ne!(restart, "CreateSharedStorageCluster");
    let create = events(&["--flow", "CreateSharedStorageCluster"]);
    assert!(create.iter().all(|e| e["seq"] == 1), "{create:#?}");
    assert_eq!(create.len() + second.len(), all.len());
    assert!(events(&["--seq", "1", "--flow", &restart]).is_empty());

    // The table keeps only the header when nothing matches.
    let out = op(&state, &["history", "demo", "--seq", "9"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", text(&out));
}

#[test]
fn get_without_a_name_lists_every_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = local(
        &state,
        &[&example("mpdcluster.yaml"), &second(dir.path())],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = op(&state, &["get"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    let (header, rows) = table(&printed);
    assert_eq!(
        header,
        ["NAME", "STATUS", "LEADER", "RO", "READY", "AGE"],
        "{printed}"
    );
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["demo", "second"], "{printed}");
    for row in &rows {
        assert_eq!(row[1], "Running", "{printed}");
        assert_ne!(row[2], "-", "a leader: {printed}");
        assert_eq!(row[4], "True", "{printed}");
    }
    assert_eq!((rows[0][3].as_str(), rows[1][3].as_str()), ("2", "1"));

    let out = op(&state, &["get", "-o", "wide"]);
    let (header, rows) = table(&stdout(&out));
    assert_eq!(
        &header[6..],
        ["NAMESPACE", "VERSION", "CLASS", "VOLUME"],
        "{}",
        text(&out)
    );
    assert_eq!(
        rows[1][6..],
        ["default", "1.1.1", "polar.o.x4.medium", "pvc-second"]
    );

    for format in ["json", "yaml"] {
        let out = op(&state, &["get", "-o", format]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let list: serde_json::Value = if format == "json" {
            serde_json::from_slice(&out.stdout).expect("json")
        } else {
            serde_yaml::from_slice(&out.stdout).expect("yaml")
        };
        assert_eq!(list["kind"], "List");
        let items: Vec<MPDCluster> = serde_json::from_value(list["items"].clone()).unwrap();
        assert_eq!(items.len(), 2, "{format}");
        assert_eq!(items[1].metadata.name.as_deref(), Some("second"));
    }

    // Another namespace has none: an empty listing is not an error.
    let out = op(&state, &["get", "-n", "other"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No resources found in other namespace"),
        "{}",
        text(&out)
    );
}

#[test]
fn get_o_json_prints_the_object_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let state = sample(dir.path());
    let out = op(&state, &["get", "demo", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cr: MPDCluster = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(cr.status.unwrap().cluster_status, "Running");
    // A named get prints YAML by default (as the GUIDE documents), and its row with -o table.
    let out = op(&state, &["get", "demo"]);
    let cr: MPDCluster = serde_yaml::from_slice(&out.stdout).expect("yaml by default");
    assert_eq!(cr.metadata.name.as_deref(), Some("demo"));
    let out = op(&state, &["get", "demo", "-o", "table"]);
    let (header, rows) = table(&stdout(&out));
    assert_eq!(header[0], "NAME");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "demo");
}

#[test]
fn delete_releases_the_storage_and_removes_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A cluster that can never fit: recover cannot help, delete removes it.
    let out = local(&state, &[&too_big(&state)], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("to remove it instead: shared-storage-operator delete demo"),
        "the summary names delete: {}",
        text(&out)
    );

    let out = op(&state, &["delete", "demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("default/demo: volume released, cluster manager removed"),
        "{printed}"
    );
    assert!(printed.contains("default/demo: deleted"), "{printed}");
    for verb in ["get", "workflows", "status"] {
        let out = op(&state, &[verb, "demo"]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", text(&out));
    }
    assert!(!state.join("clusters/default/demo.json").exists());
    assert!(!state.join("mementos/default/demo-workflow.json").exists());
    let out = op(&state, &["delete", "demo"]);
    assert_eq!(out.status.code(), Some(1), "deleted twice: {}", text(&out));

    // The volume and the nodes are free: a new cluster on the same volume fits.
    let sample = std::fs::read_to_string(example("mpdcluster.yaml")).unwrap();
    let again = dir.path().join("again.yaml");
    std::fs::write(&again, sample.replace("name: demo", "name: again")).unwrap();
    let out = local(&state, &[&again], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains("default/again: Running"),
        "{}",
        text(&out)
    );
}

#[test]
fn delete_while_local_holds_the_state_dir_exits_2_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = sample(dir.path());
    let mut watch = Command::new(bin())
        .args([
            "local",
            example("mpdcluster.yaml").to_str().unwrap(),
            "--watch",
        ])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(watch.stdout.take().unwrap());
    for line in lines.lines() {
        if line.unwrap().starts_with("watching") {
            break;
        }
    }
    let out = op(&state, &["delete", "demo"]);
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another process"),
        "{}",
        text(&out)
    );
    assert!(state.join("clusters/default/demo.json").exists());
}

#[test]
fn an_unknown_name_exits_1_for_every_verb() {
    let dir = tempfile::tempdir().unwrap();
    let state = sample(dir.path());
    for verb in [
        "workflows",
        "history",
        "get",
        "status",
        "recover",
        "cancel",
        "delete",
    ] {
        let out = op(&state, &[verb, "nosuch"]);
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{verb}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: mpdcluster default/nosuch not found\n",
            "{verb}"
        );
    }
}

#[test]
fn a_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = local(
        &dir.path().join("state"),
        &[&dir.path().join("missing.yaml")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stdout(&out).is_empty(), "nothing applied: {}", text(&out));
}

/// Runs `args` with standard output closed before anything is written (as `| head -0`).
fn into_a_closed_pipe(state: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait")
}

#[test]
fn history_into_a_closed_pipe_exits_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sample = example("mpdcluster.yaml");
    // `local` first: it goes on reconciling with nobody reading, and still ends Running.
    let out = into_a_closed_pipe(&state, &["local", sample.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "local: {stderr}");
    assert_eq!(out.status.code(), Some(0), "local: {stderr}");
    for args in [
        &["history", "demo"][..],
        &["workflows", "demo"],
        &["get"],
        &["get", "demo"],
        &["status", "demo"],
    ] {
        let out = into_a_closed_pipe(&state, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn local_prints_a_header_naming_what_it_applies_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = example("mpdcluster.yaml");
    let out = local(&state, &[&file], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        stdout(&out).lines().next().unwrap_or(""),
        format!(
            "local: applying 1 document(s) from {} to state dir {}",
            file.display(),
            state.display()
        )
    );
}

#[test]
fn local_folds_repeated_waits_into_one_line_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Every simulated long operation answers "not ready" three times: each step waits
    // three times for the same reason before it moves on.
    let out = local(
        &state,
        &[&example("mpdcluster.yaml")],
        &["--sim-ready-after-polls", "3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    let step_lines = |step: &str| -> Vec<String> {
        printed
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(step))
            .map(str::to_owned)
            .collect()
    };
    let storage = step_lines("PrepareStorage");
    let waits: Vec<&String> = storage.iter().filter(|l| l.contains(" waiting ")).collect();
    assert_eq!(waits.len(), 1, "one line for three waits: {storage:#?}");
    assert!(
        waits[0].contains("for: storage manager: format and use of default/pvc-demo"),
        "{}",
        waits[0]
    );
    assert!(
        storage
            .iter()
            .any(|l| l.contains(" completed ") && l.contains("after 3 waits")),
        "{storage:#?}"
    );
    // No two wait lines in a row repeat a reason, for any step.
    let mut previous: Option<(String, String)> = None;
    for line in printed.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(3) == Some(&"waiting") {
            let reason = line.split("  for: ").nth(1).unwrap_or("").to_owned();
            let current = (fields[2].to_owned(), reason);
            assert_ne!(previous.as_ref(), Some(&current), "{printed}");
            previous = Some(current);
        } else {
            previous = None;
        }
    }
    // The history keeps every wait.
    let out = op(&state, &["history", "demo", "--output", "json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let recorded = events
        .iter()
        .filter(|e| e["type"] == "StepWaiting" && e["step_name"] == "PrepareStorage")
        .count();
    assert_eq!(recorded, 3, "{events:#?}");
}

#[test]
fn local_prints_where_it_resumes_a_stored_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sample = example("mpdcluster.yaml");
    let mut child = Command::new(bin())
        .args(["local", sample.to_str().unwrap(), "--sim-latency", "40ms"])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once two steps completed and the third started.
    let mut completed = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 && fields[2] != "-" && fields[3] == "completed" {
            completed += 1;
        } else if completed == 2 && fields.len() > 3 && fields[3] == "running" {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let out = local(&state, &[&sample], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    let flow_lines: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("CreateSharedStorageCluster"))
        .collect();
    let first = flow_lines.first().copied().unwrap_or("");
    let fields: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(fields.get(3), Some(&"resuming"), "{printed}");
    assert!(
        first.ends_with("run 1 at step 3/6") && fields[2] == "CreateClusterManager",
        "the stored run, at its third step: {printed}"
    );
    assert_eq!(
        flow_lines.iter().filter(|l| l.contains("resuming")).count(),
        1,
        "{printed}"
    );
    assert!(
        !flow_lines.iter().any(|l| l.contains(" started ")),
        "no new run: {printed}"
    );

    // Once it is Running, a run met again is not resumed.
    let out = local(&state, &[&sample], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!stdout(&out).contains("resuming"), "{}", text(&out));
}

#[test]
fn a_step_failure_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = local(
        &state,
        &[&example("mpdcluster.yaml")],
        &["--sim-fail-rate", "0.2", "--sim-seed", "7"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = stdout(&out);
    let failures = printed.lines().filter(|l| l.contains(" failed ")).count();
    assert!(failures > 0, "the seed gives failures: {printed}");
    assert_eq!(
        printed.matches("simulated failure").count(),
        failures,
        "each on its own line once: {printed}"
    );
    assert!(
        out.stderr.is_empty(),
        "no log line repeats a failure without -v: {}",
        text(&out)
    );

    // An interrupt: the failed step's line carries the error, the interrupt line does not
    // repeat it, and the summary gives the reason.
    let state = dir.path().join("interrupted");
    let out = local(&state, &[&too_big(&state)], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = stdout(&out);
    let flow_lines = printed
        .lines()
        .filter(|l| l.contains("SharedStorageClusterAddRo") && l.contains("NO_AVAILABLE_NODE"))
        .count();
    assert_eq!(flow_lines, 1, "{printed}");
    assert!(printed.contains("default/demo: Interrupt: NO_AVAILABLE_NODE"));
    assert!(out.stderr.is_empty(), "{}", text(&out));

    // With -v the engine's log goes to stderr.
    let state = dir.path().join("verbose");
    let out = local(&state, &[&too_big(&state)], &["-v"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WARN"),
        "{}",
        text(&out)
    );
}
