//! Who the masters are: joining (a learner until it has caught up, then a
//! voter), removing (never the last voter, never below a reachable quorum
//! unless forced), and asking a member for its own view.

use std::collections::BTreeSet;
use std::time::Duration;

use bosun_proto::api::cluster_client::ClusterClient;
use bosun_proto::api::{Member, RemoveMemberRequest};
use bosun_proto::client::is_unavailable;
use bosun_proto::internal::{JoinRequest, MemberStatusRequest};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use crate::raft::{Node, NodeId};
use crate::replica::{Replica, ReplicaError};

/// How long a member has to answer for its status.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(1);

/// The masters that vote in every configuration of `membership`: during a
/// joint-consensus change, one only in the new configuration is not a
/// voter yet (its vote alone cannot make a quorum of the old one).
pub(crate) fn full_voters(membership: &openraft::Membership<NodeId, Node>) -> BTreeSet<NodeId> {
    let mut configs = membership.get_joint_config().iter();
    let first = configs.next().cloned().unwrap_or_default();
    configs.fold(first, |all, config| all.intersection(config).copied().collect())
}

impl Replica {
    /// Adds a master to the cluster: as a learner until it has replicated
    /// the leader's log, then as a voter. A learner that does not catch up
    /// within `join_timeout` is removed and the join fails, so a joiner that
    /// cannot be reached never counts towards the quorum. Runs on the
    /// leader; forwarded there otherwise.
    ///
    /// # Errors
    /// [`ReplicaError`] when the change could not be committed, or the
    /// joiner did not catch up in time.
    pub async fn join(&self, node_id: NodeId, address: String) -> Result<NodeId, ReplicaError> {
        self.at_leader(
            || async { self.join_here(node_id, address.clone()).await.map(|()| self.id) },
            |leader, addr| {
                let request = JoinRequest {
                    node_id,
                    address: address.clone(),
                };
                async move {
                    let mut client = self
                        .peers
                        .client(&addr)
                        .map_err(|e| Some(ReplicaError::Membership { reason: e.to_string() }))?;
                    match client.join(request).await {
                        Ok(_) => Ok(leader),
                        Err(status) if is_unavailable(&status) => Err(None),
                        Err(status) => Err(Some(ReplicaError::Leader {
                            leader: addr.clone(),
                            code: status.code(),
                            message: status.message().to_string(),
                        })),
                    }
                }
            },
        )
        .await
    }

