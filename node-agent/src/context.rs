//! What every part of one agent shares, built in one place
//! ([`Context::new`]) for a real agent and for each simulated one.
//!
//! The parts: the node's name and address, its pods' addresses, the
//! container runtime, the client to the masters, the caches of objects the
//! pods read ([`Caches`], one per process, shared by simulated agents), the
//! data directory ([`DataDir`]), the status reporter and the event recorder,
//! and the index of pods bound here (for logs and exec).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use bosun_proto::api::{ConfigMap, Pod, Secret};
use bosun_proto::client::{reflect, Api, Client, Store, Watcher};
use bosun_proto::net::Cidr;
use tokio_util::sync::CancellationToken;

use crate::addresses::Addresses;
use crate::events::Recorder;
use crate::plan;
use crate::status::Reporter;

/// Pods bound to this node by namespace and name, for the logs/exec
/// server.
pub type PodIndex = Arc<RwLock<HashMap<(String, String), Arc<Pod>>>>;

/// The agent's data directory, absolute (it is part of the agent's
/// identity). Everything the agent writes on the host goes under it.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// `--data-dir`, or `~/.local/share/bosun/agent-NAME`; created, and
    /// made absolute.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn open(configured: Option<&Path>, node: &str) -> Result<DataDir, String> {
        let path = configured.map_or_else(
            || {
                let base = std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".local/share/bosun"))
                    .unwrap_or_else(|| "bosun-data".into());
                base.join(format!("agent-{node}"))
            },
            Path::to_path_buf,
        );
        std::fs::create_dir_all(&path).map_err(|e| format!("data dir {}: {e}", path.display()))?;
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        Ok(DataDir { path })
    }

    /// A data directory that is never written (simulated agents).
    pub fn simulated(node: &str) -> DataDir {
        DataDir {
            path: PathBuf::from(format!("simulated/{node}")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Copies of the objects the agent's pods read, kept current by watches
/// ([`bosun_proto::client::Store`]): a container's environment reads its
/// ConfigMaps and Secrets here instead of asking the masters at every
/// start. One per process: simulated agents share it.
#[derive(Clone)]
pub struct Caches {
    pub config_maps: Store<ConfigMap>,
    pub secrets: Store<Secret>,
}

impl Caches {
    /// Starts following every ConfigMap and Secret, until `token` is
    /// cancelled.
    pub fn start(client: &Client, token: &CancellationToken) -> Caches {
        Caches {
            config_maps: reflect(Watcher::new(Api::all(client), "", ""), token.clone()),
            secrets: reflect(Watcher::new(Api::all(client), "", ""), token.clone()),
        }
    }

    /// Empty caches that nothing fills (tests).
    pub fn empty() -> Caches {
        Caches {
            config_maps: Store::new(),
            secrets: Store::new(),
        }
    }
}

/// What every part of one agent shares.
pub struct Context<R> {
    pub node: String,
    /// The cluster's id, learnt at registration; labels every container.
    pub cluster_id: OnceLock<String>,
    /// The node's pod range (`spec.podCIDR`), given by the leader after
    /// registration; the pod network's subnet. Set before the pod manager
    /// starts.
    pub pod_range: OnceLock<Cidr>,
    /// The pods' addresses in that range.
    pub addresses: Addresses,
    pub data: DataDir,
    /// The agent's identity on its engine ([`crate::cleanup::identity`]),
    /// known once the runtime answered; labels every container. Set before
    /// the pod manager starts.
    pub identity: OnceLock<String>,
    pub runtime: Arc<R>,
    pub client: Client,
    pub caches: Caches,
    pub plan: plan::Context,
    /// Extra labels on every container (`--container-labels`).
    pub container_labels: HashMap<String, String>,
    pub reporter: Reporter,
    pub events: Recorder,
    pub pods: PodIndex,
    /// Notified when the container runtime answers again after an outage.
    pub runtime_back: tokio::sync::Notify,
}

/// The parts a [`Context`] is made of that differ from agent to agent.
pub struct Parts<R> {
    pub node: String,
    pub host_ip: String,
    pub data: DataDir,
    pub runtime: Arc<R>,
    pub client: Client,
    pub caches: Caches,
    pub backoff: plan::Backoff,
    pub container_labels: HashMap<String, String>,
}

impl<R> Context<R> {
    /// The context of one agent; starts its status reporter and event
    /// recorder, which stop with `token`.
    pub fn new(parts: Parts<R>, token: &CancellationToken) -> Arc<Context<R>> {
        let Parts {
            node,
            host_ip,
            data,
            runtime,
            client,
            caches,
            backoff,
            container_labels,
        } = parts;
        Arc::new(Context {
            events: Recorder::start(client.clone(), &node, token.clone()),
            reporter: Reporter::start(client.clone(), token.clone()),
            node,
            cluster_id: OnceLock::new(),
            pod_range: OnceLock::new(),
            addresses: Addresses::default(),
            data,
            identity: OnceLock::new(),
            runtime,
            client,
            caches,
            plan: plan::Context { backoff, host_ip },
            container_labels,
            pods: PodIndex::default(),
            runtime_back: tokio::sync::Notify::new(),
        })
    }

    /// The cluster id (empty until registration finished).
    pub fn cluster(&self) -> &str {
        self.cluster_id.get().map_or("", String::as_str)
    }

    /// The agent's identity (empty until the runtime first answered).
    pub fn identity(&self) -> &str {
        self.identity.get().map_or("", String::as_str)
    }
}
