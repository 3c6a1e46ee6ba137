//! What the host should hold for the pod network, decided from the Node
//! objects alone: a pure function, so every backend choice is a table
//! test. [`super::netlink`] and [`super::rules`] make the host match it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use bosun_proto::api::Node;
use bosun_proto::net::Cidr;

/// How pods reach the pod ranges of other nodes (`--network-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// host-gw to a node on a shared link, VXLAN to any other.
    Auto,
    /// A route via the other node's address: both on one link.
    HostGw,
    /// An overlay: pod packets in UDP between the nodes' addresses.
    Vxlan,
    /// Leave the host alone: no routes, no rules, Docker's own
    /// masquerading. For a single node, or when something else (the
    /// network, another agent on the same host) routes the pod ranges.
    None,
}

/// This node, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Own {
    pub name: String,
    pub range: Cidr,
    pub address: Ipv4Addr,
}

/// Another node with a pod range and an address to reach it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub range: Cidr,
    pub address: Ipv4Addr,
}

impl Peer {
    /// The node's pod range and InternalIP, if it has both (a node that
    /// registered by host name, or before its range came, has no peer yet).
    pub fn of(node: &Node) -> Option<Peer> {
        let range = node.spec.as_ref()?.pod_cidr.parse().ok()?;
        let address = node
            .status
            .as_ref()?
            .addresses
            .iter()
            .filter(|a| a.r#type == "InternalIP")
            .find_map(|a| a.address.parse().ok())?;
        Some(Peer { range, address })
    }
}

/// The way to one peer's pod range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `range via address`: the peer is on one of this host's links.
    Direct { range: Cidr, via: Ipv4Addr },
    /// `range via vtep dev <vxlan> onlink`, with the peer's VTEP in the
    /// neighbour table (`vtep lladdr mac`) and its MAC in the forwarding
    /// table (`mac dst remote`).
    Vxlan {
        range: Cidr,
        vtep: Ipv4Addr,
        mac: [u8; 6],
        remote: Ipv4Addr,
    },
}

impl Route {
    pub fn range(&self) -> Cidr {
        match *self {
            Route::Direct { range, .. } | Route::Vxlan { range, .. } => range,
        }
    }
}

/// Everything the host should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One per peer, sorted by range.
    pub routes: Vec<Route>,
    /// Every known pod range, this node's included: forwarded freely and
    /// never masqueraded.
    pub ranges: Vec<Cidr>,
    /// Whether this node needs its VXLAN device (some peer is reached
    /// through it).
    pub vxlan: bool,
}

/// The VXLAN tunnel endpoint's address of a node: its range's first
/// address, which no pod holds (the bridge's gateway is the second).
pub fn vtep(range: Cidr) -> Ipv4Addr {
    range.network()
}

/// The VXLAN device's MAC of a node, derived from its range so no node
/// has to publish it: locally administered, unicast.
pub fn vtep_mac(range: Cidr) -> [u8; 6] {
    let [a, b, c, d] = range.network().octets();
    [0x0e, 0x42, a, b, c, d]
}

