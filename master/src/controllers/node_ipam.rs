//! Node IPAM: gives each node its block of the cluster's pod ranges
//! (`spec.podCIDR`), as Kubernetes' node IPAM controller does. The block
//! is written with an ordinary update, and the store refuses a block that
//! overlaps another node's where the write is applied, so two nodes never
//! share one, even across a leader change. A deleted node's block is free
//! again at once: the free blocks are those no node holds. A node that
//! finds every block taken gets `NetworkUnavailable=True` (reason
//! `NoPodCIDR`) and a Warning `CIDRNotAvailable` event, and its block as
//! soon as one frees.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{EventType, Node, NodeCondition};
use bosun_proto::events::{self, Source};
use bosun_proto::net::Cidr;
use bosun_proto::Kind;

use super::{key_of, Action, Controller, ObjectKey, Plan};
use crate::admission::now_seconds;
use crate::store::{HistoryEvent, Objects};

/// The condition a node without a block carries.
pub const NETWORK_UNAVAILABLE: &str = "NetworkUnavailable";
/// Its reason.
pub const NO_POD_CIDR: &str = "NoPodCIDR";

/// The cluster's pod ranges, cut into blocks of `mask` bits, one per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRanges {
    ranges: Vec<Cidr>,
    mask: u8,
}

/// Most blocks one range may be cut into (Kubernetes' limit: a node mask
/// at most 16 bits longer than the range's).
const MAX_BLOCK_BITS: u8 = 16;

impl PodRanges {
    /// `ranges` (a comma-separated list) in blocks of `/mask`.
    ///
    /// # Errors
    /// A sentence naming the flag at fault: a range that does not parse,
    /// two that overlap, or a mask that makes blocks larger than a range,
    /// too small for a pod, or too many.
    pub fn parse(ranges: &str, mask: u8) -> Result<PodRanges, String> {
        let mut parsed: Vec<Cidr> = Vec::new();
        for text in ranges.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let range: Cidr = text.parse().map_err(|e| format!("--cluster-cidr: {e}"))?;
            if let Some(other) = parsed.iter().find(|r| r.overlaps(&range)) {
                return Err(format!("--cluster-cidr: {range} overlaps {other}"));
            }
            parsed.push(range);
        }
        if parsed.is_empty() {
            return Err("--cluster-cidr: give at least one range, such as 10.42.0.0/16".into());
        }
        if mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {mask}: a node's block needs room for a gateway and pods; at most 30"
            ));
        }
        for range in &parsed {
            if mask < range.prefix() {
                return Err(format!(
                    "--node-cidr-mask-size {mask} makes blocks larger than the cluster range {range}; give {} or more",
                    range.prefix()
                ));
            }
            if mask - range.prefix() > MAX_BLOCK_BITS {
                return Err(format!(
                    "--node-cidr-mask-size {mask} cuts {range} into {} blocks; at most 2^{MAX_BLOCK_BITS} (a mask of {} or less)",
                    range.blocks(mask),
                    range.prefix() + MAX_BLOCK_BITS
                ));
            }
        }
        Ok(PodRanges { ranges: parsed, mask })
    }

    /// The first `count` blocks no range in `used` overlaps, in order.
    fn free(&self, used: &[Cidr], count: usize) -> Vec<Cidr> {
        let by_start: BTreeMap<u32, Cidr> = used.iter().map(|c| (u32::from(c.network()), *c)).collect();
        let taken = |block: &Cidr| {
            let start = u32::from(block.network());
            let end = start.saturating_add((block.size() - 1) as u32);
            by_start.range(start..=end).next().is_some()
                || by_start
                    .range(..start)
                    .next_back()
                    .is_some_and(|(_, c)| c.overlaps(block))
        };
        let mut free = Vec::with_capacity(count);
        for range in &self.ranges {
            for index in 0..range.blocks(self.mask) {
                if free.len() >= count {
                    return free;
                }
                if let Some(block) = range.block(self.mask, index).filter(|b| !taken(b)) {
                    free.push(block);
                }
            }
        }
        free
    }
}

impl std::fmt::Display for PodRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges: Vec<String> = self.ranges.iter().map(Cidr::to_string).collect();
        write!(f, "{} in /{} blocks", ranges.join(", "), self.mask)
    }
}

/// The controller.
pub struct NodeIpam {
    pub ranges: PodRanges,
}

fn node_of(objects: &Objects, name: &str) -> Option<Node> {
    match objects.get(Kind::Node, "", name)?.resource.as_ref()? {
        Resource::Node(node) => Some((**node).clone()),
        _ => None,
    }
}

fn pod_cidr(node: &Node) -> &str {
    node.spec.as_ref().map_or("", |s| s.pod_cidr.as_str())
}

fn waits_for_block(node: &Node) -> bool {
    pod_cidr(node).is_empty() && node.metadata.as_ref().is_none_or(|m| m.deletion_timestamp.is_none())
}

fn marked_unavailable(node: &Node) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == NETWORK_UNAVAILABLE && c.reason == NO_POD_CIDR)
    })
}

