//! What to do for one pod: a pure function from the pod object, the
//! containers the runtime reports for it and the worker's memory to a list
//! of actions and the status to report. [`crate::worker`] carries the
//! actions out and plans again.
//!
//! The container lifecycle, per container of the spec:
//!
//! ```text
//!              start failed (pull, config, run): Waiting with the reason,
//!              retried with back-off (ErrImagePull → ImagePullBackOff)
//!                ▲
//!   (none) ──StartContainer──► Running ──exit──► Terminated
//!                ▲                │               ▲  │ restartPolicy says restart
//!                │                └─────Kill──────┘  ▼
//!                │          (a startup or liveness   Waiting: CrashLoopBackOff
//!                │           probe gave up)           │
//!                └──────── after the crash back-off ──┘
//! ```
//!
//! A running container is ready when its probes say so (see
//! [`crate::probe`]: no readiness probe, or its last verdict is success,
//! and a startup probe has passed). A container whose startup or liveness
//! probe gave up is killed; its exit is then an ordinary one, restarted
//! (and counted, and backed off) as the restart policy says.
//!
//! A pod's network, and so its address, is held by one container
//! ([`Shape`]): a pod of one container holds it itself, and the engine runs
//! one container for it; a pod of several containers has a sandbox holding
//! it, which the containers join. A pod whose sandbox is missing or dead
//! starts over: its containers are removed and the sandbox is created again
//! (restart counts go on). A pod being deleted, or gone, has everything
//! stopped with its grace period and removed; then its object is deleted.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bosun_proto::api::{
    ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};

use crate::probe::Verdict;
use crate::runtime::{labels, ContainerInfo, ContainerState};

/// Restart back-off: `initial`, doubling per consecutive failure up to
/// `max`; a container that ran for `reset_after` starts again at `initial`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Backoff {
    /// The delay before retry number `failures` (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

impl Default for Backoff {
    /// Kubernetes' kubelet: 10 s doubling to 5 min, reset after 10 min.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// What a worker remembers about its pod between plans. Everything else
/// is read back from the runtime, so losing this (an agent restart) only
/// resets back-offs.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    pub containers: HashMap<String, ContainerMemory>,
    /// Sandbox start failures, as for containers.
    pub sandbox: ContainerMemory,
    /// The highest sandbox attempt seen.
    pub last_sandbox_attempt: Option<u32>,
    /// The probes' verdicts on running container instances, by runtime id,
    /// as the worker last read them. An instance with probes but no verdict
    /// (its probing is just starting, or the agent restarted) is as its
    /// probes begin: not ready, not started if it has a startup probe.
    pub probes: HashMap<String, Verdict>,
    /// The pod finished and its sandbox was stopped: nothing is to start
    /// again.
    pub finished: bool,
}

#[derive(Debug, Default, Clone)]
pub struct ContainerMemory {
    /// Failed runs in a row, for the crash back-off.
    pub crashes: u32,
    /// The attempt whose exit is already counted in `crashes`.
    pub counted_attempt: Option<u32>,
    /// The highest attempt seen, so restarts count on after the sandbox is
    /// replaced.
    pub last_attempt: Option<u32>,
    /// Failed starts in a row (pull, config, create or run errors).
    pub start_failures: u32,
    /// The last start failure: (reason, message).
    pub start_error: Option<(String, String)>,
    pub retry_at: Option<SystemTime>,
}

impl ContainerMemory {
    /// Records a failed start and schedules the retry.
    pub fn start_failed(&mut self, reason: &str, message: String, backoff: &Backoff, now: SystemTime) {
        self.start_failures += 1;
        self.start_error = Some((reason.to_string(), message));
        self.retry_at = Some(now + backoff.delay(self.start_failures));
    }

    pub fn start_succeeded(&mut self) {
        self.start_failures = 0;
        self.start_error = None;
        self.retry_at = None;
    }
}

/// Where a pod's network, and so its address, lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A sandbox container holds it; the pod's containers join it.
    Sandbox,
    /// The pod's only container holds it: each instance of that container
    /// is created with the pod's address, so a restart keeps it.
    Single,
}

impl Shape {
    /// A pod of one container needs no sandbox; a pod of several does, and
    /// so does a pod adopted with a running sandbox (made by an earlier
    /// agent), until that sandbox ends.
    pub fn of(spec: &PodSpec, actual: &[ContainerInfo]) -> Shape {
        let sandbox_runs = actual
            .iter()
            .any(|c| c.container_name() == labels::SANDBOX && c.is_running());
        if spec.containers.len() == 1 && !sandbox_runs {
            Shape::Single
        } else {
            Shape::Sandbox
        }
    }
}

