//! Admission: what happens to an object a client sends before it is
//! proposed through Raft. Defaults are filled in, the object is validated,
//! and for a create the master stamps what it owns (name from generateName,
//! uid, creation time, generation). Everything non-deterministic happens
//! here, never in the state machine.

use std::time::SystemTime;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Object, PodStatus};
use bosun_proto::{validate, Kind};
use rand::Rng;
use tonic::Status;

use crate::defaults;

/// Why an object was refused before it was proposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("object is required")]
    Missing,
    #[error("object is empty: set exactly one kind of object")]
    Empty,
    #[error("metadata.name: is required")]
    NoName,
    #[error("{kind} {name:?} is invalid: {error}")]
    Invalid {
        kind: Kind,
        name: String,
        error: validate::ValidationError,
    },
}

impl From<AdmissionError> for Status {
    fn from(error: AdmissionError) -> Status {
        Status::invalid_argument(error.to_string())
    }
}

/// Defaults and validates an object sent by a client.
pub(crate) fn prepare(object: Option<Object>) -> Result<Object, AdmissionError> {
    let mut object = object.ok_or(AdmissionError::Missing)?;
    let Some(kind) = object.kind() else {
        return Err(AdmissionError::Empty);
    };
    defaults::apply(&mut object);
    if let Err(error) = validate::validate(&object) {
        return Err(AdmissionError::Invalid {
            kind,
            name: object.name().to_string(),
            error,
        });
    }
    Ok(object)
}

/// A new object as a create stores it: defaulted, validated, and stamped
/// with what the master owns ([`stamp_new`]).
pub(crate) fn admit_new(object: Option<Object>) -> Result<Object, AdmissionError> {
    let mut object = prepare(object)?;
    stamp_new(&mut object);
    Ok(object)
}

/// Checks an object sent to `UpdateStatus`: only its identity matters, the
/// rest but the status is taken from the stored object.
pub(crate) fn prepare_status(object: Option<Object>) -> Result<Object, AdmissionError> {
    let mut object = object.ok_or(AdmissionError::Missing)?;
    let Some(kind) = object.kind() else {
        return Err(AdmissionError::Empty);
    };
    object.set_type_meta();
    let meta = object.metadata_mut().expect("checked above");
    if meta.name.is_empty() {
        return Err(AdmissionError::NoName);
    }
    if kind.namespaced() && meta.namespace.is_empty() {
        meta.namespace = "default".to_string();
    }
    Ok(object)
}

/// Sets what the master owns on a new object: name (from generateName),
/// uid, creation time, generation; resets status.
pub(crate) fn stamp_new(object: &mut Object) {
    let is_node = object.kind() == Some(Kind::Node);
    if !is_node {
        object.clear_status();
    }
    if let Some(Resource::Pod(pod)) = object.resource.as_mut() {
        pod.status = Some(PodStatus {
            phase: "Pending".to_string(),
            ..Default::default()
        });
    }
    let meta = object.metadata_mut().expect("prepared objects have a resource");
    if meta.name.is_empty() {
        meta.name = generated_name(&meta.generate_name);
    }
    meta.uid = uuid::Uuid::new_v4().to_string();
    meta.creation_timestamp = Some(now_seconds());
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.resource_version = 0;
    meta.generation = 1;
}

/// The current time at second precision, as Kubernetes stamps objects.
pub(crate) fn now_seconds() -> prost_types::Timestamp {
    let mut now: prost_types::Timestamp = SystemTime::now().into();
    now.nanos = 0;
    now
}

/// `prefix` plus five random characters, as Kubernetes generates names.
fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_the_prefix_and_are_valid() {
        let name = generated_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert!(validate::dns1123_subdomain(&name).is_ok());
    }
}
