//! The wires of a host cluster, made with `ip`: a namespace per host, a
//! switch namespace holding a bridge per link, a veth pair from each host
//! into its link's bridge, a router with a leg on each of two links, and
//! one veth from the test's own namespace into link 1. Also their removal,
//! by the names that carry the cluster's slot: the same code removes a
//! cluster when its test ends and what a dead test left.
//!
//! Names and addresses come from the slot `N` of the cluster's [`Claim`]:
//!
//! ```text
//!   namespaces   bosunhN-switch, bosunhN-router, bosunhN-<host>
//!   root veth    bosunhN (in the test's namespace; "root" in the switch)
//!   cgroups      bosunhN-<host> (each engine's --cgroup-parent)
//!   files        /tmp/bosunhN/<host>/ (engine, agent, logs)
//!   link 1       10.(251 + N/128).(2·(N%128)).0/24
//!   link 2       the /24 after it
//!   on a link    .1 the test's namespace (link 1), .254 the router,
//!                .253 the outside host, .2 up the others in order
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_proto::net::Cidr;

use crate::claims::Claim;

/// The claims of host clusters' slots.
pub(crate) const POOL: &str = "/tmp/bosun-test-host-links";
/// Slots: 640 /23s of 10.251.0.0-10.255.255.255.
pub(crate) const SLOTS: u32 = 640;
const PREFIX: &str = "bosunh";
/// The switch-side name of the test namespace's veth.
const ROOT_PORT: &str = "root";
/// Host numbers on a link (its last octet) kept for the router and the
/// outside host.
pub(crate) const ROUTER_HOST: u8 = 254;
pub(crate) const OUTSIDE_HOST: u8 = 253;
/// The last host number given in order.
pub(crate) const LAST_HOST: u8 = 252;

/// The names and addresses of the cluster in one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    slot: u32,
}

impl Plan {
    pub(crate) fn new(slot: u32) -> Plan {
        Plan { slot }
    }

    /// The prefix of every name: also the root veth's name.
    pub(crate) fn prefix(&self) -> String {
        format!("{PREFIX}{}", self.slot)
    }

    pub(crate) fn netns(&self, machine: &str) -> String {
        format!("{}-{machine}", self.prefix())
    }

    /// The cgroup parent of `host`'s containers.
    pub(crate) fn cgroup(&self, host: &str) -> String {
        self.netns(host)
    }

    pub(crate) fn switch(&self) -> String {
        self.netns("switch")
    }

    pub(crate) fn dir(&self) -> PathBuf {
        Path::new("/tmp").join(self.prefix())
    }

    /// Link `link`'s subnet (links count from 1).
    pub(crate) fn subnet(&self, link: usize) -> Cidr {
        let link = u32::try_from(link.saturating_sub(1)).unwrap_or(0);
        let start = u32::from(Ipv4Addr::new(10, 251, 0, 0)) + self.slot * 512 + link * 256;
        Cidr::new(Ipv4Addr::from(start), 24)
    }

