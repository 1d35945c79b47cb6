//! The system objects a cluster holds before the operator runs: class and parameter
//! ConfigMaps, the minor versions and their root, the parameter template, and the nodes.
//! The same catalog the simulators carry, written as the operator's adapters read it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use test_cluster::{FakeClusterBuilder, FakeNode};

/// Where the catalogs live.
pub const SYSTEM_NS: &str = "kube-system";

/// The nodes: four healthy ones, each with an internal and a client address.
pub fn nodes(builder: FakeClusterBuilder) -> FakeClusterBuilder {
    (1..=4).fold(builder, |b, n| {
        b.node(
            FakeNode::new(format!("node-{n}"))
                .internal_ip(format!("10.1.0.{n}"))
                .client_ip(format!("192.168.1.{n}"))
                .label("node.kubernetes.io/node", ""),
        )
    })
}

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(SYSTEM_NS.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ConfigMap::default()
    }
}

fn level_labels<'a>(level: &'a str, class: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("configtype", "instance_level"),
        ("leveltype", level),
        ("dbType", "PostgreSQL"),
        ("dbVersion", "1.0"),
        ("dbClusterMode", "WriteReadMore"),
        ("classKey", class),
    ]
}

/// A class: (name, cpu cores, memory MiB, pfsd cores, pfsd memory, pfsd workers,
/// max_connections, shared_buffers).
type Class = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    &'static str,
    &'static str,
);

const CLASSES: [Class; 3] = [
    (
        "polar.o.x4.medium",
        "2",
        "8192",
        "1",
        "1Gi",
        2,
        "800",
        "2GB",
    ),
    (
        "polar.o.x4.large",
        "4",
        "16384",
        "1",
        "2Gi",
        4,
        "1600",
        "4GB",
    ),
    (
        "polar.o.x8.xlarge",
        "8",
        "65536",
        "2",
        "4Gi",
        8,
        "5000",
        "16GB",
    ),
];

/// The minor versions; the last is the latest.
pub const VERSIONS: [&str; 2] = ["1.1.1", "1.1.2"];

const TEMPLATE: &str = r#"
- name: max_connections
  default_value: "800"
  is_dynamic: 0
  is_user_changable: 1
- name: shared_buffers
  default_value: "2GB"
  is_dynamic: 0
  is_user_changable: 1
- name: work_mem
  default_value: "4MB"
  is_dynamic: 1
  is_user_changable: 1
- name: statement_timeout
  default_value: "0"
  is_dynamic: 1
  is_user_changable: 1
- name: listen_addresses
  default_value: "*"
  is_dynamic: 0
  is_user_changable: 0
"#;

/// Every system ConfigMap.
pub fn config_maps() -> Vec<ConfigMap> {
    let mut out = Vec::new();
    for (class, cpu, mem, pfsd_cpu, pfsd_mem, workers, connections, buffers) in CLASSES {
        let slug = class.replace('.', "-");
        let specified = format!(
            r#"{{"engine": {{"cpu_cores": "{cpu}", "limit_memory": "{mem}Mi", "config": ""}},
                "pfsd": {{"cpu_cores": "{pfsd_cpu}", "limit_memory": "{pfsd_mem}", "config": "-w {workers} -s 32 -i 2048 -b 64"}},
                "pfsd-tool": {{"cpu_cores": "200m", "limit_memory": "256Mi", "config": ""}},
                "manager": {{"cpu_cores": "500m", "limit_memory": "512Mi", "config": ""}}}}"#
        );
        out.push(config_map(
            &format!("postgresql-1-0-level-{slug}-resource-rwo"),
            &level_labels("instance_level_resource", class),
            &[
                ("cpu_cores", cpu),
                ("mem_limit", mem),
                ("class_specified", &specified),
            ],
        ));
        out.push(config_map(
            &format!("postgresql-1-0-level-{slug}-config-rwo"),
            &level_labels("instance_level_config", class),
            &[
                ("max_connections", connections),
                ("shared_buffers", buffers),
            ],
        ));
    }
    for version in VERSIONS {
        let image = |repo: &str| format!("polardb/{repo}:{version}");
        out.push(config_map(
            &format!(
                "postgresql-1-0-minor-version-info-rwo-{}",
                version.replace(['.', '_'], "-")
            ),
            &[],
            &[
                ("name", version),
                ("pgEngineImage", &image("polardb-pg-engine")),
                ("pgManagerImage", &image("polardb-pg-manager")),
                ("pgClusterManagerImage", &image("polardb-cluster-manager")),
                ("pfsdImage", &image("pfsd")),
                ("pfsdToolImage", &image("pfsd-tool")),
            ],
        ));
    }
    out.push(config_map(
        "postgresql-1-0-minor-version-info-rwo-root",
        &[],
        &[("latestVersion", VERSIONS[VERSIONS.len() - 1])],
    ));
    out.push(config_map(
        "postgresql-1-0-mycnf-template-rwo",
        &[],
        &[("mycnf_template", TEMPLATE)],
    ));
    out
}
