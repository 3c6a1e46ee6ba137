//! The Deployment controller driven together with the ReplicaSet
//! controller against a real store, with a stand-in for the agents that
//! makes pods ready (or not): whole rollouts, checked after every write.

use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{
    Container, Deployment, DeploymentSpec, DeploymentStrategy, LabelSelector, ObjectMeta, Pod, PodCondition, PodSpec,
    PodStatus, PodTemplateSpec,
};
use bosun_proto::internal::{command::Op, Command, DeleteOp, UpdateOp};
use bosun_proto::Kind;

use super::super::{command_for, pods, replicaset, Action};
use super::*;
use crate::store::Objects;

struct World {
    objects: Objects,
    revision: u64,
    now: SystemTime,
    /// Images whose pods never become ready.
    broken: Vec<&'static str>,
    /// No agent starts a pod (every node cordoned, drained or down).
    halted: bool,
    events: Vec<String>,
    /// (most active pods, fewest ready pods) seen after any write once
    /// the first rollout finished.
    watermarks: Option<(usize, usize)>,
}

impl World {
    fn new() -> World {
        World {
            objects: Objects::default(),
            revision: 0,
            now: SystemTime::now(),
            broken: vec![],
            halted: false,
            events: vec![],
            watermarks: None,
        }
    }

    fn command(&mut self, command: Command) {
        self.revision += 1;
        self.objects.apply(self.revision, &command);
        self.observe();
    }

    fn act(&mut self, action: &Action) {
        if let Action::Event(event) = action {
            if let Some(Resource::Event(e)) = &event.resource {
                self.events.push(format!("{}: {}", e.reason, e.message));
            }
        }
        if let Some(command) = command_for(action) {
            self.command(command);
        }
    }

    fn deployment(&self) -> Deployment {
        let object = self
            .objects
            .get(Kind::Deployment, "default", "web")
            .expect("deployment exists");
        Deployment::try_from((**object).clone()).unwrap()
    }

    fn create(&mut self, d: Deployment) {
        let mut object = crate::admission::prepare(Some(d.into())).unwrap();
        crate::admission::stamp_new(&mut object);
        self.command(Command {
            op: Some(Op::Create(bosun_proto::internal::CreateOp { object: Some(object) })),
            ..Default::default()
        });
    }

    fn update(&mut self, change: impl FnOnce(&mut Deployment)) {
        let mut d = self.deployment();
        change(&mut d);
        let object = crate::admission::prepare(Some(d.into())).unwrap();
        self.command(Command {
            op: Some(Op::Update(UpdateOp { object: Some(object) })),
            ..Default::default()
        });
    }

    /// One pass of every controller, then the agents.
    fn step(&mut self) {
        let d = self.deployment();
        let plan = {
            let sets = self
                .objects
                .list(Kind::ReplicaSet, Some("default"))
                .filter_map(|o| match &o.resource {
                    Some(Resource::ReplicaSet(rs)) => Some(&**rs),
                    _ => None,
                });
            let pods: Vec<&Pod> = self
                .objects
                .list(Kind::Pod, Some("default"))
                .filter_map(|o| pods::pod(o))
                .collect();
            reconcile(&d, sets, &pods, self.now)
        };
        for action in &plan.actions {
            self.act(action);
        }
        let sets: Vec<ReplicaSet> = self
            .objects
            .list(Kind::ReplicaSet, Some("default"))
            .filter_map(|o| ReplicaSet::try_from((**o).clone()).ok())
            .collect();
        for rs in sets {
            let plan = {
                let pods = self
                    .objects
                    .list(Kind::Pod, Some("default"))
                    .filter_map(|o| pods::pod(o));
                replicaset::reconcile(&rs, pods, self.now)
            };
            for action in &plan.actions {
                self.act(action);
            }
        }
        self.agents();
    }

