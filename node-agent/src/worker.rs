//! One task per pod: reads the pod's containers back from the runtime,
//! keeps its containers' probes running ([`crate::probe`]), asks
//! [`crate::plan`] what to do, does it, reports the status, and waits for
//! the next change (the pod object, a runtime event, a probe verdict, a
//! back-off ending or the periodic resync).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_proto::api::{Container, Pod};
use bosun_proto::client::{Api, Client, ClientError, DeleteParams, Store, Typed};
use bosun_proto::quantity::Quantity;
use bosun_proto::Kind;
use futures::future::join_all;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::addresses::AddressError;
use crate::context::Context;
use crate::env;
use crate::events::{self, PodEvents};
use crate::plan::{self, Action, Desired, Memory, Shape};
use crate::probe::Probes;
use crate::runtime::{labels, ContainerInfo, ContainerRuntime, ContainerSpec, RuntimeError, SANDBOX_IMAGE};

/// Plan again at least this often, even when nothing seems to change.
const RESYNC: Duration = Duration::from_secs(10);
/// Pause after a failed action or an unreachable runtime.
const RETRY: Duration = Duration::from_secs(1);

/// How the pod manager talks to a worker.
pub struct WorkerHandle {
    pod: watch::Sender<Desired>,
    poke: Arc<Notify>,
}

impl WorkerHandle {
    /// The pod changed (or is gone).
    pub fn update(&self, pod: Desired) {
        self.pod.send_replace(pod);
    }

    /// Something happened to the pod's containers.
    pub fn poke(&self) {
        self.poke.notify_one();
    }
}

/// Starts the worker for pod `uid`; it sends `uid` on `done` when the pod
/// and its containers are gone.
pub fn spawn<R: ContainerRuntime>(
    shared: Arc<Context<R>>,
    uid: String,
    pod: Desired,
    done: mpsc::UnboundedSender<String>,
    token: CancellationToken,
) -> WorkerHandle {
    let (pod_tx, pod_rx) = watch::channel(pod);
    let poke = Arc::new(Notify::new());
    let mut worker = Worker {
        probes: Probes::new(
            shared.runtime.clone(),
            shared.events.clone(),
            poke.clone(),
            token.child_token(),
        ),
        shared,
        uid: uid.clone(),
        memory: Memory::default(),
        waiting: HashMap::new(),
    };
    let worker_poke = poke.clone();
    tokio::spawn(async move {
        worker.run(pod_rx, worker_poke, token).await;
        worker.probes.stop().await;
        worker.shared.addresses.release(&uid).await;
        worker.shared.reporter.forget(&uid).await;
        worker.shared.events.forget(&uid);
        let _ = done.send(uid);
    });
    WorkerHandle { pod: pod_tx, poke }
}

/// What a worker does after acting.
enum Next {
    PlanAgain,
    WaitForChange,
    Retry,
}

struct Worker<R: ContainerRuntime> {
    shared: Arc<Context<R>>,
    uid: String,
    memory: Memory,
    /// Probing tasks of the pod's running containers; their verdicts go
    /// into `memory` before each plan.
    probes: Probes<R>,
    /// Why each container waited in the last status, to see back-offs
    /// begin.
    waiting: events::Waits,
}

impl<R: ContainerRuntime> Worker<R> {
    async fn run(&mut self, mut pod: watch::Receiver<Desired>, poke: Arc<Notify>, token: CancellationToken) {
        loop {
            if self.memory.finished {
                // Its network was given back: so is its address.
                self.shared.addresses.release(&self.uid).await;
            }
            let desired = pod.borrow_and_update().clone();
            let current = desired.pod().cloned();
            let mut pause = None;
            match self.shared.runtime.list_containers(labels::POD_UID, &self.uid).await {
                Err(e) => {
                    tracing::debug!(pod = %self.uid, error = %e, "cannot read the pod's containers");
                    pause = Some(RETRY);
                }
                Ok(actual) => {
                    let now = SystemTime::now();
                    self.probes.sync(current.as_ref(), &actual, now);
                    self.memory.probes = self.probes.verdicts();
                    let plan = plan::plan(&desired, &actual, &mut self.memory, &self.shared.plan, now);
                    if let (Some(pod), Some(status)) = (&current, plan.status) {
                        for message in events::back_offs(pod, &self.waiting, &status) {
                            self.shared.events.for_pod(pod).warning("BackOff", message);
                        }
                        self.waiting = events::waits(&status);
                        self.shared.reporter.report(pod, status).await;
                    }
                    if plan.done {
                        return;
                    }
                    if !plan.actions.is_empty() {
                        match self.execute(current.as_ref(), &actual, plan.actions).await {
                            Next::PlanAgain => continue, // look at the result at once
                            Next::WaitForChange => pause = Some(RESYNC),
                            Next::Retry => pause = Some(RETRY),
                        }
                    } else if let Some(at) = plan.wake_at {
                        pause = Some(at.duration_since(now).unwrap_or_default());
                    }
                }
            }
            let pause = pause.unwrap_or(RESYNC).min(RESYNC);
            tokio::select! {
                changed = pod.changed() => if changed.is_err() { return },
                () = poke.notified() => {}
                () = self.shared.runtime_back.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = token.cancelled() => return,
            }
        }
    }

