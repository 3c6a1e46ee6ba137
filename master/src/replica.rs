//! This master's handle on the replicated state: proposes commands (here
//! when this master leads, forwarded to the leader otherwise), makes reads
//! linearizable, and changes membership.
//!
//! During an election a request does not fail at once: it waits for a
//! leader, with short back-off, until `leader_wait` has passed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::Member;
use bosun_proto::client::is_unavailable;
use bosun_proto::internal::{Command, CommandResult, JoinRequest, ReadIndexRequest};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use tokio::time::Instant;
use tonic::Code;

use crate::peers::Peers;
use crate::proposer::Proposer;
use crate::raft::{Node, NodeId, Raft};
use crate::store::Store;

/// Why a request could not be carried out by the cluster.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicaError {
    #[error("no leader answered within {waited:?}: the masters may be electing a leader or may have lost their majority; retry shortly")]
    NoLeader { waited: Duration },
    #[error("this master's Raft node has stopped: {reason}")]
    Stopped { reason: String },
    #[error("the leader at {leader} refused the request: {message}")]
    Leader {
        leader: String,
        code: Code,
        message: String,
    },
    #[error("membership change failed: {reason}")]
    Membership { reason: String },
}

pub struct Replica {
    pub id: NodeId,
    pub raft: Raft,
    pub store: Arc<Store>,
    pub(crate) peers: Arc<Peers>,
    proposer: Proposer,
    leader_wait: Duration,
}

/// What the leader was found to be.
enum Leader {
    Me,
    Other(NodeId, String),
    Unknown,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

impl Replica {
    pub fn new(id: NodeId, raft: Raft, store: Arc<Store>, peers: Arc<Peers>, leader_wait: Duration) -> Replica {
        Replica {
            id,
            proposer: Proposer::start(raft.clone()),
            raft,
            store,
            peers,
            leader_wait,
        }
    }

    /// Whether this master is the leader right now.
    pub fn is_leader(&self) -> bool {
        matches!(self.leader(), Leader::Me)
    }

    /// The leader's address, when another master leads.
    pub fn leader_address(&self) -> Option<String> {
        match self.leader() {
            Leader::Other(_, addr) => Some(addr),
            Leader::Me | Leader::Unknown => None,
        }
    }

    fn leader(&self) -> Leader {
        let metrics = self.raft.metrics().borrow().clone();
        match metrics.current_leader {
            Some(id) if id == self.id => Leader::Me,
            Some(id) => match metrics.membership_config.membership().get_node(&id) {
                Some(node) => Leader::Other(id, node.addr.clone()),
                None => Leader::Unknown,
            },
            None => Leader::Unknown,
        }
    }

    /// Sleeps for `backoff` or until the Raft metrics change, then doubles
    /// the back-off. Returns false once `deadline` has passed.
    async fn pause(&self, backoff: &mut Duration, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let mut metrics = self.raft.metrics();
        metrics.mark_unchanged();
        let wait = (*backoff).min(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = metrics.changed() => {}
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        true
    }

    /// Proposes a command and returns its result once committed and
    /// applied.
    ///
    /// # Errors
    /// [`ReplicaError`] when no leader could take the command in time.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, ReplicaError> {
        let deadline = Instant::now() + self.leader_wait;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.leader() {
                Leader::Me | Leader::Unknown => match self.propose_here(command.clone()).await {
                    Ok(result) => return Ok(result),
                    Err(None) => {}
                    Err(Some(e)) => return Err(e),
                },
                Leader::Other(_, addr) => match self.forward(&addr, command.clone(), deadline).await {
                    Ok(result) => return Ok(result),
                    Err(None) => {}
                    Err(Some(e)) => return Err(e),
                },
            }
            if !self.pause(&mut backoff, deadline).await {
                return Err(ReplicaError::NoLeader {
                    waited: self.leader_wait,
                });
            }
        }
    }

    /// Proposes on this master, batched with concurrent proposals.
    /// `Err(None)` means "not the leader: retry".
    pub(crate) async fn propose_here(&self, command: Command) -> Result<CommandResult, Option<ReplicaError>> {
        self.proposer.propose(command).await
    }

