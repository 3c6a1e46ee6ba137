//! Resource accounting shared by the scheduler, the store's fit check, the
//! agent and ctl: what a pod requests, what a node offers.
//!
//! As in Kubernetes, a pod's request is the sum of its containers'
//! requests (a container without a request counts 0) plus one pod slot, and
//! a node offers its `status.allocatable`.

use std::ops::{Add, AddAssign, Sub, SubAssign};

use crate::api::{Node, Pod, PodSpec, Quantity as ApiQuantity};
use crate::quantity::Quantity;

/// CPU, memory and pod slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
            pods: self.pods + other.pods,
        }
    }
}

impl Sub for Usage {
    type Output = Usage;
    fn sub(self, other: Usage) -> Usage {
        Usage {
            cpu_millis: self.cpu_millis - other.cpu_millis,
            memory_bytes: self.memory_bytes - other.memory_bytes,
            pods: self.pods - other.pods,
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        *self = *self + other;
    }
}

impl SubAssign for Usage {
    fn sub_assign(&mut self, other: Usage) {
        *self = *self - other;
    }
}

impl Usage {
    /// Whether `self` fits within `capacity` in every dimension.
    pub fn fits(&self, capacity: &Usage) -> bool {
        self.cpu_millis <= capacity.cpu_millis
            && self.memory_bytes <= capacity.memory_bytes
            && self.pods <= capacity.pods
    }

    /// The dimensions in which `self` exceeds `capacity`, in Kubernetes'
    /// words: "cpu", "memory", "pods".
    pub fn exceeded(&self, capacity: &Usage) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.cpu_millis > capacity.cpu_millis {
            out.push("cpu");
        }
        if self.memory_bytes > capacity.memory_bytes {
            out.push("memory");
        }
        if self.pods > capacity.pods {
            out.push("pods");
        }
        out
    }
}

fn parse(map: &std::collections::HashMap<String, ApiQuantity>, key: &str) -> Option<Quantity> {
    map.get(key).and_then(|q| Quantity::parse(&q.value).ok())
}

fn sum(spec: &PodSpec, limits: bool) -> Usage {
    let mut usage = Usage {
        pods: 1,
        ..Usage::default()
    };
    for container in &spec.containers {
        let Some(resources) = &container.resources else {
            continue;
        };
        let map = if limits { &resources.limits } else { &resources.requests };
        // Kubernetes: a limit without a request makes the request equal to it.
        let fallback = &resources.limits;
        let cpu = parse(map, "cpu").or_else(|| (!limits).then(|| parse(fallback, "cpu")).flatten());
        let memory = parse(map, "memory").or_else(|| (!limits).then(|| parse(fallback, "memory")).flatten());
        usage.cpu_millis += cpu.map_or(0, Quantity::millis);
        usage.memory_bytes += memory.map_or(0, Quantity::units);
    }
    usage
}

/// What a pod asks the scheduler for: requests (or limits where only
/// limits are set), plus one pod slot.
pub fn pod_requests(spec: &PodSpec) -> Usage {
    sum(spec, false)
}

/// The pod's limits (0 where unlimited), plus one pod slot.
pub fn pod_limits(spec: &PodSpec) -> Usage {
    sum(spec, true)
}

/// What a node offers: its allocatable CPU, memory and pod slots.
pub fn node_allocatable(node: &Node) -> Usage {
    let Some(status) = &node.status else {
        return Usage::default();
    };
    Usage {
        cpu_millis: parse(&status.allocatable, "cpu").map_or(0, Quantity::millis),
        memory_bytes: parse(&status.allocatable, "memory").map_or(0, Quantity::units),
        pods: parse(&status.allocatable, "pods").map_or(0, Quantity::units),
    }
}

/// Whether the pod has finished (Succeeded or Failed): it no longer holds
/// resources on its node.
pub fn is_terminal(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .is_some_and(|s| s.phase == "Succeeded" || s.phase == "Failed")
}

/// Host ports a pod publishes: (port, protocol, host IP).
pub fn host_ports(spec: &PodSpec) -> Vec<(i32, String, String)> {
    spec.containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter(|p| p.host_port > 0)
        .map(|p| {
            let protocol = if p.protocol.is_empty() {
                "TCP"
            } else {
                p.protocol.as_str()
            };
            (p.host_port, protocol.to_string(), p.host_ip.clone())
        })
        .collect()
}

/// Whether two host-port lists collide (same port and protocol, and the
/// same address or either on all addresses).
pub fn host_ports_conflict(a: &[(i32, String, String)], b: &[(i32, String, String)]) -> bool {
    a.iter().any(|(port, protocol, ip)| {
        b.iter().any(|(other_port, other_protocol, other_ip)| {
            port == other_port
                && protocol == other_protocol
                && (ip.is_empty() || other_ip.is_empty() || ip == "0.0.0.0" || other_ip == "0.0.0.0" || ip == other_ip)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_objects;

    fn spec(yaml_containers: &str) -> PodSpec {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n{yaml_containers}");
        Pod::try_from(decode_objects(&yaml, "t").unwrap().remove(0))
            .unwrap()
            .spec
            .unwrap()
    }

    #[test]
    fn requests_sum_containers_and_default_to_limits() {
        let spec = spec(
            "  - {name: a, image: i, resources: {requests: {cpu: 250m, memory: 64Mi}}}\n  - {name: b, image: i, resources: {limits: {cpu: 1, memory: 1Gi}}}\n  - {name: c, image: i}\n",
        );
        assert_eq!(
            pod_requests(&spec),
            Usage {
                cpu_millis: 1250,
                memory_bytes: (64 << 20) + (1 << 30),
                pods: 1
            }
        );
        assert_eq!(pod_limits(&spec).cpu_millis, 1000);
    }

    #[test]
    fn fit_names_the_exceeded_dimensions() {
        let capacity = Usage {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            pods: 10,
        };
        let want = Usage {
            cpu_millis: 1500,
            memory_bytes: 1 << 20,
            pods: 11,
        };
        assert!(!want.fits(&capacity));
        assert_eq!(want.exceeded(&capacity), vec!["cpu", "pods"]);
    }

    #[test]
    fn host_ports_collide_on_the_same_port_protocol_and_address() {
        let tcp80 = vec![(80, "TCP".to_string(), String::new())];
        assert!(host_ports_conflict(&tcp80, &tcp80));
        assert!(!host_ports_conflict(&tcp80, &[(80, "UDP".to_string(), String::new())]));
        assert!(!host_ports_conflict(
            &[(80, "TCP".to_string(), "10.0.0.1".to_string())],
            &[(80, "TCP".to_string(), "10.0.0.2".to_string())]
        ));
    }
}
