//! The MPDCluster custom resource (`mpd.polardb.aliyun.com/v1`), with the wire names of the
//! original so existing resources keep working.

pub mod annotations;
mod spec;
mod status;

pub use spec::{
    ClassInfo, DbProxyInfo, MPDCluster, MPDClusterSpec, NetCfg, ResourceAdditional, ShareStore,
    VersionCfg,
};
pub use status::{
    ClusterManagerStatus, EngineStateRecord, InstanceStatus, MPDClusterStatus, NetInfo,
};

/// The finalizer the first create step adds and the deletion handler removes.
pub const FINALIZER: &str = "mpd.finalizers.polardb.aliyun.com";

/// `spec.dbClusterType` of the clusters this crate handles.
pub const SHARED_CLUSTER_TYPE: &str = "share";

/// `insType` values of `dbInstanceStatus` entries.
pub mod ins_type {
    /// The read-write instance.
    pub const RW: &str = "rw";
    /// A read-only instance.
    pub const RO: &str = "ro";
    /// A replacement instance that is not yet an RO.
    pub const TEMP_RO: &str = "tempro";
}