    /// Host number `host` (the last octet) on link `link`.
    pub(crate) fn address(&self, link: usize, host: u8) -> Ipv4Addr {
        self.subnet(link)
            .address(u64::from(host))
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn bridge(link: usize) -> String {
        format!("br{link}")
    }
}

/// Runs `ip ARGS`.
///
/// # Errors
/// When it fails, with what it printed.
pub(crate) fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip").args(args).output().context("running ip")?;
    if !output.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `nsenter --net=/var/run/netns/NETNS --`: the prefix that runs a program
/// in a namespace. Not `ip netns exec`, which remounts /sys and hides the
/// cgroup mounts dockerd needs; so a program run this way sees the
/// machine's /sys (/sys/class/net lists the test namespace's interfaces):
/// ask netlink (`ip`) about the host's own.
pub(crate) fn nsenter(netns: &str) -> Vec<String> {
    vec!["nsenter".into(), format!("--net=/var/run/netns/{netns}"), "--".into()]
}

/// Makes the switch namespace with a bridge per link.
///
/// # Errors
/// When `ip` fails.
pub(crate) fn make_switch(plan: &Plan, links: usize) -> Result<()> {
    let switch = plan.switch();
    ip(&["netns", "add", &switch])?;
    ip(&["-n", &switch, "link", "set", "lo", "up"])?;
    for link in 1..=links {
        let bridge = Plan::bridge(link);
        ip(&["-n", &switch, "link", "add", &bridge, "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", &bridge, "up"])?;
    }
    Ok(())
}

/// Makes namespace `netns` with loopback up.
///
/// # Errors
/// When `ip` fails.
pub(crate) fn make_namespace(netns: &str) -> Result<()> {
    ip(&["netns", "add", netns])?;
    ip(&["-n", netns, "link", "set", "lo", "up"])
}

/// Wires interface `device` of namespace `netns` into link `link` as
/// switch port `port`, with `address`.
///
/// # Errors
/// When `ip` fails.
pub(crate) fn plug(plan: &Plan, netns: &str, device: &str, port: &str, link: usize, address: Ipv4Addr) -> Result<()> {
    let switch = plan.switch();
    ip(&[
        "-n", &switch, "link", "add", port, "type", "veth", "peer", "name", device, "netns", netns,
    ])?;
    ip(&["-n", &switch, "link", "set", port, "master", &Plan::bridge(link), "up"])?;
    ip(&["-n", netns, "addr", "add", &format!("{address}/24"), "dev", device])?;
    ip(&["-n", netns, "link", "set", device, "up"])
}

/// Gives namespace `netns` a default route via `gateway`.
///
/// # Errors
/// When `ip` fails.
pub(crate) fn default_route(netns: &str, gateway: Ipv4Addr) -> Result<()> {
    ip(&["-n", netns, "route", "add", "default", "via", &gateway.to_string()])
}

/// Wires the test's own namespace into link 1 at `.1`, with a route to
/// link 2 through the router when there is one.
///
/// # Errors
/// When `ip` fails.
pub(crate) fn plug_root(plan: &Plan, links: usize) -> Result<()> {
    let switch = plan.switch();
    let device = plan.prefix();
    ip(&[
        "link", "add", &device, "type", "veth", "peer", "name", ROOT_PORT, "netns", &switch,
    ])?;
    ip(&[
        "-n",
        &switch,
        "link",
        "set",
        ROOT_PORT,
        "master",
        &Plan::bridge(1),
        "up",
    ])?;
    ip(&["addr", "add", &format!("{}/24", plan.address(1, 1)), "dev", &device])?;
    ip(&["link", "set", &device, "up"])?;
    if links > 1 {
        let via = plan.address(1, ROUTER_HOST).to_string();
        ip(&["route", "add", &plan.subnet(2).to_string(), "via", &via, "dev", &device])?;
    }
    Ok(())
}

/// Turns the router's forwarding on.
///
/// # Errors
/// When sysctl fails.
pub(crate) fn forward(netns: &str) -> Result<()> {
    let status = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{netns}"))
        .args(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .status()?;
    if !status.success() {
        bail!("turning on forwarding in {netns} failed");
    }
    Ok(())
}

/// Sets switch port `port` down (`up` false) or up: the host behind it is
/// cut from its link or back on it.
///
/// # Errors
/// When `ip` fails.
pub(crate) fn set_port(plan: &Plan, port: &str, up: bool) -> Result<()> {
    ip(&[
        "-n",
        &plan.switch(),
        "link",
        "set",
        port,
        if up { "up" } else { "down" },
    ])
}

/// What to remove: namespaces, cgroups, files and the root veth of a
/// whole cluster, or of one of its hosts.
pub(crate) struct Leftovers {
    namespaces: Vec<String>,
    /// Cgroup names removed (with the processes in them).
    cgroups: Box<dyn Fn(&str) -> bool>,
    dir: PathBuf,
    root_link: Option<String>,
}

impl Leftovers {
    /// Everything of the cluster in `plan`'s slot.
    pub(crate) fn cluster(plan: &Plan) -> Leftovers {
        let netns_prefix = format!("{}-", plan.prefix());
        let namespaces = namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&netns_prefix))
            .collect();
        Leftovers {
            namespaces,
            cgroups: Box::new(move |name| name.starts_with(&netns_prefix)),
            dir: plan.dir(),
            root_link: Some(plan.prefix()),
        }
    }

    /// Host `name` of the cluster in `plan`'s slot.
    pub(crate) fn host(plan: &Plan, name: &str) -> Leftovers {
        let cgroup = plan.cgroup(name);
        Leftovers {
            namespaces: vec![plan.netns(name)],
            cgroups: Box::new(move |n| n == cgroup),
            dir: plan.dir().join(name),
            root_link: None,
        }
    }

