//! Revision history: Bosun's automatic rollback to the last fully
//! available revision, and the removal of old, empty ReplicaSets beyond
//! `revisionHistoryLimit`.

use super::*;

/// With `bosun.io/auto-rollback: "true"`, a rollout past its deadline goes
/// back to the newest other revision that was fully available: the
/// template is restored (which starts a rollout to it) and an Event says
/// why.
pub(super) fn auto_rollback(
    d: &Deployment,
    meta: &ObjectMeta,
    status: &DeploymentStatus,
    sets: &[Set<'_>],
    new: Option<usize>,
) -> Option<Vec<Action>> {
    if meta.annotations.get(AUTO_ROLLBACK).map(String::as_str) != Some("true") {
        return None;
    }
    let failed = status
        .conditions
        .iter()
        .any(|c| c.r#type == "Progressing" && c.reason == "ProgressDeadlineExceeded");
    if !failed || d.spec.as_ref().is_some_and(|s| s.paused) {
        return None;
    }
    // Only a revision that never became fully available is rolled back: a
    // finished release that later lost pods is not a failed rollout.
    if new.is_some_and(|i| has_annotation(sets[i].rs, FULLY_AVAILABLE)) {
        return None;
    }
    let target = sets
        .iter()
        .enumerate()
        .filter(|(i, s)| Some(*i) != new && has_annotation(s.rs, FULLY_AVAILABLE))
        .max_by_key(|(_, s)| s.revision)
        .map(|(_, s)| s)?;
    let mut next = d.clone();
    let spec = next.spec.get_or_insert_with(Default::default);
    spec.template = Some(workload::without_hash(
        target
            .rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default(),
    ));
    let failed_revision = new.map_or(0, |i| sets[i].revision);
    let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
    let message = format!(
        "Rolled back to revision {}: revision {failed_revision} did not become available within progressDeadlineSeconds ({deadline}s)",
        target.revision
    );
    Some(vec![
        Action::Update(next.into()),
        event(meta, "Warning", "AutoRollback", &message),
    ])
}

/// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit`, oldest
/// first.
pub(super) fn cleanup(spec: &bosun_proto::api::DeploymentSpec, sets: &[Set<'_>], new: Option<usize>, plan: &mut Plan) {
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let empty: Vec<&Set<'_>> = sets
        .iter()
        .enumerate()
        .filter(|(i, s)| Some(*i) != new && s.replicas == 0 && s.pods == 0)
        .map(|(_, s)| s)
        .collect();
    for set in empty.iter().take(empty.len().saturating_sub(limit)) {
        plan.actions
            .push(Action::delete_named(Kind::ReplicaSet, set.rs.metadata.as_ref()));
    }
}
