//! The CM REST client (`HttpCmApi`) against the CM emulator on a real socket.

use std::time::{Duration, Instant};

use serde_json::json;
use shared_storage::ports::kube::{CmApi, HttpCmApi, KubePortsConfig};
use shared_storage::ports::{CmInstance, CmRole, PortError};
use test_cluster::cm::{CmEmulator, Fault, Scope};

fn config() -> KubePortsConfig {
    KubePortsConfig {
        http_connect_timeout: Duration::from_secs(1),
        http_request_timeout: Duration::from_secs(2),
        cm_add_ins_timeout: Duration::from_secs(3),
        http_retries: 2,
        http_retry_pause: Duration::from_millis(10),
        ..KubePortsConfig::default()
    }
}

fn ins(n: u8, role: CmRole) -> CmInstance {
    CmInstance {
        pod_name: format!("c1-100{n}-200{n}"),
        host_ip: format!("10.0.0.{n}"),
        client_ip: format!("192.168.0.{n}"),
        host_name: format!("node-{n}"),
        port: 5432,
        role: Some(role),
    }
}

async fn setup() -> (CmEmulator, HttpCmApi) {
    let cm = CmEmulator::start().await.unwrap();
    (cm, HttpCmApi::new(&config()).unwrap())
}

#[tokio::test]
async fn add_ins_sends_the_documented_fields_as_strings() {
    let (cm, api) = setup().await;
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    let mut ro = ins(2, CmRole::Ro);
    ro.host_name.clear();
    api.add_ins(&cm.base_url(), &ro).await.unwrap();
    let sent = cm.requests_to("/v1/add_ins");
    assert_eq!(
        sent[0].body,
        json!({"ip": "192.168.0.1", "port": "5432", "type": "RW", "sync": "SYNC",
               "pod_name": "c1-1001-2001", "use_node_driver": "false", "host_name": "node-1"})
    );
    // An empty host name is left out.
    assert_eq!(
        sent[1].body,
        json!({"ip": "192.168.0.2", "port": "5432", "type": "RO", "sync": "SYNC",
               "pod_name": "c1-1002-2002", "use_node_driver": "false"})
    );
    assert!(sent
        .iter()
        .all(|r| r.content_type.as_deref() == Some("application/json")));
    let known = cm.instance("c1-1001-2001").unwrap();
    assert_eq!(
        (known.phase.as_str(), known.sync.as_str()),
        ("STARTING", "SYNC")
    );
}

#[tokio::test]
async fn an_rw_that_already_exists_counts_as_added() {
    let (cm, api) = setup().await;
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    assert_eq!(cm.instances().len(), 1);
    assert_eq!(cm.requests_to("/v1/add_ins").len(), 2);
}

#[tokio::test]
async fn removing_an_instance_that_does_not_exist_counts_as_removed() {
    let (cm, api) = setup().await;
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    api.remove_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    assert!(cm.instances().is_empty());
    api.remove_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    assert_eq!(cm.requests_to("/v1/remove_ins").len(), 2);
}

#[tokio::test]
async fn a_code_500_envelope_is_rejected_with_the_servers_message_and_not_retried() {
    let (cm, api) = setup().await;
    let err = api
        .add_ins(&cm.base_url(), &ins(2, CmRole::Ro))
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Rejected { .. }), "{err}");
    assert!(err.to_string().contains("cause rw not exist"), "{err}");
    assert_eq!(cm.requests_to("/v1/add_ins").len(), 1);

    cm.inject(
        Fault::Envelope500("switch in progress".into()),
        Scope::path("/v1/enable", 1),
    );
    let err = api.set_ha(&cm.base_url(), false).await.unwrap_err();
    assert!(
        err.to_string().contains("code 500: switch in progress"),
        "{err}"
    );
    assert!(cm.ha_enabled());
}

#[tokio::test]
async fn a_cm_without_a_leader_is_unavailable() {
    let (cm, api) = setup().await;
    cm.set_leader(false);
    let err = api.status(&cm.base_url()).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    let err = api.set_ha(&cm.base_url(), true).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("no CM leader"), "{err}");
}

#[tokio::test]
async fn set_ha_sends_enable_as_an_integer_and_status_shows_it() {
    let (cm, api) = setup().await;
    api.set_ha(&cm.base_url(), false).await.unwrap();
    assert!(!cm.ha_enabled());
    let status = api.status(&cm.base_url()).await.unwrap();
    assert!(!status.ha_enabled);
    assert_eq!(status.phase, "DisableAllPhase");
    api.set_ha(&cm.base_url(), true).await.unwrap();
    let sent = cm.requests_to("/v1/enable");
    assert_eq!(sent[0].body, json!({"enable": 0}));
    assert_eq!(sent[1].body, json!({"enable": 1}));
    assert!(api.status(&cm.base_url()).await.unwrap().ha_enabled);
}

