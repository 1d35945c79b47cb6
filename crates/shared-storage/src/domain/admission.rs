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

/// `removeIns`: when present, the value must name an RO of this cluster (a scale-in asked
/// by `followerNum` alone, without the annotation, is not checked here).
pub fn remove_ins(cr: &MPDCluster) -> Option<Refusal> {
    let target = annotation(cr, annotations::REMOVE_INS);
    let ros = ids_of(cr, ins_type::RO);
    (!target.is_empty() && !ros.iter().any(|id| id == target)).then(|| {
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

/// Create: how many instances (the RW and `followerNum` ROs) still need a node: those the
/// status already places on a node (a creation started before and given up, now made
/// again) need none.
pub fn instances_to_place(cr: &MPDCluster) -> usize {
    let placed = cr.status.as_ref().map_or(0, |s| {
        s.db_instance_status
            .values()
            .filter(|e| e.ins_type != ins_type::TEMP_RO && !e.node_name.is_empty())
            .count()
    });
    (usize::try_from(cr.spec.follower_num).unwrap_or(0) + 1).saturating_sub(placed)
}

/// AddRo: how many ROs the spec asks for beyond those the status has.
pub fn ros_wanted(cr: &MPDCluster) -> usize {
    let have = ids_of(cr, ins_type::RO).len();
    usize::try_from(cr.spec.follower_num)
        .unwrap_or(0)
        .saturating_sub(have)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::{InstanceStatus, MPDClusterSpec, MPDClusterStatus, NetCfg, ShareStore};

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            available: true,
            ..NodeInfo::default()
        }
    }

    /// `ns/name` Running with an RW on node-1 and ROs on the next nodes, port `port`, PVC
    /// `pvc`.
    fn cluster(name: &str, port: i32, pvc: &str, ros: usize) -> MPDCluster {
        let mut cr = MPDCluster::new(
            name,
            MPDClusterSpec {
                follower_num: i32::try_from(ros).unwrap(),
                net_cfg: Some(NetCfg {
                    engine_start_port: port,
                }),
                share_store: Some(ShareStore {
                    share_pvc_name: pvc.into(),
                    ..ShareStore::default()
                }),
                ..MPDClusterSpec::default()
            },
        );
        cr.metadata.namespace = Some("ns".into());
        let mut entries = BTreeMap::new();
        for i in 0..=ros {
            let ty = if i == 0 { "rw" } else { "ro" };
            entries.insert(
                format!("{}", 1000 + i),
                InstanceStatus {
                    ins_type: ty.into(),
                    node_name: format!("node-{}", i + 1),
                    ..InstanceStatus::default()
                },
            );
        }
        cr.status = Some(MPDClusterStatus {
            cluster_status: "Running".into(),
            leader_instance_id: "1000".into(),
            db_instance_status: entries,
            ..MPDClusterStatus::default()
        });
        cr
    }

    #[test]
    fn a_creation_made_again_needs_nodes_only_for_the_instances_not_yet_placed() {
        let mut cr = cluster("demo", 5432, "pvc", 2);
        assert_eq!(instances_to_place(&cr), 0, "all three placed");
        cr.spec.follower_num = 3;
        assert_eq!(instances_to_place(&cr), 1);
        cr.status = None;
        assert_eq!(
            instances_to_place(&cr),
            4,
            "a new cluster: the RW and three ROs"
        );
        let mut half = cluster("demo", 5432, "pvc", 2);
        let entries = &mut half.status.as_mut().unwrap().db_instance_status;
        entries.get_mut("1002").unwrap().node_name.clear();
        assert_eq!(
            instances_to_place(&half),
            1,
            "an RO allocated but never placed"
        );
    }

    fn annotate(cr: &mut MPDCluster, key: &str, value: &str) {
        cr.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    fn reason_of(verdict: Verdict) -> String {
        match verdict {
            Verdict::Refuse(r) => r.reason,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn counts_and_ports_out_of_range_are_refused() {
        let mut cr = cluster("a", 5432, "pvc-a", 2);
        assert_eq!(check_follower_num(&cr), None);
        cr.spec.follower_num = -1;
        assert_eq!(
            check_follower_num(&cr).unwrap().reason,
            reason::INVALID_FOLLOWER_NUM
        );
        cr.spec.follower_num = max_follower_num() + 1;
        assert!(check_follower_num(&cr).is_some());
        for port in [0, -1, 65536] {
            cr.spec.net_cfg = Some(NetCfg {
                engine_start_port: port,
            });
            assert_eq!(
                check_engine_port(&cr).unwrap().reason,
                reason::INVALID_ENGINE_PORT,
                "{port}"
            );
        }
    }

    #[test]
    fn a_switch_to_the_leader_is_satisfied_and_to_a_non_ro_refused() {
        let mut cr = cluster("a", 5432, "pvc-a", 2);
        annotate(&mut cr, annotations::SWITCH_RW, "1001");
        assert_eq!(switch_rw(&cr), Verdict::Admit);
        annotate(&mut cr, annotations::SWITCH_RW, "1000");
        assert_eq!(switch_rw(&cr), Verdict::Satisfied);
        annotate(&mut cr, annotations::SWITCH_RW, "42");
        assert_eq!(reason_of(switch_rw(&cr)), reason::UNKNOWN_INSTANCE);
    }

    #[test]
    fn ids_must_name_an_instance_of_the_right_role() {
        let mut cr = cluster("a", 5432, "pvc-a", 1);
        annotate(&mut cr, annotations::RESTART_INS, "1000");
        assert_eq!(restart_ins(&cr), None);
        annotate(&mut cr, annotations::RESTART_INS, "9");
        assert!(restart_ins(&cr).is_some());
        annotate(&mut cr, annotations::REMOVE_INS, "1000");
        assert_eq!(
            remove_ins(&cr).unwrap().reason,
            reason::UNKNOWN_INSTANCE,
            "the RW is not an RO"
        );
        annotate(&mut cr, annotations::REMOVE_INS, "1001");
        assert_eq!(remove_ins(&cr), None);
        annotate(&mut cr, annotations::REMOVE_INS, "");
        assert_eq!(remove_ins(&cr), None, "no id: nothing to check");
    }

    #[test]
    fn a_migrate_is_checked_and_one_to_the_current_node_satisfied() {
        let nodes: Vec<NodeInfo> = (1..=4).map(|n| node(&format!("node-{n}"))).collect();
        let mut cr = cluster("a", 5432, "pvc-a", 1);
        for (value, want) in [
            ("1001|node-3", "Admit"),
            ("1001|node-2", "Satisfied"),
            ("1001|node-9", reason::UNKNOWN_NODE),
            ("4242|node-3", reason::UNKNOWN_INSTANCE),
            ("1001", reason::INVALID_MIGRATE),
        ] {
            annotate(&mut cr, annotations::MIGRATE, value);
            assert_eq!(reason_of(migrate(&cr, &nodes)), want, "{value}");
        }
    }

    #[test]
    fn a_volume_another_started_cluster_names_is_refused() {
        let owner = cluster("owner", 5432, "pvc-a", 1);
        let mut new = cluster("new", 6432, "pvc-a", 1);
        new.status = None;
        let refusal = check_volume(&new, std::slice::from_ref(&owner)).unwrap();
        assert_eq!(refusal.reason, reason::VOLUME_IN_USE);
        assert!(refusal.message.contains("ns/owner"), "{}", refusal.message);
        let mut unstarted = owner.clone();
        unstarted.status = None;
        assert_eq!(check_volume(&new, &[unstarted]), None);
        new.spec.share_store.as_mut().unwrap().share_pvc_name = "pvc-b".into();
        assert_eq!(check_volume(&new, &[owner]), None);
    }

    #[test]
    fn nodes_with_the_engine_port_taken_or_holding_the_cluster_are_not_free() {
        let nodes: Vec<NodeInfo> = (1..=4).map(|n| node(&format!("node-{n}"))).collect();
        let other = cluster("other", 5432, "pvc-o", 2); // node-1..3 on 5432
        let mut new = cluster("new", 5432, "pvc-n", 2);
        new.status = None;
        assert_eq!(
            free_nodes(&new, std::slice::from_ref(&other), &nodes),
            ["node-4"]
        );
        let refusal = check_nodes(&new, std::slice::from_ref(&other), &nodes, 3).unwrap();
        assert_eq!(refusal.reason, reason::NOT_ENOUGH_NODES);
        assert!(
            refusal.message.contains("engine port 5432"),
            "{}",
            refusal.message
        );
        new.spec.net_cfg = Some(NetCfg {
            engine_start_port: 6432,
        });
        assert_eq!(check_nodes(&new, &[other], &nodes, 3), None, "another port");
        // Its own instances take their nodes whatever the port.
        let me = cluster("me", 5432, "pvc-m", 2);
        assert_eq!(
            free_nodes(&me, std::slice::from_ref(&me), &nodes),
            ["node-4"]
        );
    }
}
