//! The fake API server of the adapters' unit tests: a `kube-fake-client` with the
//! MPDCluster resource (status subresource on), counters of the calls by verb, and 409s
//! injected into writes of chosen objects.
//!
//! The fake checks a write's `resourceVersion` and stores it in two steps, so two writes
//! racing on two threads could both pass the check; the race tests therefore run on the
//! default current-thread runtime, where the requests of two tasks still interleave at
//! every API call (the client sends them through a buffer task) but each write is atomic,
//! as on a real API server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Node, NodeAddress, NodeCondition, NodeStatus};
use kube::api::ObjectMeta;
use kube::Client;
use kube_fake_client::{interceptor, ClientBuilder, Error as FakeError};

use crate::crd::{MPDCluster, MPDClusterSpec};
use crate::ports::ClusterRef;

mod gvk {
    //! A stand-in with the MPDCluster's group, version and kind: the fake takes a
    //! `Default` type only to learn which kind has a status subresource, and the real
    //! MPDCluster has no `Default`.
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "mpd.polardb.aliyun.com",
        version = "v1",
        kind = "MPDCluster",
        plural = "mpdclusters",
        namespaced,
        derive = "Default"
    )]
    pub struct Spec {}
}

/// 409s to inject into the writes of one object.
struct Injection {
    /// Every how many writes a 409 is answered.
    every: usize,
    /// How many 409s are left to inject.
    left: usize,
    /// Writes seen so far.
    seen: usize,
}

/// Calls seen by the fake API server, by verb, and the 409s it injects.
#[derive(Default)]
pub(crate) struct Calls {
    pub get: AtomicUsize,
    pub list: AtomicUsize,
    pub create: AtomicUsize,
    pub replace: AtomicUsize,
    pub patch: AtomicUsize,
    pub patch_status: AtomicUsize,
    pub replace_status: AtomicUsize,
    pub delete: AtomicUsize,
    /// 409s injected so far.
    pub injected: AtomicUsize,
    injections: Mutex<HashMap<String, Injection>>,
}

impl Calls {
    /// Answers every `every`-th write (create, replace or patch) of objects named `name`
    /// with a 409 Conflict, `max` times in all.
    pub fn inject_conflicts(&self, name: &str, every: usize, max: usize) {
        self.injections.lock().unwrap().insert(
            name.to_owned(),
            Injection {
                every: every.max(1),
                left: max,
                seen: 0,
            },
        );
    }

    fn write_of(&self, name: &str) -> Result<(), FakeError> {
        let mut injections = self.injections.lock().unwrap();
        if let Some(i) = injections.get_mut(name) {
            i.seen += 1;
            if i.left > 0 && i.seen % i.every == 0 {
                i.left -= 1;
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Err(FakeError::Conflict(format!("{name}: injected by the test")));
            }
        }
        Ok(())
    }

    /// Writes of any kind.
    pub fn writes(&self) -> usize {
        [
            &self.create,
            &self.replace,
            &self.patch,
            &self.patch_status,
            &self.replace_status,
            &self.delete,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }

    /// One counter.
    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

fn name_of(object: &serde_json::Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A fake API server holding `objects` (any kinds, as JSON with `apiVersion` and `kind`).
pub(crate) async fn fake_api(objects: Vec<serde_json::Value>) -> (Client, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let c = |calls: &Arc<Calls>| calls.clone();
    let (get, list, create, replace, patch, patch_status, replace_status, delete) = (
        c(&calls),
        c(&calls),
        c(&calls),
        c(&calls),
        c(&calls),
        c(&calls),
        c(&calls),
        c(&calls),
    );
    let funcs = interceptor::Funcs::new()
        .get(move |_| {
            get.get.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .list(move |_| {
            list.list.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        })
        .create(move |ctx| {
            create.create.fetch_add(1, Ordering::SeqCst);
            create.write_of(&name_of(ctx.object))?;
            Ok(None)
        })
        .replace(move |ctx| {
            replace.replace.fetch_add(1, Ordering::SeqCst);
            replace.write_of(ctx.name)?;
            Ok(None)
        })
        .patch(move |ctx| {
            patch.patch.fetch_add(1, Ordering::SeqCst);
            patch.write_of(ctx.name)?;
            Ok(None)
        })
        .patch_status(move |ctx| {
            patch_status.patch_status.fetch_add(1, Ordering::SeqCst);
            patch_status.write_of(ctx.name)?;
            Ok(None)
        })
        .replace_status(move |ctx| {
            replace_status.replace_status.fetch_add(1, Ordering::SeqCst);
            replace_status.write_of(ctx.name)?;
            Ok(None)
        })
        .delete(move |_| {
            delete.delete.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        });
    let client = ClientBuilder::new()
        .with_resource::<MPDCluster>()
        .with_status_subresource::<gvk::MPDCluster>()
        .with_runtime_objects(objects)
        .with_interceptor_funcs(funcs)
        .build()
        .await
        .unwrap();
    (client, calls)
}

/// `object` as the JSON the fake takes.
pub(crate) fn json<T: serde::Serialize>(object: &T) -> serde_json::Value {
    serde_json::to_value(object).unwrap()
}

/// A minimal MPDCluster `ns/name`.
pub(crate) fn cluster(ns: &str, name: &str) -> MPDCluster {
    let mut c = MPDCluster::new(name, MPDClusterSpec::default());
    c.metadata.namespace = Some(ns.to_owned());
    c
}

/// `default/c1`.
pub(crate) fn c1() -> ClusterRef {
    ClusterRef::new("default", "c1")
}

/// A ConfigMap `ns/name` with `data`.
pub(crate) fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// A node with an internal IP and `(type, status, message)` conditions.
pub(crate) fn node(name: &str, internal_ip: &str, conditions: &[(&str, &str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.to_owned(),
                },
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: internal_ip.to_owned(),
                },
            ]),
            conditions: Some(
                conditions
                    .iter()
                    .map(|(type_, status, message)| NodeCondition {
                        type_: (*type_).to_owned(),
                        status: (*status).to_owned(),
                        message: Some((*message).to_owned()),
                        ..NodeCondition::default()
                    })
                    .collect(),
            ),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}
