//! `ctl rollout history|undo|pause|resume|restart` on Deployments, done
//! client-side as kubectl does them (`rollout status` has its own module).
//!
//! A Deployment's history is its ReplicaSets: the controller keeps one per
//! pod template, each annotated with its revision (highest = current) and
//! the change cause. `undo` copies the chosen ReplicaSet's template back
//! into the Deployment (without the `pod-template-hash` label the
//! ReplicaSet added), under a resourceVersion precondition; the controller
//! then rolls it out as a new revision.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Deployment, ReplicaSet};
use bosun_proto::Kind;

use super::workload::{
    edit, get_deployment, group_kind, owned_replica_sets, resource, revision, without_hash, Edit, CHANGE_CAUSE,
    RESTARTED_AT,
};
use super::{named_targets, namespace_or_default};
use crate::output::object_name;
use crate::{pod_template, tabwriter, Client, CtlError, Io};

/// Refuses a negative `--revision` (0 means "any").
pub(super) fn check_revision(revision: i64) -> Result<(), CtlError> {
    if revision < 0 {
        return Err(CtlError::Invalid(format!(
            "revision must be a positive integer: {revision}"
        )));
    }
    Ok(())
}

/// The Deployments among `resources`, refusing other kinds with
/// `refusal(kind, name)`.
pub(super) fn deployments(
    resources: &[String],
    refusal: impl Fn(Kind, &str) -> String,
) -> Result<Vec<String>, CtlError> {
    named_targets(resources)?
        .into_iter()
        .map(|(kind, name)| {
            if kind == Kind::Deployment {
                Ok(name)
            } else {
                Err(CtlError::Invalid(refusal(kind, &name)))
            }
        })
        .collect()
}

/// `rollout pause` (`pause` true) and `rollout resume` (false).
///
/// # Errors
/// kubectl's messages for another kind or a Deployment already in that
/// state; a failed read or write.
pub async fn pause(
    client: &mut Client,
    resources: &[String],
    pause: bool,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let (verb, noun, refusal) = if pause {
        ("paused", "pausing", "is already paused")
    } else {
        ("resumed", "resuming", "is not paused")
    };
    let names = deployments(resources, |kind, name| {
        format!("{} {name:?} {noun} is not supported", resource(kind))
    })?;
    let namespace = namespace_or_default(namespace);
    for name in names {
        let (object, _) = edit(client, Kind::Deployment, &namespace, &name, |object| {
            let spec = deployment_mut(object)?.spec.get_or_insert_with(Default::default);
            if spec.paused == pause {
                return Err(CtlError::Invalid(format!(
                    "{} {name:?} {refusal}",
                    resource(Kind::Deployment)
                )));
            }
            spec.paused = pause;
            Ok(Edit::Write(()))
        })
        .await?;
        writeln!(io.stdout, "{} {verb}", object_name(&object))?;
    }
    Ok(())
}

/// `rollout restart`: stamps the pod template with the time, so every pod
/// is replaced.
///
/// # Errors
/// Another kind, a paused Deployment, a failed read or write.
pub async fn restart(
    client: &mut Client,
    resources: &[String],
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let names = deployments(resources, |kind, name| {
        format!("{} {name:?} restarting is not supported", resource(kind))
    })?;
    let namespace = namespace_or_default(namespace);
    let now = rfc3339(SystemTime::now());
    for name in names {
        let (object, _) = edit(client, Kind::Deployment, &namespace, &name, |object| {
            let spec = deployment_mut(object)?.spec.get_or_insert_with(Default::default);
            if spec.paused {
                return Err(CtlError::Invalid(format!(
                    "{} {name:?} can't restart paused deployment (run rollout resume first)",
                    resource(Kind::Deployment)
                )));
            }
            let template = spec.template.get_or_insert_with(Default::default);
            let meta = template.metadata.get_or_insert_with(Default::default);
            meta.annotations.insert(RESTARTED_AT.to_string(), now.clone());
            Ok(Edit::Write(()))
        })
        .await?;
        writeln!(io.stdout, "{} restarted", object_name(&object))?;
    }
    Ok(())
}

/// `rollout history`: the revisions, or one revision's pod template.
///
/// # Errors
/// Another kind, an unknown revision, a failed read.
pub async fn history(
    client: &mut Client,
    resources: &[String],
    revision: i64,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    check_revision(revision)?;
    let names = deployments(resources, |kind, _| {
        format!("no history viewer has been implemented for {:?}", group_kind(kind))
    })?;
    let namespace = namespace_or_default(namespace);
    for name in names {
        let deployment = get_deployment(client, &namespace, &name).await?;
        let sets = owned_replica_sets(client, &deployment).await?;
        let text = history_text(&sets, revision)?;
        let pinned = if revision > 0 {
            format!("with revision #{revision}")
        } else {
            String::new()
        };
        // kubectl's layout, trailing space and blank line included.
        write!(io.stdout, "{} {pinned}\n{text}\n", object_name(&deployment.into()))?;
    }
    Ok(())
}

