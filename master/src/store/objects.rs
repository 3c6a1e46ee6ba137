//! Every object of the cluster, in memory, and the deterministic rules for
//! applying a committed [`Command`] to them.
//!
//! `apply` runs on every master for every committed entry, so it may depend
//! only on the command and the current objects: uids, names and timestamps
//! are decided before the command is proposed. Business refusals (not found,
//! already exists, stale resourceVersion) are results, never errors: an
//! error here would stop Raft.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{EventType, Object, Pod};
use bosun_proto::internal::{command::Op, command_result, rejection, Command, CommandResult, DeleteOp, Rejection};
use bosun_proto::net::Cidr;
use bosun_proto::resources::{self, Usage};
use bosun_proto::Kind;

/// Namespaces that always exist and may not be deleted.
pub const BUILT_IN_NAMESPACES: [&str; 2] = ["default", "bosun-system"];

/// One change to one object, as watchers see it.
#[derive(Debug, Clone)]
pub struct Change {
    pub event_type: EventType,
    pub object: Arc<Object>,
    /// The object before this command (`None` when it was created).
    pub previous: Option<Arc<Object>>,
}

/// The result of applying one command: what the client is told, and what
/// changed.
#[derive(Debug, Default)]
pub struct Applied {
    pub result: CommandResult,
    pub changes: Vec<Change>,
}

/// What an update makes of a stored object.
enum Next {
    /// Nothing would change: the stored object.
    Unchanged(Arc<Object>),
    /// Its last finalizer went while it was being deleted: it goes.
    Finalized(Arc<Object>),
    Changed(Arc<Object>),
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped kinds.
type Key = (String, String);

/// The objects one command touched, as they were before it.
type Journal = HashMap<(Kind, Key), Option<Arc<Object>>>;

/// All objects, one ordered map per kind.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    by_kind: [BTreeMap<Key, Arc<Object>>; Kind::ALL.len()],
    /// What the pods bound to each node request (running or pending, not
    /// finished), kept in step with every pod change; the bind check reads
    /// it.
    allocated: HashMap<String, Usage>,
    /// Who controls what, kept in step with every change: the controllers
    /// read a controller's objects without scanning its namespace.
    control: Control,
    /// While a command applies: each object it touched, as it was before.
    journal: Option<Journal>,
}

/// The objects naming each uid as their controller (an owner reference
/// with `controller: true`), and the pods and ReplicaSets naming none,
/// which a controller may adopt.
#[derive(Debug, Default, Clone)]
struct Control {
    by_controller: HashMap<String, BTreeSet<(Kind, Key)>>,
    uncontrolled: BTreeSet<(Kind, Key)>,
}

/// Kinds whose objects without a controller are indexed, for adoption.
const ADOPTABLE: [Kind; 2] = [Kind::Pod, Kind::ReplicaSet];

impl Control {
    fn update(&mut self, kind: Kind, key: &Key, old: Option<&Object>, new: Option<&Object>) {
        fn controller(object: &Object) -> Option<&str> {
            object
                .metadata()
                .and_then(bosun_proto::workload::controller_of)
                .map(|r| r.uid.as_str())
        }
        let (before, after) = (old.map(controller), new.map(controller));
        if before == after {
            // Most changes (statuses, bindings) leave the controller alone.
            return;
        }
        match before {
            Some(Some(uid)) => {
                if let Some(set) = self.by_controller.get_mut(uid) {
                    set.remove(&(kind, key.clone()));
                    if set.is_empty() {
                        self.by_controller.remove(uid);
                    }
                }
            }
            Some(None) => {
                self.uncontrolled.remove(&(kind, key.clone()));
            }
            None => {}
        }
        match after {
            Some(Some(uid)) => {
                self.by_controller
                    .entry(uid.to_string())
                    .or_default()
                    .insert((kind, key.clone()));
            }
            Some(None) if ADOPTABLE.contains(&kind) => {
                self.uncontrolled.insert((kind, key.clone()));
            }
            _ => {}
        }
    }
}