/// The nodes waiting for a block, in the order they get one: oldest first.
fn waiting(objects: &Objects) -> Vec<Node> {
    let mut nodes: Vec<Node> = objects
        .list(Kind::Node, None)
        .filter_map(|o| match o.resource.as_ref() {
            Some(Resource::Node(node)) if waits_for_block(node) => Some((**node).clone()),
            _ => None,
        })
        .collect();
    nodes.sort_by_key(|n| {
        let meta = n.metadata.clone().unwrap_or_default();
        let created = meta.creation_timestamp.map_or((0, 0), |t| (t.seconds, t.nanos));
        (created, meta.name)
    });
    nodes
}

fn name(node: &Node) -> &str {
    node.metadata.as_ref().map_or("", |m| m.name.as_str())
}

impl Controller for NodeIpam {
    fn name(&self) -> &'static str {
        "node-ipam"
    }

    fn resync(&mut self, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        for object in objects.list(Kind::Node, None) {
            if let Some(Resource::Node(node)) = object.resource.as_ref() {
                if waits_for_block(node) || marked_unavailable(node) {
                    keys.extend(key_of(object));
                }
            }
        }
    }

    fn changed(&mut self, change: &HistoryEvent, objects: &Objects, keys: &mut Vec<ObjectKey>) {
        let Some(Resource::Node(node)) = change.object.resource.as_ref() else {
            return;
        };
        if change.event_type == EventType::Deleted {
            if !pod_cidr(node).is_empty() {
                // Its block is free: the nodes waiting may take it.
                for waiting in waiting(objects) {
                    keys.push((Kind::Node, String::new(), name(&waiting).to_string()));
                }
            }
            return;
        }
        if waits_for_block(node) || marked_unavailable(node) {
            keys.extend(key_of(&change.object));
        }
    }

    fn reconcile(&self, (_, _, node_name): &ObjectKey, objects: &Objects, _now: SystemTime) -> Plan {
        let mut plan = Plan::default();
        let Some(node) = node_of(objects, node_name) else {
            return plan;
        };
        if !waits_for_block(&node) {
            if marked_unavailable(&node) {
                let mut next = node;
                if let Some(status) = next.status.as_mut() {
                    status
                        .conditions
                        .retain(|c| !(c.r#type == NETWORK_UNAVAILABLE && c.reason == NO_POD_CIDR));
                }
                plan.actions.push(Action::UpdateStatus(next.into()));
            }
            return plan;
        }
        // Waiting nodes take the free blocks in order, so the nodes of one
        // round of reconciles never ask for the same block.
        let queue = waiting(objects);
        let position = queue.iter().position(|n| name(n) == node_name).unwrap_or(0);
        let used: Vec<Cidr> = objects
            .list(Kind::Node, None)
            .filter_map(|o| match o.resource.as_ref() {
                Some(Resource::Node(n)) => pod_cidr(n).parse().ok(),
                _ => None,
            })
            .collect();
        if let Some(block) = self.ranges.free(&used, position + 1).get(position) {
            let mut next = node;
            let spec = next.spec.get_or_insert_with(Default::default);
            spec.pod_cidr = block.to_string();
            spec.pod_cidrs = vec![block.to_string()];
            plan.actions.push(Action::Update(next.into()));
            return plan;
        }
        if marked_unavailable(&node) {
            return plan;
        }
        let message = format!(
            "no pod range is free for node {node_name}: the cluster's ranges ({}) are used up; add a range to --cluster-cidr or delete a node",
            self.ranges
        );
        let meta = node.metadata.clone().unwrap_or_default();
        let mut next = node;
        let status = next.status.get_or_insert_with(Default::default);
        status.conditions.retain(|c| c.r#type != NETWORK_UNAVAILABLE);
        status.conditions.push(NodeCondition {
            r#type: NETWORK_UNAVAILABLE.into(),
            status: "True".into(),
            reason: NO_POD_CIDR.into(),
            message: message.clone(),
            last_transition_time: Some(now_seconds()),
            ..Default::default()
        });
        plan.actions.push(Action::UpdateStatus(next.into()));
        plan.actions.push(Action::Event(events::event(
            events::involving(Kind::Node, &meta),
            &Source::new("node-ipam"),
            events::WARNING,
            "CIDRNotAvailable",
            &message,
        )));
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{NodeSpec, NodeStatus, Object, ObjectMeta};

    fn node(name: &str, cidr: &str) -> Object {
        Node {
            metadata: Some(ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            spec: Some(NodeSpec {
                pod_cidr: cidr.into(),
                ..Default::default()
            }),
            status: Some(NodeStatus::default()),
            ..Default::default()
        }
        .into()
    }

    fn controller(ranges: &str, mask: u8) -> NodeIpam {
        NodeIpam {
            ranges: PodRanges::parse(ranges, mask).unwrap(),
        }
    }

    fn key(name: &str) -> ObjectKey {
        (Kind::Node, String::new(), name.into())
    }

    /// The block the plan gives, if it gives one.
    fn given(plan: &Plan) -> Option<String> {
        plan.actions.iter().find_map(|a| match a {
            Action::Update(object) => Node::try_from(object.clone()).ok().map(|n| pod_cidr(&n).to_string()),
            _ => None,
        })
    }

    #[test]
    fn bad_ranges_and_masks_are_refused_with_the_flag_and_the_reason() {
        let cases = [
            ("10.42.0.0/16", 8, "larger than the cluster range 10.42.0.0/16"),
            ("10.42.0.0/16", 31, "at most 30"),
            ("10.0.0.0/8", 26, "at most 2^16"),
            (
                "10.42.0.0/16,10.42.128.0/17",
                24,
                "10.42.128.0/17 overlaps 10.42.0.0/16",
            ),
            ("fd00::/64", 24, "IPv6"),
            ("10.42.0.0", 24, "not an IPv4 range"),
            ("10.42.1.0/16", 24, "starts at 10.42.0.0/16"),
            ("", 24, "at least one range"),
        ];
        for (ranges, mask, reason) in cases {
            let error = PodRanges::parse(ranges, mask).unwrap_err();
            assert!(error.contains(reason), "{ranges} /{mask}: {error}");
            assert!(error.starts_with("--"), "names the flag: {error}");
        }
        assert!(PodRanges::parse("10.42.0.0/16, 10.50.0.0/16", 24).is_ok());
    }

    #[test]
    fn nodes_reconciled_against_one_snapshot_get_different_blocks_and_keep_theirs() {
        let ipam = controller("10.42.0.0/16", 24);
        let objects = Objects::of([node("a", "10.42.0.0/24"), node("b", ""), node("c", "")]);
        let b = ipam.reconcile(&key("b"), &objects, SystemTime::now());
        let c = ipam.reconcile(&key("c"), &objects, SystemTime::now());
        assert_eq!(given(&b).as_deref(), Some("10.42.1.0/24"));
        assert_eq!(given(&c).as_deref(), Some("10.42.2.0/24"));
        assert!(ipam
            .reconcile(&key("a"), &objects, SystemTime::now())
            .actions
            .is_empty());
    }

    #[test]
    fn a_node_finds_the_ranges_used_up_then_takes_the_block_a_deleted_node_frees() {
        let mut ipam = controller("10.42.0.0/23", 24);
        let mut objects = Objects::of([node("a", "10.42.0.0/24"), node("b", "10.42.1.0/24"), node("c", "")]);
        let plan = ipam.reconcile(&key("c"), &objects, SystemTime::now());
        assert_eq!(given(&plan), None);
        let reasons: Vec<String> = plan
            .actions
            .iter()
            .map(|a| match a {
                Action::UpdateStatus(o) => {
                    let status = Node::try_from(o.clone()).unwrap().status.unwrap();
                    let condition = status
                        .conditions
                        .iter()
                        .find(|c| c.r#type == NETWORK_UNAVAILABLE)
                        .unwrap();
                    assert!(condition.message.contains("used up"), "{condition:?}");
                    format!("{}={}", condition.reason, condition.status)
                }
                Action::Event(e) => bosun_proto::api::Event::try_from(e.clone()).unwrap().reason,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(reasons, ["NoPodCIDR=True", "CIDRNotAvailable"]);
        // Marked once: looking again writes nothing more.
        let Action::UpdateStatus(marked) = &plan.actions[0] else {
            unreachable!()
        };
        let mut marked_objects = Objects::of([node("a", "10.42.0.0/24"), node("b", "10.42.1.0/24")]);
        marked_objects.insert(std::sync::Arc::new(marked.clone()));
        assert!(ipam
            .reconcile(&key("c"), &marked_objects, SystemTime::now())
            .actions
            .is_empty());

        // b goes: c is queued, and gets b's block.
        let gone = objects.get(Kind::Node, "", "b").cloned().unwrap();
        let delete = bosun_proto::internal::Command {
            op: Some(bosun_proto::internal::command::Op::Delete(
                bosun_proto::internal::DeleteOp {
                    kind: "Node".into(),
                    name: "b".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        objects.apply(10, &delete);
        let mut keys = Vec::new();
        let change = HistoryEvent {
            revision: 10,
            event_type: EventType::Deleted,
            object: gone,
            previous: None,
        };
        ipam.changed(&change, &objects, &mut keys);
        assert_eq!(keys, [key("c")]);
        let plan = ipam.reconcile(&key("c"), &objects, SystemTime::now());
        assert_eq!(given(&plan).as_deref(), Some("10.42.1.0/24"));
    }

    #[test]
    fn free_blocks_skip_any_range_that_overlaps_a_used_one() {
        let ranges = PodRanges::parse("10.42.0.0/16", 24).unwrap();
        // A node given a /23 by hand covers two blocks.
        let used: Vec<Cidr> = ["10.42.0.0/23", "10.42.3.0/24"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let free: Vec<String> = ranges.free(&used, 2).iter().map(Cidr::to_string).collect();
        assert_eq!(free, ["10.42.2.0/24", "10.42.4.0/24"]);
        let wide: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(ranges.free(&wide, 1).is_empty());
    }
}
