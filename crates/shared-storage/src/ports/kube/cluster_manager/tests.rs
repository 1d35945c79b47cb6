//! `KubeClusterManager` on kube-fake-client, its REST calls mocked (`MockCmApi`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node, NodeAddress, NodeStatus, Pod, PodSpec, PodStatus, Secret, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use mockall::predicate::{always, eq};

use super::*;
use crate::crd::{MPDCluster, MPDClusterSpec};
use crate::domain::StorageInfo;
use crate::ports::kube::MockCmApi;
use crate::ports::{Account, MockAccountStore};

const NS: &str = "ns1";

fn cluster() -> ClusterRef {
    ClusterRef::new(NS, "c1")
}

fn spec() -> CmSpec {
    CmSpec {
        cluster: cluster(),
        logic_id: "1000".into(),
        rw_physical_id: "1001".into(),
        image: "cm:1".into(),
        port: 30000,
        consensus_port: 30001,
        storage: StorageInfo {
            pvc_name: "pvc-1".into(),
            pvc_namespace: NS.into(),
            volume_id: "36e0".into(),
            volume_type: "multipath".into(),
        },
    }
}

fn node(name: &str, ip: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                },
            ]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

async fn kube() -> kube::Client {
    let mut cr = MPDCluster::new("c1", MPDClusterSpec::default());
    cr.metadata.namespace = Some(NS.into());
    kube_fake_client::ClientBuilder::new()
        .with_resource::<MPDCluster>()
        .with_object(cr)
        .with_object(node("node-1", "10.0.0.1"))
        .with_object(node("node-2", "10.0.0.2"))
        .build()
        .await
        .unwrap()
}

fn accounts() -> MockAccountStore {
    let mut store = MockAccountStore::new();
    store.expect_accounts().returning(|_| {
        Ok(vec![
            Account {
                name: "aurora".into(),
                password: "pw-aurora-1".into(),
                privilege: 7,
            },
            Account {
                name: "replicator".into(),
                password: "pw-repl-2".into(),
                privilege: 15,
            },
        ])
    });
    store
}

fn config() -> Arc<KubePortsConfig> {
    Arc::new(KubePortsConfig::default())
}

fn manager(client: &kube::Client, api: MockCmApi) -> KubeClusterManager {
    KubeClusterManager::new(
        client.clone(),
        config(),
        Arc::new(api),
        Arc::new(accounts()),
    )
}

/// A CM pod as the Deployment controller and a kubelet would leave it.
async fn cm_pod(client: &kube::Client, name: &str, node: &str, phase: &str, port: &str) {
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([
                ("app".to_owned(), "c1.cm".to_owned()),
                ("port".to_owned(), port.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..PodStatus::default()
        }),
    };
    Api::<Pod>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn delete_pod(client: &kube::Client, name: &str) {
    Api::<Pod>::namespaced(client.clone(), NS)
        .delete(name, &Default::default())
        .await
        .unwrap();
}

fn unavailable(err: &PortError) -> bool {
    matches!(err, PortError::Unavailable { .. })
}

#[tokio::test]
async fn ensure_deployed_creates_every_object_and_is_pending_until_the_cm_pod_runs() {
    let client = kube().await;
    let cm = manager(&client, MockCmApi::new());
    let progress = cm.ensure_deployed(&spec()).await.unwrap();
    assert!(!progress.is_done(), "{progress:?}");

    let uid = Api::<MPDCluster>::namespaced(client.clone(), NS)
        .get("c1")
        .await
        .unwrap()
        .uid()
        .unwrap();
    let d = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("c1.cm")
        .await
        .unwrap();
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (uid.as_str(), Some(true))
    );
    let cms = Api::<ConfigMap>::namespaced(client.clone(), NS);
    for name in ["c1.cm", "c1-cmconfig", "c1-cmflag"] {
        let cm = cms.get(name).await.unwrap();
        assert_eq!(cm.owner_references()[0].uid, uid, "{name}");
    }
    let flags = cms.get("c1-cmflag").await.unwrap().data.unwrap();
    assert_eq!(flags["enable_all"], "1");
    Api::<Secret>::namespaced(client.clone(), NS)
        .get("c1.cm")
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .get("polardb-cluster-manager")
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .get("ns1-cluster-manager-rolebinding")
        .await
        .unwrap();

    cm_pod(&client, "c1.cm-abc", "node-1", "Pending", "30000").await;
    assert!(!cm.ensure_deployed(&spec()).await.unwrap().is_done());
    delete_pod(&client, "c1.cm-abc").await;
    cm_pod(&client, "c1.cm-abc", "node-1", "Running", "30000").await;
    assert_eq!(
        cm.ensure_deployed(&spec()).await.unwrap(),
        Progress::Done(())
    );
}

