//! Docker Swarm on the local engine, for the side-by-side figures of
//! `bosun-bench deploy`: services of the same image and command as the
//! Bosun pods, created and updated with the `docker service` CLI
//! (`--detach`), and timed by reading the engine's task list until the
//! tasks run. The CLI's own wait is not used: without `--detach` it waits
//! `--update-monitor` (5 s) more after the service converges.
//!
//! [`Swarm::join`] initialises a single-node swarm only when the engine is
//! not a manager already; [`Swarm::leave`] (or dropping it) removes the
//! services it created and leaves only a swarm it initialised.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::models::{Task, TaskState};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListTasksOptionsBuilder};
use bosun_integration_tests::agents::TEST_IMAGE;

use crate::pods::COMMAND;

/// How often the task list is read while timing: fine enough for
/// figures of seconds, rare enough not to load the engine being measured.
const POLL: Duration = Duration::from_millis(100);
/// The tasks' stop grace period: the Bosun pods' terminationGracePeriodSeconds.
/// (Swarm's default is 10 s, and `sleep` as PID 1 ignores SIGTERM.)
const STOP_GRACE: &str = "1s";
/// The label Swarm puts on every container of a service.
const SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// The bridge Swarm creates on the engine for its tasks' containers.
const GWBRIDGE: &str = "docker_gwbridge";

/// A swarm this benchmark uses, and the services it made there.
pub struct Swarm {
    docker: bollard::Docker,
    /// This run initialised the swarm, so it leaves it again.
    initialised: bool,
    /// The docker_gwbridge network was not there before the init (Swarm
    /// creates it when it first starts a task), so leaving removes it.
    gwbridge_ours: bool,
    /// Services created and not removed yet.
    services: Vec<String>,
}

impl Swarm {
    /// Uses the engine's swarm when it is a manager of one; otherwise
    /// initialises a single-node swarm on 127.0.0.1.
    ///
    /// # Errors
    /// When the engine is a worker or in another swarm state, or the
    /// init fails.
    pub async fn join(docker: &bollard::Docker) -> Result<Swarm> {
        let state = docker_cli(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .await?;
        let mut swarm = Swarm {
            docker: docker.clone(),
            initialised: false,
            gwbridge_ours: false,
            services: Vec::new(),
        };
        match state.trim() {
            "active true" => {}
            "inactive false" | "inactive" => {
                swarm.gwbridge_ours = !network_exists(GWBRIDGE).await;
                docker_cli(&["swarm", "init", "--advertise-addr", "127.0.0.1"]).await?;
                swarm.initialised = true;
            }
            other => bail!("the engine's swarm state is {other:?}, not a manager nor inactive"),
        }
        Ok(swarm)
    }

    /// Creates a service of `replicas` tasks; the time until all run.
    ///
    /// # Errors
    /// When the service cannot be created or does not converge in `timeout`.
    pub async fn deploy(&mut self, name: &str, replicas: usize, timeout: Duration) -> Result<Duration> {
        let begin = Instant::now();
        self.create(name, replicas).await?;
        let what = format!("{replicas} tasks of {name} running");
        self.wait(name, timeout, &what, |tasks| running(tasks, None) == replicas)
            .await?;
        Ok(begin.elapsed())
    }

    /// Creates a service of `replicas` tasks with VERSION=1, waits until
    /// they run, then adds VERSION=2 with `docker service update`
    /// (`parallelism` at a time, no delay, stop-first); the time from the
    /// update until all tasks of the new spec run and none of the old.
    ///
    /// # Errors
    /// When a step fails or does not converge in `timeout`.
    pub async fn rolling_update(
        &mut self,
        name: &str,
        replicas: usize,
        parallelism: usize,
        timeout: Duration,
    ) -> Result<Duration> {
        self.create(name, replicas).await?;
        let what = format!("{replicas} tasks of {name} running");
        self.wait(name, timeout, &what, |tasks| running(tasks, None) == replicas)
            .await?;
        let begin = Instant::now();
        docker_cli(&[
            "service",
            "update",
            "--detach",
            "--no-resolve-image",
            "--env-add",
            "VERSION=2",
            "--update-parallelism",
            &parallelism.to_string(),
            "--update-delay",
            "0s",
            "--update-order",
            "stop-first",
            name,
        ])
        .await?;
        let what = format!("{replicas} tasks of {name} running VERSION=2 and none VERSION=1");
        self.wait(name, timeout, &what, |tasks| {
            running(tasks, Some("VERSION=2")) == replicas && running(tasks, Some("VERSION=1")) == 0
        })
        .await?;
        Ok(begin.elapsed())
    }

    async fn create(&mut self, name: &str, replicas: usize) -> Result<()> {
        let replicas = replicas.to_string();
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            name,
            "--replicas",
            &replicas,
            "--restart-condition",
            "any",
            "--stop-grace-period",
            STOP_GRACE,
            "--env",
            "VERSION=1",
            TEST_IMAGE,
        ];
        args.extend(COMMAND);
        self.services.push(name.to_string());
        docker_cli(&args).await.map(|_| ())
    }

