//! The kinds of object Bosun stores, with the names users may call them by.

use std::fmt;

/// One kind of API object. The order is the order `ctl get all` and the
/// store use; it never changes the meaning of stored data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
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
}

/// A kind name that matches no kind, with the name as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {given:?}; known kinds: {known}")]
pub struct UnknownKind {
    pub given: String,
    known: String,
}

struct KindInfo {
    name: &'static str,
    api_version: &'static str,
    namespaced: bool,
    plural: &'static str,
    short_names: &'static [&'static str],
}

const fn info(kind: Kind) -> KindInfo {
    let (name, api_version, namespaced, plural, short_names): (_, _, _, _, &[&str]) = match kind {
        Kind::Namespace => ("Namespace", "v1", false, "namespaces", &["ns"]),
        Kind::Node => ("Node", "v1", false, "nodes", &["no"]),
        Kind::Pod => ("Pod", "v1", true, "pods", &["po"]),
        Kind::ReplicaSet => ("ReplicaSet", "apps/v1", true, "replicasets", &["rs"]),
        Kind::Deployment => ("Deployment", "apps/v1", true, "deployments", &["deploy"]),
        Kind::Service => ("Service", "v1", true, "services", &["svc"]),
        Kind::Endpoints => ("Endpoints", "v1", true, "endpoints", &["ep"]),
        Kind::ConfigMap => ("ConfigMap", "v1", true, "configmaps", &["cm"]),
        Kind::Secret => ("Secret", "v1", true, "secrets", &[]),
        Kind::PersistentVolume => ("PersistentVolume", "v1", false, "persistentvolumes", &["pv"]),
        Kind::PersistentVolumeClaim => ("PersistentVolumeClaim", "v1", true, "persistentvolumeclaims", &["pvc"]),
        Kind::StorageClass => ("StorageClass", "storage.k8s.io/v1", false, "storageclasses", &["sc"]),
        Kind::Event => ("Event", "v1", true, "events", &["ev"]),
    };
    KindInfo {
        name,
        api_version,
        namespaced,
        plural,
        short_names,
    }
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::Service,
        Kind::Endpoints,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::StorageClass,
        Kind::Event,
    ];

    /// The Kubernetes kind name: `Deployment`.
    pub const fn name(self) -> &'static str {
        info(self).name
    }

    /// The apiVersion manifests use for this kind: `apps/v1`.
    pub const fn api_version(self) -> &'static str {
        info(self).api_version
    }

    /// Whether objects of this kind live in a namespace.
    pub const fn namespaced(self) -> bool {
        info(self).namespaced
    }

    /// The lowercase plural: `deployments`.
    pub const fn plural(self) -> &'static str {
        info(self).plural
    }

    /// kubectl's short names: `deploy`.
    pub const fn short_names(self) -> &'static [&'static str] {
        info(self).short_names
    }

    /// The fully qualified protobuf message name: `bosun.v1.Deployment`.
    pub fn message_name(self) -> String {
        format!("bosun.v1.{}", self.name())
    }

    /// A small stable number for keys in the store.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Parses a kind as users write it: the kind name, its lowercase
    /// singular or plural, or a short name, in any case
    /// (`Deployment`, `deployments`, `deploy`).
    ///
    /// # Errors
    /// [`UnknownKind`] listing the known kinds.
    pub fn parse(given: &str) -> Result<Kind, UnknownKind> {
        let lower = given.trim().to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|kind| {
                kind.name().eq_ignore_ascii_case(&lower)
                    || kind.plural() == lower
                    || kind.short_names().contains(&lower.as_str())
            })
            .ok_or_else(|| UnknownKind {
                given: given.to_string(),
                known: Kind::ALL.map(Kind::plural).join(", "),
            })
    }

    /// Whether `api_version` is one a manifest of this kind may carry.
    pub fn accepts_api_version(self, api_version: &str) -> bool {
        api_version == self.api_version()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_plurals_and_short_names_in_any_case() {
        for (given, kind) in [
            ("Deployment", Kind::Deployment),
            ("deployments", Kind::Deployment),
            ("deploy", Kind::Deployment),
            ("svc", Kind::Service),
            ("NS", Kind::Namespace),
            ("cm", Kind::ConfigMap),
            ("po", Kind::Pod),
            ("pvc", Kind::PersistentVolumeClaim),
            ("pv", Kind::PersistentVolume),
            ("persistentvolumeclaim", Kind::PersistentVolumeClaim),
        ] {
            assert_eq!(Kind::parse(given), Ok(kind), "{given}");
        }
    }

    #[test]
    fn unknown_kind_lists_known_ones() {
        let err = Kind::parse("widget").unwrap_err();
        assert!(err.to_string().contains("unknown kind \"widget\""));
        assert!(err.to_string().contains("deployments"));
    }

    #[test]
    fn index_matches_position_in_all() {
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}
