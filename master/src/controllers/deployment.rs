//! The Deployment controller: one ReplicaSet per pod template, rolled
//! from the old ones to the new one by the strategy (RollingUpdate within
//! maxSurge/maxUnavailable, or Recreate), with Kubernetes' status and
//! conditions, revision history, pause, and Bosun's automatic rollback.
//! Pure: [`reconcile`] reads a snapshot and returns a [`Plan`].
//!
//! ```text
//!   template changed ──► new ReplicaSet (revision N+1) ──► scale new up / old down
//!                                                         │            │
//!                      all updated and available ◄────────┘            │ no progress for
//!                      Progressing=True                                │ progressDeadlineSeconds
//!                      NewReplicaSetAvailable                          ▼
//!                      (the set is marked fully available)   Progressing=False
//!                                                            ProgressDeadlineExceeded
//!                                                            └─ bosun.io/auto-rollback: "true"
//!                                                               → template of the last fully
//!                                                                 available revision, Event
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{
    Deployment, EventType, DeploymentCondition, DeploymentStatus, ObjectMeta, Pod, PodTemplateSpec, ReplicaSet,
};
use bosun_proto::events;
use bosun_proto::selector::Selector;
use bosun_proto::workload::{self, AUTO_ROLLBACK, CHANGE_CAUSE, FULLY_AVAILABLE, HASH_LABEL, REVISION};
use bosun_proto::Kind;

use super::ownership::{self, Claim};
use super::rollout::{self, Counts, Limits};
use super::{adopters, key_of, pods, template, Action, Controller, ObjectKey, Plan};
use crate::store::{HistoryEvent, Objects};

/// The Deployment controller: a Deployment's key is queued when it
/// changes, when a ReplicaSet it controls (or may adopt) changes, and when
/// a pod of one of its ReplicaSets changes.
pub struct Deployments;

impl Controller for Deployments {
    fn name(&self) -> &'static str {
        "deployments"
    }

    fn resync(&mut self, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        keys.extend(objects.list(Kind::Deployment, None).filter_map(|o| key_of(o)));
    }

    fn changed(&mut self, change: &HistoryEvent, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        let Some((kind, meta)) = change.object.kind().zip(change.object.metadata()) else {
            return;
        };
        let deployment_of = |owner: &bosun_proto::api::OwnerReference| {
            (owner.kind == "Deployment").then(|| (Kind::Deployment, meta.namespace.clone(), owner.name.clone()))
        };
        match kind {
            Kind::Deployment => keys.extend(key_of(&change.object)),
            Kind::ReplicaSet => match ownership::controller_of(meta) {
                Some(owner) => keys.extend(deployment_of(owner)),
                None if change.event_type != EventType::Deleted => {
                    keys.extend(adopters(objects, Kind::Deployment, &change.object));
                }
                None => {}
            },
            Kind::Pod => {
                // The pod's ReplicaSet as it is now, and that one's owner.
                let Some(owner) = ownership::controller_of(meta).filter(|o| o.kind == "ReplicaSet") else {
                    return;
                };
                let deployment = objects
                    .get(Kind::ReplicaSet, &meta.namespace, &owner.name)
                    .and_then(|rs| rs.metadata())
                    .and_then(ownership::controller_of)
                    .and_then(deployment_of);
                keys.extend(deployment);
            }
            _ => {}
        }
    }

    fn reconcile(&self, (_, namespace, name): &ObjectKey, objects: &Objects, now: SystemTime) -> Plan {
        let Some(Resource::Deployment(d)) = objects
            .get(Kind::Deployment, namespace, name)
            .and_then(|o| o.resource.as_ref())
        else {
            return Plan::default();
        };
        // Every set of the namespace (the names of others' sets are
        // taken), and the pods of those it owns or may adopt.
        let uid = d.metadata.as_ref().map_or("", |m| m.uid.as_str());
        let sets: Vec<_> = objects
            .list(Kind::ReplicaSet, Some(namespace))
            .filter_map(|o| match o.resource.as_ref() {
                Some(Resource::ReplicaSet(rs)) => Some(&**rs),
                _ => None,
            })
            .collect();
        let pods: Vec<_> = sets
            .iter()
            .filter_map(|rs| rs.metadata.as_ref())
            .filter(|meta| ownership::controller_of(meta).is_none_or(|owner| owner.uid == uid))
            .flat_map(|meta| objects.controlled_by(&meta.uid, Kind::Pod))
            .filter_map(|o| pods::pod(o))
            .collect();
        reconcile(d, sets.into_iter(), &pods, now)
    }
}

