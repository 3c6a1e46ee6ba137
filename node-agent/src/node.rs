//! The node: what it offers (gathered once at start), its registration,
//! and its heartbeats. Heartbeats carry the agent's own readiness (false
//! while the container runtime is unreachable); the leader turns changes
//! into the Node's Ready condition.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::nodes_client::NodesClient;
use bosun_proto::api::{
    self, DaemonEndpoint, HeartbeatRequest, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, ObjectMeta, Quantity as ApiQuantity, Taint,
};
use bosun_proto::client::{Api, Change, Client, ClientError, PostParams, Watcher, REWATCH_PAUSE};
use bosun_proto::net::Cidr;
use bosun_proto::quantity::{format_bytes, format_cpu_millis, Quantity};
use bosun_proto::validate;
use tokio_util::sync::CancellationToken;

use crate::config::{parse_pairs, AgentConfig};
use crate::context::Context;
use crate::runtime::ContainerRuntime;

/// What this node is and offers.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    pub name: String,
    pub address: String,
    /// The agent's port for logs and exec.
    pub port: i32,
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub max_pods: i64,
    pub labels: Vec<(String, String)>,
    pub taints: Vec<Taint>,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

/// Kubernetes' architecture names.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The address of the interface with the default route, without sending
/// anything (connecting a UDP socket only picks a route).
fn default_route_address() -> Option<String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

fn parse_taint(text: &str) -> Result<Taint, String> {
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("taint {text:?} is not key=value:Effect"))?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!(
            "taint {text:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
    validate::qualified_name(key).map_err(|e| format!("taint {text:?}: {e}"))?;
    Ok(Taint {
        key: key.to_string(),
        value: value.to_string(),
        effect: effect.to_string(),
        time_added: None,
    })
}

impl NodeFacts {
    /// Gathers the node's facts from flags and the host.
    ///
    /// # Errors
    /// A message naming a malformed flag.
    pub fn gather(config: &AgentConfig, listen: SocketAddr) -> Result<NodeFacts, String> {
        let name = match &config.name {
            Some(name) => name.clone(),
            None => read_trimmed("/proc/sys/kernel/hostname").to_ascii_lowercase(),
        };
        validate::dns1123_subdomain(&name).map_err(|e| format!("--name: {e}"))?;
        let cpu_millis = match &config.cpus {
            Some(cpus) => Quantity::parse(cpus).map_err(|e| format!("--cpus: {e}"))?.millis(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()) as i64 * 1000,
        };
        let memory_bytes = match &config.memory {
            Some(memory) => Quantity::parse(memory).map_err(|e| format!("--memory: {e}"))?.units(),
            None => host_memory_bytes(),
        };
        let address = config.address.clone().unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                default_route_address().unwrap_or_else(|| "127.0.0.1".into())
            } else {
                listen.ip().to_string()
            }
        });
        let mut labels = vec![
            ("kubernetes.io/hostname".to_string(), name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch().to_string()),
        ];
        for (key, value) in parse_pairs(&config.labels).map_err(|e| format!("--labels: {e}"))? {
            validate::qualified_name(&key)
                .and_then(|()| validate::label_value(&value))
                .map_err(|e| format!("--labels: {e}"))?;
            labels.retain(|(k, _)| *k != key);
            labels.push((key, value));
        }
        let taints = config
            .taints
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| parse_taint(t.trim()))
            .collect::<Result<_, _>>()?;
        Ok(NodeFacts {
            name,
            address,
            port: i32::from(listen.port()),
            cpu_millis,
            memory_bytes,
            max_pods: config.max_pods,
            labels,
            taints,
        })
    }

    fn resources(&self) -> std::collections::HashMap<String, ApiQuantity> {
        [
            ("cpu", format_cpu_millis(self.cpu_millis)),
            ("memory", format_bytes(self.memory_bytes)),
            ("pods", self.max_pods.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ApiQuantity { value: v }))
        .collect()
    }

    /// The status this agent owns (all but the conditions).
    fn status(&self, runtime_version: &str) -> NodeStatus {
        let os_image = read_trimmed("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default();
        NodeStatus {
            capacity: self.resources(),
            allocatable: self.resources(),
            addresses: vec![
                NodeAddress {
                    r#type: "InternalIP".into(),
                    address: self.address.clone(),
                },
                NodeAddress {
                    r#type: "Hostname".into(),
                    address: self.name.clone(),
                },
            ],
            node_info: Some(NodeSystemInfo {
                machine_id: read_trimmed("/etc/machine-id"),
                boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
                kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
                os_image,
                container_runtime_version: runtime_version.to_string(),
                agent_version: crate::VERSION.to_string(),
                operating_system: "linux".into(),
                architecture: arch().into(),
            }),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                agent_endpoint: Some(DaemonEndpoint { port: self.port }),
            }),
            conditions: vec![],
        }
    }
}

