//! `bosun-bench deploy`: workloads (issue 5) on real masters and agents,
//! side by side with the Docker engine's floor and Docker Swarm on the
//! same engine, all running the same image and command:
//!
//! 1. **Deploy**: a Deployment of N replicas on one agent, from just
//!    before the create until a watcher sees all N pods Ready; against N
//!    containers started at once through the Docker API (on the engine's
//!    default bridge; at fixed addresses on a network of explicit subnet,
//!    as the agent starts pods of one container; and as N sandbox +
//!    container pairs, as it starts pods of several), and a Swarm service
//!    of N replicas.
//! 2. **Rolling update**: a Deployment of M Ready replicas gets a new env
//!    var (RollingUpdate, maxSurge 0, maxUnavailable 5); timed until all M
//!    new pods are Ready and no old pod is left; against `docker service
//!    update` of an M-task service, 5 at a time, stop-first.
//! 3. **Node loss**: 10 replicas packed on one of two agents; that agent
//!    is SIGKILLed and its containers stopped; timed until 10 pods are
//!    Ready on the other node, with the master's default timeouts.
//!
//! Pods are followed by a list-then-watch ([`PodWatch`]), so each
//! condition is checked at every change rather than by polling; Swarm's
//! tasks are read every 100 ms ([`crate::swarm`]).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE, TEST_LABEL};
use bosun_integration_tests::wait_until;
use bosun_proto::api::{Deployment, Node, Object};
use bosun_proto::client::{Api, Client, DeleteParams, PostParams};
use bosun_proto::codec::decode_objects;

use crate::pod_watch::{list_pods, node, ready, terminating, version, PodWatch};
use crate::pods::{addressed_floor, floor, pod_floor, COMMAND};
use crate::swarm::Swarm;
use crate::{ms, percentile};

#[derive(clap::Parser, Clone)]
pub struct DeployArgs {
    /// Replicas deployed at once (Deployment, Swarm service, floor containers).
    #[arg(long, default_value_t = 100)]
    replicas: usize,
    /// Replicas of the rolling update.
    #[arg(long, default_value_t = 20)]
    rolling_replicas: usize,
    /// Leave Docker Swarm out.
    #[arg(long)]
    skip_swarm: bool,
}

/// Replicas of the node-loss run, all fitting on one node.
const NODE_LOSS_REPLICAS: usize = 10;
/// maxUnavailable of every Deployment, and Swarm's update parallelism.
const MAX_UNAVAILABLE: usize = 5;
/// The master's default `--pod-eviction-seconds`, printed with the
/// node-loss figure (the bench starts masters with default flags).
const POD_EVICTION_DEFAULT: &str = "20 s after the last heartbeat (node grace 10 s)";
/// Longest wait for any one condition.
const TIMEOUT: Duration = Duration::from_secs(180);
const AGENT: &str = "bench-node";
/// Tries at a read-modify-write of a Deployment.
const UPDATE_ATTEMPTS: usize = 10;

/// What one run measured; a failed step keeps its error.
struct Figures {
    replicas: usize,
    rolling_replicas: usize,
    floor: Vec<Duration>,
    /// Containers at fixed addresses on a network of explicit subnet, as
    /// the agent starts pods of one container.
    addressed_floor: Duration,
    pod_floor: Duration,
    deploy: Result<Duration>,
    rolling: Result<Rolling>,
    swarm: Option<Result<SwarmFigures>>,
    node_loss: Result<NodeLoss>,
}

struct Rolling {
    /// From the update to all new pods Ready.
    new_ready: Duration,
    /// From the update to the last old pod gone from the store.
    old_gone: Duration,
    most_live: usize,
    fewest_ready: usize,
}

struct SwarmFigures {
    deploy: Duration,
    rolling: Duration,
}

struct NodeLoss {
    /// Replicas on the killed node when it was killed.
    on_victim: usize,
    /// From the kill to the node's Ready condition leaving True, by the
    /// master's clock.
    not_ready: Option<Duration>,
    /// From the kill to the first of its pods evicted, as seen by a watcher.
    evicted: Duration,
    /// From the kill to all replicas Ready on the other node.
    replaced: Duration,
}

