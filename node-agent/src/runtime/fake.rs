//! An in-memory [`ContainerRuntime`] for unit tests and simulations.
//! Containers "run" until told to exit; every call is recorded; images and
//! the runtime itself can be made to fail. Commands exec'd in a running
//! container print nothing and exit with 0 (or the code set for that
//! container), so exec probes pass; fake pods' IPs lead nowhere, so
//! network probes fail.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::{
    labels, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, ExecSession, LogOptions,
    Result, RuntimeError, RuntimeEvent,
};

const EVENTS: usize = 1024;

#[derive(Default)]
struct State {
    containers: HashMap<String, ContainerInfo>,
    /// Container ids by pod uid: workers list their pod's containers on
    /// every plan, and a simulated node holds many pods.
    by_pod: HashMap<String, HashSet<String>>,
    images: HashSet<String>,
    /// Images whose pulls fail, with the message.
    broken_images: HashMap<String, String>,
    unreachable: bool,
    calls: Vec<String>,
    /// Exit codes of commands exec'd in a container, when not 0.
    exec_exit_codes: HashMap<String, i64>,
    /// Exit codes of exec sessions whose code has not been asked for yet.
    exec_results: HashMap<String, i64>,
    execs: u64,
}

pub struct FakeRuntime {
    state: Mutex<State>,
    next_id: AtomicU64,
    events: broadcast::Sender<RuntimeEvent>,
    /// Whether to record calls (simulations with thousands of pods do not).
    record: bool,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new(true)
    }
}

