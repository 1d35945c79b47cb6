//! K. Instance classes and minor versions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use async_trait::async_trait;

use super::PortError;
use crate::domain::ContainerResources;

/// An instance class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassDef {
    /// The class name.
    pub name: String,
    /// CPU.
    pub cpu: String,
    /// Memory.
    pub memory: String,
    /// Resources by container.
    pub resources: BTreeMap<String, ContainerResources>,
}

/// A minor version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDef {
    /// The version name.
    pub name: String,
    /// Images by key (see [`crate::domain::image_key`]).
    pub images: BTreeMap<String, String>,
}

/// Looks up instance classes.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ClassCatalog: Send + Sync {
    /// The class named `name`; NotFound when unknown.
    async fn class(&self, name: &str) -> Result<ClassDef, PortError>;
}

/// Looks up minor versions.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait VersionCatalog: Send + Sync {
    /// The version named `name`, or the latest when `name` is empty; NotFound when unknown.
    async fn version(&self, name: &str) -> Result<VersionDef, PortError>;
}
