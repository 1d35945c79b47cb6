//! Where the inspection commands read and write: the state directory of local mode or a
//! Kubernetes cluster. [`Backend`] answers the four questions every command asks (the runs,
//! the history, the object, an annotation); the printing in [`super::inspect`] is the same
//! for both.
//!
//! On a cluster the runs are the ConfigMap `<name>-workflow` wf-kube keeps them in, the
//! history is the resource's Kubernetes Events (`events.k8s.io/v1`, published by wf-kube's
//! `EventRecorderHook`), the object is the MPDCluster, and an annotation is a merge patch.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource};
use serde_json::json;
use wf_engine::hook::{HistoryError, HistoryEvent, HistoryEventType};
use wf_engine::memento::{
    caretaker_name, MementoCaretaker, MementoError, MementoStorage, StoredRuntime,
};
use wf_engine::FileMementoStore;
use wf_kube::ConfigMapMementoStorage;

use super::args::Target;
use super::connection::{self, ConnectionError};
use super::exit::Outcome;
use crate::crd::MPDCluster;
use crate::local::{FileClusterStore, LocalError, StateDir};
use crate::registration::RESOURCE_TYPE;

/// Why an inspection command failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The state directory could not be read.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The runs could not be read.
    #[error(transparent)]
    Memento(#[from] MementoError),
    /// The history file could not be read.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// No client for the cluster.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The resource does not exist on the cluster.
    #[error("mpdcluster {namespace}/{name} not found")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The command does not fit the resource's state (`recover` of a cluster that is not
    /// interrupted, `cancel` with no flow running): nothing was written.
    #[error("mpdcluster {namespace}/{name} {reason}")]
    Refused {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The API server refused or failed a request.
    #[error("cannot {what}: {message}")]
    Kube {
        /// What was asked, e.g. `read mpdcluster default/c1`.
        what: String,
        /// The API server's answer, on one line.
        message: String,
    },
    /// The deletion path failed (the volume could not be released, the cluster manager not
    /// removed, the state not written).
    #[error("cannot delete mpdcluster {namespace}/{name}: {message}")]
    Deletion {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What failed.
        message: String,
    },
    /// The output could not be encoded.
    #[error("cannot encode the output: {0}")]
    Encode(String),
}

impl InspectError {
    /// How the command ended: refused, or failed (exit 1: an unknown name, an unreadable
    /// state, an API error), or bad input / a locked state directory (exit 2, from the
    /// state directory of `delete`).
    pub fn outcome(&self) -> Outcome {
        match self {
            InspectError::Refused { .. } => Outcome::Refused,
            InspectError::Local(LocalError::Locked { .. }) => Outcome::Locked,
            InspectError::Local(err) => Outcome::of_code(err.exit_code()),
            _ => Outcome::Failed,
        }
    }

    /// The exit code of [`InspectError::outcome`].
    pub fn exit_code(&self) -> u8 {
        self.outcome().code()
    }

    fn kube(what: String, error: &kube::Error) -> Self {
        InspectError::Kube {
            what,
            message: error.to_string().replace(['\n', '\r'], " "),
        }
    }
}

/// The backend of the inspection commands, for the resources of one namespace.
#[derive(Clone)]
pub enum Backend {
    /// The state directory of local mode; read without its lock, so the commands work while
    /// `local --watch` runs.
    Local {
        /// The state directory.
        state_dir: std::path::PathBuf,
        /// The namespace of the resources named.
        namespace: String,
    },
    /// A Kubernetes cluster.
    Cluster {
        /// The client.
        client: kube::Client,
        /// The namespace of the resources named.
        namespace: String,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local {
                state_dir,
                namespace,
            } => f
                .debug_struct("Local")
                .field("state_dir", state_dir)
                .field("namespace", namespace)
                .finish(),
            Backend::Cluster { namespace, .. } => f
                .debug_struct("Cluster")
                .field("namespace", namespace)
                .finish_non_exhaustive(),
        }
    }
}

/// Every run of a caretaker in `storage`, oldest first.
async fn runs_in(
    name: &str,
    storage: Arc<dyn MementoStorage>,
) -> Result<Vec<StoredRuntime>, InspectError> {
    let caretaker =
        MementoCaretaker::load(caretaker_name(name), storage, usize::MAX, usize::MAX).await?;
    Ok(caretaker.runtimes()?)
}

impl Backend {
    /// The backend `target` names: the state directory `state_dir`, or the cluster (its
    /// client made as `run` makes it).
    pub async fn open(
        target: &Target,
        state_dir: &std::path::Path,
        namespace: &str,
    ) -> Result<Backend, InspectError> {
        Ok(match target {
            Target::Local => Backend::Local {
                state_dir: state_dir.to_path_buf(),
                namespace: namespace.to_owned(),
            },
            Target::Cluster {
                kubeconfig,
                context,
            } => Backend::Cluster {
                client: connection::connect(kubeconfig.as_deref(), context.as_deref())
                    .await?
                    .0,
                namespace: namespace.to_owned(),
            },
        })
    }

