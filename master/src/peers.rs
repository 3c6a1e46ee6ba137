//! Connections to other masters and to node agents, one lazily connected
//! gRPC channel per address, shared by Raft replication, request forwarding
//! and the logs/exec proxy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bosun_proto::internal::raft_client::RaftClient;
use tonic::transport::{Channel, Endpoint};

/// Largest message between masters: a snapshot chunk or a batch of entries.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
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
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
