//! The domain: the aggregate and its rules as pure functions over data.
//!
//! - [`SharedStorageCluster`]: the aggregate (§2.1);
//! - [`ids`], [`fs_id`], [`topology`]: allocation of ids, PFS host ids and the initial
//!   instances (§2.2, §2.5 init_meta).

mod cluster;
mod error;
pub mod fs_id;
pub mod ids;
pub mod topology;

pub use cluster::{
    image_key, ClassSpec, ContainerResources, DbIns, EngineState, ImageInfo, InsType,
    InterruptInfo, LoadMode, SharedStorageCluster, StorageInfo,
};
pub use error::{interrupt, DomainError};
pub use fs_id::{next_fs_id, next_fs_ids, FS_ID_POOL};
pub use ids::{compare_ins_ids, ids_needed, layout_ids, IdLayout};
pub use topology::build_initial_instances;
