//! The controller runner's decisions, on `kube-fake-client`.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::CustomResource;
use kube_fake_client::ClientBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wf_engine::{Reconciled, State, StateMachine, WorkflowManager};
use wf_kube::{decide, ConfigMapMementoFactory, KubeResource, Reconciler, StateField};

#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Db",
    namespaced,
    status = "DbStatus",
    derive = "Default"
)]
pub struct DbSpec {
    replicas: i32,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbStatus {
    #[serde(default)]
    cluster_status: String,
}

struct ClusterStatusField;

impl StateField<Db> for ClusterStatusField {
    fn read(object: &Db) -> String {
        object
            .status
            .as_ref()
            .map(|s| s.cluster_status.clone())
            .unwrap_or_default()
    }
    fn patch(state: &str) -> serde_json::Value {
        serde_json::json!({ "status": { "clusterStatus": state } })
    }
}

type DbResource = KubeResource<Db, ClusterStatusField>;

const ONE_STEP: &str = "\
flowName: One
recoverFromFirstStep: false
steps:
  - {className: test.Noop, stepName: S1}
";

struct Noop;

#[wf_engine::async_trait]
impl wf_engine::Step for Noop {
    async fn do_step(
        &mut self,
        _: &wf_engine::CancellationToken,
    ) -> Result<wf_engine::StepOutcome, wf_engine::StepError> {
        Ok(wf_engine::StepOutcome::Done)
    }
}

#[tokio::test]
async fn not_found_object_ends_with_await_change_and_no_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = dir.path().join("db");
    std::fs::create_dir_all(&flows).expect("mkdir");
    std::fs::write(flows.join("one.yaml"), ONE_STEP).expect("flow");
    let client = ClientBuilder::new()
        .with_resource::<Db>()
        .with_status_subresource::<Db>()
        .build()
        .await
        .expect("fake client");
    let manager = WorkflowManager::<DbResource>::builder("db")
        .flow_dir(dir.path())
        .step("test.Noop", || Noop)
        .memento_store(ConfigMapMementoFactory::new(client.clone()))
        .build()
        .expect("manager");
    let mut machine = StateMachine::<DbResource>::new("db");
    machine.register_stable_states([State::RUNNING]);
    let reconciler = Reconciler::new(Arc::new(machine), manager, client);
    let mut gone = Db::new("gone", DbSpec { replicas: 1 });
    gone.metadata.namespace = Some("ns".into());
    let action = reconciler
        .reconcile(Arc::new(gone))
        .await
        .expect("no error");
    assert_eq!(action, Action::await_change());
}

#[test]
fn requeue_decisions_table() {
    let ms = Duration::from_millis;
    let stable = decide(Ok(Reconciled::Stable {
        state: State::RUNNING,
    }))
    .expect("stable");
    assert_eq!(stable.action(), Action::await_change());
    let moved = decide(Ok(Reconciled::Transitioned {
        from: State::INIT,
        to: State::CREATING,
    }))
    .expect("transitioned");
    assert_eq!(moved.action(), Action::requeue(Duration::ZERO));
    let waiting = decide(Ok(Reconciled::Waiting {
        flow: "F".into(),
        step: "S".into(),
        recheck_after: ms(7),
    }))
    .expect("waiting");
    assert_eq!(waiting.action(), Action::requeue(ms(7)));
    let failed = decide(Err(wf_engine::Error::StepFailed {
        flow: "F".into(),
        step: "S".into(),
        seq: 1,
        attempt: 1,
        message: "boom".into(),
        retry_after: ms(3),
    }))
    .expect("retryable");
    assert_eq!(failed.action(), Action::requeue(ms(3)));
    assert_eq!(failed.reconciled, None);
    let interrupted = decide(Ok(Reconciled::Interrupted {
        flow: "F".into(),
        step: "S".into(),
        reason: "MANY_RETRY".into(),
        message: "m".into(),
    }))
    .expect("interrupted");
    assert_eq!(interrupted.action(), Action::await_change());
    let setup = decide(Err(wf_engine::Error::Setup("bad".into())));
    assert!(setup.is_err());
}