pub async fn run(args: DeployArgs) -> Result<()> {
    let docker = bollard::Docker::connect_with_socket_defaults()?
        .negotiate_version()
        .await?;
    let engine = docker.version().await?.version.unwrap_or_default();
    println!(
        "bosun-bench deploy: image {TEST_IMAGE}, command {COMMAND:?}, Docker engine {engine}, {} replicas, rolling update of {}",
        args.replicas, args.rolling_replicas
    );
    let max_pods = (args.replicas.max(args.rolling_replicas) * 2).to_string();
    let cluster = TestCluster::start(1, &[], &[AGENT], &["--max-pods", &max_pods]).await?;
    let run = cluster.run.clone();
    let mut floors = vec![floor(&docker, args.replicas, &run).await?];
    println!(
        "engine floor: {} containers at once in {}",
        args.replicas,
        ms(floors[0])
    );
    // A /24 of this run's own pod range that no node is given.
    let subnet: bosun_proto::net::Cidr = cluster
        .pod_ranges
        .block(200)
        .parse()
        .context("the addressed floor's subnet")?;
    let addressed = addressed_floor(&docker, args.replicas, &run, subnet).await?;
    println!(
        "engine floor at fixed addresses: {} containers at once on a network of subnet {subnet} in {}",
        args.replicas,
        ms(addressed)
    );
    let pods_floor = pod_floor(&docker, args.replicas, &run).await?;
    println!(
        "engine floor for pods: {} sandboxes + containers at once in {}",
        args.replicas,
        ms(pods_floor)
    );
    let deploy = bosun_deploy(&cluster, args.replicas).await;
    remove_deployment(&cluster, "deploy").await?;
    let rolling = bosun_rolling(&cluster, args.rolling_replicas).await;
    stop_cluster(cluster).await;

    let swarm = if args.skip_swarm {
        None
    } else {
        let figures = swarm(&docker, &args, &run).await;
        if let Err(e) = &figures {
            println!("swarm: failed: {e:#}");
        }
        Some(figures)
    };
    floors.push(floor(&docker, args.replicas, &run).await?);
    println!(
        "engine floor (after): {} containers at once in {}",
        args.replicas,
        ms(floors[1])
    );
    let node_loss = node_loss().await;
    if let Err(e) = &node_loss {
        println!("node loss: failed: {e:#}");
    }
    let figures = Figures {
        replicas: args.replicas,
        rolling_replicas: args.rolling_replicas,
        floor: floors,
        addressed_floor: addressed,
        pod_floor: pods_floor,
        deploy,
        rolling,
        swarm,
        node_loss,
    };
    print_table(&figures);
    if figures.deploy.is_err()
        || figures.rolling.is_err()
        || figures.node_loss.is_err()
        || figures.swarm.as_ref().is_some_and(|s| s.is_err())
    {
        bail!("some workloads failed (see above)");
    }
    Ok(())
}

/// A Deployment of `replicas` pods on one agent: create to all Ready.
async fn bosun_deploy(cluster: &TestCluster, replicas: usize) -> Result<Duration> {
    let client = cluster.client();
    let mut watch = PodWatch::start(&client, "deploy").await?;
    let object = deployment("deploy", replicas, None)?;
    let begin = Instant::now();
    create(&client, object).await?;
    let what = format!("{replicas} pods of deploy Ready");
    let done = watch.until(TIMEOUT, &what, |w| w.count(ready) >= replicas).await;
    let done = match done {
        Ok(done) => done,
        Err(e) => {
            println!("bosun deploy: failed: {e:#}");
            return Err(e);
        }
    };
    let since = |times: &HashMap<String, Instant>| {
        let mut each: Vec<Duration> = times.values().map(|t| t.duration_since(begin)).collect();
        each.sort();
        each
    };
    let (seen, bound, each) = (
        since(&watch.first_seen),
        since(&watch.first_bound),
        since(&watch.first_ready),
    );
    let total = done.duration_since(begin);
    println!(
        "bosun deploy: {replicas} pods Ready in {} (pods seen created from {} to {}, bound from {} to {}, Ready from {}, p50 {})",
        ms(total),
        ms(percentile(&seen, 0.0)),
        ms(percentile(&seen, 100.0)),
        ms(percentile(&bound, 0.0)),
        ms(percentile(&bound, 100.0)),
        ms(percentile(&each, 0.0)),
        ms(percentile(&each, 50.0))
    );
    Ok(total)
}

