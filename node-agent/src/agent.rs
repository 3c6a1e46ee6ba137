//! Wires one agent together: the runtime, registration and heartbeats, the
//! removal of containers of clusters it no longer belongs to, the pod
//! manager and the logs/exec server. Also `--cleanup` ([`cleanup`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bosun_proto::client::Client;
use bosun_proto::internal::agent_server::AgentServer;
use bosun_proto::transport::Transport;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cleanup;
use crate::config::{parse_pairs, AgentConfig};
use crate::context::{Caches, Context, DataDir, Parts};
use crate::network::{self, Backend, PodNetwork};
use crate::node::{self, NodeFacts};
use crate::runtime::docker::{Bridge, Docker, NetworkRemoval};
use crate::runtime::ContainerRuntime;
use crate::server::AgentService;

/// Pause before asking an unanswering runtime again.
const RUNTIME_RETRY: Duration = Duration::from_secs(1);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid flag: {0}")]
    Config(String),
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed: {0}")]
    Serve(String),
    #[error("cleanup failed: {0}")]
    Cleanup(String),
}

fn data_dir(config: &AgentConfig, name: &str) -> Result<DataDir, AgentError> {
    DataDir::open(config.data_dir.as_deref(), name).map_err(AgentError::Config)
}

/// Runs an agent on Docker until `shutdown` completes. Pods keep running
/// when the agent stops; a restarted agent adopts them.
///
/// # Errors
/// [`AgentError`] for bad flags or an unusable listener.
pub async fn run(
    config: AgentConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let local = listener.local_addr().map_err(|source| AgentError::Listen {
        addr: config.listen.to_string(),
        source,
    })?;
    let facts = NodeFacts::gather(&config, local).map_err(AgentError::Config)?;
    let container_labels: HashMap<String, String> = parse_pairs(&config.container_labels)
        .map_err(AgentError::Config)?
        .into_iter()
        .collect();
    let data_dir = data_dir(&config, &facts.name)?;
    let token = CancellationToken::new();
    let network = PodNetwork::open(config.network_backend, config.vxlan_port, &facts.address)
        .await
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let bridge = Bridge {
        mtu: network.as_ref().map(PodNetwork::mtu),
        masquerade: network.is_none(),
    };
    let runtime = Arc::new(
        Docker::connect(&config.docker_host, &config.network, container_labels.clone())
            .await
            .map_err(|e| AgentError::Config(e.to_string()))?
            .with_bridge(bridge),
    );
    // Plaintext until the security issue gives the agent its certificate.
    let transport = Transport::plaintext();
    let client = Client::with_transport(config.master.clone(), transport.clone());
    let shared = Context::new(
        Parts {
            node: facts.name.clone(),
            host_ip: facts.address.clone(),
            data: data_dir,
            runtime,
            caches: Caches::start(&client, &token),
            client,
            backoff: config.backoff(),
            container_labels,
        },
        &token,
    );
    tracing::info!(node = %facts.name, address = %facts.address, port = facts.port, masters = ?config.master, "node agent starting");
    start(shared.clone(), facts, config.heartbeat(), network, token.clone());

    let server = transport
        .server()
        .add_service(AgentServer::new(AgentService::new(shared)))
        .serve_with_incoming_shutdown(transport.incoming(listener), token.clone().cancelled_owned());
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            token.cancel();
            server.await
        }
    };
    token.cancel();
    tracing::info!("node agent stopped; its pods keep running");
    result.map_err(|e| AgentError::Serve(e.to_string()))
}

/// Starts registration, heartbeats, the pod network (when the agent
/// keeps one) and the pod manager for one agent.
pub fn start<R: ContainerRuntime>(
    shared: Arc<Context<R>>,
    facts: NodeFacts,
    heartbeat: Duration,
    network: Option<PodNetwork>,
    token: CancellationToken,
) {
    tokio::spawn(async move {
        let runtime_version = shared.runtime.version().await.unwrap_or_default();
        // No heartbeat before the pod range: the node stays out of the
        // scheduler's reach until it can give its pods addresses.
        let pod_range = loop {
            if !node::register(&shared.client, &facts, &runtime_version, None, &token).await {
                return;
            }
            if shared.cluster_id.get().is_none() {
                let Some(cluster_id) = node::cluster_id(&shared.client, &token).await else {
                    return;
                };
                let _ = shared.cluster_id.set(cluster_id);
            }
            match node::pod_range(&shared.client, &facts.name, &token).await {
                node::RangeWait::Given(range) => break range,
                node::RangeWait::NodeDeleted => {}
                node::RangeWait::Cancelled => return,
            }
        };
        let _ = shared.pod_range.set(pod_range);
        if let Some(network) = network {
            tokio::spawn(network.run(facts.name.clone(), pod_range, shared.client.clone(), token.clone()));
        }
        tokio::spawn(node::heartbeat(
            shared.clone(),
            facts.clone(),
            runtime_version,
            heartbeat,
            token.clone(),
        ));
        if !settle_in(&shared, &token).await {
            return;
        }
        crate::pods::run(shared, token).await;
    });
}

