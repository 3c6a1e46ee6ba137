//! The server side of the master-to-master service: Raft RPCs, forwarded
//! writes, read-index requests, joins and member status.

use std::sync::Arc;

use bosun_proto::api::{HeartbeatRequest, HeartbeatResponse, Member};
use bosun_proto::internal::raft_server::Raft as RaftRpc;
use bosun_proto::internal::{
    Command, CommandResult, JoinRequest, JoinResponse, MemberStatusRequest, RaftMessage, ReadIndexRequest,
    ReadIndexResponse,
};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use super::{decode, encode, NodeId, TypeConfig};
use crate::api::replica_status;
use crate::nodes::Liveness;
use crate::replica::Replica;

pub struct RaftService {
    replica: Arc<Replica>,
    liveness: Arc<Liveness>,
}

impl RaftService {
    pub fn new(replica: Arc<Replica>, liveness: Arc<Liveness>) -> RaftService {
        RaftService { replica, liveness }
    }
}

fn bad_message(e: bincode::Error) -> Status {
    Status::invalid_argument(format!("undecodable raft message: {e}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.into_inner().data).map_err(bad_message)?;
        let result = self.replica.raft.append_entries(rpc).await;
        Ok(Response::new(RaftMessage { data: encode(&result) }))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&request.into_inner().data).map_err(bad_message)?;
        let result = self.replica.raft.vote(rpc).await;
        Ok(Response::new(RaftMessage { data: encode(&result) }))
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&request.into_inner().data).map_err(bad_message)?;
        let result = self.replica.raft.install_snapshot(rpc).await;
        Ok(Response::new(RaftMessage { data: encode(&result) }))
    }

    async fn forward(&self, request: Request<Command>) -> Result<Response<CommandResult>, Status> {
        match self.replica.propose_here(request.into_inner()).await {
            Ok(result) => Ok(Response::new(result)),
            Err(None) => Err(Status::unavailable("this master is not the leader")),
            Err(Some(e)) => Err(replica_status(e)),
        }
    }

    async fn read_index(&self, _: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        let index = self.replica.read_index_here().await.map_err(replica_status)?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let JoinRequest { node_id, address } = request.into_inner();
        if node_id == 0 || address.is_empty() {
            return Err(Status::invalid_argument("join needs a node id above 0 and an address"));
        }
        // Carried out apart from the request: a joiner that goes away while
        // it catches up must not leave its learner behind.
        let replica = self.replica.clone();
        let leader_id = tokio::spawn(async move { replica.join(node_id, address).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(replica_status)?;
        Ok(Response::new(JoinResponse { leader_id }))
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        if !self.replica.is_leader() {
            return Err(Status::unavailable("this master is not the leader"));
        }
        crate::api::heartbeat(&self.replica, &self.liveness, request.into_inner()).await?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn member_status(&self, _: Request<MemberStatusRequest>) -> Result<Response<Member>, Status> {
        Ok(Response::new(self.replica.member_status()))
    }
}
