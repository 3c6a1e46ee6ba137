//! Container probes, with Kubernetes' semantics: a startup probe gates the
//! others, a failing liveness (or startup) probe gets the container killed
//! and restarted per the pod's `restartPolicy`, a readiness probe decides
//! whether the container is ready and never restarts it.
//!
//! - [`state`]: the pure state machine of one container's probes
//!   (schedules, thresholds, startup gating). Start here.
//! - [`check`]: one `exec`, `httpGet` or `tcpSocket` check.
//! - [`runner`]: the task probing one container instance.
//! - this file: [`Probes`], a pod worker's set of probing tasks.
//!
//! The verdicts do not act by themselves: the worker hands them to
//! [`crate::plan`], which makes them the containers' `ready` and `started`
//! and plans the kill of a container whose probe gave up; the restart that
//! follows is the plan's ordinary restart, with its back-off and count.
//!
//! ```text
//!   worker sees a container instance running, with probes
//!        │ sync: start a task (fresh state, initial delay from the container's start)
//!        ▼
//!   probing ──verdict changes──► worker woken: plan (status, maybe a kill)
//!        │ the instance stops or is removed, the pod is deleted, the worker ends
//!        ▼
//!   task cancelled (a restarted container is a new instance: a new task)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_proto::api::{Container, Pod};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::events::Recorder;
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerState};

pub mod check;
pub mod runner;
pub mod state;

pub use state::{Failure, Kind, Verdict};

/// A container instance to probe.
#[derive(Debug, PartialEq)]
pub struct Wanted<'a> {
    /// The runtime's id of the instance.
    pub id: &'a str,
    pub container: &'a Container,
    pub pod_ip: Option<&'a str>,
    /// How long the instance has been running.
    pub since_start: Duration,
}

/// The container instances of `pod` to probe at `now`: for each container
/// with a probe, its newest instance if it is running, while the container
/// holding the pod's network ([`crate::plan::network_holder`]) runs and the
/// pod is not being deleted.
pub fn wanted<'a>(pod: Option<&'a Pod>, actual: &'a [ContainerInfo], now: SystemTime) -> Vec<Wanted<'a>> {
    let Some(pod) = pod else { return vec![] };
    if pod.metadata.as_ref().is_some_and(|m| m.deletion_timestamp.is_some()) {
        return vec![];
    }
    let newest = |name: &str| {
        actual
            .iter()
            .filter(|c| c.container_name() == name)
            .max_by_key(|c| c.attempt())
    };
    let Some(spec) = pod.spec.as_ref() else { return vec![] };
    let Some(holder) = crate::plan::network_holder(spec, actual).filter(|h| h.is_running()) else {
        return vec![];
    };
    spec.containers
        .iter()
        .filter(|c| c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some())
        .filter_map(|container| {
            let instance = newest(&container.name)?;
            let ContainerState::Running { started_at } = instance.state else {
                return None;
            };
            Some(Wanted {
                id: &instance.id,
                container,
                pod_ip: holder.ip.as_deref(),
                since_start: now.duration_since(started_at).unwrap_or_default(),
            })
        })
        .collect()
}

/// The probing tasks of one pod, by container instance. Dropping it
/// cancels them; [`Probes::stop`] also waits for them to end.
pub struct Probes<R> {
    runtime: Arc<R>,
    /// Where failed checks are recorded (`Unhealthy`).
    events: Recorder,
    /// Wakes the pod's worker when a verdict changes.
    poke: Arc<Notify>,
    /// Parent of every task's token.
    token: CancellationToken,
    tracker: TaskTracker,
    /// One entry per instance being probed, by its runtime id; exactly the
    /// instances [`wanted`] returned at the last sync.
    running: HashMap<String, Probing>,
}

struct Probing {
    token: CancellationToken,
    verdict: watch::Receiver<Verdict>,
}

impl<R: ContainerRuntime> Probes<R> {
    pub fn new(runtime: Arc<R>, events: Recorder, poke: Arc<Notify>, token: CancellationToken) -> Probes<R> {
        Probes {
            runtime,
            events,
            poke,
            token,
            tracker: TaskTracker::new(),
            running: HashMap::new(),
        }
    }

    /// Probes exactly the instances [`wanted`] names: starts tasks for new
    /// ones, cancels those of instances that stopped or went away.
    pub fn sync(&mut self, pod: Option<&Pod>, actual: &[ContainerInfo], now: SystemTime) {
        let wanted = wanted(pod, actual, now);
        let events = pod.map(|pod| self.events.for_pod(pod));
        self.running.retain(|id, probing| {
            let keep = wanted.iter().any(|w| w.id == id);
            if !keep {
                probing.token.cancel();
            }
            keep
        });
        for instance in wanted {
            if self.running.contains_key(instance.id) {
                continue;
            }
            let (tx, verdict) = watch::channel(Verdict::initial(instance.container));
            let token = self.token.child_token();
            let pod_name = pod.and_then(|p| p.metadata.as_ref()).map(|m| m.name.clone());
            let span =
                tracing::info_span!("probes", pod = pod_name.unwrap_or_default(), container = %instance.container.name);
            let probing = runner::Probing {
                runtime: self.runtime.clone(),
                container: instance.container.clone(),
                target: check::Target::new(instance.id, instance.pod_ip.map(String::from), instance.container),
                since_start: instance.since_start,
                events: events.clone(),
            };
            self.tracker
                .spawn(runner::run(probing, tx, self.poke.clone(), token.clone()).instrument(span));
            self.running.insert(instance.id.to_string(), Probing { token, verdict });
        }
    }

    /// The current verdict of every instance being probed, by runtime id.
    pub fn verdicts(&self) -> HashMap<String, Verdict> {
        self.running
            .iter()
            .map(|(id, probing)| (id.clone(), probing.verdict.borrow().clone()))
            .collect()
    }

    /// Cancels every task and waits until they have ended.
    pub async fn stop(&mut self) {
        self.token.cancel();
        self.running.clear();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl<R> Drop for Probes<R> {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[cfg(test)]
mod tests;