impl Objects {
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Arc<Object>> {
        self.by_kind[kind.index()].get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of `kind`, in one namespace or (with `None`) in all, ordered
    /// by namespace and name.
    pub fn list<'a>(&'a self, kind: Kind, namespace: Option<&str>) -> Box<dyn Iterator<Item = &'a Arc<Object>> + 'a> {
        let map = &self.by_kind[kind.index()];
        match namespace {
            None => Box::new(map.values()),
            Some(ns) => {
                let start = (ns.to_string(), String::new());
                // Namespaces never contain '\0', so this bounds exactly `ns`.
                let end = (format!("{ns}\0"), String::new());
                Box::new(
                    map.range((Bound::Included(start), Bound::Excluded(end)))
                        .map(|(_, v)| v),
                )
            }
        }
    }

    /// The objects of `kind` whose controller is the object with `uid`.
    pub fn controlled_by<'a>(&'a self, uid: &str, kind: Kind) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        self.control
            .by_controller
            .get(uid)
            .into_iter()
            .flatten()
            .filter(move |(k, _)| *k == kind)
            .filter_map(move |(k, key)| self.by_kind[k.index()].get(key))
    }

    /// The pods or ReplicaSets of `namespace` that have no controller.
    pub fn uncontrolled<'a>(&'a self, kind: Kind, namespace: &str) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        let start = (kind, (namespace.to_string(), String::new()));
        // Namespaces never contain '\0', so this bounds exactly `namespace`.
        let end = (kind, (format!("{namespace}\0"), String::new()));
        self.control
            .uncontrolled
            .range((Bound::Included(start), Bound::Excluded(end)))
            .filter_map(move |(k, key)| self.by_kind[k.index()].get(key))
    }

    /// A store holding `objects`, each created by its own command in turn,
    /// for tests.
    #[cfg(test)]
    pub fn of(objects: impl IntoIterator<Item = Object>) -> Objects {
        let mut store = Objects::default();
        for (index, object) in objects.into_iter().enumerate() {
            let command = Command {
                op: Some(Op::Create(bosun_proto::internal::CreateOp { object: Some(object) })),
                ..Default::default()
            };
            store.apply(index as u64 + 1, &command);
        }
        store
    }

    /// Every object of every kind.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.by_kind.iter().flat_map(|m| m.values())
    }

    pub fn len(&self) -> usize {
        self.by_kind.iter().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts (or replaces) an object.
    pub fn insert(&mut self, object: Arc<Object>) {
        if let Some(kind) = object.kind() {
            let key = (object.namespace().to_string(), object.name().to_string());
            let old = self.by_kind[kind.index()].insert(key.clone(), object.clone());
            self.note_previous(kind, &key, old.as_ref());
            if kind == Kind::Pod {
                self.account(old.as_deref(), Some(&object));
            }
            self.control.update(kind, &key, old.as_deref(), Some(&object));
        }
    }

    pub(super) fn remove(&mut self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Object>> {
        let key = (namespace.to_string(), name.to_string());
        let old = self.by_kind[kind.index()].remove(&key);
        self.note_previous(kind, &key, old.as_ref());
        if kind == Kind::Pod {
            self.account(old.as_deref(), None);
        }
        self.control.update(kind, &key, old.as_deref(), None);
        old
    }

    /// What the pods bound to `node` request.
    pub fn allocated(&self, node: &str) -> Usage {
        self.allocated.get(node).copied().unwrap_or_default()
    }

    /// Moves a pod's requests from its old node to its new one.
    fn account(&mut self, old: Option<&Object>, new: Option<&Object>) {
        if let Some((node, usage)) = old.and_then(holding) {
            let entry = self.allocated.entry(node).or_default();
            *entry -= usage;
        }
        if let Some((node, usage)) = new.and_then(holding) {
            *self.allocated.entry(node).or_default() += usage;
        }
    }

    /// Whether objects may be created in `namespace`: a built-in one, or
    /// one that exists and is not being deleted.
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        BUILT_IN_NAMESPACES.contains(&namespace)
            || self
                .get(Kind::Namespace, "", namespace)
                .is_some_and(|ns| ns.metadata().is_some_and(|m| m.deletion_timestamp.is_none()))
    }

    /// Why `object`, a node, cannot have its pod range: another node's
    /// overlaps it. Checked where the write is applied, so two nodes never
    /// share addresses, whoever chose their ranges.
    fn pod_cidr_taken(&self, object: &Object) -> Option<String> {
        let Some(Resource::Node(node)) = object.resource.as_ref() else {
            return None;
        };
        let wanted: Cidr = node.spec.as_ref()?.pod_cidr.parse().ok()?;
        self.list(Kind::Node, None).find_map(|other| {
            let Some(Resource::Node(other)) = other.resource.as_ref() else {
                return None;
            };
            let other_name = other.metadata.as_ref().map_or("", |m| m.name.as_str());
            if other_name == object.name() {
                return None;
            }
            let theirs: Cidr = other.spec.as_ref()?.pod_cidr.parse().ok()?;
            wanted
                .overlaps(&theirs)
                .then(|| format!("spec.podCIDR {wanted} overlaps node {other_name:?}'s pod range {theirs}"))
        })
    }

    /// Remembers how the object at `key` was before the command applying.
    fn note_previous(&mut self, kind: Kind, key: &Key, old: Option<&Arc<Object>>) {
        if let Some(journal) = self.journal.as_mut() {
            journal.entry((kind, key.clone())).or_insert_with(|| old.cloned());
        }
    }

    /// Applies a committed command at `revision` (its log index); each
    /// change carries the object's state before the command.
    pub fn apply(&mut self, revision: u64, command: &Command) -> Applied {
        self.journal = Some(Journal::new());
        let mut applied = self.apply_command(revision, command);
        let journal = self.journal.take().unwrap_or_default();
        for change in &mut applied.changes {
            if let Some(kind) = change.object.kind() {
                let key = (change.object.namespace().to_string(), change.object.name().to_string());
                change.previous = journal.get(&(kind, key)).cloned().flatten();
            }
        }
        applied
    }

    fn apply_command(&mut self, revision: u64, command: &Command) -> Applied {
        let time = command.time;
        match &command.op {
            Some(Op::Create(op)) => self.create(revision, op.object.as_ref()),
            Some(Op::Update(op)) => self.update(revision, op.object.as_ref(), false),
            Some(Op::UpdateStatus(op)) => self.update(revision, op.object.as_ref(), true),
            Some(Op::Delete(op)) => match bosun_proto::Kind::parse(&op.kind) {
                Ok(kind) => self.delete(revision, kind, op, time),
                Err(e) => rejected(rejection::Code::Invalid, e.to_string()),
            },
            Some(Op::Bind(op)) => self.bind(revision, op),
            Some(Op::Batch(batch)) => {
                let mut applied = Applied::default();
                for command in &batch.commands {
                    let one = self.apply_command(revision, command);
                    applied.result.batch.push(one.result);
                    applied.changes.extend(one.changes);
                }
                applied
            }
            None => rejected(rejection::Code::Invalid, "empty command".to_string()),
        }
    }

    pub(super) fn create(&mut self, revision: u64, object: Option<&Object>) -> Applied {
        match self.to_create(revision, object) {
            Ok(object) => {
                self.insert(object.clone());
                changed(object, EventType::Added)
            }
            Err(refused) => refused,
        }
    }

    /// The object a create would store, or its refusal.
    fn to_create(&self, revision: u64, object: Option<&Object>) -> Result<Arc<Object>, Applied> {
        let Some((kind, mut object)) = object.and_then(|o| Some((o.kind()?, o.clone()))) else {
            return Err(rejected(
                rejection::Code::Invalid,
                "create of an empty object".to_string(),
            ));
        };
        let (namespace, name) = (object.namespace().to_string(), object.name().to_string());
        if kind.namespaced() && !self.namespace_exists(&namespace) {
            return Err(rejected(
                rejection::Code::NotFound,
                format!("namespace {namespace:?} not found: create the Namespace first"),
            ));
        }
        if self.get(kind, &namespace, &name).is_some() {
            return Err(rejected(
                rejection::Code::AlreadyExists,
                format!("{} already exists", describe(kind, &namespace, &name)),
            ));
        }
        if let Some(conflict) = self.pod_cidr_taken(&object) {
            return Err(rejected(rejection::Code::Conflict, conflict));
        }
        if let Some(meta) = object.metadata_mut() {
            meta.resource_version = revision;
        }
        Ok(Arc::new(object))
    }

    /// What a create or an update would result in, without changing
    /// anything: a server-side dry run, checked against the current
    /// objects exactly as the write would be. Other commands are refused.
    pub fn dry_run(&self, revision: u64, command: &Command) -> CommandResult {
        let outcome = match &command.op {
            Some(Op::Create(op)) => self.to_create(revision, op.object.as_ref()),
            Some(Op::Update(op)) => self
                .to_update(revision, op.object.as_ref(), false)
                .map(|next| match next {
                    Next::Unchanged(object) | Next::Finalized(object) | Next::Changed(object) => object,
                }),
            _ => Err(rejected(
                rejection::Code::Invalid,
                "only creates and updates can be dry runs".to_string(),
            )),
        };
        match outcome {
            Ok(object) => object_result(object, false),
            Err(refused) => refused.result,
        }
    }

    fn update(&mut self, revision: u64, object: Option<&Object>, status_only: bool) -> Applied {
        match self.to_update(revision, object, status_only) {
            // A no-op update changes nothing and wakes no watcher.
            Ok(Next::Unchanged(current)) => Applied {
                result: object_result(current, false),
                changes: vec![],
            },
            Ok(Next::Finalized(next)) => {
                self.remove(
                    next.kind().expect("stored objects have a kind"),
                    next.namespace(),
                    next.name(),
                );
                let mut applied = changed(next, EventType::Deleted);
                applied.result.deleted = true;
                applied
            }
            Ok(Next::Changed(next)) => {
                self.insert(next.clone());
                changed(next, EventType::Modified)
            }
            Err(refused) => refused,
        }
    }

    /// What an update would make of the stored object, or its refusal.
    fn to_update(&self, revision: u64, object: Option<&Object>, status_only: bool) -> Result<Next, Applied> {
        let Some((kind, incoming)) = object.and_then(|o| Some((o.kind()?, o))) else {
            return Err(rejected(
                rejection::Code::Invalid,
                "update of an empty object".to_string(),
            ));
        };
        let (namespace, name) = (incoming.namespace(), incoming.name());
        let Some(current) = self.get(kind, namespace, name).cloned() else {
            return Err(rejected(
                rejection::Code::NotFound,
                format!("{} not found", describe(kind, namespace, name)),
            ));
        };
        if let Some(rejection) = precondition(kind, &current, incoming.resource_version()) {
            return Err(rejection);
        }
        let current_meta = current.metadata().cloned().unwrap_or_default();
        let incoming_uid = incoming.metadata().map_or("", |m| m.uid.as_str());
        if !incoming_uid.is_empty() && incoming_uid != current_meta.uid {
            return Err(rejected(
                rejection::Code::Conflict,
                format!(
                    "{} was deleted and created again (uid {} is now {}); get it again and retry",
                    describe(kind, namespace, name),
                    incoming_uid,
                    current_meta.uid
                ),
            ));
        }
        let next = if status_only {
            let mut next = (*current).clone();
            next.copy_status_from(incoming);
            next
        } else {
            let mut next = incoming.clone();
            next.copy_status_from(&current);
            let meta = next.metadata_mut().expect("object has a resource");
            meta.uid = current_meta.uid.clone();
            meta.creation_timestamp = current_meta.creation_timestamp;
            meta.deletion_timestamp = current_meta.deletion_timestamp;
            meta.deletion_grace_period_seconds = current_meta.deletion_grace_period_seconds;
            meta.generate_name = current_meta.generate_name.clone();
            meta.generation = current_meta.generation;
            let checked = match (next.resource.as_mut(), current.resource.as_ref()) {
                (Some(Resource::Pod(next)), Some(Resource::Pod(current))) => pod_spec_update(current, next),
                (Some(Resource::Node(next)), Some(Resource::Node(current))) => node_spec_update(current, next),
                _ => Ok(()),
            };
            if let Err(reason) = checked {
                return Err(rejected(
                    rejection::Code::Invalid,
                    format!("{} cannot be updated: {reason}", describe(kind, namespace, name)),
                ));
            }
            if pod_cidr_of(&next) != pod_cidr_of(&current) {
                if let Some(conflict) = self.pod_cidr_taken(&next) {
                    return Err(rejected(rejection::Code::Conflict, conflict));
                }
            }
            if !next.same_spec(&current) {
                next.metadata_mut().expect("object has a resource").generation += 1;
            }
            next
        };
        let mut next = next;
        let meta = next.metadata_mut().expect("object has a resource");
        meta.resource_version = current_meta.resource_version;
        if next == *current {
            return Ok(Next::Unchanged(current));
        }
        let meta = next.metadata_mut().expect("object has a resource");
        meta.resource_version = revision;
        let finalized = meta.deletion_timestamp.is_some() && meta.finalizers.is_empty();
        let next = Arc::new(next);
        Ok(if finalized {
            Next::Finalized(next)
        } else {
            Next::Changed(next)
        })
    }

    fn delete(&mut self, revision: u64, kind: Kind, op: &DeleteOp, time: Option<prost_types::Timestamp>) -> Applied {
        let (namespace, name, expected) = (op.namespace.as_str(), op.name.as_str(), op.resource_version);
        let Some(current) = self.get(kind, namespace, name).cloned() else {
            return rejected(
                rejection::Code::NotFound,
                format!("{} not found", describe(kind, namespace, name)),
            );
        };
        if let Some(rejection) = expected.and_then(|rv| precondition(kind, &current, rv)) {
            return rejection;
        }
        if kind == Kind::Namespace && BUILT_IN_NAMESPACES.contains(&name) {
            return rejected(
                rejection::Code::Forbidden,
                format!("namespace {name:?} is built in and may not be deleted"),
            );
        }
        if let Some(grace) = graceful_pod_deletion(&current, op.grace_period_seconds) {
            return self.mark_pod_terminating(revision, current, grace, time);
        }
        let policy = Propagation::parse(&op.propagation_policy);
        let uid = current.metadata().map(|m| m.uid.clone()).unwrap_or_default();
        let mut last = (*current).clone();
        let meta = last.metadata_mut().expect("stored objects have metadata");
        meta.resource_version = revision;
        if policy == Propagation::Foreground
            && !meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
            && self.has_dependents(kind, namespace, &uid)
        {
            // The garbage collector deletes the dependents, then removes
            // the finalizer, which removes the object.
            meta.finalizers.push(FOREGROUND_FINALIZER.to_string());
        }
        if kind == Kind::Pod && op.grace_period_seconds == Some(0) {
            // Tells the pod's agent, through the DELETED event, to kill the
            // containers at once rather than with the pod's grace period.
            meta.deletion_grace_period_seconds = Some(0);
            meta.deletion_timestamp = meta.deletion_timestamp.or(time);
        }
        if !meta.finalizers.is_empty() {
            if meta.deletion_timestamp.is_some() {
                return Applied {
                    result: object_result(current, false),
                    changes: vec![],
                };
            }
            meta.deletion_timestamp = time;
            let last = Arc::new(last);
            self.insert(last.clone());
            return changed(last, EventType::Modified);
        }
        let mut changes = Vec::new();
        if kind == Kind::Namespace {
            changes.extend(self.delete_namespace_contents(revision, name));
        }
        if policy == Propagation::Orphan {
            changes.extend(self.orphan_dependents(revision, kind, namespace, &uid));
        }
        self.remove(kind, namespace, name);
        let last = Arc::new(last);
        changes.push(Change {
            event_type: EventType::Deleted,
            object: last.clone(),
            previous: None,
        });
        let mut result = object_result(last, false);
        result.deleted = true;
        Applied { result, changes }
    }

    /// Marks a pod bound to a node as terminating: its agent stops the
    /// containers within `grace` seconds, then deletes the object with a
    /// grace of 0. A later deletion may shorten the grace, never lengthen it.
    fn mark_pod_terminating(
        &mut self,
        revision: u64,
        current: Arc<Object>,
        grace: i64,
        time: Option<prost_types::Timestamp>,
    ) -> Applied {
        let meta = current.metadata().cloned().unwrap_or_default();
        if meta.deletion_timestamp.is_some() && meta.deletion_grace_period_seconds.is_some_and(|g| g <= grace) {
            return Applied {
                result: object_result(current, false),
                changes: vec![],
            };
        }
        let mut next = (*current).clone();
        let meta = next.metadata_mut().expect("stored objects have metadata");
        meta.resource_version = revision;
        meta.deletion_grace_period_seconds = Some(grace);
        if meta.deletion_timestamp.is_none() {
            meta.deletion_timestamp = time;
        }
        let next = Arc::new(next);
        self.insert(next.clone());
        changed(next, EventType::Modified)
    }

    /// Removes every namespaced object in `namespace`.
    fn delete_namespace_contents(&mut self, revision: u64, namespace: &str) -> Vec<Change> {
        let mut changes = Vec::new();
        for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
            let names: Vec<String> = self.list(kind, Some(namespace)).map(|o| o.name().to_string()).collect();
            for name in names {
                if let Some(object) = self.remove(kind, namespace, &name) {
                    let mut last = (*object).clone();
                    if let Some(meta) = last.metadata_mut() {
                        meta.resource_version = revision;
                    }
                    changes.push(Change {
                        event_type: EventType::Deleted,
                        object: Arc::new(last),
                        previous: None,
                    });
                }
            }
        }
        changes
    }
}

