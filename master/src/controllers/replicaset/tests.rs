use std::time::{Duration, SystemTime};

use bosun_proto::api::{
    LabelSelector, ObjectMeta, OwnerReference, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, ReplicaSet,
    ReplicaSetSpec,
};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn rs(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: Some(ObjectMeta {
            name: "web".into(),
            namespace: "default".into(),
            uid: "rs-uid".into(),
            generation: 3,
            ..Default::default()
        }),
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: Some(LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(PodSpec::default()),
            }),
            min_ready_seconds: 0,
        }),
        ..Default::default()
    }
}

struct P {
    name: &'static str,
    owner: Option<&'static str>,
    app: &'static str,
    node: &'static str,
    phase: &'static str,
    ready_for: Option<u64>,
    created: i64,
}

const BASE: P = P {
    name: "p",
    owner: Some("rs-uid"),
    app: "web",
    node: "n1",
    phase: "Running",
    ready_for: Some(100),
    created: 0,
};

fn pod(p: P, now: SystemTime) -> Pod {
    let ready_since = p.ready_for.map(|s| now - Duration::from_secs(s));
    Pod {
        metadata: Some(ObjectMeta {
            name: p.name.into(),
            namespace: "default".into(),
            uid: format!("{}-uid", p.name),
            labels: labels(&[("app", p.app)]),
            owner_references: p
                .owner
                .map(|uid| OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "web".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            creation_timestamp: Some(prost_types::Timestamp {
                seconds: p.created,
                nanos: 0,
            }),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            node_name: p.node.into(),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: p.phase.into(),
            conditions: ready_since
                .map(|t| PodCondition {
                    r#type: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(t.into()),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn creates(plan: &Plan) -> usize {
    plan.actions.iter().filter(|a| matches!(a, Action::Create(_))).count()
}

fn deleted(plan: &Plan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn new_status(plan: &Plan) -> Option<ReplicaSetStatus> {
    plan.actions.iter().find_map(|a| match a {
        Action::UpdateStatus(o) => ReplicaSet::try_from(o.clone()).ok()?.status,
        _ => None,
    })
}

#[test]
fn creates_the_missing_pods_from_the_template_owned_by_the_set() {
    let now = SystemTime::now();
    let pods = [pod(P { name: "a", ..BASE }, now)];
    let plan = reconcile(&rs(3), pods.iter(), now);
    assert_eq!(creates(&plan), 2);
    let Some(Action::Create(object)) = plan.actions.first() else {
        panic!("{plan:?}")
    };
    let meta = object.metadata().unwrap();
    assert_eq!(meta.generate_name, "web-");
    assert_eq!(meta.labels, labels(&[("app", "web")]));
    assert_eq!(ownership::controller_of(meta).unwrap().uid, "rs-uid");
}

#[test]
fn finished_and_terminating_pods_are_replaced() {
    let now = SystemTime::now();
    let mut gone = pod(P { name: "b", ..BASE }, now);
    gone.metadata.as_mut().unwrap().deletion_timestamp = Some(now.into());
    let pods = [
        pod(P { name: "a", ..BASE }, now),
        gone,
        pod(
            P {
                name: "c",
                phase: "Failed",
                ..BASE
            },
            now,
        ),
    ];
    assert_eq!(creates(&reconcile(&rs(3), pods.iter(), now)), 2);
}

#[test]
fn scales_down_unscheduled_then_not_ready_then_newest_first() {
    let now = SystemTime::now();
    let pods = [
        pod(
            P {
                name: "old-ready",
                created: 1,
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "new-ready",
                created: 9,
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "not-ready",
                ready_for: None,
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "unscheduled",
                node: "",
                phase: "Pending",
                ready_for: None,
                ..BASE
            },
            now,
        ),
    ];
    let plan = reconcile(&rs(1), pods.iter(), now);
    assert_eq!(deleted(&plan), vec!["unscheduled", "not-ready", "new-ready"]);
}

#[test]
fn adopts_matching_orphans_releases_mismatches_ignores_others() {
    let now = SystemTime::now();
    let pods = [
        pod(
            P {
                name: "orphan",
                owner: None,
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "relabelled",
                app: "db",
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "foreign",
                owner: Some("other"),
                ..BASE
            },
            now,
        ),
    ];
    let plan = reconcile(&rs(1), pods.iter(), now);
    let updates: Vec<(&str, Vec<String>)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Update(o) => Some((
                o.name(),
                o.metadata()
                    .unwrap()
                    .owner_references
                    .iter()
                    .map(|r| r.uid.clone())
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        updates,
        vec![("orphan", vec!["rs-uid".to_string()]), ("relabelled", vec![])]
    );
    assert_eq!(creates(&plan), 0, "the adopted orphan counts");
}

#[test]
fn status_counts_ready_and_available_and_asks_to_look_again() {
    let now = SystemTime::now();
    let mut set = rs(3);
    set.spec.as_mut().unwrap().min_ready_seconds = 10;
    let pods = [
        pod(
            P {
                name: "a",
                ready_for: Some(60),
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "b",
                ready_for: Some(4),
                ..BASE
            },
            now,
        ),
        pod(
            P {
                name: "c",
                ready_for: None,
                ..BASE
            },
            now,
        ),
    ];
    let plan = reconcile(&set, pods.iter(), now);
    let status = new_status(&plan).expect("status written");
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.available_replicas,
            status.observed_generation
        ),
        (3, 2, 1, 3)
    );
    assert_eq!(plan.requeue, Some(Duration::from_secs(6)));
    // Once written, the same state writes nothing.
    set.status = Some(status);
    assert!(reconcile(&set, pods.iter(), now).actions.is_empty());
}

#[test]
fn a_set_being_deleted_creates_nothing() {
    let now = SystemTime::now();
    let mut set = rs(3);
    set.metadata.as_mut().unwrap().deletion_timestamp = Some(now.into());
    assert_eq!(creates(&reconcile(&set, std::iter::empty(), now)), 0);
}
