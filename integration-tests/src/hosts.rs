//! Hosts for tests on this one machine: each a network namespace with its
//! own Docker engine, its own address on a shared link and its own node
//! agent, with masters on hosts of their own (no engine), an optional
//! router between two links, and "outside" hosts that are no node.
//!
//! ```text
//!          link 1 (bridge br1)                   link 2 (bridge br2)
//!   test process .1 ──┐                          ┌── c .2
//!   master-1 .2 ──────┤                          │
//!   a .3 ─────────────┼── .254 router .254 ──────┼── outside2 .253
//!   b .4 ─────────────┤                          │
//!   outside1 .253 ────┘                          └── ...
//! ```
//!
//! Each host is a namespace `bosunhN-NAME` with a veth (`eth0`) into its
//! link's bridge, which lives in the namespace `bosunhN-switch`; nodes (a,
//! b, c) run a `dockerd` and an agent, masters a master. With two links,
//! every host's default route goes through the router; with one, hosts
//! have none (their link is all they reach).
//!
//! Start with [`HostCluster::start`] and a [`HostsSpec`]; everything it
//! made (namespaces, veths, bridges, engines and their containers, files,
//! the test namespace's veth) goes when it is dropped, also when the test
//! fails, and what a killed test left goes when the next cluster starts.
//! The wiring and the sweep are in `hosts/net.rs`, the engines in
//! `hosts/engine.rs`.

mod engine;
mod net;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use bosun_proto::api::Node;
use bosun_proto::client::Client;
use bosun_proto::net::Cidr;

use crate::agents::{fast_agent_flags, wait_node, AgentProcess, PodRanges, TEST_LABEL};
use crate::claims::Claim;
use crate::{MasterCluster, MasterPlace};
use engine::Engine;
use net::{Leftovers, Plan};

/// The port every agent listens on, on its host's address.
pub const AGENT_PORT: u16 = 7430;

/// What [`HostCluster::start`] makes.
#[derive(Debug, Clone)]
pub struct HostsSpec {
    /// Masters, each on a host of its own on link 1 (`master-1`...).
    pub masters: usize,
    /// Hosts with an engine and an agent: (name, link), links counting
    /// from 1.
    pub hosts: Vec<(String, usize)>,
    /// 1, or 2 for a second link behind a router (hosts on a link reach
    /// the other link only through it).
    pub links: usize,
    pub master_args: Vec<String>,
    /// Flags for every agent, after the harness's own.
    pub agent_args: Vec<String>,
    /// Whether `start` waits until every host's node is Ready.
    pub wait_ready: bool,
}

impl HostsSpec {
    /// `masters` masters and `hosts` (name, link), on as many links as
    /// the hosts use; waits for the nodes to be Ready.
    pub fn new(masters: usize, hosts: &[(&str, usize)]) -> HostsSpec {
        HostsSpec {
            masters,
            hosts: hosts.iter().map(|(name, link)| (name.to_string(), *link)).collect(),
            links: hosts.iter().map(|(_, link)| *link).max().unwrap_or(1).max(1),
            master_args: Vec::new(),
            agent_args: Vec::new(),
            wait_ready: true,
        }
    }

    pub fn links(mut self, links: usize) -> HostsSpec {
        self.links = links;
        self
    }

    pub fn master_args(mut self, args: &[&str]) -> HostsSpec {
        self.master_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn agent_args(mut self, args: &[&str]) -> HostsSpec {
        self.agent_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Do not wait for the nodes to be Ready.
    pub fn no_wait(mut self) -> HostsSpec {
        self.wait_ready = false;
        self
    }
}

/// What a host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs a master, no engine.
    Master,
    /// Runs an engine and an agent: a node of the cluster.
    Node,
    /// Forwards between the two links.
    Router,
    /// An address on a link that is no node, where a test runs servers.
    Outside,
}

/// One host: a network namespace with an address on a link.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub role: Role,
    /// The namespace's name (under /var/run/netns).
    pub netns: String,
    /// Its address on its link (the router's on link 1).
    pub address: Ipv4Addr,
    pub link: usize,
    /// `unix://...` of its own engine (nodes only).
    pub docker_host: Option<String>,
    /// Its files: engine data, agent data, logs.
    pub dir: PathBuf,
    /// Its switch ports (the router has one per link).
    ports: Vec<String>,
}