/// Kubernetes' rule for updating a pod: its spec is fixed once created,
/// except the containers' images and added tolerations. The bound node is
/// kept when the update leaves `nodeName` empty (an applied manifest
/// usually does) and cannot be changed: only a binding sets it, after the
/// fit check.
/// A node's pod range, empty for other kinds.
fn pod_cidr_of(object: &Object) -> &str {
    match object.resource.as_ref() {
        Some(Resource::Node(node)) => node.spec.as_ref().map_or("", |s| s.pod_cidr.as_str()),
        _ => "",
    }
}

/// A node's pod range is set once: an update that leaves it out keeps it,
/// one that changes it is refused.
fn node_spec_update(current: &bosun_proto::api::Node, next: &mut bosun_proto::api::Node) -> Result<(), String> {
    let current_spec = current.spec.clone().unwrap_or_default();
    let next_spec = next.spec.get_or_insert_with(Default::default);
    if current_spec.pod_cidr.is_empty() {
        return Ok(());
    }
    if next_spec.pod_cidr.is_empty() {
        next_spec.pod_cidr.clone_from(&current_spec.pod_cidr);
        next_spec.pod_cidrs.clone_from(&current_spec.pod_cidrs);
    }
    if next_spec.pod_cidr != current_spec.pod_cidr {
        return Err(format!(
            "spec.podCIDR is {} and cannot be changed (delete the node and let it register again)",
            current_spec.pod_cidr
        ));
    }
    Ok(())
}

