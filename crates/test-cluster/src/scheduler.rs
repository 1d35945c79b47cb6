//! Where the test kubelet places a pod: the scheduler's filters that matter to operators,
//! then the least-loaded feasible node (ties broken by name, so placement is
//! deterministic).
//!
//! Filters: `spec.unschedulable`; `nodeSelector`; required node affinity (terms ORed,
//! requirements ANDed: `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`, and
//! `matchFields` on `metadata.name`); `NoSchedule`/`NoExecute` taints against the pod's
//! tolerations; host ports (a host-network pod's container ports are host ports); required
//! pod anti-affinity on any topology key. Preferred terms and pod affinity are not
//! evaluated.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use crate::node::HOSTNAME_LABEL;
use crate::selector::{matches_node_term, matches_selector};

/// What the scheduler needs of a node.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeView {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) internal_ip: String,
    unschedulable: bool,
    taints: Vec<Taint>,
}

impl NodeView {
    pub(crate) fn of(node: &Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut labels = node.metadata.labels.clone().unwrap_or_default();
        labels
            .entry(HOSTNAME_LABEL.to_string())
            .or_insert_with(|| name.clone());
        let internal_ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        NodeView {
            name,
            labels,
            internal_ip,
            unschedulable: spec.unschedulable.unwrap_or(false),
            taints: spec.taints.unwrap_or_default(),
        }
    }
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// `(port, protocol)` pairs a pod takes on its node.
fn host_ports(pod: &Pod) -> BTreeSet<(i32, String)> {
    let Some(spec) = pod.spec.as_ref() else {
        return BTreeSet::new();
    };
    let host_network = spec.host_network.unwrap_or(false);
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = if host_network {
                Some(p.host_port.unwrap_or(p.container_port))
            } else {
                p.host_port
            };
            port.filter(|p| *p > 0)
                .map(|port| (port, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
        })
        .collect()
}

fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let key_ok = t
            .key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == taint.key);
        let op = t.operator.as_deref().unwrap_or("Equal");
        let value_ok = op == "Exists"
            || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("");
        // An empty key with operator Exists tolerates everything.
        effect_ok && key_ok && value_ok
    })
}

/// Why `node` cannot take `pod`, or `None` when it can. `pods` are every pod of the
/// cluster.
pub(crate) fn unfit(
    pod: &Pod,
    node: &NodeView,
    pods: &[Pod],
    nodes: &[NodeView],
) -> Option<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    if node.unschedulable {
        return Some("node is unschedulable".into());
    }
    if let Some(selector) = &spec.node_selector {
        if selector.iter().any(|(k, v)| node.labels.get(k) != Some(v)) {
            return Some("node didn't match Pod's node selector".into());
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(required) = required {
        if !required
            .node_selector_terms
            .iter()
            .any(|term| matches_node_term(&node.name, &node.labels, term))
        {
            return Some("node didn't match Pod's node affinity".into());
        }
    }
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    if let Some(taint) = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerates(&tolerations, t))
    {
        return Some(format!("node had untolerated taint {{{}}}", taint.key));
    }
    let me = pod_key(pod);
    let neighbours: Vec<&Pod> = pods
        .iter()
        .filter(|p| node_of(p) == Some(node.name.as_str()) && pod_key(p) != me && is_active(p))
        .collect();
    let wanted = host_ports(pod);
    if let Some(taken) = neighbours
        .iter()
        .flat_map(|p| host_ports(p))
        .find(|port| wanted.contains(port))
    {
        return Some(format!(
            "node didn't have free port {}/{}",
            taken.0, taken.1
        ));
    }
    let anti = spec
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .clone()
        })
        .unwrap_or_default();
    let namespace = me.0.clone();
    for term in anti {
        let Some(domain) = node.labels.get(&term.topology_key) else {
            continue;
        };
        let same_domain: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| n.labels.get(&term.topology_key) == Some(domain))
            .map(|n| n.name.as_str())
            .collect();
        let namespaces = term
            .namespaces
            .clone()
            .unwrap_or_else(|| vec![namespace.clone()]);
        let selector = term.label_selector.clone().unwrap_or_default();
        let conflict = pods.iter().any(|p| {
            pod_key(p) != me
                && is_active(p)
                && node_of(p).is_some_and(|n| same_domain.contains(n))
                && namespaces.contains(&p.metadata.namespace.clone().unwrap_or_default())
                && matches_selector(&p.metadata.labels.clone().unwrap_or_default(), &selector)
        });
        if conflict {
            return Some("node didn't satisfy existing pods anti-affinity rules".into());
        }
    }
    None
}

