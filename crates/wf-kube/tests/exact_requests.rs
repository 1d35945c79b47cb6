//! The exact requests wf-kube sends, checked against a `tower-test` mock of the API server:
//! the state is a merge patch of the status subresource, annotations a merge patch of the
//! object (nulls remove), and a memento save a PUT carrying the cached resourceVersion.

mod common;

use std::collections::BTreeMap;

use common::{Db, DbResource, DbSpec, DbStatus, NS};
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::client::Body;
use tower_test::mock;
use wf_engine::memento::{MementoStorage, MementoWrite};
use wf_engine::{AnnotationPatch, State, StateResource};
use wf_kube::ConfigMapMementoStorage;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, NS), handle)
}

fn db() -> Db {
    let mut db = Db::new("c1", DbSpec { replicas: 1 });
    db.metadata.namespace = Some(NS.into());
    db.metadata.uid = Some("uid-1".into());
    db.metadata.resource_version = Some("7".into());
    db.status = Some(DbStatus {
        cluster_status: "Creating".into(),
        ready: true,
    });
    db
}

fn json_response(value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).expect("json")))
        .expect("response")
}

/// The next request: method, path, content type and JSON body (`Null` when empty).
async fn next(
    handle: &mut Handle,
) -> (
    Method,
    String,
    Option<String>,
    serde_json::Value,
    mock::SendResponse<Response<Body>>,
) {
    let (request, respond) = handle.next_request().await.expect("a request");
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json body")
    };
    (method, path, content_type, body, respond)
}

#[tokio::test]
async fn a_state_change_is_one_merge_patch_of_the_status_subresource() {
    let (client, mut handle) = mock_client();
    let resource = DbResource::new(client, db());
    let call = tokio::spawn(async move { resource.update_state(State::RUNNING).await });

    let (method, path, content_type, body, respond) = next(&mut handle).await;
    assert_eq!(method, Method::PATCH);
    assert_eq!(path, "/apis/example.com/v1/namespaces/ns/dbs/c1/status");
    assert_eq!(
        content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    // Only the state: no resourceVersion, no other status field, no spec.
    assert_eq!(
        body,
        serde_json::json!({"status": {"clusterStatus": "Running"}})
    );
    let mut updated = db();
    if let Some(status) = updated.status.as_mut() {
        status.cluster_status = "Running".into();
    }
    respond.send_response(json_response(&updated));
    let fresh = call.await.expect("task").expect("patched");
    assert_eq!(fresh.state(), State::RUNNING);
}

#[tokio::test]
async fn an_annotation_change_is_one_merge_patch_where_null_removes() {
    let (client, mut handle) = mock_client();
    let resource = DbResource::new(client, db());
    let patch = AnnotationPatch::from([
        ("interrupt.reason".to_string(), None),
        ("interrupt.recover".to_string(), Some("T".to_string())),
    ]);
    let call = tokio::spawn(async move { resource.patch_annotations(&patch).await });

    let (method, path, content_type, body, respond) = next(&mut handle).await;
    assert_eq!(method, Method::PATCH);
    assert_eq!(path, "/apis/example.com/v1/namespaces/ns/dbs/c1");
    assert_eq!(
        content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        body,
        serde_json::json!({"metadata": {"annotations": {
            "interrupt.reason": null,
            "interrupt.recover": "T",
        }}})
    );
    respond.send_response(json_response(&db()));
    call.await.expect("task").expect("patched");
}

fn config_map(resource_version: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("c1-workflow".into()),
            namespace: Some(NS.into()),
            resource_version: Some(resource_version.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn memento_saves_are_puts_carrying_the_cached_resource_version_and_no_reads() {
    let (client, mut handle) = mock_client();
    let storage =
        std::sync::Arc::new(ConfigMapMementoStorage::for_object(client, &db()).expect("storage"));
    let path = "/api/v1/namespaces/ns/configmaps/c1-workflow";

    let store = storage.clone();
    let load = tokio::spawn(async move { store.load_all().await });
    let (method, got, _, _, respond) = next(&mut handle).await;
    assert_eq!((method, got.as_str()), (Method::GET, path));
    respond.send_response(json_response(&config_map("41", &[("1-Create", "{}")])));
    assert_eq!(load.await.expect("task").expect("loaded").len(), 1);

    for (sent_version, returned_version, value) in [("41", "42", "a"), ("42", "43", "b")] {
        let store = storage.clone();
        let write = tokio::spawn(async move {
            store
                .write(&MementoWrite {
                    key: "2-Upgrade".into(),
                    value: value.into(),
                    remove: vec![],
                })
                .await
        });
        // The very next request is the PUT: no GET before it.
        let (method, got, content_type, body, respond) = next(&mut handle).await;
        assert_eq!((method, got.as_str()), (Method::PUT, path));
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body["metadata"]["resourceVersion"], sent_version);
        assert_eq!(body["data"]["1-Create"], "{}", "other keys are kept");
        assert_eq!(body["data"]["2-Upgrade"], value);
        respond.send_response(json_response(&config_map(
            returned_version,
            &[("1-Create", "{}"), ("2-Upgrade", value)],
        )));
        write.await.expect("task").expect("written");
    }
}
