//! The SMS client (`KubeStorageManager`) against the SMS emulator on a real socket, with its
//! job records on a kube-fake-client API server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use serde_json::json;
use shared_storage::ports::kube::{KubePortsConfig, KubeStorageManager};
use shared_storage::ports::{PortError, Progress, PvcRef, StorageManager, StorageRequest};
use test_cluster::sms::{Fault, Scope, SmsEmulator, SmsPvc};

const NS: &str = "ns1";
const PVC: &str = "pvc-1";

fn pvc() -> PvcRef {
    PvcRef {
        namespace: NS.into(),
        name: PVC.into(),
    }
}

fn request(owner: &str) -> StorageRequest {
    StorageRequest {
        pvc: pvc(),
        volume_id: "36e00084100ee7ec9".into(),
        volume_type: "multipath".into(),
        owner: owner.into(),
        format: true,
    }
}

fn config(base_url: Option<String>) -> KubePortsConfig {
    KubePortsConfig {
        sms_base_url: base_url,
        http_connect_timeout: Duration::from_secs(1),
        http_request_timeout: Duration::from_secs(2),
        http_retries: 2,
        http_retry_pause: Duration::from_millis(10),
        ..KubePortsConfig::default()
    }
}

async fn kube() -> kube::Client {
    kube_fake_client::ClientBuilder::new()
        .build()
        .await
        .unwrap()
}

struct Env {
    sms: SmsEmulator,
    kube: kube::Client,
    storage: KubeStorageManager,
}

async fn env() -> Env {
    let sms = SmsEmulator::start().await.unwrap();
    sms.add_pvc(NS, PVC);
    sms.add_node("node-1", "10.0.0.1");
    sms.add_node("node-2", "10.0.0.2");
    let kube = kube().await;
    let storage =
        KubeStorageManager::new(kube.clone(), Arc::new(config(Some(sms.base_url())))).unwrap();
    Env { sms, kube, storage }
}

fn pending(p: &Progress) -> bool {
    matches!(p, Progress::Pending { .. })
}

#[tokio::test]
async fn use_sends_the_documented_body_and_is_pending_while_ready_is_null() {
    let e = env().await;
    e.sms.set_ready_after(2);
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    let posts = e.sms.requests_to("/pvcs/use");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].body,
        json!({"name": PVC, "namespace": NS, "resource_id": "c1",
               "volume_id": "36e00084100ee7ec9", "volume_type": "multipath", "need_format": true})
    );
    // The owner is set at once; the format finishes on the third poll.
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().owner, "c1");
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().format_count, 0);
    assert_eq!(
        e.storage.use_storage(&request("c1")).await.unwrap(),
        Progress::Done(())
    );
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().format_count, 1);
    // One POST, then one poll per call (never a loop), each with the job's id.
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 1);
    let polls = e.sms.requests_to("/pvcs/ready");
    assert_eq!(polls.len(), 3);
    assert!(polls
        .iter()
        .all(|p| p.query["workflowId"] == "wfl-1" && p.query["name"] == PVC));
}

#[tokio::test]
async fn a_restarted_operator_polls_the_recorded_job_instead_of_posting_again() {
    let e = env().await;
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    // A new adapter (a new process) on the same API server.
    let restarted =
        KubeStorageManager::new(e.kube.clone(), Arc::new(config(Some(e.sms.base_url())))).unwrap();
    assert!(pending(
        &restarted.use_storage(&request("c1")).await.unwrap()
    ));
    assert_eq!(
        restarted.use_storage(&request("c1")).await.unwrap(),
        Progress::Done(())
    );
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 1);
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().format_count, 1);
    let record = Api::<ConfigMap>::namespaced(e.kube.clone(), NS)
        .get("pvc-1.sms")
        .await
        .unwrap();
    let data = record.data.unwrap();
    assert_eq!(data["formattedFor"], "c1");
    assert_eq!(data["formattedVolume"], "36e00084100ee7ec9");
    assert!(!data.contains_key("job"));
}

