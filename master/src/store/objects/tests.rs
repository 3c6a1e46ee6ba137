use super::*;
use bosun_proto::api::{self, ObjectMeta};
use bosun_proto::internal::{CreateOp, DeleteOp, UpdateOp};

fn config_map(namespace: &str, name: &str, value: &str) -> Object {
    api::ConfigMap {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            uid: format!("uid-{name}"),
            generation: 1,
            ..Default::default()
        }),
        data: [("k".to_string(), value.to_string())].into(),
        ..Default::default()
    }
    .into()
}

fn namespace(name: &str) -> Object {
    api::Namespace {
        metadata: Some(ObjectMeta {
            name: name.into(),
            uid: format!("uid-ns-{name}"),
            ..Default::default()
        }),
        ..Default::default()
    }
    .into()
}

fn create(object: Object) -> Command {
    Command {
        time: None,
        op: Some(Op::Create(CreateOp { object: Some(object) })),
    }
}

fn update(object: Object) -> Command {
    Command {
        time: None,
        op: Some(Op::Update(UpdateOp { object: Some(object) })),
    }
}

fn delete(kind: Kind, namespace: &str, name: &str, resource_version: Option<u64>) -> Command {
    Command {
        time: Some(prost_types::Timestamp { seconds: 5, nanos: 0 }),
        op: Some(Op::Delete(DeleteOp {
            kind: kind.name().into(),
            namespace: namespace.into(),
            name: name.into(),
            resource_version,
            grace_period_seconds: None,
            ..Default::default()
        })),
    }
}

