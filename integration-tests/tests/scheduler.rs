//! The scheduler with real masters, real agents of different sizes and
//! real Docker: bin packing, unschedulable pods that explain themselves and
//! run once room appears, cordon and drain, taints.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{ensure, Result};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE};
use bosun_integration_tests::{ctl, wait_until};
use bosun_proto::api::Pod;

fn pod(name: &str, cpu: &str, memory: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra_spec}  containers:\n    - name: app\n      image: {TEST_IMAGE}\n      imagePullPolicy: Never\n      command: [sleep, \"3600\"]\n      resources: {{requests: {{cpu: {cpu}, memory: {memory}}}}}\n"
    )
}

async fn create(cluster: &TestCluster, yaml: &str) -> Result<()> {
    let out = ctl(&cluster.servers(), &["create", "-f", "-"], yaml).await;
    ensure!(out.ok(), "create failed: {out:?}");
    Ok(())
}

fn node_of(pod: &Pod) -> String {
    pod.spec.as_ref().map(|s| s.node_name.clone()).unwrap_or_default()
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| s.phase == "Running")
}

fn unschedulable_message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.r#type == "PodScheduled" && c.status == "False" && c.reason == "Unschedulable")
        .map(|c| c.message.clone())
}

#[tokio::test]
async fn pods_land_where_bin_packing_predicts() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &[], &[]).await?;
    let mut cluster = cluster;
    cluster.join_agent("small", &["--cpus", "2", "--memory", "2Gi"]).await?;
    cluster.join_agent("big", &["--cpus", "4", "--memory", "8Gi"]).await?;
    for i in 0..6 {
        create(&cluster, &pod(&format!("p{i}"), "500m", "256Mi", "")).await?;
    }
    let mut placed: HashMap<String, usize> = HashMap::new();
    for i in 0..6 {
        let pod = cluster
            .wait_pod(&format!("p{i}"), Duration::from_secs(30), "the pod to run", running)
            .await?;
        *placed.entry(node_of(&pod)).or_default() += 1;
    }
    // Most-allocated packs the small node (2 CPUs: four pods of 500m) first.
    assert_eq!(placed.get("small"), Some(&4), "{placed:?}");
    assert_eq!(placed.get("big"), Some(&2), "{placed:?}");
    let out = ctl(&cluster.servers(), &["describe", "node", "small"], "").await;
    assert!(
        out.stdout.contains("Non-terminated Pods:   (4 in total)"),
        "{}",
        out.stdout
    );
    let cpu_row = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("cpu "))
        .unwrap_or_default();
    assert!(cpu_row.contains(" 2 (100%)"), "{}", out.stdout);
    Ok(())
}

