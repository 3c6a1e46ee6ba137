//! Score: the sum of the weights of the pod's preferred node-affinity terms
//! the node matches, scaled so the best node scores 100.

use super::node_affinity::term_matches;
use super::plugin::{normalize_to_100, NodeInfo, PodInfo, Score};

pub struct PreferredNodeAffinity;

impl Score for PreferredNodeAffinity {
    fn name(&self) -> &'static str {
        "PreferredNodeAffinity"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        pod.preferred_affinity
            .iter()
            .filter(|p| p.preference.as_ref().is_some_and(|t| term_matches(t, &node.labels)))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_100(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::api::{NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm};

    use super::*;

    #[test]
    fn matching_preferences_add_their_weights() {
        let prefer = |key: &str, weight| PreferredSchedulingTerm {
            weight,
            preference: Some(NodeSelectorTerm {
                match_expressions: vec![NodeSelectorRequirement {
                    key: key.into(),
                    operator: "Exists".into(),
                    values: vec![],
                }],
            }),
        };
        let pod = PodInfo {
            preferred_affinity: vec![prefer("ssd", 80), prefer("fast-net", 20)],
            ..Default::default()
        };
        let node = |labels: &[&str]| NodeInfo {
            labels: labels.iter().map(|l| (l.to_string(), "yes".to_string())).collect(),
            ..Default::default()
        };
        let mut scores: Vec<i64> = [node(&["ssd", "fast-net"]), node(&["ssd"]), node(&[])]
            .iter()
            .map(|n| PreferredNodeAffinity.score(&pod, n))
            .collect();
        assert_eq!(scores, vec![100, 80, 0]);
        PreferredNodeAffinity.normalize(&mut scores);
        assert_eq!(scores, vec![100, 80, 0]);
    }
}
