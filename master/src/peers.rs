//! Connections to other masters and to node agents, one lazily connected
//! gRPC channel per address, shared by Raft replication, request forwarding
//! and the logs/exec proxy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bosun_proto::internal::raft_client::RaftClient;
use bosun_proto::transport::Transport;
use tonic::transport::Channel;

/// Largest message between masters: a snapshot chunk or a batch of entries.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Masters are near each other: one that does not connect in this time
/// is treated as down, so a heartbeat round is not held up.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Peers {
    transport: Transport,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub fn new(transport: Transport) -> Peers {
        Peers {
            transport,
            channels: Mutex::default(),
        }
    }

    /// A client for the master at `addr` (`host:port`).
    ///
    /// # Errors
    /// When `addr` is not a valid address.
    pub fn client(&self, addr: &str) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// A lazily connected channel to `addr` (a master or a node agent).
    ///
    /// # Errors
    /// When `addr` is not a valid address.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = self
            .transport
            .endpoint(addr)?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
