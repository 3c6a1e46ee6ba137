//! The docker-compose cluster as a user runs it, from `docker-compose.yml`
//! and images built by `dev.sh images` of the suite's own binaries (a tag
//! per run), under a project name of its own, on any free host ports and
//! with a pod network of its own, so it runs beside a user's cluster and
//! other tests.
//!
//! A Deployment with an HTTP readiness probe becomes Available (the agent
//! in its container reaches its pods), the cluster still takes writes with
//! one master container killed, a new cluster started after `down -v`
//! removes the old cluster's pods, and `--cleanup` then `down -v` leave no
//! container behind. A guard tears everything down also when the test
//! fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bosun_integration_tests::agents::{ensure_test_image, TEST_IMAGE, TEST_LABEL};
use bosun_integration_tests::{bin_dir, channel, ctl, wait_until};
use bosun_proto::api::cluster_client::ClusterClient;
use bosun_proto::api::ClusterStatusRequest;
use tempfile::TempDir;

const MASTERS: [&str; 3] = ["master-1", "master-2", "master-3"];
const IMAGES: [&str; 3] = ["master", "node-agent", "ctl"];
/// The node name `docker-compose.yml` gives its agent.
const NODE: &str = "compose-node";
/// Long, for a 2-core machine building and testing at once.
const TIMEOUT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds integration-tests")
        .to_path_buf()
}

/// `docker-compose` (v1) or `docker compose` (v2), whichever is here.
fn compose_command() -> Result<Vec<String>> {
    let candidates: [&[&str]; 2] = [&["docker-compose"], &["docker", "compose"]];
    for candidate in candidates {
        let works = Command::new(candidate[0])
            .args(&candidate[1..])
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Ok(candidate.iter().map(|s| s.to_string()).collect());
        }
    }
    bail!("neither docker-compose nor docker compose is installed")
}

fn checked(what: &str, output: std::io::Result<Output>) -> Result<String> {
    let output = output.with_context(|| format!("running {what}"))?;
    ensure!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Container ids from `docker ps -aq` with a label filter.
fn containers_labelled(label: &str) -> Vec<String> {
    bosun_integration_tests::agents::labelled(&["ps", "-aq", "--no-trunc"], label)
}

/// One compose project, its images and its pod network; all removed on
/// drop.
struct Compose {
    command: Vec<String>,
    project: String,
    /// The value of [`TEST_LABEL`] on the agent's pod containers.
    run: String,
    tag: String,
    network: String,
    /// The override file and manifests; the directory `ctl` runs in.
    dir: TempDir,
}

impl Compose {
    fn new() -> Result<Compose> {
        let command = compose_command()?;
        let dir = TempDir::with_prefix("bosun-test-compose-")?;
        let run: String = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let compose = Compose {
            command,
            project: format!("bosun-test-{run}"),
            tag: format!("test-{run}"),
            network: format!("bosun-test-{run}"),
            run,
            dir,
        };
        // The agent's own settings for this run: a pod network of its own
        // and the test label on its containers, for the guard.
        std::fs::write(
            compose.dir.path().join("override.yml"),
            format!(
                "services:\n  agent:\n    environment:\n      BOSUN_NETWORK: {}\n      BOSUN_CONTAINER_LABELS: {TEST_LABEL}={}\n",
                compose.network, compose.run
            ),
        )?;
        Ok(compose)
    }

    /// Builds this run's images from the suite's binaries.
    fn build_images(&self) -> Result<()> {
        let script = repo_root().join("integration-tests/dev.sh");
        checked(
            "dev.sh images",
            Command::new(script)
                .args(["images", "--bin-dir"])
                .arg(bin_dir())
                .args(["--tag", &self.tag])
                .stdin(Stdio::null())
                .output(),
        )?;
        Ok(())
    }

    /// A compose command line for this project, run in [`Self::dir`].
    fn cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .args(["-p", &self.project, "-f"])
            .arg(repo_root().join("docker-compose.yml"))
            .arg("-f")
            .arg(self.dir.path().join("override.yml"))
            .args(args)
            .current_dir(self.dir.path())
            .env("PWD", self.dir.path())
            .env("BOSUN_TAG", &self.tag)
            .stdin(Stdio::null());
        // Any free host ports: never the user's 7420-7422.
        for index in 1..=MASTERS.len() {
            command.env(format!("BOSUN_MASTER_{index}_PORT"), "");
        }
        command
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        checked(&format!("compose {}", args.join(" ")), self.cmd(args).output())
    }

    /// The masters' published addresses on the host.
    fn servers(&self) -> Result<Vec<String>> {
        MASTERS
            .iter()
            .map(|m| {
                let out = self.run(&["port", m, "7420"])?;
                let addr = out.trim().to_string();
                ensure!(!addr.is_empty() && !addr.ends_with(":0"), "no port published for {m}");
                Ok(addr)
            })
            .collect()
    }

    fn logs(&self, service: &str) -> String {
        self.run(&["logs", "--no-color", "--tail", "60", service])
            .unwrap_or_else(|e| format!("{e:#}"))
    }

    /// The agent's pod containers of this run.
    fn pod_containers(&self) -> Vec<String> {
        containers_labelled(&format!("{TEST_LABEL}={}", self.run))
    }

    fn project_containers(&self) -> Vec<String> {
        containers_labelled(&format!("com.docker.compose.project={}", self.project))
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.cmd(&["down", "-v", "--remove-orphans"]).output();
        let leftover: Vec<String> = self
            .project_containers()
            .into_iter()
            .chain(self.pod_containers())
            .collect();
        if !leftover.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&leftover).output();
        }
        let _ = Command::new("docker").args(["network", "rm", &self.network]).output();
        for name in IMAGES {
            let _ = Command::new("docker")
                .args(["rmi", &format!("bosun/{name}:{}", self.tag)])
                .output();
        }
    }
}

