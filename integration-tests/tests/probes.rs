//! Container probes on real Docker: a failing liveness probe restarts its
//! container (counted), a failing readiness probe keeps the pod not Ready
//! without restarting it, passing readiness probes (exec, httpGet on a
//! named port, tcpSocket) make it Ready, and a startup probe holds off
//! liveness until the container has started.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE};
use bosun_integration_tests::ctl;
use bosun_proto::api::{ContainerStatus, Pod};
use tokio::time::Instant;

fn pod_yaml(name: &str, extra_spec: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: node-a\n{extra_spec}  containers:\n{containers}"
    )
}

/// A BusyBox container running `script`, with `extra` (probes, ports)
/// indented as container fields.
fn container(name: &str, script: &str, extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "    - name: {name}\n      image: {TEST_IMAGE}\n      imagePullPolicy: Never\n      command: [\"sh\", \"-c\", {script:?}]\n{extra}"
    )
}

fn status(pod: &Pod) -> ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.first().cloned())
        .unwrap_or_default()
}

fn condition(pod: &Pod, kind: &str) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.r#type == kind))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn is_running(pod: &Pod) -> bool {
    status(pod).state.is_some_and(|s| s.running.is_some())
}

fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready") == "True" && condition(pod, "ContainersReady") == "True" && status(pod).ready
}

fn is_not_ready(pod: &Pod) -> bool {
    condition(pod, "Ready") == "False" && condition(pod, "ContainersReady") == "False" && !status(pod).ready
}

async fn create(cluster: &TestCluster, yaml: &str) -> Result<()> {
    let out = ctl(&cluster.servers(), &["create", "-f", "-"], yaml).await;
    ensure!(out.ok(), "create failed: {out:?}");
    Ok(())
}

