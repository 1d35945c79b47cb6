//! The test kubelet: a background task that plays the nodes and the controllers of a fake
//! cluster.
//!
//! Every pass (each `tick`, and on [`Kubelet::sync`]) it
//! 1. removes terminating pods that have no finalizers left (the containers "stopped");
//! 2. creates and deletes the pods of Deployments ([`crate::deployments`]);
//! 3. schedules pods without `spec.nodeName` ([`crate::scheduler`]), or reports them
//!    `PodScheduled=False` / `Unschedulable` when no node fits;
//! 4. reports placed pods as a node would: `hostIP` = the node's InternalIP, phase
//!    `Running`, conditions `PodScheduled`, `Initialized`, `ContainersReady`, `Ready`, ready
//!    container statuses, completed init containers;
//! 5. garbage-collects objects whose controller owner is gone ([`crate::garbage`]).
//!
//! A test can make a pod misbehave by name, even before it exists: leave it unscheduled,
//! keep its containers waiting (not ready), keep it terminating, report it failed, or lose
//! it (remove it at once, as when a node vanishes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::api_server::{ApiServer, Collection};
use crate::error::ClusterError;
use crate::pod_status::{status, Wanted};
use crate::scheduler::{choose, NodeView};
use crate::{deployments, garbage};

/// How many passes [`Kubelet::sync`] runs at most before it gives up waiting for the
/// cluster to stop changing.
const MAX_SYNC_PASSES: usize = 16;

type PodKey = (String, String);

/// What the test told the kubelet about single pods.
#[derive(Debug, Default)]
struct Holds {
    unscheduled: BTreeSet<PodKey>,
    /// Containers kept waiting: `None` for every container.
    not_ready: BTreeMap<PodKey, Option<BTreeSet<String>>>,
    terminating: BTreeSet<PodKey>,
    failed: BTreeMap<PodKey, (String, String)>,
}

type SyncReply = oneshot::Sender<Result<(), ClusterError>>;

/// The handle of the test kubelet. Cheap to clone; the task stops when the last
/// [`crate::FakeCluster`] holding it is dropped.
#[derive(Clone)]
pub struct Kubelet {
    server: ApiServer,
    client: kube::Client,
    holds: Arc<Mutex<Holds>>,
    requests: mpsc::Sender<SyncReply>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet").finish_non_exhaustive()
    }
}

fn key(namespace: &str, name: &str) -> PodKey {
    (namespace.to_string(), name.to_string())
}

