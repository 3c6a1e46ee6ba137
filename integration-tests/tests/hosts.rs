//! The hosts harness: hosts on this one machine, each a network namespace
//! with an engine and an agent of its own, reaching each other over a
//! link a test can cut, and leaving nothing behind.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::agents::{TEST_IMAGE, TEST_LABEL};
use bosun_integration_tests::hosts::{HostCluster, HostsSpec};
use bosun_integration_tests::wait_until;

/// Whether host `from` gets an answer to a ping of `to`.
async fn pings(cluster: &HostCluster, from: &str, to: &str) -> Result<bool> {
    let output = cluster.exec(from, &["busybox", "ping", "-c1", "-W1", to]).await?;
    Ok(output.status.success())
}

async fn wait_ping(cluster: &HostCluster, from: &str, to: &str, answered: bool) -> Result<()> {
    let what = format!("{from} {} {to}", if answered { "to reach" } else { "to stop reaching" });
    wait_until(Duration::from_secs(10), &what, || async {
        Ok((pings(cluster, from, to).await? == answered).then_some(()))
    })
    .await
}

/// A process that runs (a zombie has finished).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with(|c| c != 'Z')))
        .unwrap_or(false)
}

/// What a cluster made that must go with it: namespaces, the root veth,
/// files, and processes.
struct Traces {
    prefix: String,
    pids: Vec<u32>,
}

impl Traces {
    fn of(netns: &str, pids: Vec<u32>) -> Traces {
        let prefix = netns.split('-').next().unwrap_or(netns).to_string();
        Traces { prefix, pids }
    }

    fn left(&self) -> Vec<String> {
        let mut left: Vec<String> = std::fs::read_dir("/var/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{}-", self.prefix)))
            .map(|n| format!("namespace {n}"))
            .collect();
        if Path::new("/sys/class/net").join(&self.prefix).exists() {
            left.push(format!("veth {}", self.prefix));
        }
        if Path::new("/tmp").join(&self.prefix).exists() {
            left.push(format!("/tmp/{}", self.prefix));
        }
        left.extend(
            self.pids
                .iter()
                .filter(|p| running(**p))
                .map(|p| format!("process {p}")),
        );
        left
    }
}

/// The pids of a node host's engine and of one container it runs.
async fn engine_and_container(cluster: &HostCluster, name: &str) -> Result<Vec<u32>> {
    let host = cluster.host(name)?;
    let dockerd: u32 = std::fs::read_to_string(host.dir.join("docker.pid"))?.trim().parse()?;
    let label = format!("{TEST_LABEL}={}", cluster.run);
    let run = ["run", "-d", "--label", &label, TEST_IMAGE, "sleep", "600"];
    let out = cluster.docker_cli(name, &run).await?;
    ensure!(out.status.success(), "docker run on {name}: {out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = cluster
        .docker_cli(name, &["inspect", "-f", "{{.State.Pid}}", &id])
        .await?;
    let container: u32 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    ensure!(
        running(dockerd) && running(container),
        "dockerd {dockerd}, container {container}"
    );
    Ok(vec![dockerd, container])
}

#[tokio::test]
async fn hosts_run_engines_of_their_own_and_reach_each_other_until_cut() -> Result<()> {
    let cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("b", 1)])).await?;
    // Both nodes are Ready (start waited), with the addresses they were given.
    for name in ["a", "b"] {
        let node = cluster.wait_node_ready(name, true).await?;
        let addresses = node.status.unwrap_or_default().addresses;
        let address = cluster.host(name)?.address.to_string();
        ensure!(addresses.iter().any(|a| a.address == address), "{name}: {addresses:?}");
    }
    // Each engine answers and runs BusyBox, and sees only its own containers.
    let label = format!("{TEST_LABEL}={}", cluster.run);
    for name in ["a", "b"] {
        cluster.docker(name).await?.ping().await?;
        let echo = format!("hello from {name}");
        let container = format!("echo-{name}");
        let run = [
            "run", "--name", &container, "--label", &label, TEST_IMAGE, "echo", &echo,
        ];
        let out = cluster.docker_cli(name, &run).await?;
        ensure!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == echo,
            "{name}: {out:?}"
        );
    }
    let out = cluster.docker_cli("b", &["ps", "-a", "--format", "{{.Names}}"]).await?;
    let names = String::from_utf8_lossy(&out.stdout);
    ensure!(
        names.lines().any(|n| n == "echo-b") && !names.lines().any(|n| n == "echo-a"),
        "b's engine lists {names:?}"
    );
    // The hosts reach each other on their link, until one is cut off.
    let b = cluster.host("b")?.address.to_string();
    wait_ping(&cluster, "a", &b, true).await?;
    cluster.cut("b")?;
    wait_ping(&cluster, "a", &b, false).await?;
    cluster.heal("b")?;
    wait_ping(&cluster, "a", &b, true).await?;
    // Everything goes with the cluster: namespaces, veths, engines and
    // their containers, files.
    let traces = Traces::of(&cluster.host("a")?.netns, engine_and_container(&cluster, "a").await?);
    ensure!(traces.left().len() > 2, "traces seen: {:?}", traces.left());
    drop(cluster);
    let left = traces.left();
    ensure!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