fn pod_spec_update(current: &Pod, next: &mut Pod) -> Result<(), String> {
    let current_spec = current.spec.clone().unwrap_or_default();
    let next_spec = next.spec.get_or_insert_with(Default::default);
    if next_spec.node_name.is_empty() {
        next_spec.node_name.clone_from(&current_spec.node_name);
    }
    if next_spec.node_name != current_spec.node_name {
        return Err(format!(
            "spec.nodeName is {:?} and cannot be changed (delete the pod and create it again)",
            current_spec.node_name
        ));
    }
    if let Some(removed) = current_spec
        .tolerations
        .iter()
        .find(|t| !next_spec.tolerations.contains(t))
    {
        return Err(format!(
            "tolerations can only be added, and the one for key {:?} was removed or changed",
            removed.key
        ));
    }
    let mut comparable = next_spec.clone();
    comparable.tolerations.clone_from(&current_spec.tolerations);
    if comparable.containers.len() == current_spec.containers.len() {
        for (container, before) in comparable.containers.iter_mut().zip(&current_spec.containers) {
            container.image.clone_from(&before.image);
        }
    }
    if comparable != current_spec {
        return Err(
            "a pod's spec may not change except spec.containers[*].image and added spec.tolerations (delete the pod and create it again, or use a Deployment)"
                .to_string(),
        );
    }
    Ok(())
}

