//! Fan-out of applied changes to watches.
//!
//! A watch has two modes. While behind, its own task reads the
//! [`History`](super::History) in batches and sends what matches, waiting
//! on the client as needed. Once it has seen the latest revision it goes
//! live: it registers here, and [`Watchers::dispatch`] hands it each new
//! change as the state machine applies it, so an idle watch costs nothing
//! and a change is matched once, not once per watch.
//!
//! Live watches are indexed by the node their field selector pins
//! (`spec.nodeName=NAME`, what every node agent asks for), so a change to a
//! pod is matched only against the watches of its node and the unindexed
//! ones: with a thousand agents watching, a binding wakes one of them.
//!
//! A live watch whose client cannot take a revision's changes is sent back
//! to reading the history from the last revision it took whole, so a slow
//! client never blocks the state machine, never misses or repeats a change,
//! and is cut off (as with etcd's compaction) only if it falls behind the
//! kept history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Object, WatchEvent};
use bosun_proto::fields::FieldSelector;
use bosun_proto::selector::Selector;
use bosun_proto::Kind;
use tokio::sync::{mpsc, oneshot};

use super::{Expired, HistoryEvent};

/// What a watch's client receives.
pub type Delivery = Result<WatchEvent, Expired>;

/// Which objects a list or watch passes on.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub namespace: Option<String>,
    pub selector: Selector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Object) -> bool {
        self.kind.is_none_or(|k| object.kind() == Some(k))
            && self.namespace.as_deref().is_none_or(|ns| object.namespace() == ns)
            && (self.selector.is_empty() || object.metadata().is_some_and(|m| self.selector.matches(&m.labels)))
            && (self.fields.is_empty() || self.fields.matches(object))
    }

    /// The node a pod watch is pinned to by `spec.nodeName=NAME`.
    fn node(&self) -> Option<&str> {
        (self.kind == Some(Kind::Pod))
            .then(|| self.fields.required("spec.nodeName"))
            .flatten()
    }
}

/// The node a pod is bound to ("" when unbound); `None` for other kinds.
fn pod_node(object: &Object) -> Option<&str> {
    match object.resource.as_ref()? {
        Resource::Pod(pod) => Some(pod.spec.as_ref().map_or("", |s| s.node_name.as_str())),
        _ => None,
    }
}

pub fn watch_event(event: &HistoryEvent) -> WatchEvent {
    WatchEvent {
        r#type: event.event_type as i32,
        object: Some((*event.object).clone()),
        revision: event.revision,
    }
}

/// The live watches; cheap to clone.
#[derive(Clone, Default)]
pub struct Watchers {
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    live: HashMap<u64, Live>,
    /// Watches pinned to a node, by node name.
    by_node: HashMap<String, Vec<u64>>,
    /// Every other live watch.
    unindexed: Vec<u64>,
}

struct Live {
    filter: Arc<Filter>,
    sender: mpsc::Sender<Delivery>,
    /// Told the revision to resume reading the history from when the
    /// watch falls behind.
    fallen_behind: oneshot::Sender<u64>,
}

