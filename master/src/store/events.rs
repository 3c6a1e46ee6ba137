//! Event objects, kept by the leader in its memory instead of the Raft log.
//!
//! Events are the busiest kind (a pod's normal start records four) and
//! the least precious: Kubernetes gives them an etcd of their own and a
//! TTL, and calls them best effort. Replicated, they cost what a pod write
//! costs on every master (a third of the scheduling benchmark's
//! throughput); here they cost one map insert on the leader. Other masters
//! pass Event reads and writes on to the leader, so every client sees the
//! same events. When leadership moves, the new leader starts with none:
//! what the agents and controllers record from then on.
//!
//! The store is a [`Store`] like the replicated one (the same objects,
//! history and watches), with revisions of its own: each store starts
//! above every revision an earlier one gave out (at the time in
//! microseconds), and a watch carried over from another leader's store
//! finds its revision expired and lists again.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bosun_proto::api::object::Resource;
use bosun_proto::internal::command::Op;
use bosun_proto::internal::{command_result, rejection, Command, CommandResult, Rejection};
use bosun_proto::Kind;

use super::{HistoryEvent, Objects, State, Store};

/// The leader's events; empty and closed on other masters.
pub struct Events {
    history_capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: Option<Arc<Store>>,
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
    pub fn open(&self) -> Arc<Store> {
        let mut inner = self.lock();
        if let Some(store) = &inner.open {
            return store.clone();
        }
        let micros = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let base = micros.max(inner.next_base);
        let state = State {
            objects: Objects::with_namespaces_elsewhere(),
            last_applied: Some(crate::raft::LogId::new(Default::default(), base)),
            membership: Default::default(),
        };
        let store = Store::new(state, self.history_capacity);
        inner.open = Some(store.clone());
        store
    }

    /// Drops every event (leadership is gone, or is new): watches of the
    /// store end with their revision expired.
    pub fn close(&self) {
        let mut inner = self.lock();
        if let Some(store) = inner.open.take() {
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
        let store = self.open();
        // One writer at a time, so revisions are published in order.
        let _writer = self.lock();
        match &command.op {
            Some(Op::Batch(batch)) => CommandResult {
                batch: batch
                    .commands
                    .iter()
                    .map(|command| apply_one(&store, command, replicated))
                    .collect(),
                ..CommandResult::default()
            },
            _ => apply_one(&store, command, replicated),
        }
    }
}

fn apply_one(store: &Store, command: &Command, replicated: &Store) -> CommandResult {
    if let Some(Op::Create(create)) = &command.op {
        let namespace = create.object.as_ref().map_or("", |o| o.namespace());
        if !replicated.read().objects.namespace_exists(namespace) {
            return CommandResult {
                result: Some(command_result::Result::Rejected(Rejection {
                    code: rejection::Code::NotFound as i32,
                    message: format!("namespace {namespace:?} not found: create the Namespace first"),
                })),
                ..CommandResult::default()
            };
        }
    }
    let (revision, applied) = {
        let mut state = store.write();
        let revision = state.revision() + 1;
        state.last_applied = Some(crate::raft::LogId::new(Default::default(), revision));
        (revision, state.objects.apply(revision, command))
    };
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
    store.publish(revision, events);
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
    use bosun_proto::internal::{Batch, CreateOp, DeleteOp};

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
        let store = events.open();
        let version = |name| {
            store
                .read()
                .objects
                .get(Kind::Event, "default", name)
                .unwrap()
                .resource_version()
        };
        assert_eq!(version("b"), version("a") + 1);
        let (seen, _) = store.history().since(version("a") - 1, 10).unwrap();
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
        let old = events.open();
        let last = old.read().revision();
        let changes = old.subscribe();
        events.close();
        assert!(changes.has_changed().unwrap(), "the closed store's watches are woken");
        assert!(
            old.history().since(last, 10).is_err(),
            "and find their revision expired"
        );
        let new = events.open();
        assert!(new.read().objects.is_empty());
        assert!(new.history().compacted() > last);
        events.apply(&create(started("default", "a")), &replicated);
        assert!(new.read().revision() > last + 1);
        assert!(Arc::ptr_eq(&new, &events.open()), "an open store stays open");
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
