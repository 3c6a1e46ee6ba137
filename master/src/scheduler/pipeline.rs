//! The scheduling pipeline: filters, then scores, built in one place.
//!
//! Order of the filters (cheapest and most often decisive first, so most
//! nodes are rejected early):
//! 1. [`NodeReady`]: not ready or cordoned nodes take nothing.
//! 2. [`ResourcesFit`]: CPU, memory and pod slots, the usual "no".
//! 3. [`NodeSelectorMatches`] and 4. [`RequiredNodeAffinity`]: where the
//!    pod may go at all.
//! 5. [`TaintsTolerated`]: `NoSchedule`/`NoExecute` taints.
//! 6. [`HostPortsFree`]: rarely relevant, checked last.
//!
//! Scores, weighted: allocation (most-allocated by default: bin packing)
//! ×100; preferred node affinity ×100 and `PreferNoSchedule` taints ×100,
//! because a user's stated preference is worth a whole node of packing;
//! spreading an owner's replicas ×1, so it only breaks ties between
//! equally packed nodes (a point of allocation outweighs it entirely).
//!
//! Large clusters are sampled as Kubernetes does: nodes are visited from a
//! rotating start, and scoring begins once enough feasible nodes are found
//! (at least 100, or a tenth of the nodes).

use std::collections::HashMap;

use super::allocation::{Allocation, Strategy};
use super::fit::ResourcesFit;
use super::host_ports::HostPortsFree;
use super::node_affinity::RequiredNodeAffinity;
use super::node_ready::NodeReady;
use super::node_selector::NodeSelectorMatches;
use super::plugin::{Filter, NodeInfo, PodInfo, Score, Verdict};
use super::prefer_no_schedule::PreferNoScheduleTaints;
use super::preferred_affinity::PreferredNodeAffinity;
use super::spread::SpreadReplicas;
use super::taints::TaintsTolerated;

/// Feasible nodes to find before scoring, at least.
const MIN_FEASIBLE: usize = 100;
/// Of the nodes, the fraction (1/N) to find feasible before scoring.
const FEASIBLE_FRACTION: usize = 10;

pub struct Pipeline {
    filters: Vec<Box<dyn Filter>>,
    scores: Vec<(Box<dyn Score>, i64)>,
}

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The index of the chosen node.
    Node(usize),
    /// No node fits; the message says why, per reason and node count.
    Unschedulable(String),
}

impl Pipeline {
    /// The pipeline, in the order explained in the module docs.
    pub fn new(strategy: Strategy) -> Pipeline {
        Pipeline {
            filters: vec![
                Box::new(NodeReady),
                Box::new(ResourcesFit),
                Box::new(NodeSelectorMatches),
                Box::new(RequiredNodeAffinity),
                Box::new(TaintsTolerated),
                Box::new(HostPortsFree),
            ],
            scores: vec![
                (Box::new(Allocation(strategy)), 100),
                (Box::new(PreferredNodeAffinity), 100),
                (Box::new(PreferNoScheduleTaints), 100),
                (Box::new(SpreadReplicas), 1),
            ],
        }
    }

    /// The plugins in order, with the scores' weights.
    pub fn describe(&self) -> String {
        let filters: Vec<&str> = self.filters.iter().map(|f| f.name()).collect();
        let scores: Vec<String> = self.scores.iter().map(|(s, w)| format!("{}x{w}", s.name())).collect();
        format!("filters [{}], scores [{}]", filters.join(", "), scores.join(", "))
    }

