//! Self-tests of the SMS and CM emulators, with a raw HTTP/1.1 client (so they check the
//! documented wire format, not another Rust client).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_cluster::cm::CmEmulator;
use test_cluster::emulator::{Fault, Scope};
use test_cluster::sms::{SmsEmulator, SmsPvc, DUMMY_WORKFLOW};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request; returns the status and the body.
async fn send(base: &str, method: &str, target: &str, body: Option<Value>) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // hyper answers with Content-Length for a full body; no chunk framing to strip.
    (status, body.to_owned())
}

async fn json_of(base: &str, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
    let (status, body) = send(base, method, target, body).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn sms_use_formats_after_the_polls_and_dummy_without_format() {
    let sms = SmsEmulator::start().await.unwrap();
    sms.add_pvc("ns", "p");
    let base = sms.base_url();
    let use_body = |fmt: bool| json!({"name":"p","namespace":"ns","resource_id":"c1","volume_id":"w","volume_type":"multipath","need_format":fmt});
    let (status, reply) = json_of(&base, "POST", "/pvcs/use", Some(use_body(true))).await;
    assert_eq!(status, 200);
    let id = reply["workflow_id"].as_str().unwrap().to_owned();
    // Asked again while it runs: the same job.
    let (_, again) = json_of(&base, "POST", "/pvcs/use", Some(use_body(true))).await;
    assert_eq!(again["workflow_id"], id.as_str());
    let ready = format!("/pvcs/ready?name=p&namespace=ns&workflowId={id}");
    assert_eq!(send(&base, "GET", &ready, None).await, (200, "null".into()));
    assert_eq!(
        json_of(&base, "GET", &ready, None).await,
        (200, json!({"is_ready": true}))
    );
    assert_eq!(sms.pvc("ns", "p").unwrap().format_count, 1);
    // Once finished, another format request formats again (the SMS is not idempotent).
    let (_, third) = json_of(&base, "POST", "/pvcs/use", Some(use_body(true))).await;
    assert_ne!(third["workflow_id"], id.as_str());
    let (_, dummy) = json_of(&base, "POST", "/pvcs/use", Some(use_body(false))).await;
    assert_eq!(dummy["workflow_id"], DUMMY_WORKFLOW);
}

#[tokio::test]
async fn sms_errors_use_the_servers_texts() {
    let sms = SmsEmulator::start().await.unwrap();
    sms.add_node("node-1", "10.0.0.1");
    sms.set_pvc(
        "ns",
        "p",
        SmsPvc {
            owner: "other".into(),
            ..SmsPvc::default()
        },
    );
    let base = sms.base_url();
    let (status, body) = json_of(
        &base,
        "POST",
        "/pvcs/use",
        Some(json!({"name":"p","namespace":"ns","resource_id":"c1","volume_id":"w","volume_type":"t","need_format":false})),
    )
    .await;
    assert_eq!(status, 500);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("used for other resourceId other"));
    let (status, body) = json_of(&base, "GET", "/pvcs/q?name=q&namespace=ns", None).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "can not find pvc name [q] namespace [ns]");
    let (_, body) = json_of(
        &base,
        "GET",
        "/pvcs/ready?name=p&namespace=ns&workflowId=wfl-9",
        None,
    )
    .await;
    assert_eq!(body["error"], "can not find workflow wfl-9");
    let (_, body) = json_of(
        &base,
        "POST",
        "/pvcs/lock",
        Some(json!({"name":"p","namespace":"ns","write_lock_node_id":"node-9"})),
    )
    .await;
    assert_eq!(body["error"], "can not find NodeId node-9 in clusterConf");
    // A body of the wrong type is a 400.
    let (status, _) = send(
        &base,
        "POST",
        "/pvcs/use",
        Some(json!({"name":"p","namespace":"ns","resource_id":"c1","volume_id":"w","volume_type":"t","need_format":"yes"})),
    )
    .await;
    assert_eq!(status, 400);
    let (_, view) = json_of(&base, "GET", "/pvcs/p?name=p&namespace=ns", None).await;
    assert_eq!(view["db_cluster_name"], "other");
}

