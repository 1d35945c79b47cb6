//! Admission rules (weakness 27): what a request is checked against before the cluster
//! leaves its stable state, as pure functions over the MPDCluster and what the ports said.
//! [`crate::service::admission`] gathers the facts and applies them.
//!
//! Each rule answers `None` (passes) or the [`Refusal`] with its reason (one of [`reason`])
//! and a message that names the field and says what to change.

use std::collections::BTreeSet;

use wf_engine::{Refusal, Verdict};

use super::fs_id::FS_ID_POOL;
use super::temp_ro::parse_migrate;
use crate::crd::{annotations, ins_type, MPDCluster};
use crate::ports::{NodeInfo, PvcRef};
use crate::service::storage_of;

/// The refusal reasons.
pub mod reason {
    /// `classInfo.className` / `classInfoModifyTo.className` names no class of the catalog.
    pub const UNKNOWN_CLASS: &str = "UNKNOWN_CLASS";
    /// `versionCfg.versionName` / `versionCfgModifyTo.versionName` names no version.
    pub const UNKNOWN_VERSION: &str = "UNKNOWN_VERSION";
    /// `followerNum` is negative or above what the PFS host id pool holds.
    pub const INVALID_FOLLOWER_NUM: &str = "INVALID_FOLLOWER_NUM";
    /// `netCfg.engineStartPort` is not in 1..=65535.
    pub const INVALID_ENGINE_PORT: &str = "INVALID_ENGINE_PORT";
    /// An annotation names an instance the cluster does not have (of the role it needs).
    pub const UNKNOWN_INSTANCE: &str = "UNKNOWN_INSTANCE";
    /// `migrate` is not `<insId>|<node>`.
    pub const INVALID_MIGRATE: &str = "INVALID_MIGRATE";
    /// `migrate` names a node the cluster of nodes does not have.
    pub const UNKNOWN_NODE: &str = "UNKNOWN_NODE";
    /// The volume is another cluster's.
    pub const VOLUME_IN_USE: &str = "VOLUME_IN_USE";
    /// Too few nodes have the engine port free for the instances asked for.
    pub const NOT_ENOUGH_NODES: &str = "NOT_ENOUGH_NODES";
}

/// The largest `followerNum`: every instance (the RW and each RO) needs a PFS host id of
/// [`FS_ID_POOL`].
pub fn max_follower_num() -> i32 {
    let pool = FS_ID_POOL.end() - FS_ID_POOL.start() + 1;
    i32::try_from(pool).unwrap_or(i32::MAX) - 1
}

fn name(cr: &MPDCluster) -> String {
    format!(
        "{}/{}",
        cr.metadata.namespace.as_deref().unwrap_or_default(),
        cr.metadata.name.as_deref().unwrap_or_default()
    )
}

fn annotation<'a>(cr: &'a MPDCluster, key: &str) -> &'a str {
    cr.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

fn leader(cr: &MPDCluster) -> &str {
    cr.status
        .as_ref()
        .map_or("", |s| s.leader_instance_id.as_str())
}

/// The engine port of the spec (`netCfg.engineStartPort`, 0 when unset).
pub fn engine_port(cr: &MPDCluster) -> i32 {
    cr.spec.net_cfg.as_ref().map_or(0, |n| n.engine_start_port)
}

/// `followerNum` in `0..=max_follower_num()`.
pub fn check_follower_num(cr: &MPDCluster) -> Option<Refusal> {
    let n = cr.spec.follower_num;
    let max = max_follower_num();
    (!(0..=max).contains(&n)).then(|| {
        Refusal::new(
            reason::INVALID_FOLLOWER_NUM,
            format!(
                "cluster {}: spec.followerNum is {n}; it must be between 0 and {max} (one RW \
                 plus the ROs must fit the {} PFS host ids); set spec.followerNum in that range",
                name(cr),
                max + 1
            ),
        )
    })
}

/// `netCfg.engineStartPort` in 1..=65535.
pub fn check_engine_port(cr: &MPDCluster) -> Option<Refusal> {
    let port = engine_port(cr);
    (!(1..=65535).contains(&port)).then(|| {
        Refusal::new(
            reason::INVALID_ENGINE_PORT,
            format!(
                "cluster {}: spec.netCfg.engineStartPort is {port}; set it to a port in 1..=65535",
                name(cr)
            ),
        )
    })
}