/// A live registration; dropping it unregisters the watch.
pub struct Subscription {
    id: u64,
    watchers: Watchers,
    /// Resolves with the revision to read the history from if the client
    /// fell behind.
    pub fallen_behind: oneshot::Receiver<u64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watchers.lock().remove(self.id);
    }
}

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a watch that has seen everything up to the current
    /// revision; `current` is checked under the lock [`Watchers::dispatch`]
    /// holds, so no change falls between the history and the live feed.
    pub(super) fn register(
        &self,
        current: impl FnOnce() -> u64,
        seen: u64,
        filter: Arc<Filter>,
        sender: mpsc::Sender<Delivery>,
    ) -> Option<Subscription> {
        let mut registry = self.lock();
        if current() != seen {
            return None;
        }
        let (fallen_behind, receiver) = oneshot::channel();
        let id = registry.next_id;
        registry.next_id += 1;
        match filter.node() {
            Some(node) => registry.by_node.entry(node.to_string()).or_default().push(id),
            None => registry.unindexed.push(id),
        }
        registry.live.insert(
            id,
            Live {
                filter,
                sender,
                fallen_behind,
            },
        );
        Some(Subscription {
            id,
            watchers: self.clone(),
            fallen_behind: receiver,
        })
    }

    /// Holds the registry while `publish` records a revision in the
    /// history, then hands its `events` to the live watches that match.
    /// `previous` is the revision before them.
    pub(super) fn dispatch(&self, previous: u64, events: &[HistoryEvent], publish: impl FnOnce()) {
        let mut registry = self.lock();
        publish();
        if registry.live.is_empty() {
            return;
        }
        let mut matched: HashMap<u64, Vec<WatchEvent>> = HashMap::new();
        for event in events {
            let pinned = pod_node(&event.object)
                .and_then(|node| registry.by_node.get(node))
                .into_iter()
                .flatten();
            for id in pinned.chain(&registry.unindexed) {
                if registry.live.get(id).is_some_and(|w| w.filter.matches(&event.object)) {
                    matched.entry(*id).or_default().push(watch_event(event));
                }
            }
        }
        for (id, events) in matched {
            let Some(live) = registry.live.get(&id) else { continue };
            // Only this function sends to a live watch, so the room it sees
            // cannot shrink before the sends: a revision goes whole or not.
            if live.sender.capacity() >= events.len() {
                for event in events {
                    let _ = live.sender.try_send(Ok(event));
                }
            } else if let Some(live) = registry.remove(id) {
                let _ = live.fallen_behind.send(previous);
            }
        }
    }

    /// Sends every live watch back to the history (after a snapshot install
    /// resets it), from `previous`.
    pub(super) fn reset(&self, previous: u64) {
        let mut registry = self.lock();
        let ids: Vec<u64> = registry.live.keys().copied().collect();
        for id in ids {
            if let Some(live) = registry.remove(id) {
                let _ = live.fallen_behind.send(previous);
            }
        }
    }

    /// Live watches, for tests and metrics.
    pub fn live(&self) -> usize {
        self.lock().live.len()
    }
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Live> {
        let live = self.live.remove(&id)?;
        match live.filter.node() {
            Some(node) => {
                if let Some(ids) = self.by_node.get_mut(node) {
                    ids.retain(|i| *i != id);
                    if ids.is_empty() {
                        self.by_node.remove(node);
                    }
                }
            }
            None => self.unindexed.retain(|i| *i != id),
        }
        Some(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{EventType, ObjectMeta, Pod, PodSpec};

    fn pod_event(revision: u64, name: &str, node: &str) -> HistoryEvent {
        let pod = Pod {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_name: node.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        HistoryEvent {
            revision,
            event_type: EventType::Modified,
            object: Arc::new(pod.into()),
            previous: None,
        }
    }

    fn filter(fields: &str) -> Arc<Filter> {
        Arc::new(Filter {
            kind: Some(Kind::Pod),
            fields: FieldSelector::parse(fields).unwrap(),
            ..Default::default()
        })
    }

    fn names(receiver: &mut mpsc::Receiver<Delivery>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Ok(event)) = receiver.try_recv() {
            out.push(event.object.unwrap().name().to_string());
        }
        out
    }

    #[test]
    fn a_change_reaches_the_watches_of_its_node_and_the_unindexed_ones() {
        let watchers = Watchers::default();
        let (a_tx, mut a) = mpsc::channel(8);
        let (b_tx, mut b) = mpsc::channel(8);
        let (all_tx, mut all) = mpsc::channel(8);
        let _a = watchers.register(|| 5, 5, filter("spec.nodeName=a"), a_tx).unwrap();
        let _b = watchers.register(|| 5, 5, filter("spec.nodeName=b"), b_tx).unwrap();
        let _all = watchers.register(|| 5, 5, filter(""), all_tx).unwrap();
        let events = [pod_event(6, "p1", "a"), pod_event(6, "p2", "b"), pod_event(7, "p3", "")];
        watchers.dispatch(5, &events, || {});
        assert_eq!(names(&mut a), ["p1"]);
        assert_eq!(names(&mut b), ["p2"]);
        assert_eq!(names(&mut all), ["p1", "p2", "p3"]);
    }

    #[test]
    fn registering_behind_the_latest_revision_is_refused() {
        let watchers = Watchers::default();
        let (tx, _rx) = mpsc::channel(8);
        assert!(watchers.register(|| 6, 5, filter(""), tx).is_none());
        assert_eq!(watchers.live(), 0);
    }

    #[test]
    fn a_watch_without_room_for_a_revision_falls_back_to_the_history_whole() {
        let watchers = Watchers::default();
        let (tx, mut rx) = mpsc::channel(2);
        let mut subscription = watchers.register(|| 5, 5, filter(""), tx).unwrap();
        watchers.dispatch(5, &[pod_event(6, "p1", "a")], || {});
        // Three changes of one revision do not fit in the one slot left:
        // none is sent, and the watch resumes from revision 6.
        let events = [
            pod_event(7, "p2", "a"),
            pod_event(7, "p3", "a"),
            pod_event(7, "p4", "a"),
        ];
        watchers.dispatch(6, &events, || {});
        assert_eq!(names(&mut rx), ["p1"]);
        assert_eq!(subscription.fallen_behind.try_recv(), Ok(6));
        assert_eq!(watchers.live(), 0);
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let watchers = Watchers::default();
        let (tx, _rx) = mpsc::channel(8);
        let subscription = watchers.register(|| 5, 5, filter("spec.nodeName=a"), tx).unwrap();
        assert_eq!(watchers.live(), 1);
        drop(subscription);
        assert_eq!(watchers.live(), 0);
        assert!(watchers.lock().by_node.is_empty());
    }
}
