//! Property tests of the placement logic: random nodes and random
//! workloads, placed as the scheduler places them.

use bosun_proto::api::{Taint, Toleration};
use bosun_proto::resources::Usage;
use proptest::prelude::*;

use super::allocation::Strategy as Scoring;
use super::pipeline::{Decision, Pipeline};
use super::plugin::{NodeInfo, PodInfo};
use super::taints::tolerates;

fn node_strategy() -> impl Strategy<Value = NodeInfo> {
    (
        1000i64..8000,
        1i64..16,
        1i64..12,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.1),
        0usize..3,
        prop::bool::weighted(0.3),
    )
        .prop_map(|(cpu, gib, pods, ready, cordoned, zone, tainted)| NodeInfo {
            name: String::new(),
            labels: [("zone".to_string(), ["a", "b", "c"][zone].to_string())].into(),
            taints: if tainted {
                vec![Taint {
                    key: "dedicated".into(),
                    value: "gpu".into(),
                    effect: "NoSchedule".into(),
                    time_added: None,
                }]
            } else {
                vec![]
            },
            ready,
            unschedulable: cordoned,
            allocatable: Usage {
                cpu_millis: cpu,
                memory_bytes: gib << 30,
                pods,
            },
            ..Default::default()
        })
}

fn pod_strategy() -> impl Strategy<Value = PodInfo> {
    (
        0i64..3000,
        0i64..(6 << 30),
        prop::option::of(0usize..3),
        prop::bool::weighted(0.3),
        0u8..3,
    )
        .prop_map(|(cpu, memory, zone, tolerant, owner)| PodInfo {
            requests: Usage {
                cpu_millis: cpu,
                memory_bytes: memory,
                pods: 1,
            },
            node_selector: zone
                .map(|z| [("zone".to_string(), ["a", "b", "c"][z].to_string())].into())
                .unwrap_or_default(),
            tolerations: if tolerant {
                vec![Toleration {
                    key: "dedicated".into(),
                    operator: "Exists".into(),
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            owner: Some(format!("rs-{owner}")),
            ..Default::default()
        })
}

/// An independent statement of "this node can take this pod".
fn could_take(node: &NodeInfo, pod: &PodInfo) -> bool {
    node.ready
        && !node.unschedulable
        && (node.requested + pod.requests).fits(&node.allocatable)
        && pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
        && node
            .taints
            .iter()
            .all(|t| pod.tolerations.iter().any(|tol| tolerates(tol, t)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn placements_never_overcommit_and_every_refusal_is_true(
        mut nodes in prop::collection::vec(node_strategy(), 1..8),
        pods in prop::collection::vec(pod_strategy(), 1..80),
        most in any::<bool>(),
    ) {
        for (i, node) in nodes.iter_mut().enumerate() {
            node.name = format!("n{i}");
        }
        let pipeline = Pipeline::new(if most { Scoring::MostAllocated } else { Scoring::LeastAllocated });
        let mut refused = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            match pipeline.place(pod, &nodes, i) {
                Decision::Node(index) => {
                    prop_assert!(could_take(&nodes[index], pod), "placed on a node that cannot take it");
                    nodes[index].requested += pod.requests;
                }
                Decision::Unschedulable(message) => {
                    let prefix = format!("0/{} nodes are available: ", nodes.len());
                    prop_assert!(message.starts_with(&prefix), "{message}");
                    refused.push(pod.clone());
                }
            }
        }
        for node in &nodes {
            prop_assert!(node.requested.fits(&node.allocatable), "{} overcommitted: {:?} > {:?}", node.name, node.requested, node.allocatable);
        }
        // Nodes only fill up, so a pod refused then fits nowhere now either.
        for pod in &refused {
            prop_assert!(nodes.iter().all(|n| !could_take(n, pod)), "a refused pod fits somewhere: {pod:?}");
        }
    }
}
