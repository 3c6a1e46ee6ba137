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
    Deployment, DeploymentCondition, DeploymentStatus, EventType, ObjectMeta, Pod, PodTemplateSpec, ReplicaSet,
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

mod history;
mod progress;
#[cfg(test)]
mod tests;

use history::{auto_rollback, cleanup};
use progress::{deadline_recheck, is_complete, Progress};
