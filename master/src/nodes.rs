//! Node liveness. Agents heartbeat every few seconds; the leader keeps the
//! last heartbeat of each node in memory and writes to the log only when a
//! node's Ready condition must change:
//!
//! ```text
//!   (registered) ──first heartbeat──► Ready=True ◄──heartbeat, runtime ok──┐
//!                                        │  ▲                               │
//!            heartbeat says runtime down │  │ heartbeat, runtime ok         │
//!                                        ▼  │                               │
//!                                    Ready=False                            │
//!                                        │                                  │
//!        no heartbeat for the grace period (from either state)              │
//!                                        ▼                                  │
//!                                    Ready=Unknown ─────────────────────────┘
//! ```
//!
//! A new leader knows no heartbeats: it gives every node a fresh grace
//! period before judging it. A node silent for the eviction timeout loses
//! its pods ([`crate::eviction`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bosun_proto::api::{HeartbeatRequest, Node, NodeCondition, Object};
use bosun_proto::internal::{command, Command, UpdateOp};
use bosun_proto::Kind;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admission::now_seconds;
use crate::replica::Replica;

/// When a silent node is judged.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Without a heartbeat for this long a node becomes Ready=Unknown.
    pub grace: Duration,
    /// Without a heartbeat for this long its pods are evicted.
    pub eviction: Duration,
}

/// How often the leader looks for nodes that stopped heartbeating.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// Every how many checks pods left on deleted nodes are looked for.
const SWEEP_EVERY: u32 = 20;

/// The last heartbeat of each node, as seen by this master while leader.
#[derive(Default)]
pub struct Liveness {
    beats: Mutex<HashMap<String, Beat>>,
    /// Wakes the monitor when a heartbeat reports a different readiness.
    changed: Notify,
}

#[derive(Clone, Debug)]
struct Beat {
    at: Instant,
    /// What the agent said; `None` until this leader has heard from it.
    report: Option<HeartbeatRequest>,
}

/// The Ready condition a node should have.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Readiness {
    status: &'static str,
    reason: String,
    message: String,
}

impl Liveness {
    /// Records a heartbeat.
    pub fn record(&self, report: HeartbeatRequest) {
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        let previous = beats.insert(
            report.node_name.clone(),
            Beat {
                at: Instant::now(),
                report: Some(report.clone()),
            },
        );
        let same = previous
            .and_then(|b| b.report)
            .is_some_and(|r| r.ready == report.ready && r.reason == report.reason);
        drop(beats);
        if !same {
            self.changed.notify_one();
        }
    }

    /// Gives every node a fresh grace period (a new leader knows nothing).
    fn reset(&self) {
        self.beats.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// What the Ready condition of `node` should be now, or `None` to leave
    /// it as it is.
    fn judge(&self, node: &str, grace: Duration, now: Instant) -> Option<Readiness> {
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        let beat = beats.entry(node.to_string()).or_insert(Beat { at: now, report: None });
        if now.duration_since(beat.at) > grace {
            return Some(Readiness {
                status: "Unknown",
                reason: "NodeStatusUnknown".into(),
                message: format!("the node agent stopped posting heartbeats more than {grace:?} ago"),
            });
        }
        let report = beat.report.as_ref()?;
        Some(if report.ready {
            Readiness {
                status: "True",
                reason: "AgentReady".into(),
                message: "the node agent is posting ready status".into(),
            }
        } else {
            Readiness {
                status: "False",
                reason: if report.reason.is_empty() {
                    "AgentNotReady".into()
                } else {
                    report.reason.clone()
                },
                message: report.message.clone(),
            }
        })
    }

    /// How long `node` has been silent (since its last heartbeat, or since
    /// this master became leader if it has not heard from it).
    fn silence(&self, node: &str, now: Instant) -> Duration {
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats.get(node).map_or(Duration::ZERO, |b| now.duration_since(b.at))
    }

    fn forget_except(&self, names: &[String]) {
        self.beats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(name));
    }
}

