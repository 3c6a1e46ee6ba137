//! Kind-independent access to an [`Object`]: its kind, metadata, status and
//! whether two objects want the same thing.
//!
//! Every function here dispatches over the thirteen kinds with one macro, so
//! adding a kind means adding one line to [`dispatch!`] and one to
//! [`crate::Kind`].

use crate::api::object::Resource;
use crate::api::{self, Object, ObjectMeta};
use crate::Kind;

/// Runs `$body` with `$inner` bound to the typed object inside `$resource`.
macro_rules! dispatch {
    ($resource:expr, $inner:ident => $body:expr) => {
        match $resource {
            Resource::Namespace($inner) => $body,
            Resource::Node($inner) => $body,
            Resource::Pod($inner) => $body,
            Resource::ReplicaSet($inner) => $body,
            Resource::Deployment($inner) => $body,
            Resource::Service($inner) => $body,
            Resource::Endpoints($inner) => $body,
            Resource::ConfigMap($inner) => $body,
            Resource::Secret($inner) => $body,
            Resource::PersistentVolume($inner) => $body,
            Resource::PersistentVolumeClaim($inner) => $body,
            Resource::StorageClass($inner) => $body,
            Resource::Event($inner) => $body,
        }
    };
}

/// Runs `$body` for kinds with a `status` field, with `$a`/`$b` the typed
/// objects of two resources of the same kind; does nothing otherwise.
macro_rules! with_status_pair {
    ($left:expr, $right:expr, $a:ident, $b:ident => $body:expr) => {
        match ($left, $right) {
            (Resource::Namespace($a), Resource::Namespace($b)) => $body,
            (Resource::Node($a), Resource::Node($b)) => $body,
            (Resource::Pod($a), Resource::Pod($b)) => $body,
            (Resource::ReplicaSet($a), Resource::ReplicaSet($b)) => $body,
            (Resource::Deployment($a), Resource::Deployment($b)) => $body,
            (Resource::Service($a), Resource::Service($b)) => $body,
            (Resource::PersistentVolume($a), Resource::PersistentVolume($b)) => $body,
            (Resource::PersistentVolumeClaim($a), Resource::PersistentVolumeClaim($b)) => $body,
            _ => {}
        }
    };
}

macro_rules! conversions {
    ($($variant:ident),* $(,)?) => {
        $(
            impl From<api::$variant> for Object {
                fn from(inner: api::$variant) -> Object {
                    Object { resource: Some(Resource::$variant(Box::new(inner))) }
                }
            }

            impl TryFrom<Object> for api::$variant {
                type Error = WrongKind;

                fn try_from(object: Object) -> Result<Self, WrongKind> {
                    match object.resource {
                        Some(Resource::$variant(inner)) => Ok(*inner),
                        other => Err(WrongKind {
                            expected: Kind::$variant,
                            actual: other.as_ref().map(resource_kind),
                        }),
                    }
                }
            }

            impl crate::client::ApiObject for api::$variant {
                fn meta(&self) -> Option<&api::ObjectMeta> {
                    self.metadata.as_ref()
                }

                fn into_object(self) -> Object {
                    self.into()
                }

                fn from_object(object: Object) -> Result<Self, WrongKind> {
                    object.try_into()
                }
            }

            impl crate::client::Typed for api::$variant {
                const KIND: Kind = Kind::$variant;
            }
        )*
    };
}

conversions!(
    Namespace,
    Node,
    Pod,
    ReplicaSet,
    Deployment,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
    Event,
);

/// An [`Object`] held a different kind than the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a {expected}, got {}", actual.map_or("an empty object".to_string(), |k| format!("a {k}")))]
pub struct WrongKind {
    pub expected: Kind,
    pub actual: Option<Kind>,
}

fn resource_kind(resource: &Resource) -> Kind {
    match resource {
        Resource::Namespace(_) => Kind::Namespace,
        Resource::Node(_) => Kind::Node,
        Resource::Pod(_) => Kind::Pod,
        Resource::ReplicaSet(_) => Kind::ReplicaSet,
        Resource::Deployment(_) => Kind::Deployment,
        Resource::Service(_) => Kind::Service,
        Resource::Endpoints(_) => Kind::Endpoints,
        Resource::ConfigMap(_) => Kind::ConfigMap,
        Resource::Secret(_) => Kind::Secret,
        Resource::PersistentVolume(_) => Kind::PersistentVolume,
        Resource::PersistentVolumeClaim(_) => Kind::PersistentVolumeClaim,
        Resource::StorageClass(_) => Kind::StorageClass,
        Resource::Event(_) => Kind::Event,
    }
}

impl Object {
    /// The kind held, or `None` for an empty object.
    pub fn kind(&self) -> Option<Kind> {
        self.resource.as_ref().map(resource_kind)
    }

    /// The object's metadata, if it has a resource and metadata.
    pub fn metadata(&self) -> Option<&ObjectMeta> {
        let resource = self.resource.as_ref()?;
        dispatch!(resource, inner => inner.metadata.as_ref())
    }

    /// The object's metadata, created empty when missing. `None` only for an
    /// empty object.
    pub fn metadata_mut(&mut self) -> Option<&mut ObjectMeta> {
        let resource = self.resource.as_mut()?;
        Some(dispatch!(resource, inner => inner.metadata.get_or_insert_with(Default::default)))
    }

