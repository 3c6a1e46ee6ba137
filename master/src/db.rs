//! The rocksdb database of one master: column families and key layout.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `logs` | log index, big-endian u64 | bincode `Entry` |
//! | `raft` | `vote`, `committed`, `last_purged`, `node_id` | bincode |
//! | `objects` | kind index byte, namespace, 0, name | protobuf `Object` |
//! | `sm` | `last_applied`, `membership`, `snapshot` | bincode |
//!
//! One database (one WAL) holds both the log and the state machine, so a
//! synced log write also makes every earlier state-machine write durable.

use std::path::Path;
use std::sync::Arc;

use bosun_proto::Kind;
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_RAFT: &str = "raft";
pub(crate) const CF_OBJECTS: &str = "objects";
pub(crate) const CF_SM: &str = "sm";

/// Errors opening the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create data directory {path}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open rocksdb in {path} (is another master using this data directory?)")]
    Open {
        path: String,
        #[source]
        source: rocksdb::Error,
    },
}

/// The shared database handle.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) inner: Arc<DB>,
}

impl Db {
    /// Opens (or creates) the database in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Db, DbError> {
        std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Bound the WAL so a busy master does not keep gigabytes of it.
        options.set_max_total_wal_size(64 << 20);
        options.set_keep_log_file_num(4);
        // Memtables: 8 MiB each and 32 MiB for all together (rocksdb's
        // default is 64 MiB per family). The state is also held in memory
        // by the store, so rocksdb's own caches only need to be small.
        options.set_db_write_buffer_size(32 << 20);
        let families = [CF_LOGS, CF_RAFT, CF_OBJECTS, CF_SM].map(|name| {
            let mut family = Options::default();
            family.set_write_buffer_size(8 << 20);
            ColumnFamilyDescriptor::new(name, family)
        });
        let db = DB::open_cf_descriptors(&options, dir.join("rocksdb"), families).map_err(|source| DbError::Open {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Db { inner: Arc::new(db) })
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.inner
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} is created on open"))
    }
}

/// The key of a log entry: big-endian, so keys sort by index.
pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The key of an object in the `objects` column family.
pub(crate) fn object_key(kind: Kind, namespace: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + namespace.len() + name.len());
    key.push(kind.index() as u8);
    key.extend_from_slice(namespace.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}
