//! Label selectors and node selector terms, evaluated as the API server and the scheduler
//! do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `labels` match `selector` (`matchLabels` and `matchExpressions` with `In`,
/// `NotIn`, `Exists`, `DoesNotExist`). An empty selector matches everything; an unknown
/// operator matches nothing.
pub fn matches_selector(labels: &BTreeMap<String, String>, selector: &LabelSelector) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

fn requirement_matches(value: Option<&String>, r: &NodeSelectorRequirement) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => match (
            value.and_then(|v| number(v)),
            values.first().and_then(|v| number(v)),
        ) {
            (Some(v), Some(bound)) => v > bound,
            _ => false,
        },
        "Lt" => match (
            value.and_then(|v| number(v)),
            values.first().and_then(|v| number(v)),
        ) {
            (Some(v), Some(bound)) => v < bound,
            _ => false,
        },
        _ => false,
    }
}

/// Whether a node with `name` and `labels` matches one node selector term (its
/// `matchExpressions` on labels and `matchFields` on `metadata.name`, all ANDed). A term
/// with no requirement matches nothing, as in Kubernetes.
pub fn matches_node_term(
    name: &str,
    labels: &BTreeMap<String, String>,
    term: &NodeSelectorTerm,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let name = name.to_string();
    expressions
        .iter()
        .all(|r| requirement_matches(labels.get(&r.key), r))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(&name);
            requirement_matches(value, r)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| (*v).to_string()).collect()),
        }
    }

    #[test]
    fn a_selector_needs_every_label_and_expression() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "cm")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert!(matches_selector(&labels(&[("app", "cm")]), &sel));
        assert!(!matches_selector(
            &labels(&[("app", "cm"), ("tier", "db")]),
            &sel
        ));
        assert!(!matches_selector(&labels(&[("app", "x")]), &sel));
        assert!(matches_selector(&labels(&[]), &LabelSelector::default()));
    }

    #[test]
    fn node_terms_and_their_requirements() {
        let node = labels(&[("kubernetes.io/hostname", "n1"), ("cores", "8")]);
        let term = |reqs: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
            match_expressions: Some(reqs),
            match_fields: None,
        };
        assert!(matches_node_term(
            "n1",
            &node,
            &term(vec![req("kubernetes.io/hostname", "In", &["n1"])])
        ));
        assert!(!matches_node_term(
            "n1",
            &node,
            &term(vec![req("kubernetes.io/hostname", "NotIn", &["n1", "n2"])])
        ));
        assert!(matches_node_term(
            "n1",
            &node,
            &term(vec![req("maint", "DoesNotExist", &[])])
        ));
        assert!(!matches_node_term(
            "n1",
            &node,
            &term(vec![req("maint", "Exists", &[])])
        ));
        assert!(matches_node_term(
            "n1",
            &node,
            &term(vec![req("cores", "Gt", &["4"])])
        ));
        assert!(!matches_node_term(
            "n1",
            &node,
            &term(vec![req("cores", "Lt", &["4"])])
        ));
        assert!(!matches_node_term("n1", &node, &term(vec![])));
        let by_field = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
        };
        assert!(matches_node_term("n1", &node, &by_field));
        assert!(!matches_node_term("n2", &node, &by_field));
    }
}
