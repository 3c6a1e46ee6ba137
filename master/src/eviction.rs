//! Node-failure eviction: the pods of a node that stopped heartbeating are
//! marked `Failed` (reason `NodeLost`) and deleted gracefully, so their
//! ReplicaSets replace them on healthy nodes at once. The objects stay
//! (Terminating) until the node's agent comes back, stops the containers
//! and removes them, as a deleted pod always goes; a pod whose node object
//! was deleted is removed at once, as nothing would ever stop it.

use std::time::Duration;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{PodCondition, PodStatus};
use bosun_proto::internal::{command, Batch, Command, DeleteOp, UpdateOp};
use bosun_proto::Kind;

use crate::admission::now_seconds;
use crate::store::Objects;

/// The commands that evict the pods on the `silent` nodes (name, silent
/// for how long), and remove terminating pods bound to nodes that no
/// longer exist (when `sweep`). Pods already being deleted are left alone,
/// so each pod is evicted once.
pub fn plan(objects: &Objects, silent: &[(String, Duration)], sweep: bool) -> Vec<Command> {
    let mut commands = Vec::new();
    if silent.is_empty() && !sweep {
        return commands;
    }
    for object in objects.list(Kind::Pod, None) {
        let Some(Resource::Pod(pod)) = object.resource.as_ref() else {
            continue;
        };
        let node = pod.spec.as_ref().map_or("", |s| s.node_name.as_str());
        if node.is_empty() {
            continue;
        }
        let terminating = pod.metadata.as_ref().is_some_and(|m| m.deletion_timestamp.is_some());
        let delete = |grace: Option<i64>| Command {
            time: Some(now_seconds()),
            op: Some(command::Op::Delete(DeleteOp {
                kind: Kind::Pod.name().to_string(),
                namespace: object.namespace().to_string(),
                name: object.name().to_string(),
                grace_period_seconds: grace,
                ..Default::default()
            })),
        };
        if terminating {
            if sweep && objects.get(Kind::Node, "", node).is_none() {
                commands.push(delete(Some(0)));
            }
            continue;
        }
        let Some((_, silence)) = silent.iter().find(|(name, _)| name == node) else {
            continue;
        };
        let message = format!(
            "node {node} stopped posting heartbeats {}s ago; the pod is replaced elsewhere",
            silence.as_secs()
        );
        let mut failed = (**pod).clone();
        // The leader's verdict on a lost node is authoritative: no
        // resourceVersion precondition.
        if let Some(meta) = failed.metadata.as_mut() {
            meta.resource_version = 0;
        }
        let status = failed.status.get_or_insert_with(PodStatus::default);
        if !matches!(status.phase.as_str(), "Succeeded" | "Failed") {
            status.phase = "Failed".into();
        }
        status.reason = "NodeLost".into();
        status.message.clone_from(&message);
        for condition in &mut status.conditions {
            if condition.r#type == "Ready" || condition.r#type == "ContainersReady" {
                condition.status = "False".into();
                condition.reason = "NodeLost".into();
            }
        }
        status.conditions.retain(|c| c.r#type != "DisruptionTarget");
        status.conditions.push(PodCondition {
            r#type: "DisruptionTarget".into(),
            status: "True".into(),
            reason: "NodeLost".into(),
            message,
            last_transition_time: Some(now_seconds()),
            ..Default::default()
        });
        // One entry, in order: the status, then the deletion.
        let fail = Command {
            time: Some(now_seconds()),
            op: Some(command::Op::UpdateStatus(UpdateOp {
                object: Some(failed.into()),
            })),
        };
        commands.push(Command {
            time: Some(now_seconds()),
            op: Some(command::Op::Batch(Batch {
                commands: vec![fail, delete(None)],
            })),
        });
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::Object;
    use bosun_proto::api::{Node, ObjectMeta, Pod, PodSpec};
    use bosun_proto::internal::command::Op;

    fn objects(with_node: bool) -> Objects {
        let node: Object = Node {
            metadata: Some(ObjectMeta {
                name: "n1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into();
        let pods = [("on-n1", "n1"), ("on-n2", "n2"), ("unbound", "")].map(|(name, node)| {
            Object::from(Pod {
                metadata: Some(ObjectMeta {
                    name: name.into(),
                    namespace: "default".into(),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    node_name: node.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
        });
        Objects::of(with_node.then_some(node).into_iter().chain(pods))
    }

    /// The commands, batches opened, in order.
    fn flat(commands: &[Command]) -> Vec<Command> {
        commands
            .iter()
            .flat_map(|c| match c.op.as_ref() {
                Some(Op::Batch(batch)) => flat(&batch.commands),
                _ => vec![c.clone()],
            })
            .collect()
    }

    fn targets(commands: &[Command]) -> Vec<String> {
        flat(commands)
            .iter()
            .map(|c| match c.op.as_ref().unwrap() {
                Op::UpdateStatus(u) => format!("fail {}", u.object.as_ref().unwrap().name()),
                Op::Delete(d) => format!("delete {} grace {:?}", d.name, d.grace_period_seconds),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn only_the_pods_of_silent_nodes_are_failed_and_deleted() {
        let objects = objects(true);
        assert!(plan(&objects, &[], false).is_empty());
        let commands = plan(&objects, &[("n1".into(), Duration::from_secs(21))], false);
        assert_eq!(targets(&commands), vec!["fail on-n1", "delete on-n1 grace None"]);
        let Some(Op::UpdateStatus(update)) = flat(&commands)[0].op.clone() else {
            unreachable!()
        };
        let pod = Pod::try_from(update.object.clone().unwrap()).unwrap();
        let status = pod.status.unwrap();
        assert_eq!((status.phase.as_str(), status.reason.as_str()), ("Failed", "NodeLost"));
    }

    #[test]
    fn terminating_pods_of_deleted_nodes_are_removed_on_a_sweep() {
        let mut objects = objects(false);
        for name in ["on-n1", "on-n2"] {
            let delete = Command {
                op: Some(Op::Delete(DeleteOp {
                    kind: "Pod".into(),
                    namespace: "default".into(),
                    name: name.into(),
                    ..Default::default()
                })),
                time: Some(now_seconds()),
            };
            let applied = objects.apply(100, &delete);
            assert!(!applied.result.deleted, "{applied:?}");
        }
        assert_eq!(objects.list(Kind::Pod, None).count(), 3);
        assert!(plan(&objects, &[], false).is_empty());
        assert_eq!(
            targets(&plan(&objects, &[], true)),
            vec!["delete on-n1 grace Some(0)", "delete on-n2 grace Some(0)"]
        );
    }
}
