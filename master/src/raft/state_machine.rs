//! The Raft state machine: applies committed commands to the in-memory
//! [`Store`] and persists the changed objects to rocksdb; builds and
//! installs snapshots.
//!
//! State-machine writes are queued on the [`Writer`] without waiting: they
//! share the WAL with the log, whose synced appends make them durable, and a
//! snapshot is only built after every queued write is synced, so the log is
//! never purged past what the state machine has durably applied.

use std::io::Cursor;
use std::sync::Arc;

use bosun_proto::api::Object;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError, StoredMembership};
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch};

use super::writer::Writer;
use super::{decode, encode, LogId, Membership, Response, SnapshotMeta, StorageError, TypeConfig};
use crate::db::{object_key, Db, CF_OBJECTS, CF_SM};
use crate::store::{HistoryEvent, State, Store};

const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

fn sm_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, openraft::AnyError::new(&e)).into()
}

fn snapshot_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, openraft::AnyError::new(&e)).into()
}

/// A snapshot as stored in rocksdb: its metadata and its data.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachine {
    db: Db,
    writer: Writer,
    store: Arc<Store>,
}

/// Loads the persisted state machine (objects, last applied, membership).
///
/// # Errors
/// A storage error when rocksdb cannot be read or holds undecodable data.
pub(crate) fn load_state(db: &Db) -> Result<State, StorageError> {
    let read = |e| sm_error(ErrorVerb::Read, e);
    let mut state = State::default();
    for item in db.inner.iterator_cf(db.cf(CF_OBJECTS), IteratorMode::Start) {
        let (_, value) = item.map_err(read)?;
        let object = Object::decode(value.as_ref()).map_err(|e| sm_error(ErrorVerb::Read, e))?;
        state.objects.insert(Arc::new(object));
    }
    let get = |key: &[u8]| db.inner.get_cf(db.cf(CF_SM), key).map_err(read);
    if let Some(bytes) = get(KEY_LAST_APPLIED)? {
        state.last_applied = decode(&bytes).map_err(|e| sm_error(ErrorVerb::Read, e))?;
    }
    if let Some(bytes) = get(KEY_MEMBERSHIP)? {
        state.membership = decode(&bytes).map_err(|e| sm_error(ErrorVerb::Read, e))?;
    }
    Ok(state)
}

impl StateMachine {
    pub fn new(db: Db, writer: Writer, store: Arc<Store>) -> StateMachine {
        StateMachine { db, writer, store }
    }

    async fn write_durably(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.writer
            .durable(batch)
            .await
            .map_err(|e| sm_error(ErrorVerb::Write, e))
    }
}

fn put_object(db: &Db, batch: &mut WriteBatch, object: &Object) {
    if let Some(kind) = object.kind() {
        batch.put_cf(
            db.cf(CF_OBJECTS),
            object_key(kind, object.namespace(), object.name()),
            object.encode_to_vec(),
        );
    }
}

fn delete_object(db: &Db, batch: &mut WriteBatch, object: &Object) {
    if let Some(kind) = object.kind() {
        batch.delete_cf(db.cf(CF_OBJECTS), object_key(kind, object.namespace(), object.name()));
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let state = self.store.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        use bosun_proto::api::EventType;

        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        let mut events = Vec::new();
        let revision;
        {
            let mut state = self.store.write();
            for entry in entries {
                let index = entry.log_id.index;
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => responses.push(Response::default()),
                    EntryPayload::Normal(request) => {
                        let applied = state.objects.apply(index, &request.0);
                        for change in applied.changes {
                            if change.event_type == EventType::Deleted {
                                delete_object(&self.db, &mut batch, &change.object);
                            } else {
                                put_object(&self.db, &mut batch, &change.object);
                            }
                            events.push(HistoryEvent {
                                revision: index,
                                event_type: change.event_type,
                                object: change.object,
                                previous: change.previous,
                            });
                        }
                        responses.push(Response(applied.result));
                    }
                    EntryPayload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                        responses.push(Response::default());
                    }
                }
            }
            batch.put_cf(self.db.cf(CF_SM), KEY_LAST_APPLIED, encode(&state.last_applied));
            batch.put_cf(self.db.cf(CF_SM), KEY_MEMBERSHIP, encode(&state.membership));
            revision = state.revision();
        }
        // Durable with the next log sync; reads are served from memory.
        self.writer.apply(batch).map_err(|e| sm_error(ErrorVerb::Write, e))?;
        self.store.publish(revision, events);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut state = State {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            ..State::default()
        };
        let mut buf = data.as_slice();
        while !buf.is_empty() {
            let object = Object::decode_length_delimited(&mut buf).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
            state.objects.insert(Arc::new(object));
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.db.cf(CF_OBJECTS), [0u8].as_slice(), [u8::MAX].as_slice());
        for object in state.objects.all() {
            put_object(&self.db, &mut batch, object);
        }
        batch.put_cf(self.db.cf(CF_SM), KEY_LAST_APPLIED, encode(&state.last_applied));
        batch.put_cf(self.db.cf(CF_SM), KEY_MEMBERSHIP, encode(&state.membership));
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        batch.put_cf(self.db.cf(CF_SM), KEY_SNAPSHOT, encode(&stored));
        self.write_durably(batch).await?;
        let revision = state.revision();
        *self.store.write() = state;
        self.store.reset_history(revision);
        tracing::info!(revision, "installed snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let db = self.db.clone();
        let bytes = tokio::task::spawn_blocking(move || db.inner.get_cf(db.cf(CF_SM), KEY_SNAPSHOT))
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let stored: StoredSnapshot = decode(&bytes).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Make every applied write durable before the log can be purged up
        // to this snapshot.
        self.write_durably(WriteBatch::default()).await?;
        let (objects, last_applied, membership) = {
            let state = self.store.read();
            let objects: Vec<Arc<Object>> = state.objects.all().cloned().collect();
            (objects, state.last_applied, state.membership.clone())
        };
        let data = tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            for object in objects {
                object
                    .encode_length_delimited(&mut data)
                    .expect("encoding into a Vec cannot fail");
            }
            data
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        let snapshot_id = format!(
            "{}-{}",
            last_applied.map_or(0, |id| id.leader_id.term),
            last_applied.map_or(0, |id| id.index)
        );
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_SM), KEY_SNAPSHOT, encode(&stored));
        self.write_durably(batch).await?;
        tracing::info!(
            revision = meta.last_log_id.map_or(0, |id| id.index),
            bytes = stored.data.len(),
            "built snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}
