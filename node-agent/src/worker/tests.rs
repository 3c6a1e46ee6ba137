//! The pod worker on the fake runtime: it creates a pod's containers,
//! restarts a crashed one after its back-off, adopts the containers of an
//! earlier agent instead of starting them again, and stops a deleted pod
//! gracefully. The masters are unreachable here: statuses and events are
//! only attempted, as when an agent loses its masters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_proto::api::{ConfigMap, ConfigMapKeySelector, Container, EnvVar, EnvVarSource, ObjectMeta, Pod, PodSpec};
use bosun_proto::client::{Change, Client};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spawn;
use crate::context::{Caches, Context, DataDir, Parts};
use crate::plan::{Backoff, Desired, Shape};
use crate::runtime::fake::FakeRuntime;
use crate::runtime::{labels, ContainerInfo};

const IMAGE: &str = "local/busybox:1";
const BACKOFF: Duration = Duration::from_millis(300);

fn context(runtime: Arc<FakeRuntime>, token: &CancellationToken) -> Arc<Context<FakeRuntime>> {
    context_with(runtime, Caches::empty(), token)
}

fn context_with(runtime: Arc<FakeRuntime>, caches: Caches, token: &CancellationToken) -> Arc<Context<FakeRuntime>> {
    let context = Context::new(
        Parts {
            node: "node-a".into(),
            host_ip: "192.0.2.1".into(),
            data: DataDir::simulated("node-a"),
            runtime,
            // Nothing listens there: statuses and events go nowhere.
            client: Client::new(["127.0.0.1:1"]),
            caches,
            backoff: Backoff {
                initial: BACKOFF,
                max: BACKOFF * 4,
                reset_after: Duration::from_secs(600),
            },
            container_labels: HashMap::new(),
        },
        token,
    );
    let _ = context.pod_range.set("10.42.0.0/24".parse().expect("a range"));
    context
}

/// The pod's containers in each shape ([`Shape`]): "app" alone, or "app"
/// beside a "sidecar" in a sandbox.
fn containers_of(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::Single => &["app"],
        Shape::Sandbox => &["app", "sidecar"],
    }
}

const SHAPES: [Shape; 2] = [Shape::Single, Shape::Sandbox];

fn pod(uid: &str, restart_policy: &str) -> Arc<Pod> {
    shaped_pod(uid, restart_policy, Shape::Single)
}

