//! Temporary ROs: planning, creating and promoting the replacement instances of a flow
//! (domain §2.2, §2.5, §4.3).
//!
//! A temp RO replaces an instance in place: the **same** physicalInsId, a **new** insId
//! (hence a new pod name), a new fsId and the cluster's port. The plan `tempRoIds`
//! (phys -> new insId) is recorded first, then the temp RO entities are created from it,
//! then each temp RO is promoted to an RO and its predecessor deleted.

use std::collections::{BTreeMap, BTreeSet};

use super::fs_id::next_fs_ids;
use super::ids::compare_ins_ids;
use super::topology::new_instance;
use super::{interrupt, DbIns, DomainError, InsType, SharedStorageCluster};
use crate::crd::InstanceStatus;

/// The physical ids whose instances a flow replaces.
///
/// - `None` (ModifyClass, Upgrade): the RW's phys first, then every RO's phys, sorted by
///   [`compare_ins_ids`], without duplicates.
/// - `Some(ins_id)` (the migrate flows): the phys of that instance, which must be the RW or
///   an RO.
///
/// # Errors
/// Weakness 4, never an empty plan by accident:
/// - [`DomainError::UnknownInstance`] when `ins_id` names no instance;
/// - [`DomainError::Invalid`] when `ins_id` names a temp RO (it is itself a replacement), or
///   when `None` is asked of a cluster without an RW.
pub fn phys_ids_to_replace(
    cluster: &SharedStorageCluster,
    target_ins: Option<&str>,
) -> Result<Vec<String>, DomainError> {
    let Some(ins_id) = target_ins else {
        let rw = cluster.rw.as_ref().ok_or_else(|| DomainError::Invalid {
            cluster: cluster.qualified_name(),
            message: "the cluster has no RW to replace".to_owned(),
        })?;
        let mut ro_phys: Vec<&str> = cluster
            .ros
            .values()
            .map(|ro| ro.physical_ins_id.as_str())
            .filter(|phys| *phys != rw.physical_ins_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        ro_phys.sort_by(|a, b| compare_ins_ids(a, b));
        return Ok(std::iter::once(rw.physical_ins_id.as_str())
            .chain(ro_phys)
            .map(str::to_owned)
            .collect());
    };
    match cluster.find(ins_id) {
        Some((InsType::Rw | InsType::Ro, ins)) => Ok(vec![ins.physical_ins_id.clone()]),
        Some((InsType::TempRo, _)) => Err(DomainError::Invalid {
            cluster: cluster.qualified_name(),
            message: format!("instance `{ins_id}` is a temporary RO and cannot be replaced"),
        }),
        None => Err(DomainError::UnknownInstance {
            cluster: cluster.qualified_name(),
            ins_id: ins_id.to_owned(),
        }),
    }
}

/// Records the plan: `phys_ids[i]` is replaced by a new instance with insId `new_ids[i]`.
///
/// Returns `false` and changes nothing when a plan already exists (a re-run keeps the ids
/// it allocated first), `true` when the plan was recorded. Ids beyond `phys_ids.len()` are
/// ignored.
///
/// # Errors
/// - [`DomainError::Invalid`] when `phys_ids` is empty or names a phys twice (weakness 4);
/// - [`DomainError::NotEnoughIds`] when there are fewer new ids than phys ids.
pub fn plan_replacements(
    cluster: &mut SharedStorageCluster,
    phys_ids: &[String],
    new_ids: &[u64],
) -> Result<bool, DomainError> {
    if !cluster.temp_ro_ids.is_empty() {
        return Ok(false);
    }
    let invalid = |message: &str| DomainError::Invalid {
        cluster: cluster.qualified_name(),
        message: message.to_owned(),
    };
    if phys_ids.is_empty() {
        return Err(invalid("no instance to replace: the plan would be empty"));
    }
    if phys_ids.iter().collect::<BTreeSet<_>>().len() != phys_ids.len() {
        return Err(invalid("a physical id is planned twice"));
    }
    if new_ids.len() < phys_ids.len() {
        return Err(DomainError::NotEnoughIds {
            cluster: cluster.qualified_name(),
            needed: phys_ids.len(),
            got: new_ids.len(),
        });
    }
    cluster.temp_ro_ids = phys_ids
        .iter()
        .zip(new_ids)
        .map(|(phys, id)| (phys.clone(), id.to_string()))
        .collect();
    Ok(true)
}

/// Records the plan of AddRo: one new instance in a new slot, `new_ids[0]` its phys and
/// `new_ids[1]` its insId. Like [`plan_replacements`], a no-op returning `false` when a plan
/// exists (weakness 25: a re-run does not overwrite the plan).
///
/// # Errors
/// [`DomainError::NotEnoughIds`] when fewer than 2 ids are given.
pub fn plan_added_ro(
    cluster: &mut SharedStorageCluster,
    new_ids: &[u64],
) -> Result<bool, DomainError> {
    if !cluster.temp_ro_ids.is_empty() {
        return Ok(false);
    }
    match new_ids {
        [phys, ins, ..] => {
            cluster
                .temp_ro_ids
                .insert(phys.to_string(), ins.to_string());
            Ok(true)
        }
        _ => Err(DomainError::NotEnoughIds {
            cluster: cluster.qualified_name(),
            needed: 2,
            got: new_ids.len(),
        }),
    }
}

/// Creates the temp RO entity of every plan entry whose new insId is not already the RW, an
/// RO or a temp RO: same phys, the new insId (also its insName), pod `<cluster>-<phys>-<ins>`
/// in the cluster's namespace, the cluster's port and a new fsId.
///
/// Idempotent (weakness 25): an existing temp RO is kept untouched, so a re-run allocates no
/// new fsIds and does not forget a node or an install already recorded.
///
/// # Errors
/// [`DomainError::FsIdsExhausted`] when the pool has too few free fsIds; nothing is created.
pub fn init_temp_ro_meta(cluster: &mut SharedStorageCluster) -> Result<(), DomainError> {
    let missing: Vec<(String, String)> = cluster
        .temp_ro_ids
        .iter()
        .filter(|(_, ins)| cluster.find(ins).is_none())
        .map(|(phys, ins)| (phys.clone(), ins.clone()))
        .collect();
    let fs_ids = next_fs_ids(cluster, missing.len())?;
    let created: Vec<DbIns> = missing
        .iter()
        .zip(fs_ids)
        .map(|((phys, ins), fs_id)| new_instance(cluster, phys, ins, fs_id))
        .collect();
    for temp in created {
        cluster.temp_ros.insert(temp.ins_id.clone(), temp);
    }
    Ok(())
}

/// The temp RO that replaces the RW: the planned one (`tempRoIds[rw.phys]`) when it exists,
/// else the first temp RO (in insId order) with the RW's phys. `None` without an RW or such a
/// temp RO.
pub fn temp_ro_for_rw(cluster: &SharedStorageCluster) -> Option<&DbIns> {
    let rw = cluster.rw.as_ref()?;
    cluster
        .temp_ro_ids
        .get(&rw.physical_ins_id)
        .and_then(|planned| cluster.temp_ros.get(planned))
        .or_else(|| {
            sorted(cluster.temp_ros.values())
                .into_iter()
                .find(|t| t.physical_ins_id == rw.physical_ins_id)
        })
}

/// Moves the RW's replacement (see [`temp_ro_for_rw`]) from the temp ROs into the ROs and
/// returns its insId. Never another temp RO (weakness 3).
///
/// Idempotent: when the replacement already is an RO (the planned id, or without a plan an
/// RO other than the RW with the RW's phys), its id is returned and nothing changes.
///
/// # Errors
/// - [`DomainError::Interrupt`] `TEMP_RO_FOR_RW_MEAT_LOST` when there is neither;
/// - [`DomainError::Invalid`] when the cluster has no RW.
pub fn convert_temp_ro_for_rw_to_ro(
    cluster: &mut SharedStorageCluster,
) -> Result<String, DomainError> {
    let rw = cluster.rw.as_ref().ok_or_else(|| DomainError::Invalid {
        cluster: cluster.qualified_name(),
        message: "the cluster has no RW".to_owned(),
    })?;
    let rw_phys = rw.physical_ins_id.clone();
    let rw_id = rw.ins_id.clone();
    if let Some(id) = temp_ro_for_rw(cluster).map(|t| t.ins_id.clone()) {
        promote_temp_ro(cluster, &id)?;
        return Ok(id);
    }
    let already_ro = match cluster.temp_ro_ids.get(&rw_phys) {
        Some(planned) => cluster.ros.get(planned),
        None => sorted(cluster.ros.values())
            .into_iter()
            .find(|ro| ro.physical_ins_id == rw_phys && ro.ins_id != rw_id),
    };
    already_ro
        .map(|ro| ro.ins_id.clone())
        .ok_or_else(|| DomainError::Interrupt {
            reason: interrupt::TEMP_RO_FOR_RW_MEAT_LOST,
            message: format!(
                "cluster {}: no temporary RO replaces the RW {rw_id} (phys {rw_phys})",
                cluster.qualified_name()
            ),
        })
}

/// Moves the temp RO `ins_id` into the ROs. A no-op when it already is an RO.
///
/// # Errors
/// [`DomainError::UnknownInstance`] when `ins_id` is neither a temp RO nor an RO.
pub fn promote_temp_ro(
    cluster: &mut SharedStorageCluster,
    ins_id: &str,
) -> Result<(), DomainError> {
    if let Some(temp) = cluster.temp_ros.remove(ins_id) {
        cluster.ros.insert(ins_id.to_owned(), temp);
        return Ok(());
    }
    if cluster.ros.contains_key(ins_id) {
        return Ok(());
    }
    Err(DomainError::UnknownInstance {
        cluster: cluster.qualified_name(),
        ins_id: ins_id.to_owned(),
    })
}

/// Parses the `migrate` annotation `<insId>|<targetNode>`: exactly one `|`, both parts
/// non-empty after trimming spaces. `None` otherwise.
pub fn parse_migrate(value: &str) -> Option<(String, String)> {
    let (ins, node) = value.split_once('|')?;
    let (ins, node) = (ins.trim(), node.trim());
    if ins.is_empty() || node.is_empty() || node.contains('|') {
        return None;
    }
    Some((ins.to_owned(), node.to_owned()))
}

/// A failed instance that is not the RW, for RebuildRo: the first failed RO in insId order
/// (numeric, see [`compare_ins_ids`]), else the first failed temp RO. "Failed" is the
/// current state `FAILED`, case-insensitive.
pub fn failed_non_leader(cluster: &SharedStorageCluster) -> Option<&DbIns> {
    let rw_id = cluster.rw_id();
    sorted(cluster.ros.values())
        .into_iter()
        .chain(sorted(cluster.temp_ros.values()))
        .find(|ins| ins.ins_id != rw_id && ins.current_state.is_failed())
}

/// For CleanTempRoMeta: the `dbInstanceStatus` keys to drop so that each physicalInsId is
/// held by one entry.
///
/// In each group of entries sharing a phys, the entry kept is the leader's (the key equal to
/// `leader`, else an entry of type `rw`), so the RW is never dropped; without one, the entry
/// with the smallest insId. The others are dropped: those with the **numerically** greater
/// insIds (weakness 13: `"999"` < `"1000"`; see [`compare_ins_ids`]). The result is sorted
/// the same way. Entries with an empty phys are left alone.
///
/// The original always dropped the greater id; keeping the leader is a deliberate
/// deviation: after a replace-in-place switchover the new RW has the greater id.
pub fn duplicate_phys_to_drop(
    entries: &BTreeMap<String, InstanceStatus>,
    leader: &str,
) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<(&str, &InstanceStatus)>> = BTreeMap::new();
    for (key, entry) in entries {
        if !entry.physical_ins_id.is_empty() {
            groups
                .entry(entry.physical_ins_id.as_str())
                .or_default()
                .push((key.as_str(), entry));
        }
    }
    let mut drop = Vec::new();
    for mut group in groups.into_values().filter(|g| g.len() > 1) {
        group.sort_by(|a, b| compare_ins_ids(a.0, b.0));
        let keep = group
            .iter()
            .position(|(key, _)| !leader.is_empty() && *key == leader)
            .or_else(|| {
                group
                    .iter()
                    .position(|(_, e)| e.ins_type == crate::crd::ins_type::RW)
            })
            .unwrap_or(0);
        drop.extend(
            group
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != keep)
                .map(|(_, (key, _))| (*key).to_owned()),
        );
    }
    drop.sort_by(|a, b| compare_ins_ids(a, b));
    drop
}

