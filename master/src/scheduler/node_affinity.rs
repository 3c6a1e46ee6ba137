//! Filter: the node matches the pod's required node affinity (any term;
//! every requirement of a term), and node-selector term matching shared
//! with the preferred-affinity score.

use std::collections::HashMap;

use bosun_proto::api::{NodeSelectorRequirement, NodeSelectorTerm};

use super::plugin::{Filter, NodeInfo, PodInfo, Verdict};

pub struct RequiredNodeAffinity;

/// Whether `labels` satisfy one requirement (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt`, `Lt`).
fn requirement_matches(requirement: &NodeSelectorRequirement, labels: &HashMap<String, String>) -> bool {
    let value = labels.get(&requirement.key);
    let number = |v: &str| v.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| requirement.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !requirement.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(|v| number(v)), requirement.values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(|v| number(v)), requirement.values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

/// Whether `labels` satisfy every requirement of `term`; an empty term
/// matches nothing, as in Kubernetes.
pub fn term_matches(term: &NodeSelectorTerm, labels: &HashMap<String, String>) -> bool {
    !term.match_expressions.is_empty() && term.match_expressions.iter().all(|r| requirement_matches(r, labels))
}

impl Filter for RequiredNodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Verdict {
        let Some(required) = &pod.required_affinity else {
            return Verdict::Fits;
        };
        if required
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, &node.labels))
        {
            Verdict::Fits
        } else {
            Verdict::reject("node(s) didn't match Pod's node affinity/selector")
        }
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::api::NodeSelector;

    use super::*;

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators_match_as_in_kubernetes() {
        let labels: HashMap<String, String> = [("zone", "a"), ("cores", "8")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cases = [
            (requirement("zone", "In", &["a", "b"]), true),
            (requirement("zone", "In", &["c"]), false),
            (requirement("zone", "NotIn", &["c"]), true),
            (requirement("gpu", "NotIn", &["x"]), true),
            (requirement("zone", "Exists", &[]), true),
            (requirement("gpu", "Exists", &[]), false),
            (requirement("gpu", "DoesNotExist", &[]), true),
            (requirement("cores", "Gt", &["4"]), true),
            (requirement("cores", "Lt", &["4"]), false),
            (requirement("zone", "Gt", &["4"]), false),
        ];
        for (req, expected) in cases {
            assert_eq!(requirement_matches(&req, &labels), expected, "{req:?}");
        }
    }

    #[test]
    fn terms_are_ored_and_requirements_anded() {
        let node = NodeInfo {
            labels: [
                ("zone".to_string(), "a".to_string()),
                ("disk".to_string(), "hdd".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let term = |reqs: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
            match_expressions: reqs,
        };
        let pod = |terms: Vec<NodeSelectorTerm>| PodInfo {
            required_affinity: Some(NodeSelector {
                node_selector_terms: terms,
            }),
            ..Default::default()
        };
        let ssd_in_a = term(vec![
            requirement("zone", "In", &["a"]),
            requirement("disk", "In", &["ssd"]),
        ]);
        let in_a = term(vec![requirement("zone", "In", &["a"])]);
        assert_ne!(
            RequiredNodeAffinity.filter(&pod(vec![ssd_in_a.clone()]), &node),
            Verdict::Fits
        );
        assert_eq!(
            RequiredNodeAffinity.filter(&pod(vec![ssd_in_a, in_a]), &node),
            Verdict::Fits
        );
        assert_ne!(
            RequiredNodeAffinity.filter(&pod(vec![term(vec![])]), &node),
            Verdict::Fits
        );
        assert_eq!(RequiredNodeAffinity.filter(&PodInfo::default(), &node), Verdict::Fits);
    }
}