#[tokio::test]
async fn the_passwords_reach_the_secret_and_no_config_map() {
    let client = kube().await;
    manager(&client, MockCmApi::new())
        .ensure_deployed(&spec())
        .await
        .unwrap();
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("c1.cm")
        .await
        .unwrap();
    let conf = String::from_utf8(secret.data.unwrap()[cm_objects::MAIN_CONF].0.clone()).unwrap();
    assert!(conf.contains("pw-aurora-1") && conf.contains("pw-repl-2"));
    for cm in Api::<ConfigMap>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        let text = serde_json::to_string(&cm).unwrap();
        assert!(
            !text.contains("pw-aurora-1") && !text.contains("pw-repl-2"),
            "{}",
            cm.name_any()
        );
    }
    let d = Api::<Deployment>::namespaced(client, NS)
        .get("c1.cm")
        .await
        .unwrap();
    let text = serde_json::to_string(&d).unwrap();
    assert!(!text.contains("pw-aurora-1"));
}

#[tokio::test]
async fn existing_objects_are_left_as_they_are() {
    let client = kube().await;
    let mine = ConfigMap {
        metadata: ObjectMeta {
            name: Some("c1-cmflag".into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("enable_all".to_owned(), "0".to_owned())])),
        ..ConfigMap::default()
    };
    let cms = Api::<ConfigMap>::namespaced(client.clone(), NS);
    cms.create(&PostParams::default(), &mine).await.unwrap();
    manager(&client, MockCmApi::new())
        .ensure_deployed(&spec())
        .await
        .unwrap();
    assert_eq!(
        cms.get("c1-cmflag").await.unwrap().data.unwrap()["enable_all"],
        "0"
    );
}

#[tokio::test]
async fn an_existing_binding_gets_the_cm_service_account_added() {
    let client = kube().await;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some("ns1-cluster-manager-rolebinding".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "polardb4mpd-controller-manager-role".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "default".into(),
            namespace: Some(NS.into()),
            api_group: None,
        }]),
    };
    let api = Api::<ClusterRoleBinding>::all(client.clone());
    api.create(&PostParams::default(), &binding).await.unwrap();
    let cm = manager(&client, MockCmApi::new());
    cm.ensure_deployed(&spec()).await.unwrap();
    cm.ensure_deployed(&spec()).await.unwrap();
    let subjects = api
        .get("ns1-cluster-manager-rolebinding")
        .await
        .unwrap()
        .subjects
        .unwrap();
    let names: Vec<_> = subjects.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["default", "polardb-cluster-manager"]);
}

#[tokio::test]
async fn without_the_accounts_nothing_is_created() {
    let client = kube().await;
    let mut store = MockAccountStore::new();
    store.expect_accounts().returning(|_| Ok(vec![]));
    let cm = KubeClusterManager::new(
        client.clone(),
        config(),
        Arc::new(MockCmApi::new()),
        Arc::new(store),
    );
    let err = cm.ensure_deployed(&spec()).await.unwrap_err();
    assert!(
        err.is_not_found() && err.to_string().contains("aurora"),
        "{err}"
    );
    assert!(Api::<Deployment>::namespaced(client, NS)
        .get_opt("c1.cm")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_invalid_spec_is_rejected_naming_the_cluster() {
    let client = kube().await;
    let cm = manager(&client, MockCmApi::new());
    let err = cm
        .ensure_deployed(&CmSpec { port: 0, ..spec() })
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Rejected { .. }));
    assert!(
        err.to_string().contains("ns1/c1") && err.to_string().contains("port 0"),
        "{err}"
    );
}