const COMPONENT: &str = "deployment-controller";

/// One owned ReplicaSet and its pods as counted now.
struct Set<'a> {
    rs: &'a ReplicaSet,
    name: &'a str,
    revision: i64,
    replicas: i32,
    /// Active pods (not finished, not being deleted).
    active: i32,
    ready: i32,
    available: i32,
    /// Any pods at all, also ones still shutting down.
    pods: usize,
}

impl Set<'_> {
    fn counts(&self) -> Counts {
        Counts {
            replicas: self.replicas,
            available: self.available,
        }
    }
}

/// What to do for deployment `d`, given the ReplicaSets and pods of its
/// namespace.
pub fn reconcile<'a>(
    d: &Deployment,
    namespace_sets: impl Iterator<Item = &'a ReplicaSet>,
    namespace_pods: &[&'a Pod],
    now: SystemTime,
) -> Plan {
    let mut plan = Plan::default();
    let meta = d.metadata.clone().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let selector = match spec.selector.as_ref().map(Selector::from_message) {
        Some(Ok(selector)) if !selector.is_empty() => selector,
        _ => return plan,
    };
    if meta.deletion_timestamp.is_some() {
        return plan;
    }
    let (owned, taken_names) = claim_sets(&meta, &selector, namespace_sets, &mut plan);
    let min_ready = Duration::from_secs(u64::try_from(spec.min_ready_seconds).unwrap_or(0));
    let (mut sets, recheck) = count(&owned, namespace_pods, min_ready, now);
    sets.sort_by_key(|s| (s.revision, s.name.to_string()));
    let wanted = spec.replicas.unwrap_or(1).max(0);
    let max_revision = sets.iter().map(|s| s.revision).max().unwrap_or(0);
    let template = spec.template.clone().unwrap_or_default();
    let pass = Pass {
        d,
        meta: &meta,
        spec: &spec,
        template: &template,
        sets: &sets,
        wanted,
        max_revision,
        now,
    };
    let new_index = sets.iter().position(|s| same_template(s.rs, &template));
    let mut progress = Progress::default();
    let mut edits: BTreeMap<usize, ReplicaSet> = BTreeMap::new();

    if spec.paused {
        // A paused Deployment still follows `replicas` when only one
        // ReplicaSet runs, and rolls nothing.
        let running: Vec<usize> = (0..sets.len())
            .filter(|&i| sets[i].replicas > 0 || sets[i].pods > 0)
            .collect();
        if let [only] = running[..] {
            resize(&mut edits, &sets, only, wanted, &mut plan, &meta);
        }
    } else if let Some(i) = new_index {
        if sets[i].revision < max_revision {
            // Back to an older template (an undo): it becomes the newest
            // revision again.
            let rs = edits.entry(i).or_insert_with(|| sets[i].rs.clone());
            set_annotation(rs, REVISION, &(max_revision + 1).to_string());
            copy_change_cause(rs, &meta);
            progress.found_new = true;
        }
        step(&spec, wanted, &sets, i, &mut edits, &mut plan, &meta);
    } else {
        match pass.new_set_actions(&taken_names) {
            Ok((actions, name)) => {
                plan.actions.extend(actions);
                progress.created = Some(name);
            }
            Err(collision) => {
                plan.actions.push(collision);
                return plan;
            }
        }
    }
    plan.actions
        .extend(edits.into_values().map(|rs| Action::Update(rs.into())));

    let new_name = new_index.map(|i| sets[i].name.to_string()).or(progress.created.clone());
    let status = pass.status(new_index, &progress, new_name.as_deref());
    let complete = is_complete(&status, wanted, d);
    if complete {
        if let Some(i) = new_index {
            if !has_annotation(sets[i].rs, FULLY_AVAILABLE) && !plan.touches(sets[i].name) {
                let mut rs = sets[i].rs.clone();
                set_annotation(&mut rs, FULLY_AVAILABLE, "true");
                plan.actions.push(Action::Update(rs.into()));
            }
        }
        cleanup(&spec, &sets, new_index, &mut plan);
    }
    if let Some(rollback) = auto_rollback(d, &meta, &status, &sets, new_index) {
        plan.actions.extend(rollback);
        return plan;
    }
    if d.status.as_ref() != Some(&status) {
        let mut next = d.clone();
        next.status = Some(status.clone());
        plan.actions.push(Action::UpdateStatus(next.into()));
    }
    plan.requeue = [recheck, deadline_recheck(&spec, &status, now)]
        .into_iter()
        .flatten()
        .min();
    plan
}

