//! The pods of one app as a watcher sees them, for `bosun-bench deploy`:
//! listed, then kept current from a watch starting at the list's revision,
//! so a benchmark checks its condition at every change instead of polling,
//! and times it as a client would see it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bosun_proto::api::{EventType, Pod, WatchEvent};
use bosun_proto::client::{Api, Client, List, ListParams, WatchParams};

pub async fn list_pods(client: &Client, app: &str) -> Result<List<Pod>> {
    let pods = Api::<Pod>::namespaced(client, "default");
    Ok(pods.list(&ListParams::default().labels(&format!("app={app}"))).await?)
}

/// The pods of one app, by name.
pub struct PodWatch {
    events: tonic::Streaming<WatchEvent>,
    pods: HashMap<String, Pod>,
    /// When each pod was first seen, first seen bound to a node, and
    /// first seen Ready.
    pub first_seen: HashMap<String, Instant>,
    pub first_bound: HashMap<String, Instant>,
    pub first_ready: HashMap<String, Instant>,
    /// Most pods not terminating, and fewest Ready, since the last
    /// [`PodWatch::reset_bounds`].
    pub most_live: usize,
    pub fewest_ready: usize,
}

impl PodWatch {
    pub async fn start(client: &Client, app: &str) -> Result<PodWatch> {
        let list = list_pods(client, app).await?;
        let params = WatchParams {
            label_selector: format!("app={app}"),
            since_revision: list.revision,
            ..Default::default()
        };
        let events = Api::<Pod>::namespaced(client, "default").watch(&params).await?;
        let mut watch = PodWatch {
            events,
            pods: HashMap::new(),
            first_seen: HashMap::new(),
            first_bound: HashMap::new(),
            first_ready: HashMap::new(),
            most_live: 0,
            fewest_ready: 0,
        };
        for pod in list.items {
            watch.record(pod);
        }
        watch.reset_bounds();
        Ok(watch)
    }

    pub fn count(&self, filter: impl Fn(&Pod) -> bool) -> usize {
        self.pods.values().filter(|p| filter(p)).count()
    }

    pub fn reset_bounds(&mut self) {
        self.most_live = self.count(|p| !terminating(p));
        self.fewest_ready = self.count(ready);
    }

    fn record(&mut self, pod: Pod) {
        let name = pod.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let now = Instant::now();
        self.first_seen.entry(name.clone()).or_insert(now);
        if !node(&pod).is_empty() {
            self.first_bound.entry(name.clone()).or_insert(now);
        }
        if ready(&pod) {
            self.first_ready.entry(name.clone()).or_insert(now);
        }
        self.pods.insert(name, pod);
    }

    fn apply(&mut self, event: WatchEvent) -> Result<()> {
        let pod = Pod::try_from(event.object.context("a watch event without an object")?)?;
        if event.r#type == EventType::Deleted as i32 {
            let name = pod.metadata.map(|m| m.name).unwrap_or_default();
            self.pods.remove(&name);
        } else {
            self.record(pod);
        }
        self.most_live = self.most_live.max(self.count(|p| !terminating(p)));
        self.fewest_ready = self.fewest_ready.min(self.count(ready));
        Ok(())
    }

    /// Applies changes until `done` holds; when it first held.
    pub async fn until(&mut self, timeout: Duration, what: &str, done: impl Fn(&PodWatch) -> bool) -> Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(self) {
                return Ok(Instant::now());
            }
            let event = tokio::time::timeout_at(deadline, self.events.message())
                .await
                .map_err(|_| {
                    anyhow!(
                        "timed out after {timeout:?} waiting for {what}; pods: {}",
                        self.summary()
                    )
                })??
                .context("the watch ended")?;
            self.apply(event)?;
        }
    }

    /// Pods by node and state, for failure messages.
    fn summary(&self) -> String {
        let mut by: HashMap<String, usize> = HashMap::new();
        for pod in self.pods.values() {
            let phase = pod.status.as_ref().map(|s| s.phase.clone()).unwrap_or_default();
            let state = if terminating(pod) {
                "terminating"
            } else if ready(pod) {
                "Ready"
            } else {
                "not Ready"
            };
            let key = format!("node {:?} v{} {phase} {state}", node(pod), version(pod));
            *by.entry(key).or_default() += 1;
        }
        let mut parts: Vec<String> = by.into_iter().map(|(k, n)| format!("{n} {k}")).collect();
        parts.sort();
        format!("{} in all [{}]", self.pods.len(), parts.join(", "))
    }
}

pub fn terminating(pod: &Pod) -> bool {
    pod.metadata.as_ref().is_some_and(|m| m.deletion_timestamp.is_some())
}

pub fn ready(pod: &Pod) -> bool {
    !terminating(pod)
        && pod
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.r#type == "Ready" && c.status == "True"))
}

pub fn version(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.iter().find(|e| e.name == "VERSION"))
        .map_or("", |e| e.value.as_str())
}

pub fn node(pod: &Pod) -> &str {
    pod.spec.as_ref().map_or("", |s| s.node_name.as_str())
}