#[tokio::test]
async fn calls_go_to_the_node_internal_ip_and_the_pod_port_label() {
    let client = kube().await;
    cm_pod(&client, "c1.cm-abc", "node-2", "Running", "30007").await;
    let mut api = MockCmApi::new();
    api.expect_set_ha()
        .with(eq("http://10.0.0.2:30007"), eq(true))
        .times(1)
        .returning(|_, _| Ok(()));
    api.expect_status()
        .with(eq("http://10.0.0.2:30007"))
        .times(1)
        .returning(|_| Ok(CmStatus::default()));
    let cm = manager(&client, api);
    cm.set_ha(&cluster(), true).await.unwrap();
    cm.status(&cluster()).await.unwrap();
}

#[tokio::test]
async fn no_running_cm_pod_or_two_of_them_is_unavailable() {
    let client = kube().await;
    let cm = manager(&client, MockCmApi::new());
    let err = cm.status(&cluster()).await.unwrap_err();
    assert!(
        unavailable(&err) && err.to_string().contains("no cluster-manager pod"),
        "{err}"
    );
    cm_pod(&client, "c1.cm-a", "node-1", "Pending", "30000").await;
    let err = cm.status(&cluster()).await.unwrap_err();
    assert!(
        unavailable(&err) && err.to_string().contains("not running"),
        "{err}"
    );
    cm_pod(&client, "c1.cm-b", "node-2", "Running", "30000").await;
    let err = cm.status(&cluster()).await.unwrap_err();
    assert!(
        unavailable(&err) && err.to_string().contains("2 cluster-manager pods"),
        "{err}"
    );
    // A finished pod does not count.
    cm_pod(&client, "c1.cm-c", "node-2", "Failed", "30000").await;
    delete_pod(&client, "c1.cm-a").await;
    assert_eq!(
        cm.base_url(&cluster()).await.unwrap(),
        "http://10.0.0.2:30000"
    );
}

#[tokio::test]
async fn a_cm_pod_without_a_port_label_is_rejected() {
    let client = kube().await;
    cm_pod(&client, "c1.cm-a", "node-1", "Running", "http").await;
    let err = manager(&client, MockCmApi::new())
        .base_url(&cluster())
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("c1.cm-a"), "{err}");
}

#[tokio::test]
async fn the_base_url_override_wins_over_the_pod_lookup() {
    let client = kube().await;
    let mut api = MockCmApi::new();
    api.expect_add_ins()
        .with(eq("http://127.0.0.1:9"), always())
        .times(1)
        .returning(|_, _| Ok(()));
    let cm = manager(&client, api).with_base_url_override(Arc::new(|c: &ClusterRef| {
        (c.name == "c1").then(|| "http://127.0.0.1:9".to_owned())
    }));
    cm.add_ins(&cluster(), &CmInstance::default())
        .await
        .unwrap();
    let err = cm.status(&ClusterRef::new(NS, "other")).await.unwrap_err();
    assert!(unavailable(&err), "{err}");
}

#[tokio::test]
async fn upgrade_sets_the_image_with_the_recreate_strategy() {
    let client = kube().await;
    let cm = manager(&client, MockCmApi::new());
    let err = cm.upgrade(&cluster(), "cm:2").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    cm.ensure_deployed(&spec()).await.unwrap();
    cm.upgrade(&cluster(), "cm:2").await.unwrap();
    let api = Api::<Deployment>::namespaced(client.clone(), NS);
    let d = api.get("c1.cm").await.unwrap();
    let version = d.resource_version();
    let spec = d.spec.unwrap();
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert_eq!(strategy.rolling_update, None);
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("cm:2")
    );
    // The same image again writes nothing.
    cm.upgrade(&cluster(), "cm:2").await.unwrap();
    assert_eq!(api.get("c1.cm").await.unwrap().resource_version(), version);
}

