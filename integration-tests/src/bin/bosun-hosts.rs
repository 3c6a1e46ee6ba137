//! `bosun-hosts`: a cluster to try Bosun on, made of hosts on this one
//! machine (each a network namespace with its own Docker engine and node
//! agent) and masters on hosts of their own, by the harness the tests use.
//! Runs until Ctrl-C, then removes everything it made. Needs root.
//! `integration-tests/dev.sh up --hosts N` builds and runs it.

use anyhow::{ensure, Result};
use bosun_integration_tests::agents::TEST_IMAGE;
use bosun_integration_tests::bin_dir;
use bosun_integration_tests::hosts::{HostCluster, HostsSpec};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser, Debug)]
#[command(
    name = "bosun-hosts",
    about = "Run Bosun on hosts made of network namespaces on this machine"
)]
struct Args {
    /// Node hosts (host-1, host-2...), each with its own engine and agent.
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    /// Masters, each on a host of its own.
    #[arg(long, default_value_t = 1)]
    masters: usize,
    /// 2 for a second link behind a router (hosts alternate between the
    /// links).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    links: u8,
    /// A flag for every agent (repeat it: --agent-arg=--cpus --agent-arg=4).
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    agent_args: Vec<String>,
    /// A flag for every master (repeat it).
    #[arg(long = "master-arg", allow_hyphen_values = true)]
    master_args: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let status = std::fs::read_to_string("/proc/self/status")?;
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    ensure!(
        root,
        "bosun-hosts makes network namespaces and runs engines: run it as root"
    );
    let links = usize::from(args.links);
    let names: Vec<(String, usize)> = (1..=args.hosts)
        .map(|i| (format!("host-{i}"), 1 + (i - 1) % links))
        .collect();
    let hosts: Vec<(&str, usize)> = names.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let master_args: Vec<&str> = args.master_args.iter().map(String::as_str).collect();
    let agent_args: Vec<&str> = args.agent_args.iter().map(String::as_str).collect();
    let spec = HostsSpec::new(args.masters, &hosts)
        .links(links)
        .master_args(&master_args)
        .agent_args(&agent_args);
    eprintln!("starting {} master(s) and {} host(s)...", args.masters, args.hosts);
    let cluster = HostCluster::start(spec).await?;
    print_usage(&cluster);
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("removing the hosts...");
    drop(cluster);
    eprintln!("removed");
    Ok(())
}

fn print_usage(cluster: &HostCluster) {
    let servers = cluster.servers().join(",");
    println!("Bosun is running on hosts of this machine:");
    for (index, addr) in cluster.servers().iter().enumerate() {
        if let Ok(host) = cluster.host(&format!("master-{}", index + 1)) {
            println!("  {:<10} {addr:<21} netns {}", host.name, host.netns);
        }
    }
    for host in cluster.nodes() {
        let engine = host.docker_host.as_deref().unwrap_or_default();
        println!(
            "  {:<10} {:<21} netns {}  engine {engine}",
            host.name,
            format!("{} (link {})", host.address, host.link),
            host.netns
        );
    }
    if let Ok(router) = cluster.host("router") {
        println!("  {:<10} {:<21} netns {}", router.name, router.address, router.netns);
    }
    let first = cluster.nodes().first().map(|h| (*h).clone());
    println!("\nIn another shell:");
    println!("    export BOSUN_SERVER={servers}");
    println!("    export PATH=\"{}:$PATH\"", bin_dir().display());
    println!("    ctl get nodes");
    if let Some(host) = first {
        let engine = host.docker_host.clone().unwrap_or_default();
        println!("On a host (its network namespace, its engine):");
        println!("    nsenter --net={} ip addr", host.netns_path());
        println!("    docker -H {engine} ps");
        println!("    docker -H {engine} run --rm {TEST_IMAGE} ip addr");
        println!("Logs: {}/agent.log and dockerd.log", host.dir.display());
    }
    println!(
        "Masters' logs: {}/master-N.log. Every engine has the image {TEST_IMAGE}.",
        cluster.masters.data_dir().display()
    );
    println!("Press Ctrl-C to stop and remove everything.");
}
