//! `bosun.v1.Objects`: create, get, list, update, delete and watch any
//! kind of object.
//!
//! Events are kept by the leader alone ([`crate::store::Events`]): on
//! another master, their reads and watches are passed on to the leader,
//! and their writes go there as any write does. A watch of every kind
//! (no `kind`) leaves them out; watch kind Event for them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bosun_proto::api::object::Resource;
use bosun_proto::api::objects_client::ObjectsClient;
use bosun_proto::api::objects_server::Objects;
use bosun_proto::api::{
    CreateManyRequest, CreateManyResponse, CreateRequest, DeleteRequest, DeleteResponse, GetRequest, ListRequest,
    ListResponse, Object, UpdateRequest, UpdateStatusResult, UpdateStatusesRequest, UpdateStatusesResponse, WatchEvent,
    WatchRequest,
};
use bosun_proto::client::is_unavailable;
use bosun_proto::fields::FieldSelector;
use bosun_proto::internal::{command, Batch, Command, CreateOp, DeleteOp, UpdateOp};
use bosun_proto::selector::Selector;
use bosun_proto::Kind;
use futures::future::join_all;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use super::{command_outcome, replica_status};
use crate::admission::{admit_new, now_seconds, prepare, prepare_status};
use crate::replica::Replica;
use crate::store::{describe, watch_event, Delivery, Expired, Filter, OpenEvents, Propagation, Store};

/// Events a watch may have queued for a slow client before it waits.
const WATCH_BUFFER: usize = 256;
/// Events read from the history at a time by one watch.
const WATCH_BATCH: usize = 512;
/// Most objects in one UpdateStatuses or CreateMany call.
pub const MAX_PER_CALL: usize = 1000;

pub struct ObjectsService {
    replica: Arc<Replica>,
    shutdown: CancellationToken,
}

impl ObjectsService {
    pub fn new(replica: Arc<Replica>, shutdown: CancellationToken) -> ObjectsService {
        ObjectsService { replica, shutdown }
    }

    async fn barrier(&self, allow_stale: bool) -> Result<(), Status> {
        if allow_stale {
            return Ok(());
        }
        self.replica.read_barrier().await.map_err(replica_status)
    }

    /// `UpdateStatus` of one object.
    async fn write_status(&self, object: Option<Object>) -> Result<Object, Status> {
        let object = prepare_status(object)?;
        let (object, _) = self
            .propose(command::Op::UpdateStatus(UpdateOp { object: Some(object) }))
            .await?;
        Ok(object)
    }

    async fn propose(&self, op: command::Op) -> Result<(Object, bool), Status> {
        let result = self.replica.propose(command_now(op)).await.map_err(replica_status)?;
        command_outcome(result)
    }

    /// Runs a read of Events where they are kept: `here` against the event
    /// store on the leader, `there` against the leader's own Objects
    /// service otherwise (with the request as it came).
    async fn at_events<T, H, F, FF>(&self, here: H, there: F) -> Result<T, Status>
    where
        H: Fn(Arc<OpenEvents>) -> Result<T, Status>,
        F: Fn(ObjectsClient<Channel>) -> FF,
        FF: Future<Output = Result<T, Status>>,
    {
        let (here, there, replica) = (&here, &there, &self.replica);
        replica
            .at_leader(
                || async move { Ok(here(replica.events.open())) },
                |_, addr| async move {
                    let Ok(channel) = replica.peers.channel(&addr) else {
                        return Err(None);
                    };
                    match there(ObjectsClient::new(channel)).await {
                        Err(status) if is_unavailable(&status) => Err(None),
                        outcome => Ok(outcome),
                    }
                },
            )
            .await
            .map_err(replica_status)?
    }

