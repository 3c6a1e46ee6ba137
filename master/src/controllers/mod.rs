//! The controllers, on the leader only: [`node_ipam`] (each node's pod
//! range), [`replicaset`], [`deployment`] and the garbage collector [`gc`], each one type behind one trait
//! ([`Controller`]) and registered in [`all`]: a change names the keys it
//! concerns (a pod names its ReplicaSet and that one's Deployment; a
//! deleted object names what it owned), and a reconcile reads the current
//! state of one key and returns a [`Plan`], never assuming which change
//! woke it. The [`runtime`] follows the store, queues keys, and applies
//! plans through Raft.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Object, ObjectMeta};
use bosun_proto::internal::{command, command_result, Command, CreateOp, DeleteOp, UpdateOp};
use bosun_proto::selector::Selector;
use bosun_proto::Kind;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::admission::{admit_new, now_seconds};
use crate::replica::Replica;
use crate::store::{HistoryEvent, Objects};

pub mod deployment;
pub mod gc;
pub mod node_ipam;
pub mod ownership;
pub mod pods;
pub mod replicaset;
pub mod rollout;
mod runtime;
pub mod template;

/// `(kind, namespace, name)` of one object.
pub type ObjectKey = (Kind, String, String);

/// One change a reconcile wants made.
#[derive(Debug, Clone)]
pub enum Action {
    /// A new object; its name (from generateName) and uid are chosen when
    /// it is proposed.
    Create(Object),
    /// The object as it should be, at the resourceVersion it was read at.
    Update(Object),
    UpdateStatus(Object),
    /// Deletes with the object's own grace period, in the background.
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
    },
    /// An Event to record.
    Event(Object),
}

impl Action {
    /// Deletes the object at `key`.
    pub fn delete((kind, namespace, name): &ObjectKey) -> Action {
        Action::Delete {
            kind: *kind,
            namespace: namespace.clone(),
            name: name.clone(),
        }
    }

    /// Deletes the object of `kind` that `meta` describes.
    pub fn delete_named(kind: Kind, meta: Option<&ObjectMeta>) -> Action {
        let meta = meta.cloned().unwrap_or_default();
        Action::delete(&(kind, meta.namespace, meta.name))
    }

    /// The name of the object this action writes, for updates.
    fn updated_name(&self) -> Option<&str> {
        match self {
            Action::Update(o) | Action::UpdateStatus(o) => Some(o.name()),
            _ => None,
        }
    }
}

/// What one reconcile decided: actions, and when to look again even if
/// nothing changes (a pod about to have been ready long enough, a progress
/// deadline).
#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue: Option<Duration>,
}

impl Plan {
    /// Whether the plan already writes the object named `name`.
    pub fn touches(&self, name: &str) -> bool {
        self.actions.iter().any(|a| a.updated_name() == Some(name))
    }
}

/// A controller: which objects a change concerns, and what to do about
/// one of them. The runtime ([`runtime`]) calls `changed` for every change
/// of the store and queues the keys it names (once each, however many
/// changes name them), then `reconcile`s each key against a snapshot of
/// the store and applies the plan. A reconcile reads the current state of
/// its key and never assumes which change woke it (STYLE.md §7).
pub trait Controller: Send {
    /// For logs.
    fn name(&self) -> &'static str;
    /// Every key there is: at start, and when the history no longer
    /// reaches back to the runtime's position. Forgets what the
    /// controller remembered.
    fn resync(&mut self, objects: &Objects, keys: &mut Vec<ObjectKey>);
    /// The keys `change` concerns; `objects` is the store now (after it).
    fn changed(&mut self, change: &HistoryEvent, objects: &Objects, keys: &mut Vec<ObjectKey>);
    /// What to do about `key`, from `objects` alone.
    fn reconcile(&self, key: &ObjectKey, objects: &Objects, now: SystemTime) -> Plan;
}

/// Every controller, in the order their keys are reconciled within a
/// round. A new controller is one file and one line here.
pub fn all(pod_ranges: node_ipam::PodRanges) -> Vec<Box<dyn Controller>> {
    vec![
        Box::new(node_ipam::NodeIpam { ranges: pod_ranges }),
        Box::new(replicaset::ReplicaSets),
        Box::new(deployment::Deployments),
        Box::new(gc::GarbageCollector::default()),
    ]
}

/// Runs the controllers until `token` is cancelled (leadership lost).
pub async fn run(replica: Arc<Replica>, pod_ranges: node_ipam::PodRanges, token: CancellationToken) {
    runtime::run(replica, all(pod_ranges), token).await;
}

/// The key of `object`, if it has a kind and metadata.
pub fn key_of(object: &Object) -> Option<ObjectKey> {
    let (kind, meta) = object.kind().zip(object.metadata())?;
    Some((kind, meta.namespace.clone(), meta.name.clone()))
}

/// The controllers of `controller_kind` in the orphan's namespace whose
/// selector matches it: they may adopt it.
pub fn adopters(objects: &Objects, controller_kind: Kind, orphan: &Object) -> Vec<ObjectKey> {
    let Some(labels) = orphan.metadata().map(|m| &m.labels) else {
        return Vec::new();
    };
    objects
        .list(controller_kind, Some(orphan.namespace()))
        .filter(|candidate| selector_of(candidate).is_some_and(|s| s.matches(labels)))
        .filter_map(|candidate| key_of(candidate))
        .collect()
}

fn selector_of(object: &Object) -> Option<Selector> {
    let selector = match object.resource.as_ref()? {
        Resource::ReplicaSet(rs) => rs.spec.as_ref()?.selector.as_ref()?,
        Resource::Deployment(d) => d.spec.as_ref()?.selector.as_ref()?,
        _ => return None,
    };
    Selector::from_message(selector).ok().filter(|s| !s.is_empty())
}

/// Proposes a plan's actions together; true when every one was applied.
async fn execute(replica: &Replica, actions: &[Action]) -> bool {
    let proposals = actions
        .iter()
        .filter_map(command_for)
        .map(|command| replica.propose(command));
    let results = join_all(proposals).await;
    let mut ok = true;
    for result in results {
        match result.map(|r| r.result) {
            Ok(Some(command_result::Result::Object(_))) => {}
            Ok(Some(command_result::Result::Rejected(rejection))) => {
                tracing::debug!(reason = %rejection.message, "controller write refused; will look again");
                ok = false;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "controller write not committed; will retry");
                ok = false;
            }
        }
    }
    ok
}

/// The command for an action; `None` (logged) for an object that does not
/// validate, which no retry would fix.
fn command_for(action: &Action) -> Option<Command> {
    let op = match action {
        Action::Create(object) => {
            let object = match admit_new(Some(object.clone())) {
                Ok(object) => object,
                Err(error) => {
                    tracing::warn!(%error, "controller cannot create an object");
                    return None;
                }
            };
            command::Op::Create(CreateOp { object: Some(object) })
        }
        Action::Update(object) => command::Op::Update(UpdateOp {
            object: Some(object.clone()),
        }),
        Action::UpdateStatus(object) => command::Op::UpdateStatus(UpdateOp {
            object: Some(object.clone()),
        }),
        Action::Delete { kind, namespace, name } => command::Op::Delete(DeleteOp {
            kind: kind.name().to_string(),
            namespace: namespace.clone(),
            name: name.clone(),
            ..Default::default()
        }),
        Action::Event(event) => return crate::events::create_command(event.clone()),
    };
    Some(Command {
        time: Some(now_seconds()),
        op: Some(op),
    })
}
