//! Edits of a local state directory's saved simulator world (`sim.json`) for the tests that
//! drive the binary: what happens on a real cluster without the operator's doing.

#![allow(dead_code)]

use std::path::Path;

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
