//! The garbage collector: deletes objects whose owners are all gone
//! (`Background` propagation) and finishes `Foreground` deletions (deletes
//! the dependents, then removes the owner's finalizer). `Orphan` needs no
//! collector: the store drops the references in the same revision as the
//! deletion (`store::objects::cascade`). Pure: [`collect`] returns a
//! [`Plan`]. [`GarbageCollector`] is the controller: it remembers who
//! names whom as an owner, so a deleted owner's dependents are found
//! without a scan.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use bosun_proto::api::{EventType, Object, ObjectMeta};
use bosun_proto::Kind;

use super::{key_of, Action, Controller, ObjectKey, Plan};
use crate::store::{HistoryEvent, Objects, FOREGROUND_FINALIZER};

/// The garbage collector, and who owns what.
#[derive(Default)]
pub struct GarbageCollector {
    /// Owner uid → the objects naming it in their ownerReferences.
    dependents: HashMap<String, HashSet<ObjectKey>>,
    /// Object → the owner uids it names (to keep `dependents` in step).
    owners: HashMap<ObjectKey, Vec<String>>,
}

fn foreground_deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
}

impl GarbageCollector {
    fn index(&mut self, key: &ObjectKey, meta: &ObjectMeta) {
        self.unindex(key);
        if meta.owner_references.is_empty() {
            return;
        }
        let uids: Vec<String> = meta.owner_references.iter().map(|r| r.uid.clone()).collect();
        for uid in &uids {
            self.dependents.entry(uid.clone()).or_default().insert(key.clone());
        }
        self.owners.insert(key.clone(), uids);
    }

    fn unindex(&mut self, key: &ObjectKey) {
        for uid in self.owners.remove(key).unwrap_or_default() {
            if let Some(set) = self.dependents.get_mut(&uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&uid);
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.dependents.get(uid).into_iter().flatten().cloned().collect()
    }
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    fn resync(&mut self, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        *self = GarbageCollector::default();
        for object in objects.all() {
            let (Some(key), Some(meta)) = (key_of(object), object.metadata()) else {
                continue;
            };
            self.index(&key, meta);
            if !meta.owner_references.is_empty() || meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                keys.push(key);
            }
        }
    }

    fn changed(&mut self, change: &HistoryEvent, _objects: &Objects, keys: &mut Vec<ObjectKey>) {
        let (Some(key), Some(meta)) = (key_of(&change.object), change.object.metadata()) else {
            return;
        };
        if change.event_type == EventType::Deleted {
            self.unindex(&key);
            keys.extend(self.dependents_of(&meta.uid));
            // An owner deleted in the foreground waits for this one.
            for reference in &meta.owner_references {
                if let Ok(owner_kind) = Kind::parse(&reference.kind) {
                    let namespace = if owner_kind.namespaced() {
                        meta.namespace.clone()
                    } else {
                        String::new()
                    };
                    keys.push((owner_kind, namespace, reference.name.clone()));
                }
            }
            return;
        }
        let was_indexed = self.owners.contains_key(&key);
        self.index(&key, meta);
        // New, or newly owned: its owners may be gone already.
        let newly_owned = !meta.owner_references.is_empty() && !was_indexed;
        if newly_owned || foreground_deleting(meta) {
            keys.push(key);
        }
    }

    fn reconcile(&self, key: &ObjectKey, objects: &Objects, _now: SystemTime) -> Plan {
        let Some(object) = objects.get(key.0, &key.1, &key.2) else {
            return Plan::default();
        };
        let uid = object.metadata().map_or("", |m| m.uid.as_str());
        collect(key, object, objects, &self.dependents_of(uid))
    }
}