impl FakeRuntime {
    pub fn new(record: bool) -> FakeRuntime {
        FakeRuntime {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            events: broadcast::channel(EVENTS).0,
            record,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call(&self, what: String) -> Result<()> {
        let mut state = self.state();
        if self.record {
            state.calls.push(what);
        }
        if state.unreachable {
            return Err(RuntimeError::Unreachable("fake runtime switched off".into()));
        }
        Ok(())
    }

    fn emit(&self, id: &str, action: &str) {
        let pod_uid = self
            .state()
            .containers
            .get(id)
            .map(|c| c.label(labels::POD_UID).to_string())
            .unwrap_or_default();
        let _ = self.events.send(RuntimeEvent {
            container_id: id.to_string(),
            pod_uid,
            action: action.to_string(),
        });
    }

    /// Every call so far, as "verb argument".
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    pub fn add_image(&self, image: &str) {
        self.state().images.insert(image.to_string());
    }

    /// Makes pulls of `image` fail with `message`.
    pub fn break_image(&self, image: &str, message: &str) {
        self.state()
            .broken_images
            .insert(image.to_string(), message.to_string());
    }

    pub fn set_unreachable(&self, unreachable: bool) {
        self.state().unreachable = unreachable;
    }

    /// Makes a running container exit with `code`, as if its process ended.
    pub fn exit_container(&self, id: &str, code: i32) {
        {
            let mut state = self.state();
            let Some(container) = state.containers.get_mut(id) else {
                return;
            };
            let started_at = match container.state {
                ContainerState::Running { started_at } => Some(started_at),
                _ => None,
            };
            container.state = ContainerState::Exited {
                exit_code: code,
                oom_killed: false,
                started_at,
                finished_at: SystemTime::now(),
                error: String::new(),
            };
        }
        self.emit(id, "die");
    }

    /// Makes commands exec'd in container `id` exit with `code`.
    pub fn set_exec_exit_code(&self, id: &str, code: i64) {
        self.state().exec_exit_codes.insert(id.to_string(), code);
    }

    /// Commands exec'd so far.
    pub fn exec_count(&self) -> u64 {
        self.state().execs
    }

    /// Containers as the runtime holds them.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.state().containers.values().cloned().collect()
    }
}

#[tonic::async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn version(&self) -> Result<String> {
        self.call("version".into())?;
        Ok("fake://1.0".into())
    }

    async fn prepare(&self, _pod_range: bosun_proto::net::Cidr) -> Result<()> {
        self.call("prepare".into())
    }

    async fn own_container(&self) -> Result<Option<super::OwnContainer>> {
        self.call("own_container".into())?;
        Ok(None)
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        self.call(format!("image_present {image}"))?;
        Ok(self.state().images.contains(image))
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        self.call(format!("pull {image}"))?;
        let mut state = self.state();
        if let Some(message) = state.broken_images.get(image) {
            return Err(RuntimeError::Failed(message.clone()));
        }
        state.images.insert(image.to_string());
        Ok(())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.call(format!("create {}", spec.name))?;
        let id = format!("fake-{:06}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let ip = match (spec.ip, &spec.network_of) {
            (Some(ip), _) => Some(ip.to_string()),
            (None, Some(_)) => None,
            (None, None) => {
                let n = self.next_id.load(Ordering::Relaxed);
                Some(format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255))
            }
        };
        let mut state = self.state();
        if let Some(uid) = spec.labels.get(labels::POD_UID) {
            state.by_pod.entry(uid.clone()).or_default().insert(id.clone());
        }
        state.containers.insert(
            id.clone(),
            ContainerInfo {
                id: id.clone(),
                labels: spec.labels.clone(),
                state: ContainerState::Created,
                image: spec.image.clone(),
                image_id: format!("sha256:{}", spec.image),
                ip,
                created_at: SystemTime::now(),
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.call(format!("start {id}"))?;
        {
            let mut state = self.state();
            let container = state
                .containers
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
            container.state = ContainerState::Running {
                started_at: SystemTime::now(),
            };
        }
        self.emit(id, "start");
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<()> {
        self.call(format!("stop {id}"))?;
        let Some(running) = self.state().containers.get(id).map(ContainerInfo::is_running) else {
            return Err(RuntimeError::NotFound(id.to_string()));
        };
        if running {
            self.exit_container(id, 137);
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.call(format!("remove {id}"))?;
        let mut state = self.state();
        if let Some(container) = state.containers.remove(id) {
            let uid = container.label(labels::POD_UID);
            if let Some(ids) = state.by_pod.get_mut(uid) {
                ids.remove(id);
                if ids.is_empty() {
                    state.by_pod.remove(uid);
                }
            }
        }
        Ok(())
    }

    async fn list_containers(&self, key: &str, value: &str) -> Result<Vec<ContainerInfo>> {
        self.call(format!("list {key}={value}"))?;
        let state = self.state();
        if key == labels::POD_UID {
            let ids = state.by_pod.get(value).into_iter().flatten();
            return Ok(ids.filter_map(|id| state.containers.get(id)).cloned().collect());
        }
        Ok(state
            .containers
            .values()
            .filter(|c| c.label(key) == value)
            .cloned()
            .collect())
    }

    async fn logs(&self, id: &str, _options: LogOptions) -> Result<ByteStream> {
        self.call(format!("logs {id}"))?;
        Ok(Box::pin(futures::stream::empty()))
    }

    async fn exec(&self, id: &str, _command: Vec<String>, _stdin: bool, _tty: bool) -> Result<ExecSession> {
        self.call(format!("exec {id}"))?;
        let mut state = self.state();
        match state.containers.get(id) {
            None => return Err(RuntimeError::NotFound(id.to_string())),
            Some(container) if !container.is_running() => {
                return Err(RuntimeError::Failed(format!("container {id} is not running")))
            }
            Some(_) => {}
        }
        state.execs += 1;
        let exec_id = format!("fake-exec-{}", state.execs);
        let code = state.exec_exit_codes.get(id).copied().unwrap_or(0);
        state.exec_results.insert(exec_id.clone(), code);
        Ok(ExecSession {
            id: exec_id,
            output: Box::pin(futures::stream::empty()),
            stdin: Box::pin(tokio::io::sink()),
        })
    }

    async fn resize_exec(&self, _exec_id: &str, _width: u16, _height: u16) -> Result<()> {
        Ok(())
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        self.call(format!("exec_exit_code {exec_id}"))?;
        Ok(self.state().exec_results.remove(exec_id))
    }

    async fn events(&self, labels: &[(String, String)]) -> Result<Pin<Box<dyn Stream<Item = RuntimeEvent> + Send>>> {
        self.call(format!("events {labels:?}"))?;
        let stream = BroadcastStream::new(self.events.subscribe()).filter_map(|event| event.ok());
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_passes_the_runtime_conformance_suite() {
        let fake = FakeRuntime::default();
        fake.add_image("local/busybox:1");
        super::super::conformance::check(&fake, "local/busybox:1", "conformance-fake", &HashMap::new())
            .await
            .unwrap();
        assert!(fake.containers().is_empty(), "the suite leaves nothing behind");
    }
}