/// A Deployment of `replicas` Ready pods updated to a new env var.
async fn bosun_rolling(cluster: &TestCluster, replicas: usize) -> Result<Rolling> {
    let result = rolling_update(cluster, replicas).await;
    match &result {
        Ok(r) => println!(
            "bosun rolling update: {replicas} new pods Ready in {}, last old pod gone at {}; during it at most {} live pods, at least {} Ready",
            ms(r.new_ready),
            ms(r.old_gone),
            r.most_live,
            r.fewest_ready
        ),
        Err(e) => println!("bosun rolling update: failed: {e:#}"),
    }
    result
}

async fn rolling_update(cluster: &TestCluster, replicas: usize) -> Result<Rolling> {
    let client = cluster.client();
    let mut watch = PodWatch::start(&client, "roll").await?;
    create(&client, deployment("roll", replicas, None)?).await?;
    let what = format!("{replicas} pods of roll Ready at VERSION=1");
    watch
        .until(TIMEOUT, &what, |w| {
            w.count(|p| ready(p) && version(p) == "1") == replicas
        })
        .await?;
    watch.reset_bounds();
    let begin = set_version(&client, "roll", "2").await?;
    let what = format!("{replicas} pods of roll Ready at VERSION=2");
    let new_ready = watch
        .until(TIMEOUT, &what, |w| {
            w.count(|p| ready(p) && version(p) == "2") == replicas
        })
        .await?;
    let old_gone = watch
        .until(TIMEOUT, "the old pods of roll to go", |w| {
            w.count(|p| version(p) != "2") == 0
        })
        .await?;
    Ok(Rolling {
        new_ready: new_ready.duration_since(begin),
        old_gone: old_gone.duration_since(begin),
        most_live: watch.most_live,
        fewest_ready: watch.fewest_ready,
    })
}

/// The same two workloads as Swarm services.
async fn swarm(docker: &bollard::Docker, args: &DeployArgs, run: &str) -> Result<SwarmFigures> {
    let mut swarm = Swarm::join(docker).await?;
    let name = format!("bosun-bench-{run}");
    let deploy = swarm.deploy(&name, args.replicas, TIMEOUT).await?;
    println!("swarm deploy: {} tasks running in {}", args.replicas, ms(deploy));
    swarm.remove(&name).await?;
    let name = format!("bosun-bench-{run}-roll");
    let rolling = swarm
        .rolling_update(&name, args.rolling_replicas, MAX_UNAVAILABLE, TIMEOUT)
        .await?;
    println!(
        "swarm rolling update: {} tasks of the new spec running, none of the old, in {}",
        args.rolling_replicas,
        ms(rolling)
    );
    swarm.leave().await?;
    Ok(SwarmFigures { deploy, rolling })
}

/// Two agents; 10 replicas packed on one; that agent killed and its
/// containers stopped; until 10 pods are Ready on the other.
async fn node_loss() -> Result<NodeLoss> {
    let nodes = ["bench-a", "bench-b"];
    let mut cluster = TestCluster::start(1, &[], &nodes, &["--cpus", "2", "--memory", "4Gi"]).await?;
    let client = cluster.client();
    let mut watch = PodWatch::start(&client, "lost").await?;
    create(&client, deployment("lost", NODE_LOSS_REPLICAS, Some("100m"))?).await?;
    let what = format!("{NODE_LOSS_REPLICAS} pods of lost Ready");
    watch
        .until(TIMEOUT, &what, |w| w.count(ready) == NODE_LOSS_REPLICAS)
        .await?;
    let on = |name: &str, w: &PodWatch| w.count(|p| ready(p) && node(p) == name);
    let (victim, survivor) = if on(nodes[0], &watch) >= on(nodes[1], &watch) {
        (nodes[0], nodes[1])
    } else {
        (nodes[1], nodes[0])
    };
    let on_victim = on(victim, &watch);

    let killed_wall = SystemTime::now();
    let begin = Instant::now();
    cluster.kill_agent(victim)?;
    let ids: Vec<String> = cluster
        .containers("io.bosun.node", victim)?
        .into_iter()
        .map(|c| c.0)
        .collect();
    if !ids.is_empty() {
        let stopped = tokio::process::Command::new("docker")
            .args(["stop", "-t", "0"])
            .args(&ids)
            .output()
            .await?;
        if !stopped.status.success() {
            bail!("docker stop failed: {}", String::from_utf8_lossy(&stopped.stderr));
        }
    }
    let live_on_victim = move |w: &PodWatch| w.count(|p| node(p) == victim && !terminating(p));
    let evicted = watch
        .until(TIMEOUT, "a pod of the lost node to be evicted", |w| {
            live_on_victim(w) < on_victim
        })
        .await?;
    let what = format!("{NODE_LOSS_REPLICAS} pods Ready on {survivor}");
    let replaced = watch
        .until(TIMEOUT, &what, |w| on(survivor, w) == NODE_LOSS_REPLICAS)
        .await?;
    let not_ready = not_ready_since(&client, victim)
        .await?
        .and_then(|at| at.duration_since(killed_wall).ok());
    let figures = NodeLoss {
        on_victim,
        not_ready,
        evicted: evicted.duration_since(begin),
        replaced: replaced.duration_since(begin),
    };
    stop_cluster(cluster).await;
    println!(
        "node loss: {on_victim} of {NODE_LOSS_REPLICAS} pods on {victim}; after its agent's SIGKILL: node not Ready at {}, first pod evicted at {}, {NODE_LOSS_REPLICAS} Ready on {survivor} at {} (eviction {POD_EVICTION_DEFAULT})",
        figures.not_ready.map_or("?".into(), ms),
        ms(figures.evicted),
        ms(figures.replaced)
    );
    Ok(figures)
}

