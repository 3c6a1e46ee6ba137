//! Events: the one shape in which the masters' duties (scheduler,
//! controllers, node eviction) and the node agents (container failures,
//! back-offs, probes) tell users about the objects they act on, read back
//! with `ctl get events` and `ctl describe`.

use std::time::SystemTime;

use crate::api::{Event, EventSource, Object, ObjectMeta, ObjectReference};
use crate::Kind;

/// `Normal` or `Warning`, as in Kubernetes.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// A reference to the object of `kind` described by `meta`, for an event's
/// `involvedObject`.
pub fn involving(kind: Kind, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        kind: kind.name().to_string(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        api_version: kind.api_version().to_string(),
        ..Default::default()
    }
}

/// Who reports an event: a component (`scheduler`, `node-agent`...) and,
/// for one that runs on a node, that node.
#[derive(Clone, Debug, Default)]
pub struct Source {
    pub component: String,
    pub host: String,
}

impl Source {
    pub fn new(component: &str) -> Source {
        Source {
            component: component.to_string(),
            host: String::new(),
        }
    }
}

/// A new event about `involved`, seen once now. `kind` is [`NORMAL`] or
/// [`WARNING`]; its name is generated from the involved object's.
pub fn event(involved: ObjectReference, source: &Source, kind: &str, reason: &str, message: &str) -> Object {
    let now = Some(SystemTime::now().into());
    Event {
        metadata: Some(ObjectMeta {
            generate_name: format!("{}.", involved.name),
            namespace: if involved.namespace.is_empty() {
                "default".to_string()
            } else {
                involved.namespace.clone()
            },
            ..Default::default()
        }),
        involved_object: Some(involved),
        reason: reason.into(),
        message: message.into(),
        source: Some(EventSource {
            component: source.component.clone(),
            host: source.host.clone(),
        }),
        first_timestamp: now,
        last_timestamp: now,
        count: 1,
        r#type: kind.into(),
        ..Default::default()
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_its_object_and_source_and_is_seen_once() {
        let meta = ObjectMeta {
            name: "web-1".into(),
            namespace: "shop".into(),
            uid: "u1".into(),
            ..Default::default()
        };
        let source = Source {
            component: "node-agent".into(),
            host: "node-a".into(),
        };
        let object = event(involving(Kind::Pod, &meta), &source, WARNING, "BackOff", "again");
        let event = Event::try_from(object).expect("an event");
        let involved = event.involved_object.expect("involved object");
        assert_eq!(
            (
                involved.kind.as_str(),
                involved.api_version.as_str(),
                involved.uid.as_str()
            ),
            ("Pod", "v1", "u1")
        );
        let meta = event.metadata.expect("metadata");
        assert_eq!(
            (meta.namespace.as_str(), meta.generate_name.as_str()),
            ("shop", "web-1.")
        );
        assert_eq!(event.source.expect("source").host, "node-a");
        assert_eq!((event.count, event.r#type.as_str()), (1, "Warning"));
        assert_eq!(event.first_timestamp, event.last_timestamp);
    }
}