    /// Carries out actions in order.
    async fn execute(&mut self, pod: Option<&Pod>, actual: &[ContainerInfo], actions: Vec<Action>) -> Next {
        let mut next = Next::PlanAgain;
        for action in actions {
            if action == Action::DeletePod {
                // Done once the watch reports the pod gone.
                next = Next::WaitForChange;
            }
            let result = match action {
                Action::Remove(ids) => self.remove(&ids).await,
                Action::StartSandbox { attempt } => match pod {
                    Some(pod) => {
                        self.start_sandbox(pod, attempt).await;
                        Ok(())
                    }
                    None => Ok(()),
                },
                Action::StartContainer { name, attempt, shape } => match pod {
                    Some(pod) => {
                        self.start_container(pod, actual, &name, attempt, shape).await;
                        Ok(())
                    }
                    None => Ok(()),
                },
                Action::StopAll { grace } => self.stop_all(actual, grace).await,
                Action::Kill {
                    id,
                    name,
                    grace,
                    reason,
                } => {
                    tracing::info!(pod = %self.uid, container = %name, grace = ?grace, reason = %reason, "killing the container; it will be restarted as its restart policy says");
                    if let Some(pod) = pod {
                        let message = format!("Stopping container {name}: {reason}");
                        self.shared.events.for_pod(pod).normal("Killing", message);
                    }
                    self.shared
                        .runtime
                        .stop_container(&id, grace)
                        .await
                        .map_err(ActionError::from)
                }
                Action::StopSandbox { id } => {
                    tracing::info!(pod = %self.uid, "the pod has finished: stopping its sandbox");
                    self.shared
                        .runtime
                        .stop_container(&id, Duration::ZERO)
                        .await
                        .map_err(ActionError::from)
                }
                Action::DeletePod => match pod {
                    Some(pod) => self.delete_pod(pod).await,
                    None => Ok(()),
                },
            };
            if let Err(e) = result {
                tracing::warn!(pod = %self.uid, error = %e, "pod action failed; retrying");
                return Next::Retry;
            }
        }
        next
    }

    async fn remove(&self, ids: &[String]) -> Result<(), ActionError> {
        for id in ids {
            self.shared.runtime.remove_container(id).await?;
        }
        Ok(())
    }

