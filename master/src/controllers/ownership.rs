//! Owner references: which controller an object belongs to, and the rule
//! by which a controller claims objects (Kubernetes' `ControllerRef`
//! manager): it owns what names it as controller; it adopts matching
//! objects that have no controller; it releases objects it owns whose
//! labels stopped matching.

use bosun_proto::api::{ObjectMeta, OwnerReference};
use bosun_proto::selector::Selector;
pub use bosun_proto::workload::controller_of;
use bosun_proto::Kind;

/// The reference a controller of `kind` puts on what it owns.
pub fn controller_ref(kind: Kind, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: kind.api_version().to_string(),
        kind: kind.name().to_string(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller should do with one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Already ours and still matching.
    Owned,
    /// No controller and matching: ours once we write the reference.
    Adopt,
    /// Ours but no longer matching: drop our reference.
    Release,
    /// Someone else's, or not matching.
    Ignore,
}

/// How the controller `owner_uid` (with `selector`, and being deleted or
/// not) claims an object with `meta`.
pub fn claim(owner_uid: &str, owner_deleting: bool, selector: &Selector, meta: &ObjectMeta) -> Claim {
    let matches = selector.matches(&meta.labels);
    match controller_of(meta) {
        Some(owner) if owner.uid == owner_uid => {
            if matches {
                Claim::Owned
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None if matches && !owner_deleting && meta.deletion_timestamp.is_none() => Claim::Adopt,
        None => Claim::Ignore,
    }
}

/// `meta` with `reference` added as its controller.
pub fn adopted(meta: &ObjectMeta, reference: OwnerReference) -> ObjectMeta {
    let mut meta = meta.clone();
    meta.owner_references.retain(|r| r.uid != reference.uid);
    meta.owner_references.push(reference);
    meta
}

/// `meta` without the reference to `owner_uid`.
pub fn released(meta: &ObjectMeta, owner_uid: &str) -> ObjectMeta {
    let mut meta = meta.clone();
    meta.owner_references.retain(|r| r.uid != owner_uid);
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)], controller: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            owner_references: controller
                .map(|uid| OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn claims_follow_the_controller_ref_rules() {
        let selector = Selector::parse("app=web").unwrap();
        let cases = [
            (meta(&[("app", "web")], Some("me")), false, Claim::Owned),
            (meta(&[("app", "db")], Some("me")), false, Claim::Release),
            (meta(&[("app", "web")], Some("other")), false, Claim::Ignore),
            (meta(&[("app", "web")], None), false, Claim::Adopt),
            (meta(&[("app", "web")], None), true, Claim::Ignore),
            (meta(&[("app", "db")], None), false, Claim::Ignore),
        ];
        for (meta, deleting, want) in cases {
            assert_eq!(claim("me", deleting, &selector, &meta), want, "{meta:?}");
        }
    }

    #[test]
    fn adopting_and_releasing_touch_only_our_reference() {
        let base = meta(&[("app", "web")], None);
        let reference = controller_ref(
            Kind::ReplicaSet,
            &ObjectMeta {
                name: "rs".into(),
                uid: "me".into(),
                ..Default::default()
            },
        );
        let ours = adopted(&base, reference);
        assert_eq!(controller_of(&ours).map(|r| r.uid.as_str()), Some("me"));
        assert_eq!(released(&ours, "me").owner_references, vec![]);
    }
}
