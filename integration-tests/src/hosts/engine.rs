//! A host's own Docker engine: a `dockerd` started in the host's namespace
//! with every path of its own under the host's directory (the machine's
//! /etc/docker/daemon.json sets a data root and a storage driver that would
//! clash), the `vfs` storage driver (no overlay mounts: starts in a second
//! on any file system), no default bridge, and its containers under a
//! cgroup parent named after the host so that a sweep finds them.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::agents::import_test_image_into;
use crate::wait_until;

/// How long an engine may take to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `dockerd`.
pub(crate) struct Engine {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Engine {
    /// Starts `dockerd` under `prefix` (the host's `nsenter`), keeping its
    /// files in `dir` (short: unix socket paths are at most 107 bytes and
    /// containerd's live under the exec root) and its containers in cgroup
    /// `cgroup`.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub(crate) fn spawn(prefix: &[String], dir: &Path, cgroup: &str) -> Result<Engine> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}\n")?;
        let socket = dir.join("d.sock");
        let log = dir.join("dockerd.log");
        let output = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = crate::command_under(prefix, "dockerd")
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("x"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--storage-driver", "vfs", "--bridge", "none", "--cgroup-parent", cgroup])
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::from(output))
            .spawn()
            .context("spawning dockerd")?;
        Ok(Engine {
            child: Some(child),
            socket,
            log,
        })
    }

    /// `unix://SOCKET`, for `DOCKER_HOST` and the agent's `--docker-host`.
    pub(crate) fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Waits until the engine answers, then imports the test image.
    ///
    /// # Errors
    /// When it does not answer in time (with its log), or the import fails.
    pub(crate) async fn ready(&self) -> Result<()> {
        let host = self.docker_host();
        wait_until(START_TIMEOUT, &format!("the engine at {host} to answer"), || async {
            client(&host).await?.ping().await?;
            Ok(Some(()))
        })
        .await
        .map_err(|e| anyhow!("{e}\ndockerd log:\n{}", tail(&self.log, 30)))?;
        tokio::task::spawn_blocking(move || import_test_image_into(Some(&host))).await?
    }

    /// Starts removing the engine's containers (`docker rm -f`), so that
    /// their shims end and clean up after themselves (a shim killed leaves
    /// its socket in /run/containerd/s).
    ///
    /// # Errors
    /// When `sh` cannot be run.
    pub(crate) fn start_removing_containers(&self) -> Result<Child> {
        Ok(std::process::Command::new("sh")
            .args(["-c", r#"ids="$(docker ps -aq)" && [ -z "$ids" ] || docker rm -f $ids"#])
            .env("DOCKER_HOST", self.docker_host())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// SIGKILLs the engine and reaps it (its containerd, shims and
    /// containers are left to the namespace's and cgroup's sweep).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client of the engine at `docker_host` (`unix://...`), on the API
/// version the engine speaks.
///
/// # Errors
/// When the engine does not answer.
pub(crate) async fn client(docker_host: &str) -> Result<bollard::Docker> {
    let path = docker_host.strip_prefix("unix://").unwrap_or(docker_host);
    let docker = bollard::Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)?;
    Ok(docker.negotiate_version().await?)
}

/// The last `lines` lines of file `path`.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits for `children` to exit, for `timeout` at most (then kills them).
pub(crate) fn wait_all(mut children: Vec<Child>, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while !children.is_empty() && std::time::Instant::now() < deadline {
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}
