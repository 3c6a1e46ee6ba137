//! The container runtime the agent drives, behind a trait so the pod logic
//! runs unchanged against Docker ([`docker::Docker`]) or a fake
//! ([`fake::FakeRuntime`]) in unit tests and simulations.
//!
//! Every container the agent creates carries labels tying it to its node,
//! pod and attempt, so the actual state can always be read back from the
//! runtime: the agent keeps nothing it cannot rebuild after a restart.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use tokio::io::AsyncWrite;

pub mod conformance;
pub mod docker;
pub mod fake;
mod own_container;
mod sandbox_image;

pub use own_container::{id_from_mountinfo, Mount, OwnContainer};
pub use sandbox_image::{pause_image_tar, SANDBOX_IMAGE};

/// Label keys on every container the agent creates.
pub mod labels {
    /// Marks a container as managed by a Bosun agent.
    pub const MANAGED: &str = "io.bosun.managed";
    /// The node whose agent owns the container.
    pub const NODE: &str = "io.bosun.node";
    /// The cluster the node belongs to (the uid of its `bosun-system`
    /// namespace), so two clusters sharing an engine never touch each
    /// other's containers.
    pub const CLUSTER: &str = "io.bosun.cluster";
    /// The agent that made the container: its node name and where its
    /// data directory lives (`NODE@LOCATION`, see [`crate::cleanup`]).
    /// Containers of another cluster are removed only when they carry this
    /// agent's own value.
    pub const AGENT: &str = "io.bosun.agent";
    pub const POD_UID: &str = "io.bosun.pod.uid";
    pub const POD_NAME: &str = "io.bosun.pod.name";
    pub const POD_NAMESPACE: &str = "io.bosun.pod.namespace";
    /// The container's name in the pod spec; [`SANDBOX`] for the sandbox.
    pub const CONTAINER: &str = "io.bosun.container";
    /// 0 for the first run of a container, +1 for each restart.
    pub const ATTEMPT: &str = "io.bosun.attempt";
    /// Seconds between SIGTERM and SIGKILL, for cleaning up orphans whose
    /// pod object is gone.
    pub const GRACE: &str = "io.bosun.grace";
    /// The value of [`CONTAINER`] for a pod's sandbox.
    pub const SANDBOX: &str = "POD";
    /// The pod's address, on the container holding the pod's network (its
    /// sandbox, or its only container): see [`crate::addresses`].
    pub const POD_IP: &str = "io.bosun.pod.ip";
}

/// Why a runtime call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime cannot be reached at all.
    #[error("container runtime unreachable: {0}")]
    Unreachable(String),
    #[error("no such container or image: {0}")]
    NotFound(String),
    /// The runtime refused the request; the message is the runtime's.
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A container as the agent wants it created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub labels: HashMap<String, String>,
    /// The container whose network namespace to join (the sandbox), or
    /// `None` to attach to the agent's network (the container holding the
    /// pod's network: its sandbox, or its only container).
    pub network_of: Option<String>,
    /// The address on the agent's network (with `network_of: None`); the
    /// engine picks one when `None`.
    pub ip: Option<std::net::Ipv4Addr>,
    /// (container port, host port, protocol, host ip) published on the
    /// container holding the pod's network.
    pub published_ports: Vec<(i32, i32, String, String)>,
    pub memory_limit_bytes: Option<i64>,
    pub cpu_limit_millis: Option<i64>,
    pub cpu_request_millis: Option<i64>,
    pub binds: Vec<String>,
    pub hostname: Option<String>,
}

/// The lifecycle state of a container.
///
/// ```text
///   Created ──start──► Running ──exit──► Exited
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started (or a start failed).
    Created,
    Running {
        started_at: SystemTime,
    },
    Exited {
        exit_code: i32,
        oom_killed: bool,
        started_at: Option<SystemTime>,
        finished_at: SystemTime,
        error: String,
    },
}

/// A container as the runtime reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub labels: HashMap<String, String>,
    pub state: ContainerState,
    pub image: String,
    pub image_id: String,
    /// The IP address on the agent's network, while it runs (containers
    /// holding a pod's network only).
    pub ip: Option<String>,
    pub created_at: SystemTime,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }

    /// The container's name in the pod spec, or `POD` for the sandbox.
    pub fn container_name(&self) -> &str {
        self.label(labels::CONTAINER)
    }

    pub fn attempt(&self) -> u32 {
        self.label(labels::ATTEMPT).parse().unwrap_or(0)
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    /// The pod's address, if this container holds the pod's network: the
    /// one it was given (also while it is stopped), or, for a sandbox of
    /// an older agent, the one the engine gave it.
    pub fn pod_ip(&self) -> Option<&str> {
        let labelled = self.label(labels::POD_IP);
        if labelled.is_empty() {
            self.ip.as_deref()
        } else {
            Some(labelled)
        }
    }
}

/// A change the runtime reports for one of the agent's containers.
#[derive(Clone, Debug)]
pub struct RuntimeEvent {
    pub container_id: String,
    pub pod_uid: String,
    pub action: String,
}

/// Which logs to read.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<i64>,
    /// Only output written at or after this time.
    pub since: Option<SystemTime>,
    pub timestamps: bool,
}

/// An exec session: output, stdin and, once output ends, the exit code.
pub struct ExecSession {
    pub id: String,
    pub output: Pin<Box<dyn Stream<Item = Result<ExecOutput>> + Send>>,
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
}

#[derive(Clone, Debug)]
pub enum ExecOutput {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// What the agent needs from a container runtime.
#[tonic::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// "docker://28.2.2"-style name and version; also a liveness check.
    async fn version(&self) -> Result<String>;
    /// Prepares what pods need: the pod network on the node's pod range
    /// (joined by the agent's own container, when it runs in one) and the
    /// sandbox image.
    async fn prepare(&self, pod_range: bosun_proto::net::Cidr) -> Result<()>;
    /// The container the agent runs in on this runtime, or `None` when it
    /// runs on the host (or in a container of another engine).
    async fn own_container(&self) -> Result<Option<OwnContainer>>;
    async fn image_present(&self, image: &str) -> Result<bool>;
    /// Pulls an image; the error carries the runtime's message.
    async fn pull_image(&self, image: &str) -> Result<()>;
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// Every container (running or not) with the label `key=value`,
    /// inspected.
    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>>;
    async fn logs(&self, id: &str, options: LogOptions) -> Result<ByteStream>;
    async fn exec(&self, id: &str, command: Vec<String>, stdin: bool, tty: bool) -> Result<ExecSession>;
    async fn resize_exec(&self, exec_id: &str, width: u16, height: u16) -> Result<()>;
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>>;
    /// Changes to containers carrying every one of `labels`, until the
    /// stream ends (the runtime went away).
    async fn events(&self, labels: &[(String, String)]) -> Result<Pin<Box<dyn Stream<Item = RuntimeEvent> + Send>>>;
}
