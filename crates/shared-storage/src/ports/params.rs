//! J. Engine parameters.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ClusterRef, PortError};

/// One parameter value as stored (`{name, value, updateTime, inoperative_value}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamValue {
    /// The parameter name.
    pub name: String,
    /// The value.
    pub value: String,
    /// When it was last changed.
    pub update_time: Option<DateTime<Utc>>,
    /// Whether the value is not in effect.
    pub inoperative_value: bool,
}

/// A parameter ConfigMap: user-params or running-params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSet {
    /// Parameters by name.
    pub params: BTreeMap<String, ParamValue>,
    /// The `latestFlushTime` annotation (user-params only).
    pub latest_flush_time: Option<DateTime<Utc>>,
}

/// One entry of the parameter template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateEntry {
    /// The default value.
    pub default_value: String,
    /// Whether users may change it.
    pub user_changeable: bool,
    /// Whether a change applies without a restart.
    pub dynamic: bool,
}

/// The parameter template (and white list) of the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamTemplate {
    /// Entries by parameter name.
    pub entries: BTreeMap<String, TemplateEntry>,
}

/// Stores a cluster's parameters and reads the templates.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ParamStore: Send + Sync {
    /// The user parameters; `None` when not created yet.
    async fn user_params(&self, cluster: &ClusterRef) -> Result<Option<ParamSet>, PortError>;
    /// The running parameters; `None` when not created yet.
    async fn running_params(&self, cluster: &ClusterRef) -> Result<Option<ParamSet>, PortError>;
    /// Writes the user parameters (create or update; never delete-and-recreate).
    async fn save_user_params(
        &self,
        cluster: &ClusterRef,
        params: &ParamSet,
    ) -> Result<(), PortError>;
    /// Writes the running parameters.
    async fn save_running_params(
        &self,
        cluster: &ClusterRef,
        params: &ParamSet,
    ) -> Result<(), PortError>;
    /// The engine's parameter template.
    async fn template(&self) -> Result<ParamTemplate, PortError>;
    /// The parameters a class sets.
    async fn class_params(&self, class_name: &str) -> Result<BTreeMap<String, String>, PortError>;
}
