//! Command-line configuration. Every flag has a default, so `node-agent`
//! with no flags joins the master on 127.0.0.1:7420 with this host's name,
//! CPUs and memory, running pods on the local Docker engine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::network::Backend;
use crate::plan::Backoff;

#[derive(Parser, Debug)]
#[command(
    name = "node-agent",
    version,
    about = "Bosun node agent: runs the pods bound to this node on Docker"
)]
pub struct Cli {
    #[command(flatten)]
    pub agent: AgentConfig,
    /// Remove every container this agent made (its identity: node name and
    /// data directory), in any cluster, the pod network if nothing else
    /// uses it, and (unless --network-backend none) the routes, VXLAN
    /// device and rules it added to the host; then exit. Needs no master;
    /// stop the agent first.
    #[arg(long)]
    pub cleanup: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run many fake agents in this process (no Docker), for control-plane
    /// scale tests.
    Simulate(SimulateConfig),
}

#[derive(Args, Debug, Clone)]
pub struct AgentConfig {
    /// Masters to talk to, tried in order (host:port, comma-separated).
    #[arg(
        long,
        env = "BOSUN_MASTER",
        value_delimiter = ',',
        default_value = "127.0.0.1:7420",
        global = true
    )]
    pub master: Vec<String>,

    /// The node's name; defaults to the host name.
    #[arg(long, env = "BOSUN_NODE_NAME")]
    pub name: Option<String>,

    /// The Docker engine's socket.
    #[arg(long, env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,

    /// Where the agent keeps pod data; defaults to
    /// ~/.local/share/bosun/agent-<name>.
    #[arg(long, env = "BOSUN_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// CPUs the node offers (default: the host's).
    #[arg(long)]
    pub cpus: Option<String>,

    /// Memory the node offers, as a quantity like 8Gi (default: the host's).
    #[arg(long)]
    pub memory: Option<String>,

    /// Most pods the node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: i64,

    /// Labels of the node: k=v,k2=v2.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Taints of the node when it registers: key=value:Effect,...
    #[arg(long, value_delimiter = ',')]
    pub taints: Vec<String>,

    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 2.0)]
    pub heartbeat_seconds: f64,

    /// Address for the masters to reach this agent (logs, exec).
    #[arg(long, env = "BOSUN_AGENT_LISTEN", default_value = "0.0.0.0:7430")]
    pub listen: SocketAddr,

    /// The node's address as masters and other nodes see it (default: the
    /// address of the interface with the default route, or the listen
    /// address when it is specific).
    #[arg(long, env = "BOSUN_AGENT_ADDRESS")]
    pub address: Option<String>,

    /// The Docker network pods are attached to (created when missing).
    #[arg(long, env = "BOSUN_NETWORK", default_value = "bosun")]
    pub network: String,

    /// How pods reach the pods of other nodes: `auto` (a direct route to a
    /// node on a shared link, VXLAN to the others), `host-gw`, `vxlan`, or
    /// `none` (leave the host's routes and rules alone: one node, or one
    /// of several agents sharing a host).
    #[arg(long, env = "BOSUN_NETWORK_BACKEND", value_enum, default_value_t = Backend::Auto)]
    pub network_backend: Backend,

    /// The UDP port of VXLAN between nodes.
    #[arg(long, default_value_t = crate::network::DEFAULT_VXLAN_PORT)]
    pub vxlan_port: u16,

    /// First delay before restarting a crashed container (or retrying a
    /// failed pull), doubled each time up to the maximum.
    #[arg(long, default_value_t = 10.0)]
    pub restart_backoff_seconds: f64,

    #[arg(long, default_value_t = 300.0)]
    pub restart_backoff_max_seconds: f64,

    /// A container that ran this long starts its back-off over.
    #[arg(long, default_value_t = 600.0)]
    pub restart_backoff_reset_seconds: f64,

    /// Extra labels on every container this agent creates: k=v,...
    #[arg(long, env = "BOSUN_CONTAINER_LABELS", value_delimiter = ',')]
    pub container_labels: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SimulateConfig {
    /// Number of fake nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Names are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "sim-")]
    pub name_prefix: String,
    /// CPUs of each fake node.
    #[arg(long, default_value = "8")]
    pub node_cpus: String,
    /// Memory of each fake node.
    #[arg(long, default_value = "32Gi")]
    pub node_memory: String,
}

impl AgentConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: Duration::from_secs_f64(self.restart_backoff_seconds.max(0.0)),
            max: Duration::from_secs_f64(self.restart_backoff_max_seconds.max(0.0)),
            reset_after: Duration::from_secs_f64(self.restart_backoff_reset_seconds.max(0.0)),
        }
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_seconds.max(0.05))
    }

    /// Parses flags from an iterator, for tests and embedding.
    ///
    /// # Errors
    /// Clap's error for unknown or malformed flags.
    pub fn from_args<I, T>(args: I) -> Result<AgentConfig, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(std::iter::once("node-agent".into()).chain(args.into_iter().map(Into::into)))
            .map(|c| c.agent)
    }
}

/// Parses `k=v` pairs.
///
/// # Errors
/// A message naming the malformed pair.
pub fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("{p:?} is not key=value"))
        })
        .collect()
}