    /// Chooses a node for `pod`, visiting `nodes` from `start`.
    pub fn place(&self, pod: &PodInfo, nodes: &[NodeInfo], start: usize) -> Decision {
        let wanted = (nodes.len() / FEASIBLE_FRACTION).max(MIN_FEASIBLE);
        let mut feasible = Vec::new();
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for offset in 0..nodes.len() {
            let index = (start + offset) % nodes.len();
            match self
                .filters
                .iter()
                .map(|f| f.filter(pod, &nodes[index]))
                .find(|v| *v != Verdict::Fits)
            {
                None => {
                    feasible.push(index);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Some(Verdict::Rejected(why)) => {
                    for reason in why {
                        *reasons.entry(reason).or_default() += 1;
                    }
                }
                Some(Verdict::Fits) => unreachable!("filtered out above"),
            }
        }
        if feasible.is_empty() {
            return Decision::Unschedulable(unschedulable_message(nodes.len(), reasons));
        }
        let mut totals = vec![0i64; feasible.len()];
        for (score, weight) in &self.scores {
            let mut raw: Vec<i64> = feasible.iter().map(|i| score.score(pod, &nodes[*i])).collect();
            score.normalize(&mut raw);
            for (total, value) in totals.iter_mut().zip(raw) {
                *total += value * weight;
            }
        }
        // The first best in visiting order wins ties.
        let best = totals
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.cmp(b).then(j.cmp(i)))
            .map_or(0, |(i, _)| i);
        Decision::Node(feasible[best])
    }
}

/// "0/3 nodes are available: 2 Insufficient memory, 1 node(s) had
/// untolerated taint {dedicated: gpu}".
fn unschedulable_message(nodes: usize, reasons: HashMap<String, usize>) -> String {
    if nodes == 0 {
        return "0/0 nodes are available: no nodes are registered".to_string();
    }
    let mut reasons: Vec<(String, usize)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let listed: Vec<String> = reasons
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    format!("0/{nodes} nodes are available: {}", listed.join(", "))
}

#[cfg(test)]
mod tests {
    use bosun_proto::api::Taint;
    use bosun_proto::resources::Usage;

    use super::*;

    fn node(name: &str, cpu: i64, memory_gib: i64) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: true,
            allocatable: Usage {
                cpu_millis: cpu,
                memory_bytes: memory_gib << 30,
                pods: 110,
            },
            ..Default::default()
        }
    }

    fn pod(cpu: i64, memory_gib: i64) -> PodInfo {
        PodInfo {
            requests: Usage {
                cpu_millis: cpu,
                memory_bytes: memory_gib << 30,
                pods: 1,
            },
            ..Default::default()
        }
    }

    #[test]
    fn bin_packing_fills_the_smaller_node_first_and_spreading_spreads() {
        let nodes = vec![node("big", 4000, 8), node("small", 2000, 4)];
        let most = Pipeline::new(Strategy::MostAllocated);
        assert_eq!(most.place(&pod(500, 1), &nodes, 0), Decision::Node(1));
        let least = Pipeline::new(Strategy::LeastAllocated);
        assert_eq!(least.place(&pod(500, 1), &nodes, 0), Decision::Node(0));
    }

    #[test]
    fn ties_go_to_the_node_with_fewer_siblings() {
        let mut nodes = vec![node("a", 2000, 4), node("b", 2000, 4)];
        nodes[0].owners.insert("rs".into(), 1);
        let replica = PodInfo {
            owner: Some("rs".into()),
            ..pod(0, 0)
        };
        assert_eq!(
            Pipeline::new(Strategy::MostAllocated).place(&replica, &nodes, 0),
            Decision::Node(1)
        );
    }

    #[test]
    fn an_unschedulable_pod_gets_every_reason_counted() {
        let mut tainted = node("gpu", 8000, 16);
        tainted.taints.push(Taint {
            key: "dedicated".into(),
            value: "gpu".into(),
            effect: "NoSchedule".into(),
            time_added: None,
        });
        let nodes = vec![node("a", 2000, 1), node("b", 2000, 1), tainted];
        let decision = Pipeline::new(Strategy::MostAllocated).place(&pod(100, 2), &nodes, 0);
        assert_eq!(
            decision,
            Decision::Unschedulable(
                "0/3 nodes are available: 2 Insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}"
                    .into()
            )
        );
    }
}
