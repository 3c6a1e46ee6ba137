//! Deployments and ReplicaSets with real masters, two real agents and
//! real Docker: self-healing, scaling, rolling updates sampled throughout,
//! rollback, pause, a stalled rollout with and without automatic rollback
//! (and a drained finished release that is not rolled back),
//! garbage collection, and a lost node's pods replaced elsewhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE};
use bosun_integration_tests::{ctl, wait_until};
use bosun_proto::api::{Deployment, Pod, ReplicaSet};
use bosun_proto::client::{self, Api, DeleteParams, ListParams};
use bosun_proto::Kind;

/// A Deployment of `replicas` test-image pods asking for half a CPU each;
/// version "broken" exits at once, version "unready" runs but its
/// readiness probe never passes.
fn deployment(name: &str, replicas: i32, version: &str, extra_meta: &str, extra_spec: &str) -> String {
    sized(name, replicas, version, extra_meta, extra_spec, "500m")
}

fn sized(name: &str, replicas: i32, version: &str, extra_meta: &str, extra_spec: &str, cpu: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{extra_meta}spec:\n  replicas: {replicas}\n{extra_spec}  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n        - name: app\n          image: {TEST_IMAGE}\n          imagePullPolicy: Never\n          command: [sh, -c, \"{}\"]\n{}          env: [{{name: VERSION, value: \"{version}\"}}]\n          resources: {{requests: {{cpu: {cpu}}}}}\n",
        if version == "broken" { "exit 1" } else { "exec sleep 3600" },
        if version == "unready" {
            "          readinessProbe: {exec: {command: [cat, /nonexistent]}, periodSeconds: 1}\n"
        } else {
            ""
        }
    )
}

async fn apply(cluster: &TestCluster, yaml: &str) -> Result<()> {
    let out = ctl(&cluster.servers(), &["apply", "-f", "-"], yaml).await;
    ensure!(out.ok(), "apply failed: {out:?}");
    Ok(())
}

/// Objects of `kind` in `default` matching `selector`.
async fn list<T: TryFrom<bosun_proto::api::Object>>(
    client: &client::Client,
    kind: &str,
    selector: &str,
) -> Result<Vec<T>> {
    let api = Api::dynamic(client, Kind::parse(kind)?, "default");
    let list = api.list(&ListParams::default().labels(selector)).await?;
    Ok(list.items.into_iter().filter_map(|o| T::try_from(o).ok()).collect())
}

async fn pods(cluster: &TestCluster, app: &str) -> Result<Vec<Pod>> {
    list(&cluster.client(), "Pod", &format!("app={app}")).await
}

async fn get<T: TryFrom<bosun_proto::api::Object>>(cluster: &TestCluster, kind: &str, name: &str) -> Result<Option<T>> {
    let result = Api::dynamic(&cluster.client(), Kind::parse(kind)?, "default")
        .get(name)
        .await;
    match result {
        Ok(object) => Ok(T::try_from(object).ok()),
        Err(e) if e.to_string().contains("not found") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.as_ref().is_some_and(|m| m.deletion_timestamp.is_some())
}

fn ready(pod: &Pod) -> bool {
    !terminating(pod)
        && pod
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.r#type == "Ready" && c.status == "True"))
}

fn version(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.iter().find(|e| e.name == "VERSION"))
        .map(|e| e.value.clone())
        .unwrap_or_default()
}

fn node(pod: &Pod) -> String {
    pod.spec.as_ref().map(|s| s.node_name.clone()).unwrap_or_default()
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .map_or(0, |s| s.container_statuses.iter().map(|c| c.restart_count).sum())
}

/// Waits until the app has exactly `count` live pods, all ready, all at
/// `version`.
async fn wait_ready(
    cluster: &TestCluster,
    app: &str,
    count: usize,
    version_wanted: &str,
    timeout: Duration,
) -> Result<Vec<Pod>> {
    let what = format!("{count} ready pods of {app} at {version_wanted}");
    wait_until(timeout, &what, || async {
        let live: Vec<Pod> = pods(cluster, app)
            .await?
            .into_iter()
            .filter(|p| !terminating(p))
            .collect();
        let done = live.len() == count && live.iter().all(|p| ready(p) && version(p) == version_wanted);
        Ok(done.then_some(live))
    })
    .await
}

async fn deployment_condition(cluster: &TestCluster, name: &str, kind: &str) -> Result<(String, String)> {
    let d: Deployment = get(cluster, "Deployment", name).await?.context("deployment gone")?;
    Ok(d.status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.r#type == kind)
        .map(|c| (c.status, c.reason))
        .unwrap_or_default())
}

