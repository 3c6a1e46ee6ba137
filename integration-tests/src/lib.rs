//! Test and benchmark harness: real master processes on loopback, each in
//! its own temp directory, driven through the public gRPC API and through
//! ctl's library.
//!
//! - [`MasterCluster`] starts, kills (`kill -9`), stops and restarts masters.
//! - [`wait_until`] polls a condition with a deadline and a message: tests
//!   never sleep for a fixed time.
//! - [`ctl`] runs a ctl command line in-process and captures its output.
//! - [`agents`] adds real node agents on Docker, cleaned up after each test.
//! - [`hosts`] gives a test hosts of their own on this one machine: network
//!   namespaces with an engine and an agent each, masters on hosts of
//!   their own, links between them that a test can cut.
//! - [`claims`] holds machine-wide numbered slots (pod ranges, host links)
//!   for one test process at a time.
//! - [`etcd`] runs an etcd cluster for side-by-side benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bosun_proto::api::cluster_client::ClusterClient;
use bosun_proto::api::objects_client::ObjectsClient;
use bosun_proto::api::{self, ClusterStatus, ClusterStatusRequest, Object, ObjectMeta};
use tempfile::TempDir;
use tokio::time::Instant;
use tonic::transport::Channel;

pub mod agents;
pub mod claims;
pub mod etcd;
pub mod hosts;

/// The directory holding the workspace's binaries (`master`, `ctl`...):
/// `$BOSUN_BIN_DIR`, or the target directory the test binary was built in.
///
/// # Panics
/// When the binaries have not been built.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BOSUN_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    assert!(
        dir.join("master").exists(),
        "no master binary in {}: run `cargo build --workspace` first (integration-tests/dev.sh test does)",
        dir.display()
    );
    dir
}

