//! The Deployment's status and its Progressing condition: counts, the
//! progress deadline, and when to look at it again.

use super::*;

/// What happened this pass that the Progressing condition reports.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) created: Option<String>,
    pub(super) found_new: bool,
}

impl Pass<'_> {
    /// The status and conditions after this pass.
    pub(super) fn status(&self, new: Option<usize>, progress: &Progress, new_name: Option<&str>) -> DeploymentStatus {
        let (d, sets, wanted, paused, now) = (self.d, self.sets, self.wanted, self.spec.paused, self.now);
        let previous = d.status.clone().unwrap_or_default();
        let limits = rollout::limits(d.spec.as_ref().and_then(|s| s.strategy.as_ref()), wanted);
        let mut status = DeploymentStatus {
            observed_generation: d.metadata.as_ref().map_or(0, |m| m.generation),
            replicas: sets.iter().map(|s| s.active).sum(),
            updated_replicas: new.map_or(0, |i| sets[i].active),
            ready_replicas: sets.iter().map(|s| s.ready).sum(),
            available_replicas: sets.iter().map(|s| s.available).sum(),
            conditions: previous.conditions.clone(),
            collision_count: previous.collision_count,
            ..Default::default()
        };
        status.unavailable_replicas = (wanted - status.available_replicas).max(0);
        let minimum = wanted - if is_recreate_opt(d) { wanted } else { limits.unavailable };
        let stamp = Some(prost_types::Timestamp::from(now));
        if status.available_replicas >= minimum.max(0) {
            set_condition(
                &mut status.conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                stamp,
                false,
            );
        } else {
            set_condition(
                &mut status.conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                stamp,
                false,
            );
        }
        let rs_name = new_name.unwrap_or_default();
        let current = status.conditions.iter().find(|c| c.r#type == "Progressing").cloned();
        let was_paused = current.as_ref().is_some_and(|c| c.reason == "DeploymentPaused");
        // A finished rollout stays finished while every pod is of the new
        // ReplicaSet: pods lost to a drain or an outage and replaced are not a
        // rollout, so no progress is estimated and no deadline runs
        // (Kubernetes' `isCompleteDeployment`).
        let finished = current.as_ref().is_some_and(|c| c.reason == "NewReplicaSetAvailable")
            && status.replicas == status.updated_replicas
            && progress.created.is_none()
            && !progress.found_new;
        if finished && !paused {
            return status;
        }
        if paused {
            if !was_paused {
                set_condition(
                    &mut status.conditions,
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    stamp,
                    true,
                );
            }
        } else if is_complete(&status, wanted, d) {
            set_condition(
                &mut status.conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                stamp,
                false,
            );
        } else if let Some(created) = &progress.created {
            set_condition(
                &mut status.conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{created}\""),
                stamp,
                true,
            );
        } else if was_paused {
            set_condition(
                &mut status.conditions,
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed",
                stamp,
                true,
            );
        } else if progress.found_new || current.is_none() {
            set_condition(
                &mut status.conditions,
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                &format!("Found new replica set \"{rs_name}\""),
                stamp,
                true,
            );
        } else if made_progress(&previous, &status) {
            set_condition(
                &mut status.conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs_name}\" is progressing."),
                stamp,
                true,
            );
        } else if timed_out(d, current.as_ref(), now) {
            set_condition(
                &mut status.conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                stamp,
                false,
            );
        }
        status
    }
}

/// Kubernetes' notion of progress: more pods updated, ready or available,
/// or fewer old ones.
pub(super) fn made_progress(before: &DeploymentStatus, after: &DeploymentStatus) -> bool {
    let old = |s: &DeploymentStatus| s.replicas - s.updated_replicas;
    after.updated_replicas > before.updated_replicas
        || after.ready_replicas > before.ready_replicas
        || after.available_replicas > before.available_replicas
        || old(after) < old(before)
}

pub(super) fn timed_out(d: &Deployment, progressing: Option<&DeploymentCondition>, now: SystemTime) -> bool {
    let Some(deadline) = deadline(d.spec.as_ref()) else {
        return false;
    };
    let Some(condition) = progressing else { return false };
    if condition.reason == "NewReplicaSetAvailable" {
        return false;
    }
    let since = condition
        .last_update_time
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(now);
    now.duration_since(since).unwrap_or_default() > deadline
}

/// How long to wait before checking the progress deadline again.
pub(super) fn deadline_recheck(
    spec: &bosun_proto::api::DeploymentSpec,
    status: &DeploymentStatus,
    now: SystemTime,
) -> Option<Duration> {
    let deadline = deadline(Some(spec))?;
    let condition = status.conditions.iter().find(|c| c.r#type == "Progressing")?;
    if condition.status != "True" || condition.reason == "NewReplicaSetAvailable" {
        return None;
    }
    let since = SystemTime::try_from(condition.last_update_time?).ok()?;
    let due = since + deadline + Duration::from_secs(1);
    Some(due.duration_since(now).unwrap_or(Duration::from_millis(100)))
}

pub(super) fn deadline(spec: Option<&bosun_proto::api::DeploymentSpec>) -> Option<Duration> {
    let seconds = spec.and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
    (seconds != i32::MAX && seconds >= 0).then(|| Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

pub(super) fn is_complete(status: &DeploymentStatus, wanted: i32, d: &Deployment) -> bool {
    status.updated_replicas == wanted
        && status.replicas == wanted
        && status.available_replicas == wanted
        && status.observed_generation >= d.metadata.as_ref().map_or(0, |m| m.generation)
}

/// Sets a condition; the transition time moves only when the status
/// changes, the update time also when `touch` (progress was made).
pub(super) fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Option<prost_types::Timestamp>,
    touch: bool,
) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.r#type == kind) {
        if existing.status == status && existing.reason == reason && existing.message == message && !touch {
            return;
        }
        if existing.status != status {
            existing.last_transition_time = now;
        }
        existing.status = status.into();
        existing.reason = reason.into();
        existing.message = message.into();
        existing.last_update_time = now;
        return;
    }
    conditions.push(DeploymentCondition {
        r#type: kind.into(),
        status: status.into(),
        last_update_time: now,
        last_transition_time: now,
        reason: reason.into(),
        message: message.into(),
    });
}
