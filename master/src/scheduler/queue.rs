//! Pods waiting to be scheduled: an active FIFO, and pods that fit nowhere,
//! parked until the cluster changes or their back-off ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Queue {
    active: VecDeque<String>,
    queued: HashSet<String>,
    /// Parked pods and when to retry them.
    parked: HashMap<String, Instant>,
    /// Failed attempts per pod, for the back-off; kept across wake-ups
    /// until the pod is placed.
    attempts: HashMap<String, u32>,
}

impl Queue {
    /// Queues a pod for the next scheduling round.
    pub fn add(&mut self, uid: &str) {
        self.parked.remove(uid);
        if self.queued.insert(uid.to_string()) {
            self.active.push_back(uid.to_string());
        }
    }

    pub fn pop(&mut self) -> Option<String> {
        let uid = self.active.pop_front()?;
        self.queued.remove(&uid);
        Some(uid)
    }

    /// Parks a pod that fit nowhere, with exponential back-off.
    pub fn park(&mut self, uid: &str, now: Instant) {
        let attempts = self.attempts.entry(uid.to_string()).or_default();
        *attempts += 1;
        let delay = FIRST_RETRY.saturating_mul(1 << (*attempts - 1).min(6)).min(MAX_RETRY);
        self.parked.insert(uid.to_string(), now + delay);
    }

    /// Parks a pod briefly (its binding was refused; the cache catches up).
    pub fn retry_soon(&mut self, uid: &str, now: Instant) {
        self.parked.insert(uid.to_string(), now + Duration::from_millis(100));
    }

    /// The pod was placed (or is gone): forget its back-off.
    pub fn done(&mut self, uid: &str) {
        self.attempts.remove(uid);
        self.parked.remove(uid);
    }

    /// The cluster changed: every parked pod gets another try now.
    pub fn wake_all(&mut self) {
        let parked: Vec<String> = self.parked.drain().map(|(uid, _)| uid).collect();
        for uid in parked {
            self.add(&uid);
        }
    }

    /// Moves parked pods whose back-off ended to the active queue; returns
    /// when the next one ends.
    pub fn wake_due(&mut self, now: Instant) -> Option<Instant> {
        let due: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            self.add(&uid);
        }
        self.parked.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_without_duplicates() {
        let mut queue = Queue::default();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        assert_eq!(
            (queue.pop(), queue.pop(), queue.pop()),
            (Some("a".into()), Some("b".into()), None)
        );
    }

    #[test]
    fn parked_pods_come_back_after_their_back_off_or_a_change() {
        let mut queue = Queue::default();
        let now = Instant::now();
        queue.park("a", now);
        assert_eq!(queue.wake_due(now), Some(now + FIRST_RETRY));
        assert_eq!(queue.pop(), None);
        queue.wake_due(now + FIRST_RETRY);
        assert_eq!(queue.pop(), Some("a".into()));
        queue.park("b", now);
        queue.wake_all();
        assert_eq!(queue.pop(), Some("b".into()));
        // The back-off keeps growing across wake-ups until the pod is placed.
        queue.park("a", now);
        assert_eq!(queue.wake_due(now), Some(now + FIRST_RETRY * 2));
        queue.done("a");
        queue.add("a");
        queue.pop();
        queue.park("a", now);
        assert_eq!(queue.wake_due(now), Some(now + FIRST_RETRY));
    }
}
