//! Events recorded by the leader's duties (their shape is
//! [`bosun_proto::events`]), and their expiry: like Kubernetes'
//! `--event-ttl`, an event last seen more than the TTL ago is deleted by
//! the leader, so events cannot grow its (in-memory) event store without
//! bound. The store itself is [`crate::store::Events`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::Object;
use bosun_proto::internal::{command, Batch, Command, CreateOp, DeleteOp};
use bosun_proto::Kind;
use tokio_util::sync::CancellationToken;

use crate::admission::{admit_new, now_seconds};
use crate::replica::Replica;
use crate::store::{Objects, BUILT_IN_NAMESPACES};

/// Most deletions proposed at once by one sweep.
const EXPIRE_BATCH: usize = 1024;

/// The command that records `event`, or `None` if it does not validate
/// (an event is never worth failing the work it describes).
pub fn create_command(event: Object) -> Option<Command> {
    Some(Command {
        time: Some(now_seconds()),
        op: Some(command::Op::Create(CreateOp {
            object: Some(admit_new(Some(event)).ok()?),
        })),
    })
}

/// `(namespace, name, resourceVersion)` of `object` if it is an event
/// last seen before `cutoff`: at its `lastTimestamp`, else its
/// `firstTimestamp`, else its creation.
pub fn expired(object: &Object, cutoff: SystemTime) -> Option<(String, String, u64)> {
    let Some(Resource::Event(event)) = object.resource.as_ref() else {
        return None;
    };
    let meta = event.metadata.as_ref()?;
    let seen = event
        .last_timestamp
        .as_ref()
        .or(event.first_timestamp.as_ref())
        .or(meta.creation_timestamp.as_ref())?;
    let seen = SystemTime::try_from(*seen).ok()?;
    (seen < cutoff).then(|| (meta.namespace.clone(), meta.name.clone(), meta.resource_version))
}

/// How often the leader looks for expired events: a quarter of the TTL,
/// between one second and one minute.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// On the leader until `token` is cancelled: keeps the leader's event
/// store open (empty at first: see [`crate::store::Events`]) and deletes
/// expired events, and those of namespaces that are gone, from it. A
/// deletion carries the resourceVersion it was chosen at, so an event
/// recorded again meanwhile is kept. The store closes when leadership goes.
pub async fn expire(replica: Arc<Replica>, ttl: Duration, token: CancellationToken) {
    replica.events.close();
    let store = replica.events.open();
    let mut tick = tokio::time::interval(sweep_interval(ttl));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = token.cancelled() => break,
        }
        let cutoff = SystemTime::now().checked_sub(ttl);
        let namespaces = existing_namespaces(&replica.store.read().objects);
        let gone = store.scan(|event| {
            let version = event.metadata().map_or(0, |m| m.resource_version);
            let orphan = (!namespaces.contains(event.namespace()))
                .then(|| (event.namespace().to_string(), event.name().to_string(), version));
            cutoff.and_then(|cutoff| expired(&event, cutoff)).or(orphan)
        });
        if !gone.is_empty() {
            tracing::debug!(events = gone.len(), "deleting expired events");
        }
        for chunk in gone.chunks(EXPIRE_BATCH) {
            let deletions = chunk.iter().map(|(namespace, name, resource_version)| Command {
                time: Some(now_seconds()),
                op: Some(command::Op::Delete(DeleteOp {
                    kind: Kind::Event.name().to_string(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    resource_version: Some(*resource_version),
                    ..Default::default()
                })),
            });
            let batch = Command {
                time: Some(now_seconds()),
                op: Some(command::Op::Batch(Batch {
                    commands: deletions.collect(),
                })),
            };
            replica.events.apply(&batch, &replica.store);
            // Sweeping a large store never holds back the writers for long.
            tokio::task::yield_now().await;
        }
    }
    replica.events.close();
}

/// The namespaces events may be kept in: the built-in ones and those
/// that exist and are not being deleted.
fn existing_namespaces(replicated: &Objects) -> HashSet<String> {
    let mut names: HashSet<String> = BUILT_IN_NAMESPACES.iter().map(|n| n.to_string()).collect();
    names.extend(
        replicated
            .list(Kind::Namespace, None)
            .map(|ns| ns.name().to_string())
            .filter(|name| replicated.namespace_exists(name)),
    );
    names
}

/// Records `events` (each validated and stamped; one that does not
/// validate is left out) in one write; a failure is logged, never
/// returned: an event is never worth failing the work it describes.
pub async fn record(replica: &Replica, events: impl IntoIterator<Item = Object>) {
    let commands: Vec<Command> = events.into_iter().filter_map(create_command).collect();
    if commands.is_empty() {
        return;
    }
    let batch = Command {
        time: Some(now_seconds()),
        op: Some(command::Op::Batch(Batch { commands })),
    };
    if let Err(e) = replica.propose(batch).await {
        tracing::warn!(error = %e, "cannot record events");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{Event, ObjectMeta, ObjectReference};

    fn at(seconds_ago: u64) -> Option<prost_types::Timestamp> {
        Some((SystemTime::now() - Duration::from_secs(seconds_ago)).into())
    }

    fn event_named(name: &str, first: Option<prost_types::Timestamp>, last: Option<prost_types::Timestamp>) -> Event {
        Event {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            involved_object: Some(ObjectReference {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web".into(),
                ..Default::default()
            }),
            reason: "Test".into(),
            first_timestamp: first,
            last_timestamp: last,
            ..Default::default()
        }
    }

    #[test]
    fn events_last_seen_before_the_ttl_expire_and_the_rest_stay() {
        let mut unstamped = event_named("unstamped", None, None);
        unstamped.metadata.as_mut().unwrap().creation_timestamp = at(0);
        let objects = Objects::of(
            [
                event_named("old", at(7200), at(7200)),
                event_named("old-but-seen-again", at(7200), at(10)),
                event_named("recent", at(10), at(10)),
                event_named("only-first-old", at(7200), None),
                // No timestamps at all: its creation (now) counts.
                unstamped,
            ]
            .map(Object::from),
        );
        let expired_all = |ttl: Duration| -> Vec<(String, String, u64)> {
            let cutoff = SystemTime::now() - ttl;
            objects
                .list(Kind::Event, None)
                .filter_map(|o| expired(o, cutoff))
                .collect()
        };
        let mut names: Vec<String> = expired_all(Duration::from_secs(3600))
            .into_iter()
            .map(|(namespace, name, resource_version)| {
                assert_eq!(namespace, "default");
                assert!(resource_version > 0, "the deletion is conditional on the version seen");
                name
            })
            .collect();
        names.sort();
        assert_eq!(names, ["old", "only-first-old"]);
        assert!(expired_all(Duration::from_secs(3 * 3600)).is_empty());
    }

    #[test]
    fn sweeps_run_every_quarter_ttl_within_bounds() {
        assert_eq!(sweep_interval(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(sweep_interval(Duration::from_secs(40)), Duration::from_secs(10));
        assert_eq!(sweep_interval(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
