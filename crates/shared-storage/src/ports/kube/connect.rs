//! [`connect`]: every port on its production adapter, assembled over one `kube::Client`.
//!
//! The adapters compose through the port traits: the pod adapter takes the node inventory
//! as an `Arc<dyn NodeInventory>`, the cluster-manager adapter its HTTP side as an
//! `Arc<dyn CmApi>`, the engine agent and pfsd adapters a `PodExec`. So the order below is:
//! the shared pieces first (HTTP client, exec), then the ports that others take, then the
//! rest. No port ever falls back to a simulator: a port without its adapter is an error.

use std::sync::Arc;

use super::{
    KubeAccountStore, KubeClassCatalog, KubeClusterManager, KubeClusterStore, KubeIdAllocator,
    KubeNodeInventory, KubeParamStore, KubePortAllocator, KubePortsConfig, KubeStorageManager,
    KubeVersionCatalog,
};
use crate::ports::sim::port;
use crate::ports::{
    AccountStore, ClassCatalog, ClusterManager, ClusterStore, EngineAgent, IdAllocator,
    NodeInventory, ParamStore, PfsdTool, PodManager, PortAllocator, PortError, Ports,
    StorageManager, VersionCatalog,
};

/// The error of a port whose production adapter is not assembled in this build.
fn not_assembled<T: ?Sized>(port: &'static str, adapter: &str) -> Result<Arc<T>, PortError> {
    Err(PortError::Unavailable {
        port,
        message: format!("{adapter} adapter not assembled"),
    })
}

/// Every port on its production adapter, over `client` and `config`. Fails with
/// [`PortError::Unavailable`] naming the port when an adapter cannot be built.
///
/// Nothing here calls the cluster: adapters look up what they need (the SMS service, the
/// CM pod) on their first call, and answer `Unavailable` there when it is missing.
pub fn connect(client: kube::Client, config: &KubePortsConfig) -> Result<Ports, PortError> {
    let config = Arc::new(config.clone());
    // TODO(merge) kube-workloads `exec.rs`: `Arc<dyn PodExec>` on the Kubernetes exec API
    //   (`KubePodExec::new(client.clone(), config.clone())`).

    // L. Nodes (the pod adapter takes it).
    let nodes: Arc<dyn NodeInventory> =
        Arc::new(KubeNodeInventory::new(client.clone(), config.clone()));
    // A. The MPDCluster objects.
    let clusters: Arc<dyn ClusterStore> =
        Arc::new(KubeClusterStore::new(client.clone(), config.clone()));
    // B. Ids.
    let ids: Arc<dyn IdAllocator> = Arc::new(KubeIdAllocator::new(client.clone(), config.clone()));
    // C. Host ports.
    let ports: Arc<dyn PortAllocator> =
        Arc::new(KubePortAllocator::new(client.clone(), config.clone()));
    // I. Accounts (Secrets; the cluster manager's Secret takes them).
    let accounts: Arc<dyn AccountStore> =
        Arc::new(KubeAccountStore::new(client.clone(), config.clone()));
    // D. The storage manager (SMS).
    let storage: Arc<dyn StorageManager> =
        Arc::new(KubeStorageManager::new(client.clone(), config.clone())?);
    // E. The cluster manager: its HTTP API (`cm_http.rs`, `Arc<dyn CmApi>`) behind the
    //    Kubernetes side (`cluster_manager.rs`).
    let cluster_manager: Arc<dyn ClusterManager> = Arc::new(KubeClusterManager::with_http(
        client.clone(),
        config.clone(),
        accounts.clone(),
    )?);
    // F. Instance pods.
    // TODO(merge) kube-workloads `pods.rs`: Arc::new(KubePodManager::new(client.clone(), config.clone(), nodes.clone()))
    let pods: Arc<dyn PodManager> = not_assembled(port::PODS, "pod manager")?;
    // G. The engine agent, through exec.
    // TODO(merge) kube-workloads `engine_agent.rs`: Arc::new(ExecEngineAgent::new(client.clone(), config.clone(), exec.clone()))
    let engine: Arc<dyn EngineAgent> = not_assembled(port::ENGINE, "engine agent")?;
    // H. pfsd, through exec.
    // TODO(merge) kube-workloads `pfsd.rs`: Arc::new(ExecPfsdTool::new(config.clone(), exec.clone()))
    let pfsd: Arc<dyn PfsdTool> = not_assembled(port::PFSD, "pfsd tool")?;
    // J. Parameters (ConfigMaps).
    let params: Arc<dyn ParamStore> = Arc::new(KubeParamStore::new(client.clone(), config.clone()));
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

    // TODO(merge): replace with a test that every port is assembled on its adapter.
    #[tokio::test]
    async fn a_port_without_its_adapter_is_an_error_naming_it_never_a_simulator() {
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, "default");

        let err = connect(client, &KubePortsConfig::default()).unwrap_err();

        match &err {
            PortError::Unavailable { port, message } => {
                assert_eq!(*port, port::PODS);
                assert_eq!(message, "pod manager adapter not assembled");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert_eq!(err.to_string(), "pods: pod manager adapter not assembled");
    }
}
