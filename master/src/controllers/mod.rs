//! The controllers, on the leader only: [`replicaset`], [`deployment`]
//! and the garbage collector [`gc`], behind one contract (STYLE.md §7):
//! a reconcile reads the current state of one key and returns a [`Plan`],
//! never assuming which change woke it; the runtime here applies plans
//! through Raft.
//!
//! The runtime follows the store's change history. Each change names the
//! keys it may concern (a pod names its ReplicaSet and that one's
//! Deployment; a deleted object names what it owned), and a key is queued
//! once however many changes name it. A round takes the queued keys,
//! plans each against one snapshot of the store, then proposes every
//! action of the round together (the proposer packs them into few Raft
//! entries) and waits for them: the next round's snapshot holds this
//! round's writes, so no controller acts twice on stale state, and no key
//! runs twice at once. Writes carry the resourceVersion they were planned
//! from; a conflict just requeues the key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{EventType, Object, ObjectMeta};
use bosun_proto::internal::{command, command_result, Command, CreateOp, DeleteOp, UpdateOp};
use bosun_proto::selector::Selector;
use bosun_proto::Kind;
use futures::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::{now_seconds, prepare, stamp_new};
use crate::replica::Replica;
use crate::store::{Objects, FOREGROUND_FINALIZER};

pub mod deployment;
pub mod gc;
pub mod ownership;
pub mod pods;
pub mod replicaset;
pub mod rollout;
pub mod template;

/// Most keys reconciled in one round.
const ROUND: usize = 256;
/// Changes read from the history at a time.
const HISTORY_BATCH: usize = 4096;
/// First and longest wait before retrying a key whose writes failed.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// `(kind, namespace, name)` of one object.
pub type ObjectKey = (Kind, String, String);

/// One change a reconcile wants made.
#[derive(Debug, Clone)]
pub enum Action {
    /// A new object; its name (from generateName) and uid are chosen when
    /// it is proposed.
    Create(Object),
    /// The object as it should be, at the resourceVersion it was read at.
    Update(Object),
    UpdateStatus(Object),
    /// Deletes with the object's own grace period, in the background.
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
    },
    /// An Event to record.
    Event(Object),
}

impl Action {
    /// Deletes the object at `key`.
    pub fn delete((kind, namespace, name): &ObjectKey) -> Action {
        Action::Delete {
            kind: *kind,
            namespace: namespace.clone(),
            name: name.clone(),
        }
    }

    /// Deletes the object of `kind` that `meta` describes.
    pub fn delete_named(kind: Kind, meta: Option<&ObjectMeta>) -> Action {
        let meta = meta.cloned().unwrap_or_default();
        Action::delete(&(kind, meta.namespace, meta.name))
    }

    /// The name of the object this action writes, for updates.
    fn updated_name(&self) -> Option<&str> {
        match self {
            Action::Update(o) | Action::UpdateStatus(o) => Some(o.name()),
            _ => None,
        }
    }
}

/// What one reconcile decided: actions, and when to look again even if
/// nothing changes (a pod about to have been ready long enough, a progress
/// deadline).
#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue: Option<Duration>,
}

impl Plan {
    /// Whether the plan already writes the object named `name`.
    pub fn touches(&self, name: &str) -> bool {
        self.actions.iter().any(|a| a.updated_name() == Some(name))
    }
}

/// What a controller is asked to look at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    ReplicaSet(String, String),
    Deployment(String, String),
    /// The garbage collector, about one object.
    Collect(ObjectKey),
}

