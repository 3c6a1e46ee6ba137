//! The controllers' runtime, on the leader: follows the store's changes
//! ([`Follower`]), asks every [`Controller`] which keys each change
//! concerns, and reconciles the queued keys in rounds.
//!
//! The contract, held by [`Queue`] and tested on it: a key is queued once
//! however many changes name it; a key is never reconciled twice at once
//! (queued again while it runs, it waits for the run to end); a key whose
//! writes failed (a conflict, a lost leader) is retried with back-off from
//! 100 ms to 10 s; a plan may ask to be looked at again after a while.
//!
//! A round takes the queued keys, plans each against one snapshot of the
//! store, proposes every action of the round together (the proposer packs
//! them into few Raft entries) and waits for them: the next round's
//! snapshot holds this round's writes, so no controller acts twice on
//! stale state. Writes carry the resourceVersion they were planned from;
//! a conflict just requeues the key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{execute, Controller, ObjectKey};
use crate::replica::Replica;
use crate::store::{Follower, Objects, Wake};

/// Most keys reconciled in one round.
const ROUND: usize = 256;
/// First and longest wait before retrying a key whose writes failed.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A key of one controller: its index in the list, and the object.
pub type Key = (usize, ObjectKey);

/// The keys waiting, running, timed and backing off.
#[derive(Default)]
pub struct Queue {
    queue: VecDeque<Key>,
    queued: HashSet<Key>,
    /// Taken and not finished yet.
    running: HashSet<Key>,
    timers: HashMap<Key, Instant>,
    backoff: HashMap<Key, Duration>,
}

