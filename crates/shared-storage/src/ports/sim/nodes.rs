//! L. Nodes and their health.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{port, Simulation};
use crate::ports::{NodeInfo, NodeInventory, PortError};

/// The simulated [`NodeInventory`].
pub(super) struct SimNodeInventory(pub(super) Simulation);

/// `node-1`..`node-4`, available, internal IP `10.0.0.N`, client IP `192.168.0.N`.
pub(super) fn default_nodes() -> BTreeMap<String, NodeInfo> {
    (1..=4)
        .map(|n| {
            let node = NodeInfo {
                name: format!("node-{n}"),
                internal_ip: format!("10.0.0.{n}"),
                client_ip: format!("192.168.0.{n}"),
                available: true,
            };
            (node.name.clone(), node)
        })
        .collect()
}

#[async_trait]
impl NodeInventory for SimNodeInventory {
    async fn nodes(&self) -> Result<Vec<NodeInfo>, PortError> {
        self.0
            .call(port::NODES, "nodes", String::new(), |w| {
                Ok(w.nodes.values().cloned().collect())
            })
            .await
    }
}

impl Simulation {
    /// Every node, by name.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.lock().nodes.values().cloned().collect()
    }

    /// Marks a node healthy or not for instances; returns whether it exists. Pods already
    /// on an unavailable node report `PodLost`; no new pod lands there.
    pub fn set_node_available(&self, name: &str, available: bool) -> bool {
        match self.lock().nodes.get_mut(name) {
            Some(node) => {
                node.available = available;
                true
            }
            None => false,
        }
    }

    /// Adds (or replaces) a node.
    pub fn add_node(&self, node: NodeInfo) {
        self.lock().nodes.insert(node.name.clone(), node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::sim::testing::sim;

    #[tokio::test]
    async fn four_available_nodes_by_default() {
        let sim = sim(1);
        let nodes = sim.ports().nodes.nodes().await.unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(
            nodes[2],
            NodeInfo {
                name: "node-3".into(),
                internal_ip: "10.0.0.3".into(),
                client_ip: "192.168.0.3".into(),
                available: true
            }
        );
        assert!(nodes.iter().all(|n| n.available));
    }

    #[tokio::test]
    async fn node_availability_and_new_nodes_show_in_the_inventory() {
        let sim = sim(1);
        assert!(sim.set_node_available("node-2", false));
        assert!(!sim.set_node_available("node-7", false));
        sim.add_node(NodeInfo {
            name: "node-5".into(),
            internal_ip: "10.0.0.5".into(),
            client_ip: "192.168.0.5".into(),
            available: true,
        });
        let nodes = sim.ports().nodes.nodes().await.unwrap();
        assert_eq!(nodes.len(), 5);
        assert!(!nodes[1].available);
        assert_eq!(sim.nodes(), nodes);
    }
}
