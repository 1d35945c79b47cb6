//! [Semantics §4](../../../../docs/SEMANTICS.md#4-flows-and-step-groups): the workflow manager.

use serde_json::json;

use super::support::{harness, token, Act, Script};
use crate::{
    Error, InterruptAnnotations, JsonMap, MemoryResource, StaticLoader, WorkflowConfig,
    WorkflowManager,
};

#[test]
fn manager_needs_a_resource_type_and_a_flow_source() {
    let empty = WorkflowManager::<MemoryResource>::builder(" ")
        .loader(StaticLoader::new())
        .build()
        .unwrap_err();
    assert!(
        empty.to_string().contains("resource type is empty"),
        "{empty}"
    );
    let no_source = WorkflowManager::<MemoryResource>::builder("shared")
        .build()
        .unwrap_err();
    assert!(
        no_source.to_string().contains("no flow source"),
        "{no_source}"
    );
    let empty_dir = WorkflowManager::<MemoryResource>::builder("shared")
        .flow_dir("")
        .build()
        .unwrap_err();
    assert!(matches!(empty_dir, Error::Setup(_)));
}

#[test]
fn manager_reads_flows_from_the_resource_type_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("shared")).unwrap();
    std::fs::write(
        root.path().join("shared/Create.yaml"),
        super::support::flow_yaml("Create", &["A"]),
    )
    .unwrap();
    let manager = WorkflowManager::<MemoryResource>::builder("shared")
        .flow_dir(root.path())
        .build()
        .unwrap();
    assert!(manager.catalog().get("Create").is_some());
    let err = manager.validate().unwrap_err();
    assert!(err.to_string().contains("unknown className `A`"), "{err}");
}

#[test]
fn invalid_flow_yaml_fails_the_build_naming_the_file() {
    let err = WorkflowManager::<MemoryResource>::builder("shared")
        .loader(StaticLoader::new().with("shared/Bad.yaml", "flowName: X\nstepz: []\n"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Metadata(_)));
    assert!(
        err.to_string().contains("shared/Bad.yaml") && err.to_string().contains("stepz"),
        "{err}"
    );
}

#[tokio::test]
async fn context_keys_and_interrupt_annotations_are_configurable() {
    let a = Script::new([Act::Interrupt("R", "M")]);
    let config = WorkflowConfig {
        resource_name_key: "name".into(),
        resource_namespace_key: "ns".into(),
        annotations: InterruptAnnotations {
            reason: "x/reason".into(),
            message: "x/message".into(),
            previous_status: "x/previous".into(),
            recover: "x/recover".into(),
            ..InterruptAnnotations::default()
        },
        ..WorkflowConfig::default()
    };
    let h = harness()
        .flow("F", &["A"])
        .step("A", &a)
        .config(config)
        .build();
    h.workflow()
        .await
        .run("F", JsonMap::new(), &token())
        .await
        .unwrap();
    assert_eq!(a.contexts()[0]["name"], json!("c1"));
    assert_eq!(a.contexts()[0]["ns"], json!("ns"));
    assert_eq!(h.annotation("x/reason").as_deref(), Some("R"));
    assert_eq!(h.annotation("x/recover").as_deref(), Some("F"));
    assert_eq!(h.annotation("interrupt.reason"), None);
}