/// The history table (`REVISION  CHANGE-CAUSE`), or the pod template of
/// `revision` when it is > 0.
///
/// # Errors
/// kubectl's `unable to find the specified revision`.
pub fn history_text(sets: &[ReplicaSet], revision: i64) -> Result<String, CtlError> {
    let by_revision: BTreeMap<i64, &ReplicaSet> =
        sets.iter().filter_map(|rs| Some((self::revision(rs)?, rs))).collect();
    if by_revision.is_empty() {
        return Ok("No rollout history found.".into());
    }
    if revision > 0 {
        let Some(rs) = by_revision.get(&revision) else {
            return Err(CtlError::Invalid("unable to find the specified revision".into()));
        };
        return Ok(pod_template::describe(
            rs.spec.as_ref().and_then(|s| s.template.as_ref()),
        ));
    }
    let mut table = String::from("REVISION\tCHANGE-CAUSE\n");
    for (revision, rs) in &by_revision {
        let cause = rs
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.get(CHANGE_CAUSE))
            .filter(|c| !c.is_empty())
            .map_or("<none>", String::as_str);
        table.push_str(&format!("{revision}\t{cause}\n"));
    }
    Ok(tabwriter::align(&table))
}

/// `rollout undo`.
///
/// # Errors
/// Another kind, an unknown revision, no earlier revision, a paused
/// Deployment, a failed read or write.
pub async fn undo(
    client: &mut Client,
    resources: &[String],
    to_revision: i64,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let names = deployments(resources, |kind, _| {
        format!("no rollbacker has been implemented for {:?}", group_kind(kind))
    })?;
    let namespace = namespace_or_default(namespace);
    for name in names {
        let deployment = get_deployment(client, &namespace, &name).await?;
        let sets = owned_replica_sets(client, &deployment).await?;
        let (target, revision) = select_revision(&sets, to_revision, &name)?;
        let (object, decision) = edit(client, Kind::Deployment, &namespace, &name, |object| {
            let deployment = deployment_mut(object)?;
            if deployment.spec.as_ref().is_some_and(|s| s.paused) {
                return Err(CtlError::Invalid(
                    "you cannot rollback a paused deployment; resume it first with 'ctl rollout resume' and try again"
                        .into(),
                ));
            }
            Ok(if roll_back(deployment, target) {
                Edit::Write(())
            } else {
                Edit::Keep(())
            })
        })
        .await?;
        let outcome = match decision {
            Edit::Write(()) => "rolled back".to_string(),
            Edit::Keep(()) => format!("skipped rollback (current template already matches revision {revision})"),
        };
        writeln!(io.stdout, "{} {outcome}", object_name(&object))?;
    }
    Ok(())
}

/// The ReplicaSet to roll back to and its revision: `to_revision`, or
/// when 0 the second-highest revision (the one before the current), as
/// kubectl chooses.
///
/// # Errors
/// kubectl's `unable to find specified revision N in history`, or `no
/// rollout history found` when there is no earlier revision.
pub fn select_revision<'a>(
    sets: &'a [ReplicaSet],
    to_revision: i64,
    deployment: &str,
) -> Result<(&'a ReplicaSet, i64), CtlError> {
    let not_found = || CtlError::Invalid(format!("unable to find specified revision {to_revision} in history"));
    if to_revision < 0 {
        return Err(not_found());
    }
    let mut revisions: Vec<(i64, &ReplicaSet)> = sets.iter().filter_map(|rs| Some((revision(rs)?, rs))).collect();
    if to_revision > 0 {
        return revisions
            .into_iter()
            .find(|(revision, _)| *revision == to_revision)
            .map(|(revision, rs)| (rs, revision))
            .ok_or_else(not_found);
    }
    revisions.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    revisions.dedup_by_key(|(revision, _)| *revision);
    match revisions.get(1) {
        Some((revision, rs)) => Ok((rs, *revision)),
        None => Err(CtlError::Invalid(format!(
            "no rollout history found for deployment {deployment:?}"
        ))),
    }
}

/// Puts the template of `target` into `deployment`; false (and nothing
/// changed) when the Deployment already runs that template.
///
/// The change cause goes with the template: the Deployment takes the
/// ReplicaSet's, or none. Its other annotations stay (kubectl replaces
/// them with the ReplicaSet's, which in Kubernetes are a copy; Bosun's
/// controller copies only the change cause).
pub fn roll_back(deployment: &mut Deployment, target: &ReplicaSet) -> bool {
    let wanted = without_hash(target.spec.as_ref().and_then(|s| s.template.as_ref()));
    let spec = deployment.spec.get_or_insert_with(Default::default);
    let current = without_hash(spec.template.as_ref());
    if current == wanted {
        return false;
    }
    spec.template = Some(wanted);
    let annotations = &mut deployment.metadata.get_or_insert_with(Default::default).annotations;
    match target.metadata.as_ref().and_then(|m| m.annotations.get(CHANGE_CAUSE)) {
        Some(cause) => annotations.insert(CHANGE_CAUSE.to_string(), cause.clone()),
        None => annotations.remove(CHANGE_CAUSE),
    };
    true
}