/// The ReplicaSets this Deployment owns (adopting and releasing by the
/// [`ownership`] rules, as actions in `plan`), and the names of the others.
fn claim_sets<'a>(
    meta: &ObjectMeta,
    selector: &Selector,
    namespace_sets: impl Iterator<Item = &'a ReplicaSet>,
    plan: &mut Plan,
) -> (Vec<&'a ReplicaSet>, Vec<&'a str>) {
    let reference = ownership::controller_ref(Kind::Deployment, meta);
    let mut owned: Vec<&ReplicaSet> = Vec::new();
    let mut taken_names: Vec<&str> = Vec::new();
    for rs in namespace_sets {
        let rs_meta = rs.metadata.as_ref().cloned().unwrap_or_default();
        match ownership::claim(&meta.uid, false, selector, &rs_meta) {
            Claim::Owned => owned.push(rs),
            Claim::Adopt => {
                let adopted = ownership::adopted(&rs_meta, reference.clone());
                plan.actions.push(Action::Update(with_rs_meta(rs, adopted)));
                owned.push(rs);
            }
            Claim::Release => {
                let released = ownership::released(&rs_meta, &meta.uid);
                plan.actions.push(Action::Update(with_rs_meta(rs, released)));
            }
            Claim::Ignore => taken_names.push(rs.metadata.as_ref().map_or("", |m| m.name.as_str())),
        }
    }
    (owned, taken_names)
}

/// What one pass reads: the Deployment, its spec and template, its
/// ReplicaSets (oldest revision first) counted now.
struct Pass<'a> {
    d: &'a Deployment,
    meta: &'a ObjectMeta,
    spec: &'a bosun_proto::api::DeploymentSpec,
    template: &'a PodTemplateSpec,
    sets: &'a [Set<'a>],
    /// `spec.replicas`.
    wanted: i32,
    max_revision: i64,
    now: SystemTime,
}

