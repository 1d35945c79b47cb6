//! The MPDCluster document loader (shared-storage `local::parse_documents`) and the cluster
//! files' JSON (`clusters/<ns>/<name>.json`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shared_storage::crd::MPDCluster;
use shared_storage::local::parse_documents;

fuzz_target!(|data: &[u8]| {
    let _ = parse_documents(Path::new("fuzz.yaml"), data);
    let _ = serde_json::from_slice::<MPDCluster>(data);
});
