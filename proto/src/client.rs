//! A connection to the masters that fails over: calls go to the first
//! master that answers; when it becomes unavailable the next one is tried.
//! [`Api`] is the typed view of one kind on it, [`Watcher`] follows a
//! kind's changes and [`Store`] keeps a copy of them. Used by ctl, the
//! node agent, the benchmark and the tests.

use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::transport::Transport;

mod api;
mod reflector;
mod watcher;

pub use api::{Api, ApiObject, DeleteParams, List, ListParams, PostParams, Typed, WatchParams};
pub use reflector::{reflect, Store};
pub use watcher::{Change, Watcher, REWATCH_PAUSE};
/// Largest message a client sends or accepts.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// No master could be connected to; one entry per master tried.
    #[error("cannot reach any master ({})", tried.join("; "))]
    Unreachable { tried: Vec<String> },
    /// A master answered with an error.
    #[error("{}", .0.message())]
    Status(Status),
}

impl ClientError {
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status(status) => Some(status.code()),
            ClientError::Unreachable { .. } => None,
        }
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        ClientError::Status(status)
    }
}

/// Whether a call failed because the master could not be reached, so
/// another master (or a later try) may succeed: UNAVAILABLE, and also a
/// connection that broke under the call, which tonic reports as UNKNOWN
/// "transport error" where other gRPC implementations say UNAVAILABLE.
pub fn is_unavailable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown => {
            let mut source = std::error::Error::source(status);
            while let Some(error) = source {
                if error.is::<tonic::transport::Error>() || error.is::<std::io::Error>() {
                    return true;
                }
                source = error.source();
            }
            false
        }
        _ => false,
    }
}

/// Clones share one connection (HTTP/2 multiplexes their calls) and fail
/// over together.
#[derive(Clone)]
pub struct Client {
    servers: std::sync::Arc<Vec<String>>,
    transport: Transport,
    state: std::sync::Arc<std::sync::Mutex<Connection>>,
}

#[derive(Default)]
struct Connection {
    current: usize,
    channel: Option<Channel>,
}

impl Client {
    /// A client for these masters (`host:port`); connects on first use.
    pub fn new(servers: impl IntoIterator<Item = impl Into<String>>) -> Client {
        Client::with_transport(servers, Transport::default())
    }

    /// [`Client::new`] over `transport`.
    pub fn with_transport(servers: impl IntoIterator<Item = impl Into<String>>, transport: Transport) -> Client {
        let servers = servers
            .into_iter()
            .map(|s| s.into().trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Client {
            servers: std::sync::Arc::new(servers),
            transport,
            state: std::sync::Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A channel to the current master, connecting (and failing over) if
    /// needed.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] when no master accepts a connection.
    pub async fn channel(&self) -> Result<Channel, ClientError> {
        let start = {
            let state = self.state();
            if let Some(channel) = &state.channel {
                return Ok(channel.clone());
            }
            state.current
        };
        let mut errors = Vec::new();
        for offset in 0..self.servers.len() {
            let index = (start + offset) % self.servers.len();
            let server = &self.servers[index];
            let endpoint = match self.transport.endpoint(server) {
                Ok(endpoint) => endpoint,
                Err(e) => {
                    errors.push(format!("{server}: {e}"));
                    continue;
                }
            };
            match endpoint.connect().await {
                Ok(channel) => {
                    let mut state = self.state();
                    state.current = index;
                    state.channel = Some(channel.clone());
                    return Ok(channel);
                }
                Err(e) => errors.push(format!("{server}: {}", innermost(&e))),
            }
        }
        if errors.is_empty() {
            errors.push("no master address given".to_string());
        }
        Err(ClientError::Unreachable { tried: errors })
    }

    /// Forgets the current connection and moves to the next master.
    pub fn fail_over(&self) {
        let mut state = self.state();
        state.channel = None;
        if !self.servers.is_empty() {
            state.current = (state.current + 1) % self.servers.len();
        }
    }

    /// Calls `rpc` on the current master; when that master cannot be
    /// reached ([`is_unavailable`]) moves on to the next, trying each at
    /// most once.
    ///
    /// # Errors
    /// The last status, or [`ClientError::Unreachable`].
    pub async fn call<T, F, Fut>(&self, mut rpc: F) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut last = None;
        for _ in 0..self.servers.len().max(1) {
            let channel = match self.channel().await {
                Ok(channel) => channel,
                Err(e) => return Err(last.unwrap_or(e)),
            };
            match rpc(channel).await {
                Ok(value) => return Ok(value),
                Err(status) if is_unavailable(&status) && self.servers.len() > 1 => {
                    last = Some(ClientError::Status(status));
                    self.fail_over();
                }
                Err(status) => return Err(status.into()),
            }
        }
        Err(last.unwrap_or(ClientError::Unreachable {
            tried: self.servers.to_vec(),
        }))
    }

    /// The master currently in use.
    pub fn server(&self) -> String {
        let current = self.state().current;
        self.servers.get(current).cloned().unwrap_or_default()
    }

    pub fn servers(&self) -> &[String] {
        &self.servers
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    text
}

/// An objects client on `channel` with Bosun's message size limits.
pub fn objects(channel: Channel) -> crate::api::objects_client::ObjectsClient<Channel> {
    crate::api::objects_client::ObjectsClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_counts_as_unavailable_and_an_answer_does_not() {
        let broken = Status::from_error(Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
        assert_eq!(broken.code(), Code::Unknown);
        assert!(is_unavailable(&broken));
        assert!(is_unavailable(&Status::unavailable("no leader")));
        // An error the master chose to return is an answer, not an outage.
        assert!(!is_unavailable(&Status::unknown("transport error")));
        assert!(!is_unavailable(&Status::not_found("pods \"web\" not found")));
        assert!(!is_unavailable(&Status::aborted("conflict")));
    }
}