#[tokio::test]
async fn a_volume_already_formatted_for_the_owner_is_not_formatted_again() {
    let e = env().await;
    e.sms.set_ready_after(0);
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert!(e
        .storage
        .use_storage(&request("c1"))
        .await
        .unwrap()
        .is_done());
    // A re-run of the step (or a release and a re-create of the cluster): no format.
    assert!(e
        .storage
        .use_storage(&request("c1"))
        .await
        .unwrap()
        .is_done());
    let posts = e.sms.requests_to("/pvcs/use");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].body["need_format"], json!(false));
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().format_count, 1);
}

#[tokio::test]
async fn a_volume_owned_by_another_cluster_is_rejected_with_the_servers_text() {
    let e = env().await;
    e.sms.set_pvc(
        NS,
        PVC,
        SmsPvc {
            owner: "other".into(),
            ..SmsPvc::default()
        },
    );
    let err = e.storage.use_storage(&request("c1")).await.unwrap_err();
    assert!(matches!(err, PortError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("used for other resourceId other"),
        "{err}"
    );
    // A definite answer: not retried.
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 1);
}

#[tokio::test]
async fn a_pvc_the_sms_does_not_know_is_not_found() {
    let e = env().await;
    let mut unknown = request("c1");
    unknown.pvc.name = "nope".into();
    let err = e.storage.use_storage(&unknown).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("can not find pvc nope"), "{err}");
}

#[tokio::test]
async fn the_write_lock_polls_topo_until_the_node_holds_it() {
    let e = env().await;
    e.sms.set_ready_after(0);
    e.storage.use_storage(&request("c1")).await.unwrap();
    e.storage.use_storage(&request("c1")).await.unwrap();
    e.sms.set_ready_after(1);
    assert!(pending(
        &e.storage.set_write_lock(&pvc(), "node-2").await.unwrap()
    ));
    assert!(pending(
        &e.storage.set_write_lock(&pvc(), "node-2").await.unwrap()
    ));
    let posts = e.sms.requests_to("/pvcs/lock");
    assert_eq!(
        posts[0].body,
        json!({"name": PVC, "namespace": NS, "write_lock_node_id": "node-2"})
    );
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().write_node, None);
    assert_eq!(
        e.storage.set_write_lock(&pvc(), "node-2").await.unwrap(),
        Progress::Done(())
    );
    assert_eq!(
        e.sms.pvc(NS, PVC).unwrap().write_node.as_deref(),
        Some("node-2")
    );
    // Asked again: the SMS answers Dummy-000 and the topology shows the node at once.
    assert!(e
        .storage
        .set_write_lock(&pvc(), "node-2")
        .await
        .unwrap()
        .is_done());
    let topo = e.sms.requests_to("/pvcs/topo");
    assert_eq!(topo.last().unwrap().query["workflowId"], "Dummy-000");
}

#[tokio::test]
async fn a_write_lock_while_another_job_holds_the_pvc_is_pending() {
    let e = env().await;
    e.sms.set_ready_after(3);
    // A job this adapter has no record of (started by someone else) locks the PVC.
    let other =
        KubeStorageManager::new(kube().await, Arc::new(config(Some(e.sms.base_url())))).unwrap();
    assert!(pending(&other.use_storage(&request("c1")).await.unwrap()));
    let progress = e.storage.set_write_lock(&pvc(), "node-1").await.unwrap();
    match progress {
        Progress::Pending { reason } => assert!(reason.contains("locked by wfl"), "{reason}"),
        other => panic!("expected pending, got {other:?}"),
    }
    // A use job of its own that still runs keeps the lock waiting too.
    let e = env().await;
    e.sms.set_ready_after(3);
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    match e.storage.set_write_lock(&pvc(), "node-1").await.unwrap() {
        Progress::Pending { reason } => assert!(reason.contains("still running"), "{reason}"),
        other => panic!("expected pending, got {other:?}"),
    }
    assert!(e.sms.requests_to("/pvcs/lock").is_empty());
}