#[tokio::test]
async fn sms_a_lock_job_holds_the_pvc_and_then_the_topology_shows_the_writer() {
    let sms = SmsEmulator::start().await.unwrap();
    sms.set_ready_after(0);
    sms.add_pvc("ns", "p");
    sms.add_node("node-1", "10.0.0.1");
    sms.add_node("node-2", "10.0.0.2");
    let base = sms.base_url();
    let lock = Some(json!({"name":"p","namespace":"ns","write_lock_node_id":"node-2"}));
    let (_, reply) = json_of(&base, "POST", "/pvcs/lock", lock.clone()).await;
    let id = reply["workflow_id"].as_str().unwrap().to_owned();
    let (_, busy) = json_of(&base, "POST", "/pvcs/lock", lock.clone()).await;
    assert_eq!(busy["error"], format!("pvc p is locked by wfl {id}"));
    let (_, topo) = json_of(
        &base,
        "GET",
        &format!("/pvcs/topo?name=p&namespace=ns&workflowId={id}"),
        None,
    )
    .await;
    assert_eq!(
        topo["write_node"],
        json!({"node_id":"node-2","node_ip":"10.0.0.2"})
    );
    assert_eq!(
        topo["read_nodes"],
        json!([{"node_id":"node-1","node_ip":"10.0.0.1"}])
    );
    let (_, again) = json_of(&base, "POST", "/pvcs/lock", lock).await;
    assert_eq!(again["workflow_id"], DUMMY_WORKFLOW);
}

