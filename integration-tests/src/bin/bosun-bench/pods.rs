//! `bosun-bench pods`: N pods bound to one agent, created at once, until
//! all run; and, in the same run, the engine's floor: N containers of the
//! same image and command created and started directly through the Docker
//! API, all at once. Also the agent's memory, idle and with N pods.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE, TEST_LABEL};
use bosun_proto::api::{EventType, Pod};
use bosun_proto::client::{Api, PostParams, WatchParams};
use bosun_proto::codec::decode_objects;
use bosun_proto::net::Cidr;
use futures::future::join_all;

use crate::{ms, percentile, rss_mib};

#[derive(clap::Parser, Clone)]
pub struct PodsArgs {
    /// Pods (and floor containers).
    #[arg(long, default_value_t = 100)]
    pods: usize,
}

/// What every benchmarked container runs, here and in `deploy`.
pub(crate) const COMMAND: [&str; 2] = ["sleep", "3600"];

/// Creates and starts `n` containers at once directly on the engine.
pub(crate) async fn floor(docker: &bollard::Docker, n: usize, run: &str) -> Result<Duration> {
    let started = Instant::now();
    let starts = (0..n).map(|i| async move {
        let body = ContainerCreateBody {
            image: Some(TEST_IMAGE.into()),
            cmd: Some(COMMAND.iter().map(|s| s.to_string()).collect()),
            labels: Some(HashMap::from([(TEST_LABEL.to_string(), run.to_string())])),
            ..Default::default()
        };
        let name = format!("bosun-bench-floor-{run}-{i}");
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = docker.create_container(Some(options), body).await?.id;
        docker.start_container(&id, None).await?;
        Ok::<_, bollard::errors::Error>(id)
    });
    let ids: Vec<String> = join_all(starts).await.into_iter().collect::<Result<_, _>>()?;
    let took = started.elapsed();
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    join_all(ids.iter().map(|id| docker.remove_container(id, Some(remove.clone())))).await;
    Ok(took)
}