/// The plan for `own` among `nodes` (name to peer), with `links` the
/// subnets of this host's interfaces (a peer in one of them is on a
/// shared link). Nodes without a peer, this node itself, and a node whose
/// range overlaps another's (never given by the masters) are left out.
pub fn plan(backend: Backend, own: &Own, nodes: &BTreeMap<String, Peer>, links: &[Cidr]) -> Plan {
    if backend == Backend::None {
        return Plan::default();
    }
    let mut routes: Vec<Route> = Vec::new();
    let mut ranges = vec![own.range];
    for (name, peer) in nodes {
        if *name == own.name || peer.address == own.address || ranges.iter().any(|r| r.overlaps(&peer.range)) {
            continue;
        }
        ranges.push(peer.range);
        let direct = match backend {
            Backend::HostGw => true,
            Backend::Vxlan => false,
            Backend::Auto | Backend::None => links.iter().any(|l| l.contains(peer.address)),
        };
        routes.push(if direct {
            Route::Direct {
                range: peer.range,
                via: peer.address,
            }
        } else {
            Route::Vxlan {
                range: peer.range,
                vtep: vtep(peer.range),
                mac: vtep_mac(peer.range),
                remote: peer.address,
            }
        });
    }
    routes.sort_by_key(Route::range);
    ranges.sort();
    let vxlan = routes.iter().any(|r| matches!(r, Route::Vxlan { .. }));
    Plan { routes, ranges, vxlan }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn own() -> Own {
        Own {
            name: "a".into(),
            range: cidr("10.42.0.0/24"),
            address: "192.168.1.10".parse().unwrap(),
        }
    }

    fn nodes(list: &[(&str, &str, &str)]) -> BTreeMap<String, Peer> {
        list.iter()
            .map(|(name, range, address)| {
                (
                    name.to_string(),
                    Peer {
                        range: cidr(range),
                        address: address.parse().unwrap(),
                    },
                )
            })
            .collect()
    }

    fn cluster() -> BTreeMap<String, Peer> {
        nodes(&[
            ("a", "10.42.0.0/24", "192.168.1.10"),
            ("c", "10.42.2.0/24", "172.20.0.7"),
            ("b", "10.42.1.0/24", "192.168.1.11"),
        ])
    }

    #[test]
    fn auto_routes_peers_on_a_shared_link_directly_and_the_others_through_vxlan() {
        let plan = plan(Backend::Auto, &own(), &cluster(), &[cidr("192.168.1.0/24")]);
        assert_eq!(
            plan.routes,
            [
                Route::Direct {
                    range: cidr("10.42.1.0/24"),
                    via: "192.168.1.11".parse().unwrap()
                },
                Route::Vxlan {
                    range: cidr("10.42.2.0/24"),
                    vtep: "10.42.2.0".parse().unwrap(),
                    mac: [0x0e, 0x42, 10, 42, 2, 0],
                    remote: "172.20.0.7".parse().unwrap()
                },
            ]
        );
        assert!(plan.vxlan);
        assert_eq!(
            plan.ranges,
            [cidr("10.42.0.0/24"), cidr("10.42.1.0/24"), cidr("10.42.2.0/24")]
        );
    }

    #[test]
    fn a_chosen_backend_applies_to_every_peer() {
        let links = [cidr("192.168.1.0/24")];
        let host_gw = plan(Backend::HostGw, &own(), &cluster(), &links);
        assert!(host_gw.routes.iter().all(|r| matches!(r, Route::Direct { .. })));
        assert!(!host_gw.vxlan);
        let vxlan = plan(Backend::Vxlan, &own(), &cluster(), &links);
        assert!(vxlan.routes.iter().all(|r| matches!(r, Route::Vxlan { .. })));
        assert_eq!(vxlan.routes.len(), 2);
    }

    #[test]
    fn none_leaves_the_host_alone() {
        assert_eq!(plan(Backend::None, &own(), &cluster(), &[]), Plan::default());
    }

    #[test]
    fn the_node_itself_and_overlapping_ranges_get_no_route() {
        let list = nodes(&[
            ("a", "10.42.0.0/24", "192.168.1.10"),
            ("same-address", "10.42.5.0/24", "192.168.1.10"),
            ("overlap", "10.42.0.0/16", "192.168.1.12"),
        ]);
        let plan = plan(Backend::Auto, &own(), &list, &[cidr("192.168.1.0/24")]);
        assert!(plan.routes.is_empty(), "{plan:?}");
        assert_eq!(plan.ranges, [cidr("10.42.0.0/24")]);
        assert!(!plan.vxlan);
    }

    #[test]
    fn a_peer_needs_a_range_and_an_internal_ip() {
        use bosun_proto::api::{NodeAddress, NodeSpec, NodeStatus};
        let mut node = Node {
            spec: Some(NodeSpec {
                pod_cidr: "10.42.3.0/24".into(),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: vec![NodeAddress {
                    r#type: "Hostname".into(),
                    address: "b".into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(Peer::of(&node), None, "a host name is no address to route by");
        node.status.as_mut().unwrap().addresses.push(NodeAddress {
            r#type: "InternalIP".into(),
            address: "192.168.1.13".into(),
        });
        assert_eq!(
            Peer::of(&node),
            Some(Peer {
                range: cidr("10.42.3.0/24"),
                address: "192.168.1.13".parse().unwrap()
            })
        );
        node.spec.as_mut().unwrap().pod_cidr.clear();
        assert_eq!(Peer::of(&node), None, "no range yet");
    }
}
