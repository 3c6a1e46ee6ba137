//! Real masters, real node agents, real Docker: pods run, share localhost,
//! publish host ports, log, exec, crash and back off, stop gracefully, and
//! survive the agent's death; nodes go NotReady without heartbeats and
//! report an unreachable Docker engine.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE};
use bosun_integration_tests::{ctl, wait_until};
use bosun_proto::api::{ContainerStatus, Pod};

fn pod_yaml(name: &str, node: &str, extra_spec: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n{extra_spec}  containers:\n{containers}"
    )
}

fn container(name: &str, script: &str) -> String {
    format!(
        "    - name: {name}\n      image: {TEST_IMAGE}\n      imagePullPolicy: Never\n      command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().map_or("", |s| s.phase.as_str())
}

fn statuses(pod: &Pod) -> Vec<ContainerStatus> {
    pod.status
        .as_ref()
        .map(|s| s.container_statuses.clone())
        .unwrap_or_default()
}

fn waiting_reason(pod: &Pod) -> String {
    statuses(pod)
        .first()
        .and_then(|s| s.state.clone()?.waiting)
        .map(|w| w.reason)
        .unwrap_or_default()
}

fn running(pod: &Pod) -> bool {
    phase(pod) == "Running" && statuses(pod).iter().all(|s| s.ready)
}

async fn create(cluster: &TestCluster, yaml: &str) -> Result<()> {
    let out = ctl(&cluster.servers(), &["create", "-f", "-"], yaml).await;
    ensure!(out.ok(), "create failed: {out:?}");
    Ok(())
}

/// The page served on `port` of this host, once it answers.
async fn host_port_page(port: u16) -> Result<String> {
    wait_until(Duration::from_secs(20), "the host port to answer", || async move {
        let output = tokio::process::Command::new("wget")
            .args(["-q", "-O-", &format!("http://127.0.0.1:{port}/")])
            .output()
            .await?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
    })
    .await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_pod_runs_with_an_ip_its_containers_share_localhost_and_publish_host_ports() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let port = free_port();
    let web = format!(
        "{}      ports: [{{containerPort: 8080, hostPort: {port}}}]\n",
        container(
            "web",
            "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"
        )
    );
    // $(VAR) in env values and in the command is expanded by the agent,
    // as in Kubernetes (a shell would run `$(TARGET)` as a command).
    let client = format!(
        "{}      env:\n        - {{name: PORT, value: \"8080\"}}\n        - {{name: TARGET, value: \"http://localhost:$(PORT)/\"}}\n",
        container(
            "client",
            "until wget -q -O- $(TARGET); do sleep 0.2; done; exec sleep 3600"
        )
    );
    create(&cluster, &pod_yaml("web", "node-a", "", &format!("{web}{client}"))).await?;
    let pod = cluster
        .wait_pod("web", Duration::from_secs(30), "the pod to run", running)
        .await?;
    let status = pod.status.unwrap();
    ensure!(!status.pod_ip.is_empty(), "pod IP set");
    assert_eq!(status.host_ip, "127.0.0.1");
    assert!(status
        .conditions
        .iter()
        .any(|c| c.r#type == "Ready" && c.status == "True"));

    // The sidecar fetched the page over localhost.
    let servers = cluster.servers();
    wait_until(Duration::from_secs(20), "the client's log to show the page", || async {
        let out = ctl(&servers, &["logs", "web", "-c", "client"], "").await;
        Ok(out.stdout.contains("hello-from-web").then_some(()))
    })
    .await?;
    // The host port reaches the pod.
    let body = host_port_page(port).await?;
    assert_eq!(body.trim(), "hello-from-web");

    let out = ctl(&servers, &["get", "pods", "-o", "wide"], "").await;
    assert!(
        out.stdout.contains("2/2") && out.stdout.contains("Running") && out.stdout.contains("node-a"),
        "{out:?}"
    );

    // `describe pod` in kubectl's layout, from the agent's status.
    let out = ctl(&servers, &["describe", "pod", "web"], "").await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    for expected in [
        "Name:         web",
        "Node:         node-a/127.0.0.1",
        "Status:       Running",
        &format!("IP:           {}", status.pod_ip),
        "Containers:",
        "  web:",
        "  client:",
        "    State:          Running",
        "    Ready:          True",
        "    Restart Count:  0",
        "      PORT:    8080",
        "QoS Class:          BestEffort",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{}", out.stdout);
    }
    for words in [
        &format!("Host Port: {port}/TCP"),
        "Ready True",
        "ContainersReady True",
        "PodScheduled True",
    ] {
        assert!(has_line(&out.stdout, words), "missing {words:?} in\n{}", out.stdout);
    }
    assert!(
        lines.iter().any(|l| l.starts_with("    Container ID:  docker://")),
        "{}",
        out.stdout
    );
    Ok(())
}

/// Whether some line of `text` starts with these words (columns aligned
/// with any number of spaces).
/// The address container `id` has on its networks, from `docker inspect`.
fn container_ip(id: &str) -> Result<String> {
    let output = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            id,
        ])
        .output()?;
    ensure!(output.status.success(), "docker inspect {id}: {output:?}");
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[tokio::test]
async fn a_pod_of_one_container_is_one_container_that_keeps_its_address_across_restarts() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let servers = cluster.servers();
    let port = free_port();
    let web = format!(
        "{}      ports: [{{containerPort: 8080, hostPort: {port}}}]
      readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
",
        container(
            "web",
            "mkdir -p /www && hostname > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"
        )
    );
    create(
        &cluster,
        &pod_yaml(
            "solo",
            "node-a",
            "  terminationGracePeriodSeconds: 1
",
            &web,
        ),
    )
    .await?;
    let pod = cluster
        .wait_pod("solo", Duration::from_secs(30), "solo to run and be ready", running)
        .await?;
    let uid = pod.metadata.clone().unwrap_or_default().uid;
    let pod_ip = pod.status.clone().unwrap_or_default().pod_ip;
    let containers = cluster.containers("io.bosun.pod.uid", &uid)?;
    ensure!(containers.len() == 1, "one container and no sandbox: {containers:?}");
    ensure!(
        container_ip(&containers[0].0)? == pod_ip,
        "the container holds the pod IP {pod_ip}"
    );

    // Its host port, logs and exec work as a sandboxed pod's do; its
    // hostname is the pod's name.
    let body = host_port_page(port).await?;
    ensure!(body.trim() == "solo", "{body:?}");
    let out = ctl(&servers, &["logs", "solo"], "").await;
    ensure!(out.ok() && out.stdout.contains("serving"), "{out:?}");
    let out = ctl(&servers, &["exec", "solo", "--", "sh", "-c", "exit 3"], "").await;
    ensure!(
        out.error.as_deref() == Some("command terminated with exit code 3"),
        "{out:?}"
    );

    // Killed behind the agent's back: a new container, at the same address,
    // ready again through its probe; the old one stays for `logs --previous`.
    let killed = std::process::Command::new("docker")
        .args(["kill", &containers[0].0])
        .output()?;
    ensure!(killed.status.success(), "docker kill failed");
    let pod = cluster
        .wait_pod("solo", Duration::from_secs(30), "solo to be restarted and ready", |p| {
            statuses(p).first().is_some_and(|s| s.restart_count >= 1) && running(p)
        })
        .await?;
    ensure!(
        pod.status.unwrap_or_default().pod_ip == pod_ip,
        "the same pod IP after a restart"
    );
    let containers = cluster.containers("io.bosun.pod.uid", &uid)?;
    let live: Vec<_> = containers.iter().filter(|c| c.2 == "running").collect();
    ensure!(live.len() == 1 && containers.len() == 2, "{containers:?}");
    ensure!(container_ip(&live[0].0)? == pod_ip, "the new container holds {pod_ip}");
    let out = ctl(&servers, &["logs", "solo", "--previous"], "").await;
    ensure!(out.ok() && out.stdout.contains("serving"), "{out:?}");

    let out = ctl(&servers, &["delete", "pod", "solo"], "").await;
    ensure!(out.ok(), "{out:?}");
    ensure!(cluster.containers("io.bosun.pod.uid", &uid)?.is_empty(), "all removed");
    Ok(())
}

fn has_line(text: &str, words: &str) -> bool {
    let wanted: Vec<&str> = words.split_whitespace().collect();
    text.lines()
        .any(|line| line.split_whitespace().take(wanted.len()).eq(wanted.iter().copied()))
}

#[tokio::test]
async fn logs_follow_and_exec_pass_output_and_exit_codes() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let ticker = container(
        "ticker",
        "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
    );
    create(&cluster, &pod_yaml("ticker", "node-a", "", &ticker)).await?;
    cluster
        .wait_pod("ticker", Duration::from_secs(30), "the pod to run", running)
        .await?;
    let servers = cluster.servers();

    // -f keeps streaming: lines written after it started keep arriving.
    let mut follow = tokio::process::Command::new(bosun_integration_tests::bin_dir().join("ctl"))
        .args(["--server", &servers.join(","), "logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(follow.stdout.take().context("stdout")?));
    let first = lines.next_line().await?.context("a first line")?;
    let first: u32 = first.trim_start_matches("tick-").parse()?;
    let mut last = first;
    while last < first + 10 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the next line from logs -f")??
            .context("logs -f ended")?;
        last = line.trim_start_matches("tick-").parse()?;
    }
    follow.kill().await?;
    let out = ctl(&servers, &["logs", "ticker", "--timestamps", "--tail", "2"], "").await;
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");
    assert!(out.stdout.starts_with("20"), "timestamps first: {out:?}");
    // --since keeps the last seconds of output, --since-time from a time.
    let total = wait_until(Duration::from_secs(20), "30 lines of output", || {
        let servers = servers.clone();
        async move {
            let out = ctl(&servers, &["logs", "ticker"], "").await;
            let lines = out.stdout.lines().count();
            Ok((lines >= 30).then_some(lines))
        }
    })
    .await?;
    let out = ctl(&servers, &["logs", "ticker", "--since", "1s"], "").await;
    let recent = out.stdout.lines().count();
    assert!(recent > 0 && recent < total, "{recent} of {total}: {out:?}");
    let out = ctl(
        &servers,
        &["logs", "ticker", "--since-time", "2100-01-01T00:00:00Z"],
        "",
    )
    .await;
    assert!(out.ok() && out.stdout.is_empty(), "{out:?}");
    let out = ctl(&servers, &["logs", "ticker", "--since-time", "yesterday"], "").await;
    assert!(out.error.as_deref().is_some_and(|e| e.contains("RFC 3339")), "{out:?}");

    // By label, each line prefixed with its pod and container.
    let out = ctl(&servers, &["label", "pod", "ticker", "app=tick"], "").await;
    assert!(out.ok(), "{out:?}");
    let out = ctl(&servers, &["logs", "-l", "app=tick", "--prefix", "--tail", "2"], "").await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.len() == 2 && lines.iter().all(|l| l.starts_with("[pod/ticker/ticker] tick-")),
        "{out:?}"
    );
    let out = ctl(
        &servers,
        &["logs", "-l", "app=tick", "-f", "--max-log-requests", "0"],
        "",
    )
    .await;
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("maximum allowed concurrency is 0")),
        "following more pods than allowed is refused: {out:?}"
    );

    let out = ctl(
        &servers,
        &[
            "exec",
            "ticker",
            "--",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exit 7",
        ],
        "",
    )
    .await;
    assert_eq!(out.stdout, "to-stdout\n");
    assert_eq!(out.stderr, "to-stderr\n");
    assert_eq!(out.error.as_deref(), Some("command terminated with exit code 7"));
    let out = ctl(&servers, &["exec", "-i", "ticker", "--", "tr", "a-z", "A-Z"], "shout\n").await;
    assert_eq!(out.stdout, "SHOUT\n", "{out:?}");
    assert!(out.ok());

    // The binary passes the exit code through.
    let status = std::process::Command::new(bosun_integration_tests::bin_dir().join("ctl"))
        .args([
            "--server",
            &servers.join(","),
            "exec",
            "ticker",
            "--",
            "sh",
            "-c",
            "exit 42",
        ])
        .status()?;
    assert_eq!(status.code(), Some(42));

    // cp: a file and a directory in, a file back out.
    let local = tempfile::tempdir()?;
    std::fs::write(local.path().join("note.txt"), "hello-cp\n")?;
    std::fs::create_dir_all(local.path().join("tree/sub"))?;
    std::fs::write(local.path().join("tree/sub/leaf.txt"), "leaf\n")?;
    let path = |name: &str| local.path().join(name).display().to_string();
    let out = ctl(&servers, &["cp", &path("note.txt"), "ticker:/tmp/copied.txt"], "").await;
    assert!(out.ok(), "{out:?}");
    let out = ctl(&servers, &["cp", &path("tree"), "default/ticker:/tmp/tree"], "").await;
    assert!(out.ok(), "{out:?}");
    let out = ctl(
        &servers,
        &[
            "exec",
            "ticker",
            "--",
            "cat",
            "/tmp/copied.txt",
            "/tmp/tree/sub/leaf.txt",
        ],
        "",
    )
    .await;
    assert_eq!(out.stdout, "hello-cp\nleaf\n", "{out:?}");
    let out = ctl(&servers, &["cp", "ticker:/tmp/copied.txt", &path("back.txt")], "").await;
    assert!(out.ok(), "{out:?}");
    assert_eq!(std::fs::read_to_string(local.path().join("back.txt"))?, "hello-cp\n");
    let out = ctl(&servers, &["cp", "ticker:/nonexistent", &path("nothing")], "").await;
    assert!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("tar in the container exited")),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_crashing_container_backs_off_with_growing_delays() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let crash = container("crash", "echo crashing; exit 1");
    create(&cluster, &pod_yaml("crash", "node-a", "", &crash)).await?;
    let pod = cluster
        .wait_pod("crash", Duration::from_secs(40), "four restarts", |p| {
            statuses(p).first().is_some_and(|s| s.restart_count >= 4)
        })
        .await?;
    let uid = pod.metadata.unwrap().uid;
    let servers = cluster.servers();
    // Right after a restart the container runs for a moment; the back-off
    // shows once it has crashed again.
    wait_until(Duration::from_secs(20), "CrashLoopBackOff in ctl get", || async {
        let out = ctl(&servers, &["get", "pod", "crash"], "").await;
        Ok(out.stdout.contains("CrashLoopBackOff").then_some(()))
    })
    .await?;
    // Start times of the attempts, from the engine.
    let mut starts = Vec::new();
    for (id, _, _) in cluster.containers("io.bosun.container", "crash")? {
        let output = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{index .Config.Labels \"io.bosun.pod.uid\"}} {{index .Config.Labels \"io.bosun.attempt\"}} {{.State.StartedAt}}", &id])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let mut parts = text.split(' ');
        if parts.next() != Some(uid.as_str()) {
            continue;
        }
        let attempt: u32 = parts.next().context("attempt")?.parse()?;
        let started: prost_types::Timestamp = parts
            .next()
            .context("start")?
            .parse()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        starts.push((attempt, started.seconds as f64 + f64::from(started.nanos) / 1e9));
    }
    starts.sort_by_key(|(attempt, _)| *attempt);
    // Only the newest two attempts are kept; their gap reflects a back-off
    // that has grown from 0.5 s to at least 2 s by the fourth restart.
    ensure!(starts.len() >= 2, "attempts kept: {starts:?}");
    let gap = starts[starts.len() - 1].1 - starts[starts.len() - 2].1;
    ensure!(gap >= 1.8, "back-off grew: gap {gap:.2}s between attempts {starts:?}");
    let out = ctl(&servers, &["logs", "crash", "--previous"], "").await;
    assert_eq!(out.stdout, "crashing\n", "{out:?}");
    // Each back-off is counted into one event, which `describe` shows.
    let event = cluster
        .wait_event(
            "crash",
            "BackOff",
            "Back-off restarting failed container crash in pod crash_default",
            2,
        )
        .await?;
    assert_eq!(event.r#type, "Warning");
    assert_eq!(event.source.unwrap_or_default().host, "node-a");
    let out = ctl(&servers, &["describe", "pod", "crash"], "").await;
    assert!(
        out.stdout.contains("BackOff") && out.stdout.contains(" (x"),
        "counted as kubectl shows it: {out:?}"
    );
    // The crashed attempt is the container's last state.
    for words in ["Last State: Terminated", "Exit Code: 1", "Ready: False"] {
        assert!(has_line(&out.stdout, words), "missing {words:?} in\n{}", out.stdout);
    }
    Ok(())
}

