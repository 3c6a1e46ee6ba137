//! The Raft log and vote in rocksdb, with the recent tail in memory.
//!
//! Appends go to an in-memory tail (so replication reads them at once) and
//! to the [`Writer`] thread, which reports them flushed once a WAL sync
//! covers them. Reads of recent entries never touch rocksdb; older ones
//! wait for queued writes, then read rocksdb off the async workers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::writer::Writer;
use super::{decode, encode, LogId, Node, NodeId, StorageError, TypeConfig};
use crate::db::{log_key, Db, CF_LOGS, CF_RAFT};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// Log entries kept in memory for replication: at most this many, and at
/// most [`TAIL_BYTES`] of them encoded (one entry may batch hundreds of
/// commands). Followers further behind read rocksdb.
const TAIL_ENTRIES: usize = 8192;
const TAIL_BYTES: usize = 1 << 20;

/// The log store; cheap to clone (clones share the database, the writer
/// and the tail).
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    writer: Writer,
    tail: Arc<Mutex<Tail>>,
}

/// What the log holds in memory.
#[derive(Default)]
struct Tail {
    /// The newest entries, contiguous, ending at the last log entry, with
    /// their encoded sizes.
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    /// The sum of the encoded sizes in `entries`.
    bytes: usize,
    /// The last entry, even when `entries` has been emptied by a purge.
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
}

impl Tail {
    /// Adds the newest entry, dropping the oldest beyond the limits.
    fn push(&mut self, entry: Entry<TypeConfig>, size: usize) {
        self.last_log_id = Some(entry.log_id);
        if let Some((_, replaced)) = self.entries.insert(entry.log_id.index, (entry, size)) {
            self.bytes -= replaced;
        }
        self.bytes += size;
        while self.entries.len() > TAIL_ENTRIES || (self.bytes > TAIL_BYTES && self.entries.len() > 1) {
            if let Some((_, (_, size))) = self.entries.pop_first() {
                self.bytes -= size;
            }
        }
    }

    /// Keeps only the entries before `index` (`keep_after` false) or
    /// after it (true).
    fn split(&mut self, index: u64, keep_after: bool) {
        let after = self.entries.split_off(&index);
        if keep_after {
            self.entries = after;
        }
        self.bytes = self.entries.values().map(|(_, size)| size).sum();
    }
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn logs_read(e: impl std::error::Error + 'static) -> StorageError {
    io_error(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn logs_write(e: impl std::error::Error + 'static) -> StorageError {
    io_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}

fn get_meta<T: for<'de> serde::Deserialize<'de>>(db: &Db, key: &[u8]) -> Result<Option<T>, StorageError> {
    let bytes = db.inner.get_cf(db.cf(CF_RAFT), key).map_err(logs_read)?;
    bytes.map(|b| decode(&b).map_err(logs_read)).transpose()
}

/// Reads entries `start..end` from rocksdb.
fn read_entries(db: &Db, start: u64, end: Option<u64>) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
    let mut entries = Vec::new();
    let iter = db
        .inner
        .iterator_cf(db.cf(CF_LOGS), IteratorMode::From(&log_key(start), Direction::Forward));
    for item in iter {
        let (key, value) = item.map_err(logs_read)?;
        let index = u64::from_be_bytes(
            key.as_ref()
                .try_into()
                .map_err(|_| logs_read(std::io::Error::other("bad log key")))?,
        );
        if end.is_some_and(|end| index >= end) {
            break;
        }
        entries.push(decode(&value).map_err(logs_read)?);
    }
    Ok(entries)
}

fn index_bounds(range: &impl RangeBounds<u64>) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => Some(i + 1),
        Bound::Excluded(i) => Some(*i),
        Bound::Unbounded => None,
    };
    (start, end)
}

/// Appends to the log a membership entry that makes master `id`, at
/// `addr`, the only member, after the last entry and in its leader's name,
/// so the next start elects this master alone and commits it with every
/// earlier entry (`--force-new-cluster`). Written before Raft starts, and
/// synced. `None` when the log holds nothing: no cluster to recover.
///
/// # Errors
/// When rocksdb cannot be read or written.
pub fn force_single_member(db: &Db, id: NodeId, addr: &str) -> Result<Option<LogId>, StorageError> {
    let newest = db.inner.iterator_cf(db.cf(CF_LOGS), IteratorMode::End).next();
    let last = match newest {
        Some(item) => {
            let (_, value) = item.map_err(logs_read)?;
            Some(decode::<Entry<TypeConfig>>(&value).map_err(logs_read)?.log_id)
        }
        None => get_meta::<LogId>(db, KEY_LAST_PURGED)?,
    };
    let Some(last) = last else { return Ok(None) };
    let log_id = LogId::new(last.leader_id, last.index + 1);
    let membership = openraft::Membership::new(
        vec![BTreeSet::from([id])],
        BTreeMap::from([(id, Node { addr: addr.to_string() })]),
    );
    let entry = Entry::<TypeConfig> {
        log_id,
        payload: EntryPayload::Membership(membership),
    };
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    db.inner
        .put_cf_opt(db.cf(CF_LOGS), log_key(log_id.index), encode(&entry), &options)
        .map_err(logs_write)?;
    Ok(Some(log_id))
}

