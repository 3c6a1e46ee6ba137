//! How Bosun's processes reach each other: one builder of client endpoints
//! and one of servers, both from a [`Transport`]. Every gRPC connection in
//! the workspace goes through them: ctl, the agents and the tests to the
//! masters ([`crate::client`]), masters to each other (Raft, forwarding,
//! joins) and to the agents (logs, exec), and the servers of masters and
//! agents. Connections are plaintext today; [`Transport`] is where the
//! mutual-TLS settings will go, so that turning them on changes this file
//! and the flags that fill it, not the callers.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};

/// How long a connection attempt may take before the address counts as
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 keep-alive pings on idle connections, so a dead peer is noticed.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// The security of connections, the same for clients and servers.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    /// Mutual TLS: `None` is plaintext (`http://`), the only mode so far.
    tls: Option<Tls>,
}

/// The TLS settings of a [`Transport`]: the cluster CA and this process's
/// certificate and key. None exist yet (the security issue adds them);
/// the type holds their place.
#[derive(Clone, Debug)]
pub enum Tls {}

impl Transport {
    /// Plaintext connections.
    pub fn plaintext() -> Transport {
        Transport { tls: None }
    }

    /// The URI of `addr` (`host:port`, or a URI with its scheme) for this
    /// transport.
    pub fn uri(&self, addr: &str) -> String {
        let addr = addr.trim();
        if addr.contains("://") {
            return addr.to_string();
        }
        match &self.tls {
            None => format!("http://{addr}"),
            Some(tls) => match *tls {},
        }
    }

    /// An endpoint for `addr` with Bosun's connection settings: connect
    /// timeout, no Nagle delay, keep-alive pings even when idle.
    ///
    /// # Errors
    /// When `addr` is not a valid address.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        Ok(Endpoint::from_shared(self.uri(addr))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_while_idle(true))
    }

    /// A server builder with this transport's settings; add services and
    /// serve it on [`Transport::incoming`].
    pub fn server(&self) -> Server {
        match &self.tls {
            None => Server::builder(),
            Some(tls) => match *tls {},
        }
    }

    /// The connections `listener` accepts, as the server takes them.
    pub fn incoming(&self, listener: TcpListener) -> TcpIncoming {
        TcpIncoming::from(listener).with_nodelay(Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_get_the_transport_scheme_and_uris_are_kept() {
        let transport = Transport::plaintext();
        assert_eq!(transport.uri("10.0.0.1:7000"), "http://10.0.0.1:7000");
        assert_eq!(transport.uri(" master-1:7000 "), "http://master-1:7000");
        assert_eq!(transport.uri("http://[::1]:7000"), "http://[::1]:7000");
        assert!(transport.endpoint("not an address").is_err());
        assert!(transport.endpoint("127.0.0.1:7000").is_ok());
    }
}
