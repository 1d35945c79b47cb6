//! The trigger predicates of the shared state machine (domain §3.3), as pure functions over
//! an MPDCluster snapshot, and the event params each transition carries (§3.2).
//!
//! The state machine evaluates them in the order of [`crate::registration::TRANSLATIONS`];
//! [`by_name`] maps the names used there to these functions. Each check also re-runs at the
//! entry of the unstable state; when it no longer fires the state goes back to `Running`.
//!
//! Deliberate differences from the original (weakness 27):
//! - `switchRw` with an empty value does not fire;
//! - lowering `followerNum` below the number of ROs fires `removeRo` (a declarative
//!   scale-in of the newest RO; the original scaled in only by `removeIns`);
//! - a switch to the current leader, a migrate to the node the instance already runs on and
//!   a migrate naming no instance (or not `<insId>|<node>`) **do** fire, so that the
//!   machine's admission ([`crate::service::admission`]) sees them: it consumes a satisfied
//!   request (removes the annotation) and refuses a malformed one, where the original left
//!   the annotation on the object forever;
//! - `rebuild` does not fire by itself from `Interrupt` when the interrupted flow was a
//!   Rebuild (`interrupt.previous.status == Rebuild`): the Rebuild flow's own
//!   `forceRebuild=T` would otherwise loop. A human resumes it with `interrupt.recover`,
//!   which puts the state back to `Rebuild`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::temp_ro::parse_migrate;
use crate::crd::annotations::{self, is_true};
use crate::crd::{ins_type, InstanceStatus, MPDCluster, MPDClusterStatus};

/// The state the Rebuild flow runs in.
const REBUILD_STATE: &str = "Rebuild";
/// The stable state after an interrupt.
const INTERRUPT_STATE: &str = "Interrupt";

/// A trigger predicate.
pub type Trigger = fn(&MPDCluster) -> bool;

/// The predicate named `name` in [`crate::registration::TRANSLATIONS`] (`install`,
/// `rebuild`, `modifyClass`, `restartCluster`, `restartIns`, `flushParams`, `switchRw`,
/// `migrateRo`, `migrateRw`, `upgrade`, `rebuildRo`, `addRo`, `removeRo`, `extendStorage`);
/// `None` for any other name.
pub fn by_name(name: &str) -> Option<Trigger> {
    let trigger: Trigger = match name {
        "install" => install,
        "rebuild" => rebuild,
        "modifyClass" => modify_class,
        "restartCluster" => restart_cluster,
        "restartIns" => restart_ins,
        "flushParams" => flush_params,
        "switchRw" => switch_rw,
        "migrateRo" => migrate_ro,
        "migrateRw" => migrate_rw,
        "upgrade" => upgrade,
        "rebuildRo" => rebuild_ro,
        "addRo" => add_ro,
        "removeRo" => remove_ro,
        "extendStorage" => extend_storage,
        _ => return None,
    };
    Some(trigger)
}

/// The event params (initial flow context) of the transition fired by trigger `name`
/// (§3.2): `modifyClass: true` for `modifyClass`, `upgrade: true` for `upgrade` (they make
/// the steps load the model in modify-class / upgrade mode), `insId: <annotation>` for
/// `restartIns` and `switchRw` (informative; steps re-read the annotation). Empty for the
/// others, and for `insId` when the annotation is absent.
pub fn event_params(name: &str, cr: &MPDCluster) -> Map<String, Value> {
    let mut params = Map::new();
    match name {
        "modifyClass" => {
            params.insert("modifyClass".to_owned(), Value::Bool(true));
        }
        "upgrade" => {
            params.insert("upgrade".to_owned(), Value::Bool(true));
        }
        "restartIns" | "switchRw" => {
            let key = if name == "restartIns" {
                annotations::RESTART_INS
            } else {
                annotations::SWITCH_RW
            };
            if let Some(value) = annotation(cr, key) {
                params.insert("insId".to_owned(), Value::String(value.to_owned()));
            }
        }
        _ => {}
    }
    params
}

/// Create: the status is `Init`, empty or `Creating`.
pub fn install(cr: &MPDCluster) -> bool {
    matches!(cluster_status(cr), "" | "Init" | "Creating")
}

