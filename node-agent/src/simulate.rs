//! Simulation mode: many fake agents in one process, each registering,
//! heartbeating and "running" its pods on a [`FakeRuntime`], for
//! control-plane scale tests without Docker.

use std::collections::HashMap;
use std::sync::Arc;

use bosun_proto::client::Client;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, SimulateConfig};
use crate::context::{Caches, Context, DataDir, Parts};
use crate::node::NodeFacts;
use crate::runtime::fake::FakeRuntime;

/// Runs `simulate.nodes` fake agents until `shutdown` completes.
///
/// # Errors
/// A message for a malformed flag.
pub async fn run(
    config: AgentConfig,
    simulate: SimulateConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let token = CancellationToken::new();
    let client = Client::new(config.master.clone());
    // One cache for every simulated agent, as they share one process.
    let caches = Caches::start(&client, &token);
    for i in 0..simulate.nodes {
        let mut node_config = config.clone();
        node_config.name = Some(format!("{}{i}", simulate.name_prefix));
        node_config.cpus = Some(simulate.node_cpus.clone());
        node_config.memory = Some(simulate.node_memory.clone());
        node_config.address = Some("127.0.0.1".into());
        let facts = NodeFacts::gather(&node_config, "127.0.0.1:0".parse().expect("literal address"))?;
        let shared = Context::new(
            Parts {
                node: facts.name.clone(),
                host_ip: facts.address.clone(),
                data: DataDir::simulated(&facts.name),
                runtime: Arc::new(FakeRuntime::new(false)),
                client: client.clone(),
                caches: caches.clone(),
                backoff: config.backoff(),
                container_labels: HashMap::new(),
            },
            &token,
        );
        crate::agent::start(shared, facts, config.heartbeat(), None, token.clone());
    }
    tracing::info!(nodes = simulate.nodes, "simulated agents started");
    shutdown.await;
    token.cancel();
    Ok(())
}
