//! The fake cluster and its test kubelet: scheduling, readiness, the holds a test can put on
//! a pod, graceful deletion, finalizers, Deployments and garbage collection.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, Container, ContainerPort, Node, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use test_cluster::deployments::POD_TEMPLATE_HASH;
use test_cluster::{FakeCluster, FakeNode};

const NS: &str = "db";

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "engine".into(),
                    image: Some("engine:1".into()),
                    ..Container::default()
                },
                Container {
                    name: "manager".into(),
                    image: Some("manager:1".into()),
                    ..Container::default()
                },
            ],
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn hostname(pod: &mut Pod, op: &str, values: &[&str]) {
    if let Some(spec) = pod.spec.as_mut() {
        spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: op.into(),
                            values: Some(values.iter().map(|v| (*v).to_string()).collect()),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
    }
}

async fn cluster(nodes: u8) -> FakeCluster {
    FakeCluster::builder()
        .numbered_nodes(nodes, &[])
        .build()
        .await
        .unwrap()
}

fn pods(cluster: &FakeCluster) -> Api<Pod> {
    Api::namespaced(cluster.client(), NS)
}

fn condition(pod: &Pod, type_: &str) -> Option<(String, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn node_name(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

#[tokio::test]
async fn a_pod_is_scheduled_running_and_ready_with_the_internal_ip_of_its_node() {
    let cluster = cluster(2).await;
    let api = pods(&cluster);
    api.create(&PostParams::default(), &pod("p")).await.unwrap();
    cluster.sync().await.unwrap();
    let p = api.get("p").await.unwrap();
    assert_eq!(node_name(&p).as_deref(), Some("node-1"));
    let status = p.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.host_ip.as_deref(), Some("10.0.0.1"));
    for type_ in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&p, type_).unwrap().0, "True", "{type_}");
    }
    let containers = status.container_statuses.unwrap();
    assert_eq!(containers.len(), 2);
    assert!(containers.iter().all(|c| c.ready
        && c.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://"))
        && c.state.as_ref().is_some_and(|s| s.running.is_some())));
    // A second pod goes to the less loaded node; a quiet cluster is not rewritten.
    api.create(&PostParams::default(), &pod("q")).await.unwrap();
    cluster.sync().await.unwrap();
    assert_eq!(
        node_name(&api.get("q").await.unwrap()).as_deref(),
        Some("node-2")
    );
    let version = api.get("p").await.unwrap().metadata.resource_version;
    cluster.sync().await.unwrap();
    assert_eq!(
        api.get("p").await.unwrap().metadata.resource_version,
        version
    );
}

#[tokio::test]
async fn required_hostname_in_pins_a_pod_and_not_in_skips_nodes() {
    let cluster = cluster(3).await;
    let api = pods(&cluster);
    let mut pinned = pod("pinned");
    hostname(&mut pinned, "In", &["node-3"]);
    let mut avoiding = pod("avoiding");
    hostname(&mut avoiding, "NotIn", &["node-1", "node-2"]);
    let mut nowhere = pod("nowhere");
    hostname(&mut nowhere, "NotIn", &["node-1", "node-2", "node-3"]);
    for p in [&pinned, &avoiding, &nowhere] {
        api.create(&PostParams::default(), p).await.unwrap();
    }
    cluster.sync().await.unwrap();
    assert_eq!(
        node_name(&api.get("pinned").await.unwrap()).as_deref(),
        Some("node-3")
    );
    assert_eq!(
        node_name(&api.get("avoiding").await.unwrap()).as_deref(),
        Some("node-3")
    );
    let unplaced = api.get("nowhere").await.unwrap();
    assert_eq!(node_name(&unplaced), None);
    assert_eq!(
        condition(&unplaced, "PodScheduled").unwrap(),
        ("False".to_string(), Some("Unschedulable".to_string()))
    );
    let message = &unplaced.status.unwrap().conditions.unwrap()[0].message;
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.starts_with("0/3 nodes are available")),
        "{message:?}"
    );
}