    /// A request passed on to the leader, within the time a write may
    /// wait for it.
    fn to_leader<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.replica.leader_wait);
        request
    }

    /// Streams the changes of `store` after `since` (0: from now) that
    /// `filter` passes.
    fn watch_store(&self, store: Arc<Store>, filter: Filter, since: u64) -> Result<WatchStream, Status> {
        let since = {
            let history = store.history();
            let since = if since == 0 { history.revision() } else { since };
            // The event store's revisions are its own: one ahead of it was
            // given out by another leader's store.
            let foreign = filter.kind == Some(Kind::Event) && since > history.revision();
            if since < history.compacted() || foreign {
                return Err(expired_status(Expired {
                    requested: since,
                    oldest: history.compacted(),
                }));
            }
            since
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(stream_events(store, filter, since, tx, self.shutdown.clone()));
        Ok(Box::pin(
            ReceiverStream::new(rx).map(|delivery| delivery.map_err(expired_status)),
        ))
    }

    /// A write carried out with `dry_run`: after a linearizable read
    /// barrier, checked against the current objects, never proposed.
    async fn propose_or_dry_run(&self, op: command::Op, dry_run: bool) -> Result<Object, Status> {
        if !dry_run {
            return self.propose(op).await.map(|(object, _)| object);
        }
        self.barrier(false).await?;
        let state = self.replica.store.read();
        command_outcome(state.objects.dry_run(state.revision(), &command_now(op))).map(|(object, _)| object)
    }
}

fn command_now(op: command::Op) -> Command {
    Command {
        time: Some(now_seconds()),
        op: Some(op),
    }
}

fn is_event(object: &Object) -> bool {
    matches!(object.resource, Some(Resource::Event(_)))
}

/// A stream of watch events to a client.
type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

/// The object of `kind` named `name` in `store`.
fn get_from(store: &Store, kind: Kind, namespace: &str, name: &str) -> Result<Object, Status> {
    match store.read().objects.get(kind, namespace, name) {
        Some(object) => Ok((**object).clone()),
        None => Err(not_found(kind, namespace, name)),
    }
}

fn not_found(kind: Kind, namespace: &str, name: &str) -> Status {
    Status::not_found(format!("{} not found", describe(kind, namespace, name)))
}

/// The objects of `kind` (in `namespace`, or all) in `store` that `filter`
/// passes, with the store's revision.
fn list_from(store: &Store, kind: Kind, namespace: Option<&str>, filter: &Filter) -> ListResponse {
    let state = store.read();
    let items = state
        .objects
        .list(kind, namespace)
        .filter(|o| filter.matches(o))
        .map(|o| (**o).clone())
        .collect();
    ListResponse {
        items,
        revision: state.revision(),
    }
}

