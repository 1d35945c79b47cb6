//! `MpdClusterResource`: an MPDCluster as the engine's `StateResource`, over the cluster
//! store port (port A). The one implementation of the MPDCluster's state semantics: the
//! local runner and the flow tests use it over the file store and the simulator, the
//! operator on Kubernetes ([`crate::cluster`]) over the Kubernetes adapter of port A. As a
//! [`wf_kube::ObjectSnapshot`] its runs are kept in the ConfigMap `<name>-workflow`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wf_engine::{
    async_trait, AnnotationPatch, AnnotationRecover, InterruptAnnotations, RecoverStrategy,
    Refusal, ResourceError, ResourceKey, State, StateResource,
};

use crate::crd::{annotations, MPDCluster, MPDClusterStatus};
use crate::ports::{ClusterStore, PortError};

/// How many times a conflicting write is re-read and re-applied.
const WRITE_ATTEMPTS: u32 = 5;

/// A snapshot of an MPDCluster plus the store it came from.
#[derive(Clone)]
pub struct MpdClusterResource {
    store: Arc<dyn ClusterStore>,
    cr: MPDCluster,
    key: ResourceKey,
}

impl std::fmt::Debug for MpdClusterResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpdClusterResource")
            .field("key", &self.key)
            .field("state", &self.state())
            .finish()
    }
}

impl MpdClusterResource {
    /// Wraps an object read from `store`.
    pub fn new(store: Arc<dyn ClusterStore>, cr: MPDCluster) -> Self {
        let key = ResourceKey::new(
            cr.metadata.namespace.clone().unwrap_or_default(),
            cr.metadata.name.clone().unwrap_or_default(),
        );
        MpdClusterResource { store, cr, key }
    }

    /// Reads `namespace/name` from `store`.
    pub async fn load(
        store: Arc<dyn ClusterStore>,
        namespace: &str,
        name: &str,
    ) -> Result<Self, ResourceError> {
        let key = ResourceKey::new(namespace, name);
        let cr = store
            .get(namespace, name)
            .await
            .map_err(|e| resource_error(&key, e))?;
        Ok(Self::new(store, cr))
    }

    /// The object of this snapshot.
    pub fn cluster(&self) -> &MPDCluster {
        &self.cr
    }

    async fn write(
        &self,
        change: impl Fn(&mut MPDCluster),
        status: bool,
    ) -> Result<Self, ResourceError> {
        for _ in 0..WRITE_ATTEMPTS {
            let mut fresh = self
                .store
                .get(&self.key.namespace, &self.key.name)
                .await
                .map_err(|e| resource_error(&self.key, e))?;
            change(&mut fresh);
            let written = if status {
                self.store.update_status(&fresh).await
            } else {
                self.store.update(&fresh).await
            };
            match written {
                Ok(cr) => return Ok(Self::new(self.store.clone(), cr)),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(resource_error(&self.key, e)),
            }
        }
        Err(ResourceError::Conflict {
            key: self.key.clone(),
            message: format!("still conflicting after {WRITE_ATTEMPTS} attempts"),
        })
    }
}

impl wf_kube::ObjectSnapshot for MpdClusterResource {
    type Object = MPDCluster;

    fn object(&self) -> &MPDCluster {
        &self.cr
    }
}

fn resource_error(key: &ResourceKey, err: PortError) -> ResourceError {
    match err {
        PortError::NotFound { .. } => ResourceError::NotFound(key.clone()),
        PortError::Conflict { what, .. } => ResourceError::Conflict {
            key: key.clone(),
            message: what,
        },
        other => ResourceError::Backend {
            key: key.clone(),
            source: Box::new(other),
        },
    }
}

#[async_trait]
impl StateResource for MpdClusterResource {
    fn name(&self) -> &str {
        &self.key.name
    }

    fn namespace(&self) -> &str {
        &self.key.namespace
    }

