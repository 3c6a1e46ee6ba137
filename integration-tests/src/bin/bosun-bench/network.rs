//! `bosun-bench network`: pod-to-pod throughput and round trip across
//! hosts, side by side with the same measurement between the hosts
//! themselves, for each backend of the pod network (issue 11).
//!
//! The hosts are network namespaces with their own engines
//! ([`HostCluster`]): `a` and `b` on one link (host-gw between them), `c`
//! behind a router on a second link (VXLAN from `a`). Each measurement is
//! one `iperf3 -c ... -J` run: the receiver's bits per second and the
//! sender's mean TCP round trip. Between hosts iperf3 runs in the hosts'
//! namespaces; between pods it runs in pods, from an image of the host's
//! own iperf3 and the libraries it links (made here, no registry). Rounds
//! alternate the order of the two, and the medians are printed. Last, a
//! fourth host joins, and the bench prints how soon the others route to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bosun_integration_tests::agents::{import_image, tar_of, wait_pod_range};
use bosun_integration_tests::hosts::{HostCluster, HostsSpec};
use bosun_integration_tests::{ctl, wait_until};
use bosun_proto::api::Pod;
use bosun_proto::client::Api;

#[derive(clap::Parser, Clone)]
pub struct NetworkArgs {
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Rounds of each measurement (medians are printed).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const IMAGE: &str = "bosun-bench/iperf3:1";
const PORT: &str = "5201";
const TIMEOUT: Duration = Duration::from_secs(120);

/// One iperf3 run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    gbits: f64,
    rtt_us: f64,
}

fn parse(json: &str) -> Result<Sample> {
    let start = json.find('{').context("no iperf3 JSON")?;
    let value: serde_json::Value = serde_json::from_str(&json[start..]).context("iperf3 JSON")?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {error}");
    }
    let bits = value["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second")?;
    let rtt = value["end"]["streams"][0]["sender"]["mean_rtt"].as_f64().unwrap_or(0.0);
    Ok(Sample {
        gbits: bits / 1e9,
        rtt_us: rtt,
    })
}

/// A root holding the host's iperf3 and every library `ldd` names.
fn image_root() -> Result<tempfile::TempDir> {
    let iperf3 = ["/usr/bin/iperf3", "/bin/iperf3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("iperf3 is missing: apt-get install iperf3")?;
    let root = tempfile::TempDir::with_prefix("bosun-bench-iperf3-")?;
    let copy = |from: &Path| -> Result<()> {
        let to = root.path().join(from.strip_prefix("/")?);
        std::fs::create_dir_all(to.parent().context("a parent")?)?;
        std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    };
    copy(&iperf3)?;
    let ldd = Command::new("ldd").arg(&iperf3).output().context("ldd")?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            copy(Path::new(path))?;
        }
    }
    std::fs::create_dir_all(root.path().join("tmp"))?;
    Ok(root)
}

fn pod(name: &str, node: &str, args: &[&str], restart: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: iperf3\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [/usr/bin/iperf3, {}]\n",
        args.join(", ")
    )
}

/// Starts an iperf3 server pod on `node`; its address.
async fn server_pod(cluster: &HostCluster, name: &str, node: &str) -> Result<String> {
    let out = ctl(
        &cluster.servers(),
        &["apply", "-f", "-"],
        &pod(name, node, &["-s", "-p", PORT], "Always"),
    )
    .await;
    ensure!(out.ok(), "{out:?}");
    let pods = Api::<Pod>::namespaced(&cluster.client(), "default");
    wait_until(TIMEOUT, &format!("{name} to run"), || async {
        let status = pods.get(name).await?.status.unwrap_or_default();
        Ok((status.phase == "Running" && !status.pod_ip.is_empty()).then_some(status.pod_ip))
    })
    .await
}