    async fn join_here(&self, node_id: NodeId, address: String) -> Result<(), ReplicaError> {
        // One membership change at a time, but not held while the learner
        // catches up: other joiners become learners meanwhile.
        let one_at_a_time = self.membership_change.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if let Some(existing) = membership.membership().get_node(&node_id) {
            if existing.addr != address {
                return Err(ReplicaError::NodeIdTaken {
                    node_id,
                    address: existing.addr.clone(),
                });
            }
            if full_voters(membership.membership()).contains(&node_id) {
                return Ok(());
            }
        }
        tracing::info!(node_id, %address, "adding master as learner");
        let added = self
            .raft
            .add_learner(node_id, Node { addr: address.clone() }, false)
            .await
            .map_err(membership_failed)?;
        drop(one_at_a_time);
        // The learner has caught up once it holds the entry that added it:
        // everything the leader had then. (openraft's own blocking wait
        // counts a learner within 5000 entries as caught up, even one that
        // never answered.)
        let caught_up = self
            .raft
            .wait(Some(self.join_timeout))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&node_id).copied().flatten())
                        .is_some_and(|matched| matched.index >= added.log_id.index)
                },
                "learner caught up",
            )
            .await;
        if caught_up.is_err() {
            tracing::warn!(node_id, %address, waited = ?self.join_timeout, "learner did not catch up; removing it");
            let _one_at_a_time = self.membership_change.lock().await;
            if let Err(e) = self
                .raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false)
                .await
            {
                tracing::warn!(node_id, error = %e, "could not remove the learner that did not catch up");
            }
            return Err(ReplicaError::JoinTimedOut {
                node_id,
                address,
                waited: self.join_timeout,
            });
        }
        tracing::info!(node_id, %address, "learner caught up; promoting to voter");
        let _one_at_a_time = self.membership_change.lock().await;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
            .map_err(membership_failed)?;
        Ok(())
    }

    /// Removes a master from the cluster. Refuses to remove the last voter,
    /// and, unless `force`, a voter whose removal leaves fewer reachable
    /// voters than the remaining ones need for a quorum. Runs on the
    /// leader; forwarded there otherwise.
    ///
    /// # Errors
    /// [`ReplicaError`] when refused or not committed.
    pub async fn remove(&self, node_id: NodeId, force: bool) -> Result<(), ReplicaError> {
        self.at_leader(
            || self.remove_here(node_id, force),
            |leader, addr| async move {
                let channel = self
                    .peers
                    .channel(&addr)
                    .map_err(|e| Some(ReplicaError::Membership { reason: e.to_string() }))?;
                let request = RemoveMemberRequest { id: node_id, force };
                match ClusterClient::new(channel).remove_member(request).await {
                    Ok(_) => Ok(()),
                    Err(status) if is_unavailable(&status) => Err(None),
                    Err(status) => Err(Some(ReplicaError::Leader {
                        leader: format!("{leader} ({addr})"),
                        code: status.code(),
                        message: status.message().to_string(),
                    })),
                }
            },
        )
        .await
    }

    async fn remove_here(&self, node_id: NodeId, force: bool) -> Result<(), ReplicaError> {
        let _one_at_a_time = self.membership_change.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.membership().clone();
        if membership.get_node(&node_id).is_none() {
            return Err(ReplicaError::NotMember { node_id });
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if !voters.contains(&node_id) {
            tracing::info!(node_id, "removing learner");
            let change = ChangeMembers::RemoveNodes(BTreeSet::from([node_id]));
            return self.change_within_wait(change).await;
        }
        let remaining: BTreeSet<NodeId> = voters.iter().copied().filter(|id| *id != node_id).collect();
        if remaining.is_empty() {
            return Err(ReplicaError::LastVoter { node_id });
        }
        let asks = remaining.iter().map(|id| {
            let addr = membership.get_node(id).map(|n| n.addr.clone()).unwrap_or_default();
            self.member(*id, addr, true)
        });
        let alive = futures::future::join_all(asks)
            .await
            .iter()
            .filter(|m| m.role != "unreachable")
            .count();
        let quorum = remaining.len() / 2 + 1;
        if alive < quorum && !force {
            return Err(ReplicaError::BelowQuorum {
                node_id,
                alive,
                remaining: remaining.len(),
                quorum,
            });
        }
        tracing::info!(node_id, alive, remaining = remaining.len(), force, "removing voter");
        // Not retained: the removed voter leaves the membership altogether,
        // also when it is this leader (which then steps down).
        self.change_within_wait(ChangeMembers::ReplaceAllVoters(remaining))
            .await
    }

    /// A membership change, given up on after `leader_wait` (a forced
    /// removal without a quorum cannot commit).
    async fn change_within_wait(&self, change: ChangeMembers<NodeId, Node>) -> Result<(), ReplicaError> {
        match tokio::time::timeout(self.leader_wait, self.raft.change_membership(change, false)).await {
            Ok(result) => result.map(|_| ()).map_err(membership_failed),
            Err(_) => Err(ReplicaError::Membership {
                reason: format!(
                    "the change was not committed within {:?}: the cluster has no quorum",
                    self.leader_wait
                ),
            }),
        }
    }

    /// Asks member `id` at `addr` for its own view; unreachable members
    /// are reported as such, with the reason.
    pub async fn member(&self, id: NodeId, addr: String, voter: bool) -> Member {
        if id == self.id {
            return self.member_status();
        }
        let unreachable = |error: String| Member {
            id,
            address: addr.clone(),
            role: "unreachable".to_string(),
            voter,
            error,
            ..Default::default()
        };
        let mut client = match self.peers.client(&addr) {
            Ok(client) => client,
            Err(e) => return unreachable(e.to_string()),
        };
        let mut request = tonic::Request::new(MemberStatusRequest {});
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

fn membership_failed(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ReplicaError {
    ReplicaError::Membership { reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_master_votes_only_once_every_configuration_has_it() {
        let nodes: BTreeMap<NodeId, Node> = (1..=3).map(|id| (id, Node::default())).collect();
        let joint = openraft::Membership::new(vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2, 3])], nodes.clone());
        assert_eq!(full_voters(&joint), BTreeSet::from([1, 2]));
        let uniform = openraft::Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        assert_eq!(full_voters(&uniform), BTreeSet::from([1, 2, 3]));
    }
}
