//! Score: how allocated the node would be with the pod, averaged over CPU
//! and memory. `MostAllocated` (bin packing, the default) prefers fuller
//! nodes so whole nodes stay free; `LeastAllocated` prefers emptier ones.

use super::plugin::{NodeInfo, PodInfo, Score};

/// Which way allocation is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    MostAllocated,
    LeastAllocated,
}

pub struct Allocation(pub Strategy);

/// Per cent of `capacity` used by `used`, 0-100.
fn share(used: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return 100;
    }
    (used.max(0) * 100 / capacity).min(100)
}

impl Score for Allocation {
    fn name(&self) -> &'static str {
        match self.0 {
            Strategy::MostAllocated => "MostAllocated",
            Strategy::LeastAllocated => "LeastAllocated",
        }
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let after = node.requested + pod.requests;
        let used = (share(after.cpu_millis, node.allocatable.cpu_millis)
            + share(after.memory_bytes, node.allocatable.memory_bytes))
            / 2;
        match self.0 {
            Strategy::MostAllocated => used,
            Strategy::LeastAllocated => 100 - used,
        }
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::resources::Usage;

    use super::*;

    fn node(cpu: i64, used_cpu: i64) -> NodeInfo {
        NodeInfo {
            allocatable: Usage {
                cpu_millis: cpu,
                memory_bytes: 1 << 30,
                pods: 110,
            },
            requested: Usage {
                cpu_millis: used_cpu,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn most_allocated_prefers_the_fuller_node_and_least_the_emptier() {
        let pod = PodInfo {
            requests: Usage {
                cpu_millis: 500,
                memory_bytes: 0,
                pods: 1,
            },
            ..Default::default()
        };
        let (small, big) = (node(2000, 0), node(4000, 0));
        let most = Allocation(Strategy::MostAllocated);
        let least = Allocation(Strategy::LeastAllocated);
        assert!(most.score(&pod, &small) > most.score(&pod, &big));
        assert!(least.score(&pod, &small) < least.score(&pod, &big));
        assert_eq!(most.score(&pod, &node(2000, 1500)), 50);
    }
}
