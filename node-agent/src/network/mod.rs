//! The pod network across hosts, as flannel builds it for k3s: every node
//! holds a block of the cluster's pod ranges (given by the masters), its
//! pods on a Docker bridge on exactly that block, and this module keeps the
//! way to every other node's block.
//!
//! - [`plan`]: from the Node objects to what the host should hold, per
//!   peer a direct route (host-gw, the peer on a shared link) or a VXLAN
//!   route (`--network-backend auto|host-gw|vxlan|none`). Pure.
//! - [`netlink`]: routes, the VXLAN device and its neighbour and
//!   forwarding entries, over netlink.
//! - [`rules`]: forwarding past Docker's DROP policy and masquerading of
//!   traffic that leaves the pod ranges, in chains of Bosun's own.
//!
//! [`PodNetwork::run`] follows the Node objects with a watch and syncs the
//! host after every change, and again every [`RESYNC`] (something else
//! may have removed a route). Every step is idempotent and reads what the
//! host holds, so a restarted or killed agent converges on the same state;
//! `node-agent --cleanup` removes it all ([`cleanup`]).

pub mod netlink;
pub mod plan;
pub mod rules;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bosun_proto::api::{self, EventType, Node};
use bosun_proto::client::{Api, Change, Client, Watcher, REWATCH_PAUSE};
use bosun_proto::net::Cidr;
use tokio_util::sync::CancellationToken;

pub use netlink::{Netlink, NetlinkError, Uplink};
pub use plan::{Backend, Own, Peer, Plan};
pub use rules::RulesError;

/// How often the host is synced with no change seen.
pub const RESYNC: Duration = Duration::from_secs(30);
/// Pause before trying a failed sync again, doubled per failure in a row
/// up to [`RESYNC`].
const RETRY: Duration = Duration::from_secs(1);
/// VXLAN's UDP port when not given (flannel's and Linux's default).
pub const DEFAULT_VXLAN_PORT: u16 = 8472;

/// Why the pod network cannot be set up or kept.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("--network-backend {backend:?} needs the node's --address as an IPv4 address of this host, not {address:?} (or run with --network-backend none)")]
    NotAnAddress { backend: String, address: String },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// The host's pod network, for an agent whose backend is not `none`.
#[derive(Clone)]
pub struct PodNetwork {
    backend: Backend,
    vxlan_port: u16,
    address: Ipv4Addr,
    uplink: Uplink,
    netlink: Netlink,
}

impl PodNetwork {
    /// Opens the host's network for `backend` on the node's `address`;
    /// `None` for [`Backend::None`].
    ///
    /// # Errors
    /// When the address is not one of this host's, or netlink is closed.
    pub async fn open(backend: Backend, vxlan_port: u16, address: &str) -> Result<Option<PodNetwork>, NetworkError> {
        if backend == Backend::None {
            return Ok(None);
        }
        let address: Ipv4Addr = address.parse().map_err(|_| NetworkError::NotAnAddress {
            backend: format!("{backend:?}").to_ascii_lowercase(),
            address: address.to_string(),
        })?;
        let netlink = Netlink::connect()?;
        let uplink = netlink.uplink(address).await?;
        Ok(Some(PodNetwork {
            backend,
            vxlan_port,
            address,
            uplink,
            netlink,
        }))
    }

    /// The MTU of the node's interface, which the pod bridge takes.
    pub fn mtu(&self) -> u32 {
        self.uplink.mtu
    }

    /// Follows the Node objects and keeps the host in step, until
    /// cancelled. Errors are logged and retried: pods on this node keep
    /// running and reach each other whatever happens here.
    pub async fn run(self, node: String, range: Cidr, client: Client, token: CancellationToken) {
        let own = Own {
            name: node,
            range,
            address: self.address,
        };
        let mut watcher = Watcher::new(Api::<Node>::all(&client), "", "");
        let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
        let mut applied: Option<Plan> = None;
        // Nothing is synced before the first list: a plan without the
        // peers would take their routes away from running pods (an agent
        // restarting) only to put them back.
        let mut listed = false;
        let mut failures: u32 = 0;
        let mut next_sync = tokio::time::Instant::now() + RESYNC;
        loop {
            tokio::select! {
                change = watcher.next() => match change {
                    Ok(Change::Relisted(nodes)) => {
                        peers = nodes.iter().filter_map(|n| Some((name(n)?, Peer::of(n)?))).collect();
                        listed = true;
                    }
                    Ok(Change::Event(kind, node)) => {
                        let Some(name) = name(&node) else { continue };
                        match Peer::of(&node).filter(|_| kind != EventType::Deleted) {
                            Some(peer) => peers.insert(name, peer),
                            None => peers.remove(&name),
                        };
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow the nodes for the pod network; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(REWATCH_PAUSE) => {}
                            () = token.cancelled() => return,
                        }
                        continue;
                    }
                },
                () = tokio::time::sleep_until(next_sync) => applied = None,
                () = token.cancelled() => return,
            }
            if !listed {
                continue;
            }
            let subnets = match self.netlink.subnets().await {
                Ok(subnets) => subnets,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read this host's addresses; retrying");
                    failures += 1;
                    next_sync = tokio::time::Instant::now() + retry(failures);
                    continue;
                }
            };
            let plan = plan::plan(self.backend, &own, &peers, &subnets);
            if applied.as_ref() == Some(&plan) {
                continue;
            }
            match self.sync(&own, &plan).await {
                Ok(()) => {
                    tracing::debug!(routes = plan.routes.len(), vxlan = plan.vxlan, "pod network in sync");
                    applied = Some(plan);
                    failures = 0;
                    next_sync = tokio::time::Instant::now() + RESYNC;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot bring the pod network in line; retrying");
                    applied = None;
                    failures += 1;
                    next_sync = tokio::time::Instant::now() + retry(failures);
                }
            }
        }
    }

    async fn sync(&self, own: &Own, plan: &Plan) -> Result<(), NetworkError> {
        // Forwarding first: a route is of no use before its packets pass.
        rules::sync(own.range, &plan.ranges).await?;
        self.netlink.sync(own, self.uplink, self.vxlan_port, plan).await?;
        Ok(())
    }
}

/// The pause after `failures` failed syncs in a row.
fn retry(failures: u32) -> Duration {
    RETRY.saturating_mul(1 << failures.saturating_sub(1).min(5)).min(RESYNC)
}

fn name(node: &api::Node) -> Option<String> {
    node.metadata.as_ref().map(|m| m.name.clone()).filter(|n| !n.is_empty())
}

/// What `node-agent --cleanup` removed from the host's network.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    pub routes: usize,
    pub vxlan_device: bool,
    pub chains: usize,
}

/// Removes the agent's routes, VXLAN device and chains from the host.
///
/// # Errors
/// When netlink or iptables fails.
pub async fn cleanup() -> Result<Cleaned, NetworkError> {
    let removed = Netlink::connect()?.cleanup().await?;
    let chains = rules::cleanup().await?;
    Ok(Cleaned {
        routes: removed.routes,
        vxlan_device: removed.device,
        chains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_syncs_are_retried_ever_later_up_to_the_resync_period() {
        let pauses: Vec<u64> = (1..=8).map(|f| retry(f).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