fn deployment_mut(object: &mut bosun_proto::api::Object) -> Result<&mut Deployment, CtlError> {
    let shown = object_name(object);
    match object.resource.as_mut() {
        Some(Resource::Deployment(deployment)) => Ok(deployment),
        _ => Err(CtlError::Invalid(format!("{shown} is not a deployment"))),
    }
}

/// `2024-05-01T12:00:00Z`: Go's `time.RFC3339`, in UTC.
fn rfc3339(time: SystemTime) -> String {
    let mut timestamp = prost_types::Timestamp::from(time);
    timestamp.nanos = 0;
    timestamp.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workload::fixtures::template;
    use bosun_proto::api::{ObjectMeta, ReplicaSetSpec};
    use bosun_proto::workload::REVISION;

    fn replica_set(revision: &str, image: &str, cause: Option<&str>) -> ReplicaSet {
        let mut annotations = std::collections::HashMap::from([(REVISION.to_string(), revision.to_string())]);
        if let Some(cause) = cause {
            annotations.insert(CHANGE_CAUSE.to_string(), cause.to_string());
        }
        ReplicaSet {
            metadata: Some(ObjectMeta {
                name: format!("web-{revision}"),
                annotations,
                ..Default::default()
            }),
            spec: Some(ReplicaSetSpec {
                template: Some(template(image, Some(&format!("h{revision}")))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn deployment(image: &str) -> Deployment {
        Deployment {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                annotations: [(CHANGE_CAUSE.to_string(), "v3".to_string())].into(),
                ..Default::default()
            }),
            spec: Some(bosun_proto::api::DeploymentSpec {
                template: Some(template(image, None)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn undo_picks_the_revision_before_the_latest_or_the_one_asked_for() {
        let sets = vec![
            replica_set("1", "v1", None),
            replica_set("3", "v3", None),
            replica_set("2", "v2", None),
            replica_set("not-a-number", "vx", None),
        ];
        let (rs, revision) = select_revision(&sets, 0, "web").unwrap();
        assert_eq!((rs.metadata.as_ref().unwrap().name.as_str(), revision), ("web-2", 2));
        let (rs, revision) = select_revision(&sets, 1, "web").unwrap();
        assert_eq!((rs.metadata.as_ref().unwrap().name.as_str(), revision), ("web-1", 1));
        assert_eq!(
            select_revision(&sets, 7, "web").unwrap_err().to_string(),
            "error: unable to find specified revision 7 in history"
        );
        assert_eq!(
            select_revision(&sets[1..2], 0, "web").unwrap_err().to_string(),
            "error: no rollout history found for deployment \"web\""
        );
    }

    #[test]
    fn undo_copies_the_template_without_the_hash_label_and_takes_the_change_cause() {
        let mut current = deployment("v3");
        let target = replica_set("2", "v2", Some("set image v2"));
        assert!(roll_back(&mut current, &target));
        let template = current.spec.as_ref().unwrap().template.clone().unwrap();
        assert_eq!(template, self::template("v2", None));
        assert_eq!(
            current
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .get(CHANGE_CAUSE)
                .map(String::as_str),
            Some("set image v2")
        );
        // Without a change cause on the revision, the Deployment has none.
        assert!(roll_back(&mut current, &replica_set("1", "v1", None)));
        assert!(!current
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .contains_key(CHANGE_CAUSE));
    }

    #[test]
    fn undo_to_the_current_template_changes_nothing() {
        let mut current = deployment("v3");
        let before = current.clone();
        assert!(!roll_back(&mut current, &replica_set("3", "v3", None)));
        assert_eq!(current, before);
    }

    #[test]
    fn history_lists_revisions_in_order_with_their_causes() {
        let sets = vec![
            replica_set("10", "v10", Some("ctl set image deploy/web web=v10")),
            replica_set("2", "v2", None),
        ];
        assert_eq!(
            history_text(&sets, 0).unwrap(),
            "REVISION  CHANGE-CAUSE\n2         <none>\n10        ctl set image deploy/web web=v10\n"
        );
        let template = history_text(&sets, 2).unwrap();
        assert!(
            template.starts_with("Pod Template:\n  Labels:\tapp=web\n\tpod-template-hash=h2\n"),
            "{template}"
        );
        assert!(template.contains("    Image:\tv2\n"), "{template}");
        assert_eq!(
            history_text(&sets, 5).unwrap_err().to_string(),
            "error: unable to find the specified revision"
        );
        assert_eq!(history_text(&[], 0).unwrap(), "No rollout history found.");
    }

    #[test]
    fn restart_stamps_are_rfc3339_in_utc() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_714_564_800_250);
        assert_eq!(rfc3339(time), "2024-05-01T12:00:00Z");
    }
}