/// Before the pods: learns the agent's identity (waiting for the runtime),
/// starts removing its containers of clusters it no longer belongs to,
/// and prepares the pod network on the node's pod range (in a container,
/// joining it: adopted pods are probed before any new sandbox would
/// prepare it). False when cancelled.
async fn settle_in<R: ContainerRuntime>(shared: &Arc<Context<R>>, token: &CancellationToken) -> bool {
    let own = loop {
        match shared.runtime.own_container().await {
            Ok(own) => break own,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask the runtime about the agent's own container; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RUNTIME_RETRY) => {}
                    () = token.cancelled() => return false,
                }
            }
        }
    };
    let identity = cleanup::identity(&shared.node, shared.data.path(), own.as_ref());
    tracing::info!(identity = %identity, "agent identity (labels its containers)");
    let _ = shared.identity.set(identity);
    tokio::spawn(remove_stale(shared.clone(), token.clone()));
    // The pod network at once: a wrong one is reported now, not at the
    // first pod, and in a container adopted pods are probed through it.
    if let Some(pod_range) = shared.pod_range.get() {
        if let Err(e) = shared.runtime.prepare(*pod_range).await {
            tracing::error!(error = %e, "cannot prepare the pod network; every pod start retries it and fails with this reason until it is fixed");
        }
    }
    true
}

/// Removes this agent's containers of other clusters, retrying until the
/// runtime answers once (the pods of this cluster do not wait for it).
async fn remove_stale<R: ContainerRuntime>(shared: Arc<Context<R>>, token: CancellationToken) {
    loop {
        match cleanup::remove_stale(shared.runtime.as_ref(), shared.identity(), shared.cluster()).await {
            Ok(0) => return,
            Ok(removed) => {
                tracing::info!(
                    removed,
                    "removed this agent's containers of clusters it no longer belongs to"
                );
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot remove containers of earlier clusters yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(RUNTIME_RETRY) => {}
            () = token.cancelled() => return,
        }
    }
}

/// `node-agent --cleanup`: removes the routes, VXLAN device and chains the
/// agent added to the host (unless its backend is `none`), every container
/// this agent made (found by its identity, whatever the cluster), then the
/// pod network if an agent created it and nothing is attached any more. Needs no master. Run
/// it with the agent stopped, or the agent starts the pods again.
///
/// # Errors
/// [`AgentError`] for bad flags or when the engine fails.
pub async fn cleanup(config: AgentConfig) -> Result<usize, AgentError> {
    let facts = NodeFacts::gather(&config, config.listen).map_err(AgentError::Config)?;
    let data_dir = data_dir(&config, &facts.name)?;
    // The host's side first: it needs no engine, so a dead engine still
    // leaves the host's routes and rules clean.
    if config.network_backend != Backend::None {
        let cleaned = network::cleanup()
            .await
            .map_err(|e| AgentError::Cleanup(e.to_string()))?;
        tracing::info!(
            routes = cleaned.routes,
            vxlan_device = cleaned.vxlan_device,
            chains = cleaned.chains,
            "removed the pod network's routes, device and rules from the host"
        );
    }
    let runtime = Docker::connect(&config.docker_host, &config.network, HashMap::new())
        .await
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let own = runtime
        .own_container()
        .await
        .map_err(|e| AgentError::Cleanup(e.to_string()))?;
    let identity = cleanup::identity(&facts.name, data_dir.path(), own.as_ref());
    let removed = cleanup::remove_all(&runtime, &identity)
        .await
        .map_err(|e| AgentError::Cleanup(e.to_string()))?;
    tracing::info!(identity = %identity, removed, "removed the agent's containers");
    let network = runtime
        .remove_network_if_unused()
        .await
        .map_err(|e| AgentError::Cleanup(e.to_string()))?;
    let network_name = runtime.network();
    match network {
        NetworkRemoval::Removed => tracing::info!(network = %network_name, "removed the pod network"),
        NetworkRemoval::Missing => {}
        NetworkRemoval::NotOurs => tracing::info!(network = %network_name, "kept the pod network: no agent created it"),
        NetworkRemoval::InUse(attached) => {
            tracing::info!(network = %network_name, attached, "kept the pod network: other containers use it")
        }
    }
    Ok(removed)
}
