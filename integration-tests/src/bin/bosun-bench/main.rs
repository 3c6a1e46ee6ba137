//! `bosun-bench`: benchmarks that print figures for `docs/benchmarks.md`.
//!
//! - `raft`: write throughput, latency and failover of three masters,
//!   optionally side by side with etcd.
//! - `pods`: pod start-up on one agent against the Docker engine's own
//!   floor, and the agent's memory.
//! - `schedule`: tens of thousands of pods created in bulk on a simulated
//!   cluster; pods bound per second, scheduling latency, leader memory.
//! - `simulate`: many simulated nodes heartbeating to three masters; the
//!   leader's CPU and memory.
//! - `network`: pod-to-pod throughput and round trip across hosts
//!   (network namespaces with their own engines), per backend, against
//!   the same between the hosts.
//! - `deploy`: Deployments on real agents (deploy, rolling update, node
//!   loss) against the engine's floor and Docker Swarm on the same engine.

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Master flags for the simulated clusters of a thousand nodes and more:
/// the default pod ranges (10.42.0.0/16 in /24 blocks) hold 256 nodes.
pub const WIDE_POD_RANGES: [&str; 2] = ["--cluster-cidr", "10.0.0.0/8"];

mod deploy;
mod network;
mod pod_watch;
mod pods;
mod raft;
mod schedule;
mod simulate;
mod swarm;

#[derive(Parser)]
#[command(name = "bosun-bench", about = "Bosun benchmarks")]
struct Cli {
    /// Directory with the master and node-agent binaries (default: next to
    /// this program).
    #[arg(long, global = true)]
    bin_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Write throughput, latency and failover of a three-master cluster.
    Raft(raft::RaftArgs),
    /// Pod start-up on one agent against the engine's floor; agent memory.
    Pods(pods::PodsArgs),
    /// Pods created in bulk on simulated nodes: bindings/s, latency, memory.
    Schedule(schedule::ScheduleArgs),
    /// Simulated nodes heartbeating to three masters: leader CPU and memory.
    Simulate(simulate::SimulateArgs),
    /// Deployments on real agents: deploy, rolling update, node loss;
    /// against the engine's floor and Docker Swarm.
    Deploy(deploy::DeployArgs),
    /// Pod-to-pod throughput across hosts, per backend, against the hosts'.
    Network(network::NetworkArgs),
}

/// The `p`th percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A process's resident memory in MiB, from /proc.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A process's peak resident memory in MiB, from /proc.
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub use bosun_integration_tests::cpu_time;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(dir) = &cli.bin_dir {
        // The harness finds the binaries through this variable.
        std::env::set_var("BOSUN_BIN_DIR", dir);
    }
    match cli.command {
        Bench::Raft(args) => raft::run(args).await,
        Bench::Pods(args) => pods::run(args).await,
        Bench::Schedule(args) => schedule::run(args).await,
        Bench::Simulate(args) => simulate::run(args).await,
        Bench::Deploy(args) => deploy::run(args).await,
        Bench::Network(args) => network::run(args).await,
    }
}
