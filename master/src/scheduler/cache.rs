//! The scheduler's view of the cluster: every node with what its pods
//! request (including placements decided but not yet committed), and the
//! pods waiting for a node. Built from the store and kept current from its
//! change history.

use std::collections::HashMap;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Node, Object, Pod};
use bosun_proto::resources::{self, Usage};
use bosun_proto::Kind;

use super::plugin::{NodeInfo, PodInfo};
use crate::store::Objects;

/// Resources a pod holds on a node.
#[derive(Clone, Debug, PartialEq)]
struct Placement {
    node: String,
    requests: Usage,
    owner: Option<String>,
    host_ports: Vec<(i32, String, String)>,
}

/// A pod waiting for a node.
#[derive(Clone, Debug)]
pub struct Pending {
    pub info: PodInfo,
}

#[derive(Default)]
pub struct Cache {
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods holding resources, by uid.
    placed: HashMap<String, Placement>,
    /// Pods waiting for a node, by uid.
    pub pending: HashMap<String, Pending>,
}

/// What an update may have changed for pods that did not fit anywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// A node appeared or changed, or a pod released resources: pods that
    /// did not fit may fit now.
    pub room_may_have_appeared: bool,
    /// A new pod is waiting.
    pub new_pending: bool,
}

impl Effect {
    fn merge(&mut self, other: Effect) {
        self.room_may_have_appeared |= other.room_may_have_appeared;
        self.new_pending |= other.new_pending;
    }
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.r#type == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn owner(pod: &Pod) -> Option<String> {
    let owners = &pod.metadata.as_ref()?.owner_references;
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())
        .map(|o| o.uid.clone())
}

/// What the scheduler needs to know of a pod.
pub fn pod_info(pod: &Pod) -> PodInfo {
    let meta = pod.metadata.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let affinity = spec.affinity.clone().and_then(|a| a.node_affinity).unwrap_or_default();
    PodInfo {
        uid: meta.uid,
        namespace: meta.namespace,
        name: meta.name,
        requests: resources::pod_requests(&spec),
        host_ports: resources::host_ports(&spec),
        node_selector: spec.node_selector,
        required_affinity: affinity.required_during_scheduling_ignored_during_execution,
        preferred_affinity: affinity.preferred_during_scheduling_ignored_during_execution,
        tolerations: spec.tolerations,
        owner: owner(pod),
    }
}

impl Cache {
    /// The cache of everything in `objects`.
    pub fn load(objects: &Objects) -> Cache {
        let mut cache = Cache::default();
        for node in objects.list(Kind::Node, None) {
            cache.object_changed(node, false);
        }
        for pod in objects.list(Kind::Pod, None) {
            cache.object_changed(pod, false);
        }
        cache
    }

    /// Brings the cache in line with a changed (or deleted) object.
    pub fn object_changed(&mut self, object: &Object, deleted: bool) -> Effect {
        match object.resource.as_ref() {
            Some(Resource::Node(node)) => self.node_changed(node, deleted),
            Some(Resource::Pod(pod)) => self.pod_changed(pod, deleted),
            _ => Effect::default(),
        }
    }

