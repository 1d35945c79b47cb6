//! Fake nodes: name, InternalIP, labels, taints and the conditions an operator reads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The node condition whose message holds the node's client-network IP.
pub const NODE_CLIENT_IP: &str = "NodeClientIP";
/// The node condition that marks the storage plug-in unavailable (status `True`).
pub const PLUG_IN_STORAGE_UNAVAILABLE: &str = "PlugInStorageUnavailable";
/// The node condition that marks the client network unavailable (status `True`).
pub const NODE_CLIENT_NETWORK_UNAVAILABLE: &str = "NodeClientNetworkUnavailable";
/// The label every node carries with its name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A node to put in a fake cluster.
///
/// ```
/// use test_cluster::node::FakeNode;
///
/// let node = FakeNode::new("node-1")
///     .internal_ip("10.0.0.1")
///     .client_ip("192.168.0.1")
///     .label("node.kubernetes.io/node", "")
///     .to_node();
/// let status = node.status.unwrap();
/// assert_eq!(status.addresses.unwrap()[0].address, "10.0.0.1");
/// assert!(status.conditions.unwrap().iter().any(|c| c.type_ == "NodeClientIP"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FakeNode {
    name: String,
    internal_ip: String,
    labels: BTreeMap<String, String>,
    conditions: Vec<NodeCondition>,
    taints: Vec<Taint>,
    unschedulable: bool,
}

fn condition(type_: &str, status: bool, message: &str) -> NodeCondition {
    NodeCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        message: (!message.is_empty()).then(|| message.to_string()),
        reason: Some(type_.to_string()),
        ..NodeCondition::default()
    }
}

impl FakeNode {
    /// A Ready node named `name`, labelled `kubernetes.io/hostname=<name>`, without an IP.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        FakeNode {
            labels: BTreeMap::from([(HOSTNAME_LABEL.to_string(), name.clone())]),
            conditions: vec![condition("Ready", true, "kubelet is posting ready status")],
            name,
            internal_ip: String::new(),
            taints: Vec::new(),
            unschedulable: false,
        }
    }

    /// The `n`th of a numbered set: `node-<n>`, InternalIP `10.0.0.<n>`, client IP
    /// `192.168.0.<n>`.
    pub fn numbered(n: u8) -> Self {
        FakeNode::new(format!("node-{n}"))
            .internal_ip(format!("10.0.0.{n}"))
            .client_ip(format!("192.168.0.{n}"))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the InternalIP address (`status.addresses`), which pods get as `hostIP`.
    pub fn internal_ip(mut self, ip: impl Into<String>) -> Self {
        self.internal_ip = ip.into();
        self
    }

    /// Sets the `NodeClientIP` condition: status `True`, the IP in its message.
    pub fn client_ip(self, ip: impl Into<String>) -> Self {
        let ip = ip.into();
        self.condition(NODE_CLIENT_IP, true, &ip)
    }

    /// Sets condition `type_` (replacing one of the same type).
    pub fn condition(mut self, type_: &str, status: bool, message: &str) -> Self {
        self.conditions.retain(|c| c.type_ != type_);
        self.conditions.push(condition(type_, status, message));
        self
    }

    /// Marks the storage plug-in unavailable (`PlugInStorageUnavailable=True`).
    pub fn storage_unavailable(self) -> Self {
        self.condition(PLUG_IN_STORAGE_UNAVAILABLE, true, "storage plug-in is down")
    }

    /// Marks the client network unavailable (`NodeClientNetworkUnavailable=True`).
    pub fn client_network_unavailable(self) -> Self {
        self.condition(
            NODE_CLIENT_NETWORK_UNAVAILABLE,
            true,
            "client network is down",
        )
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint (`NoSchedule`, `PreferNoSchedule` or `NoExecute`).
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.taints.push(Taint {
            key: key.to_string(),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect: effect.to_string(),
            time_added: None,
        });
        self
    }

    /// Cordons the node (`spec.unschedulable`).
    pub fn unschedulable(mut self) -> Self {
        self.unschedulable = true;
        self
    }

    /// The Node object.
    pub fn to_node(&self) -> Node {
        let addresses = (!self.internal_ip.is_empty()).then(|| {
            vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.internal_ip.clone(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ]
        });
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                unschedulable: self.unschedulable.then_some(true),
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                addresses,
                conditions: Some(self.conditions.clone()),
                ..NodeStatus::default()
            }),
        }
    }
}
