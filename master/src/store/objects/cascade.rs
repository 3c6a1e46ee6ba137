//! What deleting an owner does to the objects that name it in their
//! `ownerReferences`, decided inside the state machine so it happens in
//! the same revision as the deletion.
//!
//! - `Background` (the default): the owner goes at once; the garbage
//!   collector ([`crate::controllers`]) deletes its dependents afterwards.
//! - `Foreground`: the owner stays, marked with a deletionTimestamp and the
//!   [`FOREGROUND_FINALIZER`], until the garbage collector has deleted its
//!   dependents and removed the finalizer.
//! - `Orphan`: the dependents lose their reference to the owner here, in
//!   the same revision, so no collector ever sees them ownerless.

use std::sync::Arc;

use bosun_proto::api::EventType;
use bosun_proto::Kind;

use super::{Change, Objects};

/// The finalizer that holds an owner deleted in the foreground until its
/// dependents are gone (Kubernetes' name).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// How a deletion treats the owner's dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    /// The policy a request names; empty means `Background`. Unknown names
    /// are refused before proposing ([`Propagation::from_request`]).
    pub fn parse(policy: &str) -> Propagation {
        Propagation::from_request(policy).unwrap_or(Propagation::Background)
    }

    /// The policy a client asked for, or `None` for an unknown name.
    pub fn from_request(policy: &str) -> Option<Propagation> {
        match policy {
            "" | "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            "Orphan" => Some(Propagation::Orphan),
            _ => None,
        }
    }
}

impl Objects {
    /// Whether any object could name the owner `uid` (dependents live in
    /// the owner's namespace, or anywhere for a cluster-scoped owner).
    pub(super) fn has_dependents(&self, kind: Kind, namespace: &str, uid: &str) -> bool {
        self.dependents(kind, namespace, uid).next().is_some()
    }

    /// Removes the references to owner `uid` from its dependents.
    pub(super) fn orphan_dependents(&mut self, revision: u64, kind: Kind, namespace: &str, uid: &str) -> Vec<Change> {
        let dependents: Vec<Arc<bosun_proto::api::Object>> = self.dependents(kind, namespace, uid).cloned().collect();
        let mut changes = Vec::with_capacity(dependents.len());
        for dependent in dependents {
            let mut next = (*dependent).clone();
            let Some(meta) = next.metadata_mut() else { continue };
            meta.owner_references.retain(|r| r.uid != uid);
            meta.resource_version = revision;
            let next = Arc::new(next);
            self.insert(next.clone());
            changes.push(Change {
                event_type: EventType::Modified,
                object: next,
                previous: None,
            });
        }
        changes
    }

    fn dependents<'a>(
        &'a self,
        kind: Kind,
        namespace: &'a str,
        uid: &'a str,
    ) -> impl Iterator<Item = &'a Arc<bosun_proto::api::Object>> + 'a {
        let scope = kind.namespaced().then_some(namespace);
        Kind::ALL
            .into_iter()
            .filter(move |k| scope.is_none() || k.namespaced())
            .flat_map(move |k| self.list(k, scope))
            .filter(move |o| {
                !uid.is_empty()
                    && o.metadata()
                        .is_some_and(|m| m.owner_references.iter().any(|r| r.uid == uid))
            })
    }
}
