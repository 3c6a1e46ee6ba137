//! Score: fewer untolerated `PreferNoSchedule` taints is better; a node
//! without any scores 100.

use super::plugin::{normalize_to_100, NodeInfo, PodInfo, Score};
use super::taints::untolerated;

pub struct PreferNoScheduleTaints;

impl Score for PreferNoScheduleTaints {
    fn name(&self) -> &'static str {
        "PreferNoScheduleTaints"
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        untolerated(pod, node, &["PreferNoSchedule"]).len() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_100(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::api::Taint;

    use super::*;

    #[test]
    fn untainted_nodes_are_preferred() {
        let spot = NodeInfo {
            taints: vec![Taint {
                key: "spot".into(),
                value: String::new(),
                effect: "PreferNoSchedule".into(),
                time_added: None,
            }],
            ..Default::default()
        };
        let plain = NodeInfo::default();
        let mut scores = vec![
            PreferNoScheduleTaints.score(&PodInfo::default(), &spot),
            PreferNoScheduleTaints.score(&PodInfo::default(), &plain),
        ];
        PreferNoScheduleTaints.normalize(&mut scores);
        assert_eq!(scores, vec![0, 100]);
    }
}
