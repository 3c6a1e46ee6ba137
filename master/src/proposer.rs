//! Batches concurrent proposals into single Raft entries.
//!
//! Every log entry costs an fsync on each master and a round of
//! replication, so proposals that arrive while earlier ones are in flight
//! are gathered into one `Batch` command (at most [`MAX_BATCH`]). At most
//! [`MAX_IN_FLIGHT`] entries are in flight, so under load batches grow
//! instead of entries multiplying, and an idle master proposes at once.
//!
//! Commands in one entry share its revision, so a batch never holds two
//! commands touching the same object, and a namespace deletion (which
//! touches everything in the namespace) always travels alone.

use std::collections::HashSet;
use std::sync::Arc;

use bosun_proto::internal::{command::Op, Batch, Command, CommandResult};
use bosun_proto::Kind;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::raft::{Raft, Request};
use crate::replica::ReplicaError;

/// Most commands in one entry.
pub const MAX_BATCH: usize = 256;
/// Most entries proposed and not yet applied, per master.
pub const MAX_IN_FLIGHT: usize = 2;
/// Proposals queued before callers wait.
const QUEUE: usize = 4096;

/// `Err(None)`: this master is not the leader (retry elsewhere).
pub type Outcome = Result<CommandResult, Option<ReplicaError>>;

struct Proposal {
    command: Command,
    reply: oneshot::Sender<Outcome>,
}

/// Handle on the batching task; it stops when the handle is dropped.
pub struct Proposer {
    queue: mpsc::Sender<Proposal>,
}

impl Proposer {
    pub fn start(raft: Raft) -> Proposer {
        let (queue, proposals) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, proposals));
        Proposer { queue }
    }

    /// Proposes one command and waits for its result.
    pub async fn propose(&self, command: Command) -> Outcome {
        let stopped = || {
            Some(ReplicaError::Stopped {
                reason: "the proposer has stopped".into(),
            })
        };
        let (reply, result) = oneshot::channel();
        self.queue
            .send(Proposal { command, reply })
            .await
            .map_err(|_| stopped())?;
        result.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn run(raft: Raft, mut proposals: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carried: Option<Proposal> = None;
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(proposal) => proposal,
            None => match proposals.recv().await {
                Some(proposal) => proposal,
                None => return,
            },
        };
        let mut keys = HashSet::new();
        let mut batch = Vec::new();
        let alone = touches_many(&first.command);
        keys.extend(key(&first.command));
        batch.push(first);
        while !alone && batch.len() < MAX_BATCH {
            let Ok(next) = proposals.try_recv() else { break };
            let next_key = key(&next.command);
            if touches_many(&next.command) || next_key.as_ref().is_some_and(|k| keys.contains(k)) {
                // Starts the next entry.
                carried = Some(next);
                break;
            }
            keys.extend(next_key);
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            submit(&raft, batch).await;
            drop(permit);
        });
    }
}

/// The object a command touches.
fn key(command: &Command) -> Option<(Kind, String, String)> {
    let object = match command.op.as_ref()? {
        Op::Create(op) => op.object.as_ref(),
        Op::Update(op) | Op::UpdateStatus(op) => op.object.as_ref(),
        Op::Delete(op) => return Some((Kind::parse(&op.kind).ok()?, op.namespace.clone(), op.name.clone())),
        Op::Bind(op) => return Some((Kind::Pod, op.namespace.clone(), op.name.clone())),
        Op::Batch(_) => None,
    }?;
    Some((
        object.kind()?,
        object.namespace().to_string(),
        object.name().to_string(),
    ))
}

/// Commands that may touch more than their own object.
fn touches_many(command: &Command) -> bool {
    match &command.op {
        Some(Op::Delete(op)) => Kind::parse(&op.kind) == Ok(Kind::Namespace),
        Some(Op::Batch(_)) | None => true,
        _ => false,
    }
}

async fn submit(raft: &Raft, mut batch: Vec<Proposal>) {
    let command = if batch.len() == 1 {
        std::mem::take(&mut batch[0].command)
    } else {
        Command {
            time: None,
            op: Some(Op::Batch(Batch {
                commands: batch.iter_mut().map(|p| std::mem::take(&mut p.command)).collect(),
            })),
        }
    };
    let outcome: Result<CommandResult, Option<ReplicaError>> = match raft.client_write(Request(Arc::new(command))).await
    {
        Ok(response) => Ok(response.data.0),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(None),
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(Some(ReplicaError::Membership { reason: e.to_string() }))
        }
        Err(RaftError::Fatal(e)) => Err(Some(ReplicaError::Stopped { reason: e.to_string() })),
    };
    match outcome {
        Ok(result) if batch.len() == 1 => {
            let _ = batch.remove(0).reply.send(Ok(result));
        }
        Ok(result) => {
            for (proposal, one) in batch.into_iter().zip(result.batch) {
                let _ = proposal.reply.send(Ok(one));
            }
        }
        Err(e) => {
            for proposal in batch {
                let _ = proposal.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{ConfigMap, ObjectMeta};
    use bosun_proto::internal::{CreateOp, DeleteOp};

    fn create(name: &str) -> Command {
        let object = ConfigMap {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Command {
            time: None,
            op: Some(Op::Create(CreateOp {
                object: Some(object.into()),
            })),
        }
    }

    #[test]
    fn keys_name_the_object_touched() {
        assert_eq!(key(&create("a")), Some((Kind::ConfigMap, "default".into(), "a".into())));
        let delete = Command {
            time: None,
            op: Some(Op::Delete(DeleteOp {
                kind: "ns".into(),
                name: "shop".into(),
                ..Default::default()
            })),
        };
        assert!(touches_many(&delete));
        assert!(!touches_many(&create("a")));
    }
}
