//! Filter: the node is Ready and not cordoned.

use super::plugin::{Filter, NodeInfo, PodInfo, Verdict};

pub struct NodeReady;

impl Filter for NodeReady {
    fn name(&self) -> &'static str {
        "NodeReady"
    }

    fn filter(&self, _pod: &PodInfo, node: &NodeInfo) -> Verdict {
        if !node.ready {
            Verdict::reject("node(s) were not ready")
        } else if node.unschedulable {
            Verdict::reject("node(s) were unschedulable")
        } else {
            Verdict::Fits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_schedulable_nodes_pass() {
        let cases = [
            (true, false, Verdict::Fits),
            (false, false, Verdict::reject("node(s) were not ready")),
            (true, true, Verdict::reject("node(s) were unschedulable")),
        ];
        for (ready, unschedulable, expected) in cases {
            let node = NodeInfo {
                ready,
                unschedulable,
                ..Default::default()
            };
            assert_eq!(NodeReady.filter(&PodInfo::default(), &node), expected);
        }
    }
}