/// The container holding the pod's network ([`Shape::of`]): its newest
/// sandbox, or the newest instance of its only container.
pub fn network_holder<'a>(spec: &PodSpec, actual: &'a [ContainerInfo]) -> Option<&'a ContainerInfo> {
    let name = match Shape::of(spec, actual) {
        Shape::Sandbox => labels::SANDBOX,
        Shape::Single => spec.containers[0].name.as_str(),
    };
    actual
        .iter()
        .filter(|c| c.container_name() == name)
        .max_by_key(|c| c.attempt())
}

/// One step for the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Remove these containers (stale sandboxes, old attempts).
    Remove(Vec<String>),
    /// Create and start the sandbox as `attempt`.
    StartSandbox { attempt: u32 },
    /// Pull the image as the pull policy says, create and start container
    /// `name` as `attempt`: in the sandbox's network, or holding the pod's
    /// network itself ([`Shape::Single`]).
    StartContainer { name: String, attempt: u32, shape: Shape },
    /// Stop every container (SIGTERM, SIGKILL after `grace`), then remove
    /// them all.
    StopAll { grace: Duration },
    /// The pod has finished (Succeeded or Failed, never to restart): stop
    /// its sandbox, giving back its address; the exited containers stay for
    /// `logs`.
    StopSandbox { id: String },
    /// Stop container instance `id` (SIGTERM, SIGKILL after `grace`): a
    /// probe gave up on it; `reason` says which and why.
    Kill {
        id: String,
        name: String,
        grace: Duration,
        reason: String,
    },
    /// Delete the pod object: its containers are gone.
    DeletePod,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The status to report; `None` when there is nothing to report.
    pub status: Option<PodStatus>,
    /// Plan again at this time (a back-off ends) even if nothing changes.
    pub wake_at: Option<SystemTime>,
    /// The pod is gone and so are its containers: the worker can stop.
    pub done: bool,
}

/// Inputs that do not change between plans.
#[derive(Clone, Debug)]
pub struct Context {
    pub backoff: Backoff,
    pub host_ip: String,
}

const DEFAULT_GRACE: i64 = 30;

/// What the agent knows of a pod.
#[derive(Clone, Debug)]
pub enum Desired {
    Present(std::sync::Arc<Pod>),
    /// The object is gone; `grace` is the grace period its last state
    /// asked for (0 after a forced deletion), if known.
    Gone {
        grace: Option<i64>,
    },
}

impl Desired {
    pub fn pod(&self) -> Option<&Pod> {
        match self {
            Desired::Present(pod) => Some(pod),
            Desired::Gone { .. } => None,
        }
    }
}

