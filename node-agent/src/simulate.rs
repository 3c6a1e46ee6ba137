//! Simulation mode: many fake agents in one process, each registering,
//! heartbeating and "running" its pods on a [`FakeRuntime`], for
//! control-plane scale tests without Docker.

use std::collections::HashMap;
use std::sync::Arc;

use bosun_proto::client::Client;
use tokio_util::sync::CancellationToken;

use crate::agent::{PodIndex, Shared};
use crate::config::{AgentConfig, SimulateConfig};
use crate::events::Recorder;
use crate::node::NodeFacts;
use crate::plan;
use crate::runtime::fake::FakeRuntime;
use crate::status::Reporter;

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
    for i in 0..simulate.nodes {
        let mut node_config = config.clone();
        node_config.name = Some(format!("{}{i}", simulate.name_prefix));
        node_config.cpus = Some(simulate.node_cpus.clone());
        node_config.memory = Some(simulate.node_memory.clone());
        node_config.address = Some("127.0.0.1".into());
        let facts = NodeFacts::gather(&node_config, "127.0.0.1:0".parse().expect("literal address"))?;
        let runtime = Arc::new(FakeRuntime::new(false));
        let shared = Arc::new(Shared {
            node: facts.name.clone(),
            cluster_id: std::sync::OnceLock::new(),
            data_dir: format!("simulated/{}", facts.name).into(),
            identity: std::sync::OnceLock::new(),
            runtime,
            client: client.clone(),
            plan: plan::Context {
                backoff: config.backoff(),
                host_ip: facts.address.clone(),
            },
            container_labels: HashMap::new(),
            reporter: Reporter::start(client.clone(), token.clone()),
            events: Recorder::start(client.clone(), &facts.name, token.clone()),
            pods: PodIndex::default(),
            runtime_back: tokio::sync::Notify::new(),
        });
        crate::agent::start(shared, facts, config.heartbeat(), token.clone());
    }
    tracing::info!(nodes = simulate.nodes, "simulated agents started");
    shutdown.await;
    token.cancel();
    Ok(())
}
