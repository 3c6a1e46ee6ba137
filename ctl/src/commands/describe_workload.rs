//! `ctl describe deployment|replicaset` in kubectl's layout: replicas,
//! strategy, the pod template, conditions, a Deployment's old and new
//! ReplicaSets, a ReplicaSet's pods by phase. (Events follow, as for
//! every kind, from `describe`.)

use std::fmt::Write as _;

use bosun_proto::api::{Deployment, ObjectMeta, Pod, ReplicaSet};
use bosun_proto::Kind;

use super::list_objects;
use super::workload::{owned_replica_sets, selector_string, without_hash};
use crate::{pod_template, tabwriter, Client, CtlError};

/// Pods of a ReplicaSet counted by phase.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PodPhases {
    pub running: usize,
    pub waiting: usize,
    pub succeeded: usize,
    pub failed: usize,
}

/// A Deployment with its ReplicaSets, described.
///
/// # Errors
/// A failed list.
pub async fn deployment(client: &mut Client, deployment: &Deployment) -> Result<String, CtlError> {
    let sets = owned_replica_sets(client, deployment).await?;
    Ok(deployment_text(deployment, &sets))
}

/// A ReplicaSet with its pods counted, described.
///
/// # Errors
/// A failed list.
pub async fn replica_set(client: &mut Client, rs: &ReplicaSet) -> Result<String, CtlError> {
    let meta = rs.metadata.clone().unwrap_or_default();
    let selector = selector_string(rs.spec.as_ref().and_then(|s| s.selector.as_ref()));
    let mut phases = PodPhases::default();
    for object in list_objects(client, Kind::Pod, &meta.namespace, &selector, "").await? {
        let Ok(pod) = Pod::try_from(object) else { continue };
        let controlled = pod.metadata.as_ref().is_some_and(|m| {
            m.owner_references
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == meta.uid)
        });
        if !controlled {
            continue;
        }
        match pod.status.as_ref().map_or("Pending", |s| s.phase.as_str()) {
            "Running" => phases.running += 1,
            "Succeeded" => phases.succeeded += 1,
            "Failed" => phases.failed += 1,
            _ => phases.waiting += 1,
        }
    }
    Ok(replica_set_text(rs, phases))
}

