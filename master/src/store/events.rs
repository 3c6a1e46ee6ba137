//! Event objects, kept by the leader in its memory instead of the Raft log.
//!
//! Events are the busiest kind (a pod's start records up to five) and
//! the least precious: Kubernetes gives them an etcd of their own and a
//! TTL, and calls them best effort. Replicated, they cost what a pod write
//! costs on every master (a third of the scheduling benchmark's
//! throughput); here they cost one map insert on the leader. Other masters
//! pass Event reads and writes on to the leader, so every client sees the
//! same events. When leadership moves, the new leader starts with none:
//! what the agents and controllers record from then on.
//!
//! The store keeps each event encoded (about 300 bytes, where a decoded
//! one takes 1.2 KiB), decoded when read: events are many and seldom read.
//! Writes apply through the replicated store's own rules (an [`Objects`]
//! holding the one event a command touches and its namespace), and watches follow a
//! [`Store`] like the replicated one (history and live watches; its
//! objects stay empty), with revisions of its own: each store starts
//! above every revision an earlier one gave out (at the time in
//! microseconds), and a watch carried over from another leader's store
//! finds its revision expired and lists again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{ListResponse, Object};
use bosun_proto::internal::command::Op;
use bosun_proto::internal::{Command, CommandResult};
use bosun_proto::Kind;
use prost::Message;

use super::{Filter, HistoryEvent, Objects, State, Store};

/// Every event, encoded, by `(namespace, name)`.
type Encoded = BTreeMap<(String, String), Box<[u8]>>;

/// One leader's events while it leads.
pub struct Open {
    /// History and watches; its objects stay empty.
    store: Arc<Store>,
    encoded: Mutex<Encoded>,
}

impl Open {
    /// What watches follow.
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    fn events(&self) -> MutexGuard<'_, Encoded> {
        self.encoded.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Object> {
        let events = self.events();
        let bytes = events.get(&(namespace.to_string(), name.to_string()))?;
        Object::decode(&bytes[..]).ok()
    }

    /// The events (in `namespace`, or all) that `filter` passes, with the
    /// store's revision.
    pub fn list(&self, namespace: Option<&str>, filter: &Filter) -> ListResponse {
        let events = self.events();
        let revision = self.store.read().revision();
        let items = self.scan_locked(&events, namespace, |object| filter.matches(&object).then_some(object));
        ListResponse { items, revision }
    }

    /// `f` of every event, each decoded in turn (never all at once).
    pub fn scan<T>(&self, f: impl FnMut(Object) -> Option<T>) -> Vec<T> {
        let events = self.events();
        self.scan_locked(&events, None, f)
    }