/// Runs the controllers until `token` is cancelled (leadership lost).
pub async fn run(replica: Arc<Replica>, token: CancellationToken) {
    // A new leader may not have applied every committed entry yet: acting
    // on such a state could create pods twice.
    loop {
        tokio::select! {
            result = replica.read_barrier() => if result.is_ok() { break },
            () = token.cancelled() => return,
        }
    }
    let mut revisions = replica.store.subscribe();
    let mut runtime = Runtime::default();
    let mut revision = runtime.resync(&replica.store.read().objects, replica.store.read().revision());
    tracing::info!(keys = runtime.queue.len(), "controllers started");
    loop {
        revisions.borrow_and_update();
        if !runtime.absorb(&replica, &mut revision) {
            let state = replica.store.read();
            revision = runtime.resync(&state.objects, state.revision());
        }
        runtime.promote(Instant::now());
        let keys = runtime.take(ROUND);
        if keys.is_empty() {
            let wake = runtime.next_timer();
            tokio::select! {
                changed = revisions.changed() => if changed.is_err() { return },
                () = async {
                    match wake {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                () = token.cancelled() => return,
            }
            continue;
        }
        let plans = {
            let state = replica.store.read();
            let now = SystemTime::now();
            keys.into_iter()
                .map(|key| {
                    let plan = runtime.plan(&key, &state.objects, now);
                    (key, plan)
                })
                .collect::<Vec<_>>()
        };
        let outcomes = join_all(plans.iter().map(|(_, plan)| execute(&replica, &plan.actions))).await;
        let now = Instant::now();
        for ((key, plan), ok) in plans.into_iter().zip(outcomes) {
            runtime.finished(key, ok, plan.requeue, now);
        }
        if token.is_cancelled() {
            return;
        }
    }
}

/// The runtime's memory: queued keys, timers, back-offs, and who owns
/// what (for the garbage collector).
#[derive(Default)]
struct Runtime {
    queue: VecDeque<Key>,
    queued: HashSet<Key>,
    timers: HashMap<Key, Instant>,
    backoff: HashMap<Key, Duration>,
    /// Owner uid → the objects naming it in their ownerReferences.
    dependents: HashMap<String, HashSet<ObjectKey>>,
    /// Object → the owner uids it names (to keep `dependents` in step).
    owners: HashMap<ObjectKey, Vec<String>>,
}

impl Runtime {
    fn add(&mut self, key: Key) {
        if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    fn add_after(&mut self, key: Key, after: Duration, now: Instant) {
        let at = now + after;
        let entry = self.timers.entry(key).or_insert(at);
        *entry = (*entry).min(at);
    }

    fn promote(&mut self, now: Instant) {
        let due: Vec<Key> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.timers.remove(&key);
            self.add(key);
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    fn take(&mut self, limit: usize) -> Vec<Key> {
        let count = self.queue.len().min(limit);
        let keys: Vec<Key> = self.queue.drain(..count).collect();
        for key in &keys {
            self.queued.remove(key);
        }
        keys
    }

    fn finished(&mut self, key: Key, ok: bool, requeue: Option<Duration>, now: Instant) {
        if ok {
            self.backoff.remove(&key);
            if let Some(after) = requeue {
                self.add_after(key, after, now);
            }
        } else {
            let delay = self.backoff.get(&key).map_or(RETRY_FIRST, |d| (*d * 2).min(RETRY_MAX));
            self.backoff.insert(key.clone(), delay);
            self.add_after(key, requeue.map_or(delay, |r| r.min(delay)), now);
        }
    }

    /// Forgets everything and queues every key there is (start, or the
    /// history no longer reaches back far enough).
    fn resync(&mut self, objects: &Objects, revision: u64) -> u64 {
        *self = Runtime::default();
        for object in objects.all() {
            let Some((kind, meta)) = object.kind().zip(object.metadata()) else {
                continue;
            };
            let key: ObjectKey = (kind, meta.namespace.clone(), meta.name.clone());
            self.index(&key, meta);
            match kind {
                Kind::ReplicaSet => self.add(Key::ReplicaSet(key.1.clone(), key.2.clone())),
                Kind::Deployment => self.add(Key::Deployment(key.1.clone(), key.2.clone())),
                _ => {}
            }
            if !meta.owner_references.is_empty() || meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                self.add(Key::Collect(key));
            }
        }
        revision
    }

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

    /// Queues the keys the changes since `revision` concern. False when
    /// they are no longer in the history (resync).
    fn absorb(&mut self, replica: &Replica, revision: &mut u64) -> bool {
        loop {
            let (events, seen) = match replica.store.history().since(*revision, HISTORY_BATCH) {
                Ok(batch) => batch,
                Err(_) => return false,
            };
            // Changes whose keys need the store to name (a pod's
            // Deployment; the ReplicaSets that may adopt an orphan).
            let mut owners_of_sets: HashSet<(String, String)> = HashSet::new();
            let mut orphans: Vec<Arc<Object>> = Vec::new();
            for event in &events {
                self.note(
                    &event.object,
                    event.event_type == EventType::Deleted,
                    &mut owners_of_sets,
                    &mut orphans,
                );
            }
            if !owners_of_sets.is_empty() || !orphans.is_empty() {
                let state = replica.store.read();
                self.follow_up(&state.objects, owners_of_sets, &orphans);
            }
            *revision = seen;
            if events.len() < HISTORY_BATCH {
                return true;
            }
        }
    }

    fn note(
        &mut self,
        object: &Arc<Object>,
        deleted: bool,
        owners_of_sets: &mut HashSet<(String, String)>,
        orphans: &mut Vec<Arc<Object>>,
    ) {
        let Some((kind, meta)) = object.kind().zip(object.metadata()) else {
            return;
        };
        let key: ObjectKey = (kind, meta.namespace.clone(), meta.name.clone());
        let named_owners = !meta.owner_references.is_empty();
        let was_indexed = self.owners.contains_key(&key);
        if deleted {
            self.unindex(&key);
            let dependents: Vec<ObjectKey> = self.dependents.get(&meta.uid).into_iter().flatten().cloned().collect();
            for dependent in dependents {
                self.add(Key::Collect(dependent));
            }
            // An owner deleted in the foreground waits for this one.
            for reference in &meta.owner_references {
                if let Ok(owner_kind) = Kind::parse(&reference.kind) {
                    let namespace = if owner_kind.namespaced() {
                        meta.namespace.clone()
                    } else {
                        String::new()
                    };
                    self.add(Key::Collect((owner_kind, namespace, reference.name.clone())));
                }
            }
        } else {
            self.index(&key, meta);
            if named_owners && !was_indexed {
                // New, or newly owned: its owners may be gone already.
                self.add(Key::Collect(key.clone()));
            }
            if meta.deletion_timestamp.is_some() && meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                self.add(Key::Collect(key.clone()));
            }
        }
        let controller = ownership::controller_of(meta);
        match kind {
            Kind::Deployment => self.add(Key::Deployment(key.1, key.2)),
            Kind::ReplicaSet => {
                match controller {
                    Some(owner) if owner.kind == "Deployment" => {
                        self.add(Key::Deployment(key.1.clone(), owner.name.clone()));
                    }
                    Some(_) => {}
                    None if !deleted => orphans.push(object.clone()),
                    None => {}
                }
                self.add(Key::ReplicaSet(key.1, key.2));
            }
            Kind::Pod => match controller {
                Some(owner) if owner.kind == "ReplicaSet" => {
                    self.add(Key::ReplicaSet(key.1.clone(), owner.name.clone()));
                    owners_of_sets.insert((key.1, owner.name.clone()));
                }
                Some(_) => {}
                None if !deleted && meta.deletion_timestamp.is_none() => orphans.push(object.clone()),
                None => {}
            },
            _ => {}
        }
    }

    /// Queues the Deployments of ReplicaSets whose pods changed, and the
    /// controllers whose selector matches an orphan.
    fn follow_up(&mut self, objects: &Objects, owners_of_sets: HashSet<(String, String)>, orphans: &[Arc<Object>]) {
        for (namespace, name) in owners_of_sets {
            let owner = objects
                .get(Kind::ReplicaSet, &namespace, &name)
                .and_then(|rs| rs.metadata())
                .and_then(ownership::controller_of)
                .filter(|owner| owner.kind == "Deployment")
                .map(|owner| owner.name.clone());
            if let Some(owner) = owner {
                self.add(Key::Deployment(namespace, owner));
            }
        }
        for orphan in orphans {
            let controller_kind = match orphan.kind() {
                Some(Kind::Pod) => Kind::ReplicaSet,
                Some(Kind::ReplicaSet) => Kind::Deployment,
                _ => continue,
            };
            let labels = orphan.metadata().map(|m| &m.labels);
            for candidate in objects.list(controller_kind, Some(orphan.namespace())) {
                if labels.is_some_and(|l| selector_of(candidate).is_some_and(|s| s.matches(l))) {
                    let (namespace, name) = (candidate.namespace().to_string(), candidate.name().to_string());
                    self.add(match controller_kind {
                        Kind::ReplicaSet => Key::ReplicaSet(namespace, name),
                        _ => Key::Deployment(namespace, name),
                    });
                }
            }
        }
    }

    /// Reconciles one key against `objects`.
    fn plan(&self, key: &Key, objects: &Objects, now: SystemTime) -> Plan {
        match key {
            Key::ReplicaSet(namespace, name) => {
                let Some(Resource::ReplicaSet(rs)) = objects
                    .get(Kind::ReplicaSet, namespace, name)
                    .and_then(|o| o.resource.as_ref())
                else {
                    return Plan::default();
                };
                // The set's own pods and the ones it may adopt; pods of
                // other controllers would only be ignored.
                let uid = rs.metadata.as_ref().map_or("", |m| m.uid.as_str());
                let pods = objects
                    .controlled_by(uid, Kind::Pod)
                    .chain(objects.uncontrolled(Kind::Pod, namespace))
                    .filter_map(|o| pods::pod(o));
                replicaset::reconcile(rs, pods, now)
            }
            Key::Deployment(namespace, name) => {
                let Some(Resource::Deployment(d)) = objects
                    .get(Kind::Deployment, namespace, name)
                    .and_then(|o| o.resource.as_ref())
                else {
                    return Plan::default();
                };
                // Every set of the namespace (the names of others' sets
                // are taken), and the pods of those it owns or may adopt.
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
                deployment::reconcile(d, sets.into_iter(), &pods, now)
            }
            Key::Collect((kind, namespace, name)) => {
                let Some(object) = objects.get(*kind, namespace, name) else {
                    return Plan::default();
                };
                let uid = object.metadata().map_or("", |m| m.uid.as_str());
                let dependents: Vec<ObjectKey> = self.dependents.get(uid).into_iter().flatten().cloned().collect();
                gc::collect(&(*kind, namespace.clone(), name.clone()), object, objects, &dependents)
            }
        }
    }
}

fn selector_of(object: &Object) -> Option<Selector> {
    let selector = match object.resource.as_ref()? {
        Resource::ReplicaSet(rs) => rs.spec.as_ref()?.selector.as_ref()?,
        Resource::Deployment(d) => d.spec.as_ref()?.selector.as_ref()?,
        _ => return None,
    };
    Selector::from_message(selector).ok().filter(|s| !s.is_empty())
}

/// Proposes a plan's actions together; true when every one was applied.
async fn execute(replica: &Replica, actions: &[Action]) -> bool {
    let proposals = actions
        .iter()
        .filter_map(command_for)
        .map(|command| replica.propose(command));
    let results = join_all(proposals).await;
    let mut ok = true;
    for result in results {
        match result.map(|r| r.result) {
            Ok(Some(command_result::Result::Object(_))) => {}
            Ok(Some(command_result::Result::Rejected(rejection))) => {
                tracing::debug!(reason = %rejection.message, "controller write refused; will look again");
                ok = false;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "controller write not committed; will retry");
                ok = false;
            }
        }
    }
    ok
}

/// The command for an action; `None` (logged) for an object that does not
/// validate, which no retry would fix.
fn command_for(action: &Action) -> Option<Command> {
    let op = match action {
        Action::Create(object) => {
            let mut object = match prepare(Some(object.clone())) {
                Ok(object) => object,
                Err(status) => {
                    tracing::warn!(error = %status.message(), "controller cannot create an object");
                    return None;
                }
            };
            stamp_new(&mut object);
            command::Op::Create(CreateOp { object: Some(object) })
        }
        Action::Update(object) => command::Op::Update(UpdateOp {
            object: Some(object.clone()),
        }),
        Action::UpdateStatus(object) => command::Op::UpdateStatus(UpdateOp {
            object: Some(object.clone()),
        }),
        Action::Delete { kind, namespace, name } => command::Op::Delete(DeleteOp {
            kind: kind.name().to_string(),
            namespace: namespace.clone(),
            name: name.clone(),
            ..Default::default()
        }),
        Action::Event(event) => return crate::events::create_command(event.clone()),
    };
    Some(Command {
        time: Some(now_seconds()),
        op: Some(op),
    })
}
