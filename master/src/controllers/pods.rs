//! What the controllers need to know about a pod: whether it counts, is
//! ready, is available, and which to give up first.

use std::cmp::Ordering;
use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Object, Pod};

/// The pod inside `object`, if it is one.
pub fn pod(object: &Object) -> Option<&Pod> {
    match object.resource.as_ref()? {
        Resource::Pod(pod) => Some(pod),
        _ => None,
    }
}

/// Being deleted (a deletionTimestamp is set).
pub fn terminating(pod: &Pod) -> bool {
    pod.metadata.as_ref().is_some_and(|m| m.deletion_timestamp.is_some())
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().map_or("", |s| s.phase.as_str())
}

/// Counts towards a ReplicaSet's replicas: not being deleted and not
/// finished (a failed pod, e.g. one evicted from a lost node, is replaced).
pub fn active(pod: &Pod) -> bool {
    !terminating(pod) && !bosun_proto::resources::is_terminal(pod)
}

/// Since when the pod is Ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<SystemTime> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.r#type == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

pub fn ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod is available: active and Ready for at least
/// `min_ready`. `Err(after)` when it is ready and becomes available after
/// that long.
pub fn available(pod: &Pod, min_ready: Duration, now: SystemTime) -> Result<(), Option<Duration>> {
    if !active(pod) {
        return Err(None);
    }
    let since = ready_since(pod).ok_or(None)?;
    let ready_for = now.duration_since(since).unwrap_or_default();
    if ready_for >= min_ready {
        Ok(())
    } else {
        Err(Some(min_ready - ready_for))
    }
}

/// Orders pods from the first to give up when scaling down to the last,
/// as Kubernetes does: unscheduled before scheduled, Pending before
/// Unknown before Running, not ready before ready, ready for less time
/// before ready for longer, more restarts before fewer, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| p.spec.as_ref().is_some_and(|s| !s.node_name.is_empty());
    let phase_rank = |p: &Pod| match phase(p) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .map_or(0, |s| s.container_statuses.iter().map(|c| c.restart_count).sum())
    };
    let created = |p: &Pod| {
        p.metadata
            .as_ref()
            .and_then(|m| m.creation_timestamp)
            .map_or((0, 0), |t| (t.seconds, t.nanos))
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(ready(a).cmp(&ready(b)))
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then(restarts(b).cmp(&restarts(a)))
        .then(created(b).cmp(&created(a)))
}
