//! `bosun.v1.Cluster`: the members of the Raft group, each asked for its
//! own view.

use std::sync::Arc;

use bosun_proto::api::cluster_server::Cluster;
use bosun_proto::api::{ClusterStatus, ClusterStatusRequest, RemoveMemberRequest, RemoveMemberResponse};
use tonic::{Request, Response, Status};

use crate::replica::Replica;

pub struct ClusterService {
    replica: Arc<Replica>,
}

impl ClusterService {
    pub fn new(replica: Arc<Replica>) -> ClusterService {
        ClusterService { replica }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, _: Request<ClusterStatusRequest>) -> Result<Response<ClusterStatus>, Status> {
        let metrics = self.replica.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters = crate::membership::full_voters(&membership);
        let asks = membership
            .nodes()
            .map(|(id, node)| self.replica.member(*id, node.addr.clone(), voters.contains(id)));
        let members = futures::future::join_all(asks).await;
        Ok(Response::new(ClusterStatus {
            leader_id: metrics.current_leader.unwrap_or(0),
            members,
            answered_by: self.replica.id,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        let RemoveMemberRequest { id, force } = request.into_inner();
        // Carried out apart from the request, so a client that goes away
        // does not cut a membership change short.
        let replica = self.replica.clone();
        tokio::spawn(async move { replica.remove(id, force).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(super::replica_status)?;
        Ok(Response::new(RemoveMemberResponse {}))
    }
}
