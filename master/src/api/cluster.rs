//! `bosun.v1.Cluster`: the members of the Raft group, each asked for its
//! own view.

use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::cluster_server::Cluster;
use bosun_proto::api::{ClusterStatus, ClusterStatusRequest, Member};
use bosun_proto::internal::MemberStatusRequest;
use tonic::{Request, Response, Status};

use crate::replica::Replica;

const MEMBER_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ClusterService {
    replica: Arc<Replica>,
}

impl ClusterService {
    pub fn new(replica: Arc<Replica>) -> ClusterService {
        ClusterService { replica }
    }

    async fn ask(&self, id: u64, addr: String, voter: bool) -> Member {
        if id == self.replica.id {
            return self.replica.member_status();
        }
        let unreachable = |error: String| Member {
            id,
            address: addr.clone(),
            role: "unreachable".to_string(),
            voter,
            error,
            ..Default::default()
        };
        let mut client = match self.replica.peers.client(&addr) {
            Ok(client) => client,
            Err(e) => return unreachable(e.to_string()),
        };
        let mut request = Request::new(MemberStatusRequest {});
        request.set_timeout(MEMBER_TIMEOUT);
        match client.member_status(request).await {
            Ok(reply) => Member {
                // The member may not know its own address yet (a learner
                // catching up); the membership does.
                address: addr.clone(),
                voter,
                ..reply.into_inner()
            },
            Err(status) => unreachable(status.message().to_string()),
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, _: Request<ClusterStatusRequest>) -> Result<Response<ClusterStatus>, Status> {
        let metrics = self.replica.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let asks = membership
            .nodes()
            .map(|(id, node)| self.ask(*id, node.addr.clone(), voters.contains(id)));
        let members = futures::future::join_all(asks).await;
        Ok(Response::new(ClusterStatus {
            leader_id: metrics.current_leader.unwrap_or(0),
            members,
            answered_by: self.replica.id,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }
}
