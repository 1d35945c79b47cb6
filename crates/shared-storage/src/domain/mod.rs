//! The domain: the aggregate and its rules as pure functions over data.

mod cluster;
mod error;
pub mod mapping;

pub use cluster::{
    image_key, ClassSpec, ContainerResources, DbIns, EngineState, ImageInfo, InsType,
    InterruptInfo, LoadMode, SharedStorageCluster, StorageInfo,
};
pub use error::{interrupt, DomainError};
