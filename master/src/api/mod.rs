//! The public gRPC API: the generic object service and the cluster
//! service. Errors reach clients as gRPC codes with a sentence to act on.

use bosun_proto::api::Object;
use bosun_proto::internal::{command_result, rejection, CommandResult};
use tonic::Status;

use crate::replica::ReplicaError;

mod cluster;
mod nodes;
mod objects;
mod pods;

pub use cluster::ClusterService;
pub(crate) use nodes::heartbeat;
pub use nodes::NodesService;
pub use objects::ObjectsService;
pub use pods::PodsService;

/// Maps a cluster-level failure to a status; Unavailable means "retry".
pub(crate) fn replica_status(e: ReplicaError) -> Status {
    match e {
        ReplicaError::NoLeader { .. } | ReplicaError::Stopped { .. } => Status::unavailable(e.to_string()),
        ReplicaError::Leader { code, message, .. } => Status::new(code, message),
        ReplicaError::NotMember { .. } => Status::not_found(e.to_string()),
        ReplicaError::NodeIdTaken { .. } => Status::already_exists(e.to_string()),
        ReplicaError::JoinTimedOut { .. } => Status::deadline_exceeded(e.to_string()),
        ReplicaError::Membership { .. } | ReplicaError::LastVoter { .. } | ReplicaError::BelowQuorum { .. } => {
            Status::failed_precondition(e.to_string())
        }
    }
}

/// The object a command produced, or the refusal as a status.
pub(crate) fn command_outcome(result: CommandResult) -> Result<(Object, bool), Status> {
    match result.result {
        Some(command_result::Result::Object(object)) => Ok((object, result.deleted)),
        Some(command_result::Result::Rejected(rejection)) => {
            let code = match rejection::Code::try_from(rejection.code).unwrap_or(rejection::Code::Unspecified) {
                rejection::Code::NotFound => tonic::Code::NotFound,
                rejection::Code::AlreadyExists => tonic::Code::AlreadyExists,
                rejection::Code::Conflict => tonic::Code::Aborted,
                rejection::Code::Invalid => tonic::Code::InvalidArgument,
                rejection::Code::Forbidden => tonic::Code::FailedPrecondition,
                rejection::Code::Unspecified => tonic::Code::Internal,
            };
            Err(Status::new(code, rejection.message))
        }
        None => Err(Status::internal("the command produced no result")),
    }
}
