//! The pods bound to this node: lists and watches them (resuming after
//! disconnects, relisting when the watch expired), keeps one
//! [`crate::worker`] per pod, and hands containers whose pod is unknown to
//! a worker that removes them. Runtime events wake the pod's worker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::{EventType, Object, Pod};
use bosun_proto::client::{Api, Change, Watcher};
use bosun_proto::Kind;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::plan::Desired;
use crate::runtime::{labels, ContainerRuntime, RuntimeEvent};
use crate::worker::{self, WorkerHandle};

/// Runtime events queued for the manager.
const EVENTS: usize = 1024;
/// How often to look for containers of unknown pods.
const SWEEP: Duration = Duration::from_secs(30);

struct Manager<R: ContainerRuntime> {
    shared: Arc<Context<R>>,
    workers: HashMap<String, WorkerHandle>,
    done: mpsc::UnboundedSender<String>,
    token: CancellationToken,
    /// Whether the pods have been listed once (before that, no container
    /// may be called an orphan).
    listed: bool,
}

/// Runs the pod manager until `token` is cancelled.
pub async fn run<R: ContainerRuntime>(shared: Arc<Context<R>>, token: CancellationToken) {
    let (done, mut finished) = mpsc::unbounded_channel();
    let (events_tx, mut events) = mpsc::channel(EVENTS);
    tokio::spawn(forward_runtime_events(shared.clone(), events_tx, token.clone()));
    let mut manager = Manager {
        shared,
        workers: HashMap::new(),
        done,
        token: token.clone(),
        listed: false,
    };
    let pods = Api::<Object>::dynamic(&manager.shared.client, Kind::Pod, "");
    let mut changes = Watcher::new(pods, "", &format!("spec.nodeName={}", manager.shared.node)).spawn(token.clone());
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(Ok(Change::Relisted(pods))) => {
                    manager.replace_all(pods);
                    if !manager.listed {
                        manager.listed = true;
                        manager.sweep().await;
                    }
                }
                Some(Ok(Change::Event(kind, pod))) => manager.apply(kind, *pod),
                // The watcher pauses and tries again by itself.
                Some(Err(e)) => tracing::warn!(error = %e, "cannot watch this node's pods; retrying"),
                None => return,
            },
            Some(uid) = finished.recv() => {
                manager.workers.remove(&uid);
            }
            Some(event) = events.recv() => manager.runtime_event(&event),
            _ = sweep.tick() => manager.sweep().await,
            () = token.cancelled() => return,
        }
    }
}

impl<R: ContainerRuntime> Manager<R> {
    fn apply(&mut self, kind: EventType, object: Object) {
        if kind == EventType::Deleted {
            self.forget(&object);
        } else {
            self.remember(object);
        }
    }

    fn remember(&mut self, object: Object) {
        let Ok(pod) = Pod::try_from(object) else { return };
        let meta = pod.metadata.clone().unwrap_or_default();
        let pod = Arc::new(pod);
        self.index().insert((meta.namespace, meta.name), pod.clone());
        match self.workers.get(&meta.uid) {
            Some(worker) => worker.update(Desired::Present(pod)),
            None => self.spawn(meta.uid, Desired::Present(pod)),
        }
    }

    fn forget(&mut self, object: &Object) {
        let Some(meta) = object.metadata() else { return };
        let key = (meta.namespace.clone(), meta.name.clone());
        let mut index = self.index();
        if index
            .get(&key)
            .is_some_and(|p| p.metadata.as_ref().is_some_and(|m| m.uid == meta.uid))
        {
            index.remove(&key);
        }
        drop(index);
        let gone = Desired::Gone {
            grace: meta.deletion_grace_period_seconds,
        };
        match self.workers.get(&meta.uid) {
            Some(worker) => worker.update(gone),
            None => self.spawn(meta.uid.clone(), gone),
        }
    }

    /// Makes the pods bound here exactly `items`.
    fn replace_all(&mut self, items: Vec<Object>) {
        let uids: HashSet<String> = items
            .iter()
            .filter_map(|o| o.metadata().map(|m| m.uid.clone()))
            .collect();
        self.index().clear();
        for object in items {
            self.remember(object);
        }
        for (uid, worker) in &self.workers {
            if !uids.contains(uid) {
                worker.update(Desired::Gone { grace: None });
            }
        }
    }

    fn index(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(String, String), Arc<Pod>>> {
        self.shared.pods.write().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&mut self, uid: String, pod: Desired) {
        let handle = worker::spawn(
            self.shared.clone(),
            uid.clone(),
            pod,
            self.done.clone(),
            self.token.clone(),
        );
        self.workers.insert(uid, handle);
    }

    fn runtime_event(&mut self, event: &RuntimeEvent) {
        match self.workers.get(&event.pod_uid) {
            Some(worker) => worker.poke(),
            // A container of a pod this agent does not know: clean it up.
            None if self.listed && !event.pod_uid.is_empty() && event.action != "destroy" => {
                self.spawn(event.pod_uid.clone(), Desired::Gone { grace: None });
            }
            None => {}
        }
    }

    /// Hands containers of unknown pods to workers that remove them.
    async fn sweep(&mut self) {
        if !self.listed {
            return;
        }
        let Ok(containers) = self
            .shared
            .runtime
            .list_containers(labels::NODE, &self.shared.node)
            .await
        else {
            return;
        };
        let orphans: HashSet<String> = containers
            .iter()
            .filter(|c| c.label(labels::CLUSTER) == self.shared.cluster())
            .map(|c| c.label(labels::POD_UID).to_string())
            .filter(|uid| !uid.is_empty() && !self.workers.contains_key(uid))
            .collect();
        for uid in orphans {
            tracing::info!(pod_uid = %uid, "removing containers of a pod no longer bound here");
            self.spawn(uid, Desired::Gone { grace: None });
        }
    }
}

/// Forwards runtime events, resubscribing when the runtime goes away.
async fn forward_runtime_events<R: ContainerRuntime>(
    shared: Arc<Context<R>>,
    events: mpsc::Sender<RuntimeEvent>,
    token: CancellationToken,
) {
    use futures::StreamExt;
    loop {
        let filter = [
            (labels::NODE.to_string(), shared.node.clone()),
            (labels::CLUSTER.to_string(), shared.cluster().to_string()),
        ];
        if let Ok(mut stream) = shared.runtime.events(&filter).await {
            loop {
                tokio::select! {
                    event = stream.next() => match event {
                        Some(event) => {
                            if events.send(event).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    () = token.cancelled() => return,
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = token.cancelled() => return,
        }
    }
}