    /// New pods start (ready unless their image is broken).
    fn agents(&mut self) {
        if self.halted {
            return;
        }
        let starting: Vec<Pod> = self
            .objects
            .list(Kind::Pod, Some("default"))
            .filter_map(|o| pods::pod(o))
            .filter(|p| p.status.as_ref().is_none_or(|s| s.phase == "Pending"))
            .cloned()
            .collect();
        for mut pod in starting {
            let image = pod.spec.as_ref().unwrap().containers[0].image.clone();
            let ready = !self.broken.contains(&image.as_str());
            pod.status = Some(PodStatus {
                phase: "Running".into(),
                conditions: vec![PodCondition {
                    r#type: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(self.now.into()),
                    ..Default::default()
                }],
                ..Default::default()
            });
            self.command(Command {
                op: Some(Op::UpdateStatus(UpdateOp {
                    object: Some(pod.into()),
                })),
                ..Default::default()
            });
        }
    }

    /// Steps until nothing changes any more.
    fn settle(&mut self) {
        for _ in 0..50 {
            let before = self.revision;
            self.step();
            if self.revision == before {
                return;
            }
        }
        panic!("no steady state after 50 passes");
    }

    /// Deletes every pod, as `ctl delete pods -l app=web` does.
    fn delete_pods(&mut self) {
        for pod in self.pods() {
            self.command(Command {
                op: Some(Op::Delete(DeleteOp {
                    kind: "Pod".into(),
                    namespace: "default".into(),
                    name: pod.metadata.unwrap().name,
                    grace_period_seconds: Some(0),
                    ..Default::default()
                })),
                ..Default::default()
            });
        }
    }

    fn pods(&self) -> Vec<Pod> {
        self.objects
            .list(Kind::Pod, Some("default"))
            .filter_map(|o| pods::pod(o))
            .filter(|p| pods::active(p))
            .cloned()
            .collect()
    }

    fn images(&self) -> Vec<String> {
        let mut images: Vec<String> = self
            .pods()
            .iter()
            .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
            .collect();
        images.sort();
        images
    }

    fn observe(&mut self) {
        if let Some((most, fewest)) = self.watermarks.as_mut() {
            let pods: Vec<Pod> = self
                .objects
                .list(Kind::Pod, Some("default"))
                .filter_map(|o| pods::pod(o))
                .filter(|p| pods::active(p))
                .cloned()
                .collect();
            *most = (*most).max(pods.len());
            *fewest = (*fewest).min(pods.iter().filter(|p| pods::ready(p)).count());
        }
    }