/// Waits until the masters answer and the agent's node is Ready.
async fn wait_ready(compose: &Compose) -> Result<Vec<String>> {
    let servers = wait_until(TIMEOUT, "the masters' published ports", || async {
        compose.servers().map(Some)
    })
    .await?;
    let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
    let ready = wait_until(TIMEOUT, "the compose node to be Ready", || async {
        let out = ctl(&servers, &["get", "node", NODE, "-o", jsonpath], "").await;
        Ok((out.ok() && out.stdout.trim() == "True").then_some(()))
    })
    .await;
    if let Err(e) = ready {
        bail!(
            "{e:#}\nmaster-1:\n{}\nagent:\n{}",
            compose.logs("master-1"),
            compose.logs("agent")
        );
    }
    Ok(servers)
}

/// Waits until the Deployment `web` has `replicas` ready replicas and is
/// Available.
async fn wait_available(compose: &Compose, servers: &[String], replicas: usize) -> Result<()> {
    let ready = format!("--for=jsonpath={{.status.readyReplicas}}={replicas}");
    for condition in [ready.as_str(), "--for=condition=Available"] {
        let out = ctl(servers, &["wait", condition, "deploy/web", "--timeout", "120s"], "").await;
        if !out.ok() {
            let pods = ctl(servers, &["get", "pods", "-o", "wide"], "").await;
            let events = ctl(servers, &["get", "events"], "").await;
            bail!(
                "deploy/web not {condition}: {out:?}\npods:\n{}\nevents:\n{}\nagent:\n{}",
                pods.stdout,
                events.stdout,
                compose.logs("agent")
            );
        }
    }
    Ok(())
}

async fn leader_id(servers: &[String]) -> Result<u64> {
    wait_until(Duration::from_secs(30), "a leader", || async {
        for server in servers {
            if let Ok(status) = async {
                let mut client = ClusterClient::new(channel(server).await?);
                anyhow::Ok(client.status(ClusterStatusRequest {}).await?.into_inner())
            }
            .await
            {
                if status.leader_id > 0 {
                    return Ok(Some(status.leader_id));
                }
            }
        }
        Ok(None)
    })
    .await
}

