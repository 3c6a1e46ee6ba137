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
use tokio_util::sync::CancellationToken;

use crate::admission::{prepare, stamp_new};
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
}

/// Watches this master's Raft role and runs the leader's duties while it
/// leads.
pub async fn supervise(replica: Arc<Replica>, duties: Duties, shutdown: CancellationToken) {
    let mut metrics = replica.raft.metrics();
    let mut running: Option<CancellationToken> = None;
    loop {
        let leading = metrics.borrow_and_update().state == ServerState::Leader;
        match (leading, &running) {
            (true, None) => {
                tracing::info!(node_id = replica.id, "became leader: starting leader duties");
                let token = shutdown.child_token();
                tokio::spawn(run_duties(replica.clone(), duties.clone(), token.clone()));
                running = Some(token);
            }
            (false, Some(token)) => {
                tracing::info!(node_id = replica.id, "no longer leader: stopping leader duties");
                token.cancel();
                running = None;
            }
            _ => {}
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { break },
            () = shutdown.cancelled() => break,
        }
    }
    if let Some(token) = running {
        token.cancel();
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
    let controllers = crate::controllers::run(replica.clone(), token.clone());
    let events = crate::events::expire(replica.clone(), duties.event_ttl, token.clone());
    let namespaces = async {
        tokio::select! {
            () = ensure_namespaces(&replica) => {}
            () = token.cancelled() => {}
        }
    };
    tokio::join!(monitor, scheduler, controllers, events, namespaces);
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
    let mut object = prepare(Some(object)).map_err(|s| s.message().to_string())?;
    stamp_new(&mut object);
    let command = Command {
        time: Some(crate::admission::now_seconds()),
        op: Some(command::Op::Create(CreateOp { object: Some(object) })),
    };
    replica.propose(command).await.map(|_| ()).map_err(|e| e.to_string())
}