#[tokio::test]
async fn a_pod_too_big_for_every_node_waits_with_its_reason_and_runs_when_a_node_joins() -> Result<()> {
    let mut cluster = TestCluster::start(1, &[], &[], &[]).await?;
    cluster.join_agent("a", &["--cpus", "2", "--memory", "4Gi"]).await?;
    cluster.join_agent("b", &["--cpus", "4", "--memory", "4Gi"]).await?;
    create(&cluster, &pod("huge", "6", "1Gi", "")).await?;
    let pod = cluster
        .wait_pod("huge", Duration::from_secs(30), "the pod to be unschedulable", |p| {
            unschedulable_message(p).is_some()
        })
        .await?;
    assert_eq!(
        unschedulable_message(&pod).unwrap(),
        "0/2 nodes are available: 2 Insufficient cpu"
    );
    let servers = cluster.servers();
    let out = ctl(&servers, &["get", "pods"], "").await;
    assert!(out.stdout.contains("Pending"), "{out:?}");
    let out = ctl(
        &servers,
        &["get", "events", "--field-selector", "involvedObject.name=huge"],
        "",
    )
    .await;
    assert!(
        out.stdout.contains("FailedScheduling") && out.stdout.contains("Insufficient cpu"),
        "{out:?}"
    );
    let out = ctl(&servers, &["describe", "pod", "huge"], "").await;
    assert!(
        out.stdout.contains("Warning  FailedScheduling") && out.stdout.contains("scheduler"),
        "{}",
        out.stdout
    );

    cluster.join_agent("c", &["--cpus", "8", "--memory", "8Gi"]).await?;
    let pod = cluster
        .wait_pod(
            "huge",
            Duration::from_secs(30),
            "the pod to run on the new node",
            running,
        )
        .await?;
    assert_eq!(node_of(&pod), "c");
    // A normal start is visible: the scheduler's `Scheduled`, then the
    // agent's `Pulled`, `Created` and `Started`, as kubectl shows them.
    let expected = [
        "Normal Scheduled scheduler Successfully assigned default/huge to c",
        &format!("Normal Pulled node-agent Container image {TEST_IMAGE:?} already present on machine"),
        "Normal Created node-agent Created container app",
        "Normal Started node-agent Started container app",
    ];
    wait_until(
        Duration::from_secs(20),
        "the start's events in describe pod",
        || async {
            let out = ctl(&servers, &["describe", "pod", "huge"], "").await;
            let events: Vec<String> = out
                .stdout
                .lines()
                .skip_while(|l| !l.starts_with("Events:"))
                .map(|l| {
                    // Type, Reason, Age, From, Message: drop the age.
                    let words: Vec<&str> = l.split_whitespace().collect();
                    words
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != 2)
                        .map(|(_, w)| *w)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            Ok(expected
                .iter()
                .all(|e| events.iter().any(|line| line == e))
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn cordon_and_drain_move_pods_off_a_node() -> Result<()> {
    let mut cluster = TestCluster::start(1, &[], &[], &[]).await?;
    cluster.join_agent("a", &["--cpus", "2", "--memory", "4Gi"]).await?;
    cluster.join_agent("b", &["--cpus", "2", "--memory", "4Gi"]).await?;
    let servers = cluster.servers();
    create(&cluster, &pod("first", "100m", "64Mi", "")).await?;
    let first = cluster
        .wait_pod("first", Duration::from_secs(30), "first to run", running)
        .await?;
    let (home, other) = if node_of(&first) == "a" { ("a", "b") } else { ("b", "a") };

    let out = ctl(&servers, &["cordon", home], "").await;
    assert_eq!(out.stdout, format!("node/{home} cordoned\n"), "{out:?}");
    let out = ctl(&servers, &["get", "nodes"], "").await;
    assert!(out.stdout.contains("Ready,SchedulingDisabled"), "{out:?}");
    create(&cluster, &pod("second", "100m", "64Mi", "")).await?;
    let second = cluster
        .wait_pod("second", Duration::from_secs(30), "second to run", running)
        .await?;
    assert_eq!(node_of(&second), other, "a cordoned node takes no new pods");

    // Draining the other node too leaves nowhere to go.
    let out = ctl(&servers, &["drain", other, "--force", "--timeout", "60"], "").await;
    assert!(
        out.ok() && out.stdout.contains(&format!("node/{other} drained")),
        "{out:?}"
    );
    ensure!(cluster.pod("second").await.is_err(), "second was evicted");
    create(&cluster, &pod("third", "100m", "64Mi", "")).await?;
    let third = cluster
        .wait_pod("third", Duration::from_secs(30), "third to wait", |p| {
            unschedulable_message(p).is_some()
        })
        .await?;
    assert_eq!(
        unschedulable_message(&third).unwrap(),
        "0/2 nodes are available: 2 node(s) were unschedulable"
    );
    let out = ctl(&servers, &["uncordon", other], "").await;
    assert!(out.ok(), "{out:?}");
    let third = cluster
        .wait_pod("third", Duration::from_secs(30), "third to run", running)
        .await?;
    assert_eq!(node_of(&third), other);
    Ok(())
}

#[tokio::test]
async fn a_taint_keeps_pods_away_unless_tolerated() -> Result<()> {
    let mut cluster = TestCluster::start(1, &[], &[], &[]).await?;
    cluster
        .join_agent(
            "gpu",
            &["--taints", "dedicated=gpu:NoSchedule", "--labels", "accel=gpu"],
        )
        .await?;
    cluster.join_agent("plain", &[]).await?;
    for i in 0..3 {
        create(&cluster, &pod(&format!("plain-{i}"), "10m", "16Mi", "")).await?;
    }
    for i in 0..3 {
        let pod = cluster
            .wait_pod(
                &format!("plain-{i}"),
                Duration::from_secs(30),
                "the pod to run",
                running,
            )
            .await?;
        assert_eq!(node_of(&pod), "plain", "untolerated taint keeps pods off gpu");
    }
    let selector = "  nodeSelector: {accel: gpu}\n";
    create(&cluster, &pod("picky", "10m", "16Mi", selector)).await?;
    let picky = cluster
        .wait_pod("picky", Duration::from_secs(30), "picky to wait", |p| {
            unschedulable_message(p).is_some()
        })
        .await?;
    let message = unschedulable_message(&picky).unwrap();
    assert!(
        message.contains("1 node(s) had untolerated taint {dedicated: gpu}"),
        "{message}"
    );
    assert!(
        message.contains("1 node(s) didn't match Pod's node affinity/selector"),
        "{message}"
    );
    let tolerant =
        format!("{selector}  tolerations: [{{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}}]\n");
    create(&cluster, &pod("tolerant", "10m", "16Mi", &tolerant)).await?;
    let pod = cluster
        .wait_pod("tolerant", Duration::from_secs(30), "tolerant to run", running)
        .await?;
    assert_eq!(node_of(&pod), "gpu");
    Ok(())
}
