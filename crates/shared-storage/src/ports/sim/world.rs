//! The simulated world: every system's state behind one lock.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::accounts::AccountRecord;
use super::cluster_manager::CmRecord;
use super::faults::{SimCall, SimConfig};
use super::params::SimParams;
use super::pods::PodRecord;
use super::storage::StorageRecord;
use super::{catalog, nodes, params};
use crate::crd::MPDCluster;
use crate::ports::{ClassDef, ClusterRef, NodeInfo, ParamTemplate, VersionDef};

/// `namespace/name` of an object.
pub(super) type Key = (String, String);

/// The simulated clock starts here (2024-01-01T00:00:00Z) and advances one second per call.
const EPOCH_SECONDS: i64 = 1_704_067_200;

/// Everything the simulated systems hold.
pub(crate) struct World {
    pub(super) config: SimConfig,
    /// The one random generator: faults and passwords.
    pub(super) rng: fastrand::Rng,
    /// The logical clock: one tick per port call.
    pub(super) tick: u64,
    pub(super) calls: Vec<SimCall>,

    // A. MPDCluster objects.
    pub(super) clusters: BTreeMap<Key, MPDCluster>,
    pub(super) next_resource_version: u64,
    pub(super) next_uid: u64,
    // B. ids.
    pub(super) next_id: u64,
    // C. host ports.
    pub(super) next_port: i32,
    pub(super) used_ports: BTreeSet<i32>,
    // D. storage, by PVC.
    pub(super) storage: BTreeMap<Key, StorageRecord>,
    // E. cluster managers.
    pub(super) cms: BTreeMap<ClusterRef, CmRecord>,
    // F, G, H. pods with their engine and pfsd.
    pub(super) pods: BTreeMap<Key, PodRecord>,
    // I. accounts.
    pub(super) accounts: BTreeMap<ClusterRef, BTreeMap<String, AccountRecord>>,
    // J. parameters.
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

/// A long operation in progress: done after `remaining` more calls.
#[derive(Clone, Debug, PartialEq, Eq)]
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