impl Queue {
    /// Queues `key` unless it already waits.
    pub fn add(&mut self, key: Key) {
        if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    /// Queues `key` at `now + after` (the earliest of several timers).
    pub fn add_after(&mut self, key: Key, after: Duration, now: Instant) {
        let at = now + after;
        let entry = self.timers.entry(key).or_insert(at);
        *entry = (*entry).min(at);
    }

    /// Queues the keys whose timer passed at `now`.
    pub fn promote(&mut self, now: Instant) {
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

    /// When the next timer passes.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Up to `limit` waiting keys that are not running, in the order they
    /// were queued; they run until [`Queue::finished`].
    pub fn take(&mut self, limit: usize) -> Vec<Key> {
        let mut taken = Vec::new();
        let mut busy = Vec::new();
        while taken.len() < limit {
            let Some(key) = self.queue.pop_front() else { break };
            if self.running.contains(&key) {
                busy.push(key);
                continue;
            }
            self.queued.remove(&key);
            self.running.insert(key.clone());
            taken.push(key);
        }
        // Keys still running keep their place, ahead of later ones.
        for key in busy.into_iter().rev() {
            self.queue.push_front(key);
        }
        taken
    }

    /// `key` ran: `ok` when all its writes were applied; `requeue` when its
    /// plan asked to be looked at again.
    pub fn finished(&mut self, key: Key, ok: bool, requeue: Option<Duration>, now: Instant) {
        self.running.remove(&key);
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
}

/// The controllers and their queue.
struct Runtime {
    controllers: Vec<Box<dyn Controller>>,
    queue: Queue,
}

impl Runtime {
    /// Forgets everything and queues every key there is.
    fn resync(&mut self, objects: &Objects) {
        self.queue = Queue::default();
        let mut keys = Vec::new();
        for (index, controller) in self.controllers.iter_mut().enumerate() {
            controller.resync(objects, &mut keys);
            for key in keys.drain(..) {
                self.queue.add((index, key));
            }
        }
    }

    fn plan(&self, keys: Vec<Key>, objects: &Objects, now: SystemTime) -> Vec<(Key, super::Plan)> {
        keys.into_iter()
            .map(|key| {
                let plan = self.controllers[key.0].reconcile(&key.1, objects, now);
                (key, plan)
            })
            .collect()
    }
}

/// Runs `controllers` until `token` is cancelled (leadership lost).
pub async fn run(replica: Arc<Replica>, controllers: Vec<Box<dyn Controller>>, token: CancellationToken) {
    // A new leader may not have applied every committed entry yet: acting
    // on such a state could create pods twice.
    loop {
        tokio::select! {
            result = replica.read_barrier() => if result.is_ok() { break },
            () = token.cancelled() => return,
        }
    }
    let mut runtime = Runtime {
        controllers,
        queue: Queue::default(),
    };
    let ((), mut follower) = Follower::start(&replica.store, |state| runtime.resync(&state.objects));
    let names: Vec<&str> = runtime.controllers.iter().map(|c| c.name()).collect();
    tracing::info!(keys = runtime.queue.len(), controllers = ?names, "controllers started");
    let mut keys = Vec::new();
    loop {
        let caught_up = follower.catch_up(|events| {
            for event in events {
                // Held per change, not per batch: the state machine's
                // writes wait for readers.
                let state = replica.store.read();
                for (index, controller) in runtime.controllers.iter_mut().enumerate() {
                    controller.changed(event, &state.objects, &mut keys);
                    for key in keys.drain(..) {
                        runtime.queue.add((index, key));
                    }
                }
            }
        });
        if !caught_up {
            follower.reload(|state| runtime.resync(&state.objects));
        }
        runtime.queue.promote(Instant::now());
        let round = runtime.queue.take(ROUND);
        if round.is_empty() {
            if follower.wait(runtime.queue.next_timer(), &token).await == Wake::Stop {
                return;
            }
            continue;
        }
        let plans = runtime.plan(round, &replica.store.read().objects, SystemTime::now());
        let outcomes = join_all(plans.iter().map(|(_, plan)| execute(&replica, &plan.actions))).await;
        let now = Instant::now();
        for ((key, plan), ok) in plans.into_iter().zip(outcomes) {
            runtime.queue.finished(key, ok, plan.requeue, now);
        }
        if token.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::Kind;

    fn key(controller: usize, name: &str) -> Key {
        (controller, (Kind::ReplicaSet, "default".into(), name.into()))
    }

    fn names(keys: &[Key]) -> Vec<String> {
        keys.iter().map(|k| format!("{}:{}", k.0, k.1 .2)).collect()
    }

    #[test]
    fn a_key_named_by_many_changes_is_queued_once() {
        let mut queue = Queue::default();
        for _ in 0..3 {
            queue.add(key(0, "web"));
        }
        queue.add(key(1, "web"));
        queue.add(key(0, "api"));
        assert_eq!(queue.len(), 3, "one per (controller, object)");
        assert_eq!(names(&queue.take(10)), ["0:web", "1:web", "0:api"]);
        assert!(queue.take(10).is_empty());
    }

    #[test]
    fn a_round_takes_at_most_its_limit_in_order() {
        let mut queue = Queue::default();
        for name in ["a", "b", "c"] {
            queue.add(key(0, name));
        }
        assert_eq!(names(&queue.take(2)), ["0:a", "0:b"]);
        assert_eq!(names(&queue.take(2)), ["0:c"]);
    }

    #[test]
    fn a_key_queued_while_it_runs_waits_for_the_run_to_end() {
        let now = Instant::now();
        let mut queue = Queue::default();
        queue.add(key(0, "web"));
        queue.add(key(0, "api"));
        assert_eq!(names(&queue.take(1)), ["0:web"]);
        // A change names it again while it runs: queued, not taken.
        queue.add(key(0, "web"));
        assert_eq!(names(&queue.take(10)), ["0:api"], "web is still running");
        assert_eq!(queue.len(), 1, "web keeps its place");
        queue.finished(key(0, "web"), true, None, now);
        assert_eq!(names(&queue.take(10)), ["0:web"], "runs again once the first run ended");
    }

    #[test]
    fn failed_writes_back_off_doubling_up_to_the_maximum_and_success_resets() {
        let start = Instant::now();
        let mut queue = Queue::default();
        let web = key(0, "web");
        let mut expected = RETRY_FIRST;
        for _ in 0..10 {
            queue.add(web.clone());
            queue.take(1);
            queue.finished(web.clone(), false, None, start);
            assert_eq!(queue.next_timer(), Some(start + expected));
            queue.timers.clear();
            expected = (expected * 2).min(RETRY_MAX);
        }
        assert_eq!(expected, RETRY_MAX);
        queue.add(web.clone());
        queue.take(1);
        queue.finished(web.clone(), true, None, start);
        assert_eq!(queue.next_timer(), None, "success needs no retry");
        queue.add(web.clone());
        queue.take(1);
        queue.finished(web, false, None, start);
        assert_eq!(
            queue.next_timer(),
            Some(start + RETRY_FIRST),
            "the back-off starts over"
        );
    }

    #[test]
    fn a_requeue_runs_the_key_again_when_due_and_the_earliest_timer_wins() {
        let start = Instant::now();
        let mut queue = Queue::default();
        let web = key(0, "web");
        queue.add(web.clone());
        queue.take(1);
        queue.finished(web.clone(), true, Some(Duration::from_secs(5)), start);
        queue.add_after(web.clone(), Duration::from_secs(2), start);
        assert_eq!(queue.next_timer(), Some(start + Duration::from_secs(2)));
        queue.promote(start + Duration::from_secs(1));
        assert!(queue.take(10).is_empty(), "not due yet");
        queue.promote(start + Duration::from_secs(2));
        assert_eq!(names(&queue.take(10)), ["0:web"]);
        // A failing key whose plan asked for sooner than its back-off.
        queue.finished(web, false, Some(Duration::from_millis(10)), start);
        assert_eq!(queue.next_timer(), Some(start + Duration::from_millis(10)));
    }
}