impl LogStore {
    /// Opens the log, loading its tail from rocksdb.
    ///
    /// # Errors
    /// When rocksdb cannot be read.
    pub fn open(db: Db, writer: Writer) -> Result<LogStore, StorageError> {
        let last_purged: Option<LogId> = get_meta(&db, KEY_LAST_PURGED)?;
        let mut tail = Tail {
            last_purged,
            last_log_id: last_purged,
            ..Tail::default()
        };
        let newest = db.inner.iterator_cf(db.cf(CF_LOGS), IteratorMode::End).next();
        if let Some(item) = newest {
            let (_, value) = item.map_err(logs_read)?;
            let last: Entry<TypeConfig> = decode(&value).map_err(logs_read)?;
            let from = last.log_id.index.saturating_sub(TAIL_ENTRIES as u64 - 1);
            for entry in read_entries(&db, from, None)? {
                let size = encode(&entry).len();
                tail.push(entry, size);
            }
            tail.last_log_id = Some(last.log_id);
        }
        Ok(LogStore {
            db,
            writer,
            tail: Arc::new(Mutex::new(tail)),
        })
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let (start, end) = index_bounds(&range);
        {
            let tail = self.tail();
            let first_in_memory = tail.entries.keys().next().copied();
            if first_in_memory.is_some_and(|first| start >= first) {
                let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
                return Ok(tail
                    .entries
                    .range((Bound::Included(start), upper))
                    .map(|(_, (e, _))| e.clone())
                    .collect());
            }
        }
        // Older than the tail: make sure queued writes have landed, then
        // read rocksdb off the async workers.
        self.writer.durable(WriteBatch::default()).await.map_err(logs_read)?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || read_entries(&db, start, end))
            .await
            .map_err(logs_read)?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let tail = self.tail();
        Ok(LogState {
            last_purged_log_id: tail.last_purged,
            last_log_id: tail.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_RAFT), KEY_VOTE, encode(vote));
        self.writer
            .durable(batch)
            .await
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        get_meta(&self.db, KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not waited for: after a crash an older commit index is merely
        // slower, never unsafe.
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_RAFT), KEY_COMMITTED, encode(&committed));
        self.writer.apply(batch).map_err(logs_write)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(get_meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let cf = self.db.cf(CF_LOGS);
        {
            let mut tail = self.tail();
            for entry in entries {
                let bytes = encode(&entry);
                batch.put_cf(cf, log_key(entry.log_id.index), &bytes);
                tail.push(entry, bytes.len());
            }
        }
        self.writer.append(batch, callback).map_err(logs_write)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut tail = self.tail();
            tail.split(log_id.index, false);
            let before = tail.entries.last_key_value().map(|(_, (e, _))| e.log_id);
            tail.last_log_id = before.or(tail.last_purged);
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.db.cf(CF_LOGS), log_key(log_id.index), log_key(u64::MAX));
        self.writer.durable(batch).await.map_err(logs_write)?;
        if self.tail().entries.is_empty() {
            // The tail was shorter than what was truncated away: reload
            // the last entry that remains on disk.
            let db = self.db.clone();
            let last = tokio::task::spawn_blocking(move || {
                let mut iter = db.inner.iterator_cf(db.cf(CF_LOGS), IteratorMode::End);
                iter.next()
                    .transpose()
                    .map_err(logs_read)?
                    .map(|(_, v)| decode::<Entry<TypeConfig>>(&v).map_err(logs_read))
                    .transpose()
            })
            .await
            .map_err(logs_read)??;
            let mut tail = self.tail();
            tail.last_log_id = last.map(|e| e.log_id).or(tail.last_purged);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut tail = self.tail();
            tail.split(log_id.index + 1, true);
            tail.last_purged = Some(log_id);
            if tail.last_log_id.is_none_or(|last| last.index < log_id.index) {
                tail.last_log_id = Some(log_id);
            }
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_RAFT), KEY_LAST_PURGED, encode(&log_id));
        batch.delete_range_cf(self.db.cf(CF_LOGS), log_key(0), log_key(log_id.index + 1));
        self.writer.durable(batch).await.map_err(logs_write)
    }
}
