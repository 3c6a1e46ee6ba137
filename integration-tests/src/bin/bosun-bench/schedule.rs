//! `bosun-bench schedule`: three masters, N simulated nodes, and M pods
//! created in bulk by concurrent clients (or, with `--replicasets`, by
//! the ReplicaSet controller). Prints pods bound per second
//! (from the first create to the last committed binding), the scheduling
//! latency of each pod (create acknowledged to binding seen on a watch),
//! the leader's CPU and memory, and checks that no node is overcommitted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_integration_tests::{channel, wait_until, MasterCluster};
use bosun_master::scheduler::{place_pending, Strategy};
use bosun_master::store::Objects;
use bosun_proto::api::objects_client::ObjectsClient;
use bosun_proto::api::{
    Container, CreateRequest, LabelSelector, ListRequest, Node, NodeCondition, NodeStatus, Object, ObjectMeta,
    OwnerReference, Pod, PodSpec, PodTemplateSpec, Quantity, ReplicaSet, ReplicaSetSpec, ResourceRequirements,
    WatchRequest,
};
use bosun_proto::client::Client;
use bosun_proto::resources::{node_allocatable, pod_requests, Usage};
use tokio::sync::Notify;

use crate::simulate::ready_nodes;
use crate::{cpu_time, ms, peak_rss_mib, percentile, rss_mib};

#[derive(clap::Parser, Clone)]
pub struct ScheduleArgs {
    /// Simulated nodes (8 CPUs and 32 GiB each).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods to create.
    #[arg(long, default_value_t = 30_000)]
    pods: usize,
    /// Concurrent creating clients, each with its own connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// The pods belong to this many controllers (ReplicaSet owner
    /// references), so the spreading score has work to do.
    #[arg(long, default_value_t = 30)]
    owners: usize,
    /// Create the pods through `--owners` ReplicaSets (one create request
    /// each; the leader's ReplicaSet controller creates the pods), as a user
    /// creates pods in bulk, instead of one create request per pod.
    #[arg(long)]
    replicasets: bool,
    /// Send every create to the leader instead of spreading clients over all
    /// masters (followers forward writes to the leader).
    #[arg(long)]
    leader_only: bool,
    /// Measure the placement logic alone, in this process: the same nodes
    /// and pods, placed as the leader's scheduler places them, with no
    /// masters, Raft or network.
    #[arg(long)]
    in_process: bool,
    /// Extra flags for every master, e.g. "--scheduler-strategy=least-allocated".
    #[arg(long, allow_hyphen_values = true)]
    master_flag: Vec<String>,
}

/// Requests cycle through these, so nodes fill unevenly: (cpu, memory).
const SIZES: [(&str, &str); 4] = [("50m", "64Mi"), ("100m", "128Mi"), ("250m", "256Mi"), ("100m", "512Mi")];

/// Owners for the pods, `(name, uid)`: stand-ins for the in-process
/// measurement, which has no garbage collector.
fn fake_owners(count: usize) -> Vec<(String, String)> {
    (0..count.max(1))
        .map(|i| (format!("bench-{i}"), format!("00000000-0000-4000-8000-{i:012}")))
        .collect()
}

/// Creates the pods' owners (ConfigMaps: an owner must exist, or the
/// garbage collector deletes what it owns, and a ReplicaSet would manage
/// the pods itself); returns `(name, uid)` of each.
async fn create_owners(addr: &str, count: usize) -> Result<Vec<(String, String)>> {
    let mut objects = ObjectsClient::new(channel(addr).await?);
    let mut owners = Vec::new();
    for i in 0..count.max(1) {
        let name = format!("bench-{i}");
        let request = CreateRequest {
            object: Some(bosun_integration_tests::config_map("default", &name, "owner")),
            ..Default::default()
        };
        let created = objects
            .create(request)
            .await
            .context("creating a pod owner")?
            .into_inner();
        let uid = created.metadata().map(|m| m.uid.clone()).unwrap_or_default();
        owners.push((name, uid));
    }
    Ok(owners)
}

fn pod(index: usize, owners: &[(String, String)]) -> Object {
    let (owner_name, owner_uid) = &owners[index % owners.len()];
    Pod {
        metadata: Some(ObjectMeta {
            name: format!("bench-{index}"),
            namespace: "default".into(),
            labels: [("app".to_string(), owner_name.clone())].into(),
            owner_references: vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: owner_name.clone(),
                uid: owner_uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            ..Default::default()
        }),
        spec: Some(pod_spec(index)),
        ..Default::default()
    }
    .into()
}

