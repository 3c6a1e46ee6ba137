//! Filter: the pod's host ports are free on the node.

use bosun_proto::resources::host_ports_conflict;

use super::plugin::{Filter, NodeInfo, PodInfo, Verdict};

pub struct HostPortsFree;

impl Filter for HostPortsFree {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Verdict {
        if pod.host_ports.is_empty() || !host_ports_conflict(&pod.host_ports, &node.host_ports) {
            Verdict::Fits
        } else {
            Verdict::reject("node(s) didn't have free ports for the requested pod ports")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_rejects_the_node() {
        let node = NodeInfo {
            host_ports: vec![(8080, "TCP".into(), String::new())],
            ..Default::default()
        };
        let pod = |port| PodInfo {
            host_ports: vec![(port, "TCP".into(), String::new())],
            ..Default::default()
        };
        assert_ne!(HostPortsFree.filter(&pod(8080), &node), Verdict::Fits);
        assert_eq!(HostPortsFree.filter(&pod(8081), &node), Verdict::Fits);
        assert_eq!(HostPortsFree.filter(&PodInfo::default(), &node), Verdict::Fits);
    }
}
