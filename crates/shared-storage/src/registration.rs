//! The state-machine registration of the shared machine (domain §3.2) and the step classes
//! (§4.3), as data: the binary, the local runner and `cargo xtask check-flows` all read it.

use wf_engine::Resumption;

/// The resource type: the flow directory `workflows/shared/` and the history file name.
pub const RESOURCE_TYPE: &str = "shared";

/// Prefix of every step class name.
pub const CLASS_PREFIX: &str = "workflow_shared.";

/// One translation of §3.2: from a stable state, when `trigger` fires, to `target`, whose
/// entry runs `flow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The stable state left.
    pub from: &'static str,
    /// The trigger's name (see `domain::triggers`).
    pub trigger: &'static str,
    /// The unstable state entered.
    pub target: &'static str,
    /// The flow the target's entry runs.
    pub flow: &'static str,
    /// Which uncompleted run the entry finishes first ("resume others?" of §3.2).
    ///
    /// Chosen per entry: the MPDCluster keeps its state in its status, so an entry meets an
    /// uncompleted run of another flow only when that flow's state was lost or reset by
    /// hand. Every flow's steps are idempotent "ensure" operations written to be finished
    /// by whoever comes next, so the change flows finish it first, as the original did
    /// ([`Resumption::AnyFlow`], "yes"). A rebuild recreates the cluster from its spec and
    /// storage growth starts from a stable cluster: a half-done run of another flow is
    /// moot for them, and it is closed rather than left to be resumed much later by an
    /// unrelated entry ([`Resumption::AbandonOthers`], "no"; the original left it open).
    pub resumption: Resumption,
}

/// The stable states.
pub const STABLE_STATES: [&str; 3] = ["Running", "Interrupt", "Init"];

/// The translations, in the exact order they are evaluated.
pub const TRANSLATIONS: [Translation; 15] = [
    t(
        "Init",
        "install",
        "Creating",
        "CreateSharedStorageCluster",
        YES,
    ),
    t(
        "Interrupt",
        "rebuild",
        "Rebuild",
        "SharedStorageClusterRebuild",
        NO,
    ),
    t(
        "Running",
        "rebuild",
        "Rebuild",
        "SharedStorageClusterRebuild",
        NO,
    ),
    t(
        "Running",
        "modifyClass",
        "ModifyClass",
        "SharedStorageClusterModifyClass",
        YES,
    ),
    t(
        "Running",
        "restartCluster",
        "RestartCluster",
        "SharedStorageClusterRestartCluster",
        YES,
    ),
    t(
        "Running",
        "restartIns",
        "RestartIns",
        "SharedStorageClusterRestartIns",
        YES,
    ),
    t(
        "Running",
        "flushParams",
        "FlushParams",
        "SharedStorageClusterFlushParams",
        YES,
    ),
    t(
        "Running",
        "switchRw",
        "SwitchRw",
        "SharedStorageClusterSwitchRw",
        YES,
    ),
    t(
        "Running",
        "migrateRo",
        "MigrateRo",
        "SharedStorageClusterMigrateRo",
        YES,
    ),
    t(
        "Running",
        "migrateRw",
        "MigrateRw",
        "SharedStorageClusterMigrateRw",
        YES,
    ),
    t(
        "Running",
        "upgrade",
        "UpgradeMinorVersion",
        "SharedStorageClusterUpgradeMinorVersion",
        YES,
    ),
    t(
        "Running",
        "rebuildRo",
        "RebuildRo",
        "SharedStorageClusterRebuildRo",
        YES,
    ),
    t(
        "Running",
        "addRo",
        "AddRo",
        "SharedStorageClusterAddRo",
        YES,
    ),
    t(
        "Running",
        "removeRo",
        "RemoveRo",
        "SharedStorageClusterRemoveRo",
        YES,
    ),
    t(
        "Running",
        "extendStorage",
        "ExtendStorage",
        "ExtendStorageSharedStorageCluster",
        NO,
    ),
];

/// "Resume others: yes": finish an uncompleted run of any flow first.
const YES: Resumption = Resumption::AnyFlow;
/// "Resume others: no": close uncompleted runs of other flows.
const NO: Resumption = Resumption::AbandonOthers;

const fn t(
    from: &'static str,
    trigger: &'static str,
    target: &'static str,
    flow: &'static str,
    resumption: Resumption,
) -> Translation {
    Translation {
        from,
        trigger,
        target,
        flow,
        resumption,
    }
}

/// Every step class (without the `workflow_shared.` prefix); the step name equals it.
pub const STEP_CLASSES: [&str; 42] = [
    "InitMeta",
    "PrepareStorage",
    "CreateClusterManager",
    "CreateRwPod",
    "CreateRoPods",
    "UpdateRunningStatus",
    "GenerateTempRoIds",
    "InitTempRoMeta",
    "DisableHA",
    "EnableHA",
    "UpdateModifyClassMeta",
    "FlushParamsIfNecessary",
    "CreateTempRoForRw",
    "ConvertTempRoToRo",
    "SwitchNewRoToRw",
    "DeleteOldRw",
    "EnsureNewRoUpToDate",
    "EnsureCmRwAffinity",
    "SaveParamsLastUpdateTime",
    "CleanModifyClassTempMeta",
    "RestartIns",
    "RestartCluster",
    "FlushParams",
    "RestartClusterIfNeed",
    "SwitchRw",
    "GenerateMigrateTempId",
    "EnsureRoMigrate",
    "InitUpgradeImages",
    "UpgradeCmVersion",
    "CleanUpgradeTempMeta",
    "CleanOldTempMeta",
    "SetRebuildTag",
    "CleanAllTempMeta",
    "RemoveClusterManager",
    "RemoveAllInsPod",
    "CleanTempRoMeta",
    "GenerateRebuildRoTempId",
    "StopOldRo",
    "GenerateAddRoTempId",
    "RemoveRo",
    "ExtendStorageFs",
    "CreateNetwork",
];

/// The full class names, `workflow_shared.<Step>`.
pub fn class_names() -> impl Iterator<Item = String> {
    STEP_CLASSES.iter().map(|s| format!("{CLASS_PREFIX}{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_state_of_a_translation_is_named_once_per_flow() {
        let mut flows = BTreeSet::new();
        for tr in TRANSLATIONS {
            assert!(STABLE_STATES.contains(&tr.from), "{tr:?}");
            assert!(!STABLE_STATES.contains(&tr.target), "{tr:?}");
            flows.insert((tr.target, tr.flow));
        }
        assert_eq!(flows.len(), 14, "14 flows, one per unstable state");
    }
}
