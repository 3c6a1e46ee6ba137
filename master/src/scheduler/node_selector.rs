//! Filter: the node carries every label of the pod's `nodeSelector`.

use super::plugin::{Filter, NodeInfo, PodInfo, Verdict};

pub struct NodeSelectorMatches;

impl Filter for NodeSelectorMatches {
    fn name(&self) -> &'static str {
        "NodeSelector"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Verdict {
        let matches = pod
            .node_selector
            .iter()
            .all(|(key, value)| node.labels.get(key) == Some(value));
        if matches {
            Verdict::Fits
        } else {
            Verdict::reject("node(s) didn't match Pod's node affinity/selector")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_label_must_match() {
        let node = NodeInfo {
            labels: [
                ("disk".to_string(), "ssd".to_string()),
                ("zone".to_string(), "a".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let cases = [
            (vec![], true),
            (vec![("disk", "ssd")], true),
            (vec![("disk", "ssd"), ("zone", "b")], false),
            (vec![("gpu", "yes")], false),
        ];
        for (selector, fits) in cases {
            let pod = PodInfo {
                node_selector: selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            };
            assert_eq!(
                NodeSelectorMatches.filter(&pod, &node) == Verdict::Fits,
                fits,
                "{selector:?}"
            );
        }
    }
}
