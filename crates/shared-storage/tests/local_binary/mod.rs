//! Driving the `shared-storage-operator` binary in local mode from the tests in this
//! directory: run a command on a state directory, show what it printed, and edit the state
//! directory's saved simulator world (`sim.json`) for what happens on a real cluster without
//! the operator's doing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shared-storage-operator"))
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The example file `name`.
pub fn example(name: &str) -> PathBuf {
    examples_dir().join(name)
}

/// Runs the binary with `args` on the state directory `state`.
pub fn op(state: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run the binary")
}

/// The exit status, stdout and stderr of `out`, for an assertion message.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What `out` printed on stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Puts a pod that belongs to no MPDCluster (a copy of the first saved pod, renamed into the
/// namespace `legacy`) on `node` with host port `port`: the engine port is then taken there,
/// as by a database someone runs beside the operator. The admission, which knows only the
/// MPDClusters, does not see it; placing a pod on that node fails (`NO_AVAILABLE_NODE`).
///
/// The state directory must hold a world with at least one pod (a created cluster).
pub fn occupy_engine_port(state: &Path, node: &str, port: i64) {
    let path = state.join("sim.json");
    let mut world: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("sim.json")).expect("sim.json is JSON");
    let pods = world["pods"]
        .as_array_mut()
        .expect("pods are [key, record] pairs");
    let mut entry = pods.first().expect("a created cluster's pod").clone();
    entry[0] = serde_json::json!(["legacy", "pg-outside"]);
    let pod = &mut entry[1]["pod"];
    pod["namespace"] = "legacy".into();
    pod["name"] = "pg-outside".into();
    pod["cluster"] = serde_json::json!({"namespace": "legacy", "name": "pg"});
    pod["node"] = node.into();
    pod["port"] = port.into();
    pods.push(entry);
    std::fs::write(&path, serde_json::to_vec_pretty(&world).expect("JSON"))
        .expect("write sim.json");
}