async fn two_nodes(master_args: &[&str]) -> Result<TestCluster> {
    TestCluster::start(1, master_args, &["a", "b"], &["--cpus", "2", "--memory", "4Gi"]).await
}

#[tokio::test]
async fn a_deployment_spreads_heals_and_scales() -> Result<()> {
    let cluster = two_nodes(&[]).await?;
    // One CPU each on 2-CPU nodes: four pods need both nodes.
    let web = |replicas| sized("web", replicas, "1", "", "", "1");
    apply(&cluster, &web(4)).await?;
    let running = wait_ready(&cluster, "web", 4, "1", Duration::from_secs(60)).await?;
    let mut nodes: Vec<String> = running.iter().map(node).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["a", "a", "b", "b"]);

    // exec and logs reach one of the Deployment's pods, and say which.
    let out = ctl(
        &cluster.servers(),
        &["exec", "deploy/web", "--", "sh", "-c", "echo v$VERSION"],
        "",
    )
    .await;
    ensure!(out.ok() && out.stdout == "v1\n", "{out:?}");
    ensure!(out.stderr.starts_with("Found 4 pods, using pod/web-"), "{out:?}");
    let out = ctl(&cluster.servers(), &["logs", "deploy/web"], "").await;
    ensure!(out.ok(), "{out:?}");

    // A container killed behind the agent's back is restarted.
    let victim = running[0].metadata.clone().unwrap_or_default();
    let containers = cluster.containers("io.bosun.pod.uid", &victim.uid)?;
    let app = containers
        .iter()
        .find(|(_, name, _)| !name.contains("POD"))
        .context("the pod's app container")?;
    let killed = std::process::Command::new("docker").args(["kill", &app.0]).output()?;
    ensure!(killed.status.success(), "docker kill failed");
    cluster
        .wait_pod(
            &victim.name,
            Duration::from_secs(30),
            "the killed container to be restarted",
            |p| restarts(p) >= 1 && ready(p),
        )
        .await?;

    // A deleted pod is replaced.
    let out = ctl(
        &cluster.servers(),
        &["delete", "pod", &running[1].metadata.as_ref().unwrap().name],
        "",
    )
    .await;
    ensure!(out.ok(), "{out:?}");
    let replaced = wait_ready(&cluster, "web", 4, "1", Duration::from_secs(30)).await?;
    let gone = running[1].metadata.as_ref().unwrap().uid.clone();
    assert!(replaced.iter().all(|p| p.metadata.as_ref().unwrap().uid != gone));

    // Scaling down and up converges.
    apply(&cluster, &web(1)).await?;
    wait_ready(&cluster, "web", 1, "1", Duration::from_secs(30)).await?;
    apply(&cluster, &web(3)).await?;
    wait_ready(&cluster, "web", 3, "1", Duration::from_secs(30)).await?;
    let rs: Vec<ReplicaSet> = list(&cluster.client(), "ReplicaSet", "").await?;
    assert_eq!(rs.len(), 1, "scaling makes no new ReplicaSet");
    let out = ctl(&cluster.servers(), &["get", "deploy,rs"], "").await;
    assert!(out.stdout.contains("3/3"), "{}", out.stdout);
    let out = ctl(&cluster.servers(), &["get", "all"], "").await;
    assert!(
        out.stdout.contains("pod/web-")
            && out.stdout.contains("deployment.apps/web")
            && out.stdout.contains("replicaset.apps/web-"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_rolling_update_stays_within_bounds_and_undo_pause_resume_work() -> Result<()> {
    let cluster = two_nodes(&[]).await?;
    apply(&cluster, &deployment("roll", 4, "1", "", "")).await?;
    wait_ready(&cluster, "roll", 4, "1", Duration::from_secs(60)).await?;

    // Sample the pods throughout the rollout, not only at the end.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let client = cluster.client();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut most_live, mut fewest_ready, mut samples) = (0usize, usize::MAX, 0usize);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(pods) = list::<Pod>(&client, "Pod", "app=roll").await {
                    most_live = most_live.max(pods.iter().filter(|p| !terminating(p)).count());
                    fewest_ready = fewest_ready.min(pods.iter().filter(|p| ready(p)).count());
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (most_live, fewest_ready, samples)
        })
    };
    apply(&cluster, &deployment("roll", 4, "2", "", "")).await?;
    wait_ready(&cluster, "roll", 4, "2", Duration::from_secs(90)).await?;
    stop.store(true, Ordering::Relaxed);
    let (most_live, fewest_ready, samples) = sampler.await?;
    assert!(samples > 10, "only {samples} samples");
    // 25% of 4: maxSurge 1, maxUnavailable 1.
    assert!(
        most_live <= 5,
        "saw {most_live} live pods, more than replicas + maxSurge"
    );
    assert!(
        fewest_ready >= 3,
        "saw only {fewest_ready} ready pods, fewer than replicas - maxUnavailable"
    );

    let servers = cluster.servers();
    let out = ctl(&servers, &["rollout", "undo", "deploy/roll"], "").await;
    ensure!(out.ok(), "{out:?}");
    wait_ready(&cluster, "roll", 4, "1", Duration::from_secs(90)).await?;

    // Paused: a template change rolls nothing until resumed.
    let out = ctl(&servers, &["rollout", "pause", "deploy/roll"], "").await;
    ensure!(out.ok(), "{out:?}");
    apply(&cluster, &deployment("roll", 4, "3", "", "  paused: true\n")).await?;
    wait_until(Duration::from_secs(10), "the pause to be reported", || async {
        Ok((deployment_condition(&cluster, "roll", "Progressing").await?.1 == "DeploymentPaused").then_some(()))
    })
    .await?;
    let still: Vec<Pod> = pods(&cluster, "roll")
        .await?
        .into_iter()
        .filter(|p| !terminating(p))
        .collect();
    assert!(still.iter().all(|p| version(p) == "1"), "a paused deployment rolled");
    let out = ctl(&servers, &["rollout", "resume", "deploy/roll"], "").await;
    ensure!(out.ok(), "{out:?}");
    wait_ready(&cluster, "roll", 4, "3", Duration::from_secs(90)).await?;
    let out = ctl(&servers, &["rollout", "status", "deploy/roll", "--timeout", "60s"], "").await;
    ensure!(out.ok() && out.stdout.contains("successfully rolled out"), "{out:?}");
    Ok(())
}

