//! Recent changes, kept in memory so watches can resume from a revision.
//!
//! The history holds the last `capacity` events in revision order. A watch
//! from a revision at or after [`History::compacted`] sees every later
//! event; an older revision is "expired" and the client must list again,
//! as with etcd's compaction. After a restart or a snapshot install the
//! history starts empty at the revision the state was loaded at.

use std::collections::VecDeque;
use std::sync::Arc;

use bosun_proto::api::{EventType, Object};

/// One change as stored in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub revision: u64,
    pub event_type: EventType,
    pub object: Arc<Object>,
    /// The object before this change (`None` when it was created): a
    /// controller can tell which selectors a relabelled object left.
    pub previous: Option<Arc<Object>>,
}

#[derive(Debug)]
pub struct History {
    events: VecDeque<HistoryEvent>,
    capacity: usize,
    /// Every event with a revision above this one is in `events`.
    compacted: u64,
    /// The last revision applied (events or not).
    revision: u64,
}

/// The requested revision is older than the kept history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revision {requested} is too old: changes before {oldest} are no longer kept; list again and watch from the list's revision")]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

impl History {
    /// An empty history starting after `revision`.
    pub fn new(capacity: usize, revision: u64) -> History {
        History {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            compacted: revision,
            revision,
        }
    }

    /// Forgets everything and starts again after `revision` (after a
    /// snapshot install).
    pub fn reset(&mut self, revision: u64) {
        self.events.clear();
        self.compacted = revision;
        self.revision = revision;
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Most events kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Records that `revision` was applied, with its events (possibly none).
    pub fn push(&mut self, revision: u64, events: impl IntoIterator<Item = HistoryEvent>) {
        self.events.extend(events);
        while self.events.len() > self.capacity {
            if let Some(dropped) = self.events.pop_front() {
                self.compacted = self.compacted.max(dropped.revision);
            }
        }
        // Events of one revision are dropped together or not at all from
        // the caller's point of view: a partially dropped revision counts
        // as compacted, so watchers never see half of a revision.
        self.revision = self.revision.max(revision);
    }

    /// Events after `since` (up to `limit`), and the revision the caller has
    /// now seen everything up to.
    ///
    /// # Errors
    /// [`Expired`] when events after `since` have been dropped.
    pub fn since(&self, since: u64, limit: usize) -> Result<(Vec<HistoryEvent>, u64), Expired> {
        if since < self.compacted {
            return Err(Expired {
                requested: since,
                oldest: self.compacted,
            });
        }
        let start = self.events.partition_point(|e| e.revision <= since);
        let mut out: Vec<HistoryEvent> = self.events.range(start..).take(limit).cloned().collect();
        if out.len() < limit {
            return Ok((out, self.revision.max(since)));
        }
        // Stop at a revision boundary so a resumed watch never skips the
        // rest of a revision.
        let last = out.last().map_or(since, |e| e.revision);
        let complete = self
            .events
            .range(start + out.len()..)
            .next()
            .is_none_or(|e| e.revision != last);
        if complete {
            return Ok((out, last));
        }
        out.retain(|e| e.revision < last);
        if out.is_empty() {
            // One revision larger than the limit: deliver it whole.
            let whole: Vec<_> = self
                .events
                .range(start..)
                .take_while(|e| e.revision == last)
                .cloned()
                .collect();
            return Ok((whole, last));
        }
        let seen = out.last().map_or(since, |e| e.revision);
        Ok((out, seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: u64) -> HistoryEvent {
        HistoryEvent {
            revision,
            event_type: EventType::Added,
            object: Arc::new(Object::default()),
            previous: None,
        }
    }

    fn revisions(events: &[HistoryEvent]) -> Vec<u64> {
        events.iter().map(|e| e.revision).collect()
    }

    #[test]
    fn returns_events_after_a_revision() {
        let mut h = History::new(10, 0);
        for r in 1..=5 {
            h.push(r, [event(r)]);
        }
        let (events, seen) = h.since(2, 100).unwrap();
        assert_eq!(revisions(&events), vec![3, 4, 5]);
        assert_eq!(seen, 5);
    }

    #[test]
    fn old_revisions_expire_when_capacity_is_exceeded() {
        let mut h = History::new(3, 0);
        for r in 1..=5 {
            h.push(r, [event(r)]);
        }
        assert_eq!(
            h.since(1, 100).unwrap_err(),
            Expired {
                requested: 1,
                oldest: 2
            }
        );
        assert_eq!(revisions(&h.since(2, 100).unwrap().0), vec![3, 4, 5]);
    }

    #[test]
    fn a_limit_never_splits_a_revision() {
        let mut h = History::new(100, 0);
        h.push(1, [event(1)]);
        h.push(2, [event(2), event(2), event(2)]);
        h.push(3, [event(3)]);
        let (events, seen) = h.since(0, 2).unwrap();
        assert_eq!(revisions(&events), vec![1]);
        assert_eq!(seen, 1);
        let (events, seen) = h.since(1, 2).unwrap();
        assert_eq!(revisions(&events), vec![2, 2, 2]);
        assert_eq!(seen, 2);
    }

    #[test]
    fn revisions_without_events_advance_the_seen_revision() {
        let mut h = History::new(10, 7);
        h.push(8, []);
        assert_eq!(h.since(7, 10).unwrap(), (vec![], 8));
        assert!(h.since(6, 10).is_err());
    }
}
