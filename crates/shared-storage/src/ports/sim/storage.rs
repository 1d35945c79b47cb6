//! D. The storage-management service: volume owner, format and write lock per PVC.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::world::{advance, Job, Key, World};
use super::{port, Simulation};
use crate::ports::{PortError, Progress, PvcRef, StorageManager, StorageRequest};

/// What the storage manager knows about one PVC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStorage {
    /// The cluster using the volume; `None` when free.
    pub owner: Option<String>,
    /// The WWID given by the last `use_storage`.
    pub volume_id: String,
    /// The volume type given by the last `use_storage`.
    pub volume_type: String,
    /// The owner the PFS file system was last formatted for (kept after a release).
    pub formatted_for: Option<String>,
    /// How many times the volume was formatted.
    pub format_count: u32,
    /// The node holding the write lock.
    pub write_node: Option<String>,
}

/// A job of the storage manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum StorageJob {
    Use { owner: String, format: bool },
    Lock { node: String },
    Release { owner: String },
}

/// One PVC: its state and the job in progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct StorageRecord {
    pub(super) state: SimStorage,
    pub(super) job: Option<Job<StorageJob>>,
}

/// The simulated [`StorageManager`].
pub(super) struct SimStorageManager(pub(super) Simulation);

fn key(pvc: &PvcRef) -> Key {
    (pvc.namespace.clone(), pvc.name.clone())
}

fn rejected(message: String) -> PortError {
    PortError::Rejected {
        port: port::STORAGE,
        message,
    }
}

impl World {
    fn use_storage(&mut self, request: &StorageRequest) -> Result<Progress, PortError> {
        let ready_after = self.config.ready_after_polls;
        let record = self.storage.entry(key(&request.pvc)).or_default();
        let state = &mut record.state;
        if let Some(owner) = state.owner.as_ref().filter(|o| **o != request.owner) {
            return Err(rejected(format!(
                "volume {}/{} is used by {owner}",
                request.pvc.namespace, request.pvc.name
            )));
        }
        let format = request.format && state.formatted_for.as_ref() != Some(&request.owner);
        if state.owner.is_some() && !format {
            return Ok(Progress::Done(()));
        }
        let job = StorageJob::Use {
            owner: request.owner.clone(),
            format,
        };
        if !advance(&mut record.job, job, ready_after) {
            return Ok(Progress::pending(format!(
                "storage manager: {} of {}/{} for {}",
                if format { "format and use" } else { "use" },
                request.pvc.namespace,
                request.pvc.name,
                request.owner
            )));
        }
        let state = &mut record.state;
        state.owner = Some(request.owner.clone());
        state.volume_id = request.volume_id.clone();
        state.volume_type = request.volume_type.clone();
        if format {
            state.formatted_for = Some(request.owner.clone());
            state.format_count += 1;
        }
        Ok(Progress::Done(()))
    }

    fn set_write_lock(&mut self, pvc: &PvcRef, node: &str) -> Result<Progress, PortError> {
        if !self.nodes.contains_key(node) {
            return Err(rejected(format!("unknown node {node}")));
        }
        let ready_after = self.config.ready_after_polls;
        let record = self
            .storage
            .get_mut(&key(pvc))
            .filter(|r| r.state.owner.is_some())
            .ok_or_else(|| {
                rejected(format!(
                    "volume {}/{} is not in use",
                    pvc.namespace, pvc.name
                ))
            })?;
        if record.state.write_node.as_deref() == Some(node) {
            return Ok(Progress::Done(()));
        }
        let job = StorageJob::Lock {
            node: node.to_string(),
        };
        if !advance(&mut record.job, job, ready_after) {
            return Ok(Progress::pending(format!(
                "storage manager: write lock to {node}"
            )));
        }
        record.state.write_node = Some(node.to_string());
        Ok(Progress::Done(()))
    }

    fn release_storage(&mut self, pvc: &PvcRef, owner: &str) -> Result<Progress, PortError> {
        let ready_after = self.config.ready_after_polls;
        let Some(record) = self
            .storage
            .get_mut(&key(pvc))
            .filter(|r| r.state.owner.as_deref() == Some(owner))
        else {
            return Ok(Progress::Done(()));
        };
        let job = StorageJob::Release {
            owner: owner.to_string(),
        };
        if !advance(&mut record.job, job, ready_after) {
            return Ok(Progress::pending(format!(
                "storage manager: release from {owner}"
            )));
        }
        record.state.owner = None;
        record.state.write_node = None;
        Ok(Progress::Done(()))
    }
}

#[async_trait]
impl StorageManager for SimStorageManager {
    async fn use_storage(&self, request: &StorageRequest) -> Result<Progress, PortError> {
        let args = format!(
            "{}/{} owner={} format={}",
            request.pvc.namespace, request.pvc.name, request.owner, request.format
        );
        self.0
            .call(port::STORAGE, "use_storage", args, |w| {
                w.use_storage(request)
            })
            .await
    }

    async fn set_write_lock(&self, pvc: &PvcRef, node: &str) -> Result<Progress, PortError> {
        let args = format!("{}/{} node={node}", pvc.namespace, pvc.name);
        self.0
            .call(port::STORAGE, "set_write_lock", args, |w| {
                w.set_write_lock(pvc, node)
            })
            .await
    }

    async fn release(&self, pvc: &PvcRef, owner: &str) -> Result<Progress, PortError> {
        let args = format!("{}/{} owner={owner}", pvc.namespace, pvc.name);
        self.0
            .call(port::STORAGE, "release", args, |w| {
                w.release_storage(pvc, owner)
            })
            .await
    }
}