    fn progressing(&self) -> (String, String) {
        let status = self.deployment().status.unwrap_or_default();
        let c = status
            .conditions
            .iter()
            .find(|c| c.r#type == "Progressing")
            .cloned()
            .unwrap_or_default();
        (c.status, c.reason)
    }
}

fn deployment(replicas: i32, image: &str, strategy: DeploymentStrategy) -> Deployment {
    let labels: std::collections::HashMap<String, String> = [("app".to_string(), "web".to_string())].into();
    Deployment {
        metadata: Some(ObjectMeta {
            name: "web".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: Some(LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            }),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "c".into(),
                        image: image.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(strategy),
            progress_deadline_seconds: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn rolling() -> DeploymentStrategy {
    DeploymentStrategy {
        r#type: "RollingUpdate".into(),
        rolling_update: None,
    }
}

fn set_image(image: &'static str) -> impl FnOnce(&mut Deployment) {
    move |d| {
        d.spec
            .as_mut()
            .unwrap()
            .template
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = image.into()
    }
}

fn revisions(world: &World) -> Vec<(String, String, i32)> {
    let mut sets: Vec<(String, String, i32)> = world
        .objects
        .list(Kind::ReplicaSet, Some("default"))
        .filter_map(|o| ReplicaSet::try_from((**o).clone()).ok())
        .map(|rs| {
            let image = rs
                .spec
                .as_ref()
                .unwrap()
                .template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .clone();
            (revision(&rs).to_string(), image, rs.spec.unwrap().replicas.unwrap())
        })
        .collect();
    sets.sort();
    sets
}

#[test]
fn a_rolling_update_stays_within_surge_and_unavailability_and_completes() {
    let mut world = World::new();
    world.create(deployment(4, "app:1", rolling()));
    world.settle();
    assert_eq!(world.images(), vec!["app:1"; 4]);
    assert_eq!(world.progressing(), ("True".into(), "NewReplicaSetAvailable".into()));
    let status = world.deployment().status.unwrap();
    assert_eq!(
        (status.replicas, status.updated_replicas, status.available_replicas),
        (4, 4, 4)
    );

    world.watermarks = Some((0, usize::MAX));
    world.update(set_image("app:2"));
    world.settle();
    let (most, fewest) = world.watermarks.unwrap();
    assert!(most <= 5, "never more than replicas + maxSurge (1) pods: saw {most}");
    assert!(
        fewest >= 3,
        "never fewer than replicas - maxUnavailable (1) ready: saw {fewest}"
    );
    assert_eq!(world.images(), vec!["app:2"; 4]);
    assert_eq!(world.progressing(), ("True".into(), "NewReplicaSetAvailable".into()));
    assert_eq!(
        revisions(&world),
        vec![("1".into(), "app:1".into(), 0), ("2".into(), "app:2".into(), 4)]
    );
}

#[test]
fn going_back_to_an_old_template_reuses_its_set_as_a_new_revision() {
    let mut world = World::new();
    world.create(deployment(2, "app:1", rolling()));
    world.settle();
    world.update(set_image("app:2"));
    world.settle();
    world.update(set_image("app:1"));
    world.settle();
    assert_eq!(world.images(), vec!["app:1"; 2]);
    assert_eq!(
        revisions(&world),
        vec![("2".into(), "app:2".into(), 0), ("3".into(), "app:1".into(), 2)]
    );
}

#[test]
fn recreate_removes_every_old_pod_before_starting_new_ones() {
    let mut world = World::new();
    let recreate = DeploymentStrategy {
        r#type: "Recreate".into(),
        rolling_update: None,
    };
    world.create(deployment(3, "app:1", recreate));
    world.settle();
    world.update(set_image("app:2"));
    for _ in 0..20 {
        world.step();
        let images = world.images();
        assert!(
            !(images.contains(&"app:1".to_string()) && images.contains(&"app:2".to_string())),
            "old and new pods at once: {images:?}"
        );
    }
    assert_eq!(world.images(), vec!["app:2"; 3]);
}

#[test]
fn a_paused_deployment_rolls_nothing_until_resumed() {
    let mut world = World::new();
    world.create(deployment(2, "app:1", rolling()));
    world.settle();
    world.update(|d| d.spec.as_mut().unwrap().paused = true);
    world.update(set_image("app:2"));
    world.settle();
    assert_eq!(world.images(), vec!["app:1"; 2]);
    assert_eq!(world.progressing(), ("Unknown".into(), "DeploymentPaused".into()));
    world.update(|d| d.spec.as_mut().unwrap().replicas = Some(3));
    world.settle();
    assert_eq!(world.images(), vec!["app:1"; 3], "scaling still works while paused");
    world.update(|d| d.spec.as_mut().unwrap().paused = false);
    world.settle();
    assert_eq!(world.images(), vec!["app:2"; 3]);
}

#[test]
fn a_stalled_rollout_misses_its_deadline_and_rolls_back_when_asked() {
    for auto in [false, true] {
        let mut world = World::new();
        let d = deployment(3, "app:1", rolling());
        world.create(if auto { auto_rollback(d) } else { d });
        world.settle();
        world.broken.push("app:2");
        world.update(set_image("app:2"));
        world.settle();
        assert_eq!(world.progressing().0, "True", "still within the deadline");
        world.now += Duration::from_secs(11);
        world.settle();
        if auto {
            assert_eq!(world.images(), vec!["app:1"; 3]);
            assert_eq!(world.progressing(), ("True".into(), "NewReplicaSetAvailable".into()));
            assert!(
                world
                    .events
                    .iter()
                    .any(|e| e.starts_with("AutoRollback: Rolled back to revision 1: revision 2")),
                "{:?}",
                world.events
            );
            let template = world.deployment().spec.unwrap().template.unwrap();
            assert_eq!(template.spec.unwrap().containers[0].image, "app:1");
        } else {
            assert_eq!(world.progressing(), ("False".into(), "ProgressDeadlineExceeded".into()));
            assert!(world.images().contains(&"app:2".to_string()));
        }
    }
}

/// `d` with `bosun.io/auto-rollback: "true"`.
fn auto_rollback(mut d: Deployment) -> Deployment {
    d.metadata
        .get_or_insert_with(Default::default)
        .annotations
        .insert(AUTO_ROLLBACK.into(), "true".into());
    d
}

/// A Deployment with automatic rollback, rolled out to app:1 then to
/// app:2, both finished.
fn released(replicas: i32) -> World {
    let mut world = World::new();
    world.create(auto_rollback(deployment(replicas, "app:1", rolling())));
    world.settle();
    world.update(set_image("app:2"));
    world.settle();
    world
}

/// A finished release that loses its pods for longer than the deadline (a
/// drain, an outage) is not a failed rollout: nothing is rolled back and
/// the deadline does not fire; the pods come back when nodes do.
#[test]
fn a_finished_rollout_that_loses_its_pods_is_not_rolled_back() {
    let mut world = released(3);
    assert_eq!(world.progressing(), ("True".into(), "NewReplicaSetAvailable".into()));

    world.halted = true;
    world.delete_pods();
    world.settle();
    assert_eq!(world.images(), vec!["app:2"; 3], "replacements of the new release");
    world.now += Duration::from_secs(11);
    world.settle();
    world.now += Duration::from_secs(60);
    world.settle();
    assert_eq!(world.images(), vec!["app:2"; 3]);
    assert_eq!(world.progressing(), ("True".into(), "NewReplicaSetAvailable".into()));
    assert!(
        !world.events.iter().any(|e| e.starts_with("AutoRollback")),
        "{:?}",
        world.events
    );
    let template = world.deployment().spec.unwrap().template.unwrap();
    assert_eq!(template.spec.unwrap().containers[0].image, "app:2");
    let status = world.deployment().status.unwrap();
    assert_eq!((status.replicas, status.available_replicas), (3, 0));

    world.halted = false;
    world.settle();
    let status = world.deployment().status.unwrap();
    assert_eq!((status.replicas, status.available_replicas), (3, 3));
    assert_eq!(world.images(), vec!["app:2"; 3]);
}

/// Scaling up a finished release while no pod can start is not a
/// rollout; and a rollout back to a revision that was fully available once
/// (an undo) that stalls misses its deadline but is not rolled back: only
/// a revision that never became fully available is.
#[test]
fn auto_rollback_leaves_revisions_that_were_fully_available() {
    let mut world = released(2);

    world.halted = true;
    world.update(|d| d.spec.as_mut().unwrap().replicas = Some(4));
    world.settle();
    world.now += Duration::from_secs(30);
    world.settle();
    assert_eq!(world.images(), vec!["app:2"; 4]);
    assert_eq!(world.progressing(), ("True".into(), "NewReplicaSetAvailable".into()));

    world.update(set_image("app:1"));
    world.settle();
    world.now += Duration::from_secs(30);
    world.settle();
    assert_eq!(world.progressing(), ("False".into(), "ProgressDeadlineExceeded".into()));
    let template = world.deployment().spec.unwrap().template.unwrap();
    assert_eq!(template.spec.unwrap().containers[0].image, "app:1", "the undo stands");
    assert!(
        !world.events.iter().any(|e| e.starts_with("AutoRollback")),
        "{:?}",
        world.events
    );
}

#[test]
fn old_sets_beyond_the_history_limit_are_deleted() {
    let mut world = World::new();
    let mut d = deployment(1, "app:1", rolling());
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    world.create(d);
    world.settle();
    for image in ["app:2", "app:3", "app:4"] {
        world.update(set_image(image));
        world.settle();
    }
    assert_eq!(
        revisions(&world),
        vec![("3".into(), "app:3".into(), 0), ("4".into(), "app:4".into(), 1)]
    );
}

#[test]
fn scaling_a_finished_deployment_scales_its_set() {
    let mut world = World::new();
    world.create(deployment(2, "app:1", rolling()));
    world.settle();
    world.update(|d| d.spec.as_mut().unwrap().replicas = Some(5));
    world.settle();
    assert_eq!(world.images().len(), 5);
    world.update(|d| d.spec.as_mut().unwrap().replicas = Some(1));
    world.settle();
    assert_eq!(world.images().len(), 1);
}
