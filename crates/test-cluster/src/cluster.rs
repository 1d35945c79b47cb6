//! A fake cluster to start a test from: the API server ([`crate::api_server`]) on
//! `kube-fake-client`, nodes, and the test kubelet ([`crate::kubelet`]) running beside it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, NodeCondition, Pod, Secret, Service};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::api_server::{ApiServer, Collection};
use crate::error::ClusterError;
use crate::kubelet::Kubelet;
use crate::node::FakeNode;

/// The default pause between two kubelet passes.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

/// Builds a [`FakeCluster`].
pub struct FakeClusterBuilder {
    builder: kube_fake_client::ClientBuilder,
    nodes: Vec<FakeNode>,
    collections: Vec<(Collection, String, String)>,
    tick: Duration,
    namespace: String,
}

impl std::fmt::Debug for FakeClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeClusterBuilder")
            .field("nodes", &self.nodes)
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

impl Default for FakeClusterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn remember<K: kube::Resource<DynamicType = ()>>(
    collections: &mut Vec<(Collection, String, String)>,
) {
    if let Some(collection) = Collection::of::<K>() {
        collections.push((
            collection,
            K::api_version(&()).into_owned(),
            K::kind(&()).into_owned(),
        ));
    }
}

impl FakeClusterBuilder {
    /// No nodes, a kubelet pass every 10 ms, default namespace `default`. Pods, nodes and
    /// Deployments have status subresources.
    pub fn new() -> Self {
        let builder = kube_fake_client::ClientBuilder::new()
            .with_status_subresource::<Pod>()
            .with_status_subresource::<Node>()
            .with_status_subresource::<Deployment>();
        let mut collections = Vec::new();
        remember::<Pod>(&mut collections);
        remember::<Node>(&mut collections);
        remember::<Deployment>(&mut collections);
        remember::<ConfigMap>(&mut collections);
        remember::<Secret>(&mut collections);
        remember::<Service>(&mut collections);
        FakeClusterBuilder {
            builder,
            nodes: Vec::new(),
            collections,
            tick: DEFAULT_TICK,
            namespace: "default".into(),
        }
    }

    /// Adds a node.
    pub fn node(mut self, node: FakeNode) -> Self {
        self.nodes.push(node);
        self
    }

    /// Adds `node-1` .. `node-<n>` ([`FakeNode::numbered`]), each with the extra `labels`.
    pub fn numbered_nodes(mut self, n: u8, labels: &[(&str, &str)]) -> Self {
        for i in 1..=n {
            let node = labels
                .iter()
                .fold(FakeNode::numbered(i), |node, (k, v)| node.label(*k, *v));
            self.nodes.push(node);
        }
        self
    }

    /// Registers a custom resource type (and remembers its collection for garbage
    /// collection).
    pub fn with_resource<K>(mut self) -> Self
    where
        K: kube::Resource<DynamicType = ()> + 'static,
    {
        self.builder = self.builder.with_resource::<K>();
        remember::<K>(&mut self.collections);
        self
    }

    /// Gives a resource type a status subresource (spec and status written separately).
    pub fn with_status_subresource<K>(mut self) -> Self
    where
        K: kube::Resource<DynamicType = ()> + Serialize + Default + 'static,
    {
        self.builder = self.builder.with_status_subresource::<K>();
        self
    }

    /// Adds an object the cluster starts with.
    pub fn with_object<K>(mut self, object: K) -> Self
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + 'static,
    {
        self.builder = self.builder.with_object(object);
        remember::<K>(&mut self.collections);
        self
    }

    /// Changes the pause between kubelet passes.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Changes the default namespace of [`FakeCluster::client`].
    pub fn default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Builds the API server, creates the nodes and starts the kubelet (which needs a
    /// running Tokio runtime).
    pub async fn build(self) -> Result<FakeCluster, ClusterError> {
        let inner = self.builder.build().await.map_err(ClusterError::Build)?;
        let server = ApiServer::new(inner);
        for (collection, api_version, kind) in self.collections {
            server.remember(collection, &api_version, &kind);
        }
        let client = server.client(&self.namespace);
        let nodes = Api::<Node>::all(client.clone());
        for node in &self.nodes {
            nodes
                .create(&PostParams::default(), &node.to_node())
                .await
                .map_err(ClusterError::api(format!("creating node {}", node.name())))?;
        }
        let (kubelet, task) = Kubelet::start(server.clone(), self.tick);
        Ok(FakeCluster {
            client,
            server,
            kubelet,
            task,
        })
    }
}

/// A fake cluster: API server, nodes and the test kubelet. The kubelet stops when the
/// cluster is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
/// use kube::api::{Api, PostParams};
/// use test_cluster::FakeCluster;
///
/// let cluster = FakeCluster::builder().numbered_nodes(2, &[]).build().await?;
/// let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
/// let mut pod = Pod::default();
/// pod.metadata.name = Some("web".into());
/// pod.spec = Some(PodSpec {
///     containers: vec![Container { name: "app".into(), image: Some("nginx".into()), ..Default::default() }],
///     ..Default::default()
/// });
/// pods.create(&PostParams::default(), &pod).await?;
/// cluster.sync().await?;
/// let pod = pods.get("web").await?;
/// assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node-1"));
/// assert_eq!(pod.status.unwrap().host_ip.as_deref(), Some("10.0.0.1"));
/// # Ok(())
/// # }
/// ```
pub struct FakeCluster {
    client: kube::Client,
    server: ApiServer,
    kubelet: Kubelet,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster").finish_non_exhaustive()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeCluster {
    /// A builder.
    pub fn builder() -> FakeClusterBuilder {
        FakeClusterBuilder::new()
    }

    /// A client of the API server (cheap to clone).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API server.
    pub fn server(&self) -> &ApiServer {
        &self.server
    }

    /// The test kubelet.
    pub fn kubelet(&self) -> &Kubelet {
        &self.kubelet
    }

    /// Runs kubelet passes until the cluster stops changing ([`Kubelet::sync`]).
    pub async fn sync(&self) -> Result<(), ClusterError> {
        self.kubelet.sync().await
    }

    /// Adds a node.
    pub async fn add_node(&self, node: &FakeNode) -> Result<(), ClusterError> {
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node.to_node())
            .await
            .map_err(ClusterError::api(format!("creating node {}", node.name())))?;
        Ok(())
    }

    /// Sets condition `type_` of node `name` (status `True`/`False`, with `message`),
    /// keeping its other conditions.
    pub async fn set_node_condition(
        &self,
        name: &str,
        type_: &str,
        status: bool,
        message: &str,
    ) -> Result<(), ClusterError> {
        let api = Api::<Node>::all(self.client.clone());
        let node = api
            .get(name)
            .await
            .map_err(ClusterError::api(format!("reading node {name}")))?;
        let mut conditions: Vec<NodeCondition> =
            node.status.and_then(|s| s.conditions).unwrap_or_default();
        conditions.retain(|c| c.type_ != type_);
        conditions.push(NodeCondition {
            type_: type_.to_string(),
            status: if status { "True" } else { "False" }.into(),
            reason: Some(type_.to_string()),
            message: (!message.is_empty()).then(|| message.to_string()),
            ..NodeCondition::default()
        });
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "conditions": conditions } })),
        )
        .await
        .map_err(ClusterError::api(format!("writing node {name}")))?;
        Ok(())
    }
}
