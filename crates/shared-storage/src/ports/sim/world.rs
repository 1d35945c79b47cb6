//! The simulated world: every system's state behind one lock.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::accounts::AccountRecord;
use super::cluster_manager::CmRecord;
use super::faults::{SimCall, SimConfig};
use super::params::SimParams;
use super::pods::PodRecord;
use super::storage::StorageRecord;
use super::{catalog, nodes, params};
use crate::crd::MPDCluster;
use crate::local::atomic::write_atomically;
use crate::local::LocalError;
use crate::ports::{ClassDef, ClusterRef, NodeInfo, ParamTemplate, VersionDef};

/// `namespace/name` of an object.
pub(super) type Key = (String, String);

/// The simulated clock starts here (2024-01-01T00:00:00Z) and advances one second per call.
const EPOCH_SECONDS: i64 = 1_704_067_200;

/// Everything the simulated systems hold.
///
/// Serialisable (for [`Simulation::persistent`](super::Simulation::persistent)): the call
/// log and the persistence settings are not saved, the random generator is saved as its
/// current state (so a reloaded world goes on with the same sequence), and maps with
/// non-string keys are saved as lists of `[key, value]` pairs.
#[derive(Serialize, Deserialize)]
pub(crate) struct World {
    pub(super) config: SimConfig,
    /// The one random generator: faults and passwords.
    #[serde(with = "rng_state")]
    pub(super) rng: fastrand::Rng,
    /// The logical clock: one tick per port call.
    pub(super) tick: u64,
    #[serde(skip)]
    pub(super) calls: Vec<SimCall>,
    /// Where the world is saved, when persistent.
    #[serde(skip)]
    pub(super) persistence: Option<Persistence>,

    // A. MPDCluster objects.
    #[serde(with = "pairs")]
    pub(super) clusters: BTreeMap<Key, MPDCluster>,
    pub(super) next_resource_version: u64,
    pub(super) next_uid: u64,
    // B. ids.
    pub(super) next_id: u64,
    // C. host ports.
    pub(super) next_port: i32,
    pub(super) used_ports: BTreeSet<i32>,
    // D. storage, by PVC.
    #[serde(with = "pairs")]
    pub(super) storage: BTreeMap<Key, StorageRecord>,
    // E. cluster managers.
    #[serde(with = "pairs")]
    pub(super) cms: BTreeMap<ClusterRef, CmRecord>,
    // F, G, H. pods with their engine and pfsd.
    #[serde(with = "pairs")]
    pub(super) pods: BTreeMap<Key, PodRecord>,
    // I. accounts.
    #[serde(with = "pairs")]
    pub(super) accounts: BTreeMap<ClusterRef, BTreeMap<String, AccountRecord>>,
    // J. parameters.
    #[serde(with = "pairs")]
    pub(super) params: BTreeMap<ClusterRef, SimParams>,
    pub(super) template: ParamTemplate,
    pub(super) class_params: BTreeMap<String, BTreeMap<String, String>>,
    // K. catalogs.
    pub(super) classes: BTreeMap<String, ClassDef>,
    pub(super) versions: BTreeMap<String, VersionDef>,
    pub(super) latest_version: String,
    // L. nodes.
    pub(super) nodes: BTreeMap<String, NodeInfo>,
}

impl World {
    /// The default world (see the module documentation).
    pub(super) fn new(config: SimConfig) -> Self {
        World {
            rng: fastrand::Rng::with_seed(config.seed),
            config,
            tick: 0,
            calls: Vec::new(),
            persistence: None,
            clusters: BTreeMap::new(),
            next_resource_version: 1,
            next_uid: 1,
            next_id: 1000,
            next_port: 30000,
            used_ports: BTreeSet::new(),
            storage: BTreeMap::new(),
            cms: BTreeMap::new(),
            pods: BTreeMap::new(),
            accounts: BTreeMap::new(),
            params: BTreeMap::new(),
            template: params::default_template(),
            class_params: params::default_class_params(),
            classes: catalog::default_classes(),
            versions: catalog::default_versions(),
            latest_version: catalog::LATEST_VERSION.to_string(),
            nodes: nodes::default_nodes(),
        }
    }