impl Host {
    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    /// The command prefix that runs a program on this host:
    /// `nsenter --net=/var/run/netns/NAME --`.
    pub fn nsenter(&self) -> Vec<String> {
        net::nsenter(&self.netns)
    }
}

/// The wires of a cluster and its registry of hosts, removed (with
/// everything running on them) when dropped.
struct Network {
    plan: Plan,
    links: usize,
    hosts: Vec<Host>,
    /// The next host number per link, for [`Network::add`].
    next_host: [u8; 2],
    next_port: usize,
    /// Held until the removal is done (dropped after `drop` ran).
    _claim: Claim,
}

impl Network {
    /// Sweeps what dead tests left, claims a slot and makes the switch and
    /// the test namespace's veth.
    fn make(links: usize) -> Result<Network> {
        ensure!((1..=2).contains(&links), "1 or 2 links, not {links}");
        net::sweep();
        let claim = Claim::first_free(std::path::Path::new(net::POOL), 0..net::SLOTS)?
            .context("every host cluster slot is held by a running test")?;
        let plan = Plan::new(claim.slot());
        // A slot free but not clean: a test that ended without its Drop.
        Leftovers::cluster(&plan).remove();
        let network = Network {
            plan,
            links,
            hosts: Vec::new(),
            next_host: [2, 2],
            next_port: 1,
            _claim: claim,
        };
        std::fs::create_dir_all(plan.dir())?;
        net::make_switch(&plan, links)?;
        net::plug_root(&plan, links)?;
        Ok(network)
    }

    /// Makes host `name` with `role` on `link`: its namespace, its veth
    /// into the link with the next address (or the router's or outside
    /// host's), a default route through the router when there are two
    /// links, and its directory.
    fn add(&mut self, name: &str, role: Role, link: usize) -> Result<Host> {
        ensure!(
            (1..=self.links).contains(&link),
            "host {name}: link {link}, but the cluster has {} link(s)",
            self.links
        );
        ensure!(self.find(name).is_none(), "there is a host {name} already");
        let number = match role {
            Role::Router => net::ROUTER_HOST,
            Role::Outside => net::OUTSIDE_HOST,
            Role::Master | Role::Node => {
                let next = &mut self.next_host[link - 1];
                ensure!(*next <= net::LAST_HOST, "link {link} has no address left");
                *next += 1;
                *next - 1
            }
        };
        let netns = self.plan.netns(name);
        let dir = self.plan.dir().join(name);
        std::fs::create_dir_all(&dir)?;
        net::make_namespace(&netns)?;
        let links: Vec<usize> = if role == Role::Router {
            (1..=self.links).collect()
        } else {
            vec![link]
        };
        let mut ports = Vec::new();
        for link in links {
            let port = format!("p{}", self.next_port);
            self.next_port += 1;
            let device = if role == Role::Router {
                format!("eth{link}")
            } else {
                "eth0".into()
            };
            net::plug(
                &self.plan,
                &netns,
                &device,
                &port,
                link,
                self.plan.address(link, number),
            )?;
            ports.push(port);
        }
        if role == Role::Router {
            net::forward(&netns)?;
        } else if self.links > 1 {
            net::default_route(&netns, self.plan.address(link, net::ROUTER_HOST))?;
        }
        let host = Host {
            name: name.to_string(),
            role,
            netns,
            address: self.plan.address(link, number),
            link,
            docker_host: None,
            dir,
            ports,
        };
        self.hosts.push(host.clone());
        Ok(host)
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        Leftovers::cluster(&self.plan).remove();
    }
}

