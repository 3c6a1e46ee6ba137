//! Field selectors, as Kubernetes has them: `spec.nodeName=node-1`,
//! `status.phase!=Failed`, `involvedObject.name=web`, comma-separated, all
//! of which must hold. Only the fields listed in [`SUPPORTED`] can be
//! selected on, as in Kubernetes, where each kind supports a few.

use std::fmt;

use crate::api::object::Resource;
use crate::api::Object;

/// Fields that can be selected on, for the kinds that have them.
pub const SUPPORTED: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "status.phase",
    "spec.unschedulable",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// A malformed or unsupported field selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field selector {given:?}: {reason}")]
pub struct FieldSelectorError {
    pub given: String,
    pub reason: String,
}

impl FieldSelector {
    /// Parses `field=value,field!=value`.
    ///
    /// # Errors
    /// [`FieldSelectorError`] for bad syntax or an unsupported field.
    pub fn parse(given: &str) -> Result<FieldSelector, FieldSelectorError> {
        let fail = |reason: String| FieldSelectorError {
            given: given.to_string(),
            reason,
        };
        let mut terms = Vec::new();
        for part in given.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(fail(format!("{part:?} is not field=value or field!=value")));
            };
            let field = field.trim();
            if !SUPPORTED.contains(&field) {
                return Err(fail(format!(
                    "{field:?} is not supported; supported: {}",
                    SUPPORTED.join(", ")
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `object` satisfies every term. A field the object's kind does
    /// not have reads as "".
    pub fn matches(&self, object: &Object) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = field_value(object, field);
            (actual.unwrap_or("") == value) == *equal
        })
    }

    /// The value required for `field` by an equality term, if any: lets a
    /// caller index by it.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, equal, _)| f == field && *equal)
            .map(|(_, _, v)| v.as_str())
    }
}

/// The value of a supported field of `object`, borrowed from it.
pub fn field_value<'a>(object: &'a Object, field: &str) -> Option<&'a str> {
    let meta = object.metadata();
    match field {
        "metadata.name" => return meta.map(|m| m.name.as_str()),
        "metadata.namespace" => return meta.map(|m| m.namespace.as_str()),
        _ => {}
    }
    match (object.resource.as_ref()?, field) {
        (Resource::Pod(pod), "spec.nodeName") => pod.spec.as_ref().map(|s| s.node_name.as_str()),
        (Resource::Pod(pod), "spec.restartPolicy") => pod.spec.as_ref().map(|s| s.restart_policy.as_str()),
        (Resource::Pod(pod), "status.phase") => pod.status.as_ref().map(|s| s.phase.as_str()),
        (Resource::Node(node), "spec.unschedulable") => Some(if node.spec.as_ref().is_some_and(|s| s.unschedulable) {
            "true"
        } else {
            "false"
        }),
        (Resource::Event(event), field) => {
            let involved = event.involved_object.as_ref();
            let of = |get: fn(&crate::api::ObjectReference) -> &str| Some(involved.map_or("", get));
            match field {
                "involvedObject.kind" => of(|o| &o.kind),
                "involvedObject.name" => of(|o| &o.name),
                "involvedObject.namespace" => of(|o| &o.namespace),
                "involvedObject.uid" => of(|o| &o.uid),
                "reason" => Some(&event.reason),
                "type" => Some(&event.r#type),
                _ => None,
            }
        }
        _ => None,
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|(field, equal, value)| format!("{field}{}{value}", if *equal { "=" } else { "!=" }))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{self, ObjectMeta};

    fn pod(node: &str, phase: &str) -> Object {
        api::Pod {
            metadata: Some(ObjectMeta {
                name: "p".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            spec: Some(api::PodSpec {
                node_name: node.into(),
                ..Default::default()
            }),
            status: Some(api::PodStatus {
                phase: phase.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn selects_pods_by_node_and_phase() {
        let selector = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert!(selector.matches(&pod("n1", "Running")));
        assert!(!selector.matches(&pod("n2", "Running")));
        assert!(!selector.matches(&pod("n1", "Failed")));
        assert_eq!(selector.required("spec.nodeName"), Some("n1"));
        assert!(FieldSelector::parse("spec.nodeName=")
            .unwrap()
            .matches(&pod("", "Pending")));
    }

    #[test]
    fn unsupported_fields_and_bad_syntax_are_refused() {
        assert!(FieldSelector::parse("spec.containers=x")
            .unwrap_err()
            .reason
            .contains("not supported"));
        assert!(FieldSelector::parse("spec.nodeName").is_err());
        assert!(FieldSelector::parse("").unwrap().is_empty());
    }
}
