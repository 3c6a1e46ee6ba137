//! Score: spread the replicas of one controller over nodes; the node with
//! the fewest of the pod's siblings scores 100. Weighted lightly, it breaks
//! ties between equally packed nodes.

use super::plugin::{normalize_to_100, NodeInfo, PodInfo, Score};

pub struct SpreadReplicas;

impl Score for SpreadReplicas {
    fn name(&self) -> &'static str {
        "SpreadReplicas"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        pod.owner
            .as_ref()
            .and_then(|owner| node.owners.get(owner))
            .map_or(0, |count| i64::from(*count))
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_100(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_with_fewer_siblings_score_higher() {
        let pod = PodInfo {
            owner: Some("rs-1".into()),
            ..Default::default()
        };
        let node = |count| NodeInfo {
            owners: [("rs-1".to_string(), count)].into(),
            ..Default::default()
        };
        let mut scores: Vec<i64> = [0, 2, 4].map(|c| SpreadReplicas.score(&pod, &node(c))).to_vec();
        SpreadReplicas.normalize(&mut scores);
        assert_eq!(scores, vec![100, 50, 0]);
    }
}
