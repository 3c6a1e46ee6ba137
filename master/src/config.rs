//! Command-line configuration. Every flag has a default, so `master` with
//! no flags starts a one-member cluster on 127.0.0.1:7420.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "master",
    version,
    about = "Bosun master: holds the cluster's desired state, replicated with Raft, and serves the gRPC API"
)]
pub struct Config {
    /// This master's id in the Raft group; unique per master, above 0.
    #[arg(long, env = "BOSUN_NODE_ID", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_id: u64,

    /// Address to serve the public API and the master-to-master service on.
    #[arg(long, env = "BOSUN_LISTEN", default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,

    /// Address other masters and clients reach this one at (host:port);
    /// defaults to the listen address.
    #[arg(long, env = "BOSUN_ADVERTISE")]
    pub advertise: Option<String>,

    /// Where the Raft log and the state live; defaults to
    /// ~/.local/share/bosun/master-<node-id>.
    #[arg(long, env = "BOSUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Join the cluster that the master at this address belongs to (only on
    /// first start; a restarted member rejoins by itself).
    #[arg(long, env = "BOSUN_JOIN")]
    pub join: Option<String>,

    /// How long a joining master may take to replicate the leader's log.
    /// One that has not caught up by then is removed again rather than
    /// made a voter, and its join fails with the reason.
    #[arg(long, default_value_t = 60_000)]
    pub join_timeout_ms: u64,

    /// Restart this master's data as a one-member cluster, keeping every
    /// object: the way out when a majority of masters is lost for good
    /// (as etcd's --force-new-cluster). Use it once, on one survivor, then
    /// restart without it and join new masters to it.
    #[arg(long, conflicts_with = "join")]
    pub force_new_cluster: bool,

    /// Recent changes kept in memory for watches to resume from.
    #[arg(long, default_value_t = 10_000)]
    pub watch_history: usize,

    /// How long a request waits for a leader during an election before
    /// failing with UNAVAILABLE.
    #[arg(long, default_value_t = 5_000)]
    pub leader_wait_ms: u64,

    /// A node whose agent has not heartbeated for this long becomes
    /// NotReady (Ready=Unknown).
    #[arg(long, default_value_t = 10.0)]
    pub node_grace_seconds: f64,

    /// The pods of a node that has not heartbeated for this long (counted
    /// from its last heartbeat) are marked Failed and deleted, so their
    /// ReplicaSets replace them elsewhere; the agent removes their
    /// containers if it comes back.
    #[arg(long, default_value_t = 20.0)]
    pub pod_eviction_seconds: f64,

    /// Events last seen longer ago than this are deleted (Kubernetes'
    /// --event-ttl, one hour by default).
    #[arg(long, default_value_t = 3600.0)]
    pub event_ttl_seconds: f64,

    /// How the scheduler ranks nodes: most-allocated packs pods onto the
    /// fullest nodes that fit (bin packing); least-allocated spreads them.
    #[arg(long, value_enum, default_value_t = crate::scheduler::Strategy::MostAllocated)]
    pub scheduler_strategy: crate::scheduler::Strategy,

    /// The pod ranges (comma-separated IPv4 CIDRs): each node gets a block
    /// of them for its pods' addresses when it registers.
    #[arg(long, env = "BOSUN_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,

    /// The size of each node's block of --cluster-cidr, as a prefix
    /// length: 24 gives each node 254 pod addresses.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,

    /// Write the address actually listened on to this file once bound
    /// (useful with --listen HOST:0).
    #[arg(long, hide = true)]
    pub address_file: Option<PathBuf>,

    #[command(flatten)]
    pub raft: RaftTiming,
}

/// Raft timing and log compaction.
///
/// A follower that has heard from a leader waits for the leader's lease
/// (`election-timeout-max`) plus a random election timeout before it
/// campaigns, so with the defaults a dead leader is replaced after 0.9-1.2 s
/// of silence: long enough for fsyncing masters on busy two-core machines,
/// short enough to fail over within two seconds.
#[derive(Args, Debug, Clone)]
pub struct RaftTiming {
    /// Interval between the leader's heartbeats.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_ms: u64,

    /// A follower starts an election after a random silence between the
    /// minimum and the maximum.
    #[arg(long, default_value_t = 300)]
    pub election_timeout_min_ms: u64,

    #[arg(long, default_value_t = 600)]
    pub election_timeout_max_ms: u64,

    /// Timeout for sending one snapshot chunk to a follower.
    #[arg(long, default_value_t = 5_000)]
    pub install_snapshot_timeout_ms: u64,

    /// Take a snapshot (and compact the log) after this many entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_logs: u64,

    /// Entries kept in the log behind the latest snapshot, so slightly
    /// lagging followers catch up without a snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keep_logs: u64,
}

impl Config {
    /// The data directory, defaulted per node id.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let base = std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".local/share/bosun"))
                .unwrap_or_else(|| PathBuf::from("bosun-data"));
            base.join(format!("master-{}", self.node_id))
        })
    }

    pub fn replica_timing(&self) -> crate::replica::ReplicaTiming {
        crate::replica::ReplicaTiming {
            leader_wait: Duration::from_millis(self.leader_wait_ms),
            join_timeout: Duration::from_millis(self.join_timeout_ms),
        }
    }

    pub fn pod_eviction(&self) -> Duration {
        Duration::from_secs_f64(self.pod_eviction_seconds.max(0.1))
    }

    pub fn event_ttl(&self) -> Duration {
        Duration::from_secs_f64(self.event_ttl_seconds.max(1.0))
    }

    /// The pod ranges and their block size.
    ///
    /// # Errors
    /// What is wrong with --cluster-cidr or --node-cidr-mask-size.
    pub fn pod_ranges(&self) -> Result<crate::controllers::node_ipam::PodRanges, String> {
        crate::controllers::node_ipam::PodRanges::parse(&self.cluster_cidr, self.node_cidr_mask_size)
    }

    pub fn node_grace(&self) -> Duration {
        Duration::from_secs_f64(self.node_grace_seconds.max(0.1))
    }

    /// Parses flags from an iterator, for tests and embedding.
    ///
    /// # Errors
    /// Clap's error for unknown or malformed flags.
    pub fn from_args<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Config::try_parse_from(std::iter::once("master".into()).chain(args.into_iter().map(Into::into)))
    }
}

impl RaftTiming {
    pub(crate) fn openraft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "bosun".to_string(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.install_snapshot_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            max_in_snapshot_log_to_keep: self.keep_logs,
            ..openraft::Config::default()
        }
    }
}