/// Checks `invariant` on the pod again and again until `window` has
/// passed; fails at the first violation.
async fn holds_for<F>(cluster: &TestCluster, name: &str, window: Duration, what: &str, invariant: F) -> Result<()>
where
    F: Fn(&Pod) -> bool,
{
    let deadline = Instant::now() + window;
    let mut checks = 0;
    while Instant::now() < deadline {
        let pod = cluster.pod(name).await?;
        ensure!(
            invariant(&pod),
            "{what} stopped holding after {checks} checks: {:?}",
            pod.status
        );
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn exec(cluster: &TestCluster, pod: &str, command: &[&str]) -> Result<()> {
    let mut args = vec!["exec", pod, "--"];
    args.extend(command);
    let out = ctl(&cluster.servers(), &args, "").await;
    ensure!(out.ok(), "exec {command:?} failed: {out:?}");
    Ok(())
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container_and_counts_each_restart() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    // Healthy for two seconds after each start, then not.
    let app = container(
        "app",
        "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600",
        "livenessProbe:\n  exec: {command: [cat, /tmp/healthy]}\n  initialDelaySeconds: 1\n  periodSeconds: 1\n  failureThreshold: 2\n",
    );
    create(
        &cluster,
        &pod_yaml("liveness", "  terminationGracePeriodSeconds: 1\n", &app),
    )
    .await?;
    let pod = cluster
        .wait_pod(
            "liveness",
            Duration::from_secs(60),
            "a restart by the liveness probe",
            |p| status(p).restart_count >= 1,
        )
        .await?;
    let terminated = status(&pod)
        .last_state
        .and_then(|s| s.terminated)
        .context("the killed run is the last terminated state")?;
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_str()),
        (137, "Error"),
        "killed after the grace period: {terminated:?}"
    );
    // The restarted container is probed afresh: healthy at first (it runs
    // again), then killed again when its file is gone.
    cluster
        .wait_pod(
            "liveness",
            Duration::from_secs(30),
            "the restarted container to run",
            |p| is_running(p) && status(p).restart_count >= 1,
        )
        .await?;
    cluster
        .wait_pod("liveness", Duration::from_secs(60), "a second restart", |p| {
            status(p).restart_count >= 2
        })
        .await?;
    let unhealthy = cluster
        .wait_event("liveness", "Unhealthy", "Liveness probe failed:", 1)
        .await?;
    assert_eq!(unhealthy.r#type, "Warning");
    cluster
        .wait_event(
            "liveness",
            "Killing",
            "Stopping container app: container app failed its liveness probe",
            1,
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_failing_readiness_probe_keeps_the_pod_not_ready_and_never_restarts_it() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let app = container(
        "app",
        "exec sleep 3600",
        "readinessProbe:\n  exec: {command: [cat, /tmp/ready]}\n  periodSeconds: 1\n  failureThreshold: 1\n",
    );
    create(&cluster, &pod_yaml("unready", "", &app)).await?;
    cluster
        .wait_pod("unready", Duration::from_secs(30), "the container to run", |p| {
            is_running(p) && status(p).started == Some(true)
        })
        .await?;
    // Five periods of failing checks: not ready, never restarted.
    holds_for(
        &cluster,
        "unready",
        Duration::from_secs(5),
        "not Ready and not restarted",
        |p| is_running(p) && is_not_ready(p) && status(p).restart_count == 0,
    )
    .await?;
    let pod = cluster.pod("unready").await?;
    assert_eq!(pod.status.as_ref().map(|s| s.phase.as_str()), Some("Running"));

    // Readiness follows the probe both ways, promptly: within a few
    // one-second periods (about one on an idle machine).
    exec(&cluster, "unready", &["touch", "/tmp/ready"]).await?;
    cluster
        .wait_pod(
            "unready",
            Duration::from_secs(5),
            "Ready once the probe passes",
            is_ready,
        )
        .await?;
    exec(&cluster, "unready", &["rm", "/tmp/ready"]).await?;
    let pod = cluster
        .wait_pod(
            "unready",
            Duration::from_secs(5),
            "not Ready once it fails",
            is_not_ready,
        )
        .await?;
    assert_eq!(status(&pod).restart_count, 0, "readiness never restarts");
    Ok(())
}

#[tokio::test]
async fn passing_readiness_probes_make_pods_ready() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let server = "mkdir -p /www && echo ok > /www/index.html && sleep 1 && exec httpd -f -p 8080 -h /www";
    let http = container(
        "web",
        server,
        "ports: [{name: http, containerPort: 8080}]\nreadinessProbe:\n  httpGet: {path: /index.html, port: http}\n  periodSeconds: 1\n",
    );
    let tcp = container(
        "web",
        server,
        "readinessProbe:\n  tcpSocket: {port: 8080}\n  periodSeconds: 1\n",
    );
    let exec = container(
        "app",
        "touch /tmp/ready; exec sleep 3600",
        "readinessProbe:\n  exec: {command: [cat, /tmp/ready]}\n  periodSeconds: 1\n",
    );
    for (name, spec) in [("http", &http), ("tcp", &tcp), ("exec", &exec)] {
        create(&cluster, &pod_yaml(name, "", spec)).await?;
    }
    for name in ["http", "tcp", "exec"] {
        let pod = cluster
            .wait_pod(name, Duration::from_secs(30), &format!("{name} to be Ready"), is_ready)
            .await?;
        assert_eq!(status(&pod).restart_count, 0, "{name}");
    }
    let out = ctl(&cluster.servers(), &["get", "pods"], "").await;
    assert_eq!(out.stdout.matches("1/1").count(), 3, "{out:?}");
    Ok(())
}

#[tokio::test]
async fn a_startup_probe_holds_off_liveness_and_restarts_a_container_that_never_starts() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    // Liveness alone would kill it in its first seconds.
    let slow = container(
        "app",
        "sleep 4; touch /tmp/started; exec sleep 3600",
        "startupProbe:\n  exec: {command: [cat, /tmp/started]}\n  periodSeconds: 1\n  failureThreshold: 20\nlivenessProbe:\n  exec: {command: [cat, /tmp/started]}\n  periodSeconds: 1\n  failureThreshold: 1\n",
    );
    let never = container(
        "app",
        "exec sleep 3600",
        "startupProbe:\n  exec: {command: [cat, /tmp/started]}\n  periodSeconds: 1\n  failureThreshold: 2\n",
    );
    let spec = "  terminationGracePeriodSeconds: 1\n";
    create(&cluster, &pod_yaml("slow", spec, &slow)).await?;
    create(&cluster, &pod_yaml("never", spec, &never)).await?;

    cluster
        .wait_pod("slow", Duration::from_secs(30), "slow to run, not yet started", |p| {
            is_running(p) && status(p).started == Some(false) && is_not_ready(p)
        })
        .await?;
    cluster
        .wait_pod("slow", Duration::from_secs(30), "slow to start and be Ready", |p| {
            status(p).started == Some(true) && is_ready(p)
        })
        .await?;
    holds_for(
        &cluster,
        "slow",
        Duration::from_secs(3),
        "slow Ready without restarts",
        |p| is_ready(p) && status(p).restart_count == 0,
    )
    .await?;

    let pod = cluster
        .wait_pod("never", Duration::from_secs(60), "never to be restarted", |p| {
            status(p).restart_count >= 1
        })
        .await?;
    ensure!(!is_ready(&pod), "a container that never started is not ready");
    Ok(())
}
