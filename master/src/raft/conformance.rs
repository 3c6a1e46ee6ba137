//! openraft's storage conformance suite, run against the rocksdb log store
//! and state machine.

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::log_store::LogStore;
use super::state_machine::{load_state, StateMachine};
use super::writer::Writer;
use super::{StorageError, TypeConfig};
use crate::db::Db;
use crate::store::Store;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let db = Db::open(dir.path()).expect("open rocksdb");
        let store = Store::new(load_state(&db)?, 100);
        let writer = Writer::start(db.clone());
        let log_store = LogStore::open(db.clone(), writer.clone())?;
        Ok((dir, log_store, StateMachine::new(db, writer, store)))
    }
}

#[test]
fn rocksdb_store_passes_openraft_conformance_suite() -> Result<(), StorageError> {
    Suite::test_all(RocksBuilder)
}
