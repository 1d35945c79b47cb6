//! What the storage adapter must remember across restarts, kept in one ConfigMap per PVC:
//! the SMS job in flight (its workflow id) and for whom the volume was last formatted.
//!
//! The SMS does not make `POST /pvcs/use` with `need_format` idempotent: once a format
//! workflow has finished, another `use` formats again. So the adapter records the workflow
//! id of every job it starts, and after a format that finished records the owner it was
//! for; a restarted operator polls the recorded job instead of starting a new one, and
//! never formats a volume twice for the same owner.
//!
//! ConfigMap `<pvc>.sms` in the PVC's namespace (label
//! `app.kubernetes.io/managed-by=polardb-mpd-operator`):
//!
//! | key               | value                                                         |
//! |-------------------|---------------------------------------------------------------|
//! | `formattedFor`    | the owner (cluster name) of the last finished format          |
//! | `formattedVolume` | the volume id (WWID) that format was on                       |
//! | `job`             | the job in flight, JSON `{"op":"use"\|"lock"\|"release","owner","node","format","workflowId"}`; absent when none |
//!
//! It has no owner reference and outlives a release, so a cluster re-created with the same
//! name on the same volume finds its data; delete it to have the next create format again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use serde::{Deserialize, Serialize};

use super::api_error::{is_already_exists, port_error};
use crate::ports::{PortError, PvcRef};

/// The suffix of the record's name.
const NAME_SUFFIX: &str = ".sms";
/// The label every object of the operator carries.
pub(crate) const MANAGED_BY: (&str, &str) =
    ("app.kubernetes.io/managed-by", "polardb-mpd-operator");
const KEY_FORMATTED_FOR: &str = "formattedFor";
const KEY_FORMATTED_VOLUME: &str = "formattedVolume";
const KEY_JOB: &str = "job";

/// An SMS operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SmsOp {
    /// `POST /pvcs/use`.
    Use,
    /// `POST /pvcs/lock`.
    Lock,
    /// `POST /pvcs/release`.
    Release,
}

/// A job the adapter started and has not yet seen finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SmsJob {
    /// What was asked.
    pub(crate) op: SmsOp,
    /// For which cluster.
    pub(crate) owner: String,
    /// The write-lock node (lock only).
    #[serde(default)]
    pub(crate) node: String,
    /// Whether the job formats (use only).
    #[serde(default)]
    pub(crate) format: bool,
    /// The volume id the job is on (use only).
    #[serde(default)]
    pub(crate) volume_id: String,
    /// The SMS workflow id.
    pub(crate) workflow_id: String,
}

/// The record of one PVC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SmsRecord {
    /// The owner of the last finished format.
    pub(crate) formatted_for: Option<String>,
    /// The volume of the last finished format.
    pub(crate) formatted_volume: Option<String>,
    /// The job in flight.
    pub(crate) job: Option<SmsJob>,
}

impl SmsRecord {
    /// Whether `volume_id` was formatted for `owner`.
    pub(crate) fn formatted(&self, owner: &str, volume_id: &str) -> bool {
        self.formatted_for.as_deref() == Some(owner)
            && self.formatted_volume.as_deref() == Some(volume_id)
    }
}

/// A record as read, with the version to write it back against.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stored {
    /// The record.
    pub(crate) record: SmsRecord,
    resource_version: Option<String>,
}

/// The job of a record's `job` value (`what` names the ConfigMap in errors); `None` when
/// the key is absent or blank.
fn parse_job(
    port: &'static str,
    what: &str,
    json: Option<&str>,
) -> Result<Option<SmsJob>, PortError> {
    let Some(json) = json.filter(|j| !j.trim().is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(json)
        .map(Some)
        .map_err(|err| PortError::Rejected {
            port,
            message: format!("{what} key {KEY_JOB}: invalid job record: {err}"),
        })
}

/// Decodes the `job` value of a PVC's SMS record (ConfigMap `<pvc>.sms`): `Ok(true)` for a
/// job in flight, `Ok(false)` for none (blank), else the error the storage port returns.
pub fn decode_sms_job_record(json: &str) -> Result<bool, PortError> {
    parse_job("storage", "configmap <pvc>.sms", Some(json)).map(|job| job.is_some())
}

/// Reads and writes the records.
#[derive(Clone)]
pub(crate) struct SmsRecords {
    client: kube::Client,
    port: &'static str,
}

fn name(pvc: &PvcRef) -> String {
    format!("{}{NAME_SUFFIX}", pvc.name)
}

fn what(pvc: &PvcRef) -> String {
    format!("configmap {}/{}", pvc.namespace, name(pvc))
}

impl SmsRecords {
    /// Records on `client`, errors attributed to `port`.
    pub(crate) fn new(client: kube::Client, port: &'static str) -> Self {
        SmsRecords { client, port }
    }

    fn api(&self, pvc: &PvcRef) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &pvc.namespace)
    }

    /// The record of `pvc` (empty when there is none).
    pub(crate) async fn load(&self, pvc: &PvcRef) -> Result<Stored, PortError> {
        let Some(cm) = self
            .api(pvc)
            .get_opt(&name(pvc))
            .await
            .map_err(|e| port_error(self.port, &what(pvc), e))?
        else {
            return Ok(Stored::default());
        };
        let data = cm.data.unwrap_or_default();
        let job = parse_job(self.port, &what(pvc), data.get(KEY_JOB).map(String::as_str))?;
        Ok(Stored {
            record: SmsRecord {
                formatted_for: data.get(KEY_FORMATTED_FOR).cloned(),
                formatted_volume: data.get(KEY_FORMATTED_VOLUME).cloned(),
                job,
            },
            resource_version: cm.metadata.resource_version,
        })
    }

    /// Writes `record` over `stored` (optimistic: a concurrent write is a `Conflict`).
    /// Returns the new stored state.
    pub(crate) async fn save(
        &self,
        pvc: &PvcRef,
        stored: &Stored,
        record: SmsRecord,
    ) -> Result<Stored, PortError> {
        if record == stored.record && stored.resource_version.is_some() {
            return Ok(stored.clone());
        }
        let mut data = BTreeMap::new();
        if let Some(owner) = &record.formatted_for {
            data.insert(KEY_FORMATTED_FOR.to_owned(), owner.clone());
        }
        if let Some(volume) = &record.formatted_volume {
            data.insert(KEY_FORMATTED_VOLUME.to_owned(), volume.clone());
        }
        if let Some(job) = &record.job {
            let json = serde_json::to_string(job).map_err(|err| PortError::Rejected {
                port: self.port,
                message: format!("{}: cannot encode the job record: {err}", what(pvc)),
            })?;
            data.insert(KEY_JOB.to_owned(), json);
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name(pvc)),
                namespace: Some(pvc.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )])),
                resource_version: stored.resource_version.clone(),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        let api = self.api(pvc);
        let written = match &stored.resource_version {
            None => api.create(&PostParams::default(), &cm).await.map_err(|e| {
                if is_already_exists(&e) {
                    PortError::Conflict {
                        port: self.port,
                        what: what(pvc),
                    }
                } else {
                    port_error(self.port, &what(pvc), e)
                }
            })?,
            Some(_) => api
                .replace(&name(pvc), &PostParams::default(), &cm)
                .await
                .map_err(|e| port_error(self.port, &what(pvc), e))?,
        };
        Ok(Stored {
            record,
            resource_version: written.metadata.resource_version,
        })
    }
}