#[tokio::test]
async fn restart_policies_on_failure_and_never_behave_as_in_kubernetes() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let cases = [
        ("onfailure-ok", "OnFailure", "exit 0", "Succeeded"),
        ("never-ok", "Never", "exit 0", "Succeeded"),
        ("never-fails", "Never", "exit 3", "Failed"),
    ];
    for (name, policy, script, _) in cases {
        let spec = format!("  restartPolicy: {policy}\n");
        create(&cluster, &pod_yaml(name, "node-a", &spec, &container("job", script))).await?;
    }
    let spec = "  restartPolicy: OnFailure\n";
    create(
        &cluster,
        &pod_yaml("onfailure-fails", "node-a", spec, &container("job", "exit 3")),
    )
    .await?;
    for (name, _, _, expected) in cases {
        let pod = cluster
            .wait_pod(name, Duration::from_secs(30), expected, |p| phase(p) == expected)
            .await?;
        assert_eq!(statuses(&pod)[0].restart_count, 0, "{name} never restarts");
        let terminated = statuses(&pod)[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .context("terminated")?;
        assert_eq!(
            terminated.reason,
            if expected == "Succeeded" { "Completed" } else { "Error" }
        );
        // A finished pod gives back its address; its exited container
        // stays for `logs`.
        let uid = pod.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default();
        wait_until(
            Duration::from_secs(20),
            "the finished pod's container alone, exited",
            || {
                let containers = cluster.containers("io.bosun.pod.uid", &uid);
                async move {
                    let containers = containers?;
                    Ok((containers.len() == 1 && containers[0].2 == "exited").then_some(()))
                }
            },
        )
        .await
        .with_context(|| format!("{name}: {:?}", cluster.containers("io.bosun.pod.uid", &uid)))?;
        let logs = ctl(&cluster.servers(), &["logs", name], "").await;
        assert!(logs.ok(), "{name}: {logs:?}");
    }
    cluster
        .wait_pod(
            "onfailure-fails",
            Duration::from_secs(30),
            "OnFailure to restart a failure",
            |p| statuses(p).first().is_some_and(|s| s.restart_count >= 1) && phase(p) == "Running",
        )
        .await?;

    // `ctl run` makes such a pod from flags; the scheduler places it.
    let servers = cluster.servers();
    let out = ctl(
        &servers,
        &[
            "run",
            "once",
            &format!("--image={TEST_IMAGE}"),
            "--restart=Never",
            "--command",
            "--",
            "sh",
            "-c",
            "echo from-run",
        ],
        "",
    )
    .await;
    ensure!(out.ok() && out.stdout == "pod/once created\n", "{out:?}");
    cluster
        .wait_pod("once", Duration::from_secs(30), "the run pod to succeed", |p| {
            phase(p) == "Succeeded"
        })
        .await?;
    let out = ctl(&servers, &["logs", "once"], "").await;
    ensure!(out.stdout == "from-run\n", "{out:?}");
    Ok(())
}