    /// Labels tying a container to this node, pod and attempt.
    fn labels(&self, pod: &Pod, container: &str, attempt: u32) -> HashMap<String, String> {
        let meta = pod.metadata.clone().unwrap_or_default();
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let mut labels = self.shared.container_labels.clone();
        labels.extend([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::NODE.to_string(), self.shared.node.clone()),
            (labels::CLUSTER.to_string(), self.shared.cluster().to_string()),
            (labels::AGENT.to_string(), self.shared.identity().to_string()),
            (labels::POD_UID.to_string(), self.uid.clone()),
            (labels::POD_NAME.to_string(), meta.name),
            (labels::POD_NAMESPACE.to_string(), meta.namespace),
            (labels::CONTAINER.to_string(), container.to_string()),
            (labels::ATTEMPT.to_string(), attempt.to_string()),
            (labels::GRACE.to_string(), grace.to_string()),
        ]);
        labels
    }

    /// The runtime's name for a container: unique per pod uid and attempt.
    fn runtime_name(&self, pod: &Pod, container: &str, attempt: u32) -> String {
        let meta = pod.metadata.clone().unwrap_or_default();
        let uid: String = self.uid.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
        format!("bosun_{container}_{}_{}_{uid}_{attempt}", meta.name, meta.namespace)
    }

    /// Makes `spec` the container holding the pod's network (its sandbox,
    /// or its only container): on the pod network, made if need be, at the
    /// pod's address, with the label, hostname and host ports that go with
    /// it.
    async fn hold_network(&self, pod: &Pod, spec: &mut ContainerSpec) -> Result<Ipv4Addr, NetworkError> {
        let pod_range = self.shared.pod_range.get().copied().ok_or(NetworkError::NoRange)?;
        let runtime = &*self.shared.runtime;
        runtime.prepare(pod_range).await?;
        let cluster = self.shared.cluster();
        let address = self
            .shared
            .addresses
            .assign(runtime, &self.shared.node, cluster, pod_range, &self.uid)
            .await?;
        let pod_spec = pod.spec.as_ref();
        spec.published_ports = pod_spec
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| &c.ports)
            .filter(|p| p.host_port > 0)
            .map(|p| {
                let protocol = if p.protocol.is_empty() {
                    "TCP".to_string()
                } else {
                    p.protocol.clone()
                };
                (p.container_port, p.host_port, protocol, p.host_ip.clone())
            })
            .collect();
        let name = pod.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default();
        let hostname: String = name.chars().take(63).collect();
        spec.hostname = Some(hostname.trim_end_matches('.').to_string());
        spec.network_of = None;
        spec.ip = Some(address);
        spec.labels.insert(labels::POD_IP.to_string(), address.to_string());
        Ok(address)
    }

    /// Creates and starts `spec`; a container that does not start is
    /// removed. The address of one that holds the pod's network and found
    /// it taken (by a container the agent did not make) is not given
    /// again: the next attempt gets another.
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, StartError> {
        let runtime = &self.shared.runtime;
        let id = runtime.create_container(spec).await.map_err(StartError::Create)?;
        if let Err(e) = runtime.start_container(&id).await {
            let _ = runtime.remove_container(&id).await;
            if spec.ip.is_some() && e.to_string().contains("Address already in use") {
                tracing::warn!(pod = %self.uid, address = ?spec.ip, "the pod's address is taken by a container the agent did not make; the next attempt gets another");
                self.shared.addresses.taken_elsewhere(&self.uid).await;
            }
            return Err(StartError::Run(e));
        }
        Ok(id)
    }

    async fn start_sandbox(&mut self, pod: &Pod, attempt: u32) {
        let mut container = ContainerSpec {
            name: self.runtime_name(pod, labels::SANDBOX, attempt),
            image: SANDBOX_IMAGE.to_string(),
            entrypoint: Some(vec!["/pause".to_string()]),
            labels: self.labels(pod, labels::SANDBOX, attempt),
            ..Default::default()
        };
        let result = async {
            self.hold_network(pod, &mut container)
                .await
                .map_err(StartError::Network)?;
            self.create_and_start(&container).await
        }
        .await;
        let now = SystemTime::now();
        match result {
            Ok(_) => self.memory.sandbox.start_succeeded(),
            Err(e) => {
                let name = pod.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default();
                tracing::warn!(pod = %name, error = %e, "cannot start the pod sandbox");
                let message = format!("Failed to create pod sandbox: {e}");
                self.shared
                    .events
                    .for_pod(pod)
                    .warning("FailedCreatePodSandBox", message);
                self.memory.sandbox.start_failed(
                    "FailedCreatePodSandBox",
                    e.to_string(),
                    &self.shared.plan.backoff,
                    now,
                );
            }
        }
    }

    async fn start_container(&mut self, pod: &Pod, actual: &[ContainerInfo], name: &str, attempt: u32, shape: Shape) {
        let now = SystemTime::now();
        let backoff = self.shared.plan.backoff;
        let outcome = self.try_start_container(pod, actual, name, attempt, shape).await;
        let memory = self.memory.containers.entry(name.to_string()).or_default();
        match outcome {
            Ok(()) => memory.start_succeeded(),
            Err(error) => {
                let (reason, message) = (error.reason(), error.to_string());
                tracing::info!(pod = %self.uid, container = name, reason, message = %message, "container did not start");
                self.shared.events.for_pod(pod).warning("Failed", message.clone());
                memory.start_failed(reason, message, &backoff, now);
            }
        }
    }

    async fn try_start_container(
        &self,
        pod: &Pod,
        actual: &[ContainerInfo],
        name: &str,
        attempt: u32,
        shape: Shape,
    ) -> Result<(), StartError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| StartError::NoSuchContainer(name.to_string()))?;
        if !spec.volumes.is_empty() {
            return Err(StartError::Volumes(
                spec.volumes.iter().map(|v| v.name.clone()).collect(),
            ));
        }
        let mut runtime_spec = ContainerSpec {
            name: self.runtime_name(pod, name, attempt),
            image: container.image.clone(),
            labels: self.labels(pod, name, attempt),
            ..Default::default()
        };
        let pod_ip = match shape {
            Shape::Sandbox => {
                let sandbox = actual
                    .iter()
                    .filter(|c| c.container_name() == labels::SANDBOX && c.is_running())
                    .max_by_key(|c| c.attempt())
                    .ok_or(StartError::NoSandbox)?;
                runtime_spec.network_of = Some(sandbox.id.clone());
                sandbox.pod_ip().unwrap_or_default().to_string()
            }
            Shape::Single => self
                .hold_network(pod, &mut runtime_spec)
                .await
                .map_err(StartError::Network)?
                .to_string(),
        };
        let events = self.shared.events.for_pod(pod);
        self.ensure_image(container, &events).await?;
        let sources = self.env_sources(pod, container).await?;
        let env =
            env::build(pod, container, &sources, &pod_ip, &self.shared.plan.host_ip).map_err(StartError::Config)?;
        let resources = container.resources.clone().unwrap_or_default();
        let quantity = |map: &HashMap<String, bosun_proto::api::Quantity>, key: &str| {
            map.get(key).and_then(|q| Quantity::parse(&q.value).ok())
        };
        let command = env::expand_all(&container.command, &env);
        let args = env::expand_all(&container.args, &env);
        let (entrypoint, cmd) = match (command.is_empty(), args.is_empty()) {
            (true, true) => (None, None),
            (true, false) => (None, Some(args)),
            (false, _) => (Some(command), Some(args)),
        };
        let runtime_spec = ContainerSpec {
            entrypoint,
            cmd,
            env: env::entries(&env),
            working_dir: (!container.working_dir.is_empty()).then(|| container.working_dir.clone()),
            memory_limit_bytes: quantity(&resources.limits, "memory").map(Quantity::units),
            cpu_limit_millis: quantity(&resources.limits, "cpu").map(Quantity::millis),
            cpu_request_millis: quantity(&resources.requests, "cpu").map(Quantity::millis),
            ..runtime_spec
        };
        self.create_and_start(&runtime_spec).await?;
        events.normal("Created", format!("Created container {name}"));
        events.normal("Started", format!("Started container {name}"));
        Ok(())
    }

    /// Makes the image available as the pull policy says, recording
    /// `Pulling` and `Pulled` as the kubelet does.
    async fn ensure_image(&self, container: &Container, events: &PodEvents) -> Result<(), StartError> {
        let runtime = &self.shared.runtime;
        let image = container.image.as_str();
        let present = || async {
            runtime
                .image_present(image)
                .await
                .map_err(|source| StartError::ImageCheck {
                    image: image.to_string(),
                    source,
                })
        };
        let pull = match container.image_pull_policy.as_str() {
            "Always" => true,
            "Never" => {
                if !present().await? {
                    return Err(StartError::NeverPull(image.to_string()));
                }
                false
            }
            _ => !present().await?,
        };
        if !pull {
            events.normal(
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            );
            return Ok(());
        }
        events.normal("Pulling", format!("Pulling image {image:?}"));
        let started = std::time::Instant::now();
        runtime.pull_image(image).await.map_err(|source| StartError::Pull {
            image: image.to_string(),
            source,
        })?;
        events.normal(
            "Pulled",
            format!(
                "Successfully pulled image {image:?} in {:.3}s",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// Fetches the ConfigMaps and Secrets the container's environment uses.
    async fn env_sources(&self, pod: &Pod, container: &Container) -> Result<env::Sources, StartError> {
        let namespace = pod.metadata.as_ref().map(|m| m.namespace.clone()).unwrap_or_default();
        let (config_maps, secrets) = env::referenced(container);
        let mut sources = env::Sources::default();
        let caches = &self.shared.caches;
        for name in config_maps {
            if let Some(found) = cached(&caches.config_maps, &self.shared.client, &namespace, &name).await? {
                sources.config_maps.insert(name, found);
            }
        }
        for name in secrets {
            if let Some(found) = cached(&caches.secrets, &self.shared.client, &namespace, &name).await? {
                sources.secrets.insert(name, found);
            }
        }
        Ok(sources)
    }

    /// Stops the pod's containers with `grace` (all at once), then the
    /// sandbox, then removes them all.
    async fn stop_all(&self, actual: &[ContainerInfo], grace: Duration) -> Result<(), ActionError> {
        let runtime = &self.shared.runtime;
        let (sandboxes, apps): (Vec<&ContainerInfo>, Vec<&ContainerInfo>) =
            actual.iter().partition(|c| c.container_name() == labels::SANDBOX);
        let stops = apps
            .iter()
            .filter(|c| c.is_running())
            .map(|c| runtime.stop_container(&c.id, grace));
        for result in join_all(stops).await {
            result?;
        }
        for sandbox in sandboxes.iter().filter(|c| c.is_running()) {
            runtime.stop_container(&sandbox.id, Duration::ZERO).await?;
        }
        let ids: Vec<String> = actual.iter().map(|c| c.id.clone()).collect();
        self.remove(&ids).await
    }

    /// Deletes the pod object once its containers are gone.
    async fn delete_pod(&self, pod: &Pod) -> Result<(), ActionError> {
        let meta = pod.metadata.clone().unwrap_or_default();
        let params = DeleteParams {
            resource_version: Some(meta.resource_version),
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        let result = Api::<Pod>::namespaced(&self.shared.client, &meta.namespace)
            .delete(&meta.name, &params)
            .await;
        match result {
            // Aborted: the object changed; the watch brings the new one.
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some(tonic::Code::NotFound | tonic::Code::Aborted)) => Ok(()),
            Err(e) => Err(ActionError::Masters(e)),
        }
    }
}

/// `namespace/name` from the agent's cache; on a miss (created a moment
/// ago, or missing) one read from the masters' memory, so a pod started
/// right after its ConfigMap never waits for the cache to catch up.
async fn cached<K: Typed + Clone>(
    store: &Store<K>,
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, StartError> {
    if let Some(found) = store.get(namespace, name) {
        return Ok(Some((*found).clone()));
    }
    Api::<K>::namespaced(client, namespace)
        .stale_reads()
        .get_opt(name)
        .await
        .map_err(|source| StartError::Read {
            kind: K::KIND,
            name: name.to_string(),
            source,
        })
}

/// Why a container did not start; its [`StartError::reason`] is the
/// waiting reason Kubernetes shows (`ErrImagePull`, `CreateContainerConfigError`...).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no container {0:?} in the pod")]
    NoSuchContainer(String),
    #[error("the pod sandbox is not running")]
    NoSandbox,
    /// The pod network or address could not be had.
    #[error("{0}")]
    Network(NetworkError),
    #[error("volumes are not supported by this node agent yet: {}", .0.join(", "))]
    Volumes(Vec<String>),
    /// The environment could not be built (a missing ConfigMap key...).
    #[error("{0}")]
    Config(String),
    /// A ConfigMap or Secret the environment uses could not be read.
    #[error("cannot read {} {name:?}: {source}", kind.plural())]
    Read {
        kind: Kind,
        name: String,
        source: ClientError,
    },
    #[error("cannot check for image {image:?}: {source}")]
    ImageCheck { image: String, source: RuntimeError },
    #[error("container image {0:?} is not present with pull policy of Never")]
    NeverPull(String),
    #[error("failed to pull image {image:?}: {source}")]
    Pull { image: String, source: RuntimeError },
    #[error("{0}")]
    Create(RuntimeError),
    #[error("{0}")]
    Run(RuntimeError),
}

impl StartError {
    /// The container's waiting reason.
    pub fn reason(&self) -> &'static str {
        match self {
            StartError::NoSuchContainer(_) | StartError::NoSandbox | StartError::Network(_) | StartError::Create(_) => {
                "CreateContainerError"
            }
            StartError::Volumes(_) | StartError::Config(_) | StartError::Read { .. } => "CreateContainerConfigError",
            StartError::ImageCheck { .. } | StartError::Pull { .. } => "ErrImagePull",
            StartError::NeverPull(_) => "ErrImageNeverPull",
            StartError::Run(_) => "RunContainerError",
        }
    }
}

/// Why a pod's network could not be had.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("this node has no pod range yet")]
    NoRange,
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Address(#[from] AddressError),
}

/// Why an action on the pod's containers or its object failed (retried).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot delete the pod object: {0}")]
    Masters(ClientError),
}

#[cfg(test)]
mod tests;