/// Full rebuild:
/// 1. the status already is `Rebuild`: fire;
/// 2. the status is `Interrupt` and the interrupted flow was a Rebuild: do not fire
///    (weakness 27; recovery is for a human via `interrupt.recover`);
/// 3. no instance status or no leader: do not fire;
/// 4. otherwise fire when `forceRebuild` is `1`, `T` or `true`, or when **every** instance
///    (any type) is failed (case-insensitive).
pub fn rebuild(cr: &MPDCluster) -> bool {
    let status = cluster_status(cr);
    if status == REBUILD_STATE {
        return true;
    }
    if status == INTERRUPT_STATE
        && annotation(cr, annotations::INTERRUPT_PREVIOUS_STATUS) == Some(REBUILD_STATE)
    {
        return false;
    }
    let (entries, leader) = (instances(cr), leader(cr));
    if entries.is_empty() || leader.is_empty() {
        return false;
    }
    is_true(annotation(cr, annotations::FORCE_REBUILD)) || entries.values().all(is_failed)
}

/// Class change: `classInfoModifyTo.className` is non-empty and differs from
/// `classInfo.className`.
pub fn modify_class(cr: &MPDCluster) -> bool {
    let target = &cr.spec.class_info_modify_to.class_name;
    !target.is_empty() && *target != cr.spec.class_info.class_name
}

/// Restart every instance: `restartCluster` is `1`, `T` or `true`.
pub fn restart_cluster(cr: &MPDCluster) -> bool {
    is_true(annotation(cr, annotations::RESTART_CLUSTER))
}

/// Restart one instance: `restartIns` is present and non-empty.
pub fn restart_ins(cr: &MPDCluster) -> bool {
    annotation(cr, annotations::RESTART_INS).is_some_and(|v| !v.is_empty())
}

/// Apply edited parameters: `flushParams` is `1`, `T` or `true`.
pub fn flush_params(cr: &MPDCluster) -> bool {
    is_true(annotation(cr, annotations::FLUSH_PARAMS))
}

/// Planned switchover: `switchRw` is present and **non-empty** (weakness 27: an empty value
/// does not fire; the current leader fires, and the admission consumes it).
pub fn switch_rw(cr: &MPDCluster) -> bool {
    annotation(cr, annotations::SWITCH_RW).is_some_and(|v| !v.is_empty())
}

/// Move an RO: `migrate` is non-empty and does not name the leader (a value that is not
/// `insId|node`, or names no instance, fires too: the admission refuses it; one naming the
/// instance's own node is consumed).
pub fn migrate_ro(cr: &MPDCluster) -> bool {
    annotation(cr, annotations::MIGRATE).is_some_and(|v| {
        !v.is_empty() && parse_migrate(v).is_none_or(|(ins_id, _)| ins_id != leader(cr))
    })
}

/// Move the RW: `migrate` parses as `insId|node` and the insId **is** the leader.
pub fn migrate_rw(cr: &MPDCluster) -> bool {
    annotation(cr, annotations::MIGRATE)
        .and_then(parse_migrate)
        .is_some_and(|(ins_id, _)| !ins_id.is_empty() && ins_id == leader(cr))
}

/// Minor version upgrade: `versionCfgModifyTo.versionName` is non-empty and differs from
/// `versionCfg.versionName`.
pub fn upgrade(cr: &MPDCluster) -> bool {
    cr.spec.version_cfg_modify_to.as_ref().is_some_and(|t| {
        !t.version_name.is_empty() && t.version_name != cr.spec.version_cfg.version_name
    })
}

/// Rebuild a failed RO: the leader has a status entry that is not failed, and some other
/// entry (any type, temp ROs included) is failed (case-insensitive). A cluster whose leader
/// has no entry (or no leader) does not fire: it is not in a state to rebuild one RO.
pub fn rebuild_ro(cr: &MPDCluster) -> bool {
    let (entries, leader) = (instances(cr), leader(cr));
    match entries.get(leader) {
        Some(entry) if !leader.is_empty() && !is_failed(entry) => entries
            .iter()
            .any(|(id, entry)| id != leader && is_failed(entry)),
        _ => false,
    }
}

