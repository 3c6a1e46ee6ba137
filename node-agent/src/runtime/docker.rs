//! [`ContainerRuntime`] on the Docker Engine API (bollard).
//!
//! Pods get their own network namespace on a bridge network of the agent's
//! (`bosun` by default), at the address the agent gave them
//! ([`crate::addresses`]): a pod of one container holds it itself; a pod of
//! several has a sandbox container holding it, whose namespace the pod's
//! containers join, so they share its address and reach each other on
//! localhost. An agent that runs in a container of
//! this engine joins that network too, so its probes reach the pods as a
//! host agent's do (see [`super::OwnContainer`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, EndpointIpamConfig, EndpointSettings,
    ExecConfig, HostConfig, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, ResizeExecOptionsBuilder, StopContainerOptionsBuilder,
};
use bosun_proto::net::Cidr;
use futures::{Stream, StreamExt, TryStreamExt};

use super::{
    id_from_mountinfo, labels, pause_image_tar, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec,
    ContainerState, ExecOutput, ExecSession, LogOptions, Mount, OwnContainer, Result, RuntimeError, RuntimeEvent,
    SANDBOX_IMAGE,
};

/// Seconds a single Docker API call may take (pulls and log follows are
/// streams and are not bounded by it).
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// API 1.41 (Docker 20.10) when the engine cannot be asked at start.
const FALLBACK_API_MINOR: usize = 41;

/// The bridge driver's option for its MTU.
const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// The bridge driver's option for masquerading what leaves the bridge.
const MASQUERADE_OPTION: &str = "com.docker.network.bridge.enable_ip_masquerade";

/// How the pod network's bridge is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bridge {
    /// Its MTU (the host's, so pod packets fit the node's link); Docker's
    /// default when `None`.
    pub mtu: Option<u32>,
    /// Whether Docker masquerades what pods send off the bridge. Off when
    /// the agent routes between nodes: pod-to-pod traffic keeps its
    /// source, and the agent masquerades the rest itself.
    pub masquerade: bool,
}

impl Default for Bridge {
    fn default() -> Bridge {
        Bridge {
            mtu: None,
            masquerade: true,
        }
    }
}

pub struct Docker {
    client: bollard::Docker,
    network: String,
    /// On the pod network, beside [`labels::MANAGED`].
    network_labels: HashMap<String, String>,
    bridge: Bridge,
    /// Held while preparing, so concurrent sandboxes never create the
    /// network twice (older engines allow duplicate names); the pod range
    /// it was prepared for.
    prepared: tokio::sync::Mutex<Option<Cidr>>,
    /// The agent's own container on this engine, looked up once when the
    /// engine first answers (it does not change while the agent runs).
    own: tokio::sync::OnceCell<Option<OwnContainer>>,
}

/// What `--cleanup` did with the pod network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkRemoval {
    Removed,
    Missing,
    /// It was not created by an agent (no [`labels::MANAGED`] label).
    NotOurs,
    /// Containers are still attached; their count.
    InUse(usize),
}

fn classify(e: DockerError) -> RuntimeError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message),
        DockerError::DockerResponseServerError { message, .. } => RuntimeError::Failed(message),
        DockerError::DockerStreamError { error } => RuntimeError::Failed(error),
        other => RuntimeError::Unreachable(other.to_string()),
    }
}

/// Parses Docker's RFC 3339 times; Docker's zero time reads as `None`.
fn time(text: Option<&str>) -> Option<SystemTime> {
    let text = text?;
    if text.starts_with("0001-01-01") {
        return None;
    }
    prost_types::Timestamp::from_str(text)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
}