    /// Kills every process in the namespaces and cgroups, unmounts what is
    /// mounted under the directory, deletes the namespaces (and so their
    /// veths), the root veth, the cgroups and the directory. Does what it
    /// can and goes on.
    pub(crate) fn remove(&self) {
        self.kill_processes();
        unmount_under(&self.dir);
        for netns in &self.namespaces {
            let _ = ip(&["netns", "delete", netns]);
        }
        if let Some(link) = &self.root_link {
            if Path::new("/sys/class/net").join(link).exists() {
                let _ = ip(&["link", "delete", link]);
            }
        }
        for cgroup in cgroup_dirs(&*self.cgroups) {
            remove_cgroup(&cgroup);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// SIGKILLs the processes until none is left (10 s at most): engines,
    /// agents, masters and programs in the namespaces, containers in the
    /// cgroups.
    fn kill_processes(&self) {
        let started = Instant::now();
        let me = std::process::id();
        loop {
            let mut pids: Vec<u32> = self.namespaces.iter().flat_map(|n| netns_pids(n)).collect();
            for cgroup in cgroup_dirs(&*self.cgroups) {
                pids.extend(cgroup_pids(&cgroup));
            }
            pids.retain(|p| *p != me);
            pids.sort_unstable();
            pids.dedup();
            if pids.is_empty() || started.elapsed() > Duration::from_secs(10) {
                return;
            }
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Removes what dead tests' clusters left: every slot whose claim names a
/// process that is gone, or whose names are seen (namespaces, the root
/// veth, cgroups, files) while no live process claims it.
pub(crate) fn sweep() {
    let pool = Path::new(POOL);
    let mut names = namespaces();
    names.extend(dir_names(Path::new("/sys/class/net")));
    names.extend(dir_names(Path::new("/tmp")));
    for root in cgroup_roots() {
        names.extend(dir_names(&root));
    }
    let mut slots = Claim::stale(pool);
    slots.extend(names.iter().filter_map(|name| slot_of(name)));
    slots.sort_unstable();
    slots.dedup();
    for slot in slots {
        if let Ok(Some(claim)) = Claim::slot_if_free(pool, slot) {
            Leftovers::cluster(&Plan::new(slot)).remove();
            drop(claim);
        }
    }
}

/// The slot a name of [`Plan`]'s carries: `bosunhN` or `bosunhN-...`.
fn slot_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.split('-').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|slot| *slot < SLOTS)
}

/// The names of the namespaces under /var/run/netns.
pub(crate) fn namespaces() -> Vec<String> {
    dir_names(Path::new("/var/run/netns"))
}

fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// The processes in namespace `netns`.
fn netns_pids(netns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", netns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The roots of the cgroup hierarchies: each v1 controller's, or the
/// single v2 one.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.to_path_buf()];
    }
    let mut roots: Vec<PathBuf> = dir_names(base).into_iter().map(|n| base.join(n)).collect();
    roots.retain(|r| r.join("cgroup.procs").exists());
    roots
}

/// Cgroup directories whose name `wanted` accepts, in every hierarchy, a
/// few levels down (an engine's cgroup parent is relative to its own
/// cgroup in some hierarchies).
fn cgroup_dirs(wanted: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut level: Vec<PathBuf> = cgroup_roots();
    for _ in 0..4 {
        let mut next = Vec::new();
        for dir in level {
            for name in dir_names(&dir) {
                let path = dir.join(&name);
                if !path.is_dir() {
                    continue;
                }
                if wanted(&name) {
                    found.push(path);
                } else if !name.starts_with(PREFIX) {
                    next.push(path);
                }
            }
        }
        level = next;
    }
    found
}

/// The processes in cgroup `dir` and below.
fn cgroup_pids(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for name in dir_names(dir) {
        let child = dir.join(name);
        if child.is_dir() {
            pids.extend(cgroup_pids(&child));
        }
    }
    pids
}

/// Removes cgroup `dir`, children first.
fn remove_cgroup(dir: &Path) {
    for name in dir_names(dir) {
        let child = dir.join(name);
        if child.is_dir() {
            remove_cgroup(&child);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Unmounts everything mounted at or under `dir` (an engine's data root,
/// its containers' network namespaces), deepest first.
fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&point)
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_get_links_of_their_own_and_names_say_their_slot() {
        let (first, last) = (Plan::new(0), Plan::new(SLOTS - 1));
        assert_eq!(first.subnet(1).to_string(), "10.251.0.0/24");
        assert_eq!(first.subnet(2).to_string(), "10.251.1.0/24");
        assert_eq!(Plan::new(1).subnet(1).to_string(), "10.251.2.0/24");
        assert_eq!(Plan::new(128).subnet(1).to_string(), "10.252.0.0/24");
        assert_eq!(last.subnet(2).to_string(), "10.255.255.0/24");
        assert_eq!(first.address(2, ROUTER_HOST), Ipv4Addr::new(10, 251, 1, 254));
        assert!(last.prefix().len() <= 15, "an interface name");
        assert_eq!(slot_of(&last.netns("a-b")), Some(SLOTS - 1));
        assert_eq!(slot_of(&last.prefix()), Some(SLOTS - 1));
        for other in ["bosunh", "bosunhx-a", "bosunh99999", "bosun-test-1"] {
            assert_eq!(slot_of(other), None, "{other}");
        }
    }
}
