//! An in-memory copy of the objects of one kind, kept current by a
//! [`Watcher`], as kube-runtime's reflector and store: reads are a map
//! lookup instead of a call to the masters, and readers can wait for the
//! next change. The node agent keeps the ConfigMaps and Secrets its pods'
//! environments read this way; Services, Endpoints and volumes will too.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::watcher::{Change, Watcher, REWATCH_PAUSE};
use super::ApiObject;
use crate::api::EventType;

/// (namespace, name).
type Key = (String, String);

/// The cache; cheap to clone, every clone sees the same objects.
pub struct Store<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<K> {
    objects: RwLock<HashMap<Key, Arc<K>>>,
    /// The revision the cache is at: 0 until the first list.
    revision: watch::Sender<u64>,
}

fn key_of<K: ApiObject>(object: &K) -> Option<Key> {
    let meta = object.meta()?;
    Some((meta.namespace.clone(), meta.name.clone()))
}

impl<K: ApiObject> Store<K> {
    /// An empty store, filled by [`Store::apply`] (a reflector, or a test).
    pub fn new() -> Store<K> {
        Store {
            shared: Arc::new(Shared {
                objects: RwLock::default(),
                revision: watch::channel(0).0,
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Key, Arc<K>>> {
        self.shared.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Key, Arc<K>>> {
        self.shared.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The object `namespace/name` as last seen.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// Every object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    /// Whether the first list has arrived (before it the store is empty
    /// whatever the masters hold).
    pub fn is_ready(&self) -> bool {
        *self.shared.revision.borrow() > 0
    }

    /// The store's revision, changed after every change applied: await
    /// `changed()` on it to learn of the next one.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }

    /// Applies a change seen at `revision`.
    pub fn apply(&self, change: Change<K>, revision: u64) {
        match change {
            Change::Relisted(objects) => {
                let fresh: HashMap<Key, Arc<K>> = objects
                    .into_iter()
                    .filter_map(|o| Some((key_of(&o)?, Arc::new(o))))
                    .collect();
                *self.write() = fresh;
            }
            Change::Event(EventType::Deleted, object) => {
                if let Some(key) = key_of(&*object) {
                    self.write().remove(&key);
                }
            }
            Change::Event(_, object) => {
                if let Some(key) = key_of(&*object) {
                    self.write().insert(key, Arc::from(object));
                }
            }
        }
        // Never 0 once something arrived: 0 means "not listed yet".
        self.shared.revision.send_replace(revision.max(1));
    }
}

impl<K: ApiObject> Default for Store<K> {
    fn default() -> Self {
        Store::new()
    }
}

/// Starts keeping a store of what `watcher` follows, until `token` is
/// cancelled.
pub fn reflect<K: ApiObject>(mut watcher: Watcher<K>, token: CancellationToken) -> Store<K> {
    let store = Store::new();
    let filled = store.clone();
    tokio::spawn(async move {
        loop {
            // The watcher is only dropped with the task (cancel-safe).
            let change = tokio::select! {
                change = watcher.next() => change,
                () = token.cancelled() => return,
            };
            match change {
                Ok(change) => filled.apply(change, watcher.revision()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow objects for a cache; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(REWATCH_PAUSE) => {}
                        () = token.cancelled() => return,
                    }
                }
            }
        }
    });
    store
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConfigMap, ObjectMeta};

    fn config_map(namespace: &str, name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: Some(ObjectMeta {
                namespace: namespace.into(),
                name: name.into(),
                ..Default::default()
            }),
            data: [("value".to_string(), value.to_string())].into(),
            ..Default::default()
        }
    }

    fn value(store: &Store<ConfigMap>, namespace: &str, name: &str) -> Option<String> {
        store.get(namespace, name).map(|cm| cm.data["value"].clone())
    }

    #[test]
    fn a_store_follows_lists_and_events_and_says_when_it_changed() {
        let store = Store::<ConfigMap>::new();
        let changes = store.changes();
        assert!(!store.is_ready(), "nothing listed yet");
        store.apply(
            Change::Relisted(vec![config_map("a", "one", "1"), config_map("b", "one", "2")]),
            10,
        );
        assert!(store.is_ready());
        assert!(changes.has_changed().unwrap());
        assert_eq!(value(&store, "a", "one").as_deref(), Some("1"));
        assert_eq!(value(&store, "b", "one").as_deref(), Some("2"));

        store.apply(
            Change::Event(EventType::Modified, Box::new(config_map("a", "one", "3"))),
            11,
        );
        assert_eq!(value(&store, "a", "one").as_deref(), Some("3"));
        store.apply(
            Change::Event(EventType::Deleted, Box::new(config_map("b", "one", "2"))),
            12,
        );
        assert_eq!(value(&store, "b", "one"), None);
        assert_eq!(*store.changes().borrow(), 12);

        // A relist replaces everything: what it lacks is gone.
        store.apply(Change::Relisted(vec![config_map("c", "two", "4")]), 20);
        assert_eq!(store.list().len(), 1);
        assert_eq!(value(&store, "a", "one"), None);
        // An empty first list still makes the store ready.
        let empty = Store::<ConfigMap>::new();
        empty.apply(Change::Relisted(vec![]), 0);
        assert!(empty.is_ready());
    }
}