/// kubectl's `describeDeployment`; `sets` are the ReplicaSets it owns.
pub fn deployment_text(d: &Deployment, sets: &[ReplicaSet]) -> String {
    let meta = d.metadata.clone().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let mut w = header(&meta);
    let _ = writeln!(w, "Selector:\t{}", selector_string(spec.selector.as_ref()));
    let _ = writeln!(
        w,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable",
        spec.replicas.unwrap_or(1),
        status.updated_replicas,
        status.replicas,
        status.available_replicas,
        status.unavailable_replicas
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    let _ = writeln!(w, "StrategyType:\t{}", strategy.r#type);
    let _ = writeln!(w, "MinReadySeconds:\t{}", spec.min_ready_seconds);
    if let Some(rolling) = &strategy.rolling_update {
        let _ = writeln!(
            w,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge",
            pod_template::int_or_string(rolling.max_unavailable.as_ref()),
            pod_template::int_or_string(rolling.max_surge.as_ref())
        );
    }
    w.push_str(&pod_template::describe(spec.template.as_ref()));
    conditions(
        &mut w,
        status
            .conditions
            .iter()
            .map(|c| (c.r#type.as_str(), c.status.as_str(), c.reason.as_str())),
    );
    let template = without_hash(spec.template.as_ref());
    let mut newest: Vec<&ReplicaSet> = sets.iter().collect();
    newest.sort_by_key(|rs| {
        rs.metadata
            .as_ref()
            .and_then(|m| m.creation_timestamp)
            .map(|t| (t.seconds, t.nanos))
    });
    let new = newest
        .iter()
        .position(|rs| without_hash(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == template);
    if !sets.is_empty() {
        let (new_sets, old_sets): (Vec<_>, Vec<_>) = newest.iter().enumerate().partition(|(i, _)| Some(*i) == new);
        let _ = writeln!(
            w,
            "OldReplicaSets:\t{}",
            replica_sets(old_sets.into_iter().map(|(_, rs)| *rs))
        );
        let _ = writeln!(
            w,
            "NewReplicaSet:\t{}",
            replica_sets(new_sets.into_iter().map(|(_, rs)| *rs))
        );
    }
    tabwriter::align(&w)
}

/// kubectl's `describeReplicaSet`.
pub fn replica_set_text(rs: &ReplicaSet, phases: PodPhases) -> String {
    let meta = rs.metadata.clone().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let mut w = format!("Name:\t{}\nNamespace:\t{}\n", meta.name, meta.namespace);
    let _ = writeln!(w, "Selector:\t{}", selector_string(spec.selector.as_ref()));
    pod_template::labels(&mut w, "Labels", &meta.labels);
    pod_template::annotations(&mut w, "Annotations", &meta.annotations);
    if let Some(owner) = bosun_proto::workload::controller_of(&meta) {
        let _ = writeln!(w, "Controlled By:\t{}/{}", owner.kind, owner.name);
    }
    let _ = writeln!(
        w,
        "Replicas:\t{} current / {} desired",
        status.replicas,
        spec.replicas.unwrap_or(1)
    );
    let _ = writeln!(
        w,
        "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed",
        phases.running, phases.waiting, phases.succeeded, phases.failed
    );
    w.push_str(&pod_template::describe(spec.template.as_ref()));
    conditions(
        &mut w,
        status
            .conditions
            .iter()
            .map(|c| (c.r#type.as_str(), c.status.as_str(), c.reason.as_str())),
    );
    tabwriter::align(&w)
}

/// Name, namespace, creation time, labels and annotations.
fn header(meta: &ObjectMeta) -> String {
    let mut w = format!("Name:\t{}\nNamespace:\t{}\n", meta.name, meta.namespace);
    let created = meta.creation_timestamp.map(rfc1123z).unwrap_or_default();
    let _ = writeln!(w, "CreationTimestamp:\t{created}");
    pod_template::labels(&mut w, "Labels", &meta.labels);
    pod_template::annotations(&mut w, "Annotations", &meta.annotations);
    w
}

fn conditions<'a>(w: &mut String, conditions: impl ExactSizeIterator<Item = (&'a str, &'a str, &'a str)>) {
    if conditions.len() == 0 {
        return;
    }
    w.push_str("Conditions:\n  Type\tStatus\tReason\n  ----\t------\t------\n");
    for (kind, status, reason) in conditions {
        let _ = writeln!(w, "  {kind} \t{status}\t{reason}");
    }
}

/// `web-5d8f (3/3 replicas created), ...` or `<none>`.
fn replica_sets<'a>(sets: impl Iterator<Item = &'a ReplicaSet>) -> String {
    let shown: Vec<String> = sets
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                rs.metadata.as_ref().map_or("", |m| m.name.as_str()),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
            )
        })
        .collect();
    if shown.is_empty() {
        "<none>".into()
    } else {
        shown.join(", ")
    }
}

/// Go's `time.RFC1123Z` in UTC: `Wed, 01 May 2024 12:00:00 +0000`.
pub(super) fn rfc1123z(time: prost_types::Timestamp) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = time.seconds.div_euclid(86_400);
    let of_day = time.seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)],
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workload::fixtures::template;
    use bosun_proto::api::{
        int_or_string, DeploymentCondition, DeploymentSpec, DeploymentStatus, IntOrString, LabelSelector,
        ReplicaSetSpec, ReplicaSetStatus,
    };

    fn rs(name: &str, image: &str, created: i64, replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                creation_timestamp: Some(prost_types::Timestamp {
                    seconds: created,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                template: Some(template(image, Some(name))),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn describes_a_deployment_with_its_old_and_new_replica_sets() {
        let d = Deployment {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                creation_timestamp: Some(prost_types::Timestamp {
                    seconds: 1_714_564_800,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                selector: Some(LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
                template: Some(template("v2", None)),
                strategy: Some(bosun_proto::api::DeploymentStrategy {
                    r#type: "RollingUpdate".into(),
                    rolling_update: Some(bosun_proto::api::RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString {
                            value: Some(int_or_string::Value::StrValue("25%".into())),
                        }),
                        max_surge: Some(IntOrString {
                            value: Some(int_or_string::Value::IntValue(1)),
                        }),
                    }),
                }),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                replicas: 4,
                updated_replicas: 1,
                available_replicas: 3,
                unavailable_replicas: 1,
                conditions: vec![DeploymentCondition {
                    r#type: "Progressing".into(),
                    status: "True".into(),
                    reason: "ReplicaSetUpdated".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = deployment_text(&d, &[rs("web-2", "v2", 200, 1), rs("web-1", "v1", 100, 3)]);
        for expected in [
            "Name:                   web\n",
            "CreationTimestamp:      Wed, 01 May 2024 12:00:00 +0000\n",
            "Selector:               app=web\n",
            "Replicas:               3 desired | 1 updated | 4 total | 3 available | 1 unavailable\n",
            "StrategyType:           RollingUpdate\n",
            "RollingUpdateStrategy:  25% max unavailable, 1 max surge\n",
            "Pod Template:\n  Labels:  app=web\n",
            "    Image:         v2\n",
            "Conditions:\n  Type           Status  Reason\n  ----           ------  ------\n  Progressing    True    ReplicaSetUpdated\n",
            "OldReplicaSets:  web-1 (3/3 replicas created)\nNewReplicaSet:   web-2 (1/1 replicas created)\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn describes_a_replica_set_with_its_pods_by_phase() {
        let mut set = rs("web-1", "v1", 100, 3);
        set.metadata
            .as_mut()
            .unwrap()
            .owner_references
            .push(bosun_proto::api::OwnerReference {
                kind: "Deployment".into(),
                name: "web".into(),
                controller: Some(true),
                ..Default::default()
            });
        let phases = PodPhases {
            running: 2,
            waiting: 1,
            ..Default::default()
        };
        let text = replica_set_text(&set, phases);
        assert!(text.contains("Controlled By:  Deployment/web\n"), "{text}");
        assert!(text.contains("Replicas:       3 current / 3 desired\n"), "{text}");
        assert!(
            text.contains("Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 0 Failed\n"),
            "{text}"
        );
    }
}