    /// Removes a service and waits until its containers are gone.
    ///
    /// # Errors
    /// When `docker service rm` fails or containers stay for 2 minutes.
    pub async fn remove(&mut self, name: &str) -> Result<()> {
        docker_cli(&["service", "rm", name]).await?;
        self.services.retain(|s| s != name);
        let filter = format!("{SERVICE_LABEL}={name}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let options = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&HashMap::from([("label", vec![filter.as_str()])]))
                .build();
            let left = self.docker.list_containers(Some(options)).await?.len();
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{left} containers of service {name} still there 2 minutes after its removal");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Removes the services left, and leaves the swarm if this run
    /// initialised it.
    ///
    /// # Errors
    /// When a removal or the leave fails.
    pub async fn leave(mut self) -> Result<()> {
        for name in self.services.clone() {
            self.remove(&name).await?;
        }
        if self.initialised {
            self.initialised = false;
            docker_cli(&["swarm", "leave", "--force"]).await?;
            if self.gwbridge_ours && network_exists(GWBRIDGE).await {
                docker_cli(&["network", "rm", GWBRIDGE]).await?;
            }
        }
        Ok(())
    }

    async fn tasks(&self, name: &str) -> Result<Vec<Task>> {
        let options = ListTasksOptionsBuilder::default()
            .filters(&HashMap::from([("service", vec![name])]))
            .build();
        Ok(self.docker.list_tasks(Some(options)).await?)
    }

    /// Reads the service's tasks every [`POLL`] until `done` holds.
    async fn wait(&self, name: &str, timeout: Duration, what: &str, done: impl Fn(&[Task]) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let tasks = self.tasks(name).await?;
            if done(&tasks) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}: {} tasks running, {} listed",
                    running(&tasks, None),
                    tasks.len()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Swarm {
    /// After a failure: the same clean-up as [`Swarm::leave`], without
    /// waiting for containers.
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = std::process::Command::new("docker").args(args).output();
        };
        for name in &self.services {
            docker(&["service", "rm", name]);
        }
        if self.initialised {
            docker(&["swarm", "leave", "--force"]);
            if self.gwbridge_ours {
                docker(&["network", "rm", GWBRIDGE]);
            }
        }
    }
}

/// Tasks in the running state, of the spec with `env` when given.
fn running(tasks: &[Task], env: Option<&str>) -> usize {
    tasks
        .iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .filter(|t| {
            env.is_none_or(|env| {
                t.spec
                    .as_ref()
                    .and_then(|s| s.container_spec.as_ref())
                    .and_then(|c| c.env.as_ref())
                    .is_some_and(|vars| vars.iter().any(|v| v == env))
            })
        })
        .count()
}

async fn network_exists(name: &str) -> bool {
    docker_cli(&["network", "inspect", name]).await.is_ok()
}

/// Runs the docker CLI; its standard output.
async fn docker_cli(args: &[&str]) -> Result<String> {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .context("running docker")?;
    if !output.status.success() {
        bail!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
