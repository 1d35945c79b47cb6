//! [`KubeResource`]: a namespaced Kubernetes object as a [`StateResource`].

use std::fmt::Debug;

use async_trait::async_trait;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wf_engine::{AnnotationPatch, ResourceError, ResourceKey, State, StateResource};

/// The annotation that cancels a resource's running workflow when set to `"true"`.
pub const CANCELLED_ANNOTATION: &str = "cancelled";

/// How the state of a `K` is read from an object and written as a status merge patch.
pub trait StateField<K>: Send + Sync + 'static {
    /// The state in `object`'s status (empty when unset).
    fn read(object: &K) -> String;
    /// The body of the status merge patch that sets `state`, e.g.
    /// `{"status": {"clusterStatus": state}}`.
    fn patch(state: &str) -> serde_json::Value;
}

/// The bounds every object handled by [`KubeResource`] meets.
pub trait KubeObject:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> KubeObject for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// A [`StateResource`] that is a snapshot of one Kubernetes object: what the Kubernetes side
/// of the engine needs to own things by it (the memento ConfigMap's owner reference).
///
/// [`KubeResource`] is one; a resource type with its own state semantics (e.g. one written
/// through a repository port) implements it to use [`crate::ConfigMapMementoFactory`] and
/// [`crate::Reconciler`].
pub trait ObjectSnapshot: StateResource {
    /// The Kubernetes object type.
    type Object: KubeObject;
    /// The object of this snapshot (with its `uid`, for owner references).
    fn object(&self) -> &Self::Object;
}

impl<K: KubeObject, F: StateField<K>> ObjectSnapshot for KubeResource<K, F> {
    type Object = K;

    fn object(&self) -> &K {
        &self.object
    }
}

/// A snapshot of a namespaced object `K` plus the API to refresh and write it. The state
/// lives in the status subresource and is read and written through `F`.
pub struct KubeResource<K, F> {
    api: Api<K>,
    object: K,
    key: ResourceKey,
    _field: std::marker::PhantomData<fn() -> F>,
}

impl<K: Clone, F> Clone for KubeResource<K, F> {
    fn clone(&self) -> Self {
        KubeResource {
            api: self.api.clone(),
            object: self.object.clone(),
            key: self.key.clone(),
            _field: std::marker::PhantomData,
        }
    }
}

impl<K: Debug, F> Debug for KubeResource<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeResource")
            .field("key", &self.key)
            .field("object", &self.object)
            .finish()
    }
}

impl<K: KubeObject, F: StateField<K>> KubeResource<K, F> {
    /// Wraps a snapshot of `object`, read and written through a client in its namespace.
    pub fn new(client: kube::Client, object: K) -> Self {
        let namespace = object.namespace().unwrap_or_default();
        let api = Api::namespaced(client, &namespace);
        Self::with_api(api, object)
    }

    /// Wraps a snapshot of `object` with an explicit API handle (in the object's namespace).
    pub fn with_api(api: Api<K>, object: K) -> Self {
        let key = ResourceKey::new(object.namespace().unwrap_or_default(), object.name_any());
        KubeResource {
            api,
            object,
            key,
            _field: std::marker::PhantomData,
        }
    }

    /// Reads `name` in `namespace` and wraps it.
    pub async fn get(
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, ResourceError> {
        let api: Api<K> = Api::namespaced(client, namespace);
        let key = ResourceKey::new(namespace, name);
        let object = api.get(name).await.map_err(|e| map_error(&key, e))?;
        Ok(Self::with_api(api, object))
    }

    /// The snapshot.
    pub fn object(&self) -> &K {
        &self.object
    }

    /// The API handle (namespaced).
    pub fn api(&self) -> &Api<K> {
        &self.api
    }

    fn fresh(&self, object: K) -> Self {
        KubeResource {
            api: self.api.clone(),
            object,
            key: self.key.clone(),
            _field: std::marker::PhantomData,
        }
    }
}

/// Maps a kube error: 404 is `NotFound`, 409 `Conflict`, anything else `Backend`.
pub fn map_error(key: &ResourceKey, error: kube::Error) -> ResourceError {
    match &error {
        kube::Error::Api(status) if status.code == 404 => ResourceError::NotFound(key.clone()),
        kube::Error::Api(status) if status.code == 409 => ResourceError::Conflict {
            key: key.clone(),
            message: status.message.clone(),
        },
        _ => ResourceError::Backend {
            key: key.clone(),
            source: Box::new(error),
        },
    }
}

/// The status code of a kube API error, if it is one.
pub(crate) fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[async_trait]
impl<K: KubeObject, F: StateField<K>> StateResource for KubeResource<K, F> {
    fn name(&self) -> &str {
        &self.key.name
    }

    fn namespace(&self) -> &str {
        &self.key.namespace
    }

    fn state(&self) -> State {
        State::new(F::read(&self.object))
    }

    fn annotation(&self, key: &str) -> Option<String> {
        self.object.annotations().get(key).cloned()
    }

    async fn fetch(&self) -> Result<Self, ResourceError> {
        let object = self
            .api
            .get(&self.key.name)
            .await
            .map_err(|e| map_error(&self.key, e))?;
        Ok(self.fresh(object))
    }

    async fn update_state(&self, state: State) -> Result<Self, ResourceError> {
        let body = F::patch(state.as_str());
        let object = self
            .api
            .patch_status(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| map_error(&self.key, e))?;
        Ok(self.fresh(object))
    }

    async fn patch_annotations(&self, patch: &AnnotationPatch) -> Result<Self, ResourceError> {
        let annotations: serde_json::Map<String, serde_json::Value> = patch
            .iter()
            .map(|(k, v)| {
                let value = v.as_ref().map_or(serde_json::Value::Null, |s| {
                    serde_json::Value::String(s.clone())
                });
                (k.clone(), value)
            })
            .collect();
        let body = serde_json::json!({ "metadata": { "annotations": annotations } });
        let object = self
            .api
            .patch(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| map_error(&self.key, e))?;
        Ok(self.fresh(object))
    }

    async fn is_cancelled(&self) -> bool {
        match self.api.get_opt(&self.key.name).await {
            Ok(None) => true,
            Ok(Some(object)) => {
                object.meta().deletion_timestamp.is_some()
                    || object
                        .annotations()
                        .get(CANCELLED_ANNOTATION)
                        .map(String::as_str)
                        == Some("true")
            }
            Err(error) => {
                if status_code(&error) == Some(404) {
                    true
                } else {
                    tracing::warn!(resource = %self.key, %error, "cancellation check failed");
                    false
                }
            }
        }
    }
}