#[tokio::test]
async fn remove_turns_ha_off_deletes_and_waits_for_the_pods_then_the_config_maps() {
    let client = kube().await;
    let mut api = MockCmApi::new();
    api.expect_set_ha()
        .with(eq("http://10.0.0.1:30000"), eq(false))
        .times(1)
        .returning(|_, _| Ok(()));
    let cm = manager(&client, api);
    cm.ensure_deployed(&spec()).await.unwrap();
    cm_pod(&client, "c1.cm-abc", "node-1", "Running", "30000").await;
    let leader = ConfigMap {
        metadata: ObjectMeta {
            name: Some("c1-cmleader".into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    let cms = Api::<ConfigMap>::namespaced(client.clone(), NS);
    cms.create(&PostParams::default(), &leader).await.unwrap();

    assert!(!cm.remove(&cluster()).await.unwrap().is_done());
    assert!(Api::<Deployment>::namespaced(client.clone(), NS)
        .get_opt("c1.cm")
        .await
        .unwrap()
        .is_none());
    assert!(cms.get_opt("c1.cm").await.unwrap().is_some());
    // Still a pod: still pending, HA is not turned off twice.
    assert!(!cm.remove(&cluster()).await.unwrap().is_done());
    delete_pod(&client, "c1.cm-abc").await;
    assert_eq!(cm.remove(&cluster()).await.unwrap(), Progress::Done(()));
    for name in ["c1.cm", "c1-cmconfig", "c1-cmflag", "c1-cmleader"] {
        assert!(cms.get_opt(name).await.unwrap().is_none(), "{name}");
    }
    assert!(Api::<Secret>::namespaced(client.clone(), NS)
        .get_opt("c1.cm")
        .await
        .unwrap()
        .is_none());
    // The binding and the service account stay (the namespace shares them).
    assert!(Api::<ClusterRoleBinding>::all(client.clone())
        .get_opt("ns1-cluster-manager-rolebinding")
        .await
        .unwrap()
        .is_some());
    assert_eq!(cm.remove(&cluster()).await.unwrap(), Progress::Done(()));
}

#[tokio::test]
async fn remove_goes_on_when_the_cm_cannot_turn_ha_off() {
    let client = kube().await;
    let mut api = MockCmApi::new();
    api.expect_set_ha().returning(|_, _| {
        Err(PortError::Unavailable {
            port: "cluster_manager",
            message: "down".into(),
        })
    });
    let cm = manager(&client, api);
    cm.ensure_deployed(&spec()).await.unwrap();
    cm_pod(&client, "c1.cm-abc", "node-1", "Running", "30000").await;
    assert!(!cm.remove(&cluster()).await.unwrap().is_done());
    assert!(Api::<Deployment>::namespaced(client, NS)
        .get_opt("c1.cm")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_cm_pod_on_the_rw_node_is_moved() {
    let client = kube().await;
    let cm = manager(&client, MockCmApi::new());
    cm_pod(&client, "c1.cm-abc", "node-1", "Running", "30000").await;
    let progress = cm.ensure_affinity(&cluster(), "node-1").await.unwrap();
    assert!(!progress.is_done());
    assert!(Api::<Pod>::namespaced(client.clone(), NS)
        .get_opt("c1.cm-abc")
        .await
        .unwrap()
        .is_none());
    // Until the replacement runs, pending; then done.
    assert!(!cm
        .ensure_affinity(&cluster(), "node-1")
        .await
        .unwrap()
        .is_done());
    cm_pod(&client, "c1.cm-def", "node-2", "Running", "30000").await;
    assert_eq!(
        cm.ensure_affinity(&cluster(), "node-1").await.unwrap(),
        Progress::Done(())
    );
}
