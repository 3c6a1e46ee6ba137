//! Following the store's changes from a position, for the leader's duties
//! that keep their own view of the objects (the scheduler's cache, the
//! controllers' queues, and next the endpoints controller and the volume
//! binder): subscribe, read the history after the position in batches,
//! start over from a snapshot when the history no longer reaches back that
//! far, and wait for the next change, a timer or cancellation. Each
//! change carries the object's previous state.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{HistoryEvent, State, Store};

/// Changes read from the history at a time.
const BATCH: usize = 4096;

/// One duty's position in the store's changes.
pub struct Follower {
    store: Arc<Store>,
    revisions: watch::Receiver<u64>,
    position: u64,
}

/// What ended a [`Follower::wait`].
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// The store changed, or the timer passed: catch up and work.
    Work,
    /// Cancelled, or the store is gone: stop.
    Stop,
}

impl Follower {
    /// A follower that has seen everything up to `position`.
    fn new(store: Arc<Store>, position: u64) -> Follower {
        let revisions = store.subscribe();
        Follower {
            store,
            revisions,
            position,
        }
    }

    /// A view built from `state` (under the store's read lock), and a
    /// follower placed just after it: what starting, or starting over,
    /// looks like.
    pub fn start<T>(store: &Arc<Store>, load: impl FnOnce(&State) -> T) -> (T, Follower) {
        let mut follower = Follower::new(store.clone(), 0);
        let view = follower.reload(load);
        (view, follower)
    }

    /// Rebuilds a view from the current state and moves just after it
    /// (the history expired, see [`Follower::catch_up`]).
    pub fn reload<T>(&mut self, load: impl FnOnce(&State) -> T) -> T {
        self.revisions.borrow_and_update();
        let state = self.store.read();
        self.position = state.revision();
        load(&state)
    }

    /// Hands every change after the position to `each`, a batch at a time,
    /// and moves past them. False when the history no longer reaches back
    /// to the position: the caller [`Follower::reload`]s.
    pub fn catch_up(&mut self, mut each: impl FnMut(&[HistoryEvent])) -> bool {
        self.revisions.borrow_and_update();
        loop {
            let Ok((events, seen)) = self.store.history().since(self.position, BATCH) else {
                return false;
            };
            each(&events);
            self.position = seen;
            if events.len() < BATCH {
                return true;
            }
        }
    }

    /// Waits for a change after the last catch-up, the time `until`, or
    /// `token`.
    pub async fn wait(&mut self, until: Option<Instant>, token: &CancellationToken) -> Wake {
        let timer = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = self.revisions.changed() => if changed.is_err() { Wake::Stop } else { Wake::Work },
            () = timer => Wake::Work,
            () = token.cancelled() => Wake::Stop,
        }
    }
}