/// Instances in numeric insId order.
fn sorted<'a>(instances: impl Iterator<Item = &'a DbIns>) -> Vec<&'a DbIns> {
    let mut v: Vec<&DbIns> = instances.collect();
    v.sort_by(|a, b| compare_ins_ids(&a.ins_id, &b.ins_id));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EngineState;

    fn ins(phys: &str, id: &str, fs: &str) -> DbIns {
        DbIns {
            physical_ins_id: phys.into(),
            ins_id: id.into(),
            ins_name: id.into(),
            pod_name: format!("pc-{phys}-{id}"),
            pod_namespace: "db".into(),
            port: 5432,
            fs_id: fs.into(),
            ..DbIns::default()
        }
    }

    /// RW 1002 (phys 1001), ROs 1004 (phys 1003) and 1006 (phys 1005).
    fn cluster() -> SharedStorageCluster {
        let mut c = SharedStorageCluster {
            name: "pc".into(),
            namespace: "db".into(),
            port: 5432,
            rw: Some(ins("1001", "1002", "5")),
            ..SharedStorageCluster::default()
        };
        c.ros.insert("1004".into(), ins("1003", "1004", "6"));
        c.ros.insert("1006".into(), ins("1005", "1006", "7"));
        c
    }

    fn failed() -> EngineState {
        EngineState {
            state: "Failed".into(),
            ..EngineState::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn phys_ids_to_replace_all_is_rw_first_then_ros_sorted() {
        let mut c = cluster();
        c.ros.insert("900".into(), ins("999", "900", "8"));
        assert_eq!(
            phys_ids_to_replace(&c, None).unwrap(),
            strings(&["1001", "999", "1003", "1005"])
        );
    }

    #[test]
    fn phys_ids_to_replace_one_instance_is_its_phys() {
        let c = cluster();
        assert_eq!(
            phys_ids_to_replace(&c, Some("1002")).unwrap(),
            strings(&["1001"])
        );
        assert_eq!(
            phys_ids_to_replace(&c, Some("1006")).unwrap(),
            strings(&["1005"])
        );
    }

    #[test]
    fn phys_ids_to_replace_rejects_a_temp_ro_and_a_cluster_without_rw() {
        let mut c = cluster();
        c.temp_ros.insert("2000".into(), ins("1003", "2000", "8"));
        assert!(matches!(
            phys_ids_to_replace(&c, Some("2000")),
            Err(DomainError::Invalid { .. })
        ));
        c.rw = None;
        assert!(matches!(
            phys_ids_to_replace(&c, None),
            Err(DomainError::Invalid { .. })
        ));
    }

    #[test]
    fn weakness_4_unknown_migrate_id_is_an_error() {
        assert_eq!(
            phys_ids_to_replace(&cluster(), Some("4242")),
            Err(DomainError::UnknownInstance {
                cluster: "db/pc".into(),
                ins_id: "4242".into()
            })
        );
        let mut c = cluster();
        assert!(matches!(
            plan_replacements(&mut c, &[], &[1, 2]),
            Err(DomainError::Invalid { .. })
        ));
        assert!(c.temp_ro_ids.is_empty());
    }

    #[test]
    fn plan_replacements_records_phys_to_new_ins_id() {
        let mut c = cluster();
        let phys = strings(&["1001", "1003"]);
        assert!(plan_replacements(&mut c, &phys, &[2000, 2001, 2002]).unwrap());
        assert_eq!(
            c.temp_ro_ids,
            BTreeMap::from([
                ("1001".into(), "2000".into()),
                ("1003".into(), "2001".into())
            ])
        );
    }

    #[test]
    fn plan_replacements_is_a_no_op_when_a_plan_exists() {
        let mut c = cluster();
        c.temp_ro_ids.insert("1001".into(), "2000".into());
        let before = c.clone();
        assert!(!plan_replacements(&mut c, &strings(&["1003"]), &[3000]).unwrap());
        assert_eq!(c, before);
    }

    #[test]
    fn plan_replacements_needs_one_id_per_phys_and_distinct_phys() {
        let mut c = cluster();
        assert!(matches!(
            plan_replacements(&mut c, &strings(&["1001", "1003"]), &[2000]),
            Err(DomainError::NotEnoughIds {
                needed: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            plan_replacements(&mut c, &strings(&["1001", "1001"]), &[1, 2]),
            Err(DomainError::Invalid { .. })
        ));
        assert!(c.temp_ro_ids.is_empty());
    }

    #[test]
    fn weakness_25_plan_added_ro_does_not_overwrite_the_plan() {
        let mut c = cluster();
        assert!(plan_added_ro(&mut c, &[3000, 3001]).unwrap());
        assert_eq!(
            c.temp_ro_ids,
            BTreeMap::from([("3000".into(), "3001".into())])
        );
        assert!(!plan_added_ro(&mut c, &[4000, 4001]).unwrap());
        assert_eq!(
            c.temp_ro_ids,
            BTreeMap::from([("3000".into(), "3001".into())])
        );
        let mut c = cluster();
        assert!(matches!(
            plan_added_ro(&mut c, &[1]),
            Err(DomainError::NotEnoughIds {
                needed: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn init_temp_ro_meta_creates_one_temp_ro_per_plan_entry() {
        let mut c = cluster();
        plan_replacements(
            &mut c,
            &strings(&["1001", "1003", "1005"]),
            &[2000, 2001, 2002],
        )
        .unwrap();
        init_temp_ro_meta(&mut c).unwrap();
        assert_eq!(
            c.temp_ros.keys().collect::<Vec<_>>(),
            ["2000", "2001", "2002"]
        );
        assert_eq!(c.temp_ros["2000"], ins("1001", "2000", "8"));
        assert_eq!(c.temp_ros["2001"], ins("1003", "2001", "9"));
        assert_eq!(c.temp_ros["2002"], ins("1005", "2002", "10"));
    }

    #[test]
    fn init_temp_ro_meta_skips_entries_already_rw_or_ro() {
        let mut c = cluster();
        c.temp_ro_ids = BTreeMap::from([
            ("1001".into(), "1002".into()),
            ("1003".into(), "1004".into()),
            ("1005".into(), "2002".into()),
        ]);
        init_temp_ro_meta(&mut c).unwrap();
        assert_eq!(c.temp_ros.keys().collect::<Vec<_>>(), ["2002"]);
    }

    #[test]
    fn weakness_25_init_temp_ro_meta_is_idempotent() {
        let mut c = cluster();
        plan_replacements(&mut c, &strings(&["1001", "1003"]), &[2000, 2001]).unwrap();
        init_temp_ro_meta(&mut c).unwrap();
        c.temp_ros.get_mut("2000").unwrap().host = "node-b".into();
        c.temp_ros.get_mut("2000").unwrap().installed = true;
        let before = c.clone();
        init_temp_ro_meta(&mut c).unwrap();
        assert_eq!(c, before);
    }

    #[test]
    fn temp_ro_for_rw_is_the_temp_ro_with_the_rw_phys() {
        let mut c = cluster();
        assert!(temp_ro_for_rw(&c).is_none());
        c.temp_ros.insert("2001".into(), ins("1003", "2001", "8"));
        assert!(temp_ro_for_rw(&c).is_none());
        c.temp_ros.insert("2000".into(), ins("1001", "2000", "9"));
        assert_eq!(temp_ro_for_rw(&c).unwrap().ins_id, "2000");
    }

    #[test]
    fn weakness_3_convert_picks_rw_replacement() {
        let mut c = cluster();
        // Replacements of both ROs sort before the RW's replacement in every order.
        plan_replacements(
            &mut c,
            &strings(&["1003", "1005", "1001"]),
            &[1998, 1999, 2000],
        )
        .unwrap();
        init_temp_ro_meta(&mut c).unwrap();
        assert_eq!(convert_temp_ro_for_rw_to_ro(&mut c).unwrap(), "2000");
        assert_eq!(c.ros["2000"].physical_ins_id, "1001");
        assert_eq!(c.temp_ros.keys().collect::<Vec<_>>(), ["1998", "1999"]);
    }

    #[test]
    fn convert_temp_ro_for_rw_is_idempotent() {
        let mut c = cluster();
        plan_replacements(&mut c, &strings(&["1001", "1003"]), &[2000, 2001]).unwrap();
        init_temp_ro_meta(&mut c).unwrap();
        assert_eq!(convert_temp_ro_for_rw_to_ro(&mut c).unwrap(), "2000");
        let after = c.clone();
        assert_eq!(convert_temp_ro_for_rw_to_ro(&mut c).unwrap(), "2000");
        assert_eq!(c, after);
    }

    #[test]
    fn convert_temp_ro_for_rw_without_one_is_meta_lost() {
        let mut c = cluster();
        plan_replacements(&mut c, &strings(&["1003"]), &[2001]).unwrap();
        init_temp_ro_meta(&mut c).unwrap();
        let err = convert_temp_ro_for_rw_to_ro(&mut c).unwrap_err();
        assert!(matches!(
            err,
            DomainError::Interrupt {
                reason: interrupt::TEMP_RO_FOR_RW_MEAT_LOST,
                ..
            }
        ));
        assert!(
            c.temp_ros.contains_key("2001"),
            "the RO's replacement stays a temp RO"
        );
    }

    #[test]
    fn promote_temp_ro_moves_it_into_the_ros() {
        let mut c = cluster();
        c.temp_ros.insert("2001".into(), ins("1003", "2001", "8"));
        promote_temp_ro(&mut c, "2001").unwrap();
        assert!(c.temp_ros.is_empty());
        assert_eq!(c.ros["2001"].physical_ins_id, "1003");
        promote_temp_ro(&mut c, "2001").unwrap();
        assert!(matches!(
            promote_temp_ro(&mut c, "7"),
            Err(DomainError::UnknownInstance { .. })
        ));
    }

    #[test]
    fn parse_migrate_table() {
        let cases: [(&str, Option<(&str, &str)>); 9] = [
            ("1004|node-b", Some(("1004", "node-b"))),
            (" 1004 | node-b ", Some(("1004", "node-b"))),
            ("1004|", None),
            ("|node-b", None),
            ("|", None),
            ("", None),
            ("1004", None),
            ("1004|node-b|x", None),
            ("1004||", None),
        ];
        for (value, want) in cases {
            let want = want.map(|(a, b)| (a.to_owned(), b.to_owned()));
            assert_eq!(parse_migrate(value), want, "{value:?}");
        }
    }

    #[test]
    fn failed_non_leader_prefers_ros_in_numeric_order_then_temp_ros() {
        let mut c = cluster();
        assert!(failed_non_leader(&c).is_none());
        c.rw.as_mut().unwrap().current_state = failed();
        assert!(failed_non_leader(&c).is_none(), "the RW is never picked");
        let mut t = ins("1003", "900", "8");
        t.current_state = failed();
        c.temp_ros.insert("900".into(), t);
        assert_eq!(failed_non_leader(&c).unwrap().ins_id, "900");
        c.ros.get_mut("1006").unwrap().current_state = failed();
        let mut low = ins("998", "999", "9");
        low.current_state = failed();
        c.ros.insert("999".into(), low);
        assert_eq!(failed_non_leader(&c).unwrap().ins_id, "999");
    }

    fn status(phys: &str, ins_type: &str) -> InstanceStatus {
        InstanceStatus {
            physical_ins_id: phys.into(),
            ins_type: ins_type.into(),
            ..InstanceStatus::default()
        }
    }

    #[test]
    fn duplicate_phys_to_drop_keeps_one_entry_per_phys() {
        let entries = BTreeMap::from([
            ("1002".to_owned(), status("1001", "rw")),
            ("1004".to_owned(), status("1003", "ro")),
            ("2001".to_owned(), status("1003", "tempro")),
            ("2002".to_owned(), status("1003", "tempro")),
            ("1006".to_owned(), status("1005", "ro")),
        ]);
        assert_eq!(
            duplicate_phys_to_drop(&entries, "1002"),
            strings(&["2001", "2002"])
        );
    }

    #[test]
    fn duplicate_phys_to_drop_never_drops_the_leader() {
        let entries = BTreeMap::from([
            ("1002".to_owned(), status("1001", "ro")),
            ("2000".to_owned(), status("1001", "rw")),
        ]);
        assert_eq!(duplicate_phys_to_drop(&entries, "2000"), strings(&["1002"]));
        assert_eq!(duplicate_phys_to_drop(&entries, ""), strings(&["1002"]));
    }

    #[test]
    fn weakness_13_numeric_id_comparison_in_clean_temp_ro_meta() {
        let entries = BTreeMap::from([
            ("999".to_owned(), status("500", "ro")),
            ("1000".to_owned(), status("500", "tempro")),
            ("abc".to_owned(), status("500", "tempro")),
        ]);
        assert_eq!(
            duplicate_phys_to_drop(&entries, "1"),
            strings(&["1000", "abc"])
        );
    }
}
