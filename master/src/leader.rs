//! Work only the leader does. It starts when this master becomes leader and
//! is cancelled when it stops being one.
//!
//! Making sure the built-in namespaces exist, node liveness and eviction
//! ([`crate::nodes`]), the scheduler ([`crate::scheduler`]), the
//! controllers ([`crate::controllers`]) and the expiry of old events
//! ([`crate::events`]).

use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::{Namespace, Object, ObjectMeta};
use bosun_proto::internal::{command, Command, CreateOp};
use bosun_proto::Kind;
use openraft::ServerState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admission::admit_new;
use crate::nodes::Liveness;
use crate::replica::Replica;
use crate::store::BUILT_IN_NAMESPACES;

/// What the leader's duties need besides the replica.
#[derive(Clone)]
pub struct Duties {
    pub liveness: Arc<Liveness>,
    pub node_grace: Duration,
    pub pod_eviction: Duration,
    pub event_ttl: Duration,
    pub scheduler: crate::scheduler::Strategy,
    pub pod_ranges: crate::controllers::node_ipam::PodRanges,
}

/// Watches this master's Raft role and runs the leader's duties while it
/// leads.
pub async fn supervise(replica: Arc<Replica>, duties: Duties, shutdown: CancellationToken) {
    let mut metrics = replica.raft.metrics();
    let (leading, role) = watch::channel(false);
    let follow_role = async {
        loop {
            let leader = metrics.borrow_and_update().state == ServerState::Leader;
            leading.send_if_modified(|was| std::mem::replace(was, leader) != leader);
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { break },
                () = shutdown.cancelled() => break,
            }
        }
        // Dropping the sender ends `alternate`.
        drop(leading);
    };
    let id = replica.id;
    let generations = alternate(role, shutdown.clone(), |token| {
        run_duties(replica.clone(), duties.clone(), token)
    });
    tokio::join!(follow_role, generations);
    tracing::debug!(node_id = id, "leader supervision ended");
}

/// Runs one generation of `duties` while `leading` is true, and never two
/// at once: when leadership ends the generation is cancelled and awaited
/// to its end (its writes in flight answered) before anything else
/// happens, as Nomad's `revokeLeadership` switches each part off before
/// returning; a master that leads again starts a fresh generation only
/// then. Ends, after the running generation, when `leading` closes or
/// `shutdown` is cancelled.
async fn alternate<F, Fut>(mut leading: watch::Receiver<bool>, shutdown: CancellationToken, duties: F)
where
    F: Fn(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut running: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
    loop {
        let lead = *leading.borrow_and_update();
        match (lead, running.take()) {
            (true, None) => {
                tracing::info!("became leader: starting leader duties");
                let token = shutdown.child_token();
                running = Some((token.clone(), tokio::spawn(duties(token))));
            }
            (false, Some(generation)) => {
                tracing::info!("no longer leader: stopping leader duties");
                stop(generation).await;
                tracing::info!("leader duties stopped");
            }
            (_, unchanged) => running = unchanged,
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    if let Some(generation) = running {
        stop(generation).await;
    }
}

/// Cancels a generation of duties and waits for it to end.
async fn stop((token, handle): (CancellationToken, tokio::task::JoinHandle<()>)) {
    token.cancel();
    if let Err(e) = handle.await {
        tracing::error!(error = %e, "the leader duties ended abnormally");
    }
}

async fn run_duties(replica: Arc<Replica>, duties: Duties, token: CancellationToken) {
    let monitor = crate::nodes::monitor(
        replica.clone(),
        duties.liveness,
        crate::nodes::Timeouts {
            grace: duties.node_grace,
            eviction: duties.pod_eviction,
        },
        token.clone(),
    );
    let scheduler = crate::scheduler::run(replica.clone(), duties.scheduler, token.clone());
    let controllers = crate::controllers::run(replica.clone(), duties.pod_ranges.clone(), token.clone());
    let events = crate::events::expire(replica.clone(), duties.event_ttl, token.clone());
    let namespaces = async {
        tokio::select! {
            () = ensure_namespaces(&replica) => {}
            () = token.cancelled() => {}
        }
    };
    // The event store opens first, so the other duties' first events stay.
    tokio::join!(events, monitor, scheduler, controllers, namespaces);
}

/// Creates `default` and `bosun-system` if they are missing, retrying until
/// it succeeds (the duty is cancelled if leadership is lost).
async fn ensure_namespaces(replica: &Replica) {
    for name in BUILT_IN_NAMESPACES {
        let mut delay = Duration::from_millis(50);
        loop {
            if replica.store.read().objects.get(Kind::Namespace, "", name).is_some() {
                break;
            }
            match create_namespace(replica, name).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(namespace = name, error = %e, "cannot create built-in namespace yet")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

async fn create_namespace(replica: &Replica, name: &str) -> Result<(), String> {
    let object: Object = Namespace {
        metadata: Some(ObjectMeta {
            name: name.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .into();
    let object = admit_new(Some(object)).map_err(|e| e.to_string())?;
    let command = Command {
        time: Some(crate::admission::now_seconds()),
        op: Some(command::Op::Create(CreateOp { object: Some(object) })),
    };
    replica.propose(command).await.map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Leadership flapping faster than a generation ends: each generation
    /// keeps "writing" for a while after it is cancelled, and no two may be
    /// alive at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn generations_of_duties_never_overlap_when_leadership_flaps() {
        let (leading, role) = watch::channel(false);
        let alive = Arc::new(AtomicUsize::new(0));
        let most_alive = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let duties = {
            let (alive, most_alive, started) = (alive.clone(), most_alive.clone(), started.clone());
            move |token: CancellationToken| {
                let (alive, most_alive, started) = (alive.clone(), most_alive.clone(), started.clone());
                async move {
                    let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                    most_alive.fetch_max(now, Ordering::SeqCst);
                    started.lock().unwrap().push(now);
                    token.cancelled().await;
                    // Writes still in flight after the step-down.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    alive.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let supervisor = tokio::spawn(alternate(role, shutdown.clone(), duties));
        for _ in 0..20 {
            leading.send_replace(true);
            tokio::time::sleep(Duration::from_millis(2)).await;
            leading.send_replace(false);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        leading.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while alive.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the last generation never started"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), supervisor)
            .await
            .expect("supervision ends after shutdown")
            .expect("no panic");
        assert_eq!(most_alive.load(Ordering::SeqCst), 1, "two generations ran at once");
        assert_eq!(
            alive.load(Ordering::SeqCst),
            0,
            "shutdown waits for the last generation"
        );
        assert!(
            started.lock().unwrap().len() >= 2,
            "leadership changed hands several times"
        );
    }
}