#[tokio::test]
async fn a_broken_update_stalls_or_rolls_back_by_itself() -> Result<()> {
    let cluster = two_nodes(&[]).await?;
    // A container that exits at once may be seen running, hence ready, for
    // a moment; with minReadySeconds such a moment is not availability, so
    // the broken revisions can never complete their rollouts by luck.
    let deadline = "  progressDeadlineSeconds: 5\n  minReadySeconds: 2\n";
    let auto = "  annotations: {bosun.io/auto-rollback: \"true\"}\n";
    apply(&cluster, &deployment("stall", 2, "1", "", deadline)).await?;
    apply(&cluster, &deployment("heal", 2, "1", auto, deadline)).await?;
    wait_ready(&cluster, "stall", 2, "1", Duration::from_secs(60)).await?;
    wait_ready(&cluster, "heal", 2, "1", Duration::from_secs(60)).await?;
    let unready = |version| sized("unready", 2, version, "", deadline, "100m");
    apply(&cluster, &unready("1")).await?;
    wait_ready(&cluster, "unready", 2, "1", Duration::from_secs(60)).await?;

    apply(&cluster, &deployment("stall", 2, "broken", "", deadline)).await?;
    apply(&cluster, &deployment("heal", 2, "broken", auto, deadline)).await?;
    apply(&cluster, &unready("unready")).await?;
    // A container that exits, and one whose readiness probe never passes.
    for name in ["stall", "unready"] {
        wait_until(
            Duration::from_secs(30),
            &format!("the stalled rollout of {name} to miss its deadline"),
            || async {
                let condition = deployment_condition(&cluster, name, "Progressing").await?;
                Ok((condition == ("False".to_string(), "ProgressDeadlineExceeded".to_string())).then_some(()))
            },
        )
        .await?;
    }
    let probed: Vec<Pod> = pods(&cluster, "unready")
        .await?
        .into_iter()
        .filter(|p| version(p) == "unready")
        .collect();
    assert!(
        !probed.is_empty() && probed.iter().all(|p| !ready(p) && restarts(p) == 0),
        "the new pods run, unready and never restarted: {probed:?}"
    );
    let out = ctl(
        &cluster.servers(),
        &["rollout", "status", "deploy/stall", "--timeout", "10s"],
        "",
    )
    .await;
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("exceeded its progress deadline")),
        "{out:?}"
    );
    // The old pods kept serving throughout.
    let live: Vec<Pod> = pods(&cluster, "stall").await?.into_iter().filter(ready).collect();
    assert!(live.iter().filter(|p| version(p) == "1").count() >= 1, "{live:?}");

    // With the annotation the template goes back, and an event says why.
    wait_ready(&cluster, "heal", 2, "1", Duration::from_secs(60)).await?;
    let d: Deployment = get(&cluster, "Deployment", "heal").await?.context("heal")?;
    let template = d.spec.and_then(|s| s.template).and_then(|t| t.spec).unwrap_or_default();
    assert_eq!(template.containers[0].env[0].value, "1");
    let out = ctl(
        &cluster.servers(),
        &["get", "events", "--field-selector", "involvedObject.name=heal"],
        "",
    )
    .await;
    assert!(
        out.stdout.contains("AutoRollback") && out.stdout.contains("Rolled back to revision 1"),
        "{}",
        out.stdout
    );
    Ok(())
}