/// One pod-to-pod run: a client pod on `node` against `server`; retried
/// until the server answers.
async fn pod_run(cluster: &HostCluster, node: &str, server: &str, seconds: u32, round: usize) -> Result<Sample> {
    let pods = Api::<Pod>::namespaced(&cluster.client(), "default");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = format!("client-{node}-{round}-{attempt}");
        let args = ["-c", server, "-p", PORT, "-t", &seconds.to_string(), "-J"];
        let out = ctl(
            &cluster.servers(),
            &["apply", "-f", "-"],
            &pod(&name, node, &args, "Never"),
        )
        .await;
        ensure!(out.ok(), "{out:?}");
        let phase = wait_until(TIMEOUT, &format!("{name} to finish"), || async {
            let phase = pods.get(&name).await?.status.unwrap_or_default().phase;
            Ok(matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase))
        })
        .await?;
        let log = ctl(&cluster.servers(), &["logs", &name], "").await.stdout;
        let _ = ctl(&cluster.servers(), &["delete", "pod", &name, "--grace-period", "0"], "").await;
        match parse(&log) {
            Ok(sample) if phase == "Succeeded" => return Ok(sample),
            result if attempt < 10 => eprintln!("  retrying {name} ({phase}): {:?}", result.err()),
            result => bail!("{name} ended {phase}: {:?}\n{log}", result.err()),
        }
    }
}

/// One host-to-host run from `from` to `to`'s address.
async fn host_run(cluster: &HostCluster, from: &str, to: &str, seconds: u32) -> Result<Sample> {
    let address = cluster.host(to)?.address.to_string();
    let seconds = seconds.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = cluster
            .exec(from, &["iperf3", "-c", &address, "-p", PORT, "-t", &seconds, "-J"])
            .await?;
        match parse(&String::from_utf8_lossy(&out.stdout)) {
            Ok(sample) => return Ok(sample),
            Err(e) if attempt < 10 => {
                eprintln!("  retrying {from} -> {to}: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(args: NetworkArgs) -> Result<()> {
    let image = tar_of(image_root()?.path())?;
    let mut cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("b", 1), ("c", 2)])).await?;
    for node in ["a", "b", "c"] {
        let docker_host = cluster.host(node)?.docker_host.clone().context("an engine")?;
        import_image(&image, IMAGE, Some(&docker_host))?;
    }
    for host in ["b", "c"] {
        cluster.spawn(host, &["iperf3", "-s", "-p", PORT])?;
    }
    let to_b = server_pod(&cluster, "server-b", "b").await?;
    let to_c = server_pod(&cluster, "server-c", "c").await?;
    println!(
        "pod network: {} rounds of {} s iperf3 (one TCP stream), medians",
        args.rounds, args.seconds
    );
    println!(
        "{:<10} {:>14} {:>14} {:>7} {:>12} {:>12}",
        "backend", "hosts Gbit/s", "pods Gbit/s", "ratio", "hosts RTT", "pods RTT"
    );
    for (backend, host, pod_ip) in [("host-gw", "b", to_b), ("vxlan", "c", to_c)] {
        let (mut hosts, mut pods) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            if round % 2 == 0 {
                hosts.push(host_run(&cluster, "a", host, args.seconds).await?);
                pods.push(pod_run(&cluster, "a", &pod_ip, args.seconds, round).await?);
            } else {
                pods.push(pod_run(&cluster, "a", &pod_ip, args.seconds, round).await?);
                hosts.push(host_run(&cluster, "a", host, args.seconds).await?);
            }
        }
        let gbits = |s: &[Sample]| median(s.iter().map(|s| s.gbits).collect());
        let rtt = |s: &[Sample]| median(s.iter().map(|s| s.rtt_us).collect());
        let (h, p) = (gbits(&hosts), gbits(&pods));
        println!(
            "{backend:<10} {h:>14.2} {p:>14.2} {:>6.2}x {:>9.0} us {:>9.0} us",
            p / h,
            rtt(&hosts),
            rtt(&pods)
        );
        let all = |s: &[Sample]| {
            s.iter()
                .map(|s| format!("{:.2}", s.gbits))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("           runs: hosts {} | pods {}", all(&hosts), all(&pods));
    }
    join_delay(&mut cluster).await
}

/// How long after a joining node's range is in its Node object the other
/// agents route to it: the agents' watches see the Node, each syncs its
/// host. Read at `a`'s routes every few ms.
async fn join_delay(cluster: &mut HostCluster) -> Result<()> {
    cluster.add_host("d", 1, &[]).await?;
    let range = wait_pod_range(&cluster.client(), "d").await?.to_string();
    let seen = Instant::now();
    loop {
        let routes = cluster.exec_ok("a", &["ip", "route", "show", "proto", "98"]).await?;
        if routes.contains(&range) {
            break;
        }
        ensure!(seen.elapsed() < TIMEOUT, "a never routed to d's {range}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "a joining node: routed to by the others {} after its range was read from the masters",
        crate::ms(seen.elapsed())
    );
    Ok(())
}