/// Scale out: `spec.followerNum` exceeds the number of status entries of type `ro` (one RO
/// per run; it fires again until the counts match). Fewer wanted than present is
/// [`remove_ro`]'s.
pub fn add_ro(cr: &MPDCluster) -> bool {
    usize::try_from(cr.spec.follower_num).is_ok_and(|wanted| wanted > ro_count(cr))
}

/// Remove one RO: `removeIns` is present and non-empty (that RO goes), or, a declarative
/// scale-in, `spec.followerNum` is below the number of status entries of type `ro` (the
/// newest RO goes: the highest insId). Temp ROs (`tempro`) never count. One RO per run: it
/// fires again until the counts match. A negative `followerNum` fires too, so that the
/// admission refuses it (`INVALID_FOLLOWER_NUM`) instead of the object silently keeping it.
pub fn remove_ro(cr: &MPDCluster) -> bool {
    annotation(cr, annotations::REMOVE_INS).is_some_and(|v| !v.is_empty())
        || usize::try_from(cr.spec.follower_num).map_or(true, |wanted| wanted < ro_count(cr))
}

/// The status entries of type `ro` (not the RW, not temp ROs).
fn ro_count(cr: &MPDCluster) -> usize {
    instances(cr)
        .values()
        .filter(|e| e.ins_type == ins_type::RO)
        .count()
}

/// Grow PFS: `extendStorage` is `1`, `T` or `true`.
pub fn extend_storage(cr: &MPDCluster) -> bool {
    is_true(annotation(cr, annotations::EXTEND_STORAGE))
}

fn annotation<'a>(cr: &'a MPDCluster, key: &str) -> Option<&'a str> {
    cr.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn status(cr: &MPDCluster) -> Option<&MPDClusterStatus> {
    cr.status.as_ref()
}

fn cluster_status(cr: &MPDCluster) -> &str {
    status(cr).map_or("", |s| s.cluster_status.as_str())
}

fn leader(cr: &MPDCluster) -> &str {
    status(cr).map_or("", |s| s.leader_instance_id.as_str())
}

fn instances(cr: &MPDCluster) -> &BTreeMap<String, InstanceStatus> {
    static EMPTY: BTreeMap<String, InstanceStatus> = BTreeMap::new();
    status(cr).map_or(&EMPTY, |s| &s.db_instance_status)
}

