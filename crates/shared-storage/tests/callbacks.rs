//! The cluster manager's callbacks over a real socket on 127.0.0.1, applied to the
//! simulated cluster through the status monitor.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use shared_storage::callbacks::{self, CallbackConfig, CallbackServer, CallbackToken, OK_BODY};
use shared_storage::crd::InstanceStatus;
use shared_storage::domain::InsType;
use shared_storage::ports::sim::SimConfig;
use shared_storage::status::Leadership;
use support::{Harness, NAME, NS};
use tokio::sync::{oneshot, watch};

const TOKEN: &str = "c2VjcmV0LWNhbGxiYWNrLXRva2VuLTAx";
const WRONG: &str = "c2VjcmV0LWNhbGxiYWNrLXRva2VuLTAy";

struct Served {
    h: Harness,
    base: String,
    client: reqwest::Client,
    leading: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), callbacks::CallbackError>>>,
}

impl Served {
    async fn new() -> Self {
        let h = Harness::created(SimConfig::default(), 1).await;
        let (leading, leadership) = watch::channel(true);
        let monitor = h.monitor(Leadership::from_watch(leadership));
        // Record the states of the fresh cluster so the tests see only their own changes.
        monitor.sync(&h.cluster_ref()).await.unwrap();
        let token = CallbackToken::new(TOKEN, "the test").unwrap();
        let server = CallbackServer::new(monitor, token).with_config(CallbackConfig {
            max_body_bytes: 1024,
            ..CallbackConfig::default()
        });
        let listener = callbacks::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Served {
            h,
            base,
            client: reqwest::Client::new(),
            leading,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, callback: &str) -> String {
        format!("{}/api/v1/namespace/{NS}/name/{NAME}/{callback}", self.base)
    }

    async fn post(&self, callback: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut request = self
            .client
            .post(self.url(callback))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    fn ro(&self) -> InstanceStatus {
        self.h.of_type("ro")[0].clone()
    }

    fn rv(&self) -> Option<String> {
        self.h.cr().metadata.resource_version
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

fn endpoint(ins: &InstanceStatus) -> String {
    format!("{}:{}", ins.host_client_ip, ins.net_info.working_port)
}

fn rw_body(ins: &InstanceStatus) -> String {
    format!(r#"{{"endpoint":"{}"}}"#, endpoint(ins))
}

#[tokio::test]
async fn a_callback_without_a_token_is_401_and_applies_nothing() {
    let s = Served::new().await;
    let ro = s.ro();
    s.h.sim.promote(&s.h.cluster_ref(), &ro.pod_name);
    let before = s.rv();

    let (status, _) = s.post("rw_ins", None, &rw_body(&ro)).await;

    assert_eq!(status, 401);
    let response = s
        .client
        .post(s.url("meta/engine_status"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="mpd-callbacks""#
    );
    assert_eq!(s.rv(), before);
    s.stop().await;
}

#[tokio::test]
async fn a_callback_with_a_wrong_token_is_401_and_applies_nothing() {
    let s = Served::new().await;
    let ro = s.ro();
    let before = s.rv();

    for token in [WRONG, &TOKEN[1..], "", &format!("{TOKEN}x")] {
        let (status, body) = s.post("rw_ins", Some(token), &rw_body(&ro)).await;
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    let basic = s
        .client
        .post(s.url("rw_ins"))
        .header("authorization", format!("Basic {TOKEN}"))
        .body(rw_body(&ro))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401, "only the Bearer scheme");
    let twice = s
        .client
        .post(s.url("rw_ins"))
        .header("authorization", format!("Bearer {WRONG}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(rw_body(&ro))
        .send()
        .await
        .unwrap();
    assert_eq!(
        twice.status().as_u16(),
        401,
        "one Authorization header only"
    );
    assert_eq!(s.rv(), before);
    s.stop().await;
}

#[tokio::test]
async fn rw_ins_with_the_right_token_moves_the_leader_and_relabels_the_pods() {
    let s = Served::new().await;
    let ro = s.ro();
    let old = s.h.instances()[&s.h.leader()].clone();
    s.h.sim.promote(&s.h.cluster_ref(), &ro.pod_name);

    let (status, body) = s.post("rw_ins", Some(TOKEN), &rw_body(&ro)).await;

    assert_eq!((status, body.as_str()), (200, OK_BODY));
    assert_eq!(s.h.leader(), ro.ins_id);
    assert_eq!(s.h.instances()[&old.ins_id].ins_type, "ro");
    let label = |pod: &str| s.h.sim.pod(NS, pod).and_then(|p| p.label);
    assert_eq!(label(&ro.pod_name), Some(InsType::Rw));
    assert_eq!(label(&old.pod_name), Some(InsType::Ro));
    // Reported again: no news, still ok.
    let rv = s.rv();
    assert_eq!(s.post("rw_ins", Some(TOKEN), &rw_body(&ro)).await.0, 200);
    assert_eq!(s.rv(), rv);
    s.stop().await;
}

#[tokio::test]
async fn engine_status_with_the_right_token_records_the_state() {
    let s = Served::new().await;
    let ro = s.ro();
    let body = format!(
        r#"{{"endpoint":"{}","engineStatus":"FAILED","reason":"crashed"}}"#,
        endpoint(&ro)
    );

    let (status, reply) = s.post("meta/engine_status", Some(TOKEN), &body).await;

    assert_eq!((status, reply.as_str()), (200, OK_BODY));
    let entry = &s.h.instances()[&ro.ins_id];
    assert_eq!(entry.current_state.state, "FAILED");
    assert_eq!(entry.current_state.reason, "crashed");
    assert_eq!(entry.last_state.state, "RUNNING");
    assert!(shared_storage::domain::triggers::rebuild_ro(&s.h.cr()));
    s.stop().await;
}

#[tokio::test]
async fn a_follower_answers_503_and_applies_nothing_until_it_leads() {
    let s = Served::new().await;
    let ro = s.ro();
    s.h.sim.promote(&s.h.cluster_ref(), &ro.pod_name);
    let old_leader = s.h.leader();
    s.leading.send(false).unwrap();
    let before = s.rv();

    let response = s
        .client
        .post(s.url("rw_ins"))
        .bearer_auth(TOKEN)
        .body(rw_body(&ro))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(s.rv(), before);
    assert_eq!(s.h.leader(), old_leader);
    s.leading.send(true).unwrap();
    assert_eq!(s.post("rw_ins", Some(TOKEN), &rw_body(&ro)).await.0, 200);
    assert_eq!(s.h.leader(), ro.ins_id);
    s.stop().await;
}

#[tokio::test]
async fn a_bad_body_is_400_naming_what_is_wrong_and_applies_nothing() {
    let s = Served::new().await;
    let ro = s.ro();
    let before = s.rv();
    let ep = endpoint(&ro);
    let cases = [
        ("rw_ins", "not json".to_owned(), "JSON object of strings"),
        (
            "rw_ins",
            r#"{"endpoint":5432}"#.to_owned(),
            "JSON object of strings",
        ),
        ("rw_ins", "{}".to_owned(), "please input param: endpoint"),
        (
            "rw_ins",
            r#"{"endpoint":""}"#.to_owned(),
            "param endpoint must not be empty",
        ),
        (
            "meta/engine_status",
            format!(r#"{{"endpoint":"{ep}","engineStatus":"FAILED"}}"#),
            "please input param: reason",
        ),
        (
            "meta/engine_status",
            format!(r#"{{"endpoint":"{ep}","engineStatus":"","reason":""}}"#),
            "param engineStatus must not be empty",
        ),
        (
            "rw_ins",
            r#"{"endpoint":"192.168.9.9:5432"}"#.to_owned(),
            "no instance at endpoint `192.168.9.9:5432`",
        ),
    ];
    for (callback, body, expected) in cases {
        let (status, reply) = s.post(callback, Some(TOKEN), &body).await;
        assert_eq!(status, 400, "{callback} {body}: {reply}");
        assert!(reply.contains(expected), "{callback} {body}: {reply}");
    }
    let (status, _) = s
        .post(
            "rw_ins",
            Some(TOKEN),
            &format!(r#"{{"endpoint":"{}"}}"#, "x".repeat(2000)),
        )
        .await;
    assert_eq!(status, 413, "over the configured 1 KiB");
    assert_eq!(s.rv(), before);
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_clusters_and_methods_are_refused() {
    let s = Served::new().await;
    let ro = s.ro();
    let not_found = s
        .client
        .post(format!("{}/api/v1/namespace/{NS}/name/{NAME}/nope", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status().as_u16(), 404);
    let get = s.client.get(s.url("rw_ins")).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    let missing = s
        .client
        .post(format!(
            "{}/api/v1/namespace/{NS}/name/missing/rw_ins",
            s.base
        ))
        .bearer_auth(TOKEN)
        .body(rw_body(&ro))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.text().await.unwrap().contains("default/missing"));
    s.stop().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of this whole test binary: one global subscriber (a scoped one misses what other
/// tests, running at the same time, cache as uninteresting), so every test's lines are in it.
fn captured_logs() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer({
                let captured = captured.clone();
                move || captured.clone()
            })
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        tracing::callsite::rebuild_interest_cache();
        captured
    })
}

#[tokio::test]
async fn no_token_ever_appears_in_a_log_line() {
    let captured = captured_logs();
    let s = Served::new().await;
    let ro = s.ro();
    s.h.sim.promote(&s.h.cluster_ref(), &ro.pod_name);

    assert_eq!(s.post("rw_ins", Some(WRONG), &rw_body(&ro)).await.0, 401);
    assert_eq!(s.post("rw_ins", Some(TOKEN), &rw_body(&ro)).await.0, 200);
    assert_eq!(s.post("rw_ins", Some(TOKEN), "{}").await.0, 400);
    s.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("callback applied"),
        "the capture works:\n{logs}"
    );
    assert!(logs.contains("callback refused"), "{logs}");
    for secret in [TOKEN, WRONG] {
        assert!(!logs.contains(secret), "a token was logged:\n{logs}");
    }
}