/// Decides what to do for a pod (or its leftovers when it is gone).
pub fn plan(
    desired: &Desired,
    actual: &[ContainerInfo],
    memory: &mut Memory,
    context: &Context,
    now: SystemTime,
) -> Plan {
    let pod = desired.pod();
    let terminating = pod.is_none_or(|p| p.metadata.as_ref().is_some_and(|m| m.deletion_timestamp.is_some()));
    if terminating {
        let gone_grace = match desired {
            Desired::Gone { grace } => *grace,
            Desired::Present(_) => None,
        };
        return plan_termination(pod, gone_grace, actual);
    }
    let pod = pod.expect("not terminating, so present");
    let spec = pod.spec.clone().unwrap_or_default();
    let mut plan = Plan::default();

    let shape = Shape::of(&spec, actual);
    let mut sandboxes: Vec<&ContainerInfo> = actual
        .iter()
        .filter(|c| c.container_name() == labels::SANDBOX)
        .collect();
    sandboxes.sort_by_key(|c| std::cmp::Reverse(c.attempt()));
    if let Some(newest) = sandboxes.first() {
        memory.last_sandbox_attempt = memory.last_sandbox_attempt.max(Some(newest.attempt()));
    }
    let live = sandboxes.first().filter(|s| s.is_running()).copied();
    if live.is_none() && (memory.finished || finished(pod, &spec)) {
        // Finished: its sandbox is stopped on purpose and its containers
        // are kept for their logs; the last status stands.
        memory.finished = true;
        let stopped: Vec<String> = sandboxes.iter().map(|s| s.id.clone()).collect();
        if !stopped.is_empty() {
            plan.actions.push(Action::Remove(stopped));
        }
        return plan;
    }
    let network_gone = match shape {
        Shape::Sandbox => live.is_none(),
        // Containers that joined a sandbox (an earlier agent's, now dead).
        Shape::Single => actual
            .iter()
            .any(|c| c.container_name() == labels::SANDBOX || c.label(labels::POD_IP).is_empty()),
    };
    let mut actual = actual;
    if network_gone && !actual.is_empty() {
        // The pod's network is gone: start over.
        start_over(actual, memory, &mut plan);
        actual = &[];
    }
    if shape == Shape::Sandbox {
        if live.is_none() {
            let failed = memory.sandbox.retry_at.filter(|at| *at > now);
            match failed {
                Some(at) => plan.wake_at = Some(at),
                None => {
                    let attempt = memory.last_sandbox_attempt.map_or(0, |a| a + 1);
                    plan.actions.push(Action::StartSandbox { attempt });
                }
            }
            plan.status = Some(pod_status(
                pod,
                &spec,
                None,
                waiting_statuses(&spec, memory, now),
                context,
            ));
            return plan;
        }
        let stale: Vec<String> = sandboxes.iter().skip(1).map(|s| s.id.clone()).collect();
        if !stale.is_empty() {
            plan.actions.push(Action::Remove(stale));
        }
    }

    let mut statuses = Vec::new();
    for container in &spec.containers {
        let mut instances: Vec<&ContainerInfo> =
            actual.iter().filter(|c| c.container_name() == container.name).collect();
        instances.sort_by_key(|c| std::cmp::Reverse(c.attempt()));
        // Keep the latest and the one before it (for `logs --previous`).
        let old: Vec<String> = instances.iter().skip(2).map(|c| c.id.clone()).collect();
        if !old.is_empty() {
            plan.actions.push(Action::Remove(old));
        }
        let remembered = memory.containers.entry(container.name.clone()).or_default();
        if let Some(latest) = instances.first() {
            remembered.last_attempt = remembered.last_attempt.max(Some(latest.attempt()));
        }
        let mut status = container_plan(
            &spec.restart_policy,
            container,
            shape,
            instances.first().copied(),
            instances.get(1).copied(),
            remembered,
            context,
            now,
            &mut plan,
        );
        if let Some(latest) = instances.first().filter(|c| c.is_running()) {
            let grace = spec.termination_grace_period_seconds.unwrap_or(DEFAULT_GRACE);
            apply_probes(container, latest, &memory.probes, grace, &mut status, &mut plan);
        }
        statuses.push(status);
    }
    let holder = network_holder(&spec, actual);
    let status = pod_status(pod, &spec, holder, statuses, context);
    if plan.actions.is_empty() && matches!(status.phase.as_str(), "Succeeded" | "Failed") {
        memory.finished = true;
        if let Some(sandbox) = live {
            plan.actions.push(Action::StopSandbox { id: sandbox.id.clone() });
        }
    }
    plan.status = Some(status);
    plan
}

/// Removes every container of a pod whose network is gone, remembering
/// their attempts so restarts count on.
fn start_over(actual: &[ContainerInfo], memory: &mut Memory, plan: &mut Plan) {
    for c in actual.iter().filter(|c| c.container_name() != labels::SANDBOX) {
        let remembered = memory.containers.entry(c.container_name().to_string()).or_default();
        remembered.last_attempt = remembered.last_attempt.max(Some(c.attempt()));
    }
    plan.actions
        .push(Action::Remove(actual.iter().map(|c| c.id.clone()).collect()));
}

/// Whether the pod, as last reported, has finished for good: Succeeded or
/// Failed, with a restart policy that will not start it again.
fn finished(pod: &Pod, spec: &PodSpec) -> bool {
    let phase = pod.status.as_ref().map_or("", |s| s.phase.as_str());
    matches!(phase, "Succeeded" | "Failed") && spec.restart_policy != "Always"
}

