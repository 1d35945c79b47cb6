//! The state-machine registration of the shared machine (domain §3.2) and the step classes
//! (§4.3), as data: the binary, the local runner and `cargo xtask check-flows` all read it.

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
    /// Whether an uncompleted run of another flow is left alone (resume others = no).
    pub ignore_others: bool,
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
        false,
    ),
    t(
        "Interrupt",
        "rebuild",
        "Rebuild",
        "SharedStorageClusterRebuild",
        true,
    ),
    t(
        "Running",
        "rebuild",
        "Rebuild",
        "SharedStorageClusterRebuild",
        true,
    ),
    t(
        "Running",
        "modifyClass",
        "ModifyClass",
        "SharedStorageClusterModifyClass",
        false,
    ),
    t(
        "Running",
        "restartCluster",
        "RestartCluster",
        "SharedStorageClusterRestartCluster",
        false,
    ),
    t(
        "Running",
        "restartIns",
        "RestartIns",
        "SharedStorageClusterRestartIns",
        false,
    ),
    t(
        "Running",
        "flushParams",
        "FlushParams",
        "SharedStorageClusterFlushParams",
        false,
    ),
    t(
        "Running",
        "switchRw",
        "SwitchRw",
        "SharedStorageClusterSwitchRw",
        false,
    ),
    t(
        "Running",
        "migrateRo",
        "MigrateRo",
        "SharedStorageClusterMigrateRo",
        false,
    ),
    t(
        "Running",
        "migrateRw",
        "MigrateRw",
        "SharedStorageClusterMigrateRw",
        false,
    ),
    t(
        "Running",
        "upgrade",
        "UpgradeMinorVersion",
        "SharedStorageClusterUpgradeMinorVersion",
        false,
    ),
    t(
        "Running",
        "rebuildRo",
        "RebuildRo",
        "SharedStorageClusterRebuildRo",
        false,
    ),
    t(
        "Running",
        "addRo",
        "AddRo",
        "SharedStorageClusterAddRo",
        false,
    ),
    t(
        "Running",
        "removeRo",
        "RemoveRo",
        "SharedStorageClusterRemoveRo",
        false,
    ),
    t(
        "Running",
        "extendStorage",
        "ExtendStorage",
        "ExtendStorageSharedStorageCluster",
        true,
    ),
];

const fn t(
    from: &'static str,
    trigger: &'static str,
    target: &'static str,
    flow: &'static str,
    ignore_others: bool,
) -> Translation {
    Translation {
        from,
        trigger,
        target,
        flow,
        ignore_others,
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