#[tokio::test]
async fn host_network_pods_on_one_port_spread_over_nodes() {
    let cluster = cluster(2).await;
    let api = pods(&cluster);
    let with_port = |name: &str| {
        let mut p = pod(name);
        if let Some(spec) = p.spec.as_mut() {
            spec.host_network = Some(true);
            spec.containers[0].ports = Some(vec![ContainerPort {
                container_port: 5432,
                ..ContainerPort::default()
            }]);
        }
        p
    };
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &with_port(name))
            .await
            .unwrap();
    }
    cluster.sync().await.unwrap();
    let placed: Vec<Option<String>> =
        futures::future::join_all(["a", "b", "c"].map(|n| api.get(n)))
            .await
            .into_iter()
            .map(|p| node_name(&p.unwrap()))
            .collect();
    assert_eq!(placed, [Some("node-1".into()), Some("node-2".into()), None]);
    // Host network: the pod IP is the node's.
    let a = api.get("a").await.unwrap().status.unwrap();
    assert_eq!(a.pod_ip, a.host_ip);
}

#[tokio::test]
async fn a_pod_held_unscheduled_or_not_ready_stays_so_until_released() {
    let cluster = cluster(1).await;
    let api = pods(&cluster);
    let kubelet = cluster.kubelet();
    kubelet.hold_unscheduled(NS, "u");
    kubelet.hold_not_ready(NS, "n");
    kubelet.hold_container_not_ready(NS, "one", "manager");
    for name in ["u", "n", "one"] {
        api.create(&PostParams::default(), &pod(name))
            .await
            .unwrap();
    }
    cluster.sync().await.unwrap();
    let u = api.get("u").await.unwrap();
    assert_eq!(node_name(&u), None);
    assert_eq!(condition(&u, "PodScheduled").unwrap().0, "False");
    let n = api.get("n").await.unwrap();
    assert_eq!(node_name(&n).as_deref(), Some("node-1"));
    assert_eq!(n.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    assert_eq!(
        condition(&n, "Ready").unwrap(),
        ("False".to_string(), Some("ContainersNotReady".to_string()))
    );
    assert_eq!(condition(&n, "ContainersReady").unwrap().0, "False");
    let one = api.get("one").await.unwrap();
    let status = one.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let ready: BTreeMap<String, bool> = status
        .container_statuses
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.ready))
        .collect();
    assert_eq!(
        ready,
        BTreeMap::from([("engine".into(), true), ("manager".into(), false)])
    );
    assert_eq!(condition(&one, "Ready").unwrap().0, "False");
    for name in ["u", "n", "one"] {
        kubelet.release(NS, name);
    }
    cluster.sync().await.unwrap();
    for name in ["u", "n", "one"] {
        assert_eq!(
            condition(&api.get(name).await.unwrap(), "Ready").unwrap().0,
            "True",
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_deleted_pod_terminates_and_goes_once_its_containers_stop() {
    let cluster = cluster(1).await;
    let api = pods(&cluster);
    api.create(&PostParams::default(), &pod("p")).await.unwrap();
    cluster.sync().await.unwrap();
    cluster.kubelet().hold_termination(NS, "p");
    api.delete("p", &DeleteParams::default()).await.unwrap();
    let terminating = api.get("p").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    // A second delete is accepted and changes nothing.
    api.delete("p", &DeleteParams::default()).await.unwrap();
    cluster.sync().await.unwrap();
    assert!(api
        .get("p")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some());
    cluster.kubelet().release(NS, "p");
    cluster.sync().await.unwrap();
    assert!(api.get_opt("p").await.unwrap().is_none());
    // Grace period 0 removes a pod at once.
    api.create(&PostParams::default(), &pod("q")).await.unwrap();
    api.delete(
        "q",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .unwrap();
    assert!(api.get_opt("q").await.unwrap().is_none());
}

#[tokio::test]
async fn a_lost_pod_vanishes_and_a_failed_pod_reports_phase_failed() {
    let cluster = cluster(1).await;
    let api = pods(&cluster);
    for name in ["lost", "failed"] {
        api.create(&PostParams::default(), &pod(name))
            .await
            .unwrap();
    }
    cluster.sync().await.unwrap();
    assert!(cluster.kubelet().lose_pod(NS, "lost").await.unwrap());
    assert!(!cluster.kubelet().lose_pod(NS, "lost").await.unwrap());
    assert!(api.get_opt("lost").await.unwrap().is_none());
    cluster.kubelet().fail_pod(
        NS,
        "failed",
        "Evicted",
        "The node was low on resource: memory.",
    );
    cluster.sync().await.unwrap();
    let failed = api.get("failed").await.unwrap().status.unwrap();
    assert_eq!(failed.phase.as_deref(), Some("Failed"));
    assert_eq!(failed.reason.as_deref(), Some("Evicted"));
    assert_eq!(failed.host_ip.as_deref(), Some("10.0.0.1"));
}

fn config_map(name: &str, owner: Option<&ConfigMap>, finalizers: &[&str]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            finalizers: (!finalizers.is_empty())
                .then(|| finalizers.iter().map(|f| (*f).to_string()).collect()),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    uid: o.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".into(), "v".into())])),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn an_object_with_finalizers_keeps_a_deletion_timestamp_until_they_are_cleared() {
    let cluster = cluster(0).await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), NS);
    api.create(
        &PostParams::default(),
        &config_map("held", None, &["example.com/cleanup"]),
    )
    .await
    .unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert!(listed.items[0].metadata.deletion_timestamp.is_some());
    // A full update of the copy (deletion timestamp included) is accepted.
    let mut edited = held.clone();
    edited.data = Some(BTreeMap::from([("k".into(), "w".into())]));
    let replaced = api
        .replace("held", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert!(replaced.metadata.deletion_timestamp.is_some());
    assert_eq!(replaced.data.unwrap()["k"], "w");
    // Clearing the finalizers removes it.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
    // A new object of the same name is not being deleted.
    api.create(
        &PostParams::default(),
        &config_map("held", None, &["example.com/cleanup"]),
    )
    .await
    .unwrap();
    assert!(api
        .get("held")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());
}

#[tokio::test]
async fn deleting_an_owner_collects_its_children_and_honours_their_finalizers() {
    let cluster = cluster(1).await;
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), NS);
    let owner = maps
        .create(
            &PostParams::default(),
            &config_map("owner", None, &["example.com/owner"]),
        )
        .await
        .unwrap();
    maps.create(
        &PostParams::default(),
        &config_map("child", Some(&owner), &[]),
    )
    .await
    .unwrap();
    maps.create(
        &PostParams::default(),
        &config_map("stubborn", Some(&owner), &["example.com/keep"]),
    )
    .await
    .unwrap();
    let mut child_pod = pod("child-pod");
    child_pod.metadata.owner_references =
        config_map("x", Some(&owner), &[]).metadata.owner_references;
    pods(&cluster)
        .create(&PostParams::default(), &child_pod)
        .await
        .unwrap();
    maps.create(&PostParams::default(), &config_map("unrelated", None, &[]))
        .await
        .unwrap();
    cluster.sync().await.unwrap();
    // The owner waits for its finalizer; its children stay.
    maps.delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    cluster.sync().await.unwrap();
    assert!(maps.get_opt("child").await.unwrap().is_some());
    maps.patch(
        "owner",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();
    cluster.sync().await.unwrap();
    assert!(maps.get_opt("owner").await.unwrap().is_none());
    assert!(maps.get_opt("child").await.unwrap().is_none());
    assert!(pods(&cluster).get_opt("child-pod").await.unwrap().is_none());
    assert!(maps.get_opt("unrelated").await.unwrap().is_some());
    let stubborn = maps.get("stubborn").await.unwrap();
    assert!(stubborn.metadata.deletion_timestamp.is_some());
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(BTreeMap::from([
                        ("app".to_string(), name.to_string()),
                        ("port".to_string(), "5001".to_string()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "manager".into(),
                        image: Some(image.into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

async fn deployment_pods(cluster: &FakeCluster, app: &str) -> Vec<Pod> {
    pods(cluster)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_deployment_runs_its_replicas_from_the_template_and_follows_changes() {
    let cluster = cluster(2).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client(), NS);
    api.create(&PostParams::default(), &deployment("c1.cm", 2, "cm:1"))
        .await
        .unwrap();
    cluster.sync().await.unwrap();
    let running = deployment_pods(&cluster, "c1.cm").await;
    assert_eq!(running.len(), 2);
    for p in &running {
        let labels = p.metadata.labels.clone().unwrap();
        assert_eq!(labels["port"], "5001");
        assert!(labels.contains_key(POD_TEMPLATE_HASH));
        assert_eq!(condition(p, "Ready").unwrap().0, "True");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Deployment", Some(true))
        );
    }
    let status = api.get("c1.cm").await.unwrap().status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(2)));
    // Scale down, then change the image: the old pods are replaced.
    api.patch(
        "c1.cm",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    cluster.sync().await.unwrap();
    assert_eq!(deployment_pods(&cluster, "c1.cm").await.len(), 1);
    let before = deployment_pods(&cluster, "c1.cm").await[0]
        .metadata
        .name
        .clone();
    let mut upgraded = api.get("c1.cm").await.unwrap();
    if let Some(spec) = upgraded.spec.as_mut() {
        spec.template.spec.as_mut().unwrap().containers[0].image = Some("cm:2".into());
    }
    api.replace("c1.cm", &PostParams::default(), &upgraded)
        .await
        .unwrap();
    cluster.sync().await.unwrap();
    let after = deployment_pods(&cluster, "c1.cm").await;
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].metadata.name, before);
    assert_eq!(
        after[0].spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("cm:2")
    );
    // Deleting the Deployment collects its pods.
    api.delete("c1.cm", &DeleteParams::default()).await.unwrap();
    cluster.sync().await.unwrap();
    assert!(deployment_pods(&cluster, "c1.cm").await.is_empty());
}

#[tokio::test]
async fn nodes_carry_addresses_labels_and_the_conditions_an_operator_reads() {
    let cluster = FakeCluster::builder()
        .node(
            FakeNode::new("a")
                .internal_ip("10.1.0.1")
                .client_ip("192.168.1.1")
                .label("node.kubernetes.io/node", ""),
        )
        .node(
            FakeNode::new("b")
                .internal_ip("10.1.0.2")
                .client_network_unavailable(),
        )
        .build()
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(cluster.client());
    let a = nodes.get("a").await.unwrap();
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"],
        "a"
    );
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()["node.kubernetes.io/node"],
        ""
    );
    let conditions = a.status.unwrap().conditions.unwrap();
    let client_ip = conditions
        .iter()
        .find(|c| c.type_ == "NodeClientIP")
        .unwrap();
    assert_eq!(
        (client_ip.status.as_str(), client_ip.message.as_deref()),
        ("True", Some("192.168.1.1"))
    );
    let b = nodes.get("b").await.unwrap().status.unwrap();
    assert!(b
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "NodeClientNetworkUnavailable" && c.status == "True"));
    cluster
        .set_node_condition("a", "PlugInStorageUnavailable", true, "down")
        .await
        .unwrap();
    let conditions = nodes
        .get("a")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert!(conditions
        .iter()
        .any(|c| c.type_ == "PlugInStorageUnavailable" && c.status == "True"));
    assert!(conditions.iter().any(|c| c.type_ == "NodeClientIP"));
    cluster.add_node(&FakeNode::numbered(9)).await.unwrap();
    assert!(nodes.get_opt("node-9").await.unwrap().is_some());
}

#[tokio::test]
async fn a_watch_request_stays_open() {
    let cluster = cluster(0).await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), NS);
    let params = kube::api::WatchParams::default();
    let watch = api.watch(&params, "0");
    let stream = tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .unwrap()
        .unwrap();
    futures::pin_mut!(stream);
    let next = tokio::time::timeout(
        Duration::from_millis(50),
        futures::StreamExt::next(&mut stream),
    )
    .await;
    assert!(
        next.is_err(),
        "a watch of the fake must not end or send events"
    );
}