    fn node_changed(&mut self, node: &Node, deleted: bool) -> Effect {
        let name = node.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        if deleted {
            if let Some(index) = self.index.remove(&name) {
                self.nodes.swap_remove(index);
                if let Some(moved) = self.nodes.get(index) {
                    self.index.insert(moved.name.clone(), index);
                }
            }
            return Effect::default();
        }
        let spec = node.spec.clone().unwrap_or_default();
        let index = match self.index.get(&name) {
            Some(index) => *index,
            None => {
                self.nodes.push(NodeInfo {
                    name: name.clone(),
                    ..Default::default()
                });
                self.index.insert(name.clone(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        let info = &mut self.nodes[index];
        info.labels = node.metadata.as_ref().map(|m| m.labels.clone()).unwrap_or_default();
        info.taints = spec.taints;
        info.unschedulable = spec.unschedulable;
        info.ready = ready(node);
        info.allocatable = resources::node_allocatable(node);
        Effect {
            room_may_have_appeared: true,
            new_pending: false,
        }
    }

    fn pod_changed(&mut self, pod: &Pod, deleted: bool) -> Effect {
        let meta = pod.metadata.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut effect = Effect::default();
        let placement = (!deleted && !spec.node_name.is_empty() && !resources::is_terminal(pod)).then(|| Placement {
            node: spec.node_name.clone(),
            requests: resources::pod_requests(&spec),
            owner: owner(pod),
            host_ports: resources::host_ports(&spec),
        });
        effect.merge(self.place(&meta.uid, placement));
        let waiting =
            !deleted && spec.node_name.is_empty() && meta.deletion_timestamp.is_none() && !resources::is_terminal(pod);
        if waiting {
            let new = self
                .pending
                .insert(meta.uid.clone(), Pending { info: pod_info(pod) })
                .is_none();
            effect.new_pending |= new;
        } else {
            self.pending.remove(&meta.uid);
        }
        effect
    }

    /// Records where a pod holds resources (or that it holds none).
    fn place(&mut self, uid: &str, placement: Option<Placement>) -> Effect {
        let old = self.placed.get(uid).cloned();
        if old == placement {
            return Effect::default();
        }
        let mut effect = Effect::default();
        if let Some(old) = &old {
            self.release(old);
            effect.room_may_have_appeared = true;
            self.placed.remove(uid);
        }
        if let Some(new) = placement {
            if let Some(index) = self.index.get(&new.node) {
                let node = &mut self.nodes[*index];
                node.requested += new.requests;
                node.host_ports.extend(new.host_ports.iter().cloned());
                if let Some(owner) = &new.owner {
                    *node.owners.entry(owner.clone()).or_default() += 1;
                }
            }
            self.placed.insert(uid.to_string(), new);
        }
        effect
    }

    fn release(&mut self, old: &Placement) {
        let Some(index) = self.index.get(&old.node) else { return };
        let node = &mut self.nodes[*index];
        node.requested -= old.requests;
        for port in &old.host_ports {
            if let Some(i) = node.host_ports.iter().position(|p| p == port) {
                node.host_ports.swap_remove(i);
            }
        }
        if let Some(owner) = &old.owner {
            if let Some(count) = node.owners.get_mut(owner) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    node.owners.remove(owner);
                }
            }
        }
    }

    /// Counts a placement the scheduler decided, before it is committed.
    pub fn assume(&mut self, pod: &PodInfo, node: usize) {
        let placement = Placement {
            node: self.nodes[node].name.clone(),
            requests: pod.requests,
            owner: pod.owner.clone(),
            host_ports: pod.host_ports.clone(),
        };
        self.place(&pod.uid, Some(placement));
        self.pending.remove(&pod.uid);
    }

    /// Undoes an assumed placement that was refused.
    pub fn forget(&mut self, pod: &PodInfo) {
        self.place(&pod.uid, None);
        self.pending.insert(pod.uid.clone(), Pending { info: pod.clone() });
    }
}

#[cfg(test)]
mod tests {
    use bosun_proto::api::{self, ObjectMeta};

    use super::*;

    fn node_object(name: &str, cpu: &str) -> Object {
        api::Node {
            metadata: Some(ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            status: Some(api::NodeStatus {
                allocatable: [("cpu".to_string(), api::Quantity { value: cpu.into() })].into(),
                conditions: vec![api::NodeCondition {
                    r#type: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    fn pod_object(uid: &str, node: &str, cpu: &str) -> Object {
        api::Pod {
            metadata: Some(ObjectMeta {
                name: uid.into(),
                uid: uid.into(),
                ..Default::default()
            }),
            spec: Some(api::PodSpec {
                node_name: node.into(),
                containers: vec![api::Container {
                    resources: Some(api::ResourceRequirements {
                        requests: [("cpu".to_string(), api::Quantity { value: cpu.into() })].into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn tracks_requests_per_node_through_assume_bind_and_delete() {
        let mut cache = Cache::default();
        cache.object_changed(&node_object("n1", "2"), false);
        let effect = cache.object_changed(&pod_object("p1", "", "500m"), false);
        assert!(effect.new_pending);
        let info = cache.pending["p1"].info.clone();
        cache.assume(&info, 0);
        assert_eq!(cache.nodes[0].requested.cpu_millis, 500);
        assert!(cache.pending.is_empty());
        // The committed binding arrives: counted once.
        cache.object_changed(&pod_object("p1", "n1", "500m"), false);
        assert_eq!(cache.nodes[0].requested.cpu_millis, 500);
        let effect = cache.object_changed(&pod_object("p1", "n1", "500m"), true);
        assert!(effect.room_may_have_appeared);
        assert_eq!(cache.nodes[0].requested.cpu_millis, 0);
    }

    #[test]
    fn a_refused_placement_is_forgotten_and_the_pod_waits_again() {
        let mut cache = Cache::default();
        cache.object_changed(&node_object("n1", "2"), false);
        cache.object_changed(&pod_object("p1", "", "500m"), false);
        let info = cache.pending["p1"].info.clone();
        cache.assume(&info, 0);
        cache.forget(&info);
        assert_eq!(cache.nodes[0].requested.cpu_millis, 0);
        assert!(cache.pending.contains_key("p1"));
    }
}