#[tokio::test]
async fn deletion_sends_sigterm_and_honours_the_grace_period() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let servers = cluster.servers();
    // Traps SIGTERM and takes a second to finish.
    let polite = container(
        "app",
        "trap 'echo got-term; sleep 1; exit 0' TERM; while true; do sleep 0.1; done",
    );
    create(
        &cluster,
        &pod_yaml("polite", "node-a", "  terminationGracePeriodSeconds: 20\n", &polite),
    )
    .await?;
    // Ignores SIGTERM: only SIGKILL after the grace period ends it.
    let stubborn = container("app", "trap '' TERM; while true; do sleep 0.1; done");
    create(
        &cluster,
        &pod_yaml("stubborn", "node-a", "  terminationGracePeriodSeconds: 30\n", &stubborn),
    )
    .await?;
    cluster
        .wait_pod("polite", Duration::from_secs(30), "polite to run", running)
        .await?;
    cluster
        .wait_pod("stubborn", Duration::from_secs(30), "stubborn to run", running)
        .await?;

    let started = Instant::now();
    let out = ctl(&servers, &["delete", "pod", "polite"], "").await;
    assert!(out.ok(), "{out:?}");
    let took = started.elapsed();
    ensure!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "polite stopped on SIGTERM after its handler ran, not at once and not at the grace period: {took:?}"
    );

    // --grace-period shortens the pod's 30 s.
    let started = Instant::now();
    let out = ctl(&servers, &["delete", "pod", "stubborn", "--grace-period", "2"], "").await;
    assert!(out.ok(), "{out:?}");
    let took = started.elapsed();
    ensure!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "stubborn was killed after the 2 s grace period: {took:?}"
    );
    ensure!(
        cluster.containers("io.bosun.pod.name", "stubborn")?.is_empty(),
        "containers removed"
    );

    // --force removes the object at once; the agent cleans up behind it.
    let forced = container("app", "trap '' TERM; while true; do sleep 0.1; done");
    create(&cluster, &pod_yaml("forced", "node-a", "", &forced)).await?;
    cluster
        .wait_pod("forced", Duration::from_secs(30), "forced to run", running)
        .await?;
    let out = ctl(&servers, &["delete", "pod", "forced", "--force"], "").await;
    assert!(out.ok(), "{out:?}");
    ensure!(cluster.pod("forced").await.is_err(), "the object is gone at once");
    wait_until(Duration::from_secs(30), "forced's containers to be removed", || async {
        Ok(cluster
            .containers("io.bosun.pod.name", "forced")?
            .is_empty()
            .then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_restarted_agent_adopts_its_containers_and_cleans_up_deleted_pods() -> Result<()> {
    let mut cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let servers = cluster.servers();
    create(
        &cluster,
        &pod_yaml("keep", "node-a", "", &container("app", "exec sleep 3600")),
    )
    .await?;
    create(
        &cluster,
        &pod_yaml(
            "drop",
            "node-a",
            "  terminationGracePeriodSeconds: 1\n",
            &container("app", "exec sleep 3600"),
        ),
    )
    .await?;
    cluster
        .wait_pod("keep", Duration::from_secs(30), "keep to run", running)
        .await?;
    cluster
        .wait_pod("drop", Duration::from_secs(30), "drop to run", running)
        .await?;
    let before = cluster.containers("io.bosun.pod.name", "keep")?;
    assert_eq!(before.len(), 1, "one container, holding the pod's address: {before:?}");

    cluster.kill_agent("node-a")?;
    let out = ctl(&servers, &["delete", "pod", "drop", "--wait=false"], "").await;
    assert!(out.ok(), "{out:?}");
    cluster.restart_agent("node-a")?;

    wait_until(
        Duration::from_secs(30),
        "drop's containers to be removed and the pod deleted",
        || async {
            let gone =
                cluster.containers("io.bosun.pod.name", "drop")?.is_empty() && cluster.pod("drop").await.is_err();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    let pod = cluster
        .wait_pod("keep", Duration::from_secs(30), "keep to be reported", running)
        .await?;
    let mut after = cluster.containers("io.bosun.pod.name", "keep")?;
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(after, before, "the same containers keep running, no duplicates");
    assert_eq!(statuses(&pod)[0].restart_count, 0, "adoption is not a restart");

    // A container killed behind the agent's back is restarted and counted.
    let (app_id, _, _) = after
        .iter()
        .find(|(_, name, _)| name.contains("_app_"))
        .cloned()
        .context("app container")?;
    std::process::Command::new("docker").args(["kill", &app_id]).output()?;
    cluster
        .wait_pod(
            "keep",
            Duration::from_secs(30),
            "the killed container to restart",
            |p| running(p) && statuses(p)[0].restart_count == 1,
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_node_without_heartbeats_becomes_not_ready_and_recovers() -> Result<()> {
    let cluster = TestCluster::start(1, &["--node-grace-seconds", "2"], &["node-a"], &[]).await?;
    cluster.signal_agent("node-a", "STOP")?;
    let stopped = Instant::now();
    let node = cluster.wait_node_ready("node-a", false).await?;
    let took = stopped.elapsed();
    ensure!(
        took < Duration::from_secs(6),
        "NotReady within the grace period (plus a check): {took:?}"
    );
    let ready = node
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("Unknown", "NodeStatusUnknown")
    );
    let out = ctl(&cluster.servers(), &["get", "nodes"], "").await;
    assert!(out.stdout.contains("NotReady"), "{out:?}");
    cluster.signal_agent("node-a", "CONT")?;
    cluster.wait_node_ready("node-a", true).await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_pull_shows_err_image_pull_then_image_pull_back_off() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    let yaml = pod_yaml(
        "missing",
        "node-a",
        "",
        "    - name: app\n      image: bosun-test/does-not-exist:1\n      imagePullPolicy: IfNotPresent\n",
    );
    create(&cluster, &yaml).await?;
    let pod = cluster
        .wait_pod("missing", Duration::from_secs(60), "ImagePullBackOff", |p| {
            waiting_reason(p) == "ImagePullBackOff"
        })
        .await?;
    let message = statuses(&pod)[0].state.clone().unwrap().waiting.unwrap().message;
    assert!(
        message.contains("failed to pull image \"bosun-test/does-not-exist:1\""),
        "{message}"
    );
    assert_eq!(phase(&pod), "Pending");
    cluster
        .wait_event(
            "missing",
            "Failed",
            "failed to pull image \"bosun-test/does-not-exist:1\"",
            1,
        )
        .await?;
    cluster
        .wait_event(
            "missing",
            "BackOff",
            "Back-off pulling image \"bosun-test/does-not-exist:1\"",
            1,
        )
        .await?;
    Ok(())
}

/// A Unix socket that forwards to the real Docker socket and can be cut,
/// to make the engine unreachable for one agent only.
struct DockerProxy {
    path: std::path::PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DockerProxy {
    fn start(path: std::path::PathBuf) -> Result<DockerProxy> {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut engine) = tokio::net::UnixStream::connect("/var/run/docker.sock").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut engine).await;
                    }
                });
            }
        });
        Ok(DockerProxy { path, task: Some(task) })
    }

    /// Cuts every connection and refuses new ones.
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_engine_makes_the_node_not_ready_until_it_returns() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("docker.sock");
    let mut proxy = DockerProxy::start(socket.clone())?;
    let host = format!("unix://{}", socket.display());
    let cluster = TestCluster::start(1, &[], &["node-a"], &["--docker-host", &host]).await?;
    create(
        &cluster,
        &pod_yaml("steady", "node-a", "", &container("app", "exec sleep 3600")),
    )
    .await?;
    cluster
        .wait_pod("steady", Duration::from_secs(30), "steady to run", running)
        .await?;

    proxy.cut();
    let node = cluster.wait_node_ready("node-a", false).await?;
    let ready = node
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "RuntimeUnavailable")
    );
    // A pod bound meanwhile waits for the engine.
    create(
        &cluster,
        &pod_yaml("later", "node-a", "", &container("app", "exec sleep 3600")),
    )
    .await?;

    let _proxy = DockerProxy::start(socket)?;
    cluster.wait_node_ready("node-a", true).await?;
    cluster
        .wait_pod("later", Duration::from_secs(30), "the later pod to run", running)
        .await?;
    let steady = cluster.pod("steady").await?;
    assert!(running(&steady), "pods kept running through the outage");
    assert_eq!(statuses(&steady)[0].restart_count, 0);
    Ok(())
}

#[tokio::test]
async fn exec_it_gives_an_interactive_terminal() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["node-a"], &[]).await?;
    create(
        &cluster,
        &pod_yaml("shell", "node-a", "", &container("app", "exec sleep 3600")),
    )
    .await?;
    cluster
        .wait_pod("shell", Duration::from_secs(30), "the pod to run", running)
        .await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/exec_tty.py");
    let ctl = bosun_integration_tests::bin_dir().join("ctl");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&ctl)
        .arg(cluster.servers().join(","))
        .arg("shell")
        .output()
        .await?;
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(5),
        "the shell's exit code: {shown} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shown.contains("/dev/pts/"), "the command ran on a terminal: {shown}");
    assert!(shown.contains("interactive-42"), "{shown}");
    Ok(())
}
