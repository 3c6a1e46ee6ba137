//! The task probing one container instance: asks the
//! [`ContainerProbes`] state machine which checks are due, makes them
//! (each probe on its own, so a slow check never delays another), feeds the
//! outcomes back, publishes every change of the verdict and wakes the pod's
//! worker so the status goes out at once.

use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::{Container, Probe};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::check::{self, Target};
use super::state::{ContainerProbes, Kind, Outcome, Verdict};
use crate::events::PodEvents;
use crate::runtime::ContainerRuntime;

/// What a probing task needs besides its channels.
pub struct Probing<R> {
    pub runtime: Arc<R>,
    pub container: Container,
    pub target: Target,
    /// How long the container had been running when probing began.
    pub since_start: Duration,
    /// Where failed checks are recorded, as `Unhealthy` events.
    pub events: Option<PodEvents>,
}

/// Probes until `token` is cancelled, publishing verdicts on `verdict` and
/// notifying `poke` when one changes.
pub async fn run<R: ContainerRuntime>(
    probing: Probing<R>,
    verdict: watch::Sender<Verdict>,
    poke: Arc<Notify>,
    token: CancellationToken,
) {
    let Probing {
        runtime,
        container,
        target,
        since_start,
        events,
    } = probing;
    let mut state = ContainerProbes::new(&container);
    let began = Instant::now();
    let clock = || since_start + began.elapsed();
    let mut in_flight = FuturesUnordered::new();
    loop {
        for kind in state.begin_due(clock()) {
            let probe = probe_of(&container, kind).clone();
            let timeout = state.settings(kind).map_or(Duration::from_secs(1), |s| s.timeout);
            let (runtime, target) = (runtime.clone(), target.clone());
            in_flight.push(async move { (kind, check::check(&*runtime, &probe, &target, timeout).await) });
        }
        let next = state.next_due().map(|at| at.saturating_sub(clock()));
        tokio::select! {
            Some((kind, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                log(&container.name, kind, &outcome);
                if let (Outcome::Failure(message), Some(events)) = (&outcome, &events) {
                    events.warning("Unhealthy", format!("{} probe failed: {message}", kind.name()));
                }
                if state.record(kind, &outcome, clock()) {
                    let now = state.verdict();
                    tracing::info!(
                        container = %container.name,
                        id = %target.container_id,
                        started = now.started,
                        ready = now.ready,
                        failed = now.failure.is_some(),
                        "probe verdict changed"
                    );
                    verdict.send_replace(now);
                    poke.notify_one();
                }
            }
            () = tokio::time::sleep(next.unwrap_or_default()), if next.is_some() => {}
            () = token.cancelled() => return,
        }
    }
}

fn probe_of(container: &Container, kind: Kind) -> &Probe {
    let probe = match kind {
        Kind::Startup => &container.startup_probe,
        Kind::Liveness => &container.liveness_probe,
        Kind::Readiness => &container.readiness_probe,
    };
    probe
        .as_deref()
        .expect("the state machine only schedules probes the container has")
}

fn log(container: &str, kind: Kind, outcome: &Outcome) {
    match outcome {
        Outcome::Success => {}
        Outcome::Failure(message) => {
            tracing::debug!(container, probe = kind.name(), message = %message, "probe failed");
        }
        Outcome::Unknown(message) => {
            tracing::debug!(container, probe = kind.name(), message = %message, "probe could not run");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::ExecAction;

    use crate::runtime::fake::FakeRuntime;
    use crate::runtime::ContainerRuntime;

    fn exec_probe(period: i32, failure_threshold: i32) -> Option<Box<Probe>> {
        Some(Box::new(Probe {
            exec: Some(ExecAction {
                command: vec!["cat".into(), "/tmp/healthy".into()],
            }),
            period_seconds: period,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold,
            initial_delay_seconds: 2,
            ..Default::default()
        }))
    }

    struct Running {
        runtime: Arc<FakeRuntime>,
        id: String,
        verdict: watch::Receiver<Verdict>,
        poke: Arc<Notify>,
        token: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start(container: Container) -> Running {
        let runtime = Arc::new(FakeRuntime::new(false));
        let id = runtime.create_container(&Default::default()).await.unwrap();
        runtime.start_container(&id).await.unwrap();
        let (tx, verdict) = watch::channel(Verdict::initial(&container));
        let poke = Arc::new(Notify::new());
        let token = CancellationToken::new();
        let probing = Probing {
            runtime: runtime.clone(),
            target: Target {
                container_id: id.clone(),
                ..Default::default()
            },
            container,
            since_start: Duration::ZERO,
            events: None,
        };
        let task = tokio::spawn(run(probing, tx, poke.clone(), token.clone()));
        Running {
            runtime,
            id,
            verdict,
            poke,
            token,
            task,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_turns_ready_after_the_delay_and_pokes_the_worker() {
        let container = Container {
            readiness_probe: exec_probe(1, 3),
            ..Default::default()
        };
        let mut running = start(container).await;
        assert!(!running.verdict.borrow().ready);
        let began = Instant::now();
        running.poke.notified().await;
        assert!(running.verdict.borrow_and_update().ready);
        assert_eq!(began.elapsed().as_secs(), 2, "first check after the initial delay");
        running.token.cancel();
        running.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_liveness_probe_gives_up_after_the_threshold_and_stops() {
        let container = Container {
            liveness_probe: exec_probe(5, 3),
            ..Default::default()
        };
        let mut running = start(container).await;
        running.runtime.set_exec_exit_code(&running.id, 1);
        let began = Instant::now();
        running.verdict.changed().await.unwrap();
        let failure = running.verdict.borrow().failure.clone().unwrap();
        assert_eq!(failure.kind, Kind::Liveness);
        // Checks at 2, 7 and 12 s.
        assert_eq!(began.elapsed().as_secs(), 12);
        let calls_then = running.runtime.exec_count();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(running.runtime.exec_count(), calls_then, "no probing after giving up");
        running.token.cancel();
        running.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_the_task_at_once() {
        let container = Container {
            liveness_probe: exec_probe(1, 3),
            ..Default::default()
        };
        let running = start(container).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        running.token.cancel();
        tokio::time::timeout(Duration::from_millis(1), running.task)
            .await
            .expect("the task ends when cancelled")
            .unwrap();
    }
}