fn plan_termination(pod: Option<&Pod>, gone_grace: Option<i64>, actual: &[ContainerInfo]) -> Plan {
    if actual.is_empty() {
        return Plan {
            actions: if pod.is_some() { vec![Action::DeletePod] } else { vec![] },
            done: pod.is_none(),
            ..Plan::default()
        };
    }
    let grace = pod
        .and_then(|p| {
            let meta_grace = p.metadata.as_ref().and_then(|m| m.deletion_grace_period_seconds);
            meta_grace.or(p.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        })
        .or(gone_grace)
        .or_else(|| actual.iter().find_map(|c| c.label(labels::GRACE).parse().ok()))
        .unwrap_or(DEFAULT_GRACE);
    Plan {
        actions: vec![Action::StopAll {
            grace: Duration::from_secs(grace.max(0) as u64),
        }],
        ..Plan::default()
    }
}

/// Decides for one container and returns its status.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn container_plan(
    restart_policy: &str,
    container: &bosun_proto::api::Container,
    shape: Shape,
    latest: Option<&ContainerInfo>,
    previous: Option<&ContainerInfo>,
    memory: &mut ContainerMemory,
    context: &Context,
    now: SystemTime,
    plan: &mut Plan,
) -> ContainerStatus {
    let name = container.name.as_str();
    let mut status = ContainerStatus {
        name: name.to_string(),
        image: container.image.clone(),
        restart_count: memory.last_attempt.unwrap_or(0) as i32,
        ..Default::default()
    };
    let wake = |plan: &mut Plan, at: SystemTime| {
        plan.wake_at = Some(plan.wake_at.map_or(at, |w| w.min(at)));
    };
    let Some(latest) = latest else {
        // Never started (or removed with an old sandbox).
        let attempt = memory.last_attempt.map_or(0, |a| a + 1);
        status.state = Some(waiting_state(memory, now));
        match memory.retry_at.filter(|at| *at > now) {
            Some(at) => wake(plan, at),
            None => plan.actions.push(Action::StartContainer {
                name: name.to_string(),
                attempt,
                shape,
            }),
        }
        return status;
    };
    status.container_id = format!("docker://{}", latest.id);
    status.image_id = latest.image_id.clone();
    status.restart_count = latest.attempt() as i32;
    if let Some(previous) = previous {
        status.last_state = terminated_state(previous).map(Box::new);
    }
    match &latest.state {
        ContainerState::Created => {
            // A start that never happened: try again as the same attempt.
            plan.actions.push(Action::Remove(vec![latest.id.clone()]));
            plan.actions.push(Action::StartContainer {
                name: name.to_string(),
                attempt: latest.attempt(),
                shape,
            });
            status.state = Some(waiting("ContainerCreating", ""));
        }
        ContainerState::Running { started_at } => {
            if now.duration_since(*started_at).unwrap_or_default() >= context.backoff.reset_after {
                memory.crashes = 0;
            }
            status.state = Some(ApiState {
                running: Some(Box::new(ContainerStateRunning {
                    started_at: Some((*started_at).into()),
                })),
                ..Default::default()
            });
            status.ready = true;
            status.started = Some(true);
        }
        ContainerState::Exited {
            exit_code,
            started_at,
            finished_at,
            ..
        } => {
            let restart = match restart_policy {
                "Never" => false,
                "OnFailure" => *exit_code != 0,
                _ => true,
            };
            status.started = Some(false);
            if !restart {
                status.state = terminated_state(latest);
                return status;
            }
            if memory.counted_attempt != Some(latest.attempt()) {
                let ran = started_at
                    .and_then(|s| finished_at.duration_since(s).ok())
                    .unwrap_or_default();
                memory.crashes = if ran >= context.backoff.reset_after {
                    1
                } else {
                    memory.crashes + 1
                };
                memory.counted_attempt = Some(latest.attempt());
            }
            let delay = context.backoff.delay(memory.crashes);
            let at = *finished_at + delay;
            status.last_state = terminated_state(latest).map(Box::new);
            status.state = Some(waiting(
                "CrashLoopBackOff",
                &format!("back-off {} restarting failed container {name}", humantime(delay)),
            ));
            if at <= now {
                plan.actions.push(Action::StartContainer {
                    name: name.to_string(),
                    attempt: latest.attempt() + 1,
                    shape,
                });
            } else {
                wake(plan, at);
            }
        }
    }
    status
}

/// Makes a running container's readiness follow its probes, and kills it
/// when a probe gave up.
fn apply_probes(
    container: &bosun_proto::api::Container,
    instance: &ContainerInfo,
    verdicts: &HashMap<String, Verdict>,
    grace_seconds: i64,
    status: &mut ContainerStatus,
    plan: &mut Plan,
) {
    let verdict = verdicts
        .get(&instance.id)
        .cloned()
        .unwrap_or_else(|| Verdict::initial(container));
    status.ready = verdict.ready;
    status.started = Some(verdict.started);
    if let Some(failure) = verdict.failure {
        plan.actions.push(Action::Kill {
            id: instance.id.clone(),
            name: container.name.clone(),
            grace: Duration::from_secs(grace_seconds.max(0) as u64),
            reason: format!(
                "container {} failed its {} probe: {}",
                container.name,
                failure.kind.name().to_ascii_lowercase(),
                failure.message
            ),
        });
    }
}