impl Pass<'_> {
    /// Creates the ReplicaSet for the current template, sized by the
    /// strategy; or, when someone else's ReplicaSet already has its name,
    /// the status write that bumps the collision count so the next pass
    /// hashes again.
    fn new_set_actions(&self, taken_names: &[&str]) -> Result<(Vec<Action>, String), Action> {
        let (d, sets, wanted) = (self.d, self.sets, self.wanted);
        let collisions = d.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
        let hash = template::hash(self.template, collisions);
        let name = format!("{}-{hash}", self.meta.name);
        if taken_names.contains(&name.as_str()) || sets.iter().any(|s| s.name == name) {
            let mut next = d.clone();
            next.status.get_or_insert_with(Default::default).collision_count = Some(collisions + 1);
            return Err(Action::UpdateStatus(next.into()));
        }
        let total: i32 = sets.iter().map(|s| s.replicas).sum();
        let size = if is_recreate(self.spec) {
            if sets.iter().any(|s| s.replicas > 0 || s.pods > 0) {
                0
            } else {
                wanted
            }
        } else {
            rollout::new_size(wanted, rollout::limits(self.spec.strategy.as_ref(), wanted), total, 0)
        };
        let rs = self.new_set(&name, &hash, size);
        let scaled = event(
            self.meta,
            "Normal",
            "ScalingReplicaSet",
            &format!("Scaled up replica set {name} to {size}"),
        );
        Ok((vec![Action::Create(rs.into()), scaled], name))
    }
}
/// Counts the pods of each owned ReplicaSet; also when the next pod will
/// have been ready for `min_ready`.
fn count<'a>(
    owned: &[&'a ReplicaSet],
    namespace_pods: &[&'a Pod],
    min_ready: Duration,
    now: SystemTime,
) -> (Vec<Set<'a>>, Option<Duration>) {
    let mut by_owner: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in namespace_pods {
        if let Some(owner) = pod.metadata.as_ref().and_then(ownership::controller_of) {
            by_owner.entry(owner.uid.as_str()).or_default().push(pod);
        }
    }
    let mut recheck: Option<Duration> = None;
    let sets = owned
        .iter()
        .map(|rs| {
            let meta = rs.metadata.as_ref();
            let uid = meta.map_or("", |m| m.uid.as_str());
            let pods_of = by_owner.get(uid).map(Vec::as_slice).unwrap_or_default();
            let mut set = Set {
                rs,
                name: meta.map_or("", |m| m.name.as_str()),
                revision: revision(rs),
                replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                active: 0,
                ready: 0,
                available: 0,
                pods: pods_of.len(),
            };
            for pod in pods_of.iter().filter(|p| pods::active(p)) {
                set.active += 1;
                set.ready += i32::from(pods::ready(pod));
                match pods::available(pod, min_ready, now) {
                    Ok(()) => set.available += 1,
                    Err(Some(after)) => recheck = Some(recheck.map_or(after, |r| r.min(after))),
                    Err(None) => {}
                }
            }
            set
        })
        .collect();
    (sets, recheck)
}

/// One step of the strategy towards the new ReplicaSet `new`.
fn step(
    spec: &bosun_proto::api::DeploymentSpec,
    wanted: i32,
    sets: &[Set<'_>],
    new: usize,
    edits: &mut BTreeMap<usize, ReplicaSet>,
    plan: &mut Plan,
    meta: &ObjectMeta,
) {
    let old: Vec<usize> = (0..sets.len()).filter(|&i| i != new).collect();
    if is_recreate(spec) {
        let mut waiting = false;
        for &i in &old {
            if sets[i].replicas > 0 {
                resize(edits, sets, i, 0, plan, meta);
            }
            waiting |= sets[i].pods > 0 || sets[i].replicas > 0;
        }
        if !waiting {
            resize(edits, sets, new, wanted, plan, meta);
        }
        return;
    }
    let limits: Limits = rollout::limits(spec.strategy.as_ref(), wanted);
    let total: i32 = sets.iter().map(|s| s.replicas).sum();
    let grown = rollout::new_size(wanted, limits, total, sets[new].replicas);
    if grown != sets[new].replicas {
        resize(edits, sets, new, grown, plan, meta);
        return;
    }
    let old_counts: Vec<Counts> = old.iter().map(|&i| sets[i].counts()).collect();
    let sizes = rollout::old_sizes(wanted, limits, sets[new].counts(), &old_counts);
    for (&i, size) in old.iter().zip(sizes) {
        if size != sets[i].replicas {
            resize(edits, sets, i, size, plan, meta);
        }
    }
}

/// Sets ReplicaSet `i` to `size` replicas, with Kubernetes' event.
fn resize(
    edits: &mut BTreeMap<usize, ReplicaSet>,
    sets: &[Set<'_>],
    i: usize,
    size: i32,
    plan: &mut Plan,
    meta: &ObjectMeta,
) {
    if sets[i].replicas == size {
        return;
    }
    let rs = edits.entry(i).or_insert_with(|| sets[i].rs.clone());
    rs.spec.get_or_insert_with(Default::default).replicas = Some(size);
    let direction = if size > sets[i].replicas { "up" } else { "down" };
    plan.actions.push(event(
        meta,
        "Normal",
        "ScalingReplicaSet",
        &format!("Scaled {direction} replica set {} to {size}", sets[i].name),
    ));
}

/// What happened this pass that the Progressing condition reports.
#[derive(Default)]
struct Progress {
    created: Option<String>,
    found_new: bool,
}

impl Pass<'_> {
    /// The status and conditions after this pass.
    fn status(&self, new: Option<usize>, progress: &Progress, new_name: Option<&str>) -> DeploymentStatus {
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
fn made_progress(before: &DeploymentStatus, after: &DeploymentStatus) -> bool {
    let old = |s: &DeploymentStatus| s.replicas - s.updated_replicas;
    after.updated_replicas > before.updated_replicas
        || after.ready_replicas > before.ready_replicas
        || after.available_replicas > before.available_replicas
        || old(after) < old(before)
}

fn timed_out(d: &Deployment, progressing: Option<&DeploymentCondition>, now: SystemTime) -> bool {
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
fn deadline_recheck(
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

fn deadline(spec: Option<&bosun_proto::api::DeploymentSpec>) -> Option<Duration> {
    let seconds = spec.and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
    (seconds != i32::MAX && seconds >= 0).then(|| Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

fn is_complete(status: &DeploymentStatus, wanted: i32, d: &Deployment) -> bool {
    status.updated_replicas == wanted
        && status.replicas == wanted
        && status.available_replicas == wanted
        && status.observed_generation >= d.metadata.as_ref().map_or(0, |m| m.generation)
}

/// Sets a condition; the transition time moves only when the status
/// changes, the update time also when `touch` (progress was made).
fn set_condition(
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

/// With `bosun.io/auto-rollback: "true"`, a rollout past its deadline goes
/// back to the newest other revision that was fully available: the
/// template is restored (which starts a rollout to it) and an Event says
/// why.
fn auto_rollback(
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
fn cleanup(spec: &bosun_proto::api::DeploymentSpec, sets: &[Set<'_>], new: Option<usize>, plan: &mut Plan) {
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

impl Pass<'_> {
    /// The ReplicaSet of the current template as the next revision, owned by
    /// the Deployment, with `replicas`.
    fn new_set(&self, name: &str, hash: &str, replicas: i32) -> ReplicaSet {
        let (spec, meta) = (self.spec, self.meta);
        let revision = self.max_revision + 1;
        let reference = ownership::controller_ref(Kind::Deployment, meta);
        let mut template = self.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .insert(HASH_LABEL.to_string(), hash.to_string());
        let mut selector = spec.selector.clone().unwrap_or_default();
        selector.match_labels.insert(HASH_LABEL.to_string(), hash.to_string());
        let mut labels = template.metadata.as_ref().map(|m| m.labels.clone()).unwrap_or_default();
        labels.insert(HASH_LABEL.to_string(), hash.to_string());
        let mut rs = ReplicaSet {
            metadata: Some(ObjectMeta {
                name: name.to_string(),
                namespace: meta.namespace.clone(),
                labels,
                annotations: [(REVISION.to_string(), revision.to_string())].into_iter().collect(),
                owner_references: vec![reference],
                ..Default::default()
            }),
            spec: Some(bosun_proto::api::ReplicaSetSpec {
                replicas: Some(replicas),
                selector: Some(selector),
                template: Some(template),
                min_ready_seconds: spec.min_ready_seconds,
            }),
            ..Default::default()
        };
        copy_change_cause(&mut rs, meta);
        rs
    }
}

fn same_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    let Some(own) = rs.spec.as_ref().and_then(|s| s.template.clone()) else {
        return false;
    };
    workload::without_hash(own) == *template
}

fn revision(rs: &ReplicaSet) -> i64 {
    workload::revision(rs).unwrap_or(0)
}

fn is_recreate(spec: &bosun_proto::api::DeploymentSpec) -> bool {
    spec.strategy.as_ref().is_some_and(|s| s.r#type == "Recreate")
}

fn is_recreate_opt(d: &Deployment) -> bool {
    d.spec.as_ref().is_some_and(is_recreate)
}

fn has_annotation(rs: &ReplicaSet, key: &str) -> bool {
    rs.metadata
        .as_ref()
        .is_some_and(|m| m.annotations.get(key).is_some_and(|v| v == "true"))
}

fn set_annotation(rs: &mut ReplicaSet, key: &str, value: &str) {
    rs.metadata
        .get_or_insert_with(Default::default)
        .annotations
        .insert(key.to_string(), value.to_string());
}

fn copy_change_cause(rs: &mut ReplicaSet, deployment: &ObjectMeta) {
    if let Some(cause) = deployment.annotations.get(CHANGE_CAUSE) {
        set_annotation(rs, CHANGE_CAUSE, cause);
    }
}

fn with_rs_meta(rs: &ReplicaSet, meta: ObjectMeta) -> bosun_proto::api::Object {
    let mut rs = rs.clone();
    rs.metadata = Some(meta);
    rs.into()
}

fn event(meta: &ObjectMeta, kind: &str, reason: &str, message: &str) -> Action {
    let involved = events::involving(Kind::Deployment, meta);
    Action::Event(events::event(
        involved,
        &events::Source::new(COMPONENT),
        kind,
        reason,
        message,
    ))
}

#[cfg(test)]
mod tests;