/// A finished release whose pods are drained away for longer than its
/// progress deadline is not rolled back: the replacements wait for a node,
/// the condition stays NewReplicaSetAvailable, and they run at the same
/// version when the nodes come back.
#[tokio::test]
async fn draining_a_finished_release_does_not_roll_it_back() -> Result<()> {
    let cluster = two_nodes(&[]).await?;
    let servers = cluster.servers();
    let deadline = "  progressDeadlineSeconds: 3\n";
    let auto = "  annotations: {bosun.io/auto-rollback: \"true\"}\n";
    apply(&cluster, &deployment("keep", 2, "1", auto, deadline)).await?;
    wait_ready(&cluster, "keep", 2, "1", Duration::from_secs(60)).await?;
    apply(&cluster, &deployment("keep", 2, "2", auto, deadline)).await?;
    wait_ready(&cluster, "keep", 2, "2", Duration::from_secs(60)).await?;
    let out = ctl(&servers, &["rollout", "status", "deploy/keep", "--timeout", "30s"], "").await;
    ensure!(out.ok(), "{out:?}");

    for node in ["a", "b"] {
        let out = ctl(&servers, &["drain", node, "--timeout", "60s"], "").await;
        ensure!(out.ok(), "drain {node}: {out:?}");
    }
    // Watched for three times the deadline: the replacements wait, and
    // nothing goes back to version 1.
    let drained = tokio::time::Instant::now();
    wait_until(
        Duration::from_secs(30),
        "three deadlines to pass without a rollback",
        || async {
            let d: Deployment = get(&cluster, "Deployment", "keep").await?.context("keep")?;
            let template = d.spec.and_then(|s| s.template).and_then(|t| t.spec).unwrap_or_default();
            let image_version = template.containers[0].env[0].value.clone();
            let condition = deployment_condition(&cluster, "keep", "Progressing").await?;
            // Not a condition to wait for: the first sight of it fails.
            assert!(
                image_version == "2" && condition.1 == "NewReplicaSetAvailable",
                "the finished release was touched: version {image_version}, Progressing {condition:?}"
            );
            Ok((drained.elapsed() > Duration::from_secs(9)).then_some(()))
        },
    )
    .await?;
    let waiting = pods(&cluster, "keep").await?;
    ensure!(
        waiting.iter().all(|p| version(p) == "2" && !ready(p)),
        "the replacements wait: {waiting:?}"
    );

    for node in ["a", "b"] {
        let out = ctl(&servers, &["uncordon", node], "").await;
        ensure!(out.ok(), "uncordon {node}: {out:?}");
    }
    wait_ready(&cluster, "keep", 2, "2", Duration::from_secs(60)).await?;
    let out = ctl(
        &servers,
        &["get", "events", "--field-selector", "involvedObject.name=keep"],
        "",
    )
    .await;
    ensure!(!out.stdout.contains("AutoRollback"), "{}", out.stdout);
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_collects_orphans_or_waits_as_asked() -> Result<()> {
    let cluster = two_nodes(&[]).await?;
    apply(&cluster, &deployment("gc", 2, "1", "", "")).await?;
    wait_ready(&cluster, "gc", 2, "1", Duration::from_secs(60)).await?;
    let delete = |kind: Kind, name: &str, policy: &str| {
        let api = Api::dynamic(&cluster.client(), kind, "default");
        let name = name.to_string();
        let params = DeleteParams {
            propagation_policy: policy.into(),
            ..Default::default()
        };
        async move { api.delete(&name, &params).await }
    };
    // Orphan: the ReplicaSet and its pods stay, without the reference.
    delete(Kind::Deployment, "gc", "Orphan").await?;
    let sets: Vec<ReplicaSet> = list(&cluster.client(), "ReplicaSet", "").await?;
    ensure!(sets.len() == 1, "{sets:?}");
    let rs = sets[0].metadata.clone().unwrap_or_default();
    ensure!(rs.owner_references.is_empty(), "{rs:?}");
    assert_eq!(
        wait_ready(&cluster, "gc", 2, "1", Duration::from_secs(5)).await?.len(),
        2
    );

    // Foreground: the ReplicaSet stays, marked, until its pods are gone.
    let marked = delete(Kind::ReplicaSet, &rs.name, "Foreground").await?;
    ensure!(!marked.deleted, "{marked:?}");
    wait_until(
        Duration::from_secs(30),
        "the pods, then the ReplicaSet, to go",
        || async {
            let left = pods(&cluster, "gc").await?.len();
            let set: Option<ReplicaSet> = get(&cluster, "ReplicaSet", &rs.name).await?;
            ensure!(left == 0 || set.is_some(), "the ReplicaSet went before its pods");
            Ok((left == 0 && set.is_none()).then_some(()))
        },
    )
    .await?;

    // Background (the default): everything goes.
    apply(&cluster, &deployment("gc2", 2, "1", "", "")).await?;
    wait_ready(&cluster, "gc2", 2, "1", Duration::from_secs(60)).await?;
    let out = ctl(&cluster.servers(), &["delete", "deploy", "gc2"], "").await;
    ensure!(out.ok(), "{out:?}");
    wait_until(
        Duration::from_secs(30),
        "the deployment's pods to be collected",
        || async { Ok(pods(&cluster, "gc2").await?.is_empty().then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_lost_node_s_pods_run_elsewhere_and_its_containers_go_when_it_returns() -> Result<()> {
    let eviction = Duration::from_secs(6);
    let mut cluster = two_nodes(&["--node-grace-seconds", "3", "--pod-eviction-seconds", "6"]).await?;
    apply(&cluster, &deployment("lost", 3, "1", "", "")).await?;
    let running = wait_ready(&cluster, "lost", 3, "1", Duration::from_secs(60)).await?;
    // Bin packing put them together; lose that node.
    let victim = node(&running[0]);
    let survivor = if victim == "a" { "b" } else { "a" };
    ensure!(
        running.iter().all(|p| node(p) == victim),
        "expected the pods packed on one node"
    );
    cluster.kill_agent(&victim)?;
    let ids: Vec<String> = cluster
        .containers("io.bosun.node", &victim)?
        .into_iter()
        .map(|c| c.0)
        .collect();
    ensure!(!ids.is_empty(), "no containers on {victim}");
    let stopped = std::process::Command::new("docker")
        .args(["stop", "-t", "0"])
        .args(&ids)
        .output()?;
    ensure!(stopped.status.success(), "docker stop failed");

    let replaced = wait_until(
        eviction + Duration::from_secs(20),
        "replacements to run on the other node",
        || async {
            let live: Vec<Pod> = pods(&cluster, "lost")
                .await?
                .into_iter()
                .filter(|p| ready(p) && node(p) == survivor)
                .collect();
            Ok((live.len() == 3).then_some(live))
        },
    )
    .await?;
    assert_eq!(replaced.len(), 3);
    let evicted: Vec<Pod> = pods(&cluster, "lost")
        .await?
        .into_iter()
        .filter(|p| node(p) == victim)
        .collect();
    assert!(
        evicted
            .iter()
            .all(|p| terminating(p) && p.status.as_ref().is_some_and(|s| s.reason == "NodeLost")),
        "{evicted:?}"
    );

    cluster.restart_agent(&victim)?;
    cluster.wait_node_ready(&victim, true).await?;
    wait_until(
        Duration::from_secs(30),
        "the returning node's stale containers and pods to go",
        || async {
            let containers = cluster.containers("io.bosun.node", &victim)?;
            let left = pods(&cluster, "lost")
                .await?
                .into_iter()
                .filter(|p| node(p) == victim)
                .count();
            Ok((containers.is_empty() && left == 0).then_some(()))
        },
    )
    .await?;

    // And it takes new work.
    let pinned = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: back}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {victim}}}\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: app, image: {TEST_IMAGE}, imagePullPolicy: Never, command: [sleep, \"3600\"]}}]\n"
    );
    apply(&cluster, &pinned).await?;
    cluster
        .wait_pod(
            "back",
            Duration::from_secs(30),
            "a new pod to run on the returned node",
            |p| ready(p) && node(p) == victim,
        )
        .await?;
    Ok(())
}
