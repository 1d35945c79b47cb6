//! E. [`KubeClusterManager`]: each cluster's cluster manager (CM) — its Kubernetes objects
//! ([`cm_objects`](super::cm_objects) lists them) and its REST API through [`CmApi`].
//!
//! - `ensure_deployed` creates whatever is missing (service account, ClusterRoleBinding,
//!   ConfigMaps, the Secret with the accounts, the Deployment) and never updates an object;
//!   it is `Pending` until the CM pod runs.
//! - `upgrade` sets the image of container `manager` and the Recreate strategy (no wait).
//! - `ensure_affinity` deletes a CM pod that runs on the RW's node (the Deployment's
//!   required anti-affinity puts the replacement elsewhere) and is `Pending` until exactly
//!   one CM pod runs off that node.
//! - `remove` turns HA off (best effort), deletes the Deployment (grace 0), is `Pending`
//!   while any CM pod remains, then deletes the five ConfigMaps and the Secret.
//!
//! **Where the CM listens.** Among the pods labelled `app=<cluster>.cm`, those Running or
//! Pending and not being deleted must be exactly one, and it must be Running; the base URL
//! is `http://<InternalIP of its node>:<its label "port">`. Anything else is
//! `PortError::Unavailable` (as the simulator reports a CM that is not running), so the step
//! fails and is retried with the engine's backoff. A test can bypass the lookup with
//! [`KubeClusterManager::with_base_url_override`].

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api_error::{is_already_exists, not_found, port_error};
use super::cm_objects::{self, CmAccounts, CmNames, CmSettings, CONTAINER};
use super::{CmApi, HttpCmApi, KubePortsConfig};
use crate::crd::MPDCluster;
use crate::ports::{
    AccountStore, ClusterManager, ClusterRef, CmInstance, CmSpec, CmStatus, PortError, Progress,
};

/// The port name in errors.
const PORT: &str = "cluster_manager";

/// A fixed CM base URL per cluster, instead of the lookup from the CM pod (`None`: look
/// it up).
pub type CmBaseUrlFn = Arc<dyn Fn(&ClusterRef) -> Option<String> + Send + Sync>;

/// Where the CM pod stands.
enum CmPod {
    /// Exactly one live CM pod, Running.
    Running(Box<Pod>),
    /// Not (yet) reachable: why.
    NotRunning(String),
}

/// The production [`ClusterManager`].
pub struct KubeClusterManager {
    client: kube::Client,
    config: Arc<KubePortsConfig>,
    api: Arc<dyn CmApi>,
    accounts: Arc<dyn AccountStore>,
    base_url_override: Option<CmBaseUrlFn>,
}

impl std::fmt::Debug for KubeClusterManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClusterManager")
            .field("base_url_override", &self.base_url_override.is_some())
            .finish_non_exhaustive()
    }
}

fn is_live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Running") | Some("Pending")
        )
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

impl KubeClusterManager {
    /// The adapter on `client`, its REST calls through `api`, the CM's database accounts
    /// from `accounts`.
    pub fn new(
        client: kube::Client,
        config: Arc<KubePortsConfig>,
        api: Arc<dyn CmApi>,
        accounts: Arc<dyn AccountStore>,
    ) -> Self {
        KubeClusterManager {
            client,
            config,
            api,
            accounts,
            base_url_override: None,
        }
    }

    /// The adapter with [`HttpCmApi`] as its REST client.
    ///
    /// # Errors
    /// `Rejected` when the HTTP client cannot be built.
    pub fn with_http(
        client: kube::Client,
        config: Arc<KubePortsConfig>,
        accounts: Arc<dyn AccountStore>,
    ) -> Result<Self, PortError> {
        let api = Arc::new(HttpCmApi::new(&config)?);
        Ok(KubeClusterManager::new(client, config, api, accounts))
    }

    /// Uses `base_url` for the clusters it answers `Some` for, instead of looking up the CM
    /// pod (tests whose CM is not behind a pod).
    pub fn with_base_url_override(mut self, base_url: CmBaseUrlFn) -> Self {
        self.base_url_override = Some(base_url);
        self
    }