/// The engine's floor for pods of several containers as Bosun makes them:
/// for each, a sandbox (the pause image, on a bridge network of the bench's
/// own) and a container in its network namespace, all pods at once.
pub(crate) async fn pod_floor(docker: &bollard::Docker, n: usize, run: &str) -> Result<Duration> {
    use bosun_node_agent::runtime::SANDBOX_IMAGE;
    let network = format!("bosun-bench-floor-{run}");
    let request = bollard::models::NetworkCreateRequest {
        name: network.clone(),
        driver: Some("bridge".into()),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), run.to_string())])),
        ..Default::default()
    };
    docker.create_network(request).await.context("the floor's network")?;
    let network = network.as_str();
    let started = Instant::now();
    let starts = (0..n).map(|i| async move {
        let labels = Some(HashMap::from([(TEST_LABEL.to_string(), run.to_string())]));
        let sandbox = ContainerCreateBody {
            image: Some(SANDBOX_IMAGE.into()),
            entrypoint: Some(vec!["/pause".into()]),
            labels: labels.clone(),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(network.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!("bosun-bench-sandbox-{run}-{i}"))
            .build();
        let sandbox_id = docker.create_container(Some(options), sandbox).await?.id;
        docker.start_container(&sandbox_id, None).await?;
        let app = ContainerCreateBody {
            image: Some(TEST_IMAGE.into()),
            cmd: Some(COMMAND.iter().map(|s| s.to_string()).collect()),
            labels,
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(format!("container:{sandbox_id}")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!("bosun-bench-app-{run}-{i}"))
            .build();
        let app_id = docker.create_container(Some(options), app).await?.id;
        docker.start_container(&app_id, None).await?;
        Ok::<_, bollard::errors::Error>([sandbox_id, app_id])
    });
    let ids: Vec<Result<[String; 2], _>> = join_all(starts).await;
    let took = started.elapsed();
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    join_all(
        ids.iter()
            .flatten()
            .flatten()
            .map(|id| docker.remove_container(id, Some(remove.clone()))),
    )
    .await;
    let removed = docker.remove_network(network).await;
    for id in ids {
        id?;
    }
    removed.context("removing the floor's network")?;
    Ok(took)
}

/// The engine's floor for pods of one container as Bosun makes them: `n`
/// containers at once on a bridge network of the bench's own with an
/// explicit subnet (`subnet`, gateway `.1`), each at a fixed address
/// (`.2` up), which is what the agent asks of the engine for such a pod.
/// A user-defined network costs the engine more per container than its
/// default bridge (it gives each its embedded DNS resolver).
pub(crate) async fn addressed_floor(docker: &bollard::Docker, n: usize, run: &str, subnet: Cidr) -> Result<Duration> {
    use bollard::models::{EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkingConfig};
    let network = format!("bosun-bench-addressed-{run}");
    let request = bollard::models::NetworkCreateRequest {
        name: network.clone(),
        driver: Some("bridge".into()),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), run.to_string())])),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                gateway: subnet.gateway().map(|g| g.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_network(request)
        .await
        .context("the addressed floor's network")?;
    let network = network.as_str();
    let started = Instant::now();
    let starts = (0..n).map(|i| async move {
        let address = subnet
            .address(i as u64 + 2)
            .with_context(|| format!("{subnet} has no room for {n} containers"))?;
        let body = ContainerCreateBody {
            image: Some(TEST_IMAGE.into()),
            cmd: Some(COMMAND.iter().map(|s| s.to_string()).collect()),
            labels: Some(HashMap::from([(TEST_LABEL.to_string(), run.to_string())])),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(network.to_string()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_string(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig {
                            ipv4_address: Some(address.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&format!("bosun-bench-addressed-{run}-{i}"))
            .build();
        let id = docker.create_container(Some(options), body).await?.id;
        docker.start_container(&id, None).await?;
        Ok::<_, anyhow::Error>(id)
    });
    let ids: Vec<Result<String>> = join_all(starts).await;
    let took = started.elapsed();
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    join_all(
        ids.iter()
            .flatten()
            .map(|id| docker.remove_container(id, Some(remove.clone()))),
    )
    .await;
    let removed = docker.remove_network(network).await;
    for id in ids {
        id?;
    }
    removed.context("removing the addressed floor's network")?;
    Ok(took)
}

fn pod(name: &str, node: &str) -> Result<Pod> {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  containers:\n    - name: app\n      image: {TEST_IMAGE}\n      imagePullPolicy: Never\n      command: [{}]\n",
        COMMAND.map(|c| format!("{c:?}")).join(", ")
    );
    Ok(Pod::try_from(decode_objects(&yaml, "bench")?.remove(0))?)
}

pub async fn run(args: PodsArgs) -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["bench-node"], &["--max-pods", &(args.pods * 2).to_string()]).await?;
    let docker = bollard::Docker::connect_with_socket_defaults()?
        .negotiate_version()
        .await?;
    let agent_pid = cluster.agents[0].pid().context("agent running")?;
    println!(
        "bosun-bench pods: {} pods on one agent, image {TEST_IMAGE}, command {COMMAND:?}",
        args.pods
    );
    println!("agent RSS idle: {:.1} MiB", rss_mib(agent_pid));

    let floor_before = floor(&docker, args.pods, &cluster.run).await?;
    println!(
        "engine floor (before): {} containers created and started at once in {}",
        args.pods,
        ms(floor_before)
    );

    let client = cluster.client();
    let pods = Api::<Pod>::all(&client);
    let watch = WatchParams {
        field_selector: "spec.nodeName=bench-node".into(),
        ..Default::default()
    };
    let mut events = pods.watch(&watch).await?;
    let mut created: HashMap<String, Instant> = HashMap::new();
    let begin = Instant::now();
    let creates = (0..args.pods).map(|i| {
        let pods = pods.clone();
        async move {
            let name = format!("bench-{i}");
            let pod = pod(&name, "bench-node")?;
            let at = Instant::now();
            pods.create(&PostParams::default(), pod).await?;
            Ok::<_, anyhow::Error>((name, at))
        }
    });
    for result in join_all(creates).await {
        let (name, at) = result?;
        created.insert(name, at);
    }
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut seen_running: HashMap<String, std::time::SystemTime> = HashMap::new();
    while running.len() < args.pods {
        let event = tokio::time::timeout(Duration::from_secs(120), events.message())
            .await
            .context("pods did not all start within 2 minutes")??
            .context("watch ended")?;
        if event.r#type == EventType::Deleted as i32 {
            continue;
        }
        let pod = Pod::try_from(event.object.context("object")?)?;
        let name = pod.metadata.clone().unwrap_or_default().name;
        let is_running = pod.status.as_ref().is_some_and(|s| s.phase == "Running");
        if is_running {
            seen_running
                .entry(name.clone())
                .or_insert_with(std::time::SystemTime::now);
            running.entry(name).or_insert_with(Instant::now);
        }
    }
    let total = running
        .values()
        .max()
        .map(|t| t.duration_since(begin))
        .unwrap_or_default();
    let mut startup: Vec<Duration> = running
        .iter()
        .map(|(name, at)| at.duration_since(created[name]))
        .collect();
    startup.sort();
    println!(
        "bosun: {} pods Running in {} (p50 {}, p99 {} from create to Running)",
        args.pods,
        ms(total),
        ms(percentile(&startup, 50.0)),
        ms(percentile(&startup, 99.0))
    );
    println!("agent RSS with {} pods: {:.1} MiB", args.pods, rss_mib(agent_pid));
    // How long after its container started each pod was seen Running.
    let mut lags = Vec::new();
    for (name, seen) in &seen_running {
        let output = std::process::Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=io.bosun.pod.name={name}"),
                "--filter",
                "label=io.bosun.container=app",
            ])
            .args(["--filter", &format!("label={TEST_LABEL}={}", cluster.run)])
            .output()?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let output = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.StartedAt}}", &id])
            .output()?;
        let started: prost_types::Timestamp = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("container start time: {e:?}"))?;
        let started = std::time::SystemTime::try_from(started)?;
        lags.push(seen.duration_since(started).unwrap_or_default());
    }
    lags.sort();
    println!(
        "status lag, container started -> Running seen by a watcher: p50 {}, p99 {}, max {}",
        ms(percentile(&lags, 50.0)),
        ms(percentile(&lags, 99.0)),
        ms(percentile(&lags, 100.0))
    );

    let floor_after = floor(&docker, args.pods, &cluster.run).await?;
    println!(
        "engine floor (after): {} containers created and started at once in {}",
        args.pods,
        ms(floor_after)
    );
    let pods_floor = pod_floor(&docker, args.pods, &cluster.run).await?;
    println!(
        "engine floor for pods: {} sandboxes and {} containers in their namespaces, at once, in {}",
        args.pods,
        args.pods,
        ms(pods_floor)
    );
    let floor = (floor_before + floor_after) / 2;
    println!("bosun / floor: {:.2}", total.as_secs_f64() / floor.as_secs_f64());
    println!(
        "bosun / floor for pods: {:.2}",
        total.as_secs_f64() / pods_floor.as_secs_f64()
    );
    Ok(())
}
