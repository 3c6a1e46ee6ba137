//! Reports pod statuses to the masters, coalesced: for each pod only the
//! newest status is sent, one at a time, and a status equal to the last one
//! sent is not sent again. The statuses waiting to go are sent together in
//! one `UpdateStatuses` call (an agent starting many pods at once makes a
//! few calls, not one per pod). Workers never wait for the masters.

use std::collections::HashMap;
use std::time::Duration;

use bosun_proto::api::{ObjectMeta, Pod, PodStatus};
use bosun_proto::client::{Api, Client};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Statuses a reporter may hold before workers wait.
const QUEUE: usize = 4096;
/// Calls in flight at once.
const CONCURRENCY: usize = 4;
/// Most statuses in one call.
const BATCH: usize = 256;
/// Pause before retrying a status the masters could not take.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Reporter {
    queue: mpsc::Sender<Message>,
}

enum Message {
    Report(Box<Report>),
    /// The pod and its containers are gone: forget what was sent for it.
    Forget(String),
}

struct Report {
    namespace: String,
    name: String,
    uid: String,
    status: PodStatus,
}

impl Reporter {
    /// Starts the reporting task.
    pub fn start(client: Client, token: CancellationToken) -> Reporter {
        let (queue, reports) = mpsc::channel(QUEUE);
        tokio::spawn(run(client, reports, token));
        Reporter { queue }
    }

    /// Queues `status` for `pod`.
    pub async fn report(&self, pod: &Pod, status: PodStatus) {
        let meta = pod.metadata.clone().unwrap_or_default();
        let _ = self
            .queue
            .send(Message::Report(Box::new(Report {
                namespace: meta.namespace,
                name: meta.name,
                uid: meta.uid,
                status,
            })))
            .await;
    }

    /// Forgets pod `uid`, gone with its containers (a status still in
    /// flight for it is dropped when it returns).
    pub async fn forget(&self, uid: &str) {
        let _ = self.queue.send(Message::Forget(uid.to_string())).await;
    }
}

#[derive(Default)]
struct PodReports {
    /// Waiting to be sent.
    next: Option<Report>,
    in_flight: bool,
    last_sent: Option<PodStatus>,
    /// The pod is gone: dropped once nothing is in flight for it.
    forgotten: bool,
}

/// What has been sent and what waits to be, per pod: the reporter's logic,
/// apart from its I/O.
#[derive(Default)]
struct Ledger {
    pods: HashMap<String, PodReports>,
}

impl Ledger {
    fn report(&mut self, report: Report) {
        let entry = self.pods.entry(report.uid.clone()).or_default();
        entry.forgotten = false;
        if entry.last_sent.as_ref() != Some(&report.status) || entry.in_flight {
            entry.next = Some(report);
        }
    }

    fn forget(&mut self, uid: &str) {
        if let Some(entry) = self.pods.get_mut(uid) {
            entry.next = None;
            entry.forgotten = true;
        }
        self.prune();
    }

    /// Up to `limit` waiting statuses of pods with nothing in flight, now
    /// in flight.
    fn take_batch(&mut self, limit: usize) -> Vec<(String, Report)> {
        let mut batch = Vec::new();
        for (uid, entry) in &mut self.pods {
            if batch.len() == limit {
                break;
            }
            if entry.in_flight {
                continue;
            }
            let Some(report) = entry.next.take() else { continue };
            entry.in_flight = true;
            batch.push((uid.clone(), report));
        }
        batch
    }

    /// Records what became of a batch.
    fn finished(&mut self, batch: Vec<(String, Report)>, outcomes: Vec<Outcome>) {
        for ((uid, report), outcome) in batch.into_iter().zip(outcomes) {
            let Some(entry) = self.pods.get_mut(&uid) else { continue };
            entry.in_flight = false;
            match outcome {
                Outcome::Stored => entry.last_sent = Some(report.status),
                // Sent again unless something newer is waiting.
                Outcome::Retry if !entry.forgotten && entry.next.is_none() => entry.next = Some(report),
                Outcome::Retry => {}
                Outcome::Gone => {
                    entry.next = None;
                    entry.forgotten = true;
                }
            }
            if entry
                .next
                .as_ref()
                .is_some_and(|n| entry.last_sent.as_ref() == Some(&n.status))
            {
                entry.next = None;
            }
        }
        self.prune();
    }

    fn prune(&mut self) {
        self.pods
            .retain(|_, e| e.in_flight || (!e.forgotten && (e.next.is_some() || e.last_sent.is_some())));
    }
}

async fn run(client: Client, mut messages: mpsc::Receiver<Message>, token: CancellationToken) {
    let mut ledger = Ledger::default();
    let (done_tx, mut done) = mpsc::channel::<(Vec<(String, Report)>, Vec<Outcome>)>(QUEUE);
    let mut in_flight = 0usize;
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                None => return,
                Some(Message::Report(report)) => ledger.report(*report),
                Some(Message::Forget(uid)) => ledger.forget(&uid),
            },
            finished = done.recv() => {
                let Some((batch, outcomes)) = finished else { return };
                in_flight -= 1;
                ledger.finished(batch, outcomes);
            }
            () = token.cancelled() => return,
        }
        // Send the pending statuses of pods with nothing in flight, in
        // batches.
        while in_flight < CONCURRENCY {
            let batch = ledger.take_batch(BATCH);
            if batch.is_empty() {
                break;
            }
            in_flight += 1;
            let (client, done_tx) = (client.clone(), done_tx.clone());
            tokio::spawn(async move {
                let outcomes = send(client, &batch).await;
                let _ = done_tx.send((batch, outcomes)).await;
            });
        }
    }
}