fn shaped_pod(uid: &str, restart_policy: &str, shape: Shape) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: Some(ObjectMeta {
            name: format!("pod-{uid}"),
            namespace: "default".into(),
            uid: uid.into(),
            resource_version: 1,
            ..Default::default()
        }),
        spec: Some(PodSpec {
            node_name: "node-a".into(),
            restart_policy: restart_policy.into(),
            termination_grace_period_seconds: Some(1),
            containers: containers_of(shape)
                .iter()
                .map(|name| Container {
                    name: name.to_string(),
                    image: IMAGE.into(),
                    image_pull_policy: "IfNotPresent".into(),
                    command: vec!["sleep".into(), "3600".into()],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Waits (with a deadline) until `check` holds for the runtime's
/// containers.
async fn until(runtime: &FakeRuntime, what: &str, check: impl Fn(&[ContainerInfo]) -> bool) -> Vec<ContainerInfo> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let containers = runtime.containers();
        if check(&containers) {
            return containers;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; containers: {containers:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn running_app(containers: &[ContainerInfo], attempt: &str) -> Option<ContainerInfo> {
    containers
        .iter()
        .find(|c| c.label(labels::CONTAINER) == "app" && c.label(labels::ATTEMPT) == attempt && c.is_running())
        .cloned()
}

/// Whether the pod's network is up as its shape has it: a running sandbox
/// holding the pod's address, or none.
fn network_up(containers: &[ContainerInfo], shape: Shape) -> bool {
    let sandbox = containers
        .iter()
        .find(|c| c.label(labels::CONTAINER) == labels::SANDBOX && c.is_running());
    match shape {
        Shape::Sandbox => sandbox.is_some_and(|s| !s.label(labels::POD_IP).is_empty()),
        Shape::Single => sandbox.is_none(),
    }
}

/// The address the pod's network holder was given, checked to be in the
/// node's range and to be what the runtime reports.
fn pod_address(containers: &[ContainerInfo]) -> String {
    let holder = containers
        .iter()
        .find(|c| !c.label(labels::POD_IP).is_empty() && c.is_running())
        .expect("a running container holds the pod's address");
    let address = holder.label(labels::POD_IP).to_string();
    assert!(address.starts_with("10.42.0."), "{address} in the node's range");
    assert_eq!(holder.ip.as_deref(), Some(address.as_str()), "created with it");
    address
}

fn creates(runtime: &FakeRuntime) -> usize {
    runtime.calls().iter().filter(|c| c.starts_with("create ")).count()
}

#[tokio::test]
async fn a_pod_gets_its_network_and_containers_with_its_labels() {
    for shape in SHAPES {
        let runtime = Arc::new(FakeRuntime::default());
        runtime.add_image(IMAGE);
        let token = CancellationToken::new();
        let (done, _finished) = mpsc::unbounded_channel();
        let _worker = spawn(
            context(runtime.clone(), &token),
            "u1".into(),
            Desired::Present(shaped_pod("u1", "Always", shape)),
            done,
            token.clone(),
        );
        // One container for a pod of one; a sandbox and two for the other.
        let expected = match shape {
            Shape::Single => 1,
            Shape::Sandbox => 3,
        };
        let containers = until(&runtime, "the network and the containers to run", |c| {
            network_up(c, shape) && c.len() == expected && c.iter().all(ContainerInfo::is_running)
        })
        .await;
        let app = running_app(&containers, "0").unwrap();
        assert_eq!(app.label(labels::POD_UID), "u1");
        assert_eq!(app.label(labels::POD_NAME), "pod-u1");
        assert_eq!(app.label(labels::NODE), "node-a");
        pod_address(&containers);
        assert!(
            !runtime.calls().iter().any(|c| c.starts_with("pull ")),
            "a present image is not pulled"
        );
        token.cancel();
    }
}

#[tokio::test]
async fn a_crashed_container_is_restarted_after_its_back_off_and_the_pod_keeps_its_address() {
    for shape in SHAPES {
        crash_and_restart(shape).await;
    }
}

async fn crash_and_restart(shape: Shape) {
    let runtime = Arc::new(FakeRuntime::default());
    runtime.add_image(IMAGE);
    let token = CancellationToken::new();
    let (done, _finished) = mpsc::unbounded_channel();
    let worker = spawn(
        context(runtime.clone(), &token),
        "u2".into(),
        Desired::Present(shaped_pod("u2", "Always", shape)),
        done,
        token.clone(),
    );
    let first = until(&runtime, "the app to run", |c| running_app(c, "0").is_some()).await;
    let address = pod_address(&first);
    let first = running_app(&first, "0").unwrap();
    runtime.exit_container(&first.id, 1);
    let crashed = Instant::now();
    worker.poke();
    let again = until(&runtime, "the app to run again", |c| running_app(c, "1").is_some()).await;
    assert_eq!(pod_address(&again), address, "{shape:?}: the same address");
    assert!(
        crashed.elapsed() >= BACKOFF,
        "restarted after {:?}, before its back-off of {BACKOFF:?}",
        crashed.elapsed()
    );
    let containers = runtime.containers();
    assert!(
        !containers.iter().any(|c| c.id == first.id && c.is_running()),
        "{containers:#?}"
    );
    assert!(network_up(&containers, shape), "{shape:?}: the sandbox, if any, stays");
    token.cancel();
}

#[tokio::test]
async fn a_new_agent_adopts_the_running_containers_of_the_last_one() {
    for shape in SHAPES {
        adopt(shape).await;
    }
}

async fn adopt(shape: Shape) {
    let runtime = Arc::new(FakeRuntime::default());
    runtime.add_image(IMAGE);
    let first_agent = CancellationToken::new();
    let (done, _finished) = mpsc::unbounded_channel();
    let _worker = spawn(
        context(runtime.clone(), &first_agent),
        "u3".into(),
        Desired::Present(shaped_pod("u3", "Always", shape)),
        done,
        first_agent.clone(),
    );
    let before = until(&runtime, "the pod to run", |c| {
        network_up(c, shape) && c.len() == containers_of(shape).len() + usize::from(shape == Shape::Sandbox)
    })
    .await;
    // The agent stops (its pods keep running) and a new one starts.
    first_agent.cancel();
    let created = creates(&runtime);
    let second_agent = CancellationToken::new();
    let (done, _finished) = mpsc::unbounded_channel();
    let second = context(runtime.clone(), &second_agent);
    let worker = spawn(
        second.clone(),
        "u3".into(),
        Desired::Present(shaped_pod("u3", "Always", shape)),
        done,
        second_agent.clone(),
    );
    // Let it look at the pod a few times.
    for _ in 0..3 {
        let lists = runtime.calls().iter().filter(|c| c.starts_with("list ")).count();
        worker.poke();
        let deadline = Instant::now() + Duration::from_secs(10);
        while runtime.calls().iter().filter(|c| c.starts_with("list ")).count() == lists {
            assert!(Instant::now() < deadline, "the new worker never looked at the pod");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(
        creates(&runtime),
        created,
        "nothing is created again: {:#?}",
        runtime.calls()
    );
    let mut ids: Vec<String> = runtime.containers().into_iter().map(|c| c.id).collect();
    let mut before: Vec<String> = before.into_iter().map(|c| c.id).collect();
    ids.sort();
    before.sort();
    assert_eq!(ids, before, "the same containers, still there");
    let held = pod_address(&runtime.containers());
    let other = second
        .addresses
        .assign(
            &*runtime,
            "node-a",
            "",
            "10.42.0.0/24".parse().expect("a range"),
            "another-pod",
        )
        .await
        .expect("an address");
    assert_ne!(other.to_string(), held, "the adopted pod's address is not given again");
    second_agent.cancel();
}

#[tokio::test]
async fn a_deleted_pod_is_stopped_its_containers_removed_and_its_address_freed() {
    for shape in SHAPES {
        delete(shape).await;
    }
}

async fn delete(shape: Shape) {
    let runtime = Arc::new(FakeRuntime::default());
    runtime.add_image(IMAGE);
    let token = CancellationToken::new();
    let (done, mut finished) = mpsc::unbounded_channel();
    let shared = context(runtime.clone(), &token);
    let worker = spawn(
        shared.clone(),
        "u4".into(),
        Desired::Present(shaped_pod("u4", "Always", shape)),
        done,
        token.clone(),
    );
    let running = until(&runtime, "the pod to run", |c| {
        network_up(c, shape) && running_app(c, "0").is_some() && c.iter().all(ContainerInfo::is_running)
    })
    .await;
    assert!(shared.addresses.of("u4").await.is_some());
    // The pod object is gone, with a grace period of 1 s.
    worker.update(Desired::Gone { grace: Some(1) });
    let uid = tokio::time::timeout(Duration::from_secs(10), finished.recv())
        .await
        .expect("the worker finishes")
        .expect("the worker reports its pod");
    assert_eq!(uid, "u4");
    assert!(runtime.containers().is_empty(), "{:#?}", runtime.containers());
    let calls = runtime.calls();
    let stops = calls.iter().filter(|c| c.starts_with("stop ")).count();
    assert!(
        stops >= running.len(),
        "{shape:?}: every container is stopped before removal: {calls:#?}"
    );
    assert_eq!(shared.addresses.of("u4").await, None, "{shape:?}: its address is free");
    token.cancel();
}

#[tokio::test]
async fn a_containers_environment_is_read_from_the_agents_cache() {
    let runtime = Arc::new(FakeRuntime::default());
    runtime.add_image(IMAGE);
    let caches = Caches::empty();
    let settings = ConfigMap {
        metadata: Some(ObjectMeta {
            name: "settings".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        data: [("color".to_string(), "blue".to_string())].into(),
        ..Default::default()
    };
    caches.config_maps.apply(Change::Relisted(vec![settings]), 1);
    let mut with_env = (*pod("u5", "Always")).clone();
    with_env.spec.as_mut().unwrap().containers[0].env = vec![EnvVar {
        name: "COLOR".into(),
        value_from: Some(Box::new(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "settings".into(),
                key: "color".into(),
                optional: None,
            }),
            ..Default::default()
        })),
        ..Default::default()
    }];
    let token = CancellationToken::new();
    let (done, _finished) = mpsc::unbounded_channel();
    let _worker = spawn(
        context_with(runtime.clone(), caches, &token),
        "u5".into(),
        Desired::Present(Arc::new(with_env)),
        done,
        token.clone(),
    );
    // The masters are unreachable: a read from them would fail the start
    // (CreateContainerConfigError), so a running app came from the cache.
    until(&runtime, "the app to run with its ConfigMap", |c| {
        running_app(c, "0").is_some()
    })
    .await;
    token.cancel();
}
