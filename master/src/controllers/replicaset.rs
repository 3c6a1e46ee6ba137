//! The ReplicaSet controller: keeps `replicas` active pods matching the
//! selector, claims pods by the [`ownership`] rules, and reports counts in
//! the status. Pure: [`reconcile`] reads a snapshot and returns a
//! [`Plan`]; the runtime ([`super::runtime`]) applies it. [`ReplicaSets`]
//! is the controller: a ReplicaSet's key is queued when it changes, when a
//! pod it controls changes, and when an orphan pod it may adopt appears.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bosun_proto::api::{Object, ObjectMeta, Pod, ReplicaSet, ReplicaSetStatus};
use bosun_proto::selector::Selector;
use bosun_proto::Kind;

use bosun_proto::api::object::Resource;
use bosun_proto::api::EventType;

use super::ownership::{self, Claim};
use super::pods;
use super::{adopters, key_of, Action, Controller, ObjectKey, Plan};
use crate::store::{HistoryEvent, Objects};

/// The ReplicaSet controller.
pub struct ReplicaSets;

impl Controller for ReplicaSets {
    fn name(&self) -> &'static str {
        "replicasets"
    }

    fn resync(&mut self, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        keys.extend(objects.list(Kind::ReplicaSet, None).filter_map(|o| key_of(o)));
    }

    fn changed(&mut self, change: &HistoryEvent, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        let Some((kind, meta)) = change.object.kind().zip(change.object.metadata()) else {
            return;
        };
        match kind {
            Kind::ReplicaSet => keys.extend(key_of(&change.object)),
            Kind::Pod => match ownership::controller_of(meta) {
                Some(owner) if owner.kind == "ReplicaSet" => {
                    keys.push((Kind::ReplicaSet, meta.namespace.clone(), owner.name.clone()));
                }
                Some(_) => {}
                None if change.event_type != EventType::Deleted && meta.deletion_timestamp.is_none() => {
                    keys.extend(adopters(objects, Kind::ReplicaSet, &change.object));
                }
                None => {}
            },
            _ => {}
        }
    }

    fn reconcile(&self, (_, namespace, name): &ObjectKey, objects: &Objects, now: SystemTime) -> Plan {
        let Some(Resource::ReplicaSet(rs)) = objects
            .get(Kind::ReplicaSet, namespace, name)
            .and_then(|o| o.resource.as_ref())
        else {
            return Plan::default();
        };
        // The set's own pods and the ones it may adopt; pods of other
        // controllers would only be ignored.
        let uid = rs.metadata.as_ref().map_or("", |m| m.uid.as_str());
        let pods = objects
            .controlled_by(uid, Kind::Pod)
            .chain(objects.uncontrolled(Kind::Pod, namespace))
            .filter_map(|o| pods::pod(o));
        reconcile(rs, pods, now)
    }
}

/// Most pods created or deleted by one reconcile; the rest follow on the
/// next pass, so one huge ReplicaSet cannot monopolise a round.
pub const BURST: usize = 500;

/// What to do for `rs`, given the pods of its namespace.
pub fn reconcile<'a>(rs: &ReplicaSet, namespace_pods: impl Iterator<Item = &'a Pod>, now: SystemTime) -> Plan {
    let mut plan = Plan::default();
    let meta = rs.metadata.clone().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let deleting = meta.deletion_timestamp.is_some();
    let selector = match spec.selector.as_ref().map(Selector::from_message) {
        Some(Ok(selector)) if !selector.is_empty() => selector,
        // Validation refuses these; a ReplicaSet that got through anyway
        // claims nothing rather than everything.
        _ => return plan,
    };
    let reference = ownership::controller_ref(Kind::ReplicaSet, &meta);
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in namespace_pods {
        let pod_meta = pod.metadata.as_ref().cloned().unwrap_or_default();
        match ownership::claim(&meta.uid, deleting, &selector, &pod_meta) {
            Claim::Owned => owned.push(pod),
            Claim::Adopt => {
                plan.actions.push(Action::Update(with_meta(
                    pod,
                    ownership::adopted(&pod_meta, reference.clone()),
                )));
                owned.push(pod);
            }
            Claim::Release => {
                plan.actions.push(Action::Update(with_meta(
                    pod,
                    ownership::released(&pod_meta, &meta.uid),
                )));
            }
            Claim::Ignore => {}
        }
    }
    let mut active: Vec<&Pod> = owned.iter().copied().filter(|p| pods::active(p)).collect();
    let wanted = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    if !deleting {
        if active.len() < wanted {
            let template = new_pod(&meta, &spec, reference);
            for _ in 0..(wanted - active.len()).min(BURST) {
                plan.actions.push(Action::Create(template.clone()));
            }
        } else if active.len() > wanted {
            active.sort_by(|a, b| pods::deletion_order(a, b));
            for pod in active.iter().take((active.len() - wanted).min(BURST)) {
                plan.actions
                    .push(Action::delete_named(Kind::Pod, pod.metadata.as_ref()));
            }
        }
    }
    let min_ready = Duration::from_secs(u64::try_from(spec.min_ready_seconds).unwrap_or(0));
    let (status, recheck) = status(rs, &owned, &selector_labels(&spec), min_ready, now);
    if rs.status.as_ref() != Some(&status) {
        let mut next = rs.clone();
        next.status = Some(status);
        plan.actions.push(Action::UpdateStatus(next.into()));
    }
    plan.requeue = recheck;
    plan
}

/// The status `rs` should have, and when to look again for pods that will
/// have been ready for `min_ready` by then.
fn status(
    rs: &ReplicaSet,
    owned: &[&Pod],
    template_labels: &HashMap<String, String>,
    min_ready: Duration,
    now: SystemTime,
) -> (ReplicaSetStatus, Option<Duration>) {
    let mut status = ReplicaSetStatus {
        observed_generation: rs.metadata.as_ref().map_or(0, |m| m.generation),
        conditions: rs.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let mut recheck: Option<Duration> = None;
    for pod in owned.iter().filter(|p| pods::active(p)) {
        status.replicas += 1;
        let labels = pod.metadata.as_ref().map(|m| &m.labels);
        if labels.is_some_and(|l| template_labels.iter().all(|(k, v)| l.get(k) == Some(v))) {
            status.fully_labeled_replicas += 1;
        }
        if pods::ready(pod) {
            status.ready_replicas += 1;
        }
        match pods::available(pod, min_ready, now) {
            Ok(()) => status.available_replicas += 1,
            Err(Some(after)) => recheck = Some(recheck.map_or(after, |r| r.min(after))),
            Err(None) => {}
        }
    }
    (status, recheck)
}

fn selector_labels(spec: &bosun_proto::api::ReplicaSetSpec) -> HashMap<String, String> {
    spec.template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .map(|m| m.labels.clone())
        .unwrap_or_default()
}

/// A pod from the template, named after the ReplicaSet (the suffix is
/// chosen when it is created) and owned by it.
fn new_pod(
    meta: &ObjectMeta,
    spec: &bosun_proto::api::ReplicaSetSpec,
    reference: bosun_proto::api::OwnerReference,
) -> Object {
    let template = spec.template.clone().unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: Some(ObjectMeta {
            generate_name: format!("{}-", meta.name),
            namespace: meta.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            owner_references: vec![reference],
            ..Default::default()
        }),
        spec: template.spec,
        ..Default::default()
    }
    .into()
}

fn with_meta(pod: &Pod, meta: ObjectMeta) -> Object {
    let mut pod = pod.clone();
    pod.metadata = Some(meta);
    pod.into()
}

#[cfg(test)]
mod tests;