/// The grace period to stop a pod with, when deleting `object` means
/// stopping a pod on a node first rather than removing the object at once.
fn graceful_pod_deletion(object: &Object, requested: Option<i64>) -> Option<i64> {
    let bosun_proto::api::object::Resource::Pod(pod) = object.resource.as_ref()? else {
        return None;
    };
    let spec = pod.spec.as_ref()?;
    if spec.node_name.is_empty() {
        return None;
    }
    let grace = requested.unwrap_or(spec.termination_grace_period_seconds.unwrap_or(30));
    (grace > 0).then_some(grace)
}

/// The node a pod holds resources on and how much, for bound pods that
/// have not finished.
fn holding(object: &Object) -> Option<(String, Usage)> {
    let bosun_proto::api::object::Resource::Pod(pod) = object.resource.as_ref()? else {
        return None;
    };
    let spec = pod.spec.as_ref()?;
    if spec.node_name.is_empty() || resources::is_terminal(pod) {
        return None;
    }
    Some((spec.node_name.clone(), resources::pod_requests(spec)))
}

/// Checks a resourceVersion precondition; 0 means "no precondition".
fn precondition(kind: Kind, current: &Object, expected: u64) -> Option<Applied> {
    let actual = current.resource_version();
    (expected != 0 && expected != actual).then(|| {
        rejected(
            rejection::Code::Conflict,
            format!(
                "{} has been modified: you sent resourceVersion {expected} but it is now {actual}; get it again and retry",
                describe(kind, current.namespace(), current.name())
            ),
        )
    })
}

/// `configmaps "web" in namespace "shop"`, as kubectl words it.
pub fn describe(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.namespaced() {
        format!("{} {name:?} in namespace {namespace:?}", kind.plural())
    } else {
        format!("{} {name:?}", kind.plural())
    }
}

pub(super) fn rejected(code: rejection::Code, message: String) -> Applied {
    Applied {
        result: CommandResult {
            result: Some(command_result::Result::Rejected(Rejection {
                code: code as i32,
                message,
            })),
            ..CommandResult::default()
        },
        changes: vec![],
    }
}

pub(super) fn object_result(object: Arc<Object>, deleted: bool) -> CommandResult {
    CommandResult {
        result: Some(command_result::Result::Object(Arc::unwrap_or_clone(object))),
        deleted,
        ..CommandResult::default()
    }
}

pub(super) fn changed(object: Arc<Object>, event_type: EventType) -> Applied {
    Applied {
        result: object_result(object.clone(), false),
        changes: vec![Change {
            event_type,
            object,
            previous: None,
        }],
    }
}

mod cascade;
#[cfg(test)]
mod tests;

pub use cascade::{Propagation, FOREGROUND_FINALIZER};