    /// The backend over `client` (e.g. a test cluster's).
    pub fn cluster(client: kube::Client, namespace: impl Into<String>) -> Backend {
        Backend::Cluster {
            client,
            namespace: namespace.into(),
        }
    }

    /// The backend over the state directory `state_dir`.
    pub fn local(state_dir: impl Into<std::path::PathBuf>, namespace: impl Into<String>) -> Self {
        Backend::Local {
            state_dir: state_dir.into(),
            namespace: namespace.into(),
        }
    }

    /// The namespace of the resources named.
    pub fn namespace(&self) -> &str {
        match self {
            Backend::Local { namespace, .. } | Backend::Cluster { namespace, .. } => namespace,
        }
    }

    /// Whether this is a Kubernetes cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster { .. })
    }

    fn state(state_dir: &std::path::Path) -> Result<StateDir, InspectError> {
        Ok(StateDir::inspect(state_dir)?)
    }

    fn clusters(&self, client: &kube::Client) -> Api<MPDCluster> {
        Api::namespaced(client.clone(), self.namespace())
    }

    /// The runs of resource `name`, oldest first (none when it has none, or does not exist).
    pub async fn runtimes(&self, name: &str) -> Result<Vec<StoredRuntime>, InspectError> {
        match self {
            Backend::Local {
                state_dir,
                namespace,
            } => {
                let storage = FileMementoStore::new(Self::state(state_dir)?.memento_dir())
                    .storage(namespace, &caretaker_name(name));
                runs_in(name, Arc::new(storage)).await
            }
            Backend::Cluster { client, namespace } => {
                // Read only: the owner reference is never written.
                let storage = ConfigMapMementoStorage::new(
                    client.clone(),
                    namespace,
                    name,
                    OwnerReference::default(),
                );
                runs_in(name, Arc::new(storage)).await
            }
        }
    }

    /// The history events of resource `name`, oldest first.
    ///
    /// On a cluster each event is one Kubernetes Event on the resource; its position
    /// (`step`, `step_count`), retries and `workflow_id` come from the run it belongs to
    /// (the latest run of its flow started by then), when that run is still kept.
    pub async fn history(&self, name: &str) -> Result<Vec<HistoryEvent>, InspectError> {
        match self {
            Backend::Local {
                state_dir,
                namespace,
            } => {
                let path = Self::state(state_dir)?
                    .history_dir()
                    .join(format!("{RESOURCE_TYPE}_workflow.txt"));
                Ok(wf_engine::hook::read_history(&path)?
                    .into_iter()
                    .filter(|e| e.resource_name == name && &e.namespace == namespace)
                    .collect())
            }
            Backend::Cluster { client, namespace } => {
                let kind = MPDCluster::kind(&());
                let events = Api::<Event>::namespaced(client.clone(), namespace)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| {
                        InspectError::kube(format!("list the events of {namespace}"), &e)
                    })?;
                let runs = self.runtimes(name).await?;
                let mut history: Vec<HistoryEvent> = events
                    .items
                    .iter()
                    .filter(|e| {
                        e.regarding.as_ref().is_some_and(|r| {
                            r.name.as_deref() == Some(name) && r.kind.as_deref() == Some(&kind)
                        })
                    })
                    .filter_map(|e| history_event(e, name, namespace, &runs))
                    .collect();
                history.sort_by_key(|e| e.end_time);
                Ok(history)
            }
        }
    }

    /// The resource `name`; [`InspectError::NotFound`] (or the local equivalent) when there
    /// is none.
    pub async fn object(&self, name: &str) -> Result<MPDCluster, InspectError> {
        match self {
            Backend::Local {
                state_dir,
                namespace,
            } => Ok(
                FileClusterStore::new(Self::state(state_dir)?.clusters_dir())
                    .read(namespace, name)?,
            ),
            Backend::Cluster { client, namespace } => self
                .clusters(client)
                .get_opt(name)
                .await
                .map_err(|e| InspectError::kube(format!("read mpdcluster {namespace}/{name}"), &e))?
                .ok_or_else(|| InspectError::NotFound {
                    namespace: namespace.clone(),
                    name: name.to_owned(),
                }),
        }
    }

    /// Every resource of the namespace, by name.
    pub async fn list(&self) -> Result<Vec<MPDCluster>, InspectError> {
        match self {
            Backend::Local {
                state_dir,
                namespace,
            } => {
                let mut all =
                    FileClusterStore::new(Self::state(state_dir)?.clusters_dir()).list()?;
                all.retain(|c| c.metadata.namespace.as_deref() == Some(namespace.as_str()));
                Ok(all)
            }
            Backend::Cluster { client, namespace } => {
                let mut all = self
                    .clusters(client)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| {
                        InspectError::kube(format!("list the mpdclusters of {namespace}"), &e)
                    })?
                    .items;
                all.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
                Ok(all)
            }
        }
    }

    /// Sets annotation `key` to `value` on resource `name` (on a cluster: a merge patch).
    pub async fn annotate(&self, name: &str, key: &str, value: &str) -> Result<(), InspectError> {
        match self {
            Backend::Local {
                state_dir,
                namespace,
            } => {
                FileClusterStore::new(Self::state(state_dir)?.clusters_dir())
                    .set_annotation(namespace, name, key, value)?;
                Ok(())
            }
            Backend::Cluster { client, namespace } => {
                let patch = json!({ "metadata": { "annotations": { key: value } } });
                match self
                    .clusters(client)
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        Err(InspectError::NotFound {
                            namespace: namespace.clone(),
                            name: name.to_owned(),
                        })
                    }
                    Err(e) => Err(InspectError::kube(
                        format!("annotate mpdcluster {namespace}/{name}"),
                        &e,
                    )),
                }
            }
        }
    }
}

