//! The ConfigMap `polardb4mpd-controller` in the system namespace, which the id allocator
//! (key `NextClusterScopeCustInsId`) and the port allocator (key `Pbx.Next.External.Port`,
//! range annotations) share.
//!
//! A change reads the ConfigMap and writes only the keys it changes, by a merge patch that
//! carries the read `resourceVersion`: if anyone wrote in between, the API server answers
//! 409 and the change is made again on a fresh read ([`ConflictRetry`]). A missing
//! ConfigMap is created with the changed keys; if another writer created it first, that is
//! a conflict too.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::api_error::{is_already_exists, port_error};
use super::conflict::ConflictRetry;
use super::KubePortsConfig;
use crate::ports::PortError;

/// The name of the ConfigMap.
pub(crate) const CONTROLLER_CONFIG_MAP: &str = "polardb4mpd-controller";

/// The shared id/port ConfigMap.
#[derive(Clone)]
pub(crate) struct ControllerMap {
    api: Api<ConfigMap>,
    namespace: String,
    retry: ConflictRetry,
}

/// The keys a change writes, with their new values.
pub(crate) type Writes = BTreeMap<String, String>;

impl ControllerMap {
    /// The ConfigMap in `config.system_namespace`.
    pub(crate) fn new(client: Client, config: &KubePortsConfig) -> Self {
        ControllerMap {
            api: Api::namespaced(client, &config.system_namespace),
            namespace: config.system_namespace.clone(),
            retry: ConflictRetry::from_config(config),
        }
    }

    /// `configmap <namespace>/polardb4mpd-controller`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("configmap {}/{CONTROLLER_CONFIG_MAP}", self.namespace)
    }

    /// The ConfigMap, `None` when it does not exist.
    pub(crate) async fn read(&self, port: &'static str) -> Result<Option<ConfigMap>, PortError> {
        self.api
            .get_opt(CONTROLLER_CONFIG_MAP)
            .await
            .map_err(|e| port_error(port, &self.describe(), e))
    }

    /// Applies `change` under optimistic concurrency. `change` sees the ConfigMap as read
    /// (an empty one when it does not exist) and returns its result and the keys to write;
    /// it is called again after every lost race.
    pub(crate) async fn update<T>(
        &self,
        port: &'static str,
        change: impl Fn(&ConfigMap) -> Result<(T, Writes), PortError>,
    ) -> Result<T, PortError> {
        let what = self.describe();
        let change = &change;
        self.retry
            .run(&what, move || async move {
                let current = self.read(port).await?;
                let (result, writes) = change(current.as_ref().unwrap_or(&ConfigMap::default()))?;
                match current {
                    Some(cm) => self.patch(port, &cm, &writes).await?,
                    None => self.create(port, writes).await?,
                }
                Ok(result)
            })
            .await
    }

    async fn patch(
        &self,
        port: &'static str,
        current: &ConfigMap,
        writes: &Writes,
    ) -> Result<(), PortError> {
        let Some(rv) = current.metadata.resource_version.as_deref() else {
            return Err(PortError::Rejected {
                port,
                message: format!("{} came without a resourceVersion", self.describe()),
            });
        };
        let patch = json!({"metadata": {"resourceVersion": rv}, "data": writes});
        self.api
            .patch(
                CONTROLLER_CONFIG_MAP,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| port_error(port, &self.describe(), e))?;
        Ok(())
    }

    async fn create(&self, port: &'static str, writes: Writes) -> Result<(), PortError> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONTROLLER_CONFIG_MAP.to_owned()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            data: Some(writes),
            ..ConfigMap::default()
        };
        tracing::info!(configmap = %self.describe(), "creating the id/port ConfigMap");
        match self.api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            Err(e) if is_already_exists(&e) => Err(PortError::Conflict {
                port,
                what: format!("{} (created by another writer)", self.describe()),
            }),
            Err(e) => Err(port_error(port, &self.describe(), e)),
        }
    }
}

/// The value of data key `key`, if present.
pub(crate) fn data<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.data.as_ref()?.get(key).map(String::as_str)
}

/// The value of annotation `key`, if present.
pub(crate) fn annotation<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}
