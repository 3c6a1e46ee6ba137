//! The scheduler: places pods that have no node, on the leader only.
//!
//! Filter → score → bind. [`pipeline`] holds the plugins (one file each)
//! and their order; [`cache`] the cluster as the scheduler sees it;
//! [`queue`] the pods waiting. Each round takes the waiting pods in order,
//! places each against the cache (counting the placement at once, so a
//! burst never overcommits in the scheduler's own view), and proposes all
//! the bindings together; the proposer packs them into few Raft entries
//! and the store re-checks every binding's fit when applying it, so no
//! two placements can overcommit a node whatever happens meanwhile.
//!
//! A bound pod gets a `Scheduled` event, carried in its binding (stored
//! with it in the same write, never for a refused binding).
//!
//! A pod that fits nowhere gets `PodScheduled=False` (`Unschedulable`,
//! with every reason counted) and a `FailedScheduling` event, once per
//! distinct message; it is retried when the cluster changes (a node added
//! or changed, a pod gone or finished) and otherwise with back-off.

use bosun_proto::api::{EventType, Object, ObjectMeta, Pod, PodCondition};
use bosun_proto::events;
use bosun_proto::internal::{command, command_result, BindOp, Command, UpdateOp};
use bosun_proto::Kind;
use futures::future::join_all;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::now_seconds;
use crate::replica::Replica;
use crate::store::{Follower, HistoryEvent, Objects, Wake};

mod allocation;
mod cache;
mod fit;
mod host_ports;
mod node_affinity;
mod node_ready;
mod node_selector;
pub mod pipeline;
mod plugin;
mod prefer_no_schedule;
mod preferred_affinity;
mod queue;
mod spread;
mod taints;

#[cfg(test)]
mod properties;

pub use allocation::Strategy;
use cache::Cache;
use pipeline::{Decision, Pipeline};
use plugin::PodInfo;
use queue::Queue;

/// Most pods placed in one round (their bindings are proposed together).
const ROUND: usize = 2048;

/// Runs the scheduler until `token` is cancelled (leadership lost).
pub async fn run(replica: Arc<Replica>, strategy: Strategy, token: CancellationToken) {
    let pipeline = Pipeline::new(strategy);
    let (mut cache, mut follower) = Follower::start(&replica.store, |state| Cache::load(&state.objects));
    let mut queue = Queue::default();
    for uid in cache.pending.keys() {
        queue.add(uid);
    }
    // The last unschedulable message recorded per pod, to write it once.
    let mut recorded: HashMap<String, String> = HashMap::new();
    let mut start = 0usize;
    tracing::info!(
        nodes = cache.nodes.len(),
        pending = cache.pending.len(),
        plugins = %pipeline.describe(),
        "scheduler started"
    );
    loop {
        if !follower.catch_up(|events| absorb(events, &mut cache, &mut queue)) {
            cache = follower.reload(|state| Cache::load(&state.objects));
            for uid in cache.pending.keys() {
                queue.add(uid);
            }
        }
        let next_wake = queue.wake_due(Instant::now());
        let mut bindings: Vec<(PodInfo, String)> = Vec::new();
        let mut unschedulable: Vec<(PodInfo, String)> = Vec::new();
        while bindings.len() + unschedulable.len() < ROUND {
            let Some(uid) = queue.pop() else { break };
            let Some(pending) = cache.pending.get(&uid) else {
                continue;
            };
            let pod = pending.info.clone();
            match place(&pipeline, &mut cache, &pod, &mut start) {
                Decision::Node(index) => {
                    let node = cache.nodes[index].name.clone();
                    bindings.push((pod, node));
                }
                Decision::Unschedulable(message) => unschedulable.push((pod, message)),
            }
        }
        if bindings.is_empty() && unschedulable.is_empty() {
            if follower.wait(next_wake, &token).await == Wake::Stop {
                return;
            }
            continue;
        }
        bind_all(&replica, &mut cache, &mut queue, bindings).await;
        let now = Instant::now();
        for (pod, message) in unschedulable {
            queue.park(&pod.uid, now);
            if recorded.get(&pod.uid) != Some(&message) {
                // Given up when leadership ends: stepping down waits for
                // the duties to end, not for every pod's record.
                if token
                    .run_until_cancelled(record_unschedulable(&replica, &pod, &message))
                    .await
                    .is_none()
                {
                    return;
                }
                recorded.insert(pod.uid.clone(), message);
            }
        }
        recorded.retain(|uid, _| cache.pending.contains_key(uid));
        if token.is_cancelled() {
            return;
        }
    }
}

/// Chooses a node for `pod` and assumes it there; the next search starts
/// after the chosen node, so equal nodes take turns.
fn place(pipeline: &Pipeline, cache: &mut Cache, pod: &PodInfo, start: &mut usize) -> Decision {
    let decision = pipeline.place(pod, &cache.nodes, *start);
    if let Decision::Node(index) = decision {
        *start = index + 1;
        cache.assume(pod, index);
    }
    decision
}