enum Outcome {
    Stored,
    /// The pod is gone or was replaced: drop the status.
    Gone,
    /// The masters could not take it now.
    Retry,
}

/// Sends a batch of statuses; one outcome per status, in order.
async fn send(client: Client, batch: &[(String, Report)]) -> Vec<Outcome> {
    let pods = batch
        .iter()
        .map(|(_, report)| Pod {
            metadata: Some(ObjectMeta {
                name: report.name.clone(),
                namespace: report.namespace.clone(),
                uid: report.uid.clone(),
                ..Default::default()
            }),
            status: Some(report.status.clone()),
            ..Default::default()
        })
        .collect();
    let results = match Api::<Pod>::all(&client).update_statuses(pods).await {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(statuses = batch.len(), error = %e, "cannot report pod statuses; will retry");
            tokio::time::sleep(RETRY_PAUSE).await;
            return batch.iter().map(|_| Outcome::Retry).collect();
        }
    };
    batch
        .iter()
        .zip(results)
        .map(|((_, report), result)| match result {
            Ok(_) => Outcome::Stored,
            Err(e) if matches!(e.code(), Some(tonic::Code::NotFound | tonic::Code::Aborted)) => {
                tracing::debug!(pod = %report.name, error = %e, "pod gone; status dropped");
                Outcome::Gone
            }
            Err(e) => {
                tracing::warn!(pod = %report.name, error = %e, "cannot report pod status; will retry");
                Outcome::Retry
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(uid: &str, phase: &str) -> Report {
        Report {
            namespace: "default".into(),
            name: format!("pod-{uid}"),
            uid: uid.into(),
            status: PodStatus {
                phase: phase.into(),
                ..Default::default()
            },
        }
    }

    fn phases(batch: &[(String, Report)]) -> Vec<(&str, &str)> {
        batch
            .iter()
            .map(|(uid, r)| (uid.as_str(), r.status.phase.as_str()))
            .collect()
    }

    #[test]
    fn only_the_newest_status_goes_one_at_a_time_per_pod_and_never_twice() {
        let mut ledger = Ledger::default();
        ledger.report(report("a", "Pending"));
        ledger.report(report("a", "Running"));
        let batch = ledger.take_batch(BATCH);
        assert_eq!(phases(&batch), [("a", "Running")], "the newer replaces the older");
        // Newer news while one is in flight waits for it.
        ledger.report(report("a", "Failed"));
        assert!(ledger.take_batch(BATCH).is_empty());
        ledger.finished(batch, vec![Outcome::Stored]);
        let batch = ledger.take_batch(BATCH);
        assert_eq!(phases(&batch), [("a", "Failed")]);
        ledger.finished(batch, vec![Outcome::Stored]);
        // The stored status is not sent again.
        ledger.report(report("a", "Failed"));
        assert!(ledger.take_batch(BATCH).is_empty());
    }

    #[test]
    fn batches_are_bounded_and_failures_are_retried() {
        let mut ledger = Ledger::default();
        for uid in ["a", "b", "c"] {
            ledger.report(report(uid, "Running"));
        }
        let first = ledger.take_batch(2);
        assert_eq!(first.len(), 2);
        let second = ledger.take_batch(2);
        assert_eq!(second.len(), 1);
        let retried = first[0].0.clone();
        ledger.finished(first, vec![Outcome::Retry, Outcome::Stored]);
        assert_eq!(phases(&ledger.take_batch(BATCH)), [(retried.as_str(), "Running")]);
    }

    #[test]
    fn gone_and_forgotten_pods_are_dropped() {
        let mut ledger = Ledger::default();
        ledger.report(report("a", "Running"));
        ledger.report(report("b", "Running"));
        let batch = ledger.take_batch(BATCH);
        ledger.finished(batch, vec![Outcome::Stored, Outcome::Stored]);
        assert_eq!(ledger.pods.len(), 2, "what was sent is remembered");
        ledger.forget("a");
        assert_eq!(ledger.pods.len(), 1);

        // Forgotten while in flight: dropped when the call returns, even
        // if it failed.
        ledger.report(report("b", "Succeeded"));
        let batch = ledger.take_batch(BATCH);
        ledger.forget("b");
        assert_eq!(ledger.pods.len(), 1, "still in flight");
        ledger.finished(batch, vec![Outcome::Retry]);
        assert!(ledger.pods.is_empty());

        // A pod the masters no longer have is dropped too.
        ledger.report(report("c", "Running"));
        let batch = ledger.take_batch(BATCH);
        ledger.finished(batch, vec![Outcome::Gone]);
        assert!(ledger.pods.is_empty());
    }
}
