//! Applying a binding: a pending pod gets its node, if the node still has
//! room. The check runs when the binding is applied, in log order, so two
//! bindings decided concurrently (or in one batch) can never overcommit a
//! node, whatever the scheduler believed when it decided.

use std::sync::Arc;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{EventType, PodCondition};
use bosun_proto::internal::{rejection, BindOp};
use bosun_proto::resources::{self, host_ports_conflict, node_allocatable};
use bosun_proto::Kind;

use super::objects::{changed, object_result, rejected, Applied, Objects};

impl Objects {
    pub(super) fn bind(&mut self, revision: u64, op: &BindOp) -> Applied {
        let Some(current) = self.get(Kind::Pod, &op.namespace, &op.name).cloned() else {
            return rejected(
                rejection::Code::NotFound,
                format!("pod {:?} not found in namespace {:?}", op.name, op.namespace),
            );
        };
        let Some(Resource::Pod(pod)) = current.resource.as_ref() else {
            return rejected(rejection::Code::Invalid, "not a pod".into());
        };
        let meta = pod.metadata.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        if meta.uid != op.uid {
            return rejected(rejection::Code::Conflict, format!("pod {:?} was replaced", op.name));
        }
        if meta.deletion_timestamp.is_some() {
            return rejected(rejection::Code::Conflict, format!("pod {:?} is being deleted", op.name));
        }
        if !spec.node_name.is_empty() {
            if spec.node_name == op.node {
                return Applied {
                    result: object_result(current, false),
                    changes: vec![],
                };
            }
            return rejected(
                rejection::Code::Conflict,
                format!("pod {:?} is already bound to {}", op.name, spec.node_name),
            );
        }
        let Some(node) = self
            .get(Kind::Node, "", &op.node)
            .and_then(|n| bosun_proto::api::Node::try_from((**n).clone()).ok())
        else {
            return rejected(rejection::Code::NotFound, format!("node {:?} not found", op.node));
        };
        let wanted = self.allocated(&op.node) + resources::pod_requests(&spec);
        let capacity = node_allocatable(&node);
        if !wanted.fits(&capacity) {
            return rejected(
                rejection::Code::Conflict,
                format!(
                    "node {:?} no longer has room: insufficient {}",
                    op.node,
                    wanted.exceeded(&capacity).join(", ")
                ),
            );
        }
        let ports = resources::host_ports(&spec);
        if !ports.is_empty() && self.host_ports_taken(&op.node, &ports) {
            return rejected(
                rejection::Code::Conflict,
                format!("node {:?} no longer has the pod's host ports free", op.node),
            );
        }
        let mut next = (*current).clone();
        if let Some(Resource::Pod(pod)) = next.resource.as_mut() {
            if let Some(spec) = pod.spec.as_mut() {
                spec.node_name = op.node.clone();
            }
            let status = pod.status.get_or_insert_with(Default::default);
            status.conditions.retain(|c| c.r#type != "PodScheduled");
            status.conditions.push(PodCondition {
                r#type: "PodScheduled".into(),
                status: "True".into(),
                ..Default::default()
            });
            if let Some(meta) = pod.metadata.as_mut() {
                meta.resource_version = revision;
            }
        }
        let next = Arc::new(next);
        self.insert(next.clone());
        changed(next, EventType::Modified)
    }

    /// Whether a pod on `node` already uses one of `ports`.
    fn host_ports_taken(&self, node: &str, ports: &[(i32, String, String)]) -> bool {
        self.list(Kind::Pod, None).any(|object| {
            let Some(Resource::Pod(pod)) = object.resource.as_ref() else {
                return false;
            };
            let Some(spec) = pod.spec.as_ref() else { return false };
            spec.node_name == node
                && !resources::is_terminal(pod)
                && host_ports_conflict(&resources::host_ports(spec), ports)
        })
    }
}
