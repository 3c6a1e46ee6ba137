//! The one thread that writes this master's rocksdb.
//!
//! Every write (log appends, votes, truncations, purges, state-machine
//! changes, snapshots) is queued here and applied in order, so writes are
//! serialised as openraft requires and no async worker ever blocks on
//! rocksdb. Whatever is queued when the thread wakes is written together and
//! made durable with one WAL sync: group commit. State-machine writes are not
//! waited for; they become durable with the next sync.

use std::sync::mpsc;

use openraft::storage::LogFlushed;
use rocksdb::WriteBatch;
use tokio::sync::oneshot;

use super::TypeConfig;
use crate::db::Db;

enum Op {
    /// Log entries; `flushed` is called once they are durable.
    Append {
        batch: WriteBatch,
        flushed: LogFlushed<TypeConfig>,
    },
    /// State-machine changes; durable with the next sync.
    Apply(WriteBatch),
    /// Written and synced before `done` is answered.
    Durable {
        batch: WriteBatch,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// A handle on the writer thread; clones share the thread, which stops when
/// the last handle is dropped. Dropping the last handle waits for the
/// thread to finish what is queued and let go of the database, so a store
/// that was dropped is closed: a process that exits right after (a test)
/// never tears rocksdb's globals down under a database still open, which
/// aborts ("pthread lock: Invalid argument").
#[derive(Clone)]
pub struct Writer {
    // Dropped before `_thread`, so the thread sees the queue close.
    queue: mpsc::Sender<Op>,
    /// Held for its `Drop`, after `queue`.
    _thread: std::sync::Arc<Thread>,
}

struct Thread(Option<std::thread::JoinHandle<()>>);

impl Drop for Thread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            if handle.join().is_err() {
                tracing::error!("the storage writer thread panicked");
            }
        }
    }
}

/// The writer thread has stopped (only after a rocksdb failure).
#[derive(Debug, thiserror::Error)]
#[error("the storage writer has stopped: {0}")]
pub struct WriterStopped(pub String);

impl Writer {
    pub fn start(db: Db) -> Writer {
        let (queue, ops) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("rocksdb-writer".into())
            .spawn(move || run(&db, &ops))
            .expect("spawning the storage writer thread");
        Writer {
            queue,
            _thread: std::sync::Arc::new(Thread(Some(handle))),
        }
    }

    /// Queues log entries; `flushed` is called when they are durable.
    pub fn append(&self, batch: WriteBatch, flushed: LogFlushed<TypeConfig>) -> Result<(), WriterStopped> {
        self.queue
            .send(Op::Append { batch, flushed })
            .map_err(|_| WriterStopped("queue closed".into()))
    }

    /// Queues state-machine changes without waiting.
    pub fn apply(&self, batch: WriteBatch) -> Result<(), WriterStopped> {
        self.queue
            .send(Op::Apply(batch))
            .map_err(|_| WriterStopped("queue closed".into()))
    }

    /// Writes `batch` after everything queued before it and waits until it
    /// (and everything before it) is durable.
    pub async fn durable(&self, batch: WriteBatch) -> Result<(), WriterStopped> {
        let (done, wait) = oneshot::channel();
        self.queue
            .send(Op::Durable { batch, done })
            .map_err(|_| WriterStopped("queue closed".into()))?;
        wait.await
            .map_err(|_| WriterStopped("writer exited".into()))?
            .map_err(WriterStopped)
    }
}

fn run(db: &Db, ops: &mpsc::Receiver<Op>) {
    while let Ok(first) = ops.recv() {
        let mut pending: Vec<Op> = vec![first];
        pending.extend(ops.try_iter());
        let mut result: Result<(), String> = Ok(());
        let mut needs_sync = false;
        for op in &mut pending {
            let batch = match op {
                Op::Append { batch, .. } => {
                    needs_sync = true;
                    std::mem::take(batch)
                }
                Op::Apply(batch) => std::mem::take(batch),
                Op::Durable { batch, .. } => {
                    needs_sync = true;
                    std::mem::take(batch)
                }
            };
            if result.is_ok() {
                result = db.inner.write(batch).map_err(|e| e.to_string());
            }
        }
        if needs_sync && result.is_ok() {
            result = db.inner.flush_wal(true).map_err(|e| e.to_string());
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "rocksdb write failed");
        }
        for op in pending {
            match op {
                Op::Append { flushed, .. } => flushed.log_io_completed(result.clone().map_err(std::io::Error::other)),
                Op::Apply(_) => {}
                Op::Durable { done, .. } => {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_last_handle_lets_go_of_the_database() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let db = Db::open(dir.path()).expect("open rocksdb");
        let writer = Writer::start(db.clone());
        let copy = writer.clone();
        writer.apply(WriteBatch::default()).expect("queued");
        drop(writer);
        assert_eq!(
            std::sync::Arc::strong_count(&db.inner),
            2,
            "a handle is left: the thread runs on"
        );
        drop(copy);
        // The thread has finished and dropped its database handle, so the
        // database closes with ours and can be opened again at once.
        assert_eq!(std::sync::Arc::strong_count(&db.inner), 1);
        drop(db);
        Db::open(dir.path()).expect("reopen after the writer let go");
    }
}
