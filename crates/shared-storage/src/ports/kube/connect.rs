//! [`connect`]: every port on its production adapter, assembled over one `kube::Client`.
//!
//! The adapters compose through the port traits: the pod adapter takes the node inventory
//! as an `Arc<dyn NodeInventory>`, the cluster-manager adapter its HTTP side as an
//! `Arc<dyn CmApi>`, the engine agent and pfsd adapters a `PodExec`. So the order below is:
//! the shared pieces first (HTTP client, exec), then the ports that others take, then the
//! rest. No port ever falls back to a simulator.

use std::sync::Arc;

use super::{
    CmBaseUrlFn, ExecEngineAgent, ExecPfsdTool, KubeAccountStore, KubeClassCatalog,
    KubeClusterManager, KubeClusterStore, KubeIdAllocator, KubeNodeInventory, KubeParamStore,
    KubePodExec, KubePodManager, KubePortAllocator, KubePortsConfig, KubeStorageManager,
    KubeVersionCatalog, PodExec,
};
use crate::ports::{
    AccountStore, ClassCatalog, ClusterManager, ClusterStore, EngineAgent, IdAllocator,
    NodeInventory, ParamStore, PfsdTool, PodManager, PortAllocator, PortError, Ports,
    StorageManager, VersionCatalog,
};

/// What [`connect_with`] takes from the caller instead of building it: the seams a test
/// (or an unusual installation) replaces. `Default` builds everything.
#[derive(Clone, Default)]
pub struct ConnectOverrides {
    /// How commands run in instance containers (`None`: [`KubePodExec`] on the Kubernetes
    /// exec API).
    pub exec: Option<Arc<dyn PodExec>>,
    /// Where each cluster's CM answers (`None`: found from its pod).
    pub cm_base_url: Option<CmBaseUrlFn>,
}

impl std::fmt::Debug for ConnectOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOverrides")
            .field("exec", &self.exec.is_some())
            .field("cm_base_url", &self.cm_base_url.is_some())
            .finish()
    }
}

/// Every port on its production adapter, over `client` and `config`. Fails with
/// [`PortError::Unavailable`] naming the port when an adapter cannot be built.
///
/// Nothing here calls the cluster: adapters look up what they need (the SMS service, the
/// CM pod) on their first call, and answer `Unavailable` there when it is missing.
pub fn connect(client: kube::Client, config: &KubePortsConfig) -> Result<Ports, PortError> {
    connect_with(client, config, ConnectOverrides::default())
}

/// [`connect`], with the seams of `overrides` in place of the adapters' own.
pub fn connect_with(
    client: kube::Client,
    config: &KubePortsConfig,
    overrides: ConnectOverrides,
) -> Result<Ports, PortError> {
    let config = Arc::new(config.clone());
    // The exec channel the engine agent and pfsd adapters share.
    let exec: Arc<dyn PodExec> = match overrides.exec {
        Some(exec) => exec,
        None => Arc::new(KubePodExec::new(client.clone(), config.clone())),
    };
    // L. Nodes (the pod adapter takes it).
    let nodes: Arc<dyn NodeInventory> =
        Arc::new(KubeNodeInventory::new(client.clone(), config.clone()));
    // A. The MPDCluster objects (the engine agent reads the cluster's topology from it).
    let clusters: Arc<dyn ClusterStore> =
        Arc::new(KubeClusterStore::new(client.clone(), config.clone()));
    // B. Ids.
    let ids: Arc<dyn IdAllocator> = Arc::new(KubeIdAllocator::new(client.clone(), config.clone()));
    // C. Host ports.
    let ports: Arc<dyn PortAllocator> =
        Arc::new(KubePortAllocator::new(client.clone(), config.clone()));
    // I. Accounts (Secrets; the cluster manager and the engine agent take them).
    let accounts: Arc<dyn AccountStore> =
        Arc::new(KubeAccountStore::new(client.clone(), config.clone()));
    // J. Parameters (ConfigMaps; the engine agent takes them for `mycnf_dict`).
    let params: Arc<dyn ParamStore> = Arc::new(KubeParamStore::new(client.clone(), config.clone()));
    // D. The storage manager (SMS).
    let storage: Arc<dyn StorageManager> =
        Arc::new(KubeStorageManager::new(client.clone(), config.clone())?);
    // E. The cluster manager: its HTTP API (`cm_http.rs`, `Arc<dyn CmApi>`) behind the
    //    Kubernetes side (`cluster_manager.rs`).
    let mut cm = KubeClusterManager::with_http(client.clone(), config.clone(), accounts.clone())?;
    if let Some(base_url) = overrides.cm_base_url {
        cm = cm.with_base_url_override(base_url);
    }
    let cluster_manager: Arc<dyn ClusterManager> = Arc::new(cm);
    // F. Instance pods.
    let pods: Arc<dyn PodManager> = Arc::new(KubePodManager::new(
        client.clone(),
        config.clone(),
        nodes.clone(),
    ));
    // G. The engine agent, through exec.
    let engine: Arc<dyn EngineAgent> = Arc::new(ExecEngineAgent::new(
        client.clone(),
        config.clone(),
        exec.clone(),
        clusters.clone(),
        accounts.clone(),
        params.clone(),
    ));
    // H. pfsd, through exec.
    let pfsd: Arc<dyn PfsdTool> = Arc::new(ExecPfsdTool::new(config.clone(), exec));
    // K. Classes and minor versions (ConfigMaps).
    let classes: Arc<dyn ClassCatalog> =
        Arc::new(KubeClassCatalog::new(client.clone(), config.clone()));
    let versions: Arc<dyn VersionCatalog> = Arc::new(KubeVersionCatalog::new(client, config));

    Ok(Ports {
        clusters,
        ids,
        ports,
        storage,
        cluster_manager,
        pods,
        engine,
        pfsd,
        accounts,
        params,
        classes,
        versions,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_port_is_assembled_on_its_adapter_without_calling_the_cluster() {
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, "default");

        // The mock answers nothing: a call to the cluster would hang, so returning at all
        // shows that assembling calls nothing.
        let ports = connect(client, &KubePortsConfig::default()).expect("assembled");

        let debug = format!("{:?}", ConnectOverrides::default());
        assert_eq!(
            debug,
            "ConnectOverrides { exec: false, cm_base_url: false }"
        );
        assert_eq!(
            Arc::strong_count(&ports.nodes),
            2,
            "the pod adapter shares the nodes"
        );
    }
}