/// Masters and node hosts, each host a network namespace of its own.
pub struct HostCluster {
    pub masters: MasterCluster,
    /// The masters' `--cluster-cidr`, unless the test gave its own.
    pub pod_ranges: PodRanges,
    /// The value of [`TEST_LABEL`] on the containers the agents make.
    pub run: String,
    agent_args: Vec<String>,
    engines: HashMap<String, Engine>,
    agents: Vec<AgentProcess>,
    /// Programs tests started on hosts, killed at the end.
    spawned: Vec<Child>,
    /// Dropped last: removes what is left on the hosts, and the hosts.
    net: Network,
}

impl HostCluster {
    /// Starts the masters on hosts of their own, then the node hosts
    /// (engines started side by side, each given the test image), then
    /// an agent on each; waits until every node is Ready (unless
    /// `spec.wait_ready` is false).
    ///
    /// # Errors
    /// When a namespace, engine, master or agent does not come up; what
    /// was made is removed.
    pub async fn start(spec: HostsSpec) -> Result<HostCluster> {
        ensure!(spec.masters > 0, "a host cluster needs a master");
        let mut net = Network::make(spec.links)?;
        let pod_ranges = PodRanges::claim()?;
        let mut places = Vec::new();
        for index in 1..=spec.masters {
            let host = net.add(&format!("master-{index}"), Role::Master, 1)?;
            places.push(MasterPlace {
                prefix: host.nsenter(),
                ip: host.address.into(),
            });
        }
        let mut master_args = vec!["--cluster-cidr", pod_ranges.range.as_str()];
        if spec.master_args.iter().any(|a| a == "--cluster-cidr") {
            master_args.clear();
        }
        master_args.extend(spec.master_args.iter().map(String::as_str));
        // In the slot's directory: a sweep removes it with the rest.
        let masters = MasterCluster::start_on(places, &master_args, Some(&net.plan.dir())).await?;
        let run = format!("{}p{}", net.plan.prefix(), std::process::id());
        let mut cluster = HostCluster {
            masters,
            pod_ranges,
            run,
            agent_args: spec.agent_args.clone(),
            engines: HashMap::new(),
            agents: Vec::new(),
            spawned: Vec::new(),
            net,
        };
        if spec.links > 1 {
            cluster.net.add("router", Role::Router, 1)?;
        }
        let hosts: Vec<(&str, usize)> = spec.hosts.iter().map(|(n, l)| (n.as_str(), *l)).collect();
        cluster.add_nodes(&hosts, &[]).await?;
        if spec.wait_ready {
            for (name, _) in &spec.hosts {
                cluster.wait_node_ready(name, true).await?;
            }
        }
        Ok(cluster)
    }

    /// Adds node hosts (name, link): namespaces, engines started side by
    /// side and given the test image, then agents with `extra` flags.
    async fn add_nodes(&mut self, hosts: &[(&str, usize)], extra: &[&str]) -> Result<()> {
        self.add_engines(hosts).await?;
        for (name, _) in hosts {
            self.start_agent(name, extra)?;
        }
        Ok(())
    }

    /// Adds node hosts (name, link) with their engines (and the test
    /// image) but no agents yet.
    async fn add_engines(&mut self, hosts: &[(&str, usize)]) -> Result<()> {
        for (name, link) in hosts {
            check_name(name)?;
            let mut host = self.net.add(name, Role::Node, *link)?;
            let engine = Engine::spawn(&host.nsenter(), &host.dir, &self.net.plan.cgroup(name))?;
            host.docker_host = Some(engine.docker_host());
            let index = self.net.find(name).context("the host just added")?;
            self.net.hosts[index] = host;
            self.engines.insert(name.to_string(), engine);
        }
        let waits = hosts
            .iter()
            .filter_map(|(name, _)| self.engines.get(*name))
            .map(Engine::ready);
        for result in futures::future::join_all(waits).await {
            result?;
        }
        Ok(())
    }