    /// `metadata.name`, or "" when unset.
    pub fn name(&self) -> &str {
        self.metadata().map_or("", |m| m.name.as_str())
    }

    /// `metadata.namespace`, or "" when unset.
    pub fn namespace(&self) -> &str {
        self.metadata().map_or("", |m| m.namespace.as_str())
    }

    /// `metadata.resourceVersion`, or 0 when unset.
    pub fn resource_version(&self) -> u64 {
        self.metadata().map_or(0, |m| m.resource_version)
    }

    /// The `apiVersion` and `kind` fields as written in the object.
    pub fn type_meta(&self) -> Option<(&str, &str)> {
        let resource = self.resource.as_ref()?;
        Some(dispatch!(resource, inner => (inner.api_version.as_str(), inner.kind.as_str())))
    }

    /// Sets `apiVersion` and `kind` to the canonical values for the kind.
    pub fn set_type_meta(&mut self) {
        if let Some(resource) = self.resource.as_mut() {
            let kind = resource_kind(resource);
            dispatch!(resource, inner => {
                inner.api_version = kind.api_version().to_string();
                inner.kind = kind.name().to_string();
            })
        }
    }

    /// Whether `self` and `other` have the same desired state: everything
    /// except metadata, status and the type fields. Decides whether
    /// `metadata.generation` is bumped. Compared as values, not encoded
    /// bytes: maps encode in their (per-instance random) iteration order.
    pub fn same_spec(&self, other: &Object) -> bool {
        self.desired_state() == other.desired_state()
    }

    fn desired_state(&self) -> Object {
        let mut copy = self.clone();
        copy.clear_status();
        if let Some(resource) = copy.resource.as_mut() {
            dispatch!(resource, inner => {
                inner.metadata = None;
                inner.api_version.clear();
                inner.kind.clear();
            })
        }
        copy
    }

    /// Whether this kind has a `status` that only `UpdateStatus` changes.
    pub fn has_status(&self) -> bool {
        matches!(
            self.kind(),
            Some(
                Kind::Namespace
                    | Kind::Node
                    | Kind::Pod
                    | Kind::ReplicaSet
                    | Kind::Deployment
                    | Kind::Service
                    | Kind::PersistentVolume
                    | Kind::PersistentVolumeClaim
            )
        )
    }

    /// Removes the status, for kinds that have one.
    pub fn clear_status(&mut self) {
        let Some(resource) = self.resource.as_mut() else {
            return;
        };
        match resource {
            Resource::Namespace(o) => o.status = None,
            Resource::Node(o) => o.status = None,
            Resource::Pod(o) => o.status = None,
            Resource::ReplicaSet(o) => o.status = None,
            Resource::Deployment(o) => o.status = None,
            Resource::Service(o) => o.status = None,
            Resource::PersistentVolume(o) => o.status = None,
            Resource::PersistentVolumeClaim(o) => o.status = None,
            Resource::Endpoints(_)
            | Resource::ConfigMap(_)
            | Resource::Secret(_)
            | Resource::StorageClass(_)
            | Resource::Event(_) => {}
        }
    }

    /// Copies the status of `from` into `self` when both hold the same kind
    /// and the kind has a status.
    pub fn copy_status_from(&mut self, from: &Object) {
        if let (Some(to), Some(from)) = (self.resource.as_mut(), from.resource.as_ref()) {
            with_status_pair!(to, from, a, b => a.status.clone_from(&b.status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(name: &str, data: &[(&str, &str)]) -> Object {
        api::ConfigMap {
            metadata: Some(ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            data: data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn same_spec_ignores_metadata_but_not_data() {
        let a = config_map("a", &[("k", "v")]);
        let mut b = config_map("b", &[("k", "v")]);
        b.metadata_mut().unwrap().labels.insert("x".into(), "y".into());
        assert!(a.same_spec(&b));
        let c = config_map("a", &[("k", "w")]);
        assert!(!a.same_spec(&c));
        // Many keys inserted in opposite orders: equal whatever the maps'
        // iteration order.
        let keys: Vec<(String, String)> = (0..32).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        let forward: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let backward: Vec<(&str, &str)> = forward.iter().rev().copied().collect();
        assert!(config_map("a", &forward).same_spec(&config_map("a", &backward)));
    }

    #[test]
    fn same_spec_ignores_status() {
        let mut a: Object = api::Pod::default().into();
        let b = a.clone();
        if let Some(Resource::Pod(pod)) = a.resource.as_mut() {
            pod.status = Some(api::PodStatus {
                phase: "Running".into(),
                ..Default::default()
            });
        }
        assert!(a.same_spec(&b));
    }

    #[test]
    fn try_from_names_both_kinds_on_mismatch() {
        let err = api::Pod::try_from(config_map("a", &[])).unwrap_err();
        assert_eq!(err.to_string(), "expected a Pod, got a ConfigMap");
    }

    #[test]
    fn set_type_meta_fills_canonical_api_version() {
        let mut deploy: Object = api::Deployment::default().into();
        deploy.set_type_meta();
        assert_eq!(deploy.type_meta(), Some(("apps/v1", "Deployment")));
    }
}