    fn ns_api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The live CM pods of `cluster` and where the CM stands.
    async fn cm_pod(&self, cluster: &ClusterRef) -> Result<CmPod, PortError> {
        let names = CmNames::of(cluster);
        let pods = self
            .ns_api::<Pod>(&cluster.namespace)
            .list(&ListParams::default().labels(&names.selector()))
            .await
            .map_err(|e| port_error(PORT, &format!("pods {} of {cluster}", names.selector()), e))?;
        let mut live: Vec<Pod> = pods.items.into_iter().filter(is_live).collect();
        Ok(match live.len() {
            0 => CmPod::NotRunning(format!("no cluster-manager pod of {cluster}")),
            1 if is_running(&live[0]) => CmPod::Running(Box::new(live.remove(0))),
            1 => CmPod::NotRunning(format!(
                "cluster-manager pod {} of {cluster} is not running yet",
                live[0].name_any()
            )),
            n => CmPod::NotRunning(format!(
                "{n} cluster-manager pods of {cluster}, expected one"
            )),
        })
    }

    /// The base URL of `cluster`'s CM: the override, or `http://<node InternalIP>:<pod
    /// label port>` of its one running pod.
    ///
    /// # Errors
    /// `Unavailable` when there is not exactly one running CM pod; `Rejected` when the pod
    /// has no usable `port` label or its node no InternalIP.
    pub async fn base_url(&self, cluster: &ClusterRef) -> Result<String, PortError> {
        if let Some(url) = self.base_url_override.as_ref().and_then(|f| f(cluster)) {
            return Ok(url);
        }
        let pod = match self.cm_pod(cluster).await? {
            CmPod::Running(pod) => pod,
            CmPod::NotRunning(reason) => {
                return Err(PortError::Unavailable {
                    port: PORT,
                    message: reason,
                })
            }
        };
        let pod_name = pod.name_any();
        let port = pod
            .labels()
            .get("port")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| PortError::Rejected {
                port: PORT,
                message: format!("cluster-manager pod {pod_name} has no valid label port"),
            })?;
        let node_name = node_of(&pod);
        let node = Api::<Node>::all(self.client.clone())
            .get(node_name)
            .await
            .map_err(|e| port_error(PORT, &format!("node {node_name:?} of pod {pod_name}"), e))?;
        let ip = node
            .status
            .and_then(|s| s.addresses)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.type_ == "InternalIP")
            .map(|a| a.address)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| PortError::Rejected {
                port: PORT,
                message: format!("node {node_name} (of pod {pod_name}) has no InternalIP"),
            })?;
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        Ok(format!("http://{host}:{port}"))
    }

    /// The controller owner reference to the MPDCluster.
    async fn owner(&self, cluster: &ClusterRef) -> Result<OwnerReference, PortError> {
        let cr = self
            .ns_api::<MPDCluster>(&cluster.namespace)
            .get(&cluster.name)
            .await
            .map_err(|e| port_error(PORT, &format!("mpdcluster {cluster}"), e))?;
        cr.controller_owner_ref(&())
            .ok_or_else(|| PortError::Rejected {
                port: PORT,
                message: format!("mpdcluster {cluster} has no uid"),
            })
    }

    /// The settings from `ccm-config` and `controller-config`.
    async fn settings(&self) -> Result<CmSettings, PortError> {
        let ns = &self.config.system_namespace;
        let api = self.ns_api::<ConfigMap>(ns);
        let mut data = Vec::new();
        for name in ["ccm-config", "controller-config"] {
            let cm = api
                .get_opt(name)
                .await
                .map_err(|e| port_error(PORT, &format!("configmap {ns}/{name}"), e))?;
            data.push(cm.and_then(|c| c.data));
        }
        Ok(CmSettings::from_data(data[0].as_ref(), data[1].as_ref()))
    }

    /// Creates `object` unless an object of its name exists; returns whether it created.
    async fn create_if_missing<K>(&self, api: &Api<K>, object: &K) -> Result<bool, PortError>
    where
        K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let what = format!(
            "{} {}{name}",
            K::kind(&Default::default()).to_lowercase(),
            object
                .meta()
                .namespace
                .as_ref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default()
        );
        if api
            .get_opt(&name)
            .await
            .map_err(|e| port_error(PORT, &what, e))?
            .is_some()
        {
            return Ok(false);
        }
        match api.create(&PostParams::default(), object).await {
            Ok(_) => {
                tracing::info!(object = %what, "created");
                Ok(true)
            }
            Err(e) if is_already_exists(&e) => Ok(false),
            Err(e) => Err(port_error(PORT, &what, e)),
        }
    }

    /// The ClusterRoleBinding of the namespace, with the CM's service account among its
    /// subjects.
    async fn ensure_binding(&self, namespace: &str) -> Result<(), PortError> {
        let api = Api::<ClusterRoleBinding>::all(self.client.clone());
        let wanted = cm_objects::role_binding(namespace, &self.config);
        if self.create_if_missing(&api, &wanted).await? {
            return Ok(());
        }
        let name = wanted.name_any();
        let what = format!("clusterrolebinding {name}");
        let Some(existing) = api
            .get_opt(&name)
            .await
            .map_err(|e| port_error(PORT, &what, e))?
        else {
            return Ok(());
        };
        let subject = cm_objects::subject(namespace, &self.config);
        let mut subjects = existing.subjects.unwrap_or_default();
        if subjects.iter().any(|s| {
            s.kind == subject.kind && s.name == subject.name && s.namespace == subject.namespace
        }) {
            return Ok(());
        }
        subjects.push(subject);
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": existing.metadata.resource_version},
            "subjects": subjects,
        });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| port_error(PORT, &what, e))?;
        tracing::info!(binding = %name, "added the cluster manager's service account");
        Ok(())
    }

    /// Deletes `name`; one already gone is fine.
    async fn delete_quietly<K>(&self, api: &Api<K>, name: &str, what: &str) -> Result<(), PortError>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(port_error(PORT, what, e)),
        }
    }

    fn validate(spec: &CmSpec) -> Result<(), PortError> {
        let problem = if spec.image.trim().is_empty() {
            Some("no cluster-manager image".to_owned())
        } else if !(1..=65535).contains(&spec.port) {
            Some(format!("cluster-manager port {} is not a port", spec.port))
        } else if !(1..=65535).contains(&spec.consensus_port) {
            Some(format!(
                "consensus port {} is not a port",
                spec.consensus_port
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(PortError::Rejected {
                port: PORT,
                message: format!("{}: {message}", spec.cluster),
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ClusterManager for KubeClusterManager {
    async fn ensure_deployed(&self, spec: &CmSpec) -> Result<Progress, PortError> {
        Self::validate(spec)?;
        let cluster = &spec.cluster;
        let ns = &cluster.namespace;
        let owner = self.owner(cluster).await?;
        let settings = self.settings().await?;
        let accounts = CmAccounts::pick(cluster, self.accounts.accounts(cluster).await?)?;
        self.create_if_missing(
            &self.ns_api::<ServiceAccount>(ns),
            &cm_objects::service_account(ns, &self.config),
        )
        .await?;
        self.ensure_binding(ns).await?;
        let config_maps = self.ns_api::<ConfigMap>(ns);
        for cm in [
            cm_objects::conf_config_map(spec, &self.config, &owner),
            cm_objects::meta_config_map(cluster, &owner),
            cm_objects::flag_config_map(cluster, &settings, &owner),
        ] {
            self.create_if_missing(&config_maps, &cm).await?;
        }
        self.create_if_missing(
            &self.ns_api::<Secret>(ns),
            &cm_objects::conf_secret(spec, &accounts, &owner),
        )
        .await?;
        let deployment = cm_objects::deployment(spec, &self.config, &settings, &owner)?;
        self.create_if_missing(&self.ns_api::<Deployment>(ns), &deployment)
            .await?;
        Ok(match self.cm_pod(cluster).await? {
            CmPod::Running(_) => Progress::Done(()),
            CmPod::NotRunning(reason) => Progress::pending(reason),
        })
    }

    async fn remove(&self, cluster: &ClusterRef) -> Result<Progress, PortError> {
        let names = CmNames::of(cluster);
        let ns = &cluster.namespace;
        let deployments = self.ns_api::<Deployment>(ns);
        let what = format!("deployment {ns}/{}", names.app);
        let deployment = deployments
            .get_opt(&names.app)
            .await
            .map_err(|e| port_error(PORT, &what, e))?;
        if let Some(d) = deployment {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            if replicas > 0 {
                let disabled = match self.base_url(cluster).await {
                    Ok(url) => self.api.set_ha(&url, false).await,
                    Err(err) => Err(err),
                };
                if let Err(err) = disabled {
                    tracing::warn!(%cluster, %err, "could not turn HA off before removing the cluster manager");
                }
            }
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match deployments.delete(&names.app, &params).await {
                Ok(_) => tracing::info!(%cluster, "cluster-manager deployment deleted"),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(port_error(PORT, &what, e)),
            }
        }
        let pods = self
            .ns_api::<Pod>(ns)
            .list(&ListParams::default().labels(&names.selector()))
            .await
            .map_err(|e| port_error(PORT, &format!("pods {} of {cluster}", names.selector()), e))?;
        if !pods.items.is_empty() {
            return Ok(Progress::pending(format!(
                "{} cluster-manager pod(s) of {cluster} still there",
                pods.items.len()
            )));
        }
        let config_maps = self.ns_api::<ConfigMap>(ns);
        for name in names.config_maps() {
            self.delete_quietly(&config_maps, name, &format!("configmap {ns}/{name}"))
                .await?;
        }
        self.delete_quietly(
            &self.ns_api::<Secret>(ns),
            &names.app,
            &format!("secret {ns}/{}", names.app),
        )
        .await?;
        Ok(Progress::Done(()))
    }

    async fn upgrade(&self, cluster: &ClusterRef, image: &str) -> Result<(), PortError> {
        let names = CmNames::of(cluster);
        let api = self.ns_api::<Deployment>(&cluster.namespace);
        let what = format!("deployment {}/{}", cluster.namespace, names.app);
        let mut d = api
            .get(&names.app)
            .await
            .map_err(|e| port_error(PORT, &what, e))?;
        let spec = d.spec.get_or_insert_with(Default::default);
        let pod = spec.template.spec.get_or_insert_with(Default::default);
        let Some(container) = pod.containers.iter_mut().find(|c| c.name == CONTAINER) else {
            return Err(PortError::Rejected {
                port: PORT,
                message: format!("{what} has no container {CONTAINER}"),
            });
        };
        let strategy = spec.strategy.get_or_insert_with(Default::default);
        if container.image.as_deref() == Some(image)
            && strategy.type_.as_deref() == Some("Recreate")
        {
            return Ok(());
        }
        container.image = Some(image.to_owned());
        strategy.type_ = Some("Recreate".to_owned());
        strategy.rolling_update = None;
        api.replace(&names.app, &PostParams::default(), &d)
            .await
            .map_err(|e| port_error(PORT, &what, e))?;
        tracing::info!(%cluster, image, "cluster-manager image set");
        Ok(())
    }

    async fn ensure_affinity(
        &self,
        cluster: &ClusterRef,
        rw_node: &str,
    ) -> Result<Progress, PortError> {
        let names = CmNames::of(cluster);
        let api = self.ns_api::<Pod>(&cluster.namespace);
        let pods = api
            .list(&ListParams::default().labels(&names.selector()))
            .await
            .map_err(|e| port_error(PORT, &format!("pods {} of {cluster}", names.selector()), e))?;
        let live: Vec<Pod> = pods.items.into_iter().filter(is_live).collect();
        let on_rw: Vec<&Pod> = live.iter().filter(|p| node_of(p) == rw_node).collect();
        if !on_rw.is_empty() {
            for pod in on_rw {
                let name = pod.name_any();
                self.delete_quietly(&api, &name, &format!("pod {}/{name}", cluster.namespace))
                    .await?;
                tracing::info!(%cluster, pod = %name, node = rw_node, "cluster-manager pod deleted: it ran on the RW's node");
            }
            return Ok(Progress::pending(format!(
                "cluster manager of {cluster} moving off the RW's node {rw_node}"
            )));
        }
        Ok(match self.cm_pod(cluster).await? {
            CmPod::Running(_) => Progress::Done(()),
            CmPod::NotRunning(reason) => Progress::pending(reason),
        })
    }

    async fn set_ha(&self, cluster: &ClusterRef, enabled: bool) -> Result<(), PortError> {
        let url = self.base_url(cluster).await?;
        self.api.set_ha(&url, enabled).await
    }

    async fn add_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError> {
        let url = self.base_url(cluster).await?;
        self.api.add_ins(&url, ins).await
    }

    async fn remove_ins(&self, cluster: &ClusterRef, ins: &CmInstance) -> Result<(), PortError> {
        let url = self.base_url(cluster).await?;
        self.api.remove_ins(&url, ins).await
    }

    async fn switchover(
        &self,
        cluster: &ClusterRef,
        from: &str,
        to: &str,
    ) -> Result<(), PortError> {
        let url = self.base_url(cluster).await?;
        self.api.switchover(&url, from, to).await
    }

    async fn status(&self, cluster: &ClusterRef) -> Result<CmStatus, PortError> {
        let url = self.base_url(cluster).await?;
        self.api.status(&url).await
    }
}

#[cfg(test)]
mod tests;
