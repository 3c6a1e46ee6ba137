//! Events recorded by the leader's duties (their shape is
//! [`bosun_proto::events`]), and their expiry: like Kubernetes'
//! `--event-ttl`, an event last seen more than the TTL ago is deleted by
//! the leader, so events cannot grow the (in-memory) store without bound.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::Object;
use bosun_proto::internal::{command, Command, CreateOp, DeleteOp};
use bosun_proto::Kind;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::admission::{admit_new, now_seconds};
use crate::replica::Replica;
use crate::store::Objects;

/// Most deletions proposed at once by one sweep.
const EXPIRE_BATCH: usize = 1024;

/// The command that records `event`, or `None` if it does not validate
/// (an event is never worth failing the work it describes).
pub fn create_command(event: Object) -> Option<Command> {
    Some(Command {
        time: Some(now_seconds()),
        op: Some(command::Op::Create(CreateOp {
            object: Some(stamped(event)?),
        })),
    })
}

/// `event` validated and stamped as a create would store it (name, uid,
/// creation time), or `None` if it does not validate.
pub fn stamped(event: Object) -> Option<Object> {
    admit_new(Some(event)).ok()
}

/// The events of `objects` last seen before `now - ttl`, as
/// `(namespace, name, resourceVersion)`. An event is last seen at its
/// `lastTimestamp`, else its `firstTimestamp`, else its creation.
pub fn expired(objects: &Objects, now: SystemTime, ttl: Duration) -> Vec<(String, String, u64)> {
    let Some(cutoff) = now.checked_sub(ttl) else {
        return Vec::new();
    };
    objects
        .list(Kind::Event, None)
        .filter_map(|object| {
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
        })
        .collect()
}

/// How often the leader looks for expired events: a quarter of the TTL,
/// between one second and one minute.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// On the leader until `token` is cancelled: deletes expired events. A
/// deletion carries the resourceVersion it was chosen at, so an event
/// recorded again meanwhile is kept; failures wait for the next sweep.
pub async fn expire(replica: Arc<Replica>, ttl: Duration, token: CancellationToken) {
    let mut tick = tokio::time::interval(sweep_interval(ttl));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = token.cancelled() => return,
        }
        let expired = expired(&replica.store.read().objects, SystemTime::now(), ttl);
        if !expired.is_empty() {
            tracing::debug!(events = expired.len(), "deleting expired events");
        }
        for chunk in expired.chunks(EXPIRE_BATCH) {
            let deletions = chunk.iter().map(|(namespace, name, resource_version)| {
                replica.propose(Command {
                    time: Some(now_seconds()),
                    op: Some(command::Op::Delete(DeleteOp {
                        kind: Kind::Event.name().to_string(),
                        namespace: namespace.clone(),
                        name: name.clone(),
                        resource_version: Some(*resource_version),
                        ..Default::default()
                    })),
                })
            });
            tokio::select! {
                results = join_all(deletions) => {
                    if let Some(e) = results.into_iter().find_map(Result::err) {
                        tracing::warn!(error = %e, "cannot delete expired events yet; will retry");
                        break;
                    }
                }
                () = token.cancelled() => return,
            }
        }
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
        let mut names: Vec<String> = expired(&objects, SystemTime::now(), Duration::from_secs(3600))
            .into_iter()
            .map(|(namespace, name, resource_version)| {
                assert_eq!(namespace, "default");
                assert!(resource_version > 0, "the deletion is conditional on the version seen");
                name
            })
            .collect();
        names.sort();
        assert_eq!(names, ["old", "only-first-old"]);
        assert!(expired(&objects, SystemTime::now(), Duration::from_secs(3 * 3600)).is_empty());
    }

    #[test]
    fn sweeps_run_every_quarter_ttl_within_bounds() {
        assert_eq!(sweep_interval(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(sweep_interval(Duration::from_secs(40)), Duration::from_secs(10));
        assert_eq!(sweep_interval(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