#[tokio::test]
async fn status_has_no_rw_until_one_is_added_and_instances_run_after_polls() {
    let (cm, api) = setup().await;
    cm.set_running_after(1);
    let empty = api.status(&cm.base_url()).await.unwrap();
    assert_eq!(empty.rw, None);
    assert!(empty.ro.is_empty());
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    api.add_ins(&cm.base_url(), &ins(2, CmRole::Ro))
        .await
        .unwrap();
    let first = api.status(&cm.base_url()).await.unwrap();
    assert_eq!(first.rw.as_ref().unwrap().phase, "STARTING");
    let second = api.status(&cm.base_url()).await.unwrap();
    let rw = second.rw.unwrap();
    assert_eq!(
        (
            rw.endpoint.as_str(),
            rw.pod_name.as_str(),
            rw.phase.as_str()
        ),
        ("192.168.0.1:5432", "c1-1001-2001", "RUNNING")
    );
    assert_eq!(rw.start_at.len(), "YYYY-MM-DD HH:MM:SS".len());
    assert_eq!(second.ro[0].endpoint, "192.168.0.2:5432");
    assert_eq!(second.ro[0].phase, "RUNNING");
    let polls = cm.requests_to("/v1/status");
    assert!(polls.iter().all(|r| r.query["type"] == "visual"));
}

#[tokio::test]
async fn a_failed_instance_and_a_promotion_show_in_the_status() {
    let (cm, api) = setup().await;
    cm.set_running_after(0);
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    api.add_ins(&cm.base_url(), &ins(2, CmRole::Ro))
        .await
        .unwrap();
    assert!(cm.fail_instance("c1-1001-2001"));
    let status = api.status(&cm.base_url()).await.unwrap();
    assert_eq!(status.rw.unwrap().phase, "FAILED");
    assert!(cm.promote("c1-1002-2002"));
    let status = api.status(&cm.base_url()).await.unwrap();
    assert_eq!(status.rw.unwrap().endpoint, "192.168.0.2:5432");
    assert_eq!(status.ro[0].endpoint, "192.168.0.1:5432");
}

#[tokio::test]
async fn switchover_sends_from_to_and_force_and_swaps_the_roles() {
    let (cm, api) = setup().await;
    cm.set_running_after(0);
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    api.add_ins(&cm.base_url(), &ins(2, CmRole::Ro))
        .await
        .unwrap();
    api.switchover(&cm.base_url(), "192.168.0.1:5432", "192.168.0.2:5432")
        .await
        .unwrap();
    assert_eq!(
        cm.requests_to("/v1/switchover")[0].body,
        json!({"from": "192.168.0.1:5432", "to": "192.168.0.2:5432", "force": 1})
    );
    let status = api.status(&cm.base_url()).await.unwrap();
    assert_eq!(status.rw.unwrap().endpoint, "192.168.0.2:5432");
    let err = api
        .switchover(&cm.base_url(), "192.168.0.1:5432", "192.168.0.9:5432")
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Rejected { .. }), "{err}");
}

#[tokio::test]
async fn an_http_500_is_retried_a_bounded_number_of_times() {
    let (cm, api) = setup().await;
    cm.inject(Fault::Http500, Scope::always("/v1/status"));
    let err = api.status(&cm.base_url()).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("GET /v1/status: HTTP 500 after 3 attempt(s)"),
        "{err}"
    );
    assert_eq!(cm.requests_to("/v1/status").len(), 3);
}

#[tokio::test]
async fn add_ins_has_the_longer_timeout_and_other_calls_the_short_one() {
    let (cm, _) = setup().await;
    let api = HttpCmApi::new(&KubePortsConfig {
        http_request_timeout: Duration::from_millis(300),
        cm_add_ins_timeout: Duration::from_secs(5),
        http_retries: 0,
        ..config()
    })
    .unwrap();
    cm.inject(Fault::Slow(Duration::from_millis(800)), Scope::Next(2));
    api.add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap();
    let started = Instant::now();
    let err = api.status(&cm.base_url()).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    assert!(
        took < Duration::from_millis(300) + Duration::from_secs(1),
        "took {took:?}"
    );
}

#[tokio::test]
async fn an_add_ins_that_times_out_is_not_sent_again() {
    let (cm, _) = setup().await;
    let api = HttpCmApi::new(&KubePortsConfig {
        cm_add_ins_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    cm.inject(
        Fault::Slow(Duration::from_secs(3)),
        Scope::always("/v1/add_ins"),
    );
    let started = Instant::now();
    let err = api
        .add_ins(&cm.base_url(), &ins(1, CmRole::Rw))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(300) + Duration::from_secs(1));
    assert!(matches!(err, PortError::Unavailable { .. }), "{err}");
    assert_eq!(cm.requests_to("/v1/add_ins").len(), 1);
    // The CM took the instance; the next status read tells the service so.
    assert_eq!(cm.instances().len(), 1);
}