/// The refusal of an unknown class (`field` names the spec field).
pub fn unknown_class(cr: &MPDCluster, field: &str, class: &str) -> Refusal {
    Refusal::new(
        reason::UNKNOWN_CLASS,
        format!(
            "cluster {}: {field} `{class}` is not a known instance class; set {field} to a \
             class of the catalog",
            name(cr)
        ),
    )
}

/// The refusal of an unknown version (`field` names the spec field).
pub fn unknown_version(cr: &MPDCluster, field: &str, version: &str) -> Refusal {
    Refusal::new(
        reason::UNKNOWN_VERSION,
        format!(
            "cluster {}: {field} `{version}` is not a known minor version; set {field} to a \
             version of the catalog",
            name(cr)
        ),
    )
}

/// The ids of the cluster's instances of `role` (`rw`, `ro`), sorted.
fn ids_of(cr: &MPDCluster, role: &str) -> Vec<String> {
    cr.status.as_ref().map_or_else(Vec::new, |s| {
        s.db_instance_status
            .iter()
            .filter(|(_, e)| e.ins_type == role)
            .map(|(id, _)| id.clone())
            .collect()
    })
}

fn listed(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}

/// `switchRw`: the current leader is satisfied (consumed); otherwise the value must be an RO
/// of this cluster.
pub fn switch_rw(cr: &MPDCluster) -> Verdict {
    let target = annotation(cr, annotations::SWITCH_RW);
    if target == leader(cr) {
        return Verdict::Satisfied;
    }
    let ros = ids_of(cr, ins_type::RO);
    if ros.iter().any(|id| id == target) {
        return Verdict::Admit;
    }
    Verdict::Refuse(Refusal::new(
        reason::UNKNOWN_INSTANCE,
        format!(
            "cluster {}: annotation switchRw `{target}` is not an RO of the cluster (ROs: {}; \
             leader: {}); set it to an RO's insId or remove it",
            name(cr),
            listed(&ros),
            leader(cr)
        ),
    ))
}

/// `restartIns`: the value must name an RW or RO of this cluster.
pub fn restart_ins(cr: &MPDCluster) -> Option<Refusal> {
    let target = annotation(cr, annotations::RESTART_INS);
    let mut ids = ids_of(cr, ins_type::RW);
    ids.extend(ids_of(cr, ins_type::RO));
    (!ids.iter().any(|id| id == target)).then(|| {
        Refusal::new(
            reason::UNKNOWN_INSTANCE,
            format!(
                "cluster {}: annotation restartIns `{target}` is not an instance of the cluster \
                 (instances: {}); set it to an insId or remove it",
                name(cr),
                listed(&ids)
            ),
        )
    })
}

/// `removeIns`: the value must name an RO of this cluster.
pub fn remove_ins(cr: &MPDCluster) -> Option<Refusal> {
    let target = annotation(cr, annotations::REMOVE_INS);
    let ros = ids_of(cr, ins_type::RO);
    (!ros.iter().any(|id| id == target)).then(|| {
        Refusal::new(
            reason::UNKNOWN_INSTANCE,
            format!(
                "cluster {}: annotation removeIns `{target}` is not an RO of the cluster (ROs: \
                 {}); set it to an RO's insId or remove it",
                name(cr),
                listed(&ros)
            ),
        )
    })
}

/// `migrate`: `<insId>|<node>` naming an instance of the cluster and a node of `nodes`; a
/// move to the node the instance already runs on is satisfied (consumed).
pub fn migrate(cr: &MPDCluster, nodes: &[NodeInfo]) -> Verdict {
    let value = annotation(cr, annotations::MIGRATE);
    let Some((ins_id, node)) = parse_migrate(value) else {
        return Verdict::Refuse(Refusal::new(
            reason::INVALID_MIGRATE,
            format!(
                "cluster {}: annotation migrate `{value}` is not `<insId>|<node>`; fix or \
                 remove it",
                name(cr)
            ),
        ));
    };
    let entry = cr
        .status
        .as_ref()
        .and_then(|s| s.db_instance_status.get(&ins_id))
        .filter(|e| e.ins_type == ins_type::RW || e.ins_type == ins_type::RO);
    let Some(entry) = entry else {
        let mut ids = ids_of(cr, ins_type::RW);
        ids.extend(ids_of(cr, ins_type::RO));
        return Verdict::Refuse(Refusal::new(
            reason::UNKNOWN_INSTANCE,
            format!(
                "cluster {}: annotation migrate names `{ins_id}`, which is not an instance of \
                 the cluster (instances: {}); fix or remove it",
                name(cr),
                listed(&ids)
            ),
        ));
    };
    if entry.node_name == node {
        return Verdict::Satisfied;
    }
    if !nodes.iter().any(|n| n.name == node) {
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        return Verdict::Refuse(Refusal::new(
            reason::UNKNOWN_NODE,
            format!(
                "cluster {}: annotation migrate names node `{node}`, which does not exist \
                 (nodes: {}); fix or remove it",
                name(cr),
                listed(&names)
            ),
        ));
    }
    Verdict::Admit
}

