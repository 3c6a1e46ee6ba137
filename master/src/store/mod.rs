//! The replicated state as this master sees it: every object in memory,
//! the recent history for watches, and a notification of each applied
//! revision.
//!
//! Only the Raft state machine writes here (see
//! [`crate::raft::state_machine`]); the API reads. Events are the
//! exception: the leader keeps them in a store of the same shape that is
//! not replicated ([`Events`]).

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use crate::raft::{LogId, Membership};

mod binding;
mod events;
mod fanout;
mod follower;
mod history;
mod objects;

pub use events::{is_event_command, Events, Open as OpenEvents};
pub use fanout::{watch_event, Delivery, Filter, Subscription, Watchers};
pub use follower::{Follower, Wake};
pub use history::{Expired, History, HistoryEvent};
pub use objects::{describe, Applied, Change, Objects, Propagation, BUILT_IN_NAMESPACES, FOREGROUND_FINALIZER};

/// What the state machine has applied.
#[derive(Debug, Default, Clone)]
pub struct State {
    pub objects: Objects,
    pub last_applied: Option<LogId>,
    pub membership: Membership,
}

impl State {
    /// The revision of the state: the index of the last applied log entry.
    pub fn revision(&self) -> u64 {
        self.last_applied.map_or(0, |id| id.index)
    }
}

/// Shared by the state machine (writer) and the API (readers).
pub struct Store {
    state: RwLock<State>,
    history: RwLock<History>,
    watchers: Watchers,
    revision: watch::Sender<u64>,
}

impl Store {
    pub fn new(state: State, history_capacity: usize) -> Arc<Store> {
        let revision = state.revision();
        Arc::new(Store {
            state: RwLock::new(state),
            history: RwLock::new(History::new(history_capacity, revision)),
            watchers: Watchers::default(),
            revision: watch::Sender::new(revision),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn history(&self) -> RwLockReadGuard<'_, History> {
        self.history.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn history_mut(&self) -> RwLockWriteGuard<'_, History> {
        self.history.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the events of revisions up to `revision` to the history
    /// and the live watches.
    pub(crate) fn publish(&self, revision: u64, events: Vec<HistoryEvent>) {
        let previous = self.history().revision();
        self.watchers.dispatch(previous, &events, || {
            self.history_mut().push(revision, events.iter().cloned())
        });
        self.revision.send_replace(revision);
    }

    /// Replaces the history after a snapshot install; live watches go back
    /// to it and find their revision expired.
    pub(crate) fn reset_history(&self, revision: u64) {
        let previous = self.history().revision();
        self.history_mut().reset(revision);
        self.watchers.reset(previous);
        self.revision.send_replace(revision);
    }

    /// Feeds a watch that has seen everything up to `seen` from now on, if
    /// that is the latest revision; `None` if it must read the history
    /// first.
    pub fn watch_live(
        &self,
        seen: u64,
        filter: Arc<Filter>,
        sender: tokio::sync::mpsc::Sender<Delivery>,
    ) -> Option<Subscription> {
        self.watchers
            .register(|| self.history().revision(), seen, filter, sender)
    }

    /// The watches being fed live.
    pub fn live_watches(&self) -> usize {
        self.watchers.live()
    }

    /// Wakes on every applied revision.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }
}