    fn state(&self) -> State {
        State::new(
            self.cr
                .status
                .as_ref()
                .map(|s| s.cluster_status.clone())
                .unwrap_or_default(),
        )
    }

    fn annotation(&self, key: &str) -> Option<String> {
        self.cr.metadata.annotations.as_ref()?.get(key).cloned()
    }

    async fn fetch(&self) -> Result<Self, ResourceError> {
        Self::load(self.store.clone(), &self.key.namespace, &self.key.name).await
    }

    async fn update_state(&self, state: State) -> Result<Self, ResourceError> {
        self.write(
            |cr| {
                let generation = cr.metadata.generation;
                cr.status
                    .get_or_insert_with(Default::default)
                    .set_state(state.as_str(), generation)
            },
            true,
        )
        .await
    }

    async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError> {
        self.write(
            |cr| {
                let map = cr.metadata.annotations.get_or_insert_with(BTreeMap::new);
                for (key, value) in patch {
                    match value {
                        Some(v) => map.insert(key.clone(), v.clone()),
                        None => map.remove(key),
                    };
                }
            },
            false,
        )
        .await
    }

    /// The refusal on the `Ready` condition.
    fn refusal(&self) -> Option<Refusal> {
        let (reason, message, _) = self.cr.status.as_ref()?.refusal()?;
        Some(Refusal { reason, message })
    }

    /// Whether the refusal was recorded for the object's current generation.
    fn refusal_is_current(&self) -> bool {
        self.cr
            .status
            .as_ref()
            .and_then(MPDClusterStatus::refusal)
            .is_some_and(|(_, _, generation)| generation == self.cr.metadata.generation)
    }

    /// `Ready=False` with the refusal's reason and message, or (`None`) the condition of
    /// the state again; written to the status through the cluster store (either backend).
    async fn record_refusal(&self, refusal: Option<&Refusal>) -> Result<Self, ResourceError> {
        self.write(
            |cr| {
                let generation = cr.metadata.generation;
                let status = cr.status.get_or_insert_with(Default::default);
                match refusal {
                    Some(r) => status.set_refusal(&r.reason, &r.message, generation),
                    None => {
                        let state = status.cluster_status.clone();
                        let observed = status.observed_generation;
                        status.set_state(&state, generation);
                        status.observed_generation = observed;
                    }
                }
            },
            true,
        )
        .await
    }

    async fn is_cancelled(&self) -> bool {
        match self.store.get(&self.key.namespace, &self.key.name).await {
            Err(e) => e.is_not_found(),
            Ok(cr) => {
                cr.metadata.deletion_timestamp.is_some()
                    || cr
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(annotations::CANCELLED))
                        .map(String::as_str)
                        == Some("true")
            }
        }
    }
}

/// Recovery after an interrupt: the engine's annotation strategy, except that recovering
/// also withdraws a cancel request (`cancelled`). Left in place, it would interrupt the
/// resumed flow again at once, so a cancelled flow could never be recovered.
#[derive(Clone, Debug, Default)]
pub struct ClusterRecover {
    annotations: InterruptAnnotations,
}

impl ClusterRecover {
    /// A strategy reading the given interrupt annotation keys.
    pub fn new(annotations: InterruptAnnotations) -> Self {
        ClusterRecover { annotations }
    }
}

#[async_trait]
impl RecoverStrategy<MpdClusterResource> for ClusterRecover {
    fn recovery_requested(&self, resource: &MpdClusterResource) -> Option<State> {
        AnnotationRecover::new(self.annotations.clone()).recovery_requested(resource)
    }

    async fn clear(
        &self,
        resource: &MpdClusterResource,
    ) -> Result<MpdClusterResource, ResourceError> {
        let mut patch: AnnotationPatch = self
            .annotations
            .keys()
            .into_iter()
            .map(|k| (k.to_owned(), None))
            .collect();
        patch.insert(annotations::CANCELLED.to_owned(), None);
        resource.patch_annotations(&patch).await
    }
}
