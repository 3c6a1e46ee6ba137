//! The kernel's side of the pod network, over netlink (rtnetlink): routes
//! to the other nodes' pod ranges, and the VXLAN device with its neighbour
//! and forwarding entries.
//!
//! Everything here is recognisable as Bosun's without a record of what was
//! added: routes carry the protocol number [`ROUTE_PROTOCOL`] (`ip route
//! show proto 98`), and the VXLAN device is named [`VXLAN_DEVICE`]. A sync
//! lists what is there and makes it match the plan, so an agent that was
//! killed converges on the same state, and [`Netlink::cleanup`] removes it
//! all.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use bosun_proto::net::Cidr;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use super::plan::{vtep, vtep_mac, Own, Plan, Route};

/// The protocol number on every route the agent adds (the kernel's
/// `RTPROT_*` numbers below 18 and a few routing daemons' are taken).
pub const ROUTE_PROTOCOL: u8 = 98;
/// The agent's VXLAN device.
pub const VXLAN_DEVICE: &str = "bosun.vxlan";
/// The VXLAN network identifier of the pod network.
pub const VXLAN_ID: u32 = 42;
/// Bytes VXLAN adds around a pod's packet: outer IPv4 (20), UDP (8),
/// VXLAN (8) and the inner Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The kernel refused or the netlink socket failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{step}: {source}")]
    Request {
        step: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("no interface of this host has the node's address {0}: give the agent --address of one of its interfaces")]
    NoUplink(Ipv4Addr),
}

type Result<T> = std::result::Result<T, NetlinkError>;

fn failed(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let step = step.into();
    move |source| NetlinkError::Request { step, source }
}

/// The kernel answered a request for one thing with nothing.
fn nothing(step: String) -> NetlinkError {
    NetlinkError::Request {
        step,
        source: rtnetlink::Error::RequestFailed,
    }
}

/// Whether the kernel said the thing is not there (so it is gone already).
fn is_missing(error: &rtnetlink::Error) -> bool {
    const ENOENT: i32 = 2;
    const ESRCH: i32 = 3;
    const ENODEV: i32 = 19;
    matches!(error, rtnetlink::Error::NetlinkError(e)
        if e.code.is_some_and(|c| [ENOENT, ESRCH, ENODEV].contains(&-c.get())))
}

/// The interface that carries the node's address: VXLAN packets leave by
/// it, and its MTU is the pod network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uplink {
    pub index: u32,
    pub mtu: u32,
}

/// What [`Netlink::cleanup`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub routes: usize,
    pub device: bool,
}

