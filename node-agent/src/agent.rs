//! Wires one agent together: the runtime, registration and heartbeats, the
//! pod manager and the logs/exec server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bosun_proto::api::Pod;
use bosun_proto::client::Client;
use bosun_proto::internal::agent_server::AgentServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::config::{parse_pairs, AgentConfig};
use crate::events::Recorder;
use crate::node::{self, NodeFacts};
use crate::plan;
use crate::runtime::docker::Docker;
use crate::runtime::ContainerRuntime;
use crate::server::AgentService;
use crate::status::Reporter;

/// Pods bound to this node by namespace and name, for the logs/exec
/// server.
pub type PodIndex = Arc<RwLock<HashMap<(String, String), Arc<Pod>>>>;

/// What every part of one agent shares.
pub struct Shared<R> {
    pub node: String,
    /// The cluster's id, learnt at registration; labels every container.
    pub cluster_id: std::sync::OnceLock<String>,
    pub runtime: Arc<R>,
    pub client: Client,
    pub plan: plan::Context,
    /// Extra labels on every container (`--container-labels`).
    pub container_labels: HashMap<String, String>,
    pub reporter: Reporter,
    pub events: Recorder,
    pub pods: PodIndex,
    /// Notified when the container runtime answers again after an outage.
    pub runtime_back: tokio::sync::Notify,
}

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
    let data_dir = config.data_dir.clone().unwrap_or_else(|| {
        let base = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".local/share/bosun"))
            .unwrap_or_else(|| "bosun-data".into());
        base.join(format!("agent-{}", facts.name))
    });
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| AgentError::Config(format!("data dir {}: {e}", data_dir.display())))?;
    let token = CancellationToken::new();
    let runtime = Arc::new(
        Docker::connect(&config.docker_host, &config.network)
            .await
            .map_err(|e| AgentError::Config(e.to_string()))?,
    );
    let client = Client::new(config.master.clone());
    let shared = Arc::new(Shared {
        node: facts.name.clone(),
        cluster_id: std::sync::OnceLock::new(),
        runtime,
        client: client.clone(),
        plan: plan::Context {
            backoff: config.backoff(),
            host_ip: facts.address.clone(),
        },
        container_labels,
        events: Recorder::start(client.clone(), &facts.name, token.clone()),
        reporter: Reporter::start(client, token.clone()),
        pods: PodIndex::default(),
        runtime_back: tokio::sync::Notify::new(),
    });
    tracing::info!(node = %facts.name, address = %facts.address, port = facts.port, masters = ?config.master, "node agent starting");
    start(shared.clone(), facts, config.heartbeat(), token.clone());

    let server = tonic::transport::Server::builder()
        .add_service(AgentServer::new(AgentService::new(shared)))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            token.clone().cancelled_owned(),
        );
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

/// Starts registration, heartbeats and the pod manager for one agent.
pub fn start<R: ContainerRuntime>(
    shared: Arc<Shared<R>>,
    facts: NodeFacts,
    heartbeat: Duration,
    token: CancellationToken,
) {
    tokio::spawn(async move {
        let runtime_version = shared.runtime.version().await.unwrap_or_default();
        if !node::register(&shared.client, &facts, &runtime_version, &token).await {
            return;
        }
        let Some(cluster_id) = node::cluster_id(&shared.client, &token).await else {
            return;
        };
        let _ = shared.cluster_id.set(cluster_id);
        tokio::spawn(node::heartbeat(
            shared.clone(),
            facts.clone(),
            runtime_version,
            heartbeat,
            token.clone(),
        ));
        crate::pods::run(shared, token).await;
    });
}

impl<R> Shared<R> {
    /// The cluster id (empty until registration finished).
    pub fn cluster(&self) -> &str {
        self.cluster_id.get().map_or("", String::as_str)
    }
}
