//! The flow YAML loader (wf-engine's `FlowCatalog::from_sources`) on one file's text, read
//! as a flow file, as a step-group file, and beside a group it may refer to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wf_engine::metadata::FlowSource;
use wf_engine::{FlowCatalog, RetryPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let defaults = RetryPolicy::default();
    for path in ["fuzz/Flow.yaml", "fuzz/fuzz_step_group.yaml"] {
        let _ = FlowCatalog::from_sources(&[FlowSource::new(path, text)], &defaults);
    }
    let group = FlowSource::new(
        "fuzz/common_step_group.yaml",
        "groupName: Common\nsteps:\n  - {className: a.B, stepName: B}\n",
    );
    let _ = FlowCatalog::from_sources(&[group, FlowSource::new("fuzz/F.yaml", text)], &defaults);
});