/// One container requesting the `index`th of [`SIZES`], in turn.
fn pod_spec(index: usize) -> PodSpec {
    let (cpu, memory) = SIZES[index % SIZES.len()];
    let quantity = |v: &str| Quantity { value: v.into() };
    PodSpec {
        containers: vec![Container {
            name: "app".into(),
            image: "bench:latest".into(),
            resources: Some(ResourceRequirements {
                requests: [
                    ("cpu".to_string(), quantity(cpu)),
                    ("memory".to_string(), quantity(memory)),
                ]
                .into(),
                limits: HashMap::new(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A simulated node as its agent registers it: Ready, 8 CPUs, 32 GiB.
fn node(index: usize) -> Object {
    let quantity = |v: &str| Quantity { value: v.into() };
    let resources: HashMap<String, Quantity> = [
        ("cpu".to_string(), quantity("8")),
        ("memory".to_string(), quantity("32Gi")),
        ("pods".to_string(), quantity("110")),
    ]
    .into();
    Node {
        metadata: Some(ObjectMeta {
            name: format!("sim-{index}"),
            uid: format!("node-{index}"),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: resources.clone(),
            allocatable: resources,
            conditions: vec![NodeCondition {
                r#type: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .into()
}

/// `--in-process`: the scheduler's placement of every pod, timed.
fn in_process(args: &ScheduleArgs) -> Result<()> {
    let mut objects = Objects::default();
    for index in 0..args.nodes {
        objects.insert(Arc::new(node(index)));
    }
    let owners = fake_owners(args.owners);
    for index in 0..args.pods {
        let mut pod = pod(index, &owners);
        if let Some(meta) = pod.metadata_mut() {
            meta.uid = meta.name.clone();
        }
        objects.insert(Arc::new(pod));
    }
    println!(
        "bosun-bench schedule --in-process: {} nodes (8 CPUs, 32 GiB), {} pending pods, most-allocated",
        args.nodes, args.pods
    );
    let started = Instant::now();
    let (placed, unschedulable) = place_pending(&objects, Strategy::MostAllocated);
    let elapsed = started.elapsed();
    println!(
        "placed {placed} pods ({unschedulable} fit nowhere) in {:.3} s: {:.0} pods/s, {:.1} µs per pod",
        elapsed.as_secs_f64(),
        placed as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / args.pods.max(1) as f64
    );
    if placed != args.pods {
        bail!("{unschedulable} pods did not fit; the cluster has room for all of them");
    }
    Ok(())
}

/// When each pod was first seen bound, by name.
#[derive(Default)]
struct Bindings {
    seen: Mutex<HashMap<String, Instant>>,
    /// When each pod was first seen at all (its creation, for pods the
    /// controllers create).
    first_seen: Mutex<HashMap<String, Instant>>,
    /// Pod changes seen on the watch (creations, bindings, status reports).
    changes: AtomicUsize,
    all: Notify,
}

impl Bindings {
    fn record(&self, pod: &Pod, want: usize) {
        if let Some(meta) = pod.metadata.as_ref() {
            let mut first_seen = self.first_seen.lock().expect("bindings lock");
            first_seen.entry(meta.name.clone()).or_insert_with(Instant::now);
        }
        let bound = pod.spec.as_ref().is_some_and(|s| !s.node_name.is_empty());
        let Some(meta) = pod.metadata.as_ref().filter(|_| bound) else {
            return;
        };
        let mut seen = self.seen.lock().expect("bindings lock");
        seen.entry(meta.name.clone()).or_insert_with(Instant::now);
        if seen.len() >= want {
            self.all.notify_one();
        }
    }
}

/// Watches pods on `addr` and records bindings; re-lists and resumes if
/// the watch falls behind the kept history or breaks.
async fn watch_bindings(addr: String, bindings: Arc<Bindings>, want: usize) {
    loop {
        let Ok(channel) = channel(&addr).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut objects = ObjectsClient::new(channel).max_decoding_message_size(usize::MAX);
        let list = objects
            .list(ListRequest {
                kind: "Pod".into(),
                namespace: "default".into(),
                ..Default::default()
            })
            .await;
        let Ok(list) = list.map(tonic::Response::into_inner) else {
            continue;
        };
        for pod in list.items.into_iter().filter_map(|o| Pod::try_from(o).ok()) {
            bindings.record(&pod, want);
        }
        let watch = objects
            .watch(WatchRequest {
                kind: "Pod".into(),
                namespace: "default".into(),
                since_revision: list.revision,
                ..Default::default()
            })
            .await;
        let Ok(mut stream) = watch.map(tonic::Response::into_inner) else {
            continue;
        };
        while let Ok(Some(event)) = stream.message().await {
            bindings.changes.fetch_add(1, Ordering::Relaxed);
            if let Some(pod) = event.object.and_then(|o| Pod::try_from(o).ok()) {
                bindings.record(&pod, want);
            }
        }
    }
}

/// Creates pods `first, first + step, ...` below `total`; returns the time
/// each create was acknowledged.
async fn create_pods(
    addr: String,
    first: usize,
    step: usize,
    args: ScheduleArgs,
    owners: Arc<Vec<(String, String)>>,
) -> Result<Vec<(String, Instant)>> {
    let mut objects = ObjectsClient::new(channel(&addr).await?);
    let mut acknowledged = Vec::new();
    for index in (first..args.pods).step_by(step) {
        let request = CreateRequest {
            object: Some(pod(index, &owners)),
            ..Default::default()
        };
        objects
            .create(request)
            .await
            .with_context(|| format!("creating pod bench-{index} through {addr}"))?;
        acknowledged.push((format!("bench-{index}"), Instant::now()));
    }
    Ok(acknowledged)
}

/// Creates `owners` ReplicaSets sharing `pods` replicas; their pods request
/// the sizes of [`SIZES`] in turn, one size per set.
async fn create_replicasets(addr: &str, args: &ScheduleArgs) -> Result<()> {
    let mut objects = ObjectsClient::new(channel(addr).await?);
    let sets = args.owners.max(1);
    for i in 0..sets {
        let replicas = args.pods / sets + usize::from(i < args.pods % sets);
        let name = format!("bench-rs-{i}");
        let labels: HashMap<String, String> = [("app".to_string(), name.clone())].into();
        let set = ReplicaSet {
            metadata: Some(ObjectMeta {
                name: name.clone(),
                namespace: "default".into(),
                ..Default::default()
            }),
            spec: Some(ReplicaSetSpec {
                replicas: Some(i32::try_from(replicas)?),
                selector: Some(LabelSelector {
                    match_labels: labels.clone(),
                    ..Default::default()
                }),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: labels.clone(),
                        ..Default::default()
                    }),
                    spec: Some(pod_spec(i)),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        objects
            .create(CreateRequest {
                object: Some(set.into()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating ReplicaSet {name}"))?;
    }
    Ok(())
}

/// Nodes whose bound pods request more than they can allocate.
async fn overcommitted_nodes(client: &Client) -> Result<Vec<String>> {
    let list = |kind: &'static str| {
        client.call(move |channel| async move {
            ObjectsClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .list(ListRequest {
                    kind: kind.into(),
                    ..Default::default()
                })
                .await
                .map(tonic::Response::into_inner)
        })
    };
    let mut used: HashMap<String, Usage> = HashMap::new();
    for pod in list("Pod")
        .await?
        .items
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
    {
        let Some(spec) = pod.spec else { continue };
        let requests = pod_requests(&spec);
        let usage = used.entry(spec.node_name).or_default();
        usage.cpu_millis += requests.cpu_millis;
        usage.memory_bytes += requests.memory_bytes;
        usage.pods += 1;
    }
    let mut over = Vec::new();
    for node in list("Node")
        .await?
        .items
        .into_iter()
        .filter_map(|o| Node::try_from(o).ok())
    {
        let name = node.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let (Some(usage), capacity) = (used.get(&name), node_allocatable(&node)) else {
            continue;
        };
        if usage.cpu_millis > capacity.cpu_millis
            || usage.memory_bytes > capacity.memory_bytes
            || usage.pods > capacity.pods
        {
            over.push(name);
        }
    }
    Ok(over)
}

pub async fn run(args: ScheduleArgs) -> Result<()> {
    if args.in_process {
        return in_process(&args);
    }
    let mut flags: Vec<&str> = crate::WIDE_POD_RANGES.to_vec();
    flags.extend(args.master_flag.iter().map(String::as_str));
    let masters = MasterCluster::start(3, &flags).await?;
    let leader = masters.leader().await?;
    let leader_pid = masters.masters[leader].pid().context("leader pid")?;
    let (mut simulator, _log) = crate::simulate::spawn_simulator(&masters.addrs(), args.nodes)?;
    let result = measure(&args, &masters, leader, leader_pid).await;
    let _ = simulator.kill();
    let _ = simulator.wait();
    result
}

async fn measure(args: &ScheduleArgs, masters: &MasterCluster, leader: usize, leader_pid: u32) -> Result<()> {
    let source = if args.replicasets {
        format!("through {} ReplicaSets", args.owners.max(1))
    } else if args.leader_only {
        format!("from {} clients (all to the leader)", args.clients)
    } else {
        format!("from {} clients (spread over the masters)", args.clients)
    };
    println!(
        "bosun-bench schedule: 3 masters, {} simulated nodes (8 CPUs, 32 GiB), {} pods {source}",
        args.nodes, args.pods
    );
    let client = Client::new(masters.addrs());
    wait_until(Duration::from_secs(300), "every simulated node to be Ready", || async {
        Ok((ready_nodes(&client).await? >= args.nodes).then_some(()))
    })
    .await?;
    println!(
        "all {} nodes Ready; leader RSS {:.1} MiB",
        args.nodes,
        rss_mib(leader_pid)
    );

    let bindings = Arc::new(Bindings::default());
    let watcher = tokio::spawn(watch_bindings(
        masters.masters[leader].addr.clone(),
        bindings.clone(),
        args.pods,
    ));
    let addrs: Vec<String> = if args.leader_only {
        vec![masters.masters[leader].addr.clone()]
    } else {
        masters.addrs()
    };
    let owners = if args.replicasets {
        Arc::default()
    } else {
        Arc::new(create_owners(&addrs[0], args.owners).await?)
    };
    let cpu_before = cpu_time(leader_pid);
    let started = Instant::now();
    let mut acknowledged = HashMap::new();
    if args.replicasets {
        create_replicasets(&addrs[0], args).await?;
        println!(
            "created {} ReplicaSets of {} pods in all in {:.3} s",
            args.owners.max(1),
            args.pods,
            started.elapsed().as_secs_f64()
        );
    } else {
        let creators: Vec<_> = (0..args.clients)
            .map(|i| {
                tokio::spawn(create_pods(
                    addrs[i % addrs.len()].clone(),
                    i,
                    args.clients,
                    args.clone(),
                    owners.clone(),
                ))
            })
            .collect();
        for creator in creators {
            acknowledged.extend(creator.await??);
        }
        let created = started.elapsed();
        println!(
            "created {} pods in {:.2} s ({:.0} creates/s)",
            args.pods,
            created.as_secs_f64(),
            args.pods as f64 / created.as_secs_f64()
        );
    }
    let all_bound = bindings.all.notified();
    if bindings.seen.lock().expect("bindings lock").len() < args.pods
        && tokio::time::timeout(Duration::from_secs(300), all_bound).await.is_err()
    {
        let seen = bindings.seen.lock().expect("bindings lock").len();
        bail!(
            "only {seen} of {} pods were bound within 300 s of creating them",
            args.pods
        );
    }
    let changes = bindings.changes.load(Ordering::Relaxed);
    watcher.abort();
    let seen = bindings.seen.lock().expect("bindings lock").clone();
    let last = seen.values().max().copied().unwrap_or(started);
    let total = last - started;
    let cpu = (cpu_time(leader_pid) - cpu_before).as_secs_f64();
    if args.replicasets {
        // No create is acknowledged per pod: a pod's creation is when the
        // watch first sees it.
        acknowledged = bindings.first_seen.lock().expect("bindings lock").clone();
    }
    let mut latencies: Vec<Duration> = acknowledged
        .iter()
        .filter_map(|(name, acked)| Some(seen.get(name)?.saturating_duration_since(*acked)))
        .collect();
    latencies.sort();
    println!(
        "all {} pods bound {:.2} s after the first create: {:.0} pods bound/s",
        args.pods,
        total.as_secs_f64(),
        args.pods as f64 / total.as_secs_f64()
    );
    println!(
        "scheduling latency ({} to binding seen): p50 {}  p90 {}  p99 {}  max {}",
        if args.replicasets {
            "pod first seen"
        } else {
            "create acknowledged"
        },
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 100.0))
    );
    println!(
        "pod changes committed meanwhile: {changes} ({:.1} per pod: creation, binding, status reports)",
        changes as f64 / args.pods as f64
    );
    println!(
        "leader: {:.1} CPU-seconds over the run ({:.0}% of a core), RSS {:.1} MiB now, peak {:.1} MiB",
        cpu,
        cpu / total.as_secs_f64() * 100.0,
        rss_mib(leader_pid),
        peak_rss_mib(leader_pid)
    );
    for (i, master) in masters.masters.iter().enumerate().filter(|(i, _)| *i != leader) {
        if let Some(pid) = master.pid() {
            println!(
                "follower {i}: RSS {:.1} MiB, peak {:.1} MiB",
                rss_mib(pid),
                peak_rss_mib(pid)
            );
        }
    }
    let over = overcommitted_nodes(&client).await?;
    println!("overcommitted nodes: {}", over.len());
    if !over.is_empty() {
        bail!("nodes overcommitted: {over:?}");
    }
    Ok(())
}