#[tokio::test]
async fn release_of_a_pvc_the_sms_cannot_find_is_done() {
    let e = env().await;
    let unknown = PvcRef {
        namespace: NS.into(),
        name: "gone".into(),
    };
    assert_eq!(
        e.storage.release(&unknown, "c1").await.unwrap(),
        Progress::Done(())
    );
    assert!(e.sms.requests_to("/pvcs/release").is_empty());
    assert_eq!(e.sms.requests_to("/pvcs/gone").len(), 1);
}

#[tokio::test]
async fn release_of_a_volume_another_cluster_uses_is_done_and_leaves_it_alone() {
    let e = env().await;
    e.sms.set_pvc(
        NS,
        PVC,
        SmsPvc {
            owner: "other".into(),
            ..SmsPvc::default()
        },
    );
    assert!(e.storage.release(&pvc(), "c1").await.unwrap().is_done());
    assert!(e.sms.requests_to("/pvcs/release").is_empty());
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().owner, "other");
}

#[tokio::test]
async fn release_posts_once_and_polls_ready_until_the_volume_is_free() {
    let e = env().await;
    e.sms.set_ready_after(0);
    e.storage.use_storage(&request("c1")).await.unwrap();
    e.storage.use_storage(&request("c1")).await.unwrap();
    assert!(pending(&e.storage.release(&pvc(), "c1").await.unwrap()));
    let posts = e.sms.requests_to("/pvcs/release");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, json!({"name": PVC, "namespace": NS}));
    let owner_reads = e.sms.requests_to("/pvcs/pvc-1");
    assert_eq!(owner_reads[0].query["namespace"], NS);
    assert!(e.storage.release(&pvc(), "c1").await.unwrap().is_done());
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().owner, "");
    assert!(e.storage.release(&pvc(), "c1").await.unwrap().is_done());
    assert_eq!(e.sms.requests_to("/pvcs/release").len(), 1);
}

#[tokio::test]
async fn a_failed_workflow_is_rejected_with_the_servers_message() {
    let e = env().await;
    e.sms.set_ready_after(0);
    e.sms.fail_next_job("mkfs failed on node-1");
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    let err = e.storage.use_storage(&request("c1")).await.unwrap_err();
    assert!(matches!(err, PortError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("workflow exec err mkfs failed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_workflow_the_sms_forgot_is_started_again() {
    let e = env().await;
    e.sms.set_ready_after(0);
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    e.sms.forget_jobs();
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 2);
    assert!(e
        .storage
        .use_storage(&request("c1"))
        .await
        .unwrap()
        .is_done());
}

#[tokio::test]
async fn a_500_is_retried_a_bounded_number_of_times_then_unavailable() {
    let e = env().await;
    e.sms.inject(Fault::Http500, Scope::always("/pvcs/use"));
    let err = e.storage.use_storage(&request("c1")).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("POST /pvcs/use") && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(
        text.contains("3 attempt(s)") && text.contains("injected failure"),
        "{text}"
    );
    // 1 + http_retries requests, no more.
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 3);
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().owner, "");
}

#[tokio::test]
async fn a_500_that_goes_away_within_the_retries_is_not_seen() {
    let e = env().await;
    e.sms.inject(Fault::Http500, Scope::Next(2));
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 3);
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_fails_within_the_timeout_and_a_second() {
    let sms = SmsEmulator::start().await.unwrap();
    sms.add_pvc(NS, PVC);
    let timeout = Duration::from_millis(300);
    let storage = KubeStorageManager::new(
        kube().await,
        Arc::new(KubePortsConfig {
            http_request_timeout: timeout,
            http_retries: 0,
            ..config(Some(sms.base_url()))
        }),
    )
    .unwrap();
    sms.inject(
        Fault::Slow(Duration::from_secs(5)),
        Scope::always("/pvcs/use"),
    );
    let started = Instant::now();
    let err = storage.use_storage(&request("c1")).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < timeout + Duration::from_secs(1), "took {took:?}");
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("POST /pvcs/use"), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn a_timeout_is_retried_and_the_next_attempt_can_succeed() {
    let e = env().await;
    let storage = KubeStorageManager::new(
        e.kube.clone(),
        Arc::new(KubePortsConfig {
            http_request_timeout: Duration::from_millis(300),
            ..config(Some(e.sms.base_url()))
        }),
    )
    .unwrap();
    e.sms.inject(
        Fault::Slow(Duration::from_secs(3)),
        Scope::path("/pvcs/use", 1),
    );
    assert!(pending(&storage.use_storage(&request("c1")).await.unwrap()));
    // The slow attempt was handled too (the owner was set), the retry found the job.
    assert_eq!(e.sms.requests_to("/pvcs/use").len(), 2);
}

