//! Annotation keys on an MPDCluster (domain §1.3).

/// Full rebuild request (`1`, `T` or `true`); the Rebuild flow writes `T`.
pub const FORCE_REBUILD: &str = "forceRebuild";
/// `<insId>|<targetNode>`: move one instance to a node.
pub const MIGRATE: &str = "migrate";
/// Target insId of a planned switchover.
pub const SWITCH_RW: &str = "switchRw";
/// insId of an instance to restart.
pub const RESTART_INS: &str = "restartIns";
/// Restart every instance (`1`, `T` or `true`).
pub const RESTART_CLUSTER: &str = "restartCluster";
/// Apply edited engine parameters (`1`, `T` or `true`).
pub const FLUSH_PARAMS: &str = "flushParams";
/// Written `true` by FlushParams when a restart is needed.
pub const FLUSH_PARAMS_RESTART_CLUSTER: &str = "flushParamsRestartCluster";
/// insId of an RO to remove.
pub const REMOVE_INS: &str = "removeIns";
/// Grow PFS after the LUN was enlarged (`1`, `T` or `true`).
pub const EXTEND_STORAGE: &str = "extendStorage";
/// JSON object physicalInsId -> new insId: the replacement plan of the current flow.
pub const TEMP_RO_IDS: &str = "tempRoIds";
/// Resume switch after an interrupt (`F` = not asked).
pub const INTERRUPT_RECOVER: &str = "interrupt.recover";
/// Why the last flow was interrupted.
pub const INTERRUPT_REASON: &str = "interrupt.reason";
/// The interrupt message.
pub const INTERRUPT_MESSAGE: &str = "interrupt.message";
/// The state at interrupt time.
pub const INTERRUPT_PREVIOUS_STATUS: &str = "interrupt.previous.status";
/// `true` aborts a running flow; the engine removes it once that run has ended.
pub const CANCELLED: &str = "cancelled";
/// `T` abandons the uncompleted (or interrupted) run: the engine closes it as abandoned,
/// cleans up after it and sets `Running` (the CLI's `abandon NAME`).
pub const INTERRUPT_ABANDON: &str = "interrupt.abandon";

/// What CleanAllTempMeta removes (CleanOldTempMeta keeps `forceRebuild`).
pub const CLEANUP_SET: [&str; 14] = [
    FORCE_REBUILD,
    MIGRATE,
    FLUSH_PARAMS,
    TEMP_RO_IDS,
    RESTART_INS,
    RESTART_CLUSTER,
    FLUSH_PARAMS_RESTART_CLUSTER,
    SWITCH_RW,
    REMOVE_INS,
    EXTEND_STORAGE,
    INTERRUPT_RECOVER,
    INTERRUPT_REASON,
    INTERRUPT_MESSAGE,
    INTERRUPT_PREVIOUS_STATUS,
];

/// What every cleanup removes, whichever flow it ends: the bookkeeping of a run, not a
/// request.
pub const RUN_BOOKKEEPING: [&str; 5] = [
    TEMP_RO_IDS,
    INTERRUPT_RECOVER,
    INTERRUPT_REASON,
    INTERRUPT_MESSAGE,
    INTERRUPT_PREVIOUS_STATUS,
];

/// The request annotations the flow `flow` serves, which its cleanup step
/// (`CleanAllTempMeta`) removes with the [`RUN_BOOKKEEPING`]: only those, so a request
/// applied together with it (a switchover beside a restart) stays and runs next (weakness
/// 27). `None` for a flow that serves every request at once (a full rebuild) or that this
/// table does not know: its cleanup removes the whole [`CLEANUP_SET`].
pub fn served_by(flow: &str) -> Option<&'static [&'static str]> {
    Some(match flow {
        "SharedStorageClusterRestartCluster" => &[RESTART_CLUSTER],
        "SharedStorageClusterRestartIns" => &[RESTART_INS],
        "SharedStorageClusterFlushParams" => &[FLUSH_PARAMS, FLUSH_PARAMS_RESTART_CLUSTER],
        "SharedStorageClusterSwitchRw" => &[SWITCH_RW],
        "SharedStorageClusterMigrateRo" | "SharedStorageClusterMigrateRw" => &[MIGRATE],
        "SharedStorageClusterRemoveRo" => &[REMOVE_INS],
        "ExtendStorageSharedStorageCluster" => &[EXTEND_STORAGE],
        "SharedStorageClusterAddRo" | "SharedStorageClusterRebuildRo" => &[],
        _ => return None,
    })
}

/// Whether an annotation value means "yes": `1`, `T` or `true`.
pub fn is_true(value: Option<&str>) -> bool {
    matches!(value, Some("1" | "T" | "true"))
}