fn chrono_time(t: k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().try_into().ok()?)
}

/// The history type of an Event reason `WF_<Transition>` (see wf-kube's events module).
fn event_type(reason: &str) -> Option<HistoryEventType> {
    Some(match reason.strip_prefix("WF_")? {
        "FlowStarted" => HistoryEventType::WorkFlowStart,
        "StepStarted" => HistoryEventType::StepInited,
        "StepWaiting" => HistoryEventType::StepWaiting,
        "StepFailed" => HistoryEventType::StepError,
        "StepCompleted" => HistoryEventType::StepCompleted,
        "FlowInterrupted" => HistoryEventType::WorkFlowInterrupt,
        "FlowCompleted" => HistoryEventType::WorkFlowCompleted,
        "FlowAbandoned" => HistoryEventType::WorkFlowAbandoned,
        _ => return None,
    })
}

/// The time an Event happened.
fn event_time(event: &Event) -> Option<DateTime<Utc>> {
    event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .and_then(chrono_time)
}

/// The Warning of a refused request as a history event (`RequestRefused`, no run).
fn refusal_line(event: &Event, name: &str, namespace: &str) -> HistoryEvent {
    let time = event_time(event);
    HistoryEvent {
        resource_name: name.to_owned(),
        namespace: namespace.to_owned(),
        workflow_id: 0,
        step_id: "0-0".to_owned(),
        flow_name: String::new(),
        step_name: String::new(),
        event_type: HistoryEventType::RequestRefused,
        start_time: time,
        end_time: time,
        step: 0,
        step_count: 0,
        retry: 0,
        resumes: 0,
        error: format!(
            "{}: {}",
            event.reason.as_deref().unwrap_or_default(),
            event.note.as_deref().unwrap_or_default()
        ),
        replayed: false,
        seq: 0,
        reason: String::new(),
    }
}

/// A workflow Event as a history event: the flow and step from its action
/// (`<flow>[/<step>]`), the error from its note (`... error=<error>`), the position and
/// retries from the run it belongs to. `None` for Events that are not a workflow's.
fn history_event(
    event: &Event,
    name: &str,
    namespace: &str,
    runs: &[StoredRuntime],
) -> Option<HistoryEvent> {
    let action = event.action.as_deref().unwrap_or_default();
    if action == wf_kube::events::REFUSAL_ACTION {
        return Some(refusal_line(event, name, namespace));
    }
    let event_type = event_type(event.reason.as_deref()?)?;
    let (flow, step_name) = action.split_once('/').unwrap_or((action, ""));
    let error = event
        .note
        .as_deref()
        .and_then(|n| n.split_once(" error=").map(|(_, e)| e.to_owned()))
        .unwrap_or_default();
    let time = event_time(event);
    // The run: the latest of this flow started by the Event's time.
    let run = runs
        .iter()
        .rev()
        .filter(|r| r.runtime.flow_name == flow)
        .find(|r| match (r.runtime.start_time, time) {
            (Some(start), Some(at)) => start <= at,
            _ => true,
        })
        .map(|r| &r.runtime);
    let workflow_id = run
        .and_then(|r| r.start_time)
        .map_or(0, |t| t.timestamp_millis());
    let seq = runs
        .iter()
        .rev()
        .filter(|r| r.runtime.flow_name == flow)
        .find(|r| match (r.runtime.start_time, time) {
            (Some(start), Some(at)) => start <= at,
            _ => true,
        })
        .map_or(0, |r| r.seq);
    let reason = match event_type {
        HistoryEventType::StepWaiting => event
            .note
            .as_deref()
            .and_then(|n| n.split_once(" waiting=").map(|(_, r)| r.to_owned()))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let position = run.and_then(|r| {
        r.running_steps
            .iter()
            .position(|s| !step_name.is_empty() && s.step_name == step_name)
    });
    let step = position.map_or(0, |p| p + 1);
    let retry = match (run, position) {
        (Some(r), Some(p)) => r.running_steps.get(p).map_or(0, |s| s.retry_times),
        (Some(r), None) if step_name.is_empty() => r.retry_times,
        _ => 0,
    };
    Some(HistoryEvent {
        resource_name: name.to_owned(),
        namespace: namespace.to_owned(),
        workflow_id,
        seq,
        step_id: format!("{workflow_id}-{step}"),
        flow_name: flow.to_owned(),
        step_name: step_name.to_owned(),
        event_type,
        start_time: None,
        end_time: time,
        step,
        step_count: run.map_or(0, |r| r.running_steps.len()),
        retry,
        resumes: 0,
        error,
        reason,
        replayed: false,
    })
}
