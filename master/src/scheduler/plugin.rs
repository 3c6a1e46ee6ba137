//! What a scheduler plugin sees and says: the pod being placed, a node as
//! the scheduler's cache has it, and a filter's verdict with its reasons.

use std::collections::HashMap;

use bosun_proto::api::{NodeSelector, PreferredSchedulingTerm, Taint, Toleration};
use bosun_proto::resources::Usage;

/// The pod being placed, reduced to what plugins look at.
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub requests: Usage,
    pub host_ports: Vec<(i32, String, String)>,
    pub node_selector: HashMap<String, String>,
    pub required_affinity: Option<NodeSelector>,
    pub preferred_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    /// The controller that owns the pod (its uid), for spreading replicas.
    pub owner: Option<String>,
}

/// A node as the scheduler sees it, including placements it has decided
/// but not yet seen committed.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub taints: Vec<Taint>,
    pub ready: bool,
    pub unschedulable: bool,
    pub allocatable: Usage,
    pub requested: Usage,
    pub host_ports: Vec<(i32, String, String)>,
    /// Pods on the node per owning controller.
    pub owners: HashMap<String, u32>,
}

/// A filter's answer: the node can take the pod, or why not. A "no" is an
/// expected answer, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Fits,
    /// Reasons as users see them, counted across nodes:
    /// "Insufficient memory", "node(s) were unschedulable".
    Rejected(Vec<String>),
}

impl Verdict {
    pub fn reject(reason: impl Into<String>) -> Verdict {
        Verdict::Rejected(vec![reason.into()])
    }
}

/// A filter decides whether a node can take a pod.
pub trait Filter: Send + Sync {
    fn name(&self) -> &'static str;
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Verdict;
}

/// A score ranks the nodes that passed every filter. `score` gives a raw
/// value per node; `normalize` turns the raw values of all candidate nodes
/// into 0-100 (higher is better). The default keeps raw values that are
/// already 0-100.
pub trait Score: Send + Sync {
    fn name(&self) -> &'static str;
    fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64;
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Rescales `scores` so the highest becomes 100 (all 0 stay 0); with
/// `invert`, the lowest raw value scores highest.
pub fn normalize_to_100(scores: &mut [i64], invert: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for score in scores.iter_mut() {
        *score = match (max, invert) {
            (0, true) => 100,
            (0, false) => 0,
            (max, false) => *score * 100 / max,
            (max, true) => (max - *score) * 100 / max,
        };
    }
}