fn pod_key(pod: &Pod) -> PodKey {
    key(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Whether the object of a failed request is gone (deleted meanwhile).
pub(crate) fn is_gone(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

/// A merge patch that turns `current` into `wanted` (top-level keys of `current` missing
/// from `wanted` are removed).
fn replacing(current: &Value, wanted: &Value) -> Value {
    let mut patch = wanted.clone();
    if let (Value::Object(current), Value::Object(patch)) = (current, &mut patch) {
        for key in current.keys() {
            patch.entry(key.clone()).or_insert(Value::Null);
        }
    }
    patch
}

impl Kubelet {
    /// Starts the kubelet on `server`, a pass every `tick`. Returns the handle and the task.
    pub(crate) fn start(
        server: ApiServer,
        tick: Duration,
    ) -> (Kubelet, tokio::task::JoinHandle<()>) {
        let (requests, rx) = mpsc::channel(16);
        let kubelet = Kubelet {
            client: server.client("default"),
            server,
            holds: Arc::new(Mutex::new(Holds::default())),
            requests,
        };
        let task = tokio::spawn(kubelet.clone().run(tick, rx));
        (kubelet, task)
    }

    fn holds(&self) -> MutexGuard<'_, Holds> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves the pod `namespace/name` unscheduled: `PodScheduled=False`, reason
    /// `Unschedulable`.
    pub fn hold_unscheduled(&self, namespace: &str, name: &str) {
        self.holds().unscheduled.insert(key(namespace, name));
    }

    /// Keeps every container of the pod waiting in `ContainerCreating` once it is placed
    /// (`Ready=False`, `ContainersReady=False`).
    pub fn hold_not_ready(&self, namespace: &str, name: &str) {
        self.holds().not_ready.insert(key(namespace, name), None);
    }

    /// Keeps one container of the pod waiting; the others run.
    pub fn hold_container_not_ready(&self, namespace: &str, name: &str, container: &str) {
        let mut holds = self.holds();
        let entry = holds
            .not_ready
            .entry(key(namespace, name))
            .or_insert_with(|| Some(BTreeSet::new()));
        if let Some(containers) = entry {
            containers.insert(container.to_string());
        }
    }

    /// Keeps the pod terminating after a delete (its containers "do not stop").
    pub fn hold_termination(&self, namespace: &str, name: &str) {
        self.holds().terminating.insert(key(namespace, name));
    }

    /// Reports the pod failed (phase `Failed`, with `reason` and `message`), as a node does
    /// for an evicted pod.
    pub fn fail_pod(&self, namespace: &str, name: &str, reason: &str, message: &str) {
        self.holds().failed.insert(
            key(namespace, name),
            (reason.to_string(), message.to_string()),
        );
    }

    /// Clears every hold of the pod: it is scheduled, started and removed normally again.
    pub fn release(&self, namespace: &str, name: &str) {
        let k = key(namespace, name);
        let mut holds = self.holds();
        holds.unscheduled.remove(&k);
        holds.not_ready.remove(&k);
        holds.terminating.remove(&k);
        holds.failed.remove(&k);
    }

    /// Removes the pod at once, finalizers and grace period ignored, as when its node
    /// vanishes. Returns whether it existed.
    pub async fn lose_pod(&self, namespace: &str, name: &str) -> Result<bool, ClusterError> {
        self.server
            .remove(&Collection::pods(), Some(namespace), name)
            .await
            .map_err(ClusterError::api(format!(
                "removing pod {namespace}/{name}"
            )))
    }

    /// Runs passes until one changes nothing (at most 16), then returns. Use it instead of
    /// sleeping: after `sync`, every pod that can be scheduled and started is Ready, every
    /// Deployment has its pods and every orphan is collected.
    pub async fn sync(&self) -> Result<(), ClusterError> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send(reply)
            .await
            .map_err(|_| ClusterError::KubeletStopped)?;
        done.await.map_err(|_| ClusterError::KubeletStopped)?
    }

    async fn run(self, tick: Duration, mut requests: mpsc::Receiver<SyncReply>) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    if let Err(err) = self.pass().await {
                        tracing::warn!(error = %err, "test kubelet pass failed");
                    }
                }
                request = requests.recv() => {
                    let Some(reply) = request else { break };
                    let _ = reply.send(self.settle().await);
                }
            }
        }
    }

    async fn settle(&self) -> Result<(), ClusterError> {
        for _ in 0..MAX_SYNC_PASSES {
            if !self.pass().await? {
                return Ok(());
            }
        }
        tracing::warn!("test kubelet: the cluster kept changing for {MAX_SYNC_PASSES} passes");
        Ok(())
    }

    /// One pass; whether it changed anything.
    async fn pass(&self) -> Result<bool, ClusterError> {
        let nodes: Vec<NodeView> = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(ClusterError::api("listing nodes"))?
            .items
            .iter()
            .map(NodeView::of)
            .collect();
        let mut changed = deployments::reconcile(&self.client).await?;
        changed |= self.pods(&nodes).await?;
        changed |= garbage::collect(&self.server, &self.client).await?;
        Ok(changed)
    }

    async fn pods(&self, nodes: &[NodeView]) -> Result<bool, ClusterError> {
        let api = Api::<Pod>::all(self.client.clone());
        let mut pods = api
            .list(&ListParams::default())
            .await
            .map_err(ClusterError::api("listing pods"))?
            .items;
        pods.sort_by_key(pod_key);
        let mut changed = false;
        for i in 0..pods.len() {
            let pod = pods[i].clone();
            let (namespace, name) = pod_key(&pod);
            let api = Api::<Pod>::namespaced(self.client.clone(), &namespace);
            if pod.metadata.deletion_timestamp.is_some() {
                let finalized = pod.metadata.finalizers.as_ref().is_none_or(Vec::is_empty);
                let held = self
                    .holds()
                    .terminating
                    .contains(&(namespace.clone(), name.clone()));
                if finalized && !held {
                    self.server
                        .remove(&Collection::pods(), Some(&namespace), &name)
                        .await
                        .map_err(ClusterError::api(format!(
                            "removing pod {namespace}/{name}"
                        )))?;
                    changed = true;
                }
                continue;
            }
            let k = (namespace.clone(), name.clone());
            let (unscheduled, not_ready, failed) = {
                let holds = self.holds();
                (
                    holds.unscheduled.contains(&k),
                    // Not held: no container waits; held: the named ones, or all (`None`).
                    holds
                        .not_ready
                        .get(&k)
                        .cloned()
                        .unwrap_or_else(|| Some(BTreeSet::new())),
                    holds.failed.get(&k).cloned(),
                )
            };
            let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let wanted = match (failed, node_name) {
                (Some((reason, message)), _) => Wanted::Failed { reason, message },
                (None, None) if unscheduled => Wanted::Unscheduled(format!(
                    "0/{} nodes are available: the test holds the pod unscheduled.",
                    nodes.len()
                )),
                (None, None) => match choose(&pod, nodes, &pods) {
                    Ok(node) => {
                        let bound = api
                            .patch(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"spec": {"nodeName": node}})),
                            )
                            .await;
                        match bound {
                            Err(err) if is_gone(&err) => continue,
                            other => other.map_err(ClusterError::api(format!(
                                "binding pod {namespace}/{name}"
                            )))?,
                        };
                        if let Some(spec) = pods[i].spec.as_mut() {
                            spec.node_name = Some(node.clone());
                        }
                        changed = true;
                        let host_ip = nodes
                            .iter()
                            .find(|n| n.name == node)
                            .map(|n| n.internal_ip.clone())
                            .unwrap_or_default();
                        Wanted::Placed {
                            host_ip,
                            waiting: not_ready,
                        }
                    }
                    Err(message) => Wanted::Unscheduled(message),
                },
                (None, Some(node)) => Wanted::Placed {
                    host_ip: nodes
                        .iter()
                        .find(|n| n.name == node)
                        .map(|n| n.internal_ip.clone())
                        .unwrap_or_default(),
                    waiting: not_ready,
                },
            };
            let current =
                serde_json::to_value(pod.status.clone().unwrap_or_default()).map_err(|source| {
                    ClusterError::Json {
                        what: format!("status of pod {namespace}/{name}"),
                        source,
                    }
                })?;
            let next = serde_json::to_value(status(&pod, &wanted)).map_err(|source| {
                ClusterError::Json {
                    what: format!("status of pod {namespace}/{name}"),
                    source,
                }
            })?;
            if current != next {
                let written = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": replacing(&current, &next) })),
                    )
                    .await;
                match written {
                    Err(err) if is_gone(&err) => continue,
                    other => other.map_err(ClusterError::api(format!(
                        "status of pod {namespace}/{name}"
                    )))?,
                };
                changed = true;
            }
        }
        Ok(changed)
    }
}
