//! Filter: the node's allocatable CPU, memory and pod slots minus what its
//! pods request leave room for the pod's requests.

use super::plugin::{Filter, NodeInfo, PodInfo, Verdict};

pub struct ResourcesFit;

impl Filter for ResourcesFit {
    fn name(&self) -> &'static str {
        "ResourcesFit"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Verdict {
        let wanted = node.requested + pod.requests;
        if wanted.fits(&node.allocatable) {
            return Verdict::Fits;
        }
        Verdict::Rejected(
            wanted
                .exceeded(&node.allocatable)
                .into_iter()
                .map(|dimension| match dimension {
                    "pods" => "Too many pods".to_string(),
                    other => format!("Insufficient {other}"),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::resources::Usage;

    use super::*;

    fn usage(cpu_millis: i64, memory_bytes: i64, pods: i64) -> Usage {
        Usage {
            cpu_millis,
            memory_bytes,
            pods,
        }
    }

    #[test]
    fn room_is_allocatable_minus_requested() {
        let node = NodeInfo {
            allocatable: usage(2000, 4 << 30, 10),
            requested: usage(1500, 1 << 30, 9),
            ..Default::default()
        };
        let cases = [
            (usage(500, 1 << 30, 1), Verdict::Fits),
            (usage(501, 1 << 30, 1), Verdict::reject("Insufficient cpu")),
            (usage(0, 3 << 30, 1), Verdict::Fits),
            (
                usage(600, (3 << 30) + 1, 2),
                Verdict::Rejected(vec![
                    "Insufficient cpu".into(),
                    "Insufficient memory".into(),
                    "Too many pods".into(),
                ]),
            ),
        ];
        for (requests, expected) in cases {
            let pod = PodInfo {
                requests,
                ..Default::default()
            };
            assert_eq!(ResourcesFit.filter(&pod, &node), expected, "{requests:?}");
        }
    }
}