/// Statuses for containers not yet created (the sandbox is being made).
fn waiting_statuses(spec: &PodSpec, memory: &Memory, now: SystemTime) -> Vec<ContainerStatus> {
    spec.containers
        .iter()
        .map(|c| {
            let remembered = memory.containers.get(&c.name).cloned().unwrap_or_default();
            let state = match &memory.sandbox.start_error {
                Some((reason, message)) => waiting(reason, message),
                None => waiting_state(&remembered, now),
            };
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone(),
                restart_count: remembered.last_attempt.unwrap_or(0) as i32,
                state: Some(state),
                started: Some(false),
                ..Default::default()
            }
        })
        .collect()
}

/// Waiting, with the last start failure when there was one.
fn waiting_state(memory: &ContainerMemory, now: SystemTime) -> ApiState {
    match &memory.start_error {
        Some((reason, message)) => {
            let in_backoff = memory.retry_at.is_some_and(|at| at > now);
            let reason = if reason == "ErrImagePull" && in_backoff {
                "ImagePullBackOff"
            } else {
                reason.as_str()
            };
            waiting(reason, message)
        }
        None => waiting("ContainerCreating", ""),
    }
}

fn waiting(reason: &str, message: &str) -> ApiState {
    ApiState {
        waiting: Some(Box::new(ContainerStateWaiting {
            reason: reason.to_string(),
            message: message.to_string(),
        })),
        ..Default::default()
    }
}

fn terminated_state(container: &ContainerInfo) -> Option<ApiState> {
    let ContainerState::Exited {
        exit_code,
        oom_killed,
        started_at,
        finished_at,
        error,
    } = &container.state
    else {
        return None;
    };
    let reason = if *oom_killed {
        "OOMKilled"
    } else if *exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    Some(ApiState {
        terminated: Some(Box::new(ContainerStateTerminated {
            exit_code: *exit_code,
            signal: if *exit_code > 128 { exit_code - 128 } else { 0 },
            reason: reason.to_string(),
            message: error.clone(),
            started_at: started_at.map(Into::into),
            finished_at: Some((*finished_at).into()),
            container_id: format!("docker://{}", container.id),
        })),
        ..Default::default()
    })
}

/// The pod's phase from its containers, as Kubernetes computes it.
fn phase(restart_policy: &str, statuses: &[ContainerStatus]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for status in statuses {
        let state = status.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(terminated) = &state.terminated {
            stopped += 1;
            if terminated.exit_code == 0 {
                succeeded += 1;
            }
        } else if status.last_state.as_ref().is_some_and(|s| s.terminated.is_some()) {
            // Waiting to restart after running: counts as stopped.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 || statuses.is_empty() {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Never" if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            "OnFailure" if stopped == succeeded => "Succeeded",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

fn condition(kind: &str, ok: bool, reason: &str) -> PodCondition {
    PodCondition {
        r#type: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: if ok { String::new() } else { reason.to_string() },
        ..Default::default()
    }
}

fn pod_status(
    pod: &Pod,
    spec: &PodSpec,
    holder: Option<&ContainerInfo>,
    statuses: Vec<ContainerStatus>,
    context: &Context,
) -> PodStatus {
    let phase = phase(&spec.restart_policy, &statuses);
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let not_ready_reason = if matches!(phase, "Succeeded" | "Failed") {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time)
        .or_else(|| holder.map(|s| s.created_at.into()));
    PodStatus {
        phase: phase.to_string(),
        conditions: vec![
            condition("PodScheduled", true, ""),
            condition("Initialized", true, ""),
            condition("ContainersReady", all_ready, not_ready_reason),
            condition("Ready", all_ready, not_ready_reason),
        ],
        host_ip: context.host_ip.clone(),
        pod_ip: holder.and_then(ContainerInfo::pod_ip).unwrap_or_default().to_string(),
        start_time,
        container_statuses: statuses,
        ..Default::default()
    }
}

/// `10s`, `1m20s`.
fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, 0) => format!("{}ms", d.as_millis()),
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