fn rejection(applied: &Applied) -> (rejection::Code, String) {
    match &applied.result.result {
        Some(command_result::Result::Rejected(r)) => (rejection::Code::try_from(r.code).unwrap(), r.message.clone()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn object(applied: &Applied) -> Object {
    match &applied.result.result {
        Some(command_result::Result::Object(o)) => o.clone(),
        other => panic!("expected an object, got {other:?}"),
    }
}

#[test]
fn create_sets_the_revision_and_refuses_duplicates() {
    let mut objects = Objects::default();
    let applied = objects.apply(7, &create(config_map("default", "a", "1")));
    assert_eq!(object(&applied).resource_version(), 7);
    assert_eq!(applied.changes.len(), 1);
    assert_eq!(applied.changes[0].event_type, EventType::Added);
    let again = objects.apply(8, &create(config_map("default", "a", "2")));
    assert_eq!(
        rejection(&again),
        (
            rejection::Code::AlreadyExists,
            "configmaps \"a\" in namespace \"default\" already exists".to_string()
        )
    );
    assert!(again.changes.is_empty());
}

#[test]
fn create_in_a_missing_namespace_is_refused() {
    let mut objects = Objects::default();
    let applied = objects.apply(1, &create(config_map("shop", "a", "1")));
    let (code, message) = rejection(&applied);
    assert_eq!(code, rejection::Code::NotFound);
    assert!(message.starts_with("namespace \"shop\" not found"), "{message}");
    objects.apply(2, &create(namespace("shop")));
    assert_eq!(
        object(&objects.apply(3, &create(config_map("shop", "a", "1")))).resource_version(),
        3
    );
}

#[test]
fn update_checks_the_resource_version_and_bumps_generation_on_spec_change() {
    let mut objects = Objects::default();
    objects.apply(1, &create(config_map("default", "a", "1")));
    let mut stale = config_map("default", "a", "2");
    stale.metadata_mut().unwrap().resource_version = 99;
    let (code, message) = rejection(&objects.apply(2, &update(stale)));
    assert_eq!(code, rejection::Code::Conflict);
    assert!(
        message.contains("you sent resourceVersion 99 but it is now 1"),
        "{message}"
    );

    let mut fresh = config_map("default", "a", "2");
    fresh.metadata_mut().unwrap().resource_version = 1;
    let updated = object(&objects.apply(3, &update(fresh)));
    assert_eq!(updated.resource_version(), 3);
    assert_eq!(updated.metadata().unwrap().generation, 2);

    let mut labelled = updated.clone();
    labelled.metadata_mut().unwrap().labels.insert("x".into(), "y".into());
    let relabelled = object(&objects.apply(4, &update(labelled)));
    assert_eq!(relabelled.metadata().unwrap().generation, 2, "labels are not spec");
}

#[test]
fn a_no_op_update_changes_nothing() {
    let mut objects = Objects::default();
    let created = object(&objects.apply(1, &create(config_map("default", "a", "1"))));
    let applied = objects.apply(2, &update(created.clone()));
    assert!(applied.changes.is_empty());
    assert_eq!(object(&applied).resource_version(), 1);
}

#[test]
fn update_keeps_fields_the_master_owns() {
    let mut objects = Objects::default();
    objects.apply(1, &create(config_map("default", "a", "1")));
    let mut incoming = config_map("default", "a", "2");
    let meta = incoming.metadata_mut().unwrap();
    meta.uid = String::new();
    meta.generation = 40;
    let updated = object(&objects.apply(2, &update(incoming)));
    assert_eq!(updated.metadata().unwrap().uid, "uid-a");
    assert_eq!(updated.metadata().unwrap().generation, 2);
}

#[test]
fn delete_removes_and_reports_the_last_state() {
    let mut objects = Objects::default();
    objects.apply(1, &create(config_map("default", "a", "1")));
    let (code, _) = rejection(&objects.apply(2, &delete(Kind::ConfigMap, "default", "a", Some(5))));
    assert_eq!(code, rejection::Code::Conflict);
    let applied = objects.apply(3, &delete(Kind::ConfigMap, "default", "a", None));
    assert!(applied.result.deleted);
    assert_eq!(applied.changes[0].event_type, EventType::Deleted);
    assert_eq!(applied.changes[0].object.resource_version(), 3);
    assert!(objects.get(Kind::ConfigMap, "default", "a").is_none());
    let (code, _) = rejection(&objects.apply(4, &delete(Kind::ConfigMap, "default", "a", None)));
    assert_eq!(code, rejection::Code::NotFound);
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let mut objects = Objects::default();
    let mut cm = config_map("default", "a", "1");
    cm.metadata_mut().unwrap().finalizers = vec!["bosun.io/test".into()];
    objects.apply(1, &create(cm));
    let marked = objects.apply(2, &delete(Kind::ConfigMap, "default", "a", None));
    assert!(!marked.result.deleted);
    let marked = object(&marked);
    assert_eq!(
        marked.metadata().unwrap().deletion_timestamp,
        Some(prost_types::Timestamp { seconds: 5, nanos: 0 })
    );
    let mut released = marked.clone();
    released.metadata_mut().unwrap().finalizers.clear();
    let applied = objects.apply(3, &update(released));
    assert!(applied.result.deleted);
    assert_eq!(applied.changes[0].event_type, EventType::Deleted);
    assert!(objects.get(Kind::ConfigMap, "default", "a").is_none());
}

#[test]
fn deleting_a_namespace_deletes_everything_in_it() {
    let mut objects = Objects::default();
    objects.apply(1, &create(namespace("shop")));
    objects.apply(2, &create(config_map("shop", "a", "1")));
    objects.apply(3, &create(config_map("shop", "b", "1")));
    objects.apply(4, &create(config_map("default", "c", "1")));
    let applied = objects.apply(5, &delete(Kind::Namespace, "", "shop", None));
    assert_eq!(applied.changes.len(), 3);
    assert!(applied
        .changes
        .iter()
        .all(|c| c.event_type == EventType::Deleted && c.object.resource_version() == 5));
    assert_eq!(objects.list(Kind::ConfigMap, None).count(), 1);
}

#[test]
fn built_in_namespaces_cannot_be_deleted() {
    let mut objects = Objects::default();
    objects.apply(1, &create(namespace("default")));
    let (code, _) = rejection(&objects.apply(2, &delete(Kind::Namespace, "", "default", None)));
    assert_eq!(code, rejection::Code::Forbidden);
}

#[test]
fn lists_one_namespace_without_its_prefix_neighbours() {
    let mut objects = Objects::default();
    for ns in ["a", "ab"] {
        objects.apply(1, &create(namespace(ns)));
        objects.apply(2, &create(config_map(ns, "x", "1")));
    }
    assert_eq!(objects.list(Kind::ConfigMap, Some("a")).count(), 1);
    assert_eq!(objects.list(Kind::ConfigMap, None).count(), 2);
}

#[test]
fn a_batch_applies_in_order_at_one_revision() {
    let mut objects = Objects::default();
    let batch = Command {
        time: None,
        op: Some(Op::Batch(bosun_proto::internal::Batch {
            commands: vec![
                create(namespace("shop")),
                create(config_map("shop", "a", "1")),
                create(config_map("default", "a", "1")),
                create(config_map("default", "a", "2")),
            ],
        })),
    };
    let applied = objects.apply(9, &batch);
    let results = &applied.result.batch;
    assert_eq!(results.len(), 4);
    let wrapped = |result: &CommandResult| Applied {
        result: result.clone(),
        changes: vec![],
    };
    assert_eq!(
        object(&wrapped(&results[1])).resource_version(),
        9,
        "sees the namespace created before it"
    );
    assert_eq!(rejection(&wrapped(&results[3])).0, rejection::Code::AlreadyExists);
    assert_eq!(applied.changes.len(), 3);
    assert!(applied.changes.iter().all(|c| c.object.resource_version() == 9));
}

fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Object {
    let quantity = |v: &str| api::Quantity { value: v.into() };
    api::Node {
        metadata: Some(ObjectMeta {
            name: name.into(),
            uid: format!("uid-{name}"),
            ..Default::default()
        }),
        status: Some(api::NodeStatus {
            allocatable: [("cpu", cpu), ("memory", memory), ("pods", pods)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), quantity(v)))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .into()
}

fn pod(name: &str, cpu: &str) -> Object {
    api::Pod {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            ..Default::default()
        }),
        spec: Some(api::PodSpec {
            containers: vec![api::Container {
                name: "c".into(),
                image: "i".into(),
                resources: Some(api::ResourceRequirements {
                    requests: [("cpu".to_string(), api::Quantity { value: cpu.into() })].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .into()
}

fn bind(name: &str, node: &str) -> Command {
    Command {
        time: None,
        op: Some(Op::Bind(bosun_proto::internal::BindOp {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: node.into(),
        })),
    }
}

#[test]
fn binding_sets_the_node_and_never_overcommits() {
    let mut objects = Objects::default();
    objects.apply(1, &create(node("n1", "1", "1Gi", "10")));
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        objects.apply(2 + i as u64, &create(pod(name, "400m")));
    }
    let bound = object(&objects.apply(5, &bind("a", "n1")));
    let pod = api::Pod::try_from(bound).unwrap();
    assert_eq!(pod.spec.unwrap().node_name, "n1");
    assert!(pod
        .status
        .unwrap()
        .conditions
        .iter()
        .any(|c| c.r#type == "PodScheduled" && c.status == "True"));
    objects.apply(6, &bind("b", "n1"));
    assert_eq!(objects.allocated("n1").cpu_millis, 800);
    let (code, message) = rejection(&objects.apply(7, &bind("c", "n1")));
    assert_eq!(code, rejection::Code::Conflict);
    assert_eq!(message, "node \"n1\" no longer has room: insufficient cpu");
    // Idempotent on the same node; refused on another.
    assert!(objects.apply(8, &bind("a", "n1")).changes.is_empty());
    objects.apply(9, &create(node("n2", "1", "1Gi", "10")));
    assert_eq!(
        rejection(&objects.apply(10, &bind("a", "n2"))).0,
        rejection::Code::Conflict
    );
}

#[test]
fn deleting_or_finishing_a_pod_frees_its_node() {
    let mut objects = Objects::default();
    objects.apply(1, &create(node("n1", "1", "1Gi", "10")));
    objects.apply(2, &create(pod("a", "600m")));
    objects.apply(3, &create(pod("b", "600m")));
    objects.apply(4, &bind("a", "n1"));
    assert_eq!(
        rejection(&objects.apply(5, &bind("b", "n1"))).0,
        rejection::Code::Conflict
    );
    // The pod finishes: its requests are released.
    let mut finished = (**objects.get(Kind::Pod, "default", "a").unwrap()).clone();
    if let Some(bosun_proto::api::object::Resource::Pod(p)) = finished.resource.as_mut() {
        p.status.get_or_insert_with(Default::default).phase = "Succeeded".into();
    }
    objects.apply(
        6,
        &Command {
            time: None,
            op: Some(Op::UpdateStatus(UpdateOp { object: Some(finished) })),
        },
    );
    assert_eq!(objects.allocated("n1").cpu_millis, 0);
    objects.apply(7, &bind("b", "n1"));
    objects.apply(8, &delete(Kind::Pod, "default", "b", None));
    // "b" is bound, so deletion only marks it: its requests stay held.
    assert_eq!(objects.allocated("n1").cpu_millis, 600);
    objects.apply(
        9,
        &Command {
            time: None,
            op: Some(Op::Delete(DeleteOp {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "b".into(),
                resource_version: None,
                grace_period_seconds: Some(0),
                ..Default::default()
            })),
        },
    );
    assert_eq!(objects.allocated("n1").cpu_millis, 0);
}

#[test]
fn a_pod_update_may_change_images_and_add_tolerations_but_not_the_node_or_requests() {
    let mut objects = Objects::default();
    objects.apply(1, &create(node("n1", "1", "1Gi", "10")));
    objects.apply(2, &create(pod("a", "400m")));
    objects.apply(3, &bind("a", "n1"));
    let with = |change: &dyn Fn(&mut api::PodSpec)| {
        let mut pod = api::Pod::try_from(pod("a", "400m")).unwrap();
        change(pod.spec.as_mut().unwrap());
        update(pod.into())
    };
    // The manifest as applied again: no nodeName, a new image. The bound
    // node is kept.
    let updated = object(&objects.apply(4, &with(&|spec| spec.containers[0].image = "i:2".into())));
    let spec = api::Pod::try_from(updated).unwrap().spec.unwrap();
    assert_eq!(
        (spec.node_name.as_str(), spec.containers[0].image.as_str()),
        ("n1", "i:2")
    );
    let added = with(&|spec| {
        spec.containers[0].image = "i:2".into();
        spec.tolerations.push(api::Toleration {
            key: "k".into(),
            operator: "Exists".into(),
            ..Default::default()
        });
    });
    objects.apply(5, &added);
    let refused = [
        with(&|spec| spec.node_name = "n2".into()),
        with(&|spec| {
            spec.containers[0].image = "i:2".into();
            spec.containers[0].resources = None;
        }),
        with(&|spec| spec.containers[0].image = "i:2".into()),
    ];
    for (i, command) in refused.iter().enumerate() {
        let (code, message) = rejection(&objects.apply(6 + i as u64, command));
        assert_eq!(code, rejection::Code::Invalid, "{message}");
    }
    assert_eq!(objects.allocated("n1").cpu_millis, 400);
}

fn owned_by(mut object: Object, owner: &str) -> Object {
    object
        .metadata_mut()
        .unwrap()
        .owner_references
        .push(api::OwnerReference {
            kind: "ConfigMap".into(),
            name: owner.into(),
            uid: format!("uid-{owner}"),
            ..Default::default()
        });
    object
}

fn delete_with(name: &str, policy: &str) -> Command {
    Command {
        time: Some(prost_types::Timestamp { seconds: 5, nanos: 0 }),
        op: Some(Op::Delete(DeleteOp {
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: name.into(),
            propagation_policy: policy.into(),
            ..Default::default()
        })),
    }
}

#[test]
fn orphan_deletion_drops_the_references_in_the_same_revision() {
    let mut objects = Objects::default();
    objects.apply(1, &create(config_map("default", "owner", "v")));
    objects.apply(2, &create(owned_by(config_map("default", "child", "v"), "owner")));
    objects.apply(3, &create(owned_by(config_map("default", "other", "v"), "someone")));
    let applied = objects.apply(4, &delete_with("owner", "Orphan"));
    assert!(applied.result.deleted);
    assert_eq!(applied.changes.len(), 2, "the child's change and the deletion");
    let child = objects.get(Kind::ConfigMap, "default", "child").unwrap();
    assert!(child.metadata().unwrap().owner_references.is_empty());
    assert_eq!(child.resource_version(), 4);
    let other = objects.get(Kind::ConfigMap, "default", "other").unwrap();
    assert_eq!(other.metadata().unwrap().owner_references.len(), 1);
}

#[test]
fn foreground_deletion_marks_an_owner_with_dependents_and_removes_one_without() {
    let mut objects = Objects::default();
    objects.apply(1, &create(config_map("default", "owner", "v")));
    objects.apply(2, &create(owned_by(config_map("default", "child", "v"), "owner")));
    objects.apply(3, &create(config_map("default", "lonely", "v")));
    let applied = objects.apply(4, &delete_with("owner", "Foreground"));
    assert!(!applied.result.deleted);
    let owner = objects
        .get(Kind::ConfigMap, "default", "owner")
        .unwrap()
        .metadata()
        .unwrap()
        .clone();
    assert!(owner.deletion_timestamp.is_some());
    assert_eq!(owner.finalizers, vec![FOREGROUND_FINALIZER.to_string()]);
    assert!(objects.apply(5, &delete_with("lonely", "Foreground")).result.deleted);
}

#[test]
fn reapplying_the_same_spec_with_many_map_entries_changes_nothing() {
    let with_labels = |reverse: bool| {
        let mut object = config_map("default", "many", "v");
        let mut entries: Vec<(String, String)> = (0..32).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        if reverse {
            entries.reverse();
        }
        if let Some(bosun_proto::api::object::Resource::ConfigMap(cm)) = object.resource.as_mut() {
            cm.data = entries.into_iter().collect();
        }
        object
    };
    let mut objects = Objects::default();
    objects.apply(1, &create(with_labels(false)));
    let applied = objects.apply(2, &update(with_labels(true)));
    assert!(applied.changes.is_empty(), "{:?}", applied.changes);
    assert_eq!(
        objects
            .get(Kind::ConfigMap, "default", "many")
            .unwrap()
            .resource_version(),
        1
    );
}

fn controlled_by(mut object: Object, controller: &str) -> Object {
    object.metadata_mut().unwrap().owner_references = vec![api::OwnerReference {
        kind: "ReplicaSet".into(),
        name: controller.into(),
        uid: format!("uid-{controller}"),
        controller: Some(true),
        ..Default::default()
    }];
    object
}

fn names<'a>(objects: impl Iterator<Item = &'a Arc<Object>>) -> Vec<String> {
    objects.map(|o| o.name().to_string()).collect()
}

#[test]
fn the_control_index_follows_every_change_of_controller() {
    let mut objects = Objects::default();
    objects.apply(1, &create(namespace("shop")));
    objects.apply(2, &create(controlled_by(pod("a", "1m"), "web")));
    objects.apply(3, &create(controlled_by(pod("b", "1m"), "web")));
    objects.apply(4, &create(controlled_by(pod("c", "1m"), "db")));
    objects.apply(5, &create(pod("bare", "1m")));
    // An owner that is not a controller leaves the pod adoptable.
    objects.apply(6, &create(owned_by(pod("owned", "1m"), "settings")));
    let mut elsewhere = pod("bare", "1m");
    elsewhere.metadata_mut().unwrap().namespace = "shop".into();
    objects.apply(7, &create(elsewhere));
    // Other kinds are indexed by controller but never as adoptable.
    objects.apply(8, &create(config_map("default", "loose", "v")));
    objects.apply(9, &create(controlled_by(config_map("default", "kept", "v"), "web")));

    assert_eq!(names(objects.controlled_by("uid-web", Kind::Pod)), ["a", "b"]);
    assert_eq!(names(objects.controlled_by("uid-web", Kind::ConfigMap)), ["kept"]);
    assert_eq!(names(objects.controlled_by("uid-db", Kind::Pod)), ["c"]);
    assert_eq!(names(objects.uncontrolled(Kind::Pod, "default")), ["bare", "owned"]);
    assert_eq!(names(objects.uncontrolled(Kind::Pod, "shop")), ["bare"]);
    assert_eq!(
        names(objects.uncontrolled(Kind::ConfigMap, "default")),
        Vec::<String>::new()
    );

    // Released by web, adopted by db, then deleted.
    let released = objects.get(Kind::Pod, "default", "a").unwrap().as_ref().clone();
    let mut released = released;
    released.metadata_mut().unwrap().owner_references.clear();
    objects.apply(10, &update(released));
    assert_eq!(names(objects.controlled_by("uid-web", Kind::Pod)), ["b"]);
    assert_eq!(
        names(objects.uncontrolled(Kind::Pod, "default")),
        ["a", "bare", "owned"]
    );
    let adopted = objects.get(Kind::Pod, "default", "a").unwrap().as_ref().clone();
    objects.apply(11, &update(controlled_by(adopted, "db")));
    assert_eq!(names(objects.controlled_by("uid-db", Kind::Pod)), ["a", "c"]);
    assert_eq!(names(objects.uncontrolled(Kind::Pod, "default")), ["bare", "owned"]);
    objects.apply(12, &delete(Kind::Pod, "default", "a", None));
    objects.apply(13, &delete(Kind::Pod, "default", "bare", None));
    assert_eq!(names(objects.controlled_by("uid-db", Kind::Pod)), ["c"]);
    assert_eq!(names(objects.uncontrolled(Kind::Pod, "default")), ["owned"]);

    // Deleting a namespace takes its objects out of the index too.
    objects.apply(14, &delete(Kind::Namespace, "", "shop", None));
    assert_eq!(names(objects.uncontrolled(Kind::Pod, "shop")), Vec::<String>::new());
    // And a snapshot (a clone) carries the index.
    let copy = objects.clone();
    assert_eq!(names(copy.controlled_by("uid-web", Kind::Pod)), ["b"]);
}

#[test]
fn every_change_carries_the_object_as_it_was_before_the_command() {
    let mut objects = Objects::default();
    let created = objects.apply(1, &create(config_map("default", "settings", "v1")));
    assert!(created.changes[0].previous.is_none(), "a new object has no past");
    let mut next = object(&created);
    if let Some(bosun_proto::api::object::Resource::ConfigMap(cm)) = next.resource.as_mut() {
        cm.data.insert("k".into(), "v2".into());
    }
    let updated = objects.apply(2, &update(next));
    let previous = updated.changes[0]
        .previous
        .as_deref()
        .expect("an update knows the past");
    let value = |o: &Object| api::ConfigMap::try_from(o.clone()).unwrap().data["k"].clone();
    assert_eq!(value(previous), "v1");
    assert_eq!(value(&updated.changes[0].object), "v2");
    let deleted = objects.apply(3, &delete(Kind::ConfigMap, "default", "settings", None));
    assert_eq!(value(deleted.changes[0].previous.as_deref().unwrap()), "v2");
    // Objects touched by a batch each carry their own past.
    objects.apply(4, &create(config_map("default", "a", "a1")));
    objects.apply(5, &create(config_map("default", "b", "b1")));
    let batch = Command {
        time: None,
        op: Some(Op::Batch(bosun_proto::internal::Batch {
            commands: vec![
                update(config_map_at(&objects, "a", "a2")),
                update(config_map_at(&objects, "b", "b2")),
            ],
        })),
    };
    let applied = objects.apply(6, &batch);
    let pasts: Vec<String> = applied
        .changes
        .iter()
        .map(|c| value(c.previous.as_deref().unwrap()))
        .collect();
    assert_eq!(pasts, ["a1", "b1"]);
}

/// The stored ConfigMap `name` with its value set to `value`.
fn config_map_at(objects: &Objects, name: &str, value: &str) -> Object {
    let mut next = (**objects.get(Kind::ConfigMap, "default", name).unwrap()).clone();
    if let Some(bosun_proto::api::object::Resource::ConfigMap(cm)) = next.resource.as_mut() {
        cm.data.insert("k".into(), value.into());
    }
    next
}

fn with_pod_cidr(name: &str, cidr: &str) -> Object {
    let mut node = api::Node::try_from(node(name, "1", "1Gi", "10")).unwrap();
    node.spec = Some(api::NodeSpec {
        pod_cidr: cidr.into(),
        pod_cidrs: vec![cidr.into()],
        ..Default::default()
    });
    node.into()
}

fn pod_cidr_of(objects: &Objects, name: &str) -> String {
    let stored = objects.get(Kind::Node, "", name).unwrap();
    api::Node::try_from((**stored).clone()).unwrap().spec.unwrap().pod_cidr
}

#[test]
fn no_two_nodes_share_pod_addresses_and_a_node_keeps_its_range() {
    let mut objects = Objects::default();
    objects.apply(1, &create(with_pod_cidr("a", "10.42.0.0/24")));
    // Overlapping another node's range: refused at create and at update,
    // whoever chose it.
    let (code, message) = rejection(&objects.apply(2, &create(with_pod_cidr("b", "10.42.0.0/16"))));
    assert_eq!(code, rejection::Code::Conflict);
    assert!(
        message.contains("overlaps node \"a\"'s pod range 10.42.0.0/24"),
        "{message}"
    );
    objects.apply(3, &create(node("b", "1", "1Gi", "10")));
    let (code, _) = rejection(&objects.apply(4, &update(with_pod_cidr("b", "10.42.0.128/25"))));
    assert_eq!(code, rejection::Code::Conflict);
    object(&objects.apply(5, &update(with_pod_cidr("b", "10.42.1.0/24"))));
    // An update without the range keeps it (a cordon, an agent's labels)...
    object(&objects.apply(6, &update(node("b", "1", "1Gi", "10"))));
    assert_eq!(pod_cidr_of(&objects, "b"), "10.42.1.0/24");
    // ...and one that changes it is refused.
    let (code, message) = rejection(&objects.apply(7, &update(with_pod_cidr("b", "10.42.2.0/24"))));
    assert_eq!(code, rejection::Code::Invalid);
    assert!(
        message.contains("spec.podCIDR is 10.42.1.0/24 and cannot be changed"),
        "{message}"
    );
    // A deleted node's range is free again.
    objects.apply(8, &delete(Kind::Node, "", "a", None));
    object(&objects.apply(9, &create(with_pod_cidr("c", "10.42.0.0/24"))));
}