    async fn forward(
        &self,
        addr: &str,
        command: Command,
        deadline: Instant,
    ) -> Result<CommandResult, Option<ReplicaError>> {
        let mut client = self.peers.client(addr).map_err(|_| None)?;
        let mut request = tonic::Request::new(command);
        request.set_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
        );
        match client.forward(request).await {
            Ok(reply) => Ok(reply.into_inner()),
            // Not the leader any more, or not reachable: try again.
            Err(status) if is_unavailable(&status) => Err(None),
            Err(status) => Err(Some(ReplicaError::Leader {
                leader: addr.to_string(),
                code: status.code(),
                message: status.message().to_string(),
            })),
        }
    }

    /// Waits until this master's state reflects every write committed
    /// before the call: a linearizable read barrier.
    ///
    /// # Errors
    /// [`ReplicaError::NoLeader`] when no leader confirmed in time.
    pub async fn read_barrier(&self) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + self.leader_wait;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let index = match self.leader() {
                Leader::Me => self.read_index_here().await.map_err(Some),
                Leader::Other(_, addr) => self.read_index_from(&addr, deadline).await,
                Leader::Unknown => Err(None),
            };
            match index {
                Ok(index) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if self
                        .raft
                        .wait(Some(remaining))
                        .applied_index_at_least(Some(index), "linearizable read")
                        .await
                        .is_ok()
                    {
                        return Ok(());
                    }
                }
                Err(Some(ReplicaError::Stopped { reason })) => return Err(ReplicaError::Stopped { reason }),
                Err(_) => {}
            }
            if !self.pause(&mut backoff, deadline).await {
                return Err(ReplicaError::NoLeader {
                    waited: self.leader_wait,
                });
            }
        }
    }

    /// On the leader: confirms leadership with a quorum and returns the
    /// index a read must wait for.
    pub(crate) async fn read_index_here(&self) -> Result<u64, ReplicaError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map_or(0, |id| id.index)),
            Err(RaftError::Fatal(e)) => Err(ReplicaError::Stopped { reason: e.to_string() }),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                Err(ReplicaError::NoLeader { waited: Duration::ZERO })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(ReplicaError::NoLeader { waited: Duration::ZERO })
            }
        }
    }

    async fn read_index_from(&self, addr: &str, deadline: Instant) -> Result<u64, Option<ReplicaError>> {
        let mut client = self.peers.client(addr).map_err(|_| None)?;
        let mut request = tonic::Request::new(ReadIndexRequest {});
        request.set_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
        );
        client
            .read_index(request)
            .await
            .map(|r| r.into_inner().index)
            .map_err(|_| None)
    }

    /// Adds a master to the cluster: as a learner until it has caught up,
    /// then as a voter. Runs on the leader; forwarded there otherwise.
    ///
    /// # Errors
    /// [`ReplicaError`] when the change could not be committed.
    pub async fn join(&self, node_id: NodeId, address: String) -> Result<NodeId, ReplicaError> {
        let deadline = Instant::now() + self.leader_wait;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.leader() {
                Leader::Me => return self.join_here(node_id, address).await.map(|()| self.id),
                Leader::Other(leader, addr) => {
                    let mut client = self
                        .peers
                        .client(&addr)
                        .map_err(|e| ReplicaError::Membership { reason: e.to_string() })?;
                    let request = JoinRequest {
                        node_id,
                        address: address.clone(),
                    };
                    match client.join(request).await {
                        Ok(_) => return Ok(leader),
                        Err(status) if is_unavailable(&status) => {}
                        Err(status) => {
                            return Err(ReplicaError::Membership {
                                reason: status.message().to_string(),
                            })
                        }
                    }
                }
                Leader::Unknown => {}
            }
            if !self.pause(&mut backoff, deadline).await {
                return Err(ReplicaError::NoLeader {
                    waited: self.leader_wait,
                });
            }
        }
    }

    async fn join_here(&self, node_id: NodeId, address: String) -> Result<(), ReplicaError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if let Some(existing) = membership.membership().get_node(&node_id) {
            if existing.addr != address {
                return Err(ReplicaError::Membership {
                    reason: format!(
                        "node id {node_id} already belongs to the master at {}; pick another --node-id",
                        existing.addr
                    ),
                });
            }
            if membership.membership().voter_ids().any(|id| id == node_id) {
                return Ok(());
            }
        }
        let failed =
            |e: RaftError<NodeId, ClientWriteError<NodeId, Node>>| ReplicaError::Membership { reason: e.to_string() };
        tracing::info!(node_id, %address, "adding master as learner");
        self.raft
            .add_learner(node_id, Node { addr: address.clone() }, true)
            .await
            .map_err(failed)?;
        tracing::info!(node_id, %address, "learner caught up; promoting to voter");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// This master's own view of itself.
    pub fn member_status(&self) -> Member {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "stopped",
        };
        Member {
            id: self.id,
            address: membership
                .get_node(&self.id)
                .map(|n| n.addr.clone())
                .unwrap_or_default(),
            role: role.to_string(),
            term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            voter: membership.voter_ids().any(|id| id == self.id),
            error: String::new(),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
            purged_index: metrics.purged.map_or(0, |id| id.index),
        }
    }
}