/// A command running `program` under `prefix` (`nsenter --net=...`), or
/// directly when `prefix` is empty.
pub(crate) fn command_under(prefix: &[String], program: impl AsRef<std::ffi::OsStr>) -> Command {
    match prefix.split_first() {
        Some((wrapper, args)) => {
            let mut command = Command::new(wrapper);
            command.args(args).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A Bosun binary of [`bin_dir`] under `prefix`, as the tests run them:
/// its log (`RUST_LOG` from `BOSUN_TEST_LOG`, else `default_log`) appended
/// to `log`, uncoloured.
///
/// # Errors
/// When the log cannot be opened.
pub(crate) fn bosun_command(prefix: &[String], binary: &Path, log: &Path, default_log: &str) -> Result<Command> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = command_under(prefix, binary);
    command
        .env(
            "RUST_LOG",
            std::env::var("BOSUN_TEST_LOG").unwrap_or_else(|_| default_log.into()),
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    Ok(command)
}

/// Polls `check` until it returns `Ok(Some(value))` or `timeout` passes.
/// `Ok(None)` and errors mean "not yet"; the last error is reported.
///
/// # Errors
/// A message naming `what` and the last error seen.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Where a master runs: under a command (`nsenter --net=...` to run it in
/// a network namespace) and listening on an IP there.
#[derive(Debug, Clone)]
pub struct MasterPlace {
    /// The command and arguments the `master` binary runs under; empty to
    /// run it directly.
    pub prefix: Vec<String>,
    /// The IP it listens on (with a port the kernel picks).
    pub ip: std::net::IpAddr,
}

impl Default for MasterPlace {
    /// Loopback of the test's own namespace.
    fn default() -> MasterPlace {
        MasterPlace {
            prefix: Vec::new(),
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }
}

/// One master process and what is needed to restart it.
pub struct Master {
    pub id: u64,
    pub addr: String,
    prefix: Vec<String>,
    data_dir: PathBuf,
    log: PathBuf,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Master {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The master's log (stderr and stdout), for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A group of master processes in one temp directory.
pub struct MasterCluster {
    pub masters: Vec<Master>,
    dir: TempDir,
    bin: PathBuf,
}

impl MasterCluster {
    /// Starts `size` masters: the first initializes the cluster, the others
    /// join it. `extra_args` go to every master. Waits until all are voters.
    ///
    /// # Errors
    /// When a master does not start or the cluster does not form in time.
    pub async fn start(size: usize, extra_args: &[&str]) -> Result<MasterCluster> {
        MasterCluster::start_on(vec![MasterPlace::default(); size], extra_args, None).await
    }

    /// Starts a master on each of `places`, like [`MasterCluster::start`],
    /// keeping their data and logs in a directory made in `parent` (the
    /// system's temp directory when `None`, or when `BOSUN_KEEP_TEST_DIRS`
    /// asks to keep it).
    ///
    /// # Errors
    /// When a master does not start or the cluster does not form in time.
    pub async fn start_on(
        places: Vec<MasterPlace>,
        extra_args: &[&str],
        parent: Option<&Path>,
    ) -> Result<MasterCluster> {
        let size = places.len();
        let keep = std::env::var_os("BOSUN_KEEP_TEST_DIRS").is_some();
        let mut dir = match parent {
            Some(parent) if !keep => TempDir::with_prefix_in("masters-", parent)?,
            _ => TempDir::with_prefix("bosun-test-")?,
        };
        if keep {
            // Keep the masters' data and logs for a post-mortem.
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let mut cluster = MasterCluster {
            masters: Vec::new(),
            dir,
            bin: bin_dir(),
        };
        for place in places {
            cluster.add_master_on(place, extra_args).await?;
        }
        cluster.wait_for_voters(size).await?;
        Ok(cluster)
    }

    /// Starts one more master (joining the first when there is one).
    ///
    /// # Errors
    /// When it does not start listening in time.
    pub async fn add_master(&mut self, extra_args: &[&str]) -> Result<usize> {
        self.add_master_on(MasterPlace::default(), extra_args).await
    }

    /// Starts one more master at `place` (joining the first when there is
    /// one).
    ///
    /// # Errors
    /// When it does not start listening in time.
    pub async fn add_master_on(&mut self, place: MasterPlace, extra_args: &[&str]) -> Result<usize> {
        let id = self.masters.len() as u64 + 1;
        let data_dir = self.dir.path().join(format!("master-{id}"));
        let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        if let Some(first) = self.masters.first() {
            args.extend(["--join".to_string(), first.addr.clone()]);
        }
        let mut master = Master {
            id,
            addr: std::net::SocketAddr::new(place.ip, 0).to_string(),
            prefix: place.prefix,
            log: self.dir.path().join(format!("master-{id}.log")),
            data_dir,
            extra_args: args,
            child: None,
        };
        self.spawn(&mut master).await?;
        self.masters.push(master);
        Ok(self.masters.len() - 1)
    }

    async fn spawn(&self, master: &mut Master) -> Result<()> {
        let address_file = self.dir.path().join(format!("master-{}.addr", master.id));
        let _ = std::fs::remove_file(&address_file);
        let child = bosun_command(
            &master.prefix,
            &self.bin.join("master"),
            &master.log,
            "info,openraft=warn",
        )?
        .args(["--node-id", &master.id.to_string(), "--listen", &master.addr])
        .arg("--data-dir")
        .arg(&master.data_dir)
        .arg("--address-file")
        .arg(&address_file)
        .args(&master.extra_args)
        .spawn()
        .context("spawning master")?;
        master.child = Some(child);
        let addr = wait_until(Duration::from_secs(20), "the master to listen", || {
            let path = address_file.clone();
            async move { Ok(std::fs::read_to_string(&path).ok()) }
        })
        .await
        .map_err(|e| anyhow!("{e}\nmaster {} log:\n{}", master.id, master.log_tail()))?;
        master.addr = addr.trim().to_string();
        Ok(())
    }

    /// Kills a master with SIGKILL.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.masters[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops a master with SIGTERM and waits for it to exit.
    ///
    /// # Errors
    /// When it does not exit within 20 s (it is then killed).
    pub async fn stop(&mut self, index: usize) -> Result<()> {
        let Some(mut child) = self.masters[index].child.take() else {
            return Ok(());
        };
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        let exited = wait_until(Duration::from_secs(20), "the master to exit", || {
            let status = child.try_wait();
            async move { Ok(status?.map(|_| ())) }
        })
        .await;
        if exited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited
    }

    /// Starts a stopped or killed master again on the same address and data.
    ///
    /// # Errors
    /// When it does not start listening in time.
    pub async fn restart(&mut self, index: usize) -> Result<()> {
        let mut master = std::mem::replace(
            &mut self.masters[index],
            Master {
                id: 0,
                addr: String::new(),
                prefix: Vec::new(),
                data_dir: PathBuf::new(),
                log: PathBuf::new(),
                extra_args: vec![],
                child: None,
            },
        );
        let result = self.spawn(&mut master).await;
        self.masters[index] = master;
        result
    }

    /// Starts a stopped or killed master again with `args` in place of the
    /// extra arguments it had (kept for later restarts).
    ///
    /// # Errors
    /// When it does not start listening in time.
    pub async fn restart_with(&mut self, index: usize, args: &[&str]) -> Result<()> {
        self.masters[index].extra_args = args.iter().map(|s| s.to_string()).collect();
        self.restart(index).await
    }

    /// Waits for master `index`'s process to exit by itself, and returns
    /// its log.
    ///
    /// # Errors
    /// When it is still running after `timeout`.
    pub async fn wait_for_exit(&mut self, index: usize, timeout: Duration) -> Result<String> {
        let master = &mut self.masters[index];
        let Some(child) = master.child.as_mut() else {
            bail!("master {} is not running", master.id);
        };
        wait_until(timeout, "the master to exit", || {
            let status = child.try_wait();
            async move { Ok(status?.map(|_| ())) }
        })
        .await
        .map_err(|e| anyhow!("{e}\nmaster {} log:\n{}", master.id, master.log_tail()))?;
        master.child = None;
        Ok(std::fs::read_to_string(&master.log).unwrap_or_default())
    }

    /// Addresses of the running masters.
    pub fn addrs(&self) -> Vec<String> {
        self.masters
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.addr.clone())
            .collect()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// An API client for master `index`.
    ///
    /// # Errors
    /// When it cannot connect.
    pub async fn objects(&self, index: usize) -> Result<ObjectsClient<Channel>> {
        Ok(ObjectsClient::new(channel(&self.masters[index].addr).await?))
    }

    /// The cluster status as master `index` reports it.
    ///
    /// # Errors
    /// When the master does not answer.
    pub async fn status(&self, index: usize) -> Result<ClusterStatus> {
        let mut client = ClusterClient::new(channel(&self.masters[index].addr).await?);
        Ok(client.status(ClusterStatusRequest {}).await?.into_inner())
    }

    /// Waits until a running master reports a leader that is running, and
    /// returns the leader's index in `masters`.
    ///
    /// # Errors
    /// When no leader emerges within 15 s.
    pub async fn leader(&self) -> Result<usize> {
        let found = wait_until(Duration::from_secs(15), "a leader", || async {
            // What each master says, for the message if no leader shows.
            let mut seen = Vec::new();
            for (index, master) in self.masters.iter().enumerate() {
                if !master.is_running() {
                    continue;
                }
                let status = match self.status(index).await {
                    Ok(status) => status,
                    Err(e) => {
                        seen.push(format!("{}: {e:#}", master.addr));
                        continue;
                    }
                };
                seen.push(format!("{} says the leader is {}", master.addr, status.leader_id));
                let leader = self
                    .masters
                    .iter()
                    .position(|m| m.id == status.leader_id && m.is_running());
                if let Some(leader) = leader {
                    let confirmed = self.status(leader).await?;
                    let role = confirmed
                        .members
                        .iter()
                        .find(|m| m.id == status.leader_id)
                        .map(|m| m.role.clone());
                    if role.as_deref() == Some("leader") {
                        return Ok(Some(leader));
                    }
                    seen.push(format!("which says its role is {role:?}"));
                }
            }
            bail!("no confirmed leader: {}", seen.join("; "))
        })
        .await;
        found.map_err(|e| {
            let logs: Vec<String> = self
                .masters
                .iter()
                .map(|m| format!("master {} ({}):\n{}", m.id, m.addr, m.log_tail()))
                .collect();
            anyhow!("{e}\n{}", logs.join("\n"))
        })
    }

    /// Waits until the leader counts `count` voters, all answering.
    ///
    /// # Errors
    /// When that does not happen within 30 s.
    pub async fn wait_for_voters(&self, count: usize) -> Result<()> {
        wait_until(Duration::from_secs(30), &format!("{count} voting members"), || async {
            let leader = self.leader().await?;
            let status = self.status(leader).await?;
            let ready = status
                .members
                .iter()
                .filter(|m| m.voter && m.role != "unreachable")
                .count();
            Ok((ready == count).then_some(()))
        })
        .await
    }

    /// Indexes of running masters other than `index`.
    pub fn others(&self, index: usize) -> Vec<usize> {
        (0..self.masters.len())
            .filter(|i| *i != index && self.masters[*i].is_running())
            .collect()
    }
}

impl Drop for MasterCluster {
    fn drop(&mut self) {
        for index in 0..self.masters.len() {
            self.kill(index);
        }
    }
}

/// A ConfigMap holding `value` under the key `value`.
pub fn config_map(namespace: &str, name: &str, value: &str) -> Object {
    api::ConfigMap {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }),
        data: [("value".to_string(), value.to_string())].into(),
        ..Default::default()
    }
    .into()
}

/// A gRPC channel to `addr`.
///
/// # Errors
/// When it cannot connect.
pub async fn channel(addr: &str) -> Result<Channel> {
    Ok(bosun_proto::transport::Transport::plaintext()
        .endpoint(addr)?
        .connect()
        .await?)
}

/// What a ctl command printed and how it ended.
#[derive(Debug)]
pub struct CtlOutput {
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

impl CtlOutput {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs a ctl command line in-process against `servers`, with `stdin`.
pub async fn ctl(servers: &[String], args: &[&str], stdin: &str) -> CtlOutput {
    let mut input = stdin.as_bytes();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut full: Vec<String> = vec!["--server".into(), servers.join(",")];
    full.extend(args.iter().map(|s| s.to_string()));
    let result = {
        let mut io = bosun_ctl::Io {
            stdin: &mut input,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        bosun_ctl::execute(full, &mut io).await
    };
    CtlOutput {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        error: result.err().map(|e| e.to_string()),
    }
}

/// A process's CPU time so far (user + system), from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_secs_f64(ticks as f64 / 100.0)
}
