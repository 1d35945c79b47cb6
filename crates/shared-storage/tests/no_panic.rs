//! No input panics the operator's decoders: a bounded property-test run of the entry points
//! that the fuzz targets in `fuzz/` drive (`docs/FUZZING.md`): the MPDCluster document
//! loader, the cluster files' JSON, and the decoders of the HTTP replies of the SMS and CM
//! ports. Inputs are seeded random bytes and mutations of real ones (`examples/*.yaml`, the
//! replies the adapters' tests document). Errors are fine; a panic fails the test, naming
//! the input (saved under `target/no-panic/`).
//!
//! `NO_PANIC_CASES` sets the cases per entry point (default 3000), `NO_PANIC_SEED` the seed
//! (the harness is wf-engine's `tests/common/no_panic.rs`).

#[path = "../../wf-engine/tests/common/no_panic.rs"]
mod harness;

use std::path::{Path, PathBuf};

use harness::{root, run};
use shared_storage::crd::MPDCluster;
use shared_storage::local::{load_documents, parse_documents};
use shared_storage::ports::kube::decode;

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the examples");
    files
}

#[test]
fn the_mpdcluster_document_loader_never_panics() {
    let mut seeds: Vec<Vec<u8>> = examples()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    // Several documents in one file, and the Windows form of one.
    let all: Vec<u8> = seeds
        .iter()
        .flat_map(|s| [b"---\n", &s[..]].concat())
        .collect();
    let windows = [
        "\u{feff}".as_bytes(),
        &String::from_utf8(seeds[0].clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes(),
    ]
    .concat();
    seeds.push(all);
    seeds.push(windows);
    run("mpdcluster_yaml", &seeds, |bytes| {
        parse_documents(Path::new("fuzz.yaml"), bytes).is_ok()
    });
}

#[test]
fn the_cluster_file_decoder_never_panics() {
    // A cluster file is an MPDCluster as JSON (`clusters/<ns>/<name>.json`).
    let mut seeds = Vec::new();
    for path in examples() {
        for cluster in load_documents(&path).unwrap() {
            seeds.push(serde_json::to_vec_pretty(&cluster).unwrap());
        }
    }
    run("cluster_file", &seeds, |bytes| {
        serde_json::from_slice::<MPDCluster>(bytes).is_ok()
    });
}

/// The statuses a reply is decoded under: the usual ones, and any `u16` now and then.
fn status_of(bytes: &[u8]) -> (u16, &[u8]) {
    const USUAL: [u16; 8] = [200, 201, 204, 400, 404, 409, 500, 503];
    match bytes.split_first() {
        Some((&b, rest)) if b < 0xf0 => (USUAL[usize::from(b) % USUAL.len()], rest),
        Some((_, rest)) if rest.len() >= 2 => (u16::from_le_bytes([rest[0], rest[1]]), &rest[2..]),
        _ => (200, bytes),
    }
}

/// Seeds of one reply decoder: a status byte (0 selects 200, 6 selects 500) then the body.
fn replies(bodies: &[&str]) -> Vec<Vec<u8>> {
    bodies
        .iter()
        .flat_map(|body| [0u8, 6].map(|status| [&[status][..], body.as_bytes()].concat()))
        .collect()
}

const CM_STATUS: &str = r#"{
    "phase": "RunningPhase",
    "cluster_manager": [{"endpoint": "10.0.0.1:5001", "phase": "Leader"}],
    "master": {"endpoint": "x"},
    "standby": [],
    "rw": {"endpoint": "192.168.0.1:5432", "pod_name": "c1-1001-1002", "phase": "RUNNING",
           "start_at": "2024-05-01 10:00:00", "sync_status": "SYNC", "data_path": "/d", "user": "u"},
    "ro": [{"endpoint": "192.168.0.2:5432", "pod_name": "c1-1003-1004", "phase": "STARTING"}]
}"#;

const ENVELOPES: &[&str] = &[
    r#"{"code":200,"msg":"ok"}"#,
    r#"{"code":500,"msg":"Failed to request cause no CM leader!"}"#,
    r#"{"code":500,"msg":"instance already exist"}"#,
    r#"{"code":500}"#,
    r#"{"phase":"DisableAllPhase"}"#,
    "",
];

#[test]
fn the_cm_reply_decoders_never_panic() {
    let mut bodies = vec![CM_STATUS];
    bodies.extend_from_slice(ENVELOPES);
    run("cm_replies", &replies(&bodies), |bytes| {
        let (status, body) = status_of(bytes);
        let body = String::from_utf8_lossy(body);
        let status_ok = decode::decode_cm_status(status, &body).is_ok();
        let action_ok =
            decode::decode_cm_action(status, &body, &["already exist", "not exist"]).is_ok();
        let _ = decode::server_message(&body);
        status_ok || action_ok
    });
}

const SMS: &[&str] = &[
    r#"{"workflow_id":"wf-123"}"#,
    r#"{"workflow_id":"Dummy-000"}"#,
    r#"{"workflow_id":""}"#,
    "null",
    r#"{"is_ready":true}"#,
    r#"{"is_ready":false}"#,
    r#"{"write_node":{"node_id":"n1"},"read_nodes":[{"node_id":"n2"},{"node_id":"n3"}]}"#,
    r#"{"read_nodes":[]}"#,
    r#"{"db_cluster_name":"c1","volume_id":"wwid-1"}"#,
    "can not find workflow wf-123",
    "can not find pvc pvc-demo",
    "workflow exec err: format failed",
    "pvc-demo locked by c2",
    r#"{"error":"can not bind"}"#,
];

#[test]
fn the_sms_reply_decoders_never_panic() {
    run("sms_replies", &replies(SMS), |bytes| {
        let (status, body) = status_of(bytes);
        let body = String::from_utf8_lossy(body);
        let results = [
            decode::decode_sms_started(status, &body).is_ok(),
            decode::decode_sms_ready(status, &body).is_ok(),
            decode::decode_sms_topo(status, &body).is_ok(),
            decode::decode_sms_owner(status, &body).is_ok(),
        ];
        let _ = decode::server_message(&body);
        results.iter().any(|ok| *ok)
    });
}

#[test]
fn the_sms_job_record_decoder_never_panics() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"op":"use","owner":"c1","node":"","format":true,"volumeId":"wwid-1","workflowId":"wf-1"}"#,
        r#"{"op":"lock","owner":"","node":"n1","workflowId":"wf-2"}"#,
        r#"{"op":"release","owner":"c1","workflowId":"wf-3"}"#,
        "  ",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run("sms_job_record", &seeds, |bytes| {
        decode::decode_sms_job_record(&String::from_utf8_lossy(bytes)).is_ok()
    });
}