fn host_memory_bytes() -> i64 {
    read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Creates or refreshes the Node object, retrying until it succeeds.
/// A node registering again after its Node was deleted asks for the pod
/// range it already uses (`pod_range`), which its pods hold addresses in.
/// Returns false if cancelled first.
pub async fn register(
    client: &Client,
    facts: &NodeFacts,
    runtime_version: &str,
    pod_range: Option<Cidr>,
    token: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        match try_register(client.clone(), facts, runtime_version, pod_range).await {
            Ok(()) => {
                tracing::info!(node = %facts.name, "node registered");
                return true;
            }
            Err(e) => tracing::warn!(node = %facts.name, error = %e, "cannot register the node yet"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = token.cancelled() => return false,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn try_register(
    client: Client,
    facts: &NodeFacts,
    runtime_version: &str,
    pod_range: Option<Cidr>,
) -> Result<(), ClientError> {
    let nodes = Api::<api::Node>::all(&client);
    let mut status = facts.status(runtime_version);
    match nodes.get_opt(&facts.name).await? {
        None => {
            status.conditions.push(NodeCondition {
                r#type: "Ready".into(),
                status: "Unknown".into(),
                reason: "NodeRegistering".into(),
                message: "waiting for the first heartbeat".into(),
                ..Default::default()
            });
            let node = api::Node {
                metadata: Some(ObjectMeta {
                    name: facts.name.clone(),
                    labels: facts.labels.iter().cloned().collect(),
                    ..Default::default()
                }),
                spec: Some(NodeSpec {
                    taints: facts.taints.clone(),
                    pod_cidr: pod_range.map(|r| r.to_string()).unwrap_or_default(),
                    pod_cidrs: pod_range.map(|r| r.to_string()).into_iter().collect(),
                    ..Default::default()
                }),
                status: Some(status),
                ..Default::default()
            };
            match nodes.create(&PostParams::default(), node.clone()).await {
                // Another node took the range meanwhile: register without
                // one; this node's pods keep addresses that now overlap.
                Err(e) if pod_range.is_some() && e.code() == Some(tonic::Code::Aborted) => {
                    tracing::error!(node = %facts.name, error = %e, "this node's pod range went to another node while its Node was deleted; its pods keep addresses in it: drain it and restart the agent");
                    let mut node = node;
                    if let Some(spec) = node.spec.as_mut() {
                        spec.pod_cidr.clear();
                        spec.pod_cidrs.clear();
                    }
                    nodes.create(&PostParams::default(), node).await?;
                }
                other => {
                    other?;
                }
            }
            Ok(())
        }
        Some(mut node) => {
            // Refresh labels (the agent's flags win) and the agent-owned
            // status; keep spec (cordon, taints) and conditions.
            let meta = node.metadata.get_or_insert_with(Default::default);
            let before = meta.labels.clone();
            meta.labels.extend(facts.labels.iter().cloned());
            if meta.labels != before {
                node = nodes.update(&PostParams::default(), node).await?;
            }
            status.conditions = node.status.clone().unwrap_or_default().conditions;
            node.status = Some(status);
            nodes.update_status(node).await?;
            Ok(())
        }
    }
}

/// How waiting for the node's pod range ended.
pub enum RangeWait {
    Given(Cidr),
    /// The Node was deleted meanwhile: register it again.
    NodeDeleted,
    Cancelled,
}

/// The node's pod range, once the leader has given it one (see the
/// masters' node IPAM), followed with a watch of the node: a node that
/// waits long (the ranges are used up) costs the masters nothing.
pub async fn pod_range(client: &Client, node: &str, token: &CancellationToken) -> RangeWait {
    let mut watcher = Watcher::new(Api::<api::Node>::all(client), "", &format!("metadata.name={node}"));
    let mut told = false;
    loop {
        let change = tokio::select! {
            change = watcher.next() => change,
            () = token.cancelled() => return RangeWait::Cancelled,
        };
        let seen = match change {
            Ok(Change::Relisted(nodes)) if nodes.is_empty() => return RangeWait::NodeDeleted,
            Ok(Change::Relisted(nodes)) => nodes,
            Ok(Change::Event(bosun_proto::api::EventType::Deleted, _)) => return RangeWait::NodeDeleted,
            Ok(Change::Event(_, node)) => vec![*node],
            Err(e) => {
                tracing::warn!(node, error = %e, "cannot follow the node for its pod range; retrying");
                tokio::select! {
                    () = tokio::time::sleep(REWATCH_PAUSE) => {}
                    () = token.cancelled() => return RangeWait::Cancelled,
                }
                continue;
            }
        };
        let range = seen
            .iter()
            .find_map(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.parse::<Cidr>().ok()));
        if let Some(range) = range {
            tracing::info!(node, pod_range = %range, "the node's pod range");
            return RangeWait::Given(range);
        }
        if !told {
            tracing::info!(node, "waiting for the leader to give the node a pod range (if it waits long, see the node's NetworkUnavailable condition)");
            told = true;
        }
    }
}

/// The cluster's id: the uid of its `bosun-system` namespace (as
/// Kubernetes uses kube-system's). Retries until the leader has created it.
/// `None` if cancelled first.
pub async fn cluster_id(client: &Client, token: &CancellationToken) -> Option<String> {
    let namespaces = Api::<api::Namespace>::all(client);
    loop {
        if let Some(uid) = namespaces
            .get("bosun-system")
            .await
            .ok()
            .and_then(|ns| ns.metadata.map(|m| m.uid))
            .filter(|u| !u.is_empty())
        {
            return Some(uid);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = token.cancelled() => return None,
        }
    }
}

/// Heartbeats every `period` with the runtime's health; registers again if
/// the Node object was deleted.
pub async fn heartbeat<R: ContainerRuntime>(
    shared: Arc<Context<R>>,
    facts: NodeFacts,
    mut runtime_version: String,
    period: Duration,
    token: CancellationToken,
) {
    let client = shared.client.clone();
    let mut runtime_was_up = true;
    loop {
        let health = shared.runtime.version().await;
        let request = HeartbeatRequest {
            node_name: facts.name.clone(),
            ready: health.is_ok(),
            reason: if health.is_ok() {
                String::new()
            } else {
                "RuntimeUnavailable".into()
            },
            message: health.as_ref().err().map(ToString::to_string).unwrap_or_default(),
        };
        match (&health, runtime_was_up) {
            (Err(e), true) => tracing::warn!(error = %e, "the container runtime is unreachable"),
            (Ok(version), false) => {
                tracing::info!("the container runtime is back");
                runtime_version.clone_from(version);
                // Wake every pod worker rather than wait for its retry.
                shared.runtime_back.notify_waiters();
            }
            _ => {}
        }
        runtime_was_up = health.is_ok();
        let sent = client
            .call(|channel| {
                let request = request.clone();
                async move { NodesClient::new(channel).heartbeat(request).await }
            })
            .await;
        match sent {
            Err(e) if e.code() == Some(tonic::Code::NotFound) => {
                let pod_range = shared.pod_range.get().copied();
                register(&shared.client, &facts, &runtime_version, pod_range, &token).await;
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
            Ok(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = token.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_like_kubectl() {
        let taint = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (taint.key.as_str(), taint.value.as_str(), taint.effect.as_str()),
            ("dedicated", "gpu", "NoSchedule")
        );
        assert_eq!(parse_taint("spot:PreferNoSchedule").unwrap().value, "");
        assert!(parse_taint("dedicated=gpu").is_err());
        assert!(parse_taint("x=y:Sometimes").is_err());
    }

    #[test]
    fn flags_override_the_host() {
        let config = AgentConfig::from_args([
            "--name",
            "n1",
            "--cpus",
            "2",
            "--memory",
            "4Gi",
            "--labels",
            "disk=ssd",
            "--address",
            "10.1.2.3",
        ])
        .unwrap();
        let facts = NodeFacts::gather(&config, "127.0.0.1:7430".parse().unwrap()).unwrap();
        assert_eq!((facts.cpu_millis, facts.memory_bytes), (2000, 4 << 30));
        assert_eq!(facts.address, "10.1.2.3");
        assert!(facts.labels.contains(&("disk".to_string(), "ssd".to_string())));
        let status = facts.status("docker://28.2.2");
        assert_eq!(status.capacity["memory"].value, "4Gi");
        assert_eq!(status.daemon_endpoints.unwrap().agent_endpoint.unwrap().port, 7430);
    }
}