fn is_failed(entry: &InstanceStatus) -> bool {
    entry.current_state.state.eq_ignore_ascii_case("failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ClassInfo, EngineStateRecord, MPDClusterSpec, VersionCfg};
    use crate::registration::TRANSLATIONS;

    /// A running cluster: leader 1002 (rw, node-a), ROs 1004 (node-b) and 1006 (node-c),
    /// followerNum 2, class `c1`, version `v1`.
    fn running() -> MPDCluster {
        let mut cr = MPDCluster::new(
            "pc",
            MPDClusterSpec {
                follower_num: 2,
                class_info: ClassInfo {
                    class_name: "c1".into(),
                    ..ClassInfo::default()
                },
                version_cfg: VersionCfg {
                    version_name: "v1".into(),
                    ..VersionCfg::default()
                },
                ..MPDClusterSpec::default()
            },
        );
        let entry = |ty: &str, node: &str| InstanceStatus {
            ins_type: ty.into(),
            node_name: node.into(),
            current_state: EngineStateRecord {
                state: "RUNNING".into(),
                ..EngineStateRecord::default()
            },
            ..InstanceStatus::default()
        };
        cr.status = Some(MPDClusterStatus {
            cluster_status: "Running".into(),
            leader_instance_id: "1002".into(),
            db_instance_status: BTreeMap::from([
                ("1002".into(), entry("rw", "node-a")),
                ("1004".into(), entry("ro", "node-b")),
                ("1006".into(), entry("ro", "node-c")),
            ]),
            ..MPDClusterStatus::default()
        });
        cr
    }

    fn st(cr: &mut MPDCluster) -> &mut MPDClusterStatus {
        cr.status.get_or_insert_with(MPDClusterStatus::default)
    }

    fn set_state(cr: &mut MPDCluster, id: &str, state: &str) {
        st(cr)
            .db_instance_status
            .get_mut(id)
            .unwrap()
            .current_state
            .state = state.into();
    }

    fn annotate(cr: &mut MPDCluster, key: &str, value: &str) {
        cr.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    type Setup = fn(&mut MPDCluster);

    fn check(trigger: Trigger, cases: &[(&str, Setup, bool)]) {
        for (name, setup, want) in cases {
            let mut cr = running();
            setup(&mut cr);
            assert_eq!(trigger(&cr), *want, "case `{name}`");
        }
    }

    /// For an annotation that fires on `1`, `T` or `true`.
    fn flag_cases(key: &'static str) -> Vec<(String, String, bool)> {
        [
            ("1", true),
            ("T", true),
            ("true", true),
            ("", false),
            ("0", false),
            ("F", false),
            ("false", false),
            ("TRUE", false),
            ("yes", false),
        ]
        .into_iter()
        .map(|(v, want)| (key.to_owned(), v.to_owned(), want))
        .collect()
    }

    fn check_flag(trigger: Trigger, key: &'static str) {
        assert!(!trigger(&running()), "absent annotation");
        for (key, value, want) in flag_cases(key) {
            let mut cr = running();
            annotate(&mut cr, &key, &value);
            assert_eq!(trigger(&cr), want, "{key}={value:?}");
        }
    }

    #[test]
    fn trigger_install_table() {
        check(
            install,
            &[
                ("no status", |cr| cr.status = None, true),
                ("empty status", |cr| st(cr).cluster_status.clear(), true),
                ("Init", |cr| st(cr).cluster_status = "Init".into(), true),
                (
                    "Creating",
                    |cr| st(cr).cluster_status = "Creating".into(),
                    true,
                ),
                ("Running", |_| {}, false),
                (
                    "Interrupt",
                    |cr| st(cr).cluster_status = "Interrupt".into(),
                    false,
                ),
                (
                    "init lower case",
                    |cr| st(cr).cluster_status = "init".into(),
                    false,
                ),
            ],
        );
    }

    #[test]
    fn trigger_rebuild_table() {
        check(
            rebuild,
            &[
                ("running, healthy", |_| {}, false),
                (
                    "status already Rebuild",
                    |cr| st(cr).cluster_status = "Rebuild".into(),
                    true,
                ),
                (
                    "status Rebuild without instances",
                    |cr| {
                        st(cr).cluster_status = "Rebuild".into();
                        st(cr).db_instance_status.clear();
                    },
                    true,
                ),
                (
                    "forceRebuild=1",
                    |cr| annotate(cr, "forceRebuild", "1"),
                    true,
                ),
                (
                    "forceRebuild=T",
                    |cr| annotate(cr, "forceRebuild", "T"),
                    true,
                ),
                (
                    "forceRebuild=true",
                    |cr| annotate(cr, "forceRebuild", "true"),
                    true,
                ),
                (
                    "forceRebuild=F",
                    |cr| annotate(cr, "forceRebuild", "F"),
                    false,
                ),
                (
                    "forceRebuild empty",
                    |cr| annotate(cr, "forceRebuild", ""),
                    false,
                ),
                (
                    "forceRebuild but no instance status",
                    |cr| {
                        annotate(cr, "forceRebuild", "T");
                        st(cr).db_instance_status.clear();
                    },
                    false,
                ),
                (
                    "forceRebuild but no leader",
                    |cr| {
                        annotate(cr, "forceRebuild", "T");
                        st(cr).leader_instance_id.clear();
                    },
                    false,
                ),
                (
                    "no status at all",
                    |cr| {
                        annotate(cr, "forceRebuild", "T");
                        cr.status = None;
                    },
                    false,
                ),
                (
                    "every instance failed, mixed case",
                    |cr| {
                        set_state(cr, "1002", "FAILED");
                        set_state(cr, "1004", "failed");
                        set_state(cr, "1006", "Failed");
                    },
                    true,
                ),
                (
                    "every instance failed but a temp RO",
                    |cr| {
                        for id in ["1002", "1004", "1006"] {
                            set_state(cr, id, "FAILED");
                        }
                        st(cr).db_instance_status.insert(
                            "2000".into(),
                            InstanceStatus {
                                ins_type: "tempro".into(),
                                ..InstanceStatus::default()
                            },
                        );
                    },
                    false,
                ),
                (
                    "all but one failed",
                    |cr| {
                        set_state(cr, "1002", "FAILED");
                        set_state(cr, "1004", "FAILED");
                    },
                    false,
                ),
                (
                    "Interrupt from another flow with forceRebuild",
                    |cr| {
                        st(cr).cluster_status = "Interrupt".into();
                        annotate(cr, "interrupt.previous.status", "ModifyClass");
                        annotate(cr, "forceRebuild", "1");
                    },
                    true,
                ),
            ],
        );
    }

    #[test]
    fn weakness_27_rebuild_from_interrupt_does_not_loop() {
        let mut cr = running();
        st(&mut cr).cluster_status = "Interrupt".into();
        annotate(&mut cr, "forceRebuild", "T");
        annotate(&mut cr, "interrupt.previous.status", "Rebuild");
        annotate(&mut cr, "interrupt.recover", "F");
        assert!(!rebuild(&cr), "the Rebuild flow's own forceRebuild=T");
        for id in ["1002", "1004", "1006"] {
            set_state(&mut cr, id, "FAILED");
        }
        assert!(!rebuild(&cr), "nor every instance failed");
        // Recovery by a human puts the state back to Rebuild, which fires.
        st(&mut cr).cluster_status = "Rebuild".into();
        assert!(rebuild(&cr));
    }

    #[test]
    fn trigger_modify_class_table() {
        check(
            modify_class,
            &[
                ("no target", |_| {}, false),
                (
                    "target differs",
                    |cr| cr.spec.class_info_modify_to.class_name = "c2".into(),
                    true,
                ),
                (
                    "target equals current",
                    |cr| cr.spec.class_info_modify_to.class_name = "c1".into(),
                    false,
                ),
                (
                    "target set, current empty",
                    |cr| {
                        cr.spec.class_info.class_name.clear();
                        cr.spec.class_info_modify_to.class_name = "c2".into();
                    },
                    true,
                ),
            ],
        );
    }

    #[test]
    fn trigger_restart_cluster_table() {
        check_flag(restart_cluster, annotations::RESTART_CLUSTER);
    }

    #[test]
    fn trigger_flush_params_table() {
        check_flag(flush_params, annotations::FLUSH_PARAMS);
    }

    #[test]
    fn trigger_extend_storage_table() {
        check_flag(extend_storage, annotations::EXTEND_STORAGE);
    }

    #[test]
    fn trigger_restart_ins_table() {
        check(
            restart_ins,
            &[
                ("absent", |_| {}, false),
                ("empty", |cr| annotate(cr, "restartIns", ""), false),
                ("an RO", |cr| annotate(cr, "restartIns", "1004"), true),
                ("the leader", |cr| annotate(cr, "restartIns", "1002"), true),
                (
                    "other annotation",
                    |cr| annotate(cr, "removeIns", "1004"),
                    false,
                ),
            ],
        );
    }

    #[test]
    fn trigger_remove_ro_table() {
        check(
            remove_ro,
            &[
                ("absent", |_| {}, false),
                ("empty", |cr| annotate(cr, "removeIns", ""), false),
                ("an RO", |cr| annotate(cr, "removeIns", "1004"), true),
                (
                    "other annotation",
                    |cr| annotate(cr, "restartIns", "1004"),
                    false,
                ),
                ("one fewer wanted", |cr| cr.spec.follower_num = 1, true),
                ("none wanted", |cr| cr.spec.follower_num = 0, true),
                ("more wanted", |cr| cr.spec.follower_num = 3, false),
                (
                    "negative, for the admission to refuse",
                    |cr| cr.spec.follower_num = -1,
                    true,
                ),
                (
                    "temp ROs do not count",
                    |cr| {
                        st(cr).db_instance_status.insert(
                            "2000".into(),
                            InstanceStatus {
                                ins_type: "tempro".into(),
                                ..InstanceStatus::default()
                            },
                        );
                    },
                    false,
                ),
            ],
        );
    }

    #[test]
    fn trigger_switch_rw_table() {
        check(
            switch_rw,
            &[
                ("absent", |_| {}, false),
                ("an RO", |cr| annotate(cr, "switchRw", "1004"), true),
                (
                    "unknown id still fires",
                    |cr| annotate(cr, "switchRw", "77"),
                    true,
                ),
                (
                    "the current leader fires (admission consumes it)",
                    |cr| annotate(cr, "switchRw", "1002"),
                    true,
                ),
                ("empty", |cr| annotate(cr, "switchRw", ""), false),
                (
                    "empty with no leader",
                    |cr| {
                        annotate(cr, "switchRw", "");
                        st(cr).leader_instance_id.clear();
                    },
                    false,
                ),
            ],
        );
    }

    #[test]
    fn weakness_27_switch_rw_empty_does_not_fire_but_to_the_leader_does_for_admission() {
        let mut cr = running();
        annotate(&mut cr, "switchRw", "");
        assert!(!switch_rw(&cr));
        annotate(&mut cr, "switchRw", "1002");
        assert!(switch_rw(&cr));
    }

    #[test]
    fn trigger_migrate_ro_table() {
        check(
            migrate_ro,
            &[
                ("absent", |_| {}, false),
                (
                    "RO to another node",
                    |cr| annotate(cr, "migrate", "1004|node-x"),
                    true,
                ),
                (
                    "RO to its own node fires (admission consumes it)",
                    |cr| annotate(cr, "migrate", "1004|node-b"),
                    true,
                ),
                ("leader", |cr| annotate(cr, "migrate", "1002|node-x"), false),
                (
                    "unknown id fires (admission refuses it)",
                    |cr| annotate(cr, "migrate", "4242|node-x"),
                    true,
                ),
                ("no node", |cr| annotate(cr, "migrate", "1004|"), true),
                ("no id", |cr| annotate(cr, "migrate", "|node-x"), true),
                ("no separator", |cr| annotate(cr, "migrate", "1004"), true),
                ("empty", |cr| annotate(cr, "migrate", ""), false),
                (
                    "temp RO entry",
                    |cr| {
                        st(cr)
                            .db_instance_status
                            .insert("2000".into(), InstanceStatus::default());
                        annotate(cr, "migrate", "2000|node-x");
                    },
                    true,
                ),
            ],
        );
    }

    #[test]
    fn trigger_migrate_rw_table() {
        check(
            migrate_rw,
            &[
                ("absent", |_| {}, false),
                (
                    "leader to another node",
                    |cr| annotate(cr, "migrate", "1002|node-x"),
                    true,
                ),
                (
                    "leader to its own node fires (admission consumes it)",
                    |cr| annotate(cr, "migrate", "1002|node-a"),
                    true,
                ),
                ("an RO", |cr| annotate(cr, "migrate", "1004|node-x"), false),
                ("no node", |cr| annotate(cr, "migrate", "1002|"), false),
                (
                    "leader without status entry fires (admission refuses it)",
                    |cr| {
                        st(cr).db_instance_status.remove("1002");
                        annotate(cr, "migrate", "1002|node-x");
                    },
                    true,
                ),
            ],
        );
    }

    #[test]
    fn weakness_27_migrate_to_current_node_fires_once_for_admission_to_consume() {
        let mut cr = running();
        annotate(&mut cr, "migrate", "1004|node-b");
        assert!(migrate_ro(&cr) && !migrate_rw(&cr));
        annotate(&mut cr, "migrate", "1002|node-a");
        assert!(!migrate_ro(&cr) && migrate_rw(&cr));
    }

    #[test]
    fn trigger_upgrade_table() {
        fn target(cr: &mut MPDCluster, name: &str) {
            cr.spec.version_cfg_modify_to = Some(VersionCfg {
                version_name: name.into(),
                ..VersionCfg::default()
            });
        }
        check(
            upgrade,
            &[
                ("no target", |_| {}, false),
                ("empty target", |cr| target(cr, ""), false),
                ("same version", |cr| target(cr, "v1"), false),
                ("other version", |cr| target(cr, "v2"), true),
            ],
        );
    }

    #[test]
    fn trigger_rebuild_ro_table() {
        check(
            rebuild_ro,
            &[
                ("all running", |_| {}, false),
                ("an RO failed", |cr| set_state(cr, "1004", "FAILED"), true),
                (
                    "an RO failed, lower case",
                    |cr| set_state(cr, "1006", "failed"),
                    true,
                ),
                (
                    "a temp RO failed",
                    |cr| {
                        st(cr).db_instance_status.insert(
                            "2000".into(),
                            InstanceStatus {
                                ins_type: "tempro".into(),
                                current_state: EngineStateRecord {
                                    state: "Failed".into(),
                                    ..EngineStateRecord::default()
                                },
                                ..InstanceStatus::default()
                            },
                        );
                    },
                    true,
                ),
                (
                    "only the leader failed",
                    |cr| set_state(cr, "1002", "FAILED"),
                    false,
                ),
                (
                    "leader and an RO failed",
                    |cr| {
                        set_state(cr, "1002", "FAILED");
                        set_state(cr, "1004", "FAILED");
                    },
                    false,
                ),
                (
                    "no leader",
                    |cr| {
                        set_state(cr, "1004", "FAILED");
                        st(cr).leader_instance_id.clear();
                    },
                    false,
                ),
                (
                    "leader without entry",
                    |cr| {
                        set_state(cr, "1004", "FAILED");
                        st(cr).db_instance_status.remove("1002");
                    },
                    false,
                ),
                (
                    "an RO stopped",
                    |cr| set_state(cr, "1004", "STOPPED"),
                    false,
                ),
            ],
        );
    }

    #[test]
    fn trigger_add_ro_table() {
        check(
            add_ro,
            &[
                ("as many as wanted", |_| {}, false),
                ("one more wanted", |cr| cr.spec.follower_num = 3, true),
                ("fewer wanted", |cr| cr.spec.follower_num = 1, false),
                ("negative", |cr| cr.spec.follower_num = -1, false),
                (
                    "temp ROs and the RW do not count",
                    |cr| {
                        cr.spec.follower_num = 3;
                        st(cr).db_instance_status.insert(
                            "2000".into(),
                            InstanceStatus {
                                ins_type: "tempro".into(),
                                ..InstanceStatus::default()
                            },
                        );
                    },
                    true,
                ),
                (
                    "no status, one wanted",
                    |cr| {
                        cr.status = None;
                        cr.spec.follower_num = 1;
                    },
                    true,
                ),
                (
                    "no status, none wanted",
                    |cr| {
                        cr.status = None;
                        cr.spec.follower_num = 0;
                    },
                    false,
                ),
            ],
        );
    }

    #[test]
    fn by_name_knows_every_translation_trigger() {
        for tr in TRANSLATIONS {
            assert!(by_name(tr.trigger).is_some(), "{}", tr.trigger);
        }
        assert!(by_name("nope").is_none());
        let mut cr = running();
        annotate(&mut cr, "switchRw", "1004");
        assert!(by_name("switchRw").unwrap()(&cr));
        assert!(!by_name("removeRo").unwrap()(&cr));
    }

    #[test]
    fn event_params_table() {
        let mut cr = running();
        annotate(&mut cr, "restartIns", "1004");
        annotate(&mut cr, "switchRw", "1006");
        let json = |name: &str| Value::Object(event_params(name, &cr));
        assert_eq!(
            json("modifyClass"),
            serde_json::json!({"modifyClass": true})
        );
        assert_eq!(json("upgrade"), serde_json::json!({"upgrade": true}));
        assert_eq!(json("restartIns"), serde_json::json!({"insId": "1004"}));
        assert_eq!(json("switchRw"), serde_json::json!({"insId": "1006"}));
        for name in ["install", "rebuild", "addRo", "extendStorage", "unknown"] {
            assert_eq!(json(name), serde_json::json!({}), "{name}");
        }
        assert!(event_params("restartIns", &running()).is_empty());
    }
}
