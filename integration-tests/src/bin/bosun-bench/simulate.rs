//! `bosun-bench simulate`: N simulated nodes (`node-agent simulate`)
//! registering and heartbeating to three masters; the leader's CPU and
//! memory once all are Ready.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bosun_integration_tests::{bin_dir, wait_until, MasterCluster};
use bosun_proto::api::Node;
use bosun_proto::client::{Api, Client, ListParams};

use crate::{cpu_time, rss_mib};

#[derive(clap::Parser, Clone)]
pub struct SimulateArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Seconds to measure the leader over once every node is Ready.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Point the simulated agents at a follower first, so every heartbeat
    /// is forwarded to the leader.
    #[arg(long)]
    via_follower: bool,
}

pub async fn ready_nodes(client: &Client) -> Result<usize> {
    let list = Api::<Node>::all(client)
        .stale_reads()
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.r#type == "Ready"))
                .is_some_and(|c| c.status == "True")
        })
        .count())
}

/// Starts `node-agent simulate` with `nodes` fake nodes against the
/// masters at `addrs`; its log goes to the returned temporary file, kept
/// as long as the caller holds it.
///
/// # Errors
/// When the process cannot be started.
pub fn spawn_simulator(addrs: &[String], nodes: usize) -> Result<(Child, tempfile::NamedTempFile)> {
    let log = tempfile::NamedTempFile::new()?;
    let simulator = Command::new(bin_dir().join("node-agent"))
        .args(["--master", &addrs.join(","), "simulate", "--nodes", &nodes.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.reopen()?))
        .spawn()
        .context("starting node-agent simulate")?;
    Ok((simulator, log))
}

pub async fn run(args: SimulateArgs) -> Result<()> {
    let masters = MasterCluster::start(3, &crate::WIDE_POD_RANGES).await?;
    let leader = masters.leader().await?;
    let mut order: Vec<usize> = (0..masters.masters.len()).collect();
    if args.via_follower {
        order.retain(|i| *i != leader);
        order.push(leader);
    }
    let addrs: Vec<String> = order.iter().map(|i| masters.masters[*i].addr.clone()).collect();
    let (mut simulator, _log) = spawn_simulator(&addrs, args.nodes)?;
    println!(
        "bosun-bench simulate: {} simulated nodes, 3 masters, heartbeats every 2 s to {}",
        args.nodes,
        if args.via_follower {
            "a follower (forwarded to the leader)"
        } else {
            "the leader"
        }
    );
    let client = Client::new(masters.addrs());
    let begin = Instant::now();
    let result = wait_until(Duration::from_secs(300), "every simulated node to be Ready", || async {
        Ok((ready_nodes(&client).await? >= args.nodes).then_some(()))
    })
    .await;
    if let Err(e) = result {
        let _ = simulator.kill();
        return Err(e);
    }
    println!(
        "all {} nodes Ready after {:.1} s",
        args.nodes,
        begin.elapsed().as_secs_f64()
    );
    let pids: Vec<u32> = masters.masters.iter().filter_map(|m| m.pid()).collect();
    let leader_pid = masters.masters[leader].pid().context("leader pid")?;
    let before: Vec<Duration> = pids.iter().map(|p| cpu_time(*p)).collect();
    let simulator_before = cpu_time(simulator.id());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    for (pid, before) in pids.iter().zip(before) {
        let share = (cpu_time(*pid) - before).as_secs_f64() / elapsed * 100.0;
        let role = if *pid == leader_pid { "leader" } else { "follower" };
        println!(
            "{role} (pid {pid}): {share:.1}% of a core, RSS {:.1} MiB",
            rss_mib(*pid)
        );
    }
    let simulator_share = (cpu_time(simulator.id()) - simulator_before).as_secs_f64() / elapsed * 100.0;
    println!(
        "simulator: {simulator_share:.1}% of a core, RSS {:.1} MiB",
        rss_mib(simulator.id())
    );
    let _ = simulator.kill();
    let _ = simulator.wait();
    Ok(())
}
