//! The vocabulary Deployments and their ReplicaSets share between the
//! master's controllers and ctl: Kubernetes' annotations and labels, and
//! the rules for reading them.

use crate::api::{ObjectMeta, OwnerReference, PodTemplateSpec, ReplicaSet};

/// Which revision a ReplicaSet (and its Deployment) holds: an integer,
/// highest = current.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Why a revision was made; copied from the Deployment to its ReplicaSet.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The label a ReplicaSet adds to its selector and template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// Opt-in automatic rollback on a missed progress deadline.
pub const AUTO_ROLLBACK: &str = "bosun.io/auto-rollback";
/// Set on a ReplicaSet once a rollout to it completed: the revisions an
/// automatic rollback may return to.
pub const FULLY_AVAILABLE: &str = "bosun.io/fully-available";

/// A template as a Deployment holds it: without the hash label its
/// ReplicaSet adds. Templates are compared this way.
pub fn without_hash(mut template: PodTemplateSpec) -> PodTemplateSpec {
    if let Some(meta) = template.metadata.as_mut() {
        meta.labels.remove(HASH_LABEL);
    }
    template
}

/// A ReplicaSet's revision, when it carries a valid one.
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata.as_ref()?.annotations.get(REVISION)?.trim().parse().ok()
}

/// The owner marked as controller, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().find(|r| r.controller == Some(true))
}
