//! The domain: the aggregate and its rules as pure functions over data.
//!
//! - [`SharedStorageCluster`]: the aggregate (§2.1);
//! - [`ids`], [`fs_id`], [`topology`]: allocation of ids, PFS host ids and the initial
//!   instances (§2.2, §2.5 init_meta);
//! - [`temp_ro`]: replacement planning and temp RO lifecycle;
//! - [`triggers`]: the state machine's trigger predicates (§3.3);
//! - [`params`]: the engine-parameter algorithms (§2.4 J);
//! - [`engine_state`]: folding the cluster manager's reports into the model;
//! - [`mapping`]: the MPDCluster object to the aggregate and back (§2.3).

pub mod admission;
mod cluster;
pub mod engine_state;
mod error;
pub mod fs_id;
pub mod ids;
pub mod mapping;
pub mod params;
pub mod temp_ro;
pub mod topology;
pub mod triggers;

pub use cluster::{
    image_key, ClassSpec, ContainerResources, DbIns, EngineState, ImageInfo, InsType,
    InterruptInfo, LoadMode, SharedStorageCluster, StorageInfo,
};
pub use engine_state::{set_ins_state, set_rw, set_rw_id, sync_from_cm};
pub use error::{interrupt, DomainError};
pub use fs_id::{next_fs_id, next_fs_ids, FS_ID_POOL};
pub use ids::{compare_ins_ids, ids_needed, layout_ids, IdLayout};
pub use params::{
    connection_flush_plan, effective_params, parse_cm_time, user_params_for_class, EffectiveParams,
    FlushPlan,
};
pub use temp_ro::{
    convert_temp_ro_for_rw_to_ro, duplicate_phys_to_drop, failed_non_leader, init_temp_ro_meta,
    parse_migrate, phys_ids_to_replace, plan_added_ro, plan_replacements, promote_temp_ro,
    temp_ro_for_rw,
};
pub use topology::build_initial_instances;
