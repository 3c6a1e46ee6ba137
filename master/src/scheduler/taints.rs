//! Filter: every `NoSchedule` and `NoExecute` taint of the node is
//! tolerated by the pod; and toleration matching shared with the
//! `PreferNoSchedule` score.

use bosun_proto::api::{Taint, Toleration};

use super::plugin::{Filter, NodeInfo, PodInfo, Verdict};

pub struct TaintsTolerated;

/// Whether `toleration` tolerates `taint`, as Kubernetes decides.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if !toleration.effect.is_empty() && toleration.effect != taint.effect {
        return false;
    }
    match toleration.operator.as_str() {
        "Exists" => toleration.key.is_empty() || toleration.key == taint.key,
        _ => toleration.key == taint.key && toleration.value == taint.value,
    }
}

/// Taints of `effect` on the node that the pod does not tolerate.
pub fn untolerated<'a>(pod: &PodInfo, node: &'a NodeInfo, effects: &[&str]) -> Vec<&'a Taint> {
    node.taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .filter(|t| !pod.tolerations.iter().any(|tol| tolerates(tol, t)))
        .collect()
}

impl Filter for TaintsTolerated {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Verdict {
        match untolerated(pod, node, &["NoSchedule", "NoExecute"]).first() {
            None => Verdict::Fits,
            Some(taint) => {
                let value = if taint.value.is_empty() {
                    String::new()
                } else {
                    format!(": {}", taint.value)
                };
                Verdict::reject(format!("node(s) had untolerated taint {{{}{value}}}", taint.key))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: key.into(),
            operator: operator.into(),
            value: value.into(),
            effect: effect.into(),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_as_in_kubernetes() {
        let gpu = taint("dedicated", "gpu", "NoSchedule");
        let cases = [
            (toleration("dedicated", "Equal", "gpu", "NoSchedule"), true),
            (toleration("dedicated", "", "gpu", ""), true),
            (toleration("dedicated", "Equal", "web", ""), false),
            (toleration("dedicated", "Exists", "", ""), true),
            (toleration("", "Exists", "", ""), true),
            (toleration("dedicated", "Exists", "", "NoExecute"), false),
            (toleration("other", "Exists", "", ""), false),
        ];
        for (tol, expected) in cases {
            assert_eq!(tolerates(&tol, &gpu), expected, "{tol:?}");
        }
    }

    #[test]
    fn untolerated_no_schedule_taints_keep_pods_away() {
        let node = NodeInfo {
            taints: vec![
                taint("dedicated", "gpu", "NoSchedule"),
                taint("spot", "", "PreferNoSchedule"),
            ],
            ..Default::default()
        };
        assert_eq!(
            TaintsTolerated.filter(&PodInfo::default(), &node),
            Verdict::reject("node(s) had untolerated taint {dedicated: gpu}")
        );
        let tolerant = PodInfo {
            tolerations: vec![toleration("dedicated", "Equal", "gpu", "NoSchedule")],
            ..Default::default()
        };
        assert_eq!(
            TaintsTolerated.filter(&tolerant, &node),
            Verdict::Fits,
            "PreferNoSchedule does not filter"
        );
    }
}
