//! `KubeClusterManager` with the real `HttpCmApi`: the CM's base URL is found from its pod
//! on kube-fake-client, and the calls reach the CM emulator over loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus, Pod, PodSpec, PodStatus};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use shared_storage::crd::{MPDCluster, MPDClusterSpec};
use shared_storage::domain::StorageInfo;
use shared_storage::ports::kube::{KubeClusterManager, KubePortsConfig};
use shared_storage::ports::{
    Account, AccountStore, ClusterManager, ClusterRef, CmInstance, CmRole, CmSpec, PortError,
    Progress,
};
use test_cluster::cm::CmEmulator;

const NS: &str = "ns1";

/// The two accounts the CM needs.
struct Accounts;

#[async_trait::async_trait]
impl AccountStore for Accounts {
    async fn ensure_account(
        &self,
        _cluster: &ClusterRef,
        _logic_id: &str,
        name: &str,
        privilege: u32,
    ) -> Result<Account, PortError> {
        Ok(Account {
            name: name.into(),
            password: "pw".into(),
            privilege,
        })
    }

    async fn accounts(&self, _cluster: &ClusterRef) -> Result<Vec<Account>, PortError> {
        Ok(["aurora", "replicator"]
            .iter()
            .map(|n| Account {
                name: (*n).into(),
                password: format!("pw-{n}"),
                privilege: 7,
            })
            .collect())
    }
}

fn cluster() -> ClusterRef {
    ClusterRef::new(NS, "c1")
}

async fn kube() -> kube::Client {
    let mut cr = MPDCluster::new("c1", MPDClusterSpec::default());
    cr.metadata.namespace = Some(NS.into());
    let node = Node {
        metadata: ObjectMeta {
            name: Some("node-1".into()),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: "127.0.0.1".into(),
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    };
    kube_fake_client::ClientBuilder::new()
        .with_resource::<MPDCluster>()
        .with_object(cr)
        .with_object(node)
        .build()
        .await
        .unwrap()
}

/// What the Deployment controller and a kubelet would do with `<cluster>.cm` (until the
/// shared test kubelet does it): one Running pod from the template, on node-1.
async fn run_cm_pod(client: &kube::Client) {
    let d = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("c1.cm")
        .await
        .unwrap();
    let template = d.spec.unwrap().template;
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("c1.cm-7d9f-abcde".into()),
            namespace: Some(NS.into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            ..template.spec.unwrap()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    };
    Api::<Pod>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_cm_is_found_from_its_pod_and_the_calls_reach_it() {
    let emulator = CmEmulator::start().await.unwrap();
    emulator.set_running_after(0);
    let client = kube().await;
    let config = Arc::new(KubePortsConfig {
        http_request_timeout: Duration::from_secs(2),
        http_retry_pause: Duration::from_millis(10),
        ..KubePortsConfig::default()
    });
    let cm = KubeClusterManager::with_http(client.clone(), config, Arc::new(Accounts)).unwrap();
    let spec = CmSpec {
        cluster: cluster(),
        logic_id: "1000".into(),
        rw_physical_id: "1001".into(),
        image: "cm:1".into(),
        // The pod's `port` label, where the emulator listens.
        port: i32::from(emulator.port()),
        consensus_port: 30001,
        storage: StorageInfo {
            pvc_name: "pvc-1".into(),
            pvc_namespace: NS.into(),
            ..StorageInfo::default()
        },
    };
    assert!(!cm.ensure_deployed(&spec).await.unwrap().is_done());
    let err = cm.status(&cluster()).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");

    run_cm_pod(&client).await;
    assert_eq!(cm.ensure_deployed(&spec).await.unwrap(), Progress::Done(()));
    assert_eq!(
        cm.base_url(&cluster()).await.unwrap(),
        format!("http://127.0.0.1:{}", emulator.port())
    );
    let rw = CmInstance {
        pod_name: "c1-1001-1002".into(),
        host_ip: "127.0.0.1".into(),
        client_ip: "192.168.0.1".into(),
        host_name: "node-1".into(),
        port: 5432,
        role: Some(CmRole::Rw),
    };
    cm.add_ins(&cluster(), &rw).await.unwrap();
    cm.add_ins(&cluster(), &rw).await.unwrap();
    cm.set_ha(&cluster(), false).await.unwrap();
    let status = cm.status(&cluster()).await.unwrap();
    assert!(!status.ha_enabled);
    assert_eq!(status.rw.unwrap().endpoint, "192.168.0.1:5432");
    assert_eq!(emulator.requests_to("/v1/add_ins").len(), 2);
    let labels: BTreeMap<String, String> = Api::<Pod>::namespaced(client, NS)
        .get("c1.cm-7d9f-abcde")
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap();
    assert_eq!(labels["port"], emulator.port().to_string());
}