    /// Masters' addresses, for ctl and clients.
    pub fn servers(&self) -> Vec<String> {
        self.masters.addrs()
    }

    pub fn client(&self) -> Client {
        Client::new(self.servers())
    }

    /// Host `name`: a node, `master-N`, `router` or `outsideN`.
    ///
    /// # Errors
    /// For an unknown host.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.net
            .find(name)
            .map(|i| &self.net.hosts[i])
            .ok_or_else(|| anyhow!("no host {name}"))
    }

    /// The node hosts (with an engine and an agent), in the order made.
    pub fn nodes(&self) -> Vec<&Host> {
        self.net.hosts.iter().filter(|h| h.role == Role::Node).collect()
    }

    /// Link `link`'s subnet (a /24; links count from 1).
    pub fn subnet(&self, link: usize) -> Cidr {
        self.net.plan.subnet(link)
    }

    /// The test namespace's own address on link 1.
    pub fn root_address(&self) -> Ipv4Addr {
        self.net.plan.address(1, 1)
    }

    /// The host on `link` that is no node (no engine, no agent, no route
    /// to pods), made on first use: a server a test starts there with
    /// [`HostCluster::spawn`] stands for anything outside the cluster.
    ///
    /// # Errors
    /// For a link the cluster lacks, or when `ip` fails.
    pub fn outside(&mut self, link: usize) -> Result<Host> {
        let name = format!("outside{link}");
        if let Ok(host) = self.host(&name) {
            return Ok(host.clone());
        }
        self.net.add(&name, Role::Outside, link)
    }

    /// Runs `args` (a program and its arguments) on host `name`, in its
    /// network namespace, and returns how it ended.
    ///
    /// # Errors
    /// For an unknown host or a program that cannot be run.
    pub async fn exec(&self, name: &str, args: &[&str]) -> Result<Output> {
        let host = self.host(name)?;
        let prefix = host.nsenter();
        let output = tokio::process::Command::new(&prefix[0])
            .args(&prefix[1..])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {args:?} on {name}"))?;
        Ok(output)
    }

    /// Like [`HostCluster::exec`], for a program that must succeed: its
    /// standard output.
    ///
    /// # Errors
    /// When it fails, with what it printed.
    pub async fn exec_ok(&self, name: &str, args: &[&str]) -> Result<String> {
        let output = self.exec(name, args).await?;
        if !output.status.success() {
            bail!(
                "{args:?} on {name} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts `args` on host `name` in the background (a server, say),
    /// logging to `spawned-N.log` in the host's directory, and returns
    /// its pid. It is killed when the cluster goes.
    ///
    /// # Errors
    /// For an unknown host or a program that cannot be run.
    pub fn spawn(&mut self, name: &str, args: &[&str]) -> Result<u32> {
        let host = self.host(name)?;
        let log_path = host.dir.join(format!("spawned-{}.log", self.spawned.len()));
        let log = std::fs::File::create(&log_path)?;
        let child = crate::command_under(&host.nsenter(), args.first().context("a program")?)
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {args:?} on {name}"))?;
        let pid = child.id();
        self.spawned.push(child);
        Ok(pid)
    }

    /// A client of node `name`'s engine.
    ///
    /// # Errors
    /// For a host without an engine, or when the engine does not answer.
    pub async fn docker(&self, name: &str) -> Result<bollard::Docker> {
        engine::client(self.docker_host(name)?).await
    }

    /// Runs the `docker` CLI with `args` against node `name`'s engine.
    ///
    /// # Errors
    /// For a host without an engine, or when `docker` cannot be run.
    pub async fn docker_cli(&self, name: &str, args: &[&str]) -> Result<Output> {
        let output = tokio::process::Command::new("docker")
            .env("DOCKER_HOST", self.docker_host(name)?)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running docker")?;
        Ok(output)
    }

    fn docker_host(&self, name: &str) -> Result<&str> {
        self.host(name)?
            .docker_host
            .as_deref()
            .ok_or_else(|| anyhow!("host {name} has no engine"))
    }

    /// Adds node host `name` on `link` to the running cluster: namespace,
    /// engine with the test image, and an agent with the cluster's agent
    /// flags and `extra`. Does not wait for its node to be Ready.
    ///
    /// # Errors
    /// When the host, its engine or its agent does not come up.
    pub async fn add_host(&mut self, name: &str, link: usize, extra: &[&str]) -> Result<()> {
        self.add_nodes(&[(name, link)], extra).await
    }

    /// Adds node host `name` on `link` with its engine and the test image
    /// but no agent: a host as it is before anyone starts an agent on it
    /// ([`HostCluster::start_agent`] starts one).
    ///
    /// # Errors
    /// When the host or its engine does not come up.
    pub async fn add_idle_host(&mut self, name: &str, link: usize) -> Result<()> {
        self.add_engines(&[(name, link)]).await
    }

    /// Removes host `name` and everything on it (its agent, engine and
    /// containers, files and namespace). Its Node stays in the masters.
    ///
    /// # Errors
    /// For an unknown host or one of the cluster's own (a master, the
    /// router).
    pub fn remove_host(&mut self, name: &str) -> Result<()> {
        let index = self.net.find(name).ok_or_else(|| anyhow!("no host {name}"))?;
        let role = self.net.hosts[index].role;
        ensure!(
            matches!(role, Role::Node | Role::Outside),
            "host {name} is a {role:?}: only nodes and outside hosts can be removed"
        );
        if let Some(i) = self.agents.iter().position(|a| a.name == name) {
            self.agents.remove(i).kill();
        }
        if let Some(mut engine) = self.engines.remove(name) {
            let removal = engine.start_removing_containers().ok();
            engine::wait_all(removal.into_iter().collect(), Duration::from_secs(15));
            engine.kill();
        }
        Leftovers::host(&self.net.plan, name).remove();
        self.net.hosts.remove(index);
        Ok(())
    }

    /// Starts the agent of node `name` with the cluster's agent flags and
    /// `extra` (kept for [`HostCluster::restart_agent`]).
    ///
    /// # Errors
    /// For an unknown host, one without an engine, or a running agent.
    pub fn start_agent(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        let args = self.agent_flags(name, extra)?;
        match self.agents.iter_mut().find(|a| a.name == name) {
            Some(agent) => {
                ensure!(!agent.is_running(), "the agent of {name} is running");
                agent.set_args(args);
                agent.start()
            }
            None => {
                let host = self.host(name)?;
                let log = host.dir.join("agent.log");
                let mut agent = AgentProcess::new(name, host.nsenter(), args, log);
                agent.start()?;
                self.agents.push(agent);
                Ok(())
            }
        }
    }

    fn agent_flags(&self, name: &str, extra: &[&str]) -> Result<Vec<String>> {
        let host = self.host(name)?;
        let mut args: Vec<String> = vec![
            "--master".into(),
            self.servers().join(","),
            "--name".into(),
            name.into(),
            "--docker-host".into(),
            self.docker_host(name)?.into(),
            "--address".into(),
            host.address.to_string(),
            "--listen".into(),
            format!("{}:{AGENT_PORT}", host.address),
            "--data-dir".into(),
            host.dir.join("agent").display().to_string(),
            "--container-labels".into(),
            format!("{TEST_LABEL}={}", self.run),
        ];
        args.extend(fast_agent_flags());
        args.extend(self.agent_args.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        Ok(args)
    }

    /// Starts a killed agent again with the flags it had.
    ///
    /// # Errors
    /// For an unknown agent, or one running.
    pub fn restart_agent(&mut self, name: &str) -> Result<()> {
        let agent = self.agent_mut(name)?;
        ensure!(!agent.is_running(), "the agent of {name} is running");
        agent.start()
    }

    /// SIGKILLs node `name`'s agent (its containers keep running).
    ///
    /// # Errors
    /// For an unknown agent.
    pub fn kill_agent(&mut self, name: &str) -> Result<()> {
        self.agent_mut(name)?.kill();
        Ok(())
    }

    fn agent_mut(&mut self, name: &str) -> Result<&mut AgentProcess> {
        self.agents
            .iter_mut()
            .find(|a| a.name == name)
            .ok_or_else(|| anyhow!("no agent {name}"))
    }

    /// The last lines of node `name`'s agent log.
    pub fn agent_log(&self, name: &str) -> String {
        self.agents
            .iter()
            .find(|a| a.name == name)
            .map(AgentProcess::log_tail)
            .unwrap_or_default()
    }

    /// The last lines of node `name`'s engine log.
    pub fn engine_log(&self, name: &str) -> String {
        self.host(name)
            .map(|h| engine::tail(&h.dir.join("dockerd.log"), 40))
            .unwrap_or_default()
    }

    /// Cuts host `name` off its link(s): its switch ports go down, so
    /// nothing reaches it nor leaves it until [`HostCluster::heal`].
    ///
    /// # Errors
    /// For an unknown host, or when `ip` fails.
    pub fn cut(&self, name: &str) -> Result<()> {
        self.set_ports(name, false)
    }

    /// Puts host `name` back on its link(s).
    ///
    /// # Errors
    /// For an unknown host, or when `ip` fails.
    pub fn heal(&self, name: &str) -> Result<()> {
        self.set_ports(name, true)
    }

    fn set_ports(&self, name: &str, up: bool) -> Result<()> {
        for port in &self.host(name)?.ports {
            net::set_port(&self.net.plan, port, up)?;
        }
        Ok(())
    }

    /// Waits until node `name`'s Ready condition has `ready`.
    ///
    /// # Errors
    /// On timeout, with the agent's log.
    pub async fn wait_node_ready(&self, name: &str, ready: bool) -> Result<Node> {
        wait_node(&self.client(), name, ready)
            .await
            .map_err(|e| anyhow!("{e}\nagent {name}:\n{}", self.agent_log(name)))
    }

    /// Copies the hosts' logs next to the masters' (kept with
    /// `BOSUN_KEEP_TEST_DIRS`).
    fn keep_logs(&self) {
        let kept = self.masters.data_dir().join("hosts");
        for host in &self.net.hosts {
            let Ok(entries) = std::fs::read_dir(&host.dir) else {
                continue;
            };
            let target = kept.join(&host.name);
            let _ = std::fs::create_dir_all(&target);
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let _ = std::fs::copy(&path, target.join(entry.file_name()));
                }
            }
        }
    }
}

impl Drop for HostCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        let removals: Vec<Child> = self
            .engines
            .values()
            .filter_map(|e| e.start_removing_containers().ok())
            .collect();
        engine::wait_all(removals, Duration::from_secs(15));
        for engine in self.engines.values_mut() {
            engine.kill();
        }
        for child in &mut self.spawned {
            let _ = child.kill();
            let _ = child.wait();
        }
        for index in 0..self.masters.masters.len() {
            self.masters.kill(index);
        }
        if std::env::var_os("BOSUN_KEEP_TEST_DIRS").is_some() {
            self.keep_logs();
        }
        // Then `net` goes: whatever still runs on the hosts, and the hosts.
    }
}

/// Node names: a DNS label of at most 20 characters (paths of the
/// engine's sockets derive from it), none of the cluster's own hosts.
fn check_name(name: &str) -> Result<()> {
    let label = !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ensure!(
        label,
        "host name {name:?}: at most 20 of a-z, 0-9 and -, not at the ends"
    );
    let reserved = name == "switch" || name == "router" || name.starts_with("outside") || name.starts_with("master-");
    ensure!(!reserved, "host name {name:?} is one of the cluster's own");
    Ok(())
}