impl Simulation {
    /// What the storage manager knows about `pvc` (`None` before its first use).
    pub fn storage(&self, pvc: &PvcRef) -> Option<SimStorage> {
        self.lock().storage.get(&key(pvc)).map(|r| r.state.clone())
    }

    /// Sets the state of `pvc` (e.g. a volume another cluster owns), cancelling any job.
    pub fn set_storage(&self, pvc: &PvcRef, state: SimStorage) {
        self.lock()
            .storage
            .insert(key(pvc), StorageRecord { state, job: None });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::sim;

    fn pvc() -> PvcRef {
        PvcRef {
            namespace: "default".into(),
            name: "pvc-1".into(),
        }
    }

    fn request(owner: &str, format: bool) -> StorageRequest {
        StorageRequest {
            pvc: pvc(),
            volume_id: "36e00084100ee7ec9".into(),
            volume_type: "lun".into(),
            owner: owner.into(),
            format,
        }
    }

    #[tokio::test]
    async fn use_storage_is_pending_then_done_and_formats_once() {
        let sim = sim(1);
        let storage = sim.ports().storage;
        assert!(!storage
            .use_storage(&request("c1", true))
            .await
            .unwrap()
            .is_done());
        assert_eq!(sim.storage(&pvc()).unwrap().owner, None);
        assert!(storage
            .use_storage(&request("c1", true))
            .await
            .unwrap()
            .is_done());
        let state = sim.storage(&pvc()).unwrap();
        assert_eq!(state.owner.as_deref(), Some("c1"));
        assert_eq!(state.formatted_for.as_deref(), Some("c1"));
        assert_eq!(state.format_count, 1);
        assert_eq!(state.volume_id, "36e00084100ee7ec9");
        // Asking again (a re-run step) neither waits nor formats again.
        assert!(storage
            .use_storage(&request("c1", true))
            .await
            .unwrap()
            .is_done());
        assert_eq!(sim.storage(&pvc()).unwrap().format_count, 1);
    }

    #[tokio::test]
    async fn use_storage_without_format_does_not_format() {
        let sim = sim(0);
        let storage = sim.ports().storage;
        assert!(storage
            .use_storage(&request("c1", false))
            .await
            .unwrap()
            .is_done());
        let state = sim.storage(&pvc()).unwrap();
        assert_eq!((state.formatted_for, state.format_count), (None, 0));
    }

    #[tokio::test]
    async fn a_volume_owned_by_another_cluster_is_rejected() {
        let sim = sim(0);
        let storage = sim.ports().storage;
        storage.use_storage(&request("c1", true)).await.unwrap();
        let err = storage.use_storage(&request("c2", true)).await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        assert_eq!(sim.storage(&pvc()).unwrap().owner.as_deref(), Some("c1"));
    }

    #[tokio::test]
    async fn write_lock_is_pending_then_done() {
        let sim = sim(1);
        let storage = sim.ports().storage;
        sim.set_storage(
            &pvc(),
            SimStorage {
                owner: Some("c1".into()),
                ..Default::default()
            },
        );
        assert!(!storage
            .set_write_lock(&pvc(), "node-2")
            .await
            .unwrap()
            .is_done());
        assert_eq!(sim.storage(&pvc()).unwrap().write_node, None);
        assert!(storage
            .set_write_lock(&pvc(), "node-2")
            .await
            .unwrap()
            .is_done());
        assert_eq!(
            sim.storage(&pvc()).unwrap().write_node.as_deref(),
            Some("node-2")
        );
        assert!(storage
            .set_write_lock(&pvc(), "node-2")
            .await
            .unwrap()
            .is_done());
    }

    #[tokio::test]
    async fn write_lock_on_a_free_volume_or_unknown_node_is_rejected() {
        let sim = sim(0);
        let storage = sim.ports().storage;
        let err = storage.set_write_lock(&pvc(), "node-1").await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
        storage.use_storage(&request("c1", false)).await.unwrap();
        let err = storage.set_write_lock(&pvc(), "node-9").await.unwrap_err();
        assert!(matches!(err, PortError::Rejected { .. }));
    }

    #[tokio::test]
    async fn release_frees_the_volume_and_keeps_the_format() {
        let sim = sim(1);
        let storage = sim.ports().storage;
        sim.set_storage(
            &pvc(),
            SimStorage {
                owner: Some("c1".into()),
                formatted_for: Some("c1".into()),
                format_count: 1,
                write_node: Some("node-1".into()),
                ..Default::default()
            },
        );
        assert!(!storage.release(&pvc(), "c1").await.unwrap().is_done());
        assert!(storage.release(&pvc(), "c1").await.unwrap().is_done());
        let state = sim.storage(&pvc()).unwrap();
        assert_eq!((state.owner, state.write_node), (None, None));
        assert_eq!(state.formatted_for.as_deref(), Some("c1"));
        // A free volume, or one owned by someone else, is done at once.
        assert!(storage.release(&pvc(), "c1").await.unwrap().is_done());
        assert!(storage
            .release(&PvcRef::default(), "c1")
            .await
            .unwrap()
            .is_done());
    }

    #[tokio::test]
    async fn release_by_another_owner_leaves_the_volume_alone() {
        let sim = sim(0);
        let storage = sim.ports().storage;
        storage.use_storage(&request("c1", false)).await.unwrap();
        assert!(storage.release(&pvc(), "c2").await.unwrap().is_done());
        assert_eq!(sim.storage(&pvc()).unwrap().owner.as_deref(), Some("c1"));
    }

    #[tokio::test]
    async fn failed_call_changes_nothing() {
        let sim = sim(0);
        sim.set_fail_rate(1.0);
        assert!(sim
            .ports()
            .storage
            .use_storage(&request("c1", true))
            .await
            .is_err());
        assert_eq!(sim.storage(&pvc()), None);
    }
}