/// The node for `pod`: the feasible node with the fewest pods, then the first by name; or
/// the scheduler's message when none fits (`0/N nodes are available: ...`).
pub(crate) fn choose(pod: &Pod, nodes: &[NodeView], pods: &[Pod]) -> Result<String, String> {
    let mut reasons = BTreeMap::<String, usize>::new();
    let mut best: Option<(usize, &str)> = None;
    for node in nodes {
        match unfit(pod, node, pods, nodes) {
            Some(reason) => *reasons.entry(reason).or_default() += 1,
            None => {
                let load = pods
                    .iter()
                    .filter(|p| node_of(p) == Some(node.name.as_str()) && is_active(p))
                    .count();
                let candidate = (load, node.name.as_str());
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None => {
            let details: Vec<String> = reasons
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            Err(format!(
                "0/{} nodes are available: {}.",
                nodes.len(),
                if details.is_empty() {
                    "no nodes".to_string()
                } else {
                    details.join(", ")
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::FakeNode;
    use k8s_openapi::api::core::v1::{
        Affinity, Container, ContainerPort, NodeAffinity, NodeSelector, NodeSelectorRequirement,
        NodeSelectorTerm, PodAffinityTerm, PodAntiAffinity, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn nodes(n: u8) -> Vec<NodeView> {
        (1..=n)
            .map(|i| NodeView::of(&FakeNode::numbered(i).to_node()))
            .collect()
    }

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    fn on(mut pod: Pod, node: &str) -> Pod {
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(node.into());
        }
        pod
    }

    fn hostname(op: &str, values: &[&str]) -> Affinity {
        Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: op.into(),
                            values: Some(values.iter().map(|v| (*v).to_string()).collect()),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        }
    }

    fn with_affinity(mut pod: Pod, affinity: Affinity) -> Pod {
        if let Some(spec) = pod.spec.as_mut() {
            spec.affinity = Some(affinity);
        }
        pod
    }

    #[test]
    fn a_pod_goes_to_the_least_loaded_node_first_by_name() {
        let nodes = nodes(3);
        let existing = vec![on(pod("a"), "node-1")];
        assert_eq!(choose(&pod("b"), &nodes, &existing).unwrap(), "node-2");
        assert_eq!(choose(&pod("b"), &nodes, &[]).unwrap(), "node-1");
    }

    #[test]
    fn hostname_in_pins_and_not_in_excludes() {
        let nodes = nodes(3);
        let pinned = with_affinity(pod("p"), hostname("In", &["node-3"]));
        assert_eq!(choose(&pinned, &nodes, &[]).unwrap(), "node-3");
        let excluded = with_affinity(pod("p"), hostname("NotIn", &["node-1", "node-2"]));
        assert_eq!(choose(&excluded, &nodes, &[]).unwrap(), "node-3");
        let nowhere = with_affinity(pod("p"), hostname("NotIn", &["node-1", "node-2", "node-3"]));
        let message = choose(&nowhere, &nodes, &[]).unwrap_err();
        assert!(message.starts_with("0/3 nodes are available"), "{message}");
        assert!(message.contains("node affinity"), "{message}");
    }

    #[test]
    fn node_selector_taints_and_cordons_filter_nodes() {
        let nodes = vec![
            NodeView::of(&FakeNode::new("a").unschedulable().to_node()),
            NodeView::of(
                &FakeNode::new("b")
                    .taint("dedicated", "db", "NoSchedule")
                    .to_node(),
            ),
            NodeView::of(&FakeNode::new("c").label("tier", "db").to_node()),
            NodeView::of(&FakeNode::new("d").to_node()),
        ];
        let mut selected = pod("p");
        if let Some(spec) = selected.spec.as_mut() {
            spec.node_selector = Some(BTreeMap::from([("tier".into(), "db".into())]));
        }
        assert_eq!(choose(&selected, &nodes, &[]).unwrap(), "c");
        let plain = pod("p");
        assert_eq!(
            unfit(&plain, &nodes[1], &[], &nodes).unwrap(),
            "node had untolerated taint {dedicated}"
        );
        let mut tolerant = pod("p");
        if let Some(spec) = tolerant.spec.as_mut() {
            spec.tolerations = Some(vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            }]);
        }
        assert_eq!(unfit(&tolerant, &nodes[1], &[], &nodes), None);
        assert!(unfit(&plain, &nodes[0], &[], &nodes).is_some());
    }

    #[test]
    fn host_network_ports_conflict_on_a_node() {
        let nodes = nodes(2);
        let with_port = |name: &str| {
            let mut p = pod(name);
            if let Some(spec) = p.spec.as_mut() {
                spec.host_network = Some(true);
                spec.containers[0].ports = Some(vec![ContainerPort {
                    container_port: 5432,
                    ..ContainerPort::default()
                }]);
            }
            p
        };
        let existing = vec![
            on(with_port("a"), "node-1"),
            on(pod("x"), "node-2"),
            on(pod("y"), "node-2"),
        ];
        // node-2 is busier but node-1 has the port taken.
        assert_eq!(
            choose(&with_port("b"), &nodes, &existing).unwrap(),
            "node-2"
        );
    }

    #[test]
    fn required_anti_affinity_keeps_pods_apart() {
        let nodes = nodes(2);
        let mut rw = on(pod("rw"), "node-1");
        rw.metadata.labels = Some(BTreeMap::from([("role".into(), "rw".into())]));
        let anti = Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([("role".into(), "rw".into())])),
                        ..LabelSelector::default()
                    }),
                    topology_key: HOSTNAME_LABEL.into(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAntiAffinity::default()
            }),
            ..Affinity::default()
        };
        let cm = with_affinity(pod("cm"), anti);
        let existing = vec![rw, on(pod("o1"), "node-2"), on(pod("o2"), "node-2")];
        assert_eq!(choose(&cm, &nodes, &existing).unwrap(), "node-2");
    }
}