    /// The simulated time now.
    pub(super) fn now(&self) -> DateTime<Utc> {
        let seconds = i64::try_from(self.tick).unwrap_or(i64::MAX - EPOCH_SECONDS);
        DateTime::from_timestamp(EPOCH_SECONDS + seconds, 0).unwrap_or_default()
    }

    /// Whether `node` exists and is available.
    pub(super) fn node_available(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.available)
    }
}

/// Where a persistent world is saved, and what was saved last.
pub(super) struct Persistence {
    /// The file.
    pub(super) path: PathBuf,
    /// The bytes last written (or read): a world that serialises to the same bytes is not
    /// written again.
    pub(super) saved: Vec<u8>,
}

impl World {
    /// The world as saved in a file.
    pub(super) fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Saves the world atomically when it is persistent and changed since the last save.
    pub(super) fn save_if_changed(&mut self) -> Result<(), LocalError> {
        let Some(path) = self.persistence.as_ref().map(|p| p.path.clone()) else {
            return Ok(());
        };
        let bytes = self.to_bytes().map_err(|e| LocalError::Corrupt {
            path: path.clone(),
            message: format!("cannot serialise the simulated world: {e}"),
        })?;
        if self.persistence.as_ref().is_some_and(|p| p.saved == bytes) {
            return Ok(());
        }
        write_atomically(&path, &bytes).map_err(|e| LocalError::Io {
            path: path.clone(),
            source: e,
        })?;
        self.persistence = Some(Persistence { path, saved: bytes });
        Ok(())
    }
}

/// `fastrand::Rng` as its current state: `Rng::with_seed(state)` continues the sequence.
mod rng_state {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(rng: &fastrand::Rng, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(rng.get_seed())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<fastrand::Rng, D::Error> {
        u64::deserialize(d).map(fastrand::Rng::with_seed)
    }
}

/// A map as a list of `[key, value]` pairs (JSON keys must be strings).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<K, V, S>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        s.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Vec::<(K, V)>::deserialize(d).map(|pairs| pairs.into_iter().collect())
    }
}

/// A long operation in progress: done after `remaining` more calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Job<K> {
    pub(super) kind: K,
    pub(super) remaining: u32,
}

/// Advances the job `kind` in `slot`, starting it (or restarting it when another job is
/// pending) with `ready_after_polls` calls to go; true when it is done (the slot is then
/// empty).
pub(super) fn advance<K: PartialEq>(
    slot: &mut Option<Job<K>>,
    kind: K,
    ready_after_polls: u32,
) -> bool {
    if slot.as_ref().is_none_or(|job| job.kind != kind) {
        *slot = Some(Job {
            kind,
            remaining: ready_after_polls,
        });
    }
    match slot {
        Some(job) if job.remaining > 0 => {
            job.remaining -= 1;
            false
        }
        _ => {
            *slot = None;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_pending_for_ready_after_polls_calls_then_done() {
        let mut slot = None;
        assert!(!advance(&mut slot, 1, 2));
        assert!(!advance(&mut slot, 1, 2));
        assert!(advance(&mut slot, 1, 2));
        assert!(slot.is_none());
        assert!(advance(&mut slot, 1, 0));
    }

    #[test]
    fn another_job_restarts_the_count() {
        let mut slot = None;
        assert!(!advance(&mut slot, 1, 1));
        assert!(!advance(&mut slot, 2, 1));
        assert!(advance(&mut slot, 2, 1));
    }

    #[test]
    fn the_clock_advances_one_second_per_tick() {
        let mut world = World::new(SimConfig::default());
        let t0 = world.now();
        world.tick += 1;
        assert_eq!((world.now() - t0).num_seconds(), 1);
        assert_eq!(t0.to_rfc3339(), "2024-01-01T00:00:00+00:00");
    }
}
