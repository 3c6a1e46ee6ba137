//! `bosun.v1.Nodes`: heartbeats. A follower passes them to the leader,
//! which alone keeps liveness.

use std::sync::Arc;

use bosun_proto::api::nodes_server::Nodes;
use bosun_proto::api::{HeartbeatRequest, HeartbeatResponse};
use bosun_proto::Kind;
use tonic::{Code, Request, Response, Status};

use crate::nodes::Liveness;
use crate::replica::Replica;

pub struct NodesService {
    replica: Arc<Replica>,
    liveness: Arc<Liveness>,
}

impl NodesService {
    pub fn new(replica: Arc<Replica>, liveness: Arc<Liveness>) -> NodesService {
        NodesService { replica, liveness }
    }
}

/// Records a heartbeat on the leader, or passes it to the leader.
pub(crate) async fn heartbeat(replica: &Replica, liveness: &Liveness, request: HeartbeatRequest) -> Result<(), Status> {
    if request.node_name.is_empty() {
        return Err(Status::invalid_argument("node_name is required"));
    }
    if replica.is_leader() {
        if replica
            .store
            .read()
            .objects
            .get(Kind::Node, "", &request.node_name)
            .is_none()
        {
            return Err(Status::not_found(format!(
                "node {:?} is not registered; the agent registers it on start",
                request.node_name
            )));
        }
        liveness.record(request);
        return Ok(());
    }
    let Some(addr) = replica.leader_address() else {
        return Err(Status::unavailable("no leader is known; retry shortly"));
    };
    let mut client = replica
        .peers
        .client(&addr)
        .map_err(|e| Status::unavailable(e.to_string()))?;
    client
        .heartbeat(request)
        .await
        .map(|_| ())
        .map_err(|status| match status.code() {
            Code::NotFound | Code::InvalidArgument => status,
            _ => Status::unavailable(format!(
                "the leader at {addr} did not take the heartbeat: {}",
                status.message()
            )),
        })
}

#[tonic::async_trait]
impl Nodes for NodesService {
    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        heartbeat(&self.replica, &self.liveness, request.into_inner()).await?;
        Ok(Response::new(HeartbeatResponse {}))
    }
}