    fn scan_locked<T>(
        &self,
        events: &Encoded,
        namespace: Option<&str>,
        mut f: impl FnMut(Object) -> Option<T>,
    ) -> Vec<T> {
        match namespace {
            Some(ns) => events
                .range((ns.to_string(), String::new())..)
                .take_while(|((namespace, _), _)| namespace == ns)
                .filter_map(|(_, bytes)| Object::decode(&bytes[..]).ok())
                .filter_map(&mut f)
                .collect(),
            None => events
                .values()
                .filter_map(|bytes| Object::decode(&bytes[..]).ok())
                .filter_map(&mut f)
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.events().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The leader's events; empty and closed on other masters.
pub struct Events {
    history_capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: Option<Arc<Open>>,
    /// Above every revision given out so far.
    next_base: u64,
}

impl Events {
    pub fn new(history_capacity: usize) -> Events {
        Events {
            history_capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store, opened empty if it is closed.
    pub fn open(&self) -> Arc<Open> {
        let mut inner = self.lock();
        if let Some(open) = &inner.open {
            return open.clone();
        }
        let micros = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let base = micros.max(inner.next_base);
        let state = State {
            objects: Objects::default(),
            last_applied: Some(crate::raft::LogId::new(Default::default(), base)),
            membership: Default::default(),
        };
        let open = Arc::new(Open {
            store: Store::new(state, self.history_capacity),
            encoded: Mutex::new(BTreeMap::new()),
        });
        inner.open = Some(open.clone());
        open
    }

    /// Drops every event (leadership is gone, or is new): watches of the
    /// store end with their revision expired.
    pub fn close(&self) {
        let mut inner = self.lock();
        if let Some(open) = inner.open.take() {
            let store = &open.store;
            let last = store.read().revision() + 1;
            inner.next_base = inner.next_base.max(last + 1);
            store.reset_history(last);
        }
    }

    /// Applies an event command (see [`is_event_command`]) at the next
    /// revision; a batch's commands apply one after another, each at a
    /// revision of its own. Creates are refused in a namespace that
    /// `replicated` does not have.
    pub fn apply(&self, command: &Command, replicated: &Store) -> CommandResult {
        let open = self.open();
        // One writer at a time, so revisions are published in order.
        let _writer = self.lock();
        match &command.op {
            Some(Op::Batch(batch)) => CommandResult {
                batch: batch
                    .commands
                    .iter()
                    .map(|command| apply_one(&open, command, replicated))
                    .collect(),
                ..CommandResult::default()
            },
            _ => apply_one(&open, command, replicated),
        }
    }
}

/// The `(namespace, name)` of the event `command` writes.
fn key_of(command: &Command) -> (String, String) {
    let of = |object: Option<&Object>| object.map(|o| (o.namespace().to_string(), o.name().to_string()));
    match &command.op {
        Some(Op::Create(op)) => of(op.object.as_ref()),
        Some(Op::Update(op) | Op::UpdateStatus(op)) => of(op.object.as_ref()),
        Some(Op::Delete(op)) => Some((op.namespace.clone(), op.name.clone())),
        _ => None,
    }
    .unwrap_or_default()
}

/// Applies `command` by the replicated store's rules, to an [`Objects`]
/// holding only the event it touches and its namespace, and keeps the
/// outcome encoded.
fn apply_one(open: &Open, command: &Command, replicated: &Store) -> CommandResult {
    let key = key_of(command);
    let mut events = open.events();
    // The event's namespace too, so its checks are the replicated store's.
    let mut one = Objects::default();
    let namespace = replicated.read().objects.get(Kind::Namespace, "", &key.0).cloned();
    if let Some(namespace) = namespace {
        one.insert(namespace);
    }
    if let Some(stored) = events.get(&key).and_then(|bytes| Object::decode(&bytes[..]).ok()) {
        one.insert(Arc::new(stored));
    }
    let revision = {
        let mut state = open.store.write();
        let revision = state.revision() + 1;
        state.last_applied = Some(crate::raft::LogId::new(Default::default(), revision));
        revision
    };
    let applied = one.apply(revision, command);
    match one.get(Kind::Event, &key.0, &key.1) {
        Some(event) => {
            events.insert(key, event.encode_to_vec().into_boxed_slice());
        }
        None => {
            events.remove(&key);
        }
    }
    drop(events);
    let events = applied
        .changes
        .into_iter()
        .map(|change| HistoryEvent {
            revision,
            event_type: change.event_type,
            object: change.object,
            previous: change.previous,
        })
        .collect();
    open.store.publish(revision, events);
    applied.result
}

/// Whether `command` writes Events only: a create, update or delete of an
/// Event, or a batch of those. Such commands go to [`Events`], not Raft.
pub fn is_event_command(command: &Command) -> bool {
    let is_event = |object: Option<&bosun_proto::api::Object>| {
        matches!(object.and_then(|o| o.resource.as_ref()), Some(Resource::Event(_)))
    };
    match &command.op {
        Some(Op::Create(op)) => is_event(op.object.as_ref()),
        Some(Op::Update(op) | Op::UpdateStatus(op)) => is_event(op.object.as_ref()),
        Some(Op::Delete(op)) => Kind::parse(&op.kind).is_ok_and(|kind| kind == Kind::Event),
        Some(Op::Batch(batch)) => !batch.commands.is_empty() && batch.commands.iter().all(is_event_command),
        Some(Op::Bind(_)) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{EventType, Object, ObjectMeta};
    use bosun_proto::events::{event, involving, Source, NORMAL};
    use bosun_proto::internal::{command_result, rejection, Batch, CreateOp, DeleteOp};

    fn started(namespace: &str, name: &str) -> Object {
        let pod = ObjectMeta {
            namespace: namespace.into(),
            name: "web".into(),
            ..Default::default()
        };
        let mut object = event(involving(Kind::Pod, &pod), &Source::new("test"), NORMAL, "Started", "");
        if let Some(meta) = object.metadata_mut() {
            meta.name = name.into();
        }
        object
    }

    fn create(object: Object) -> Command {
        Command {
            time: None,
            op: Some(Op::Create(CreateOp { object: Some(object) })),
        }
    }

    fn batch(commands: Vec<Command>) -> Command {
        Command {
            time: None,
            op: Some(Op::Batch(Batch { commands })),
        }
    }

    fn replicated() -> Arc<Store> {
        Store::new(State::default(), 10)
    }

    fn rejected(result: &CommandResult) -> Option<rejection::Code> {
        match &result.result {
            Some(command_result::Result::Rejected(r)) => rejection::Code::try_from(r.code).ok(),
            _ => None,
        }
    }

    #[test]
    fn each_event_of_a_batch_has_a_revision_of_its_own_and_its_own_outcome() {
        let (events, replicated) = (Events::new(10), replicated());
        let result = events.apply(
            &batch(vec![
                create(started("default", "a")),
                create(started("default", "b")),
                create(started("default", "a")),
                create(started("nowhere", "c")),
            ]),
            &replicated,
        );
        let codes: Vec<_> = result.batch.iter().map(rejected).collect();
        assert_eq!(
            codes,
            [
                None,
                None,
                Some(rejection::Code::AlreadyExists),
                Some(rejection::Code::NotFound)
            ]
        );
        let open = events.open();
        let version = |name| open.get("default", name).unwrap().resource_version();
        assert_eq!(version("b"), version("a") + 1);
        assert_eq!(open.len(), 2);
        let (seen, _) = open.store().history().since(version("a") - 1, 10).unwrap();
        let changes: Vec<_> = seen
            .iter()
            .map(|e| (e.event_type, e.object.name().to_string()))
            .collect();
        assert_eq!(
            changes,
            [(EventType::Added, "a".into()), (EventType::Added, "b".into())]
        );
        assert!(
            replicated.read().objects.is_empty(),
            "nothing reaches the replicated store"
        );
    }

    #[test]
    fn a_store_opened_again_starts_empty_above_every_earlier_revision() {
        let (events, replicated) = (Events::new(10), replicated());
        events.apply(&create(started("default", "a")), &replicated);
        let old = events.open().store();
        let last = old.read().revision();
        let changes = old.subscribe();
        events.close();
        assert!(changes.has_changed().unwrap(), "the closed store's watches are woken");
        assert!(
            old.history().since(last, 10).is_err(),
            "and find their revision expired"
        );
        let new = events.open();
        assert!(new.is_empty());
        assert!(new.store().history().compacted() > last);
        events.apply(&create(started("default", "a")), &replicated);
        assert!(new.store().read().revision() > last + 1);
        assert!(Arc::ptr_eq(&new, &events.open()), "an open store stays open");
    }

    #[test]
    fn events_are_kept_encoded_and_written_by_the_replicated_store_s_rules() {
        let (events, replicated) = (Events::new(10), replicated());
        let created = events.apply(&create(started("default", "a")), &replicated);
        let Some(command_result::Result::Object(stored)) = created.result else {
            panic!("{created:?}")
        };
        let open = events.open();
        assert_eq!(open.get("default", "a"), Some(stored.clone()));
        assert!(open.store().read().objects.is_empty(), "none decoded in the store");
        // An update at an old resourceVersion is refused, as in the
        // replicated store; one at the current one is kept.
        let update = |object: Object| Command {
            time: None,
            op: Some(Op::Update(bosun_proto::internal::UpdateOp { object: Some(object) })),
        };
        let mut stale = stored.clone();
        if let Some(meta) = stale.metadata_mut() {
            meta.resource_version -= 1;
        }
        assert_eq!(
            rejected(&events.apply(&update(stale), &replicated)),
            Some(rejection::Code::Conflict)
        );
        let mut counted = bosun_proto::api::Event::try_from(stored).unwrap();
        counted.count = 2;
        let updated = events.apply(&update(counted.into()), &replicated);
        assert_eq!(rejected(&updated), None, "{updated:?}");
        let kept = bosun_proto::api::Event::try_from(open.get("default", "a").unwrap()).unwrap();
        assert_eq!(kept.count, 2);
        // Lists decode and filter; a delete removes.
        let filter = Filter {
            kind: Some(Kind::Event),
            ..Filter::default()
        };
        assert_eq!(open.list(Some("default"), &filter).items.len(), 1);
        assert!(open.list(Some("other"), &filter).items.is_empty());
        let delete = Command {
            time: None,
            op: Some(Op::Delete(DeleteOp {
                kind: "Event".into(),
                namespace: "default".into(),
                name: "a".into(),
                ..Default::default()
            })),
        };
        assert_eq!(rejected(&events.apply(&delete, &replicated)), None);
        assert!(open.is_empty());
    }

    #[test]
    fn only_commands_that_write_events_alone_are_event_commands() {
        let delete = |kind: &str| Command {
            time: None,
            op: Some(Op::Delete(DeleteOp {
                kind: kind.into(),
                ..Default::default()
            })),
        };
        let pod: Object = bosun_proto::api::Pod::default().into();
        assert!(is_event_command(&create(started("default", "a"))));
        assert!(is_event_command(&delete("ev")));
        assert!(is_event_command(&batch(vec![
            create(started("default", "a")),
            delete("Event")
        ])));
        assert!(!is_event_command(&create(pod.clone())));
        assert!(!is_event_command(&delete("Pod")));
        assert!(!is_event_command(&batch(vec![
            create(started("default", "a")),
            create(pod)
        ])));
        assert!(!is_event_command(&batch(vec![])));
    }
}
