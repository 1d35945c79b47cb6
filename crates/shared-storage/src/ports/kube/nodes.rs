//! L. Nodes, from the Node objects: nothing is asked of the nodes themselves (no SSH).
//!
//! - `internal_ip`: the node's `InternalIP` address.
//! - `client_ip`: the message of condition `NodeClientIP` when its status is `True` and the
//!   message is an IP other than `0.0.0.0`; without one, the internal IP (a node with no
//!   separate client network serves clients on its internal address).
//! - `available`: false while condition `PlugInStorageUnavailable` or
//!   `NodeClientNetworkUnavailable` is `True`; a missing condition counts as healthy.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client};

use super::api_error::port_error;
use super::KubePortsConfig;
use crate::ports::sim::port::NODES;
use crate::ports::{NodeInfo, NodeInventory, PortError};

/// The condition whose message is the node's client-network IP.
pub const CLIENT_IP_CONDITION: &str = "NodeClientIP";
/// The conditions that make a node unavailable for instances while `True`.
pub const UNAVAILABLE_CONDITIONS: [&str; 2] =
    ["PlugInStorageUnavailable", "NodeClientNetworkUnavailable"];

/// The production [`NodeInventory`], on the Node objects.
#[derive(Clone)]
pub struct KubeNodeInventory {
    client: Client,
}

impl std::fmt::Debug for KubeNodeInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeNodeInventory").finish_non_exhaustive()
    }
}

impl KubeNodeInventory {
    /// The inventory on `client`. It needs no settings; `config` is taken for uniformity
    /// with the other adapters.
    pub fn new(client: Client, config: Arc<KubePortsConfig>) -> Self {
        let _ = config;
        KubeNodeInventory { client }
    }
}

/// What the operator needs to know of `node`.
pub fn node_info(node: &Node) -> NodeInfo {
    let status = node.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let is_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    let internal_ip = status
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .unwrap_or_default();
    let client_ip = conditions
        .iter()
        .filter(|c| c.type_ == CLIENT_IP_CONDITION && c.status == "True")
        .filter_map(|c| c.message.as_deref())
        .map(str::trim)
        .find(|m| m.parse::<IpAddr>().is_ok_and(|ip| !ip.is_unspecified()))
        .map_or_else(|| internal_ip.clone(), str::to_owned);
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        internal_ip,
        client_ip,
        available: !UNAVAILABLE_CONDITIONS.iter().any(|c| is_true(c)),
    }
}

#[async_trait]
impl NodeInventory for KubeNodeInventory {
    async fn nodes(&self) -> Result<Vec<NodeInfo>, PortError> {
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| port_error(NODES, "nodes", e))?;
        let mut out: Vec<NodeInfo> = nodes.items.iter().map(node_info).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::kube::fake_api::{fake_api, json, node};

    #[tokio::test]
    async fn client_ip_and_availability_come_from_the_node_conditions() {
        let (client, _) = fake_api(vec![
            json(&node(
                "node-2",
                "10.0.0.2",
                &[
                    ("Ready", "True", ""),
                    (CLIENT_IP_CONDITION, "True", "192.168.0.2"),
                    ("PlugInStorageUnavailable", "True", "multipath down"),
                ],
            )),
            json(&node(
                "node-1",
                "10.0.0.1",
                &[
                    (CLIENT_IP_CONDITION, "True", "192.168.0.1"),
                    ("PlugInStorageUnavailable", "False", ""),
                    ("NodeClientNetworkUnavailable", "False", ""),
                ],
            )),
            json(&node(
                "node-3",
                "10.0.0.3",
                &[("NodeClientNetworkUnavailable", "True", "")],
            )),
        ])
        .await;
        let nodes = KubeNodeInventory::new(client, Arc::default())
            .nodes()
            .await
            .unwrap();
        assert_eq!(
            nodes,
            vec![
                NodeInfo {
                    name: "node-1".into(),
                    internal_ip: "10.0.0.1".into(),
                    client_ip: "192.168.0.1".into(),
                    available: true,
                },
                NodeInfo {
                    name: "node-2".into(),
                    internal_ip: "10.0.0.2".into(),
                    client_ip: "192.168.0.2".into(),
                    available: false,
                },
                NodeInfo {
                    name: "node-3".into(),
                    internal_ip: "10.0.0.3".into(),
                    client_ip: "10.0.0.3".into(),
                    available: false,
                },
            ]
        );
    }

    #[test]
    fn a_client_ip_condition_that_is_false_unspecified_or_not_an_ip_is_ignored() {
        for (status, message) in [
            ("False", "192.168.0.9"),
            ("True", "0.0.0.0"),
            ("True", "n/a"),
        ] {
            let n = node_info(&node(
                "n",
                "10.0.0.9",
                &[(CLIENT_IP_CONDITION, status, message)],
            ));
            assert_eq!(n.client_ip, "10.0.0.9", "{status} {message}");
            assert!(n.available);
        }
        let bare = node_info(&Node::default());
        assert_eq!((bare.internal_ip.as_str(), bare.available), ("", true));
    }
}
