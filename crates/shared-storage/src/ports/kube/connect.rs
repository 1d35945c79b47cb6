//! [`connect`]: every port on its production adapter, assembled over one `kube::Client`.
//!
//! The adapters compose through the port traits: the pod adapter takes the node inventory
//! as an `Arc<dyn NodeInventory>`, the cluster-manager adapter its HTTP side as an
//! `Arc<dyn CmApi>`, the engine agent and pfsd adapters a `PodExec`. So the order below is:
//! the shared pieces first (HTTP client, exec), then the ports that others take, then the
//! rest. No port ever falls back to a simulator: a port without its adapter is an error.

use std::sync::Arc;

use super::KubePortsConfig;
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
    // TODO(merge): the adapters below take these; drop this line once they do.
    let _ = (&client, &config);

    // Shared pieces.
    // TODO(merge) kube-http `http.rs`: the reqwest client with config.http_* timeouts and
    //   bounded retries, shared by the SMS and CM clients.
    // TODO(merge) kube-workloads `exec.rs`: `Arc<dyn PodExec>` on the Kubernetes exec API
    //   (`KubePodExec::new(client.clone(), config.clone())`).

    // L. Nodes (the pod adapter takes it).
    // TODO(merge) kube-objects `nodes.rs`: Arc::new(KubeNodeInventory::new(client.clone(), config.clone()))
    let nodes: Arc<dyn NodeInventory> = not_assembled(port::NODES, "node inventory")?;
    // A. The MPDCluster objects.
    // TODO(merge) kube-objects `cluster_store.rs`: Arc::new(KubeClusterStore::new(client.clone(), config.clone()))
    let clusters: Arc<dyn ClusterStore> = not_assembled(port::CLUSTERS, "cluster store")?;
    // B. Ids.
    // TODO(merge) kube-objects `ids.rs`: Arc::new(KubeIdAllocator::new(client.clone(), config.clone()))
    let ids: Arc<dyn IdAllocator> = not_assembled(port::IDS, "id allocator")?;
    // C. Host ports.
    // TODO(merge) kube-objects `port_allocator.rs`: Arc::new(KubePortAllocator::new(client.clone(), config.clone()))
    let ports: Arc<dyn PortAllocator> = not_assembled(port::PORTS, "port allocator")?;
    // D. The storage manager (SMS).
    // TODO(merge) kube-http `storage.rs`: Arc::new(SmsStorageManager::new(client.clone(), config.clone(), http.clone()))
    let storage: Arc<dyn StorageManager> = not_assembled(port::STORAGE, "storage manager")?;
    // E. The cluster manager: its HTTP API (`cm_http.rs`, `Arc<dyn CmApi>`) behind the
    //    Kubernetes side (`cluster_manager.rs`).
    // TODO(merge) kube-http `cm_http.rs` + `cluster_manager.rs`:
    //   Arc::new(KubeClusterManager::new(client.clone(), config.clone(), Arc::new(HttpCmApi::new(...)), nodes.clone()))
    let cluster_manager: Arc<dyn ClusterManager> =
        not_assembled(port::CLUSTER_MANAGER, "cluster manager")?;
    // F. Instance pods.
    // TODO(merge) kube-workloads `pods.rs`: Arc::new(KubePodManager::new(client.clone(), config.clone(), nodes.clone()))
    let pods: Arc<dyn PodManager> = not_assembled(port::PODS, "pod manager")?;
    // G. The engine agent, through exec.
    // TODO(merge) kube-workloads `engine_agent.rs`: Arc::new(ExecEngineAgent::new(client.clone(), config.clone(), exec.clone()))
    let engine: Arc<dyn EngineAgent> = not_assembled(port::ENGINE, "engine agent")?;
    // H. pfsd, through exec.
    // TODO(merge) kube-workloads `pfsd.rs`: Arc::new(ExecPfsdTool::new(config.clone(), exec.clone()))
    let pfsd: Arc<dyn PfsdTool> = not_assembled(port::PFSD, "pfsd tool")?;
    // I. Accounts (Secrets).
    // TODO(merge) kube-objects `accounts.rs`: Arc::new(KubeAccountStore::new(client.clone(), config.clone()))
    let accounts: Arc<dyn AccountStore> = not_assembled(port::ACCOUNTS, "account store")?;
    // J. Parameters (ConfigMaps).
    // TODO(merge) kube-objects `params.rs`: Arc::new(KubeParamStore::new(client.clone(), config.clone()))
    let params: Arc<dyn ParamStore> = not_assembled(port::PARAMS, "parameter store")?;
    // K. Classes and minor versions (ConfigMaps).
    // TODO(merge) kube-objects `catalog.rs`: Arc::new(KubeClassCatalog::new(client.clone(), config.clone()))
    let classes: Arc<dyn ClassCatalog> = not_assembled(port::CLASSES, "class catalog")?;
    // TODO(merge) kube-objects `catalog.rs`: Arc::new(KubeVersionCatalog::new(client.clone(), config.clone()))
    let versions: Arc<dyn VersionCatalog> = not_assembled(port::VERSIONS, "version catalog")?;

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
                assert_eq!(*port, port::NODES);
                assert_eq!(message, "node inventory adapter not assembled");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "nodes: node inventory adapter not assembled"
        );
    }
}