/// Whether `other` (another cluster) has taken the volume `pvc`: it names the same PVC
/// (the storage manager's key) and it has started (its state is not empty).
fn holds_volume(other: &MPDCluster, pvc: &PvcRef) -> bool {
    let started = other
        .status
        .as_ref()
        .is_some_and(|s| !s.cluster_status.is_empty());
    started && storage_of(other).as_ref() == Some(pvc)
}

/// Create: the volume (its PVC) must not be one another (started) cluster of `all` uses.
pub fn check_volume(cr: &MPDCluster, all: &[MPDCluster]) -> Option<Refusal> {
    let pvc = storage_of(cr)?;
    let me = name(cr);
    let owner = all
        .iter()
        .filter(|other| name(other) != me)
        .find(|other| holds_volume(other, &pvc))?;
    Some(Refusal::new(
        reason::VOLUME_IN_USE,
        format!(
            "cluster {me}: the volume of shareStore.sharePvcName {}/{} is used by cluster {}; \
             give this cluster a volume of its own",
            pvc.namespace,
            pvc.name,
            name(owner)
        ),
    ))
}

/// The available nodes where a new instance of `cr` can go: no instance of `cr` on it, and
/// no instance of another cluster of `all` with the same engine port.
pub fn free_nodes(cr: &MPDCluster, all: &[MPDCluster], nodes: &[NodeInfo]) -> Vec<String> {
    let me = name(cr);
    let port = engine_port(cr);
    let mut taken = BTreeSet::new();
    for other in all.iter().chain(std::iter::once(cr)) {
        let mine = name(other) == me;
        let Some(status) = other.status.as_ref() else {
            continue;
        };
        for entry in status.db_instance_status.values() {
            let their_port = if entry.net_info.working_port != 0 {
                entry.net_info.working_port
            } else {
                engine_port(other)
            };
            if !entry.node_name.is_empty() && (mine || their_port == port) {
                taken.insert(entry.node_name.clone());
            }
        }
    }
    nodes
        .iter()
        .filter(|n| n.available && !taken.contains(&n.name))
        .map(|n| n.name.clone())
        .collect()
}

/// Create (`new` = 1 + followerNum) and AddRo (`new` = followerNum minus the ROs): enough
/// nodes have the engine port free for the new instances.
pub fn check_nodes(
    cr: &MPDCluster,
    all: &[MPDCluster],
    nodes: &[NodeInfo],
    new: usize,
) -> Option<Refusal> {
    let free = free_nodes(cr, all, nodes);
    if free.len() >= new {
        return None;
    }
    let available = nodes.iter().filter(|n| n.available).count();
    let port = engine_port(cr);
    Some(Refusal::new(
        reason::NOT_ENOUGH_NODES,
        format!(
            "cluster {}: {new} new instance(s) need a node each with engine port {port} free \
             and no instance of this cluster, but only {} of the {available} available node(s) \
             qualify{}; lower spec.followerNum, choose another spec.netCfg.engineStartPort, \
             or add nodes",
            name(cr),
            free.len(),
            if free.is_empty() {
                String::new()
            } else {
                format!(" ({})", free.join(", "))
            }
        ),
    ))
}

/// AddRo: how many ROs the spec asks for beyond those the status has.
pub fn ros_wanted(cr: &MPDCluster) -> usize {
    let have = ids_of(cr, ins_type::RO).len();
    usize::try_from(cr.spec.follower_num)
        .unwrap_or(0)
        .saturating_sub(have)
}