#[tokio::test]
async fn sms_a_failed_job_and_injected_faults_answer_as_documented_and_are_logged() {
    let sms = SmsEmulator::start().await.unwrap();
    sms.set_ready_after(0);
    sms.add_pvc("ns", "p");
    let base = sms.base_url();
    sms.fail_next_job("disk gone");
    let (_, reply) = json_of(
        &base,
        "POST",
        "/pvcs/release",
        Some(json!({"name":"p","namespace":"ns"})),
    )
    .await;
    let id = reply["workflow_id"].as_str().unwrap().to_owned();
    let (status, body) = json_of(
        &base,
        "GET",
        &format!("/pvcs/ready?name=p&namespace=ns&workflowId={id}"),
        None,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "workflow exec err disk gone ");

    sms.inject(Fault::Http500, Scope::Next(2));
    assert_eq!(
        send(&base, "GET", "/pvcs/p?namespace=ns", None).await.0,
        500
    );
    assert_eq!(
        send(&base, "GET", "/pvcs/p?namespace=ns", None).await.0,
        500
    );
    assert_eq!(
        send(&base, "GET", "/pvcs/p?namespace=ns", None).await.0,
        200
    );
    sms.inject(
        Fault::Slow(Duration::from_millis(200)),
        Scope::path("/pvcs/p", 1),
    );
    let started = Instant::now();
    assert_eq!(
        send(&base, "GET", "/pvcs/p?namespace=ns", None).await.0,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    let log = sms.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(log[0].body, json!({"name":"p","namespace":"ns"}));
    assert_eq!(log[2].query["namespace"], "ns");
    assert_eq!(log[2].content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn cm_instances_run_after_polls_and_rw_is_left_out_without_one() {
    let cm = CmEmulator::start().await.unwrap();
    let base = cm.base_url();
    let (_, status) = json_of(&base, "GET", "/v1/status?type=visual", None).await;
    assert_eq!(status["phase"], "RunningPhase");
    assert!(status.get("rw").is_none() && status.get("ro").is_none());
    let add = |ip: &str, kind: &str| {
        json!({"ip": ip, "port": "5432", "type": kind, "sync": "SYNC", "pod_name": format!("pod-{ip}"),
               "use_node_driver": "false", "host_name": "node-1"})
    };
    let (_, reply) = json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.2", "RO"))).await;
    assert!(reply["msg"]
        .as_str()
        .unwrap()
        .contains("cause rw not exist"));
    assert_eq!(
        json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.1", "RW"))).await,
        (200, json!({"code": 200}))
    );
    let (_, twice) = json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.1", "RW"))).await;
    assert_eq!(twice["code"], 500);
    assert!(twice["msg"].as_str().unwrap().contains("already exist"));
    json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.2", "RO"))).await;
    // An RO already known is skipped and reported as success.
    assert_eq!(
        json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.2", "RO")))
            .await
            .1,
        json!({"code": 200})
    );
    let (_, first) = json_of(&base, "GET", "/v1/status?type=visual", None).await;
    assert_eq!(first["rw"]["phase"], "STARTING");
    let (_, second) = json_of(&base, "GET", "/v1/status?type=visual", None).await;
    assert_eq!(second["rw"]["phase"], "RUNNING");
    assert_eq!(second["ro"][0]["endpoint"], "192.168.0.2:5432");
    // A port as a number is refused, as the CM's JSON decoder does.
    let mut numeric = add("192.168.0.3", "RO");
    numeric["port"] = json!(5432);
    let (_, bad) = json_of(&base, "POST", "/v1/add_ins", Some(numeric)).await;
    assert_eq!(bad["code"], 500);
    let (_, gone) = json_of(
        &base,
        "POST",
        "/v1/remove_ins",
        Some(add("192.168.0.9", "RO")),
    )
    .await;
    assert!(gone["msg"].as_str().unwrap().contains("not exist"));
}

#[tokio::test]
async fn cm_enable_switchover_and_failover_change_the_status_and_injected_faults_change_nothing() {
    let cm = CmEmulator::start().await.unwrap();
    cm.set_running_after(0);
    let base = cm.base_url();
    let add = |ip: &str, kind: &str| json!({"ip": ip, "port": "5432", "type": kind, "sync": "SYNC", "pod_name": format!("pod-{ip}"), "use_node_driver": "false"});
    json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.1", "RW"))).await;
    json_of(&base, "POST", "/v1/add_ins", Some(add("192.168.0.2", "RO"))).await;
    assert_eq!(
        json_of(&base, "POST", "/v1/enable", Some(json!({"enable": 0})))
            .await
            .1["code"],
        200
    );
    assert!(!cm.ha_enabled());
    let (_, status) = json_of(&base, "GET", "/v1/status?type=visual", None).await;
    assert_eq!(status["phase"], "DisableAllPhase");
    assert_eq!(
        json_of(&base, "POST", "/v1/enable", Some(json!({"enable": "1"})))
            .await
            .1["code"],
        500
    );
    let switch = json!({"from": "192.168.0.1:5432", "to": "192.168.0.2:5432", "force": 1});
    assert_eq!(
        json_of(&base, "POST", "/v1/switchover", Some(switch))
            .await
            .1["code"],
        200
    );
    assert_eq!(
        cm.instance("pod-192.168.0.2").unwrap().role,
        test_cluster::cm::CmRole::Rw
    );
    assert!(cm.fail_instance("pod-192.168.0.2"));
    assert!(cm.promote("pod-192.168.0.1"));
    let (_, status) = json_of(&base, "GET", "/v1/status?type=visual", None).await;
    assert_eq!(status["rw"]["endpoint"], "192.168.0.1:5432");
    assert_eq!(status["ro"][0]["phase"], "FAILED");

    cm.inject(
        Fault::Envelope500("busy".into()),
        Scope::path("/v1/enable", 1),
    );
    assert_eq!(
        json_of(&base, "POST", "/v1/enable", Some(json!({"enable": 1})))
            .await
            .1,
        json!({"code": 500, "msg": "busy"})
    );
    assert!(!cm.ha_enabled(), "an injected failure changes nothing");
    cm.inject(Fault::Http500, Scope::Next(1));
    assert_eq!(
        send(&base, "GET", "/v1/status?type=visual", None).await.0,
        500
    );
    cm.set_leader(false);
    let (_, no_leader) = json_of(&base, "GET", "/v1/status?type=visual", None).await;
    assert_eq!(no_leader["msg"], "Failed to request cause no CM leader!");
    assert!(cm.requests_to("/v1/enable").len() >= 3);
}
