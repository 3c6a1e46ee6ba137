//! Raft plumbing: the type configuration, the rocksdb log store and state
//! machine, and the gRPC network between masters.
//!
//! - [`writer`]: the one thread that writes rocksdb, syncing in groups.
//! - [`log_store`]: the Raft log and vote, with the recent tail in memory.
//! - [`state_machine`]: applies committed commands to the [`crate::store`]
//!   and builds/installs snapshots.
//! - [`network`]: the client side of master-to-master RPCs.
//! - [`service`]: the server side, including forwarding to the leader.

// openraft's storage traits fix `StorageError` (large) as the error type.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;

use bosun_proto::internal::{Command, CommandResult};
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod service;
pub(crate) mod state_machine;
pub(crate) mod writer;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Bosun's Raft types: commands are protobuf [`Command`]s, nodes are
    /// addressed by their advertised gRPC address.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Node = openraft::BasicNode;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Membership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;

/// A command in the Raft log. Serialised as its protobuf bytes, so the log
/// format is the documented `bosun.internal.v1.Command`. Shared, because
/// openraft clones entries for every follower it replicates them to.
#[derive(Debug, Clone, PartialEq)]
pub struct Request(pub Arc<Command>);

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response(pub CommandResult);

macro_rules! serde_as_protobuf {
    ($wrapper:ident, $inner:ty) => {
        impl Serialize for $wrapper {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(&self.0.encode_to_vec())
            }
        }

        impl<'de> Deserialize<'de> for $wrapper {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let bytes: Vec<u8> = serde::de::Deserialize::deserialize(deserializer)?;
                <$inner>::decode(bytes.as_slice())
                    .map(|inner| $wrapper(inner.into()))
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_protobuf!(Request, Command);
serde_as_protobuf!(Response, CommandResult);

/// Largest value [`decode`] accepts: a bad length prefix in a message from
/// the network must fail, not allocate without bound.
const MAX_DECODED_BYTES: u64 = 256 << 20;

fn codec() -> impl bincode::Options {
    use bincode::Options as _;
    bincode::options()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_DECODED_BYTES)
}

/// Encodes a value for rocksdb or the wire.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    use bincode::Options as _;
    codec().serialize(value).expect("bincode serialises in-memory values")
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, bincode::Error> {
    use bincode::Options as _;
    codec().deserialize(bytes)
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    #[test]
    fn a_hostile_length_prefix_is_an_error_not_an_allocation() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend([0u8; 16]);
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert_eq!(decode::<Vec<u8>>(&encode(&vec![1u8, 2, 3])).unwrap(), vec![1, 2, 3]);
    }
}

#[cfg(test)]
mod conformance;