#[tokio::test]
async fn nobody_listening_is_unavailable_naming_the_path_and_not_the_host() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let storage = KubeStorageManager::new(
        kube().await,
        Arc::new(config(Some(format!("http://user:s3cret@127.0.0.1:{port}")))),
    )
    .unwrap();
    let err = storage.release(&pvc(), "c1").await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("GET /pvcs/pvc-1"), "{text}");
    assert!(text.contains("3 attempt(s)"), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("namespace=ns1"),
        "{text}"
    );
}

#[tokio::test]
async fn every_request_says_its_body_is_json() {
    let e = env().await;
    e.storage.use_storage(&request("c1")).await.unwrap();
    e.storage.use_storage(&request("c1")).await.unwrap();
    e.storage.release(&pvc(), "c1").await.unwrap();
    let requests = e.sms.requests();
    assert!(requests.len() >= 4);
    assert!(requests
        .iter()
        .all(|r| r.content_type.as_deref() == Some("application/json")));
}

#[tokio::test]
async fn the_address_is_the_cluster_ip_and_first_port_of_the_sms_service() {
    let sms = SmsEmulator::start().await.unwrap();
    sms.add_pvc(NS, PVC);
    let kube = kube().await;
    let service = Service {
        metadata: ObjectMeta {
            name: Some("polardb-sms-manager".into()),
            namespace: Some("kube-system".into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("127.0.0.1".into()),
            ports: Some(vec![
                ServicePort {
                    port: i32::from(sms.port()),
                    ..ServicePort::default()
                },
                ServicePort {
                    port: 1,
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    Api::<Service>::namespaced(kube.clone(), "kube-system")
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let storage = KubeStorageManager::new(kube, Arc::new(config(None))).unwrap();
    assert_eq!(
        storage.base_url().await.unwrap(),
        format!("http://127.0.0.1:{}", sms.port())
    );
    assert!(pending(&storage.use_storage(&request("c1")).await.unwrap()));
    assert_eq!(sms.requests_to("/pvcs/use").len(), 1);
}

#[tokio::test]
async fn a_missing_sms_service_is_not_found() {
    let storage = KubeStorageManager::new(kube().await, Arc::new(config(None))).unwrap();
    let err = storage.use_storage(&request("c1")).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        err.to_string().contains("kube-system/polardb-sms-manager"),
        "{err}"
    );
}

#[tokio::test]
async fn a_format_that_finished_unseen_is_recorded_before_another_job_replaces_it() {
    let e = env().await;
    e.sms.set_ready_after(0);
    // The format is started; its end is never polled through use_storage.
    assert!(pending(
        &e.storage.use_storage(&request("c1")).await.unwrap()
    ));
    assert!(pending(
        &e.storage.set_write_lock(&pvc(), "node-1").await.unwrap()
    ));
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().format_count, 1);
    assert!(e
        .storage
        .set_write_lock(&pvc(), "node-1")
        .await
        .unwrap()
        .is_done());
    // The record kept the format: asking to use the volume again does not format it.
    assert!(e
        .storage
        .use_storage(&request("c1"))
        .await
        .unwrap()
        .is_done());
    assert_eq!(
        e.sms.requests_to("/pvcs/use")[1].body["need_format"],
        json!(false)
    );
    assert_eq!(e.sms.pvc(NS, PVC).unwrap().format_count, 1);
}