/// The leader's duty: keeps every node's Ready condition in line with its
/// heartbeats, writing only transitions.
pub async fn monitor(replica: Arc<Replica>, liveness: Arc<Liveness>, timeouts: Timeouts, token: CancellationToken) {
    liveness.reset();
    let grace = timeouts.grace;
    let mut rounds: u32 = 0;
    loop {
        let nodes: Vec<Arc<Object>> = replica.store.read().objects.list(Kind::Node, None).cloned().collect();
        let names: Vec<String> = nodes.iter().map(|n| n.name().to_string()).collect();
        liveness.forget_except(&names);
        let now = Instant::now();
        for object in nodes {
            let Some(wanted) = liveness.judge(object.name(), grace, now) else {
                continue;
            };
            if let Some(update) = with_ready(&object, &wanted) {
                tracing::info!(node = object.name(), status = wanted.status, reason = %wanted.reason, "node readiness changed");
                let command = Command {
                    time: Some(now_seconds()),
                    op: Some(command::Op::UpdateStatus(UpdateOp { object: Some(update) })),
                };
                // A conflict (the agent re-registered meanwhile) is retried
                // on the next round. One write at a time, each given up
                // when leadership ends, so stepping down never waits for
                // a thousand of them.
                match token.run_until_cancelled(replica.propose(command)).await {
                    None => return,
                    Some(Err(e)) => tracing::warn!(node = object.name(), error = %e, "cannot record node readiness"),
                    Some(Ok(_)) => {}
                }
            }
        }
        let silent: Vec<(String, Duration)> = names
            .iter()
            .map(|name| (name.clone(), liveness.silence(name, now)))
            .filter(|(_, silence)| *silence >= timeouts.eviction)
            .collect();
        rounds += 1;
        let sweep = rounds.is_multiple_of(SWEEP_EVERY);
        let evictions = crate::eviction::plan(&replica.store.read().objects, &silent, sweep);
        if !evictions.is_empty() {
            tracing::warn!(commands = evictions.len(), nodes = ?silent, "evicting the pods of lost nodes");
            let proposals = futures::future::join_all(evictions.into_iter().map(|c| replica.propose(c)));
            let Some(results) = token.run_until_cancelled(proposals).await else {
                return;
            };
            for error in results.into_iter().filter_map(Result::err) {
                tracing::warn!(error = %error, "cannot evict a pod; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = liveness.changed.notified() => {}
            () = token.cancelled() => return,
        }
    }
}

/// The node with its Ready condition set to `wanted`, or `None` if it
/// already is.
fn with_ready(object: &Object, wanted: &Readiness) -> Option<Object> {
    let mut node = Node::try_from(object.clone()).ok()?;
    let status = node.status.get_or_insert_with(Default::default);
    let current = status.conditions.iter().find(|c| c.r#type == "Ready");
    if current.is_some_and(|c| c.status == wanted.status && c.reason == wanted.reason) {
        return None;
    }
    let now = now_seconds();
    status.conditions.retain(|c| c.r#type != "Ready");
    status.conditions.push(NodeCondition {
        r#type: "Ready".into(),
        status: wanted.status.into(),
        last_heartbeat_time: Some(now),
        last_transition_time: Some(now),
        reason: wanted.reason.clone(),
        message: wanted.message.clone(),
    });
    Some(node.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(name: &str, ready: bool) -> HeartbeatRequest {
        HeartbeatRequest {
            node_name: name.into(),
            ready,
            reason: if ready {
                String::new()
            } else {
                "RuntimeUnavailable".into()
            },
            message: String::new(),
        }
    }

    #[test]
    fn a_node_never_heard_of_gets_a_fresh_grace_period() {
        let liveness = Liveness::default();
        let start = Instant::now();
        assert_eq!(liveness.judge("n1", Duration::from_secs(10), start), None);
        let later = start + Duration::from_secs(11);
        assert_eq!(
            liveness.judge("n1", Duration::from_secs(10), later).unwrap().status,
            "Unknown"
        );
    }

    #[test]
    fn heartbeats_decide_ready_and_not_ready() {
        let liveness = Liveness::default();
        liveness.record(beat("n1", true));
        let now = Instant::now();
        assert_eq!(
            liveness.judge("n1", Duration::from_secs(10), now).unwrap().status,
            "True"
        );
        liveness.record(beat("n1", false));
        let judged = liveness.judge("n1", Duration::from_secs(10), Instant::now()).unwrap();
        assert_eq!((judged.status, judged.reason.as_str()), ("False", "RuntimeUnavailable"));
    }

    #[test]
    fn only_transitions_produce_a_write() {
        let node: Object = Node::default().into();
        let ready = Readiness {
            status: "True",
            reason: "AgentReady".into(),
            message: String::new(),
        };
        let updated = with_ready(&node, &ready).expect("first condition is a change");
        assert!(with_ready(&updated, &ready).is_none());
    }
}
