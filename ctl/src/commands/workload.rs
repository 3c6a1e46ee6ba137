//! What the workload commands (`scale`, `set image`, `rollout`, `describe
//! deploy/rs`) share: the Deployment controller's annotations and labels,
//! kubectl's names for resources, editing one object under a
//! resourceVersion precondition, and finding a Deployment's ReplicaSets.

use bosun_proto::api::{Deployment, LabelSelector, Object, PodTemplateSpec, ReplicaSet};
use bosun_proto::selector::Selector;
use bosun_proto::Kind;

use super::apply::update_one;
use super::{get_object, list_objects};
use crate::{Client, CtlError};

pub use bosun_proto::workload::{revision, CHANGE_CAUSE, REVISION};
/// The template annotation `rollout restart` stamps.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Attempts when another writer changes the object between read and write.
const EDIT_ATTEMPTS: usize = 5;

/// kubectl's name for a kind's resource in messages: `deployments.apps`,
/// `pods`.
pub fn resource(kind: Kind) -> String {
    match kind.api_version().split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.plural()),
        None => kind.plural().to_string(),
    }
}

/// kubectl's name for a kind in "not implemented for" messages:
/// `Deployment.apps`, `Pod`.
pub fn group_kind(kind: Kind) -> String {
    match kind.api_version().split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.name()),
        None => kind.name().to_string(),
    }
}

/// What an edit decided about the object it was shown.
pub enum Edit<T> {
    /// Write the edited object back.
    Write(T),
    /// Leave the stored object as it is.
    Keep(T),
}

/// Reads an object, lets `change` edit it, and writes it back guarded by
/// the resourceVersion it was read at. When another writer got in between
/// (ABORTED), reads and edits again. Returns the object as stored and the
/// edit's decision.
///
/// # Errors
/// A failed read or write, the error `change` returns, or an object that
/// kept changing.
pub async fn edit<T>(
    client: &mut Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    mut change: impl FnMut(&mut Object) -> Result<Edit<T>, CtlError>,
) -> Result<(Object, Edit<T>), CtlError> {
    for _ in 0..EDIT_ATTEMPTS {
        let mut object = get_object(client, kind, namespace, name).await?;
        match change(&mut object)? {
            Edit::Keep(value) => return Ok((object, Edit::Keep(value))),
            Edit::Write(value) => match update_one(client, object).await {
                Ok(updated) => return Ok((updated, Edit::Write(value))),
                Err(e) if e.code() == Some(tonic::Code::Aborted) => continue,
                Err(e) => return Err(e),
            },
        }
    }
    Err(CtlError::Invalid(format!(
        "{} {name:?} kept changing while being edited; try again",
        resource(kind)
    )))
}

/// kubectl's `--resource-version` precondition: the object must still be
/// at `expected` (when given).
///
/// # Errors
/// `Expected resource version to be 6, was 7`.
pub fn expect_version(object: &Object, expected: Option<u64>) -> Result<(), CtlError> {
    match expected {
        Some(expected) if object.resource_version() != expected => Err(CtlError::Invalid(format!(
            "Expected resource version to be {expected}, was {}",
            object.resource_version()
        ))),
        _ => Ok(()),
    }
}

/// Reads a Deployment.
///
/// # Errors
/// A failed read.
pub async fn get_deployment(client: &mut Client, namespace: &str, name: &str) -> Result<Deployment, CtlError> {
    let object = get_object(client, Kind::Deployment, namespace, name).await?;
    Deployment::try_from(object).map_err(|e| CtlError::Invalid(e.to_string()))
}

/// The ReplicaSets `deployment` controls (a controller ownerReference with
/// its uid), in no particular order.
///
/// # Errors
/// A failed list.
pub async fn owned_replica_sets(client: &mut Client, deployment: &Deployment) -> Result<Vec<ReplicaSet>, CtlError> {
    let meta = deployment.metadata.clone().unwrap_or_default();
    let selector = selector_string(deployment.spec.as_ref().and_then(|s| s.selector.as_ref()));
    let listed = list_objects(client, Kind::ReplicaSet, &meta.namespace, &selector, "").await?;
    Ok(listed
        .into_iter()
        .filter_map(|o| ReplicaSet::try_from(o).ok())
        .filter(|rs| is_controlled_by(rs, &meta.uid))
        .collect())
}

fn is_controlled_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .as_ref()
        .and_then(bosun_proto::workload::controller_of)
        .is_some_and(|o| o.kind == "Deployment" && o.uid == uid)
}

/// A selector in the API's text form (`app=web,tier in (a,b)`); empty
/// when unset or invalid.
pub fn selector_string(selector: Option<&LabelSelector>) -> String {
    selector
        .and_then(|s| Selector::from_message(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// A template as a Deployment holds it: without the `pod-template-hash`
/// label its ReplicaSet adds. Templates are compared this way.
pub fn without_hash(template: Option<&PodTemplateSpec>) -> PodTemplateSpec {
    bosun_proto::workload::without_hash(template.cloned().unwrap_or_default())
}

/// Objects for the workload commands' unit tests.
#[cfg(test)]
pub mod fixtures {
    use bosun_proto::api::{Container, ObjectMeta, PodSpec, PodTemplateSpec};
    use bosun_proto::workload::HASH_LABEL;

    /// A one-container template labelled `app=web`, with the hash label
    /// when given.
    pub fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels = std::collections::HashMap::from([("app".to_string(), "web".to_string())]);
        if let Some(hash) = hash {
            labels.insert(HASH_LABEL.to_string(), hash.to_string());
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels,
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: image.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resources_with_their_group_as_kubectl_does() {
        assert_eq!(resource(Kind::Deployment), "deployments.apps");
        assert_eq!(resource(Kind::Pod), "pods");
        assert_eq!(group_kind(Kind::ReplicaSet), "ReplicaSet.apps");
        assert_eq!(group_kind(Kind::Pod), "Pod");
    }
}