/// Stops a cluster (its processes and containers go), then makes sure
/// its networks go too: the engine has been seen to refuse the removal
/// ("active endpoints") with no container left on it.
async fn stop_cluster(cluster: TestCluster) {
    let networks: Vec<String> = cluster.agents.iter().map(|a| cluster.network(&a.name)).collect();
    drop(cluster);
    for network in networks {
        remove_network(&network).await;
    }
}

async fn remove_network(network: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = tokio::process::Command::new("docker")
            .args(["network", "rm", network])
            .output()
            .await;
        let error = match output {
            Ok(o) if o.status.success() => return,
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        if error.contains("not found") || error.contains("No such network") {
            return;
        }
        if Instant::now() >= deadline {
            println!("warning: network {network} left behind: {error}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes a Deployment and waits until its pods and all the run's
/// containers are gone.
async fn remove_deployment(cluster: &TestCluster, name: &str) -> Result<()> {
    let client = cluster.client();
    let deleted = Api::<Deployment>::namespaced(&client, "default")
        .delete(name, &DeleteParams::default())
        .await;
    match deleted {
        Ok(_) => {}
        Err(e) if e.code() == Some(tonic::Code::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let what = format!("the pods of {name} and their containers to go");
    wait_until(TIMEOUT, &what, || async {
        let pods = list_pods(&client, name).await?.items.len();
        let containers = cluster.containers(TEST_LABEL, &cluster.run)?.len();
        Ok((pods == 0 && containers == 0).then_some(()))
    })
    .await
}

/// A Deployment of the bench's image and command, VERSION=1, rolling
/// `MAX_UNAVAILABLE` at a time with no surge; pods request `cpu` if given.
fn deployment(name: &str, replicas: usize, cpu: Option<&str>) -> Result<Object> {
    let resources = cpu
        .map(|cpu| format!("          resources: {{requests: {{cpu: {cpu}}}}}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 0, maxUnavailable: {MAX_UNAVAILABLE}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n        - name: app\n          image: {TEST_IMAGE}\n          imagePullPolicy: Never\n          command: [{command}]\n          env: [{{name: VERSION, value: \"1\"}}]\n{resources}",
        command = COMMAND.map(|c| format!("{c:?}")).join(", ")
    );
    Ok(decode_objects(&yaml, "bench")?.remove(0))
}

/// Sets VERSION in a Deployment's template as `kubectl set env` would:
/// read, change, write at the version read, again on a conflict (the
/// controller writes the status meanwhile). When the accepted write was sent.
async fn set_version(client: &Client, name: &str, version: &str) -> Result<Instant> {
    for _ in 0..UPDATE_ATTEMPTS {
        let mut deployment = Api::<Deployment>::namespaced(client, "default").get(name).await?;
        let container = deployment
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut())
            .and_then(|s| s.containers.first_mut())
            .context("the deployment has no container")?;
        for var in container.env.iter_mut().filter(|v| v.name == "VERSION") {
            var.value = version.into();
        }
        let sent = Instant::now();
        match Api::<Deployment>::namespaced(client, "default")
            .update(&PostParams::default(), deployment)
            .await
        {
            Ok(_) => return Ok(sent),
            Err(e) if e.code() == Some(tonic::Code::Aborted) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("deployment {name} kept changing: {UPDATE_ATTEMPTS} updates conflicted")
}

async fn create(client: &Client, object: Object) -> Result<()> {
    let kind = object.kind().context("an object with a kind")?;
    Api::dynamic(client, kind, "default")
        .create(&PostParams::default(), object)
        .await?;
    Ok(())
}

/// When the node's Ready condition last changed, if it is not True now.
async fn not_ready_since(client: &Client, name: &str) -> Result<Option<SystemTime>> {
    let node = Api::<Node>::all(client).get(name).await?;
    let condition = node
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.r#type == "Ready"))
        .context("the node has no Ready condition")?;
    if condition.status == "True" {
        return Ok(None);
    }
    Ok(condition
        .last_transition_time
        .and_then(|t| SystemTime::try_from(t).ok()))
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
}

/// The figures as a Markdown table, for docs/benchmarks.md.
fn print_table(f: &Figures) {
    let floor = f.floor.iter().sum::<Duration>() / f.floor.len().max(1) as u32;
    let floors: Vec<String> = f.floor.iter().map(|d| secs(*d)).collect();
    let failed = |e: &anyhow::Error| format!("failed: {}", format!("{e:#}").lines().next().unwrap_or_default());
    let swarm_deploy = f.swarm.as_ref().map(|s| s.as_ref().map(|s| s.deploy));
    let swarm_rolling = f.swarm.as_ref().map(|s| s.as_ref().map(|s| s.rolling));
    let swarm_cell = |d: &Option<Result<Duration, &anyhow::Error>>| match d {
        None => "skipped".to_string(),
        Some(Ok(d)) => secs(*d),
        Some(Err(e)) => failed(e),
    };
    let versus_swarm = |bosun: Duration, d: &Option<Result<Duration, &anyhow::Error>>| match d {
        Some(Ok(d)) => ratio(bosun, *d),
        _ => "-".to_string(),
    };
    println!();
    println!("| workload | Bosun | engine floor | Docker Swarm | Bosun / floor | Bosun / Swarm |");
    println!("|---|---|---|---|---|---|");
    let pods_floor = secs(f.pod_floor);
    let floor_cell = format!(
        "{} containers: {}; {} at fixed addresses; {pods_floor} as pods",
        f.replicas,
        floors.join(" / "),
        secs(f.addressed_floor)
    );
    match &f.deploy {
        Ok(d) => println!(
            "| deploy {} replicas on one node | {} | {floor_cell} | {} | {} ({} at fixed addresses, {} as pods) | {} |",
            f.replicas,
            secs(*d),
            swarm_cell(&swarm_deploy),
            ratio(*d, floor),
            ratio(*d, f.addressed_floor),
            ratio(*d, f.pod_floor),
            versus_swarm(*d, &swarm_deploy)
        ),
        Err(e) => println!(
            "| deploy {} replicas on one node | {} | {floor_cell} | {} | - | - |",
            f.replicas,
            failed(e),
            swarm_cell(&swarm_deploy)
        ),
    }
    let what = format!("rolling update of {}, {MAX_UNAVAILABLE} at a time", f.rolling_replicas);
    match &f.rolling {
        Ok(r) => println!(
            "| {what} | {} (all new Ready at {}) | - | {} | - | {} |",
            secs(r.old_gone.max(r.new_ready)),
            secs(r.new_ready),
            swarm_cell(&swarm_rolling),
            versus_swarm(r.old_gone.max(r.new_ready), &swarm_rolling)
        ),
        Err(e) => println!(
            "| {what} | {} | - | {} | - | - |",
            failed(e),
            swarm_cell(&swarm_rolling)
        ),
    }
    let what = format!("node loss, {NODE_LOSS_REPLICAS} replicas");
    match &f.node_loss {
        Ok(n) => println!(
            "| {what} | {} ({} on the lost node; not Ready at {}, first eviction at {}; eviction {POD_EVICTION_DEFAULT}) | - | not measured | - | - |",
            secs(n.replaced),
            n.on_victim,
            n.not_ready.map_or("?".into(), secs),
            secs(n.evicted)
        ),
        Err(e) => println!("| {what} | {} | - | not measured | - | - |", failed(e)),
    }
}