/// A netlink connection to this host's network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the connection (its task runs on the current runtime).
    ///
    /// # Errors
    /// When no netlink socket can be opened.
    pub fn connect() -> Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The IPv4 subnets of this host's interfaces: a peer in one of them
    /// shares a link with this host.
    ///
    /// # Errors
    /// When the kernel does not answer.
    pub async fn subnets(&self) -> Result<Vec<Cidr>> {
        Ok(self
            .addresses()
            .await?
            .into_iter()
            .map(|(_, address, prefix)| Cidr::new(address, prefix))
            .filter(|c| c.prefix() < 32 && !c.network().is_loopback())
            .collect())
    }

    async fn addresses(&self) -> Result<Vec<(u32, Ipv4Addr, u8)>> {
        let messages: Vec<_> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("list addresses"))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| {
                let address = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
                Some((m.header.index, address, m.header.prefix_len))
            })
            .collect())
    }

    /// The interface holding `address`.
    ///
    /// # Errors
    /// [`NetlinkError::NoUplink`] when no interface has it.
    pub async fn uplink(&self, address: Ipv4Addr) -> Result<Uplink> {
        let index = self
            .addresses()
            .await?
            .into_iter()
            .find(|(_, a, _)| *a == address)
            .map(|(index, _, _)| index)
            .ok_or(NetlinkError::NoUplink(address))?;
        let link = self.link_by_index(index).await?;
        let mtu = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(*mtu),
                _ => None,
            })
            .unwrap_or(1500);
        Ok(Uplink { index, mtu })
    }

    async fn link_by_index(&self, index: u32) -> Result<LinkMessage> {
        let mut links = self.handle.link().get().match_index(index).execute();
        links
            .try_next()
            .await
            .map_err(failed(format!("read interface {index}")))?
            .ok_or_else(|| nothing(format!("read interface {index}")))
    }

    async fn vxlan_device(&self) -> Result<Option<LinkMessage>> {
        let mut links = self.handle.link().get().match_name(VXLAN_DEVICE.to_string()).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(failed(format!("read {VXLAN_DEVICE}"))(e)),
        }
    }

    /// Makes the host match `plan`: the VXLAN device when a peer needs it
    /// (gone otherwise), one route per peer, and the VXLAN neighbour and
    /// forwarding entries of the peers reached through it. Idempotent.
    ///
    /// # Errors
    /// The first request the kernel refused (the other routes are still
    /// added).
    pub async fn sync(&self, own: &Own, uplink: Uplink, port: u16, plan: &Plan) -> Result<()> {
        let device = if plan.vxlan {
            Some(self.ensure_vxlan(own, uplink, port).await?)
        } else {
            self.remove_vxlan().await?;
            None
        };
        let wanted: BTreeSet<Cidr> = plan.routes.iter().map(Route::range).collect();
        let mut refused = None;
        for route in &plan.routes {
            let message = match (*route, device) {
                (Route::Direct { range, via }, _) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(range.network(), range.prefix())
                    .gateway(via)
                    .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
                    .build(),
                (Route::Vxlan { range, vtep, .. }, Some(index)) => RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(range.network(), range.prefix())
                    .gateway(vtep)
                    .output_interface(index)
                    .onlink()
                    .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
                    .build(),
                (Route::Vxlan { .. }, None) => continue,
            };
            // One refused route (a host-gw peer off this host's links)
            // must not keep the others from being added.
            if let Err(e) = self.handle.route().add(message).replace().execute().await {
                refused.get_or_insert(failed(format!("route to {}", route.range()))(e));
            }
        }
        for (range, message) in self.own_routes().await? {
            if !wanted.contains(&range) {
                self.delete_route(message).await?;
            }
        }
        if let Some(index) = device {
            self.sync_vxlan_entries(index, plan).await?;
        }
        refused.map_or(Ok(()), Err)
    }

    /// The routes this agent added, by destination.
    async fn own_routes(&self) -> Result<Vec<(Cidr, RouteMessage)>> {
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(failed("list routes"))?;
        Ok(routes
            .into_iter()
            .filter(|r| r.header.protocol == RouteProtocol::Other(ROUTE_PROTOCOL))
            .filter_map(|r| {
                let destination = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                })?;
                Some((Cidr::new(destination, r.header.destination_prefix_length), r))
            })
            .collect())
    }

    async fn delete_route(&self, message: RouteMessage) -> Result<()> {
        match self.handle.route().del(message).execute().await {
            Err(e) if !is_missing(&e) => Err(failed("delete a route")(e)),
            _ => Ok(()),
        }
    }

    /// The VXLAN device on the node's address, its MTU the uplink's less
    /// the overhead, its MAC and address derived from the node's range;
    /// made again when its identity or endpoint changed. Its index.
    async fn ensure_vxlan(&self, own: &Own, uplink: Uplink, port: u16) -> Result<u32> {
        let mac = vtep_mac(own.range);
        let mtu = uplink.mtu.saturating_sub(VXLAN_OVERHEAD);
        let wanted = [
            InfoVxlan::Id(VXLAN_ID),
            InfoVxlan::Local(own.address),
            InfoVxlan::Port(port),
            InfoVxlan::Link(uplink.index),
        ];
        let existing = self.vxlan_device().await?;
        let same = existing.as_ref().filter(|link| {
            link.attributes.iter().any(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().any(
                    |i| matches!(i, LinkInfo::Data(InfoData::Vxlan(data)) if wanted.iter().all(|w| data.contains(w))),
                ),
                _ => false,
            })
        });
        let index = match (same, &existing) {
            (Some(link), _) => {
                let index = link.header.index;
                let settings = LinkUnspec::new_with_index(index)
                    .mtu(mtu)
                    .address(mac.to_vec())
                    .up()
                    .build();
                self.handle
                    .link()
                    .set(settings)
                    .execute()
                    .await
                    .map_err(failed(format!("set up {VXLAN_DEVICE}")))?;
                index
            }
            (None, other) => {
                if other.is_some() {
                    tracing::info!(
                        device = VXLAN_DEVICE,
                        "the VXLAN device has another endpoint; making it again"
                    );
                    self.remove_vxlan().await?;
                }
                self.create_vxlan(own, uplink, port, mtu, mac).await?
            }
        };
        self.ensure_vtep_address(index, own.range).await?;
        Ok(index)
    }

    async fn create_vxlan(&self, own: &Own, uplink: Uplink, port: u16, mtu: u32, mac: [u8; 6]) -> Result<u32> {
        let device = LinkVxlan::new(VXLAN_DEVICE, VXLAN_ID)
            .dev(uplink.index)
            .local(own.address)
            .port(port)
            .learning(false)
            .mtu(mtu)
            .address(mac.to_vec())
            .up()
            .build();
        self.handle
            .link()
            .add(device)
            .execute()
            .await
            .map_err(failed(format!("create {VXLAN_DEVICE}")))?;
        let index = self
            .vxlan_device()
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| nothing(format!("find {VXLAN_DEVICE} after creating it")))?;
        tracing::info!(
            device = VXLAN_DEVICE,
            vni = VXLAN_ID,
            port,
            mtu,
            "created the VXLAN device"
        );
        Ok(index)
    }

    async fn ensure_vtep_address(&self, index: u32, range: Cidr) -> Result<()> {
        let address = vtep(range);
        let present = self
            .addresses()
            .await?
            .into_iter()
            .any(|(i, a, _)| i == index && a == address);
        if !present {
            self.handle
                .address()
                .add(index, IpAddr::V4(address), 32)
                .replace()
                .execute()
                .await
                .map_err(failed(format!("address {address} on {VXLAN_DEVICE}")))?;
        }
        Ok(())
    }

    /// Neighbour (VTEP to MAC) and forwarding (MAC to node) entries of the
    /// peers behind the device; others removed.
    async fn sync_vxlan_entries(&self, index: u32, plan: &Plan) -> Result<()> {
        let mut vteps = BTreeSet::new();
        let mut macs = BTreeSet::new();
        for route in &plan.routes {
            let Route::Vxlan { vtep, mac, remote, .. } = *route else {
                continue;
            };
            vteps.insert(vtep);
            macs.insert(mac);
            self.handle
                .neighbours()
                .add(index, IpAddr::V4(vtep))
                .link_layer_address(&mac)
                .replace()
                .execute()
                .await
                .map_err(failed(format!("neighbour {vtep} on {VXLAN_DEVICE}")))?;
            self.handle
                .neighbours()
                .add_bridge(index, &mac)
                .destination(IpAddr::V4(remote))
                .flags(NeighbourFlags::Own)
                .replace()
                .execute()
                .await
                .map_err(failed(format!("forwarding entry for {remote} on {VXLAN_DEVICE}")))?;
        }
        let mut entries: Vec<NeighbourMessage> = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Bridge] {
            let listed: Vec<NeighbourMessage> = self
                .handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute()
                .try_collect()
                .await
                .map_err(failed("list neighbours"))?;
            entries.extend(listed);
        }
        for entry in entries.into_iter().filter(|e| e.header.ifindex == index) {
            let stale = match entry.header.family {
                AddressFamily::Inet => entry.attributes.iter().any(
                    |a| matches!(a, NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) if !vteps.contains(ip)),
                ),
                AddressFamily::Bridge => entry.attributes.iter().any(|a| {
                    matches!(a, NeighbourAttribute::LinkLayerAddress(mac)
                        if mac.len() == 6 && !macs.iter().any(|m| m[..] == mac[..]))
                }),
                _ => false,
            };
            if stale {
                match self.handle.neighbours().del(entry).execute().await {
                    Err(e) if !is_missing(&e) => return Err(failed("delete a neighbour entry")(e)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn remove_vxlan(&self) -> Result<bool> {
        let Some(link) = self.vxlan_device().await? else {
            return Ok(false);
        };
        match self.handle.link().del(link.header.index).execute().await {
            Err(e) if !is_missing(&e) => Err(failed(format!("delete {VXLAN_DEVICE}"))(e)),
            _ => Ok(true),
        }
    }

    /// Removes every route of the agent and its VXLAN device (with the
    /// device go its neighbour and forwarding entries).
    ///
    /// # Errors
    /// When the kernel refuses.
    pub async fn cleanup(&self) -> Result<Removed> {
        let routes = self.own_routes().await?;
        let count = routes.len();
        for (_, message) in routes {
            self.delete_route(message).await?;
        }
        let device = self.remove_vxlan().await?;
        Ok(Removed { routes: count, device })
    }
}