fn parse_kind(kind: &str) -> Result<Kind, Status> {
    if kind.is_empty() {
        return Err(Status::invalid_argument(
            "kind is required, for example \"Pod\" or \"deploy\"",
        ));
    }
    Kind::parse(kind).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The namespace a request addresses: "default" when unset for namespaced
/// kinds, always "" for cluster-scoped ones.
fn namespace_for(kind: Kind, namespace: &str) -> String {
    match (kind.namespaced(), namespace.is_empty()) {
        (true, true) => "default".to_string(),
        (true, false) => namespace.to_string(),
        (false, _) => String::new(),
    }
}

fn parse_selector(selector: &str) -> Result<Selector, Status> {
    Selector::parse(selector).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn parse_fields(selector: &str) -> Result<FieldSelector, Status> {
    FieldSelector::parse(selector).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Refuses a many-object call over [`MAX_PER_CALL`]. Its objects are
/// proposed concurrently, so the proposer packs them into few Raft entries.
fn check_per_call(objects: usize, call: &str) -> Result<(), Status> {
    if objects > MAX_PER_CALL {
        return Err(Status::invalid_argument(format!(
            "{objects} objects in one {call} call; at most {MAX_PER_CALL}"
        )));
    }
    Ok(())
}

/// The outcome of each object of a many-object call, in order.
fn each_result(outcomes: Vec<Result<Object, Status>>) -> Vec<UpdateStatusResult> {
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(object) => UpdateStatusResult {
                object: Some(object),
                code: Code::Ok as i32,
                message: String::new(),
            },
            Err(status) => UpdateStatusResult {
                object: None,
                code: status.code() as i32,
                message: status.message().to_string(),
            },
        })
        .collect()
}

fn expired_status(expired: Expired) -> Status {
    Status::out_of_range(expired.to_string())
}

#[tonic::async_trait]
impl Objects for ObjectsService {
    async fn create(&self, request: Request<CreateRequest>) -> Result<Response<Object>, Status> {
        let CreateRequest { object, dry_run } = request.into_inner();
        let op = command::Op::Create(CreateOp {
            object: Some(admit_new(object)?),
        });
        self.propose_or_dry_run(op, dry_run).await.map(Response::new)
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Object>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let namespace = namespace_for(kind, &request.namespace);
        if kind == Kind::Event {
            let here = |events: Arc<OpenEvents>| {
                events
                    .get(&namespace, &request.name)
                    .ok_or_else(|| not_found(kind, &namespace, &request.name))
            };
            let there = |mut client: ObjectsClient<Channel>| {
                let request = self.to_leader(request.clone());
                async move { client.get(request).await.map(Response::into_inner) }
            };
            return self.at_events(here, there).await.map(Response::new);
        }
        self.barrier(request.allow_stale).await?;
        get_from(&self.replica.store, kind, &namespace, &request.name).map(Response::new)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        let namespace = (kind.namespaced() && !request.namespace.is_empty()).then_some(request.namespace.as_str());
        let filter = Filter {
            kind: Some(kind),
            namespace: None,
            selector: parse_selector(&request.label_selector)?,
            fields: parse_fields(&request.field_selector)?,
        };
        if kind == Kind::Event {
            let here = |events: Arc<OpenEvents>| Ok(events.list(namespace, &filter));
            let there = |mut client: ObjectsClient<Channel>| {
                let request = self.to_leader(request.clone());
                async move { client.list(request).await.map(Response::into_inner) }
            };
            return self.at_events(here, there).await.map(Response::new);
        }
        self.barrier(request.allow_stale).await?;
        Ok(Response::new(list_from(&self.replica.store, kind, namespace, &filter)))
    }

    async fn update(&self, request: Request<UpdateRequest>) -> Result<Response<Object>, Status> {
        let UpdateRequest { object, dry_run } = request.into_inner();
        let object = prepare(object)?;
        let op = command::Op::Update(UpdateOp { object: Some(object) });
        self.propose_or_dry_run(op, dry_run).await.map(Response::new)
    }

    async fn update_status(&self, request: Request<UpdateRequest>) -> Result<Response<Object>, Status> {
        self.write_status(request.into_inner().object).await.map(Response::new)
    }

    async fn update_statuses(
        &self,
        request: Request<UpdateStatusesRequest>,
    ) -> Result<Response<UpdateStatusesResponse>, Status> {
        let objects = request.into_inner().objects;
        check_per_call(objects.len(), "UpdateStatuses")?;
        let updates = objects.into_iter().map(|object| self.write_status(Some(object)));
        let results = each_result(join_all(updates).await);
        Ok(Response::new(UpdateStatusesResponse { results }))
    }

    async fn create_many(&self, request: Request<CreateManyRequest>) -> Result<Response<CreateManyResponse>, Status> {
        let objects = request.into_inner().objects;
        check_per_call(objects.len(), "CreateMany")?;
        let admitted: Vec<Result<Object, Status>> = objects
            .into_iter()
            .map(|o| admit_new(Some(o)).map_err(Status::from))
            .collect();
        // A call of events alone (an agent's recorder) goes to the leader
        // as one command; others are proposed concurrently, so the
        // proposer packs them into few entries.
        if !admitted.is_empty() && admitted.iter().all(|a| a.as_ref().is_ok_and(is_event)) {
            let commands = admitted
                .into_iter()
                .flatten()
                .map(|object| command_now(command::Op::Create(CreateOp { object: Some(object) })))
                .collect();
            let batch = command_now(command::Op::Batch(Batch { commands }));
            let results = self.replica.propose(batch).await.map_err(replica_status)?.batch;
            let outcomes = results
                .into_iter()
                .map(|result| command_outcome(result).map(|(object, _)| object))
                .collect();
            return Ok(Response::new(CreateManyResponse {
                results: each_result(outcomes),
            }));
        }
        let creates = admitted.into_iter().map(|admitted| async move {
            self.propose(command::Op::Create(CreateOp {
                object: Some(admitted?),
            }))
            .await
            .map(|(object, _)| object)
        });
        let results = each_result(join_all(creates).await);
        Ok(Response::new(CreateManyResponse { results }))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        let request = request.into_inner();
        let kind = parse_kind(&request.kind)?;
        if request.name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        let op = DeleteOp {
            kind: kind.name().to_string(),
            namespace: namespace_for(kind, &request.namespace),
            name: request.name,
            resource_version: request.resource_version,
            grace_period_seconds: request.grace_period_seconds,
            propagation_policy: request.propagation_policy,
        };
        if Propagation::from_request(&op.propagation_policy).is_none() {
            return Err(Status::invalid_argument(format!(
                "propagation_policy {:?} is not one of Background, Foreground, Orphan",
                op.propagation_policy
            )));
        }
        if op.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(Status::invalid_argument("grace_period_seconds must be 0 or more"));
        }
        let (object, deleted) = self.propose(command::Op::Delete(op)).await?;
        Ok(Response::new(DeleteResponse {
            object: Some(object),
            deleted,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let kind = if request.kind.is_empty() {
            None
        } else {
            Some(parse_kind(&request.kind)?)
        };
        let filter = Filter {
            kind,
            namespace: (!request.namespace.is_empty()).then(|| request.namespace.clone()),
            selector: parse_selector(&request.label_selector)?,
            fields: parse_fields(&request.field_selector)?,
        };
        if kind == Some(Kind::Event) {
            let here =
                |events: Arc<OpenEvents>| self.watch_store(events.store(), filter.clone(), request.since_revision);
            let there = |mut client: ObjectsClient<Channel>| {
                let request = request.clone();
                async move {
                    let events = client.watch(request).await;
                    events.map(|events| Box::pin(events.into_inner()) as WatchStream)
                }
            };
            return self.at_events(here, there).await.map(Response::new);
        }
        if request.since_revision == 0 {
            // "From now" means after every write acknowledged so far, even
            // on a follower that has not applied them yet.
            self.barrier(false).await?;
        }
        self.watch_store(self.replica.store.clone(), filter, request.since_revision)
            .map(Response::new)
    }
}

/// Sends every matching event after `since` until the client goes away,
/// the master shuts down, or the client falls behind the kept history:
/// from the history while behind, live once caught up (see
/// [`crate::store::Watchers`]).
async fn stream_events(
    store: Arc<Store>,
    filter: Filter,
    mut since: u64,
    tx: mpsc::Sender<Delivery>,
    shutdown: CancellationToken,
) {
    let filter = Arc::new(filter);
    loop {
        if store.history().revision() < since {
            // A revision this master has not applied yet (the client read
            // it from a master further ahead): wait until it has, instead
            // of asking the history again and again.
            let mut revisions = store.subscribe();
            tokio::select! {
                reached = revisions.wait_for(|r| *r >= since) => if reached.is_err() { return },
                () = tx.closed() => return,
                () = shutdown.cancelled() => return,
            }
        }
        let batch = store.history().since(since, WATCH_BATCH);
        let (events, seen) = match batch {
            Ok(batch) => batch,
            Err(expired) => {
                let _ = tx.send(Err(expired)).await;
                return;
            }
        };
        let full = events.len() >= WATCH_BATCH;
        for event in events.iter().filter(|e| filter.matches(&e.object)) {
            if tx.send(Ok(watch_event(event))).await.is_err() {
                return;
            }
        }
        since = seen;
        if full {
            continue;
        }
        let Some(mut live) = store.watch_live(since, filter.clone(), tx.clone()) else {
            // Changes arrived meanwhile: read them from the history.
            continue;
        };
        tokio::select! {
            resume = &mut live.fallen_behind => match resume {
                Ok(revision) => since = revision,
                Err(_) => return,
            },
            () = tx.closed() => return,
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::api::EventType;

    #[test]
    fn event_type_numbers_match_the_proto() {
        assert_eq!(EventType::Added as i32, 1);
        assert_eq!(EventType::Deleted as i32, 3);
    }
}
