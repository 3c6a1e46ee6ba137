//! This master's handle on the replicated state: proposes commands (here
//! when this master leads, forwarded to the leader otherwise), makes reads
//! linearizable. Membership changes are in [`crate::membership`].
//!
//! During an election a request does not fail at once: it waits for a
//! leader, with short back-off, until `leader_wait` has passed.

use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::Member;
use bosun_proto::client::is_unavailable;
use bosun_proto::internal::{Command, CommandResult, ReadIndexRequest};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use tokio::time::Instant;
use tonic::Code;

use crate::peers::Peers;
use crate::proposer::Proposer;
use crate::raft::{NodeId, Raft};
use crate::store::{is_event_command, Events, Store};

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
    #[error("node id {node_id} already belongs to the master at {address}; pick another --node-id")]
    NodeIdTaken { node_id: NodeId, address: String },
    #[error("master {node_id} at {address} did not catch up with the leader's log within {waited:?}, so it was removed instead of becoming a voter: check that the leader can reach it at that address (--advertise) and that it is running")]
    JoinTimedOut {
        node_id: NodeId,
        address: String,
        waited: Duration,
    },
    #[error("master {node_id} is not a member of this cluster")]
    NotMember { node_id: NodeId },
    #[error("master {node_id} is the last voter: a cluster cannot remove its last member")]
    LastVoter { node_id: NodeId },
    #[error("removing master {node_id} leaves {alive} of {remaining} voters reachable, fewer than the {quorum} a quorum needs, so writes would stop; bring members back first, or pass --force")]
    BelowQuorum {
        node_id: NodeId,
        alive: usize,
        remaining: usize,
        quorum: usize,
    },
}

pub struct Replica {
    pub id: NodeId,
    pub raft: Raft,
    pub store: Arc<Store>,
    /// Events, kept by the leader alone (see [`Events`]).
    pub events: Events,
    pub(crate) peers: Arc<Peers>,
    proposer: Proposer,
    pub(crate) leader_wait: Duration,
    /// How long a joining master may take to replicate the leader's log
    /// before it is removed again instead of becoming a voter.
    pub(crate) join_timeout: Duration,
    /// Held by the leader for the whole of one membership change (both
    /// of openraft's joint-consensus steps): two joins at once would each
    /// fail their second step and leave the cluster in a joint config
    /// that loses its quorum with one master.
    pub(crate) membership_change: tokio::sync::Mutex<()>,
}

/// How long the replica waits for the cluster.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaTiming {
    /// For a leader, during an election, before a request fails.
    pub leader_wait: Duration,
    /// For a joining master to catch up before it is removed again.
    pub join_timeout: Duration,
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
    pub fn new(id: NodeId, raft: Raft, store: Arc<Store>, peers: Arc<Peers>, timing: ReplicaTiming) -> Replica {
        let history_capacity = store.history().capacity();
        Replica {
            id,
            proposer: Proposer::start(raft.clone()),
            raft,
            events: Events::new(history_capacity),
            store,
            peers,
            leader_wait: timing.leader_wait,
            join_timeout: timing.join_timeout,
            membership_change: tokio::sync::Mutex::new(()),
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
    pub(crate) async fn pause(&self, backoff: &mut Duration, deadline: Instant) -> bool {
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

    /// Proposes on this master, batched with concurrent proposals; an
    /// event command goes to the leader's [`Events`] instead of the log.
    /// `Err(None)` means "not the leader: retry".
    pub(crate) async fn propose_here(&self, command: Command) -> Result<CommandResult, Option<ReplicaError>> {
        if is_event_command(&command) {
            if !self.is_leader() {
                return Err(None);
            }
            return Ok(self.events.apply(&command, &self.store));
        }
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

    /// Runs `here` when this master leads, or `there` with the leader's id
    /// and address otherwise (`Err(None)` from it: the leader could not be
    /// reached, look again), waiting for a leader up to `leader_wait`.
    pub(crate) async fn at_leader<T, H, HF, F, FF>(&self, here: H, there: F) -> Result<T, ReplicaError>
    where
        H: Fn() -> HF,
        HF: std::future::Future<Output = Result<T, ReplicaError>>,
        F: Fn(NodeId, String) -> FF,
        FF: std::future::Future<Output = Result<T, Option<ReplicaError>>>,
    {
        let deadline = Instant::now() + self.leader_wait;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.leader() {
                Leader::Me => return here().await,
                Leader::Other(leader, addr) => match there(leader, addr).await {
                    Ok(value) => return Ok(value),
                    Err(Some(e)) => return Err(e),
                    Err(None) => {}
                },
                Leader::Unknown => {}
            }
            if !self.pause(&mut backoff, deadline).await {
                return Err(ReplicaError::NoLeader {
                    waited: self.leader_wait,
                });
            }
        }
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
            voter: crate::membership::full_voters(membership).contains(&self.id),
            error: String::new(),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
            purged_index: metrics.purged.map_or(0, |id| id.index),
        }
    }
}