fn deployment() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: {TEST_IMAGE}
          imagePullPolicy: Never
          command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
          ports: [{{containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1, timeoutSeconds: 2}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_cluster_probes_pods_survives_a_master_and_leaves_nothing_behind() -> Result<()> {
    ensure_test_image()?;
    let compose = Compose::new()?;
    compose.build_images()?;
    compose.run(&["up", "-d"])?;
    let servers = wait_ready(&compose).await?;

    // ctl in its container reads the manifest from the directory
    // docker-compose runs in.
    std::fs::write(compose.dir.path().join("app.yaml"), deployment())?;
    let applied = compose.run(&["run", "--rm", "-T", "ctl", "apply", "-f", "app.yaml"])?;
    ensure!(applied.contains("deployment.apps/web created"), "apply said: {applied}");
    // Available needs the HTTP probes to pass: the agent reaches its pods.
    wait_available(&compose, &servers, 2).await?;

    // One master container dies (the leader, the hardest case); the other
    // two still take writes.
    let leader = leader_id(&servers).await?;
    compose.run(&["kill", &format!("master-{leader}")])?;
    let living: Vec<String> = servers
        .iter()
        .enumerate()
        .filter(|(index, _)| *index as u64 + 1 != leader)
        .map(|(_, s)| s.clone())
        .collect();
    wait_until(Duration::from_secs(60), "a write with one master killed", || async {
        let out = ctl(&living, &["scale", "deploy/web", "--replicas", "3"], "").await;
        Ok(out.ok().then_some(()))
    })
    .await?;
    wait_available(&compose, &living, 3).await?;

    // `down -v` takes the cluster away but not its pods...
    compose.run(&["down", "-v"])?;
    let orphans = compose.pod_containers();
    ensure!(
        !orphans.is_empty(),
        "the pods went with down -v: the next check proves nothing"
    );
    // ...and the agent of a new cluster (same node, same volume name)
    // removes them, saying so.
    compose.run(&["up", "-d"])?;
    let servers = wait_ready(&compose).await?;
    wait_until(TIMEOUT, "the old cluster's pod containers to go", || async {
        let left = orphans
            .iter()
            .filter(|id| compose.pod_containers().contains(id))
            .count();
        Ok((left == 0).then_some(()))
    })
    .await
    .with_context(|| compose.logs("agent"))?;
    let log = compose.logs("agent");
    ensure!(
        log.contains("removing a container of a cluster this agent no longer belongs to"),
        "the agent did not say why: {log}"
    );

    // Pods of the new cluster, then the documented teardown: stop the
    // agent, --cleanup, down -v. Nothing is left.
    let out = ctl(&servers, &["apply", "-f", "-"], &deployment()).await;
    ensure!(out.ok(), "apply failed: {out:?}");
    wait_available(&compose, &servers, 2).await?;
    ensure!(!compose.pod_containers().is_empty(), "no pod containers to clean up");
    compose.run(&["rm", "-sf", "agent"])?;
    let cleaned = compose.cmd(&["run", "--rm", "-T", "agent", "--cleanup"]).output()?;
    let cleanup_log = String::from_utf8_lossy(&cleaned.stderr).into_owned();
    ensure!(cleaned.status.success(), "--cleanup failed: {cleanup_log}");
    compose.run(&["down", "-v", "--remove-orphans"])?;
    ensure!(
        compose.pod_containers().is_empty(),
        "pod containers left after --cleanup: {cleanup_log}"
    );
    ensure!(
        compose.project_containers().is_empty(),
        "compose containers left after down"
    );
    let network = Command::new("docker")
        .args(["network", "inspect", &compose.network])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(!network.success(), "--cleanup left the pod network: {cleanup_log}");
    Ok(())
}
