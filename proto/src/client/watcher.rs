//! Following the objects of one kind as they change, as kube-runtime's
//! `watcher` does: list once, then watch from the list's revision. A watch
//! that breaks (a master stopped, no leader for a moment) is resumed from
//! the revision of the last change seen, on any master, so no change is
//! missed or seen twice; when that revision is no longer kept (OUT_OF_RANGE)
//! the objects are listed again and handed over whole. ctl's `get --watch`,
//! `wait` and `rollout status`, the agent's pods and its caches
//! ([`crate::client::Store`]) all follow objects through it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Streaming};

use super::{Api, ApiObject, ClientError, ListParams, WatchParams};
use crate::api::{EventType, WatchEvent};

/// Pause before watching again after a watch broke or no master answered.
pub const REWATCH_PAUSE: Duration = Duration::from_millis(500);

/// What happened to the followed objects.
#[derive(Debug)]
pub enum Change<K> {
    /// An object was added, modified or deleted (its last state).
    Event(EventType, Box<K>),
    /// The objects now, whole: the first list, or a list again because the
    /// changes since the last one seen are no longer kept.
    Relisted(Vec<K>),
}

/// The objects of one kind matching the selectors, followed.
pub struct Watcher<K> {
    api: Api<K>,
    params: WatchParams,
    /// Whether `params.since_revision` is a point to watch from (after a
    /// list, or given); before that the next change is a list.
    positioned: bool,
    stream: Option<Streaming<WatchEvent>>,
}

impl<K: ApiObject> Watcher<K> {
    /// Follows the objects of `api` (its namespace, or every namespace)
    /// that match the selectors.
    pub fn new(api: Api<K>, label_selector: &str, field_selector: &str) -> Watcher<K> {
        Watcher {
            api,
            params: WatchParams {
                label_selector: label_selector.to_string(),
                field_selector: field_selector.to_string(),
                since_revision: 0,
            },
            positioned: false,
            stream: None,
        }
    }

    /// Follows from just after `revision`: the resourceVersion of an
    /// object just read, so that read needs no list.
    #[must_use]
    pub fn since(mut self, revision: u64) -> Watcher<K> {
        self.params.since_revision = revision;
        self.positioned = true;
        self
    }

    /// The revision of the last change seen (or of the list).
    pub fn revision(&self) -> u64 {
        self.params.since_revision
    }

    /// The objects now; changes are followed from here.
    ///
    /// # Errors
    /// An unreachable cluster or a refused list (a bad selector, say).
    pub async fn list(&mut self) -> Result<Vec<K>, ClientError> {
        let params = ListParams {
            label_selector: self.params.label_selector.clone(),
            field_selector: self.params.field_selector.clone(),
        };
        let listed = self.api.list(&params).await?;
        self.params.since_revision = listed.revision;
        self.positioned = true;
        self.stream = None;
        Ok(listed.items)
    }

    /// The next change; waits as long as it takes, through outages: an
    /// unreachable cluster or a broken watch is retried every
    /// [`REWATCH_PAUSE`]. Dropping the future loses no change but
    /// restarts a list or a pause in progress: beside other work in a
    /// `select!`, read [`Watcher::spawn`]'s channel instead.
    ///
    /// # Errors
    /// A refused list or watch (a bad selector, say).
    pub async fn next(&mut self) -> Result<Change<K>, ClientError> {
        loop {
            if !self.positioned {
                match self.list().await {
                    Ok(objects) => return Ok(Change::Relisted(objects)),
                    Err(e) if transient(&e) => {
                        tracing::debug!(kind = %self.api.kind(), error = %e, "cannot list; retrying");
                        tokio::time::sleep(REWATCH_PAUSE).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                match self.api.watch(&self.params).await {
                    Ok(stream) => self.stream = Some(stream),
                    Err(e) if e.code() == Some(Code::OutOfRange) => self.positioned = false,
                    Err(e) if transient(&e) => {
                        tracing::debug!(kind = %self.api.kind(), error = %e, "cannot watch; retrying");
                        tokio::time::sleep(REWATCH_PAUSE).await;
                    }
                    Err(e) => return Err(e),
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(event)) => {
                    self.params.since_revision = self.params.since_revision.max(event.revision);
                    let (Some(object), Ok(kind)) = (event.object, EventType::try_from(event.r#type)) else {
                        continue;
                    };
                    let Ok(object) = K::from_object(object) else { continue };
                    return Ok(Change::Event(kind, Box::new(object)));
                }
                Err(status) if status.code() == Code::OutOfRange => {
                    self.stream = None;
                    self.positioned = false;
                }
                // The stream ended or broke: resume from the last change.
                Ok(None) | Err(_) => {
                    self.stream = None;
                    tokio::time::sleep(REWATCH_PAUSE).await;
                }
            }
        }
    }
}

impl<K: ApiObject> Watcher<K> {
    /// Follows in a task of its own, until `token` is cancelled or the
    /// receiver is dropped: the changes, and the refusals (each followed
    /// by a pause and a new try). Reading the channel is cancel-safe in a
    /// `select!` with other work, where calling [`Watcher::next`] again
    /// and again would restart a list or a pause each time another branch
    /// won.
    pub fn spawn(mut self, token: CancellationToken) -> mpsc::Receiver<Result<Change<K>, ClientError>> {
        let (sender, receiver) = mpsc::channel(CHANNEL);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = self.next() => next,
                    () = token.cancelled() => return,
                    () = sender.closed() => return,
                };
                let refused = next.is_err();
                if sender.send(next).await.is_err() {
                    return;
                }
                if refused {
                    tokio::select! {
                        () = tokio::time::sleep(REWATCH_PAUSE) => {}
                        () = token.cancelled() => return,
                    }
                }
            }
        });
        receiver
    }
}

/// Changes a spawned watcher may have waiting for its reader.
const CHANNEL: usize = 256;

/// A failure that a later try (on another master) may not have.
fn transient(error: &ClientError) -> bool {
    error.code().is_none_or(|code| code == Code::Unavailable)
}