/// What to do about `object`, given the objects that named it as an owner
/// when last seen (`dependents`, checked again here).
pub fn collect(key: &ObjectKey, object: &Object, objects: &Objects, dependents: &[ObjectKey]) -> Plan {
    let mut plan = Plan::default();
    let Some(meta) = object.metadata() else { return plan };
    if foreground_deleting(meta) {
        let live: Vec<(&ObjectKey, &Object)> = dependents
            .iter()
            .filter_map(|key| Some((key, &**objects.get(key.0, &key.1, &key.2)?)))
            .filter(|(_, o)| {
                o.metadata()
                    .is_some_and(|m| m.owner_references.iter().any(|r| r.uid == meta.uid))
            })
            .collect();
        if live.is_empty() {
            let mut next = object.clone();
            if let Some(next_meta) = next.metadata_mut() {
                next_meta.finalizers.retain(|f| f != FOREGROUND_FINALIZER);
            }
            plan.actions.push(Action::Update(next));
        }
        for (key, dependent) in live {
            if dependent.metadata().is_some_and(|m| m.deletion_timestamp.is_none()) {
                plan.actions.push(Action::delete(key));
            }
        }
        return plan;
    }
    if meta.deletion_timestamp.is_none()
        && !meta.owner_references.is_empty()
        && meta.owner_references.iter().all(|r| owner_gone(objects, object, r))
    {
        plan.actions.push(Action::delete(key));
    }
    plan
}

/// Whether the owner `reference` names is absent (or replaced by another
/// object of the same name). A reference to a kind Bosun does not know is
/// taken as present: collecting is not undoable.
fn owner_gone(objects: &Objects, dependent: &Object, reference: &bosun_proto::api::OwnerReference) -> bool {
    let Ok(kind) = Kind::parse(&reference.kind) else {
        return false;
    };
    let namespace = if kind.namespaced() { dependent.namespace() } else { "" };
    objects
        .get(kind, namespace, &reference.name)
        .and_then(|o| o.metadata())
        .is_none_or(|m| m.uid != reference.uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{ConfigMap, ObjectMeta, OwnerReference};

    fn config_map(name: &str, uid: &str, owner: Option<(&str, &str)>) -> Object {
        ConfigMap {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                uid: uid.into(),
                owner_references: owner
                    .map(|(name, uid)| OwnerReference {
                        kind: "ConfigMap".into(),
                        name: name.into(),
                        uid: uid.into(),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    fn key(name: &str) -> ObjectKey {
        (Kind::ConfigMap, "default".into(), name.into())
    }

    #[test]
    fn an_object_whose_owners_are_gone_is_deleted() {
        let orphan = config_map("child", "c1", Some(("parent", "p1")));
        let objects = Objects::of([orphan.clone()]);
        let plan = collect(&key("child"), &orphan, &objects, &[]);
        assert!(matches!(&plan.actions[..], [Action::Delete { name, .. }] if name == "child"));
    }

    #[test]
    fn an_owner_recreated_under_the_same_name_is_not_the_owner() {
        let child = config_map("child", "c1", Some(("parent", "p1")));
        let objects = Objects::of([config_map("parent", "p2", None), child.clone()]);
        assert_eq!(collect(&key("child"), &child, &objects, &[]).actions.len(), 1);
        let objects = Objects::of([config_map("parent", "p1", None), child.clone()]);
        assert!(collect(&key("child"), &child, &objects, &[]).actions.is_empty());
    }

    #[test]
    fn a_foreground_deletion_waits_for_its_dependents() {
        let mut parent = config_map("parent", "p1", None);
        let meta = parent.metadata_mut().unwrap();
        meta.deletion_timestamp = Some(prost_types::Timestamp::default());
        meta.finalizers.push(FOREGROUND_FINALIZER.into());
        let child = config_map("child", "c1", Some(("parent", "p1")));
        let child_key = key("child");
        let objects = Objects::of([child]);
        let plan = collect(&key("parent"), &parent, &objects, std::slice::from_ref(&child_key));
        assert!(matches!(&plan.actions[..], [Action::Delete { name, .. }] if name == "child"));
        let plan = collect(&key("parent"), &parent, &Objects::default(), &[child_key]);
        let [Action::Update(next)] = &plan.actions[..] else {
            panic!("{plan:?}")
        };
        assert!(next.metadata().unwrap().finalizers.is_empty());
    }
}
