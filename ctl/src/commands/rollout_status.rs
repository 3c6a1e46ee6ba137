//! `ctl rollout status`: follows a Deployment's rollout until it is
//! complete, printing kubectl's progress lines as the status changes.
//!
//! [`progress`] judges one state of the Deployment, exactly as kubectl's
//! `DeploymentStatusViewer`. [`run`] reads the Deployment, then follows it
//! (by `metadata.name`, see [`super::follow`]), judging each change. The
//! rollout fails when the controller reports `ProgressDeadlineExceeded`,
//! and `--timeout` bounds the whole wait.

use std::time::Duration;

use bosun_proto::api::{Deployment, EventType, Object};
use bosun_proto::Kind;

use super::follow::{self, Change};
use super::rollout::{check_revision, deployments};
use super::workload::{group_kind, REVISION};
use super::{get_object, namespace_or_default};
use crate::{Client, CtlError, Io};

/// The Progressing condition's reason when the rollout missed its deadline.
const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still rolling out: the line to show.
    Waiting(String),
    /// Complete: the line to show.
    Done(String),
}

/// Judges a Deployment's rollout as kubectl does. `revision` > 0 pins the
/// revision expected to be rolling out.
///
/// # Errors
/// A missed progress deadline, or a Deployment at another revision than
/// `revision`; kubectl's words.
pub fn progress(deployment: &Deployment, revision: i64) -> Result<Progress, CtlError> {
    let meta = deployment.metadata.clone().unwrap_or_default();
    let name = &meta.name;
    if revision > 0 {
        let current = meta.annotations.get(REVISION).map(|r| r.trim().parse::<i64>());
        match current {
            Some(Ok(current)) if current == revision => {}
            Some(Ok(current)) => {
                return Err(CtlError::Invalid(format!(
                    "desired revision ({revision}) is different from the running revision ({current})"
                )))
            }
            Some(Err(e)) => {
                return Err(CtlError::Invalid(format!(
                    "cannot get the revision of deployment {name:?}: {e}"
                )))
            }
            None => {
                return Err(CtlError::Invalid(format!(
                    "cannot get the revision of deployment {name:?}: it has no {REVISION} annotation yet"
                )))
            }
        }
    }
    let status = deployment.status.clone().unwrap_or_default();
    if meta.generation > status.observed_generation {
        return Ok(Progress::Waiting(
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let progressing = status.conditions.iter().find(|c| c.r#type == "Progressing");
    if progressing.is_some_and(|c| c.reason == DEADLINE_EXCEEDED) {
        return Err(CtlError::Invalid(format!(
            "deployment {name:?} exceeded its progress deadline"
        )));
    }
    let waiting =
        |what: String| Progress::Waiting(format!("Waiting for deployment {name:?} rollout to finish: {what}..."));
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas);
    if let Some(wanted) = wanted.filter(|w| status.updated_replicas < *w) {
        return Ok(waiting(format!(
            "{} out of {wanted} new replicas have been updated",
            status.updated_replicas
        )));
    }
    if status.replicas > status.updated_replicas {
        return Ok(waiting(format!(
            "{} old replicas are pending termination",
            status.replicas - status.updated_replicas
        )));
    }
    if status.available_replicas < status.updated_replicas {
        return Ok(waiting(format!(
            "{} of {} updated replicas are available",
            status.available_replicas, status.updated_replicas
        )));
    }
    Ok(Progress::Done(format!("deployment {name:?} successfully rolled out")))
}

/// # Errors
/// A kind other than Deployment, a missing Deployment, a failed rollout,
/// the timeout, or an unreachable cluster.
pub async fn run(
    client: &mut Client,
    resources: &[String],
    watch: bool,
    timeout: Duration,
    revision: i64,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    check_revision(revision)?;
    let names = deployments(resources, |kind, _| {
        format!("no status viewer has been implemented for {}", group_kind(kind))
    })?;
    let namespace = namespace_or_default(namespace);
    for name in names {
        let follow = follow(client, &namespace, &name, watch, revision, io);
        if timeout.is_zero() {
            follow.await?;
        } else if let Ok(result) = tokio::time::timeout(timeout, follow).await {
            result?;
        } else {
            return Err(CtlError::Invalid("timed out waiting for the condition".into()));
        }
    }
    Ok(())
}

/// Prints the progress of one Deployment until it is done (or once,
/// without `watch`).
async fn follow(
    client: &mut Client,
    namespace: &str,
    name: &str,
    watch: bool,
    revision: i64,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let mut reporter = Reporter::default();
    // A plain read first, so a missing Deployment gets the server's words.
    let first = get_object(client, Kind::Deployment, namespace, name).await?;
    if reporter.report(&first, revision, io)? || !watch {
        return Ok(());
    }
    let mut follower = follow::follow(
        client,
        Kind::Deployment,
        namespace,
        "",
        &format!("metadata.name={name}"),
    )
    .since(first.resource_version());
    let mut current = vec![first];
    loop {
        let Some(object) = current.first() else {
            return Err(CtlError::Invalid("object has been deleted".into()));
        };
        if reporter.report(object, revision, io)? {
            return Ok(());
        }
        current = match follower.next().await? {
            Change::Event(EventType::Added | EventType::Modified, object) => vec![*object],
            Change::Event(EventType::Deleted, _) => vec![],
            Change::Event(EventType::Unspecified, _) => continue,
            Change::Relisted(objects) => objects,
        };
    }
}

/// Prints each progress line once, however many changes repeat it.
#[derive(Default)]
struct Reporter {
    last: Option<String>,
}

impl Reporter {
    /// Judges `object` and prints its line if new; whether the rollout is
    /// done.
    fn report(&mut self, object: &Object, revision: i64, io: &mut Io<'_>) -> Result<bool, CtlError> {
        let deployment = Deployment::try_from(object.clone()).map_err(|e| CtlError::Invalid(e.to_string()))?;
        let (line, done) = match progress(&deployment, revision)? {
            Progress::Waiting(line) => (line, false),
            Progress::Done(line) => (line, true),
        };
        if self.last.as_deref() != Some(line.as_str()) {
            writeln!(io.stdout, "{line}")?;
            io.stdout.flush()?;
            self.last = Some(line);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{DeploymentCondition, DeploymentSpec, DeploymentStatus, ObjectMeta};

    fn deployment(generation: i64, replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                generation,
                annotations: [(REVISION.to_string(), "3".to_string())].into(),
                ..Default::default()
            }),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(status),
            ..Default::default()
        }
    }

    fn status(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: observed,
            replicas,
            updated_replicas: updated,
            available_replicas: available,
            ready_replicas: available,
            ..Default::default()
        }
    }

    fn waiting(line: &str) -> Progress {
        Progress::Waiting(format!("Waiting for deployment \"web\" rollout to finish: {line}..."))
    }

    #[test]
    fn follows_a_rolling_update_with_kubectls_lines() {
        let cases = [
            (
                deployment(2, 3, status(1, 3, 3, 3)),
                Progress::Waiting("Waiting for deployment spec update to be observed...".into()),
            ),
            (
                deployment(2, 3, status(2, 4, 1, 3)),
                waiting("1 out of 3 new replicas have been updated"),
            ),
            (
                deployment(2, 3, status(2, 4, 3, 3)),
                waiting("1 old replicas are pending termination"),
            ),
            (
                deployment(2, 3, status(2, 3, 3, 2)),
                waiting("2 of 3 updated replicas are available"),
            ),
            (
                deployment(2, 3, status(2, 3, 3, 3)),
                Progress::Done("deployment \"web\" successfully rolled out".into()),
            ),
            (
                deployment(1, 0, status(1, 0, 0, 0)),
                Progress::Done("deployment \"web\" successfully rolled out".into()),
            ),
        ];
        for (deployment, expected) in cases {
            assert_eq!(progress(&deployment, 0).unwrap(), expected, "{:?}", deployment.status);
        }
    }

    #[test]
    fn a_missed_progress_deadline_fails_the_rollout() {
        let mut failed = status(2, 3, 1, 0);
        failed.conditions.push(DeploymentCondition {
            r#type: "Progressing".into(),
            status: "False".into(),
            reason: DEADLINE_EXCEEDED.into(),
            ..Default::default()
        });
        let error = progress(&deployment(2, 3, failed.clone()), 0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "error: deployment \"web\" exceeded its progress deadline"
        );
        // Not before the controller has seen the latest spec.
        assert!(progress(&deployment(3, 3, failed), 0).is_ok());
    }

    #[test]
    fn a_pinned_revision_must_be_the_running_one() {
        let done = deployment(1, 1, status(1, 1, 1, 1));
        assert!(matches!(progress(&done, 3), Ok(Progress::Done(_))));
        assert_eq!(
            progress(&done, 2).unwrap_err().to_string(),
            "error: desired revision (2) is different from the running revision (3)"
        );
    }
}