impl Docker {
    /// A client for the engine at `host` (a `unix://` socket path or a
    /// plain path). It agrees on an API version with the engine when the
    /// engine answers; when it does not (yet), it uses an older version every
    /// supported engine speaks, and calls fail until the engine is back.
    ///
    /// # Errors
    /// [`RuntimeError::Failed`] for a malformed `host`.
    pub async fn connect(host: &str, network: &str, network_labels: HashMap<String, String>) -> Result<Docker> {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        let fallback = bollard::ClientVersion {
            major_version: 1,
            minor_version: FALLBACK_API_MINOR,
        };
        let client = bollard::Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(|e| RuntimeError::Failed(format!("Docker host {host:?}: {e}")))?;
        let client = match client.clone().negotiate_version().await {
            Ok(negotiated) => negotiated,
            Err(e) => {
                tracing::warn!(host, error = %e, "Docker is not answering; will keep trying");
                bollard::Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, &fallback)
                    .map_err(|e| RuntimeError::Failed(format!("Docker host {host:?}: {e}")))?
            }
        };
        Ok(Docker {
            client,
            network: network.to_string(),
            network_labels,
            bridge: Bridge::default(),
            prepared: tokio::sync::Mutex::new(None),
            own: tokio::sync::OnceCell::new(),
        })
    }

    /// Creates the pod network with these settings (see [`Bridge`]).
    pub fn with_bridge(self, bridge: Bridge) -> Docker {
        Docker { bridge, ..self }
    }

    /// The pod network's name.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Removes the pod network if an agent created it and nothing is
    /// attached any more (other agents' pods may share it).
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn remove_network_if_unused(&self) -> Result<NetworkRemoval> {
        let network = match self.client.inspect_network(&self.network, None).await {
            Ok(network) => network,
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => return Ok(NetworkRemoval::Missing),
            Err(e) => return Err(classify(e)),
        };
        if !network.labels.unwrap_or_default().contains_key(labels::MANAGED) {
            return Ok(NetworkRemoval::NotOurs);
        }
        let attached = network.containers.map_or(0, |c| c.len());
        if attached > 0 {
            return Ok(NetworkRemoval::InUse(attached));
        }
        match self.client.remove_network(&self.network).await {
            Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                Ok(NetworkRemoval::Removed)
            }
            // A container joined meanwhile.
            Err(DockerError::DockerResponseServerError { status_code: 403, .. }) => Ok(NetworkRemoval::InUse(1)),
            Err(e) => Err(classify(e)),
        }
    }

    async fn find_own_container(&self) -> Result<Option<OwnContainer>> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let Some(id) = id_from_mountinfo(&mountinfo) else {
            return Ok(None);
        };
        let inspected = match self.client.inspect_container(&id, None).await {
            Ok(inspected) => inspected,
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                tracing::info!(container = %id, "running in a container of another engine; acting as a host agent");
                return Ok(None);
            }
            Err(e) => return Err(classify(e)),
        };
        let networks = inspected
            .network_settings
            .and_then(|n| n.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default();
        let mounts = inspected
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let source = match m.name.filter(|n| !n.is_empty()) {
                    Some(volume) => format!("volume:{volume}"),
                    None => format!("bind:{}", m.source?),
                };
                Some(Mount {
                    destination: m.destination?.into(),
                    source,
                })
            })
            .collect();
        let name = inspected.name.unwrap_or_default().trim_start_matches('/').to_string();
        tracing::info!(container = %name, id = %id, "the agent runs in a container of the engine it drives");
        Ok(Some(OwnContainer {
            id,
            name,
            networks,
            mounts,
        }))
    }

    /// Attaches the agent's own container (if it runs in one) to the pod
    /// network: without it, pod IPs are unreachable from the agent.
    async fn join_network(&self) -> Result<()> {
        let Some(own) = self.own_container().await? else {
            return Ok(());
        };
        if own.networks.contains(&self.network) {
            return Ok(());
        }
        let request = NetworkConnectRequest {
            container: own.id.clone(),
            endpoint_config: None,
        };
        match self.client.connect_network(&self.network, request).await {
            Ok(()) => {
                tracing::info!(container = %own.name, network = %self.network, "joined the pod network, so probes reach the pods");
                Ok(())
            }
            // Already attached (joined by an earlier run of this container).
            Err(DockerError::DockerResponseServerError {
                status_code: 403 | 409,
                message,
            }) if message.contains("already exists") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// The pod network: a bridge on exactly the node's pod range (gateway
    /// at its first address), the engine allocating by itself only in the
    /// range's top part ([`crate::addresses::engine_range`]): the agent
    /// gives the pods their addresses. So every pod address is unique in
    /// the cluster. One of that name made otherwise is refused.
    async fn ensure_network(&self, pod_range: Cidr) -> Result<()> {
        let engine_range = crate::addresses::engine_range(pod_range);
        match self.client.inspect_network(&self.network, None).await {
            Ok(network) => {
                let masquerades = network
                    .options
                    .as_ref()
                    .and_then(|o| o.get(MASQUERADE_OPTION))
                    .is_none_or(|v| v != "false");
                let configs = network.ipam.and_then(|i| i.config).unwrap_or_default();
                let ours = match configs.as_slice() {
                    [config] => {
                        let parsed = |text: &Option<String>| {
                            text.as_deref()
                                .filter(|t| !t.is_empty())
                                .map(|t| t.parse::<Cidr>().ok())
                        };
                        parsed(&config.subnet) == Some(Some(pod_range))
                            && parsed(&config.ip_range) == engine_range.map(Some)
                    }
                    _ => false,
                };
                if !ours {
                    let made: Vec<String> = configs
                        .iter()
                        .map(|c| {
                            let subnet = c.subnet.as_deref().unwrap_or("none");
                            match c.ip_range.as_deref().filter(|r| !r.is_empty()) {
                                Some(range) => format!("subnet {subnet} allocating in {range}"),
                                None => format!("subnet {subnet}"),
                            }
                        })
                        .collect();
                    let expected = match engine_range {
                        Some(range) => format!("subnet {pod_range} allocating in {range}"),
                        None => format!("subnet {pod_range}"),
                    };
                    return Err(RuntimeError::Failed(format!(
                        "the Docker network {:?} has {}, but this node needs {expected}: remove the network (`docker network rm {}`, or `node-agent --cleanup`) or give the agent another --network",
                        self.network,
                        if made.is_empty() { "a subnet chosen by Docker".to_string() } else { made.join(", ") },
                        self.network
                    )));
                }
                if masquerades != self.bridge.masquerade {
                    return Err(RuntimeError::Failed(format!(
                        "the Docker network {:?} was made for another --network-backend ({} masquerades pod traffic): remove it (`docker network rm {}`, or `node-agent --cleanup`) so the agent makes it again",
                        self.network,
                        if masquerades { "Docker" } else { "Bosun, not Docker," },
                        self.network
                    )));
                }
                return Ok(());
            }
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(classify(e)),
        }
        let mut network_labels = self.network_labels.clone();
        network_labels.insert(labels::MANAGED.to_string(), "true".to_string());
        let mut options = HashMap::new();
        if let Some(mtu) = self.bridge.mtu {
            options.insert(MTU_OPTION.to_string(), mtu.to_string());
        }
        if !self.bridge.masquerade {
            options.insert(MASQUERADE_OPTION.to_string(), "false".to_string());
        }
        let request = NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".into()),
            labels: Some(network_labels),
            options: Some(options),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(pod_range.to_string()),
                    gateway: pod_range.gateway().map(|g| g.to_string()),
                    ip_range: engine_range.map(|r| r.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.client.create_network(request).await {
            Ok(_) => Ok(()),
            // Another agent on this engine created it first.
            Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn ensure_sandbox_image(&self) -> Result<()> {
        if self.image_present(SANDBOX_IMAGE).await? {
            return Ok(());
        }
        let tar = pause_image_tar().ok_or_else(|| {
            RuntimeError::Failed(format!(
                "no built-in pause program for {}; load the image {SANDBOX_IMAGE} into the engine",
                std::env::consts::ARCH
            ))
        })?;
        let (repo, tag) = SANDBOX_IMAGE.split_once(':').unwrap_or((SANDBOX_IMAGE, "latest"));
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        self.client
            .create_image(Some(options), Some(bollard::body_full(tar.into())), None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(classify)?;
        tracing::info!(image = SANDBOX_IMAGE, "imported the pod sandbox image");
        Ok(())
    }

    fn info(&self, inspected: ContainerInspectResponse) -> Option<ContainerInfo> {
        let id = inspected.id?;
        let config = inspected.config.unwrap_or_default();
        let state = inspected.state.unwrap_or_default();
        let started_at = time(state.started_at.as_deref());
        let finished_at = time(state.finished_at.as_deref());
        let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
        let container_state = match status {
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::STOPPING => ContainerState::Running {
                started_at: started_at.unwrap_or(SystemTime::UNIX_EPOCH),
            },
            ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD | ContainerStateStatusEnum::REMOVING => {
                ContainerState::Exited {
                    exit_code: state.exit_code.unwrap_or(-1) as i32,
                    oom_killed: state.oom_killed.unwrap_or(false),
                    started_at,
                    finished_at: finished_at.unwrap_or_else(SystemTime::now),
                    error: state.error.unwrap_or_default(),
                }
            }
            ContainerStateStatusEnum::CREATED | ContainerStateStatusEnum::EMPTY => ContainerState::Created,
        };
        let ip = inspected
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut networks| networks.remove(&self.network))
            .and_then(|endpoint| endpoint.ip_address)
            .filter(|ip| !ip.is_empty());
        Some(ContainerInfo {
            id,
            labels: config.labels.unwrap_or_default(),
            state: container_state,
            image: config.image.unwrap_or_default(),
            image_id: inspected.image.unwrap_or_default(),
            ip,
            created_at: time(inspected.created.as_deref()).unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

#[tonic::async_trait]
impl ContainerRuntime for Docker {
    async fn version(&self) -> Result<String> {
        let version = self.client.version().await.map_err(classify)?;
        Ok(format!("docker://{}", version.version.unwrap_or_default()))
    }

    async fn prepare(&self, pod_range: Cidr) -> Result<()> {
        let mut prepared = self.prepared.lock().await;
        if *prepared != Some(pod_range) {
            self.ensure_network(pod_range).await?;
            self.join_network().await?;
            self.ensure_sandbox_image().await?;
            *prepared = Some(pod_range);
        }
        Ok(())
    }

    async fn own_container(&self) -> Result<Option<OwnContainer>> {
        self.own.get_or_try_init(|| self.find_own_container()).await.cloned()
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        match self.client.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        let options = CreateImageOptionsBuilder::default().from_image(image).build();
        self.client
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let mut host = HostConfig {
            memory: spec.memory_limit_bytes,
            nano_cpus: spec.cpu_limit_millis.map(|m| m * 1_000_000),
            // Kubernetes' mapping of CPU requests to relative shares.
            cpu_shares: spec.cpu_request_millis.map(|m| (m * 1024 / 1000).max(2)),
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            ..Default::default()
        };
        let mut exposed = Vec::new();
        let mut networking = None;
        match &spec.network_of {
            Some(sandbox) => host.network_mode = Some(format!("container:{sandbox}")),
            None => {
                host.network_mode = Some(self.network.clone());
                let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
                for (container_port, host_port, protocol, host_ip) in &spec.published_ports {
                    let key = format!("{container_port}/{}", protocol.to_ascii_lowercase());
                    exposed.push(key.clone());
                    bindings
                        .entry(key)
                        .or_default()
                        .get_or_insert_with(Vec::new)
                        .push(PortBinding {
                            host_ip: (!host_ip.is_empty()).then(|| host_ip.clone()),
                            host_port: Some(host_port.to_string()),
                        });
                }
                host.port_bindings = (!bindings.is_empty()).then_some(bindings);
                networking = spec.ip.map(|ip| NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        self.network.clone(),
                        EndpointSettings {
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: Some(ip.to_string()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    )])),
                });
            }
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            labels: Some(spec.labels.clone()),
            hostname: spec.hostname.clone(),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host),
            networking_config: networking,
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let created = self
            .client
            .create_container(Some(options), body)
            .await
            .map_err(classify)?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.client.start_container(id, None).await.map_err(classify)
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().min(i32::MAX as u64) as i32)
            .build();
        match self.client.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(DockerError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.client.remove_container(id, Some(options)).await {
            Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            // Already being removed.
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("in progress") => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([("label", vec![format!("{key}={value}")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self.client.list_containers(Some(options)).await.map_err(classify)?;
        let mut out = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|s| s.id) {
            match self.client.inspect_container(&id, None).await {
                Ok(inspected) => out.extend(self.info(inspected)),
                // Removed between the list and the inspect.
                Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(out)
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<ByteStream> {
        let tail = options
            .tail_lines
            .map_or_else(|| "all".to_string(), |n| n.max(0).to_string());
        // The engine counts whole seconds since the epoch; 0 means all.
        let since = options
            .since
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
        let options = LogsOptionsBuilder::default()
            .since(since)
            .follow(options.follow)
            .stdout(true)
            .stderr(true)
            .timestamps(options.timestamps)
            .tail(&tail)
            .build();
        let stream = self
            .client
            .logs(id, Some(options))
            .map_ok(LogOutput::into_bytes)
            .map_err(classify);
        Ok(Box::pin(stream))
    }

    async fn exec(&self, id: &str, command: Vec<String>, stdin: bool, tty: bool) -> Result<ExecSession> {
        let config = ExecConfig {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            cmd: Some(command),
            ..Default::default()
        };
        let exec_id = self.client.create_exec(id, config).await.map_err(classify)?.id;
        let options = StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        match self
            .client
            .start_exec(&exec_id, Some(options))
            .await
            .map_err(classify)?
        {
            StartExecResults::Attached { output, input } => {
                let output = output.map(|item| match item {
                    Ok(LogOutput::StdErr { message }) => Ok(ExecOutput::Stderr(message)),
                    Ok(other) => Ok(ExecOutput::Stdout(other.into_bytes())),
                    Err(e) => Err(classify(e)),
                });
                Ok(ExecSession {
                    id: exec_id,
                    output: Box::pin(output),
                    stdin: input,
                })
            }
            StartExecResults::Detached => Err(RuntimeError::Failed("exec started detached".into())),
        }
    }

    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> Result<()> {
        let options = ResizeExecOptionsBuilder::default()
            .w(i32::from(width))
            .h(i32::from(height))
            .build();
        self.client.resize_exec(exec_id, options).await.map_err(classify)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        Ok(self.client.inspect_exec(exec_id).await.map_err(classify)?.exit_code)
    }

    async fn events(&self, labels: &[(String, String)]) -> Result<Pin<Box<dyn Stream<Item = RuntimeEvent> + Send>>> {
        let filters = HashMap::from([
            ("type", vec!["container".to_string()]),
            ("label", labels.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let stream = self
            .client
            .events(Some(options))
            .take_while(|event| futures::future::ready(event.is_ok()))
            .filter_map(|event| {
                futures::future::ready(event.ok().and_then(|event| {
                    let actor = event.actor?;
                    let attributes = actor.attributes.unwrap_or_default();
                    Some(RuntimeEvent {
                        container_id: actor.id?,
                        pod_uid: attributes.get(super::labels::POD_UID).cloned().unwrap_or_default(),
                        action: event.action.unwrap_or_default(),
                    })
                }))
            });
        Ok(Box::pin(stream))
    }
}