#[tokio::test]
async fn hosts_on_two_links_reach_each_other_and_the_outside_through_the_router() -> Result<()> {
    let mut cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("c", 2)])).await?;
    let (a, router) = (cluster.host("a")?.address, cluster.host("router")?.address);
    ensure!(!cluster.subnet(2).contains(a) && cluster.subnet(2).contains(cluster.host("c")?.address));
    // c, whose agent reached the master through the router, goes to a
    // through the router.
    let route = cluster.exec_ok("c", &["ip", "route", "get", &a.to_string()]).await?;
    let via = cluster.subnet(2).address(254).context("router on link 2")?;
    ensure!(route.contains(&format!("via {via}")), "{route} (router {router})");
    wait_ping(&cluster, "c", &a.to_string(), true).await?;
    // A server on link 1 that is no node answers both.
    let outside = cluster.outside(1)?;
    let site = outside.dir.join("site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), "outside\n")?;
    let site = site.display().to_string();
    cluster.spawn(&outside.name, &["busybox", "httpd", "-f", "-p", "8080", "-h", &site])?;
    let url = format!("http://{}:8080/", outside.address);
    for name in ["a", "c"] {
        let fetched = wait_until(Duration::from_secs(10), &format!("{name} to fetch {url}"), || async {
            // Not wget's -T: BusyBox 1.35's wget crashes with it.
            let out = cluster
                .exec(name, &["timeout", "2", "busybox", "wget", "-q", "-O", "-", &url])
                .await?;
            Ok(out
                .status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
        })
        .await?;
        ensure!(fetched == "outside\n", "{name} fetched {fetched:?}");
    }
    // Without the router the links are apart; a still reaches the outside.
    cluster.cut("router")?;
    wait_ping(&cluster, "c", &a.to_string(), false).await?;
    wait_ping(&cluster, "a", &outside.address.to_string(), true).await?;
    cluster.heal("router")?;
    wait_ping(&cluster, "c", &a.to_string(), true).await?;
    Ok(())
}

/// A host added to a running cluster joins it; a host removed takes its
/// engine and containers with it.
#[tokio::test]
async fn a_host_added_joins_and_a_host_removed_leaves_nothing() -> Result<()> {
    let mut cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1)])).await?;
    cluster.add_host("d", 1, &[]).await?;
    cluster.wait_node_ready("d", true).await?;
    let d = cluster.host("d")?.clone();
    let pids = engine_and_container(&cluster, "d").await?;
    // The agent comes back after a kill.
    cluster.kill_agent("d")?;
    cluster.restart_agent("d")?;
    cluster.wait_node_ready("d", true).await?;
    cluster.remove_host("d")?;
    ensure!(cluster.host("d").is_err());
    ensure!(!pids.iter().any(|p| running(*p)), "still running: {pids:?}");
    ensure!(!Path::new(&d.netns_path()).exists() && !d.dir.exists(), "{d:?} left");
    wait_ping(&cluster, "a", &d.address.to_string(), false).await?;
    cluster.wait_node_ready("d", false).await?;
    Ok(())
}

/// What a killed run left (here: `bosun-hosts` killed with SIGKILL) goes
/// when the next cluster starts.
#[tokio::test]
async fn what_a_killed_run_left_is_swept_by_the_next() -> Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bosun-hosts"))
        .args(["--hosts", "1", "--masters", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    // The line naming the host's namespace, and the engine's pid file.
    let found = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                let netns = line.split_whitespace().find(|w| w.starts_with("bosunh"))?.to_string();
                line.contains("netns").then_some(netns)
            })
    });
    let netns = tokio::time::timeout(Duration::from_secs(120), found)
        .await
        .context("bosun-hosts did not come up")??
        .context("bosun-hosts ended before it came up")?;
    let prefix = netns.split('-').next().unwrap_or_default().to_string();
    let pid_file = Path::new("/tmp").join(&prefix).join("host-1").join("docker.pid");
    wait_until(Duration::from_secs(60), "the engine's pid file", || async {
        Ok(pid_file.exists().then_some(()))
    })
    .await?;
    // Everything running on its hosts: masters, engines, agents.
    let host_1 = format!("{prefix}-host-1");
    let mut pids = Vec::new();
    for netns in [netns.as_str(), host_1.as_str()] {
        let out = Command::new("ip").args(["netns", "pids", netns]).output()?;
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    ensure!(pids.len() >= 3, "processes of the run: {pids:?}");
    child.kill()?;
    child.wait()?;
    let traces = Traces::of(&netns, pids);
    ensure!(traces.left().len() > 3, "nothing to sweep: {:?}", traces.left());
    let cluster = HostCluster::start(HostsSpec::new(1, &[]).no_wait()).await?;
    // The new cluster may have the slot the killed run had, and so its names.
    let mine = cluster.host("master-1")?.netns.clone();
    let left: Vec<String> = traces
        .left()
        .into_iter()
        .filter(|t| !mine.starts_with(&format!("{prefix}-")) || t.starts_with("process") || t.ends_with("host-1"))
        .collect();
    ensure!(left.is_empty(), "left behind: {left:?}");
    drop(cluster);
    Ok(())
}