/// Places every pending pod of `objects` as the scheduler does, proposing
/// nothing: (pods placed, pods that fit nowhere). Measures the placement
/// logic alone (`bosun-bench schedule --in-process`).
pub fn place_pending(objects: &Objects, strategy: Strategy) -> (usize, usize) {
    let pipeline = Pipeline::new(strategy);
    let mut cache = Cache::load(objects);
    let mut pending: Vec<PodInfo> = cache.pending.values().map(|p| p.info.clone()).collect();
    pending.sort_by(|a, b| a.name.cmp(&b.name));
    let mut start = 0;
    let placed = pending
        .iter()
        .filter(|pod| matches!(place(&pipeline, &mut cache, pod, &mut start), Decision::Node(_)))
        .count();
    (placed, pending.len() - placed)
}

/// Applies a batch of the store's changes to the cache and the queue.
fn absorb(events: &[HistoryEvent], cache: &mut Cache, queue: &mut Queue) {
    let mut room = false;
    for event in events {
        if !matches!(event.object.kind(), Some(Kind::Pod | Kind::Node)) {
            continue;
        }
        let deleted = event.event_type == EventType::Deleted;
        let effect = cache.object_changed(&event.object, deleted);
        room |= effect.room_may_have_appeared;
        let uid = event.object.metadata().map(|m| m.uid.as_str()).unwrap_or_default();
        if effect.new_pending {
            queue.add(uid);
        } else if event.object.kind() == Some(Kind::Pod) && !cache.pending.contains_key(uid) {
            queue.done(uid);
        }
    }
    if room {
        queue.wake_all();
    }
}

/// Proposes the bindings together; refused ones are forgotten and retried.
/// The bound pods' `Scheduled` events are recorded together after.
async fn bind_all(replica: &Replica, cache: &mut Cache, queue: &mut Queue, bindings: Vec<(PodInfo, String)>) {
    let proposals = bindings.iter().map(|(pod, node)| {
        replica.propose(Command {
            time: Some(now_seconds()),
            op: Some(command::Op::Bind(BindOp {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                node: node.clone(),
            })),
        })
    });
    let results = join_all(proposals).await;
    let now = Instant::now();
    let mut scheduled = Vec::new();
    for ((pod, node), result) in bindings.into_iter().zip(results) {
        match result.map(|r| r.result) {
            Ok(Some(command_result::Result::Object(_))) => {
                queue.done(&pod.uid);
                tracing::debug!(pod = %pod.name, node = %node, "bound");
                let message = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
                scheduled.push(scheduling_event(&pod, "Scheduled", events::NORMAL, &message));
            }
            Ok(other) => {
                tracing::debug!(pod = %pod.name, node = %node, refused = ?other, "binding refused; retrying");
                cache.forget(&pod);
                queue.retry_soon(&pod.uid, now);
            }
            Err(e) => {
                tracing::warn!(pod = %pod.name, error = %e, "binding not committed; retrying");
                cache.forget(&pod);
                queue.retry_soon(&pod.uid, now);
            }
        }
    }
    crate::events::record(replica, scheduled).await;
}

/// Sets `PodScheduled=False` with the reasons and records a
/// `FailedScheduling` event.
async fn record_unschedulable(replica: &Replica, pod: &PodInfo, message: &str) {
    tracing::info!(pod = %pod.name, namespace = %pod.namespace, reason = message, "pod is unschedulable");
    let stored = replica
        .store
        .read()
        .objects
        .get(Kind::Pod, &pod.namespace, &pod.name)
        .cloned();
    let Some(Ok(mut stored)) = stored.map(|o| Pod::try_from((*o).clone())) else {
        return;
    };
    if stored.metadata.as_ref().map(|m| m.uid.as_str()) != Some(pod.uid.as_str()) {
        return;
    }
    let status = stored.status.get_or_insert_with(Default::default);
    status.conditions.retain(|c| c.r#type != "PodScheduled");
    status.conditions.push(PodCondition {
        r#type: "PodScheduled".into(),
        status: "False".into(),
        reason: "Unschedulable".into(),
        message: message.to_string(),
        last_transition_time: Some(now_seconds()),
        ..Default::default()
    });
    let update = Command {
        time: Some(now_seconds()),
        op: Some(command::Op::UpdateStatus(UpdateOp {
            object: Some(stored.into()),
        })),
    };
    if let Err(e) = replica.propose(update).await {
        tracing::warn!(pod = %pod.name, error = %e, "cannot record why the pod is unschedulable");
    }
    let event = scheduling_event(pod, "FailedScheduling", events::WARNING, message);
    crate::events::record(replica, [event]).await;
}

/// An event about a pod from the scheduler.
fn scheduling_event(pod: &PodInfo, reason: &str, kind: &str, message: &str) -> Object {
    let meta = ObjectMeta {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        ..Default::default()
    };
    events::event(
        events::involving(Kind::Pod, &meta),
        &events::Source::new("scheduler"),
        kind,
        reason,
        message,
    )
}
