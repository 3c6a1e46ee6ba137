//! Following objects as they change: list once, then watch from the list's
//! revision. A watch that breaks (a master stopped, no leader for a
//! moment) is resumed from the revision of the last change seen, on any
//! master, so no change is missed or shown twice; when that revision is no
//! longer kept, the objects are listed again. Used by `ctl get --watch`,
//! `ctl wait` and `ctl rollout status`.

use std::time::Duration;

use bosun_proto::api::{EventType, ListRequest, Object, WatchEvent, WatchRequest};
use bosun_proto::{client, Kind};
use tonic::Streaming;

use crate::{Client, CtlError};

/// Pause before watching again after a watch broke.
const REWATCH_PAUSE: Duration = Duration::from_millis(500);

/// What happened to the followed objects.
#[derive(Debug)]
pub enum Change {
    /// An object was added, modified or deleted (its last state).
    Event(EventType, Box<Object>),
    /// The changes since the last one seen are no longer kept: these are
    /// the objects now.
    Relisted(Vec<Object>),
}

/// The objects of one kind matching the selectors, followed.
pub struct Follower {
    request: WatchRequest,
    stream: Option<Streaming<WatchEvent>>,
}

impl Follower {
    /// Follows objects of `kind` in `namespace` (empty: every namespace).
    pub fn new(kind: Kind, namespace: &str, label_selector: &str, field_selector: &str) -> Follower {
        Follower {
            request: WatchRequest {
                kind: kind.name().to_string(),
                namespace: namespace.to_string(),
                label_selector: label_selector.to_string(),
                field_selector: field_selector.to_string(),
                since_revision: 0,
            },
            stream: None,
        }
    }

    /// Follows from just after `revision`: the resourceVersion of an
    /// object just read, so that read needs no list.
    pub fn since(mut self, revision: u64) -> Follower {
        self.request.since_revision = revision;
        self
    }

    /// The objects now; changes are followed from here.
    ///
    /// # Errors
    /// An unreachable cluster or a refused list.
    pub async fn list(&mut self, client: &Client) -> Result<Vec<Object>, CtlError> {
        let request = ListRequest {
            kind: self.request.kind.clone(),
            namespace: self.request.namespace.clone(),
            label_selector: self.request.label_selector.clone(),
            field_selector: self.request.field_selector.clone(),
            allow_stale: false,
        };
        let listed = client
            .call(|channel| {
                let request = request.clone();
                async move { client::objects(channel).list(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        self.request.since_revision = listed.revision;
        self.stream = None;
        Ok(listed.items)
    }

    /// The next change after the list or the last change returned; waits
    /// as long as it takes.
    ///
    /// # Errors
    /// A refused watch (a bad selector, say).
    pub async fn next(&mut self, client: &Client) -> Result<Change, CtlError> {
        loop {
            if self.stream.is_none() {
                let request = self.request.clone();
                let opened = client
                    .call(|channel| {
                        let request = request.clone();
                        async move { client::objects(channel).watch(request).await.map(|r| r.into_inner()) }
                    })
                    .await
                    .map_err(CtlError::from);
                match opened {
                    Ok(stream) => self.stream = Some(stream),
                    Err(e) if e.code() == Some(tonic::Code::OutOfRange) => {
                        return Ok(Change::Relisted(self.list(client).await?));
                    }
                    Err(e) if e.code().is_none_or(|code| code == tonic::Code::Unavailable) => {
                        tokio::time::sleep(REWATCH_PAUSE).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(stream) = self.stream.as_mut() else { continue };
            match stream.message().await {
                Ok(Some(event)) => {
                    self.request.since_revision = self.request.since_revision.max(event.revision);
                    let (Some(object), Ok(kind)) = (event.object, EventType::try_from(event.r#type)) else {
                        continue;
                    };
                    return Ok(Change::Event(kind, Box::new(object)));
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
