//! Node agents for tests: real `node-agent` processes on the machine's
//! Docker engine, each test with pod ranges of its own (a [`PodRanges`]
//! claim), a pod network per node and a label on every container and
//! network, all removed when the test ends (also when it fails).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bosun_proto::api::{Event, Node, Pod};
use bosun_proto::client::{Api, Client, ListParams};
use bosun_proto::net::Cidr;
use tempfile::TempDir;

use crate::claims::Claim;
use crate::{bin_dir, wait_until, MasterCluster};

/// The BusyBox image tests run: `sh`, `httpd`, `nc`, `sleep`, `wget`.
pub const TEST_IMAGE: &str = "bosun-test/busybox:1";
/// The label (and its key) on every container a test's agents create.
pub const TEST_LABEL: &str = "bosun-test-run";

/// Imports [`TEST_IMAGE`] from the host's static BusyBox when the engine
/// lacks it (no registry needed).
///
/// # Errors
/// When busybox-static is missing or Docker refuses the import.
pub fn ensure_test_image() -> Result<&'static str> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| import_test_image().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    Ok(TEST_IMAGE)
}

fn import_test_image() -> Result<()> {
    let present = Command::new("docker")
        .args(["image", "inspect", TEST_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if present.success() {
        return Ok(());
    }
    import_test_image_into(None)
}

/// Imports [`TEST_IMAGE`] into the engine at `docker_host` (a `unix://`
/// address; the machine's engine when `None`).
///
/// # Errors
/// When busybox-static is missing or Docker refuses the import.
pub fn import_test_image_into(docker_host: Option<&str>) -> Result<()> {
    import_image(test_image_tar()?, TEST_IMAGE, docker_host)
}

/// `docker import` of the root in `tar` as `image` into the engine at
/// `docker_host` (the machine's engine when `None`): an image made
/// locally, no registry needed.
///
/// # Errors
/// When Docker refuses the import.
pub fn import_image(tar: &[u8], image: &str, docker_host: Option<&str>) -> Result<()> {
    let mut docker = Command::new("docker");
    if let Some(host) = docker_host {
        docker.env("DOCKER_HOST", host);
    }
    let mut child = docker
        .args(["import", "-", image])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running docker import")?;
    let mut stdin = child.stdin.take().context("docker import's stdin")?;
    // Written from another thread: docker may fill its stderr meanwhile.
    let (written, output) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || std::io::Write::write_all(&mut stdin, tar));
        let output = child.wait_with_output();
        (writer.join(), output)
    });
    let written = written.map_err(|_| anyhow!("writing the image to docker import panicked"))?;
    let output = output?;
    if !output.status.success() {
        bail!(
            "docker import of {image} into {} failed: {}",
            docker_host.unwrap_or("the machine's engine"),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    written.context("writing the image to docker import")
}

/// A tar of the directory `root`, for [`import_image`].
///
/// # Errors
/// When `tar` fails.
pub fn tar_of(root: &std::path::Path) -> Result<Vec<u8>> {
    let output = Command::new("tar").arg("-C").arg(root).args(["-c", "."]).output()?;
    if !output.status.success() {
        bail!(
            "tar of {} failed: {}",
            root.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// A tar of a root holding the host's static BusyBox and its applet
/// links, made once per process.
fn test_image_tar() -> Result<&'static [u8]> {
    static TAR: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    TAR.get_or_init(|| make_test_image_tar().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow!("{e}"))
}

fn make_test_image_tar() -> Result<Vec<u8>> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("busybox is missing: apt-get install busybox-static")?;
    let root = TempDir::with_prefix("bosun-test-image-")?;
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(&busybox, bin.join("busybox"))?;
    let list = Command::new(&busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    std::fs::create_dir_all(root.path().join("tmp"))?;
    tar_of(root.path())
}

/// One node-agent process.
pub struct AgentProcess {
    pub name: String,
    /// A command the agent runs under (`nsenter --net=...`), if any.
    prefix: Vec<String>,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl AgentProcess {
    /// An agent not started yet: `node-agent ARGS` under `prefix`, logging
    /// to `log`.
    pub(crate) fn new(name: &str, prefix: Vec<String>, args: Vec<String>, log: PathBuf) -> AgentProcess {
        AgentProcess {
            name: name.to_string(),
            prefix,
            args,
            log,
            child: None,
        }
    }

    pub(crate) fn set_args(&mut self, args: Vec<String>) {
        self.args = args;
    }

    /// Starts the agent with its flags.
    ///
    /// # Errors
    /// When it cannot be spawned.
    pub(crate) fn start(&mut self) -> Result<()> {
        let child = crate::bosun_command(&self.prefix, &bin_dir().join("node-agent"), &self.log, "info")?
            .args(&self.args)
            .spawn()
            .context("spawning node-agent")?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs the agent (continuing it first: a stopped process must be
    /// continued to die) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A /16 of 10.64.0.0-10.250.255.255 held by one test for its pod
/// ranges, so the networks of tests running side by side on one engine
/// never overlap: a [`Claim`] of its second octet, whose claim of a
/// process that is gone is taken over, skipping a range a network of the
/// engine still holds (one left behind: the engine has been seen to keep
/// a network with no container, "active endpoints"). Released when
/// dropped.
pub struct PodRanges {
    _claim: Claim,
    /// The range, for `--cluster-cidr`.
    pub range: String,
    cidr: Cidr,
}

impl PodRanges {
    /// Claims the first free range.
    ///
    /// # Errors
    /// When every range is held by a live process.
    pub fn claim() -> Result<PodRanges> {
        let dir = std::env::temp_dir().join("bosun-test-pod-ranges");
        let held = engine_subnets();
        let free = (64..=250u32).filter(|second| {
            let range = Cidr::new(std::net::Ipv4Addr::new(10, *second as u8, 0, 0), 16);
            !held.iter().any(|subnet| subnet.overlaps(&range))
        });
        let claim = Claim::first_free(&dir, free)?
            .context("every test pod range (10.64.0.0/16 to 10.250.0.0/16) is held by a running test")?;
        let second = u8::try_from(claim.slot()).context("a pod range slot")?;
        let cidr = Cidr::new(std::net::Ipv4Addr::new(10, second, 0, 0), 16);
        Ok(PodRanges {
            _claim: claim,
            range: cidr.to_string(),
            cidr,
        })
    }

    /// The `index`th /24 of the range: the block node IPAM gives the
    /// `index`th node, with the masters' default mask.
    pub fn block(&self, index: u64) -> String {
        self.cidr.block(24, index).map(|b| b.to_string()).unwrap_or_default()
    }
}

/// Masters plus agents, one label per test.
pub struct TestCluster {
    pub masters: MasterCluster,
    pub agents: Vec<AgentProcess>,
    /// The value of [`TEST_LABEL`] on this test's containers and networks.
    pub run: String,
    /// The masters' `--cluster-cidr`, unless the test gave its own.
    pub pod_ranges: PodRanges,
    dir: TempDir,
}

impl TestCluster {
    /// The directory holding the agents' data and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts `masters` masters (with `master_args`) and one agent per
    /// name in `agents` (with `agent_args` after the defaults), and waits
    /// until every node is Ready.
    ///
    /// # Errors
    /// When a process does not start or a node does not become Ready.
    pub async fn start(
        masters: usize,
        master_args: &[&str],
        agents: &[&str],
        agent_args: &[&str],
    ) -> Result<TestCluster> {
        ensure_test_image()?;
        let pod_ranges = PodRanges::claim()?;
        let mut args = vec!["--cluster-cidr", pod_ranges.range.as_str()];
        if master_args.contains(&"--cluster-cidr") {
            args.clear();
        }
        args.extend(master_args);
        let masters = MasterCluster::start(masters, &args).await?;
        let dir = TempDir::with_prefix("bosun-test-agents-")?;
        let run = dir
            .path()
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .to_ascii_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "")
            })
            .unwrap_or_default();
        let mut cluster = TestCluster {
            masters,
            agents: Vec::new(),
            run,
            pod_ranges,
            dir,
        };
        for name in agents {
            cluster.add_agent(name, agent_args)?;
        }
        for name in agents {
            cluster.wait_node_ready(name, true).await?;
        }
        Ok(cluster)
    }

    /// Masters' addresses, for ctl and clients.
    pub fn servers(&self) -> Vec<String> {
        self.masters.addrs()
    }

    pub fn client(&self) -> Client {
        Client::new(self.servers())
    }

    /// Starts another agent and waits until its node is Ready.
    ///
    /// # Errors
    /// When it does not start or become Ready.
    pub async fn join_agent(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        self.add_agent(name, extra)?;
        self.wait_node_ready(name, true).await.map(|_| ())
    }

    /// The pod network of node `name`: each node's agent makes its own, on
    /// the node's pod range.
    pub fn network(&self, name: &str) -> String {
        format!("bosun-test-{}-{name}", self.run)
    }

    /// Starts another agent without waiting for its node to be Ready.
    ///
    /// # Errors
    /// When it does not start.
    pub fn add_agent(&mut self, name: &str, extra: &[&str]) -> Result<()> {
        let mut args: Vec<String> = vec![
            "--master".into(),
            self.masters.addrs().join(","),
            "--name".into(),
            name.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--address".into(),
            "127.0.0.1".into(),
            "--data-dir".into(),
            self.dir.path().join(format!("agent-{name}")).display().to_string(),
            "--network".into(),
            self.network(name),
            // Many agents share this machine's network namespace: none
            // of them may change its routes and rules (the pod network
            // across hosts is tested on hosts of their own, `hosts`).
            "--network-backend".into(),
            "none".into(),
            "--container-labels".into(),
            format!("{TEST_LABEL}={}", self.run),
        ];
        args.extend(fast_agent_flags());
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir.path().join(format!("agent-{name}.log"));
        let mut agent = AgentProcess::new(name, Vec::new(), args, log);
        agent.start()?;
        self.agents.push(agent);
        Ok(())
    }

    fn agent_index(&self, name: &str) -> Result<usize> {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| anyhow!("no agent {name}"))
    }

    /// SIGKILLs an agent (its containers keep running).
    ///
    /// # Errors
    /// For an unknown agent.
    pub fn kill_agent(&mut self, name: &str) -> Result<()> {
        let index = self.agent_index(name)?;
        self.agents[index].kill();
        Ok(())
    }

    /// Starts a killed agent again with the same flags.
    ///
    /// # Errors
    /// When it does not start.
    pub fn restart_agent(&mut self, name: &str) -> Result<()> {
        let index = self.agent_index(name)?;
        self.agents[index].start()
    }

    /// Sends a signal (`STOP`, `CONT`...) to an agent.
    ///
    /// # Errors
    /// For an unknown or stopped agent.
    pub fn signal_agent(&self, name: &str, signal: &str) -> Result<()> {
        let pid = self.agents[self.agent_index(name)?]
            .pid()
            .context("agent not running")?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    pub fn agent_log(&self, name: &str) -> String {
        self.agent_index(name)
            .map(|i| self.agents[i].log_tail())
            .unwrap_or_default()
    }

    /// The pod as the masters have it.
    ///
    /// # Errors
    /// When it does not exist.
    pub async fn pod(&self, name: &str) -> Result<Pod> {
        Ok(Api::<Pod>::namespaced(&self.client(), "default").get(name).await?)
    }

    /// Waits until `check` holds for the pod, with a message on timeout.
    ///
    /// # Errors
    /// On timeout, with the pod's last status and the agent's log.
    pub async fn wait_pod<F>(&self, name: &str, timeout: Duration, what: &str, check: F) -> Result<Pod>
    where
        F: Fn(&Pod) -> bool,
    {
        let result = wait_until(timeout, what, || async {
            let pod = self.pod(name).await?;
            Ok(check(&pod).then_some(pod))
        })
        .await;
        match result {
            Ok(pod) => Ok(pod),
            Err(e) => {
                let status = self
                    .pod(name)
                    .await
                    .map(|p| format!("{:?}", p.status))
                    .unwrap_or_default();
                let logs: Vec<String> = self
                    .agents
                    .iter()
                    .map(|a| format!("agent {}:\n{}", a.name, a.log_tail()))
                    .collect();
                Err(anyhow!("{e}\nlast status: {status}\n{}", logs.join("\n")))
            }
        }
    }

    /// Waits for an event about pod `pod` (in `default`) with `reason`
    /// whose message contains `text`, seen at least `count` times.
    ///
    /// # Errors
    /// On timeout, with the pod's events.
    pub async fn wait_event(&self, pod: &str, reason: &str, text: &str, count: i32) -> Result<Event> {
        let events_api = Api::<Event>::namespaced(&self.client(), "default");
        let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
        let what = format!("a {reason} event about {pod} saying {text:?} (x{count})");
        wait_until(Duration::from_secs(30), &what, || async {
            let events = events_api.list(&params).await?.items;
            let found = events
                .iter()
                .find(|e| e.reason == reason && e.message.contains(text) && e.count >= count)
                .cloned();
            match found {
                Some(event) => Ok(Some(event)),
                None => {
                    let seen: Vec<String> = events
                        .iter()
                        .map(|e| format!("{} {} x{}: {}", e.r#type, e.reason, e.count, e.message))
                        .collect();
                    bail!("events so far: {seen:?}")
                }
            }
        })
        .await
    }

    /// Waits until the node's Ready condition has `ready` ("True" when
    /// true, anything else when false).
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_node_ready(&self, name: &str, ready: bool) -> Result<Node> {
        wait_node(&self.client(), name, ready)
            .await
            .map_err(|e| anyhow!("{e}\n{}", self.agent_log(name)))
    }

    /// This test's containers whose labels include `key=value`: (id, name,
    /// state) from `docker ps -a`.
    ///
    /// # Errors
    /// When docker cannot be run.
    pub fn containers(&self, key: &str, value: &str) -> Result<Vec<(String, String, String)>> {
        let output = Command::new("docker")
            .args(["ps", "-a", "--no-trunc", "--format", "{{.ID}}\t{{.Names}}\t{{.State}}"])
            .args(["--filter", &format!("label={TEST_LABEL}={}", self.run)])
            .args(["--filter", &format!("label={key}={value}")])
            .output()?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split('\t');
                Some((
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                ))
            })
            .collect())
    }
}

/// The flags that make test agents quick to heartbeat and to restart
/// crashed containers.
pub(crate) fn fast_agent_flags() -> Vec<String> {
    [
        "--heartbeat-seconds",
        "0.5",
        "--restart-backoff-seconds",
        "0.5",
        "--restart-backoff-max-seconds",
        "8",
    ]
    .map(String::from)
    .to_vec()
}

/// Waits until node `name` has its pod range (`spec.podCIDR`), for 20 s.
///
/// # Errors
/// On timeout, or a range that does not parse.
pub async fn wait_pod_range(client: &Client, name: &str) -> Result<Cidr> {
    let nodes = Api::<Node>::all(client);
    let range = wait_until(
        Duration::from_secs(20),
        &format!("node {name} to get a pod range"),
        || async {
            let node = nodes.get_opt(name).await?;
            Ok(node.and_then(|n| n.spec).map(|s| s.pod_cidr).filter(|c| !c.is_empty()))
        },
    )
    .await?;
    Ok(range.parse()?)
}

/// Waits until node `name`'s Ready condition has `ready` ("True" when
/// true, anything else when false), for 30 s.
///
/// # Errors
/// On timeout.
pub async fn wait_node(client: &Client, name: &str, ready: bool) -> Result<Node> {
    let what = format!("node {name} {}", if ready { "Ready" } else { "not Ready" });
    wait_until(Duration::from_secs(30), &what, || async {
        let node = Api::<Node>::all(client).get(name).await?;
        let is_ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.r#type == "Ready"))
            .is_some_and(|c| c.status == "True");
        Ok((is_ready == ready).then_some(node))
    })
    .await
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        // A create the agent sent just before it died may still be carried
        // out by the engine: keep removing until none has turned up for a
        // moment (and give up after a few seconds).
        let killed = std::time::Instant::now();
        loop {
            let ids = labelled(&["ps", "-aq"], &format!("{TEST_LABEL}={}", self.run));
            if !ids.is_empty() {
                let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
            }
            let settled = killed.elapsed() > Duration::from_secs(1);
            if (ids.is_empty() && settled) || killed.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let networks = labelled(&["network", "ls", "-q"], &format!("{TEST_LABEL}={}", self.run));
        if !networks.is_empty() {
            let _ = Command::new("docker").args(["network", "rm"]).args(&networks).output();
        }
    }
}

/// The IPv4 subnets of the engine's networks.
fn engine_subnets() -> Vec<Cidr> {
    let ids = Command::new("docker")
        .args(["network", "ls", "-q"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_else(|_| Vec::<String>::new());
    if ids.is_empty() {
        return Vec::new();
    }
    Command::new("docker")
        .args(["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"])
        .args(&ids)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The ids `docker LIST...` (`ps -aq`, `network ls -q`) prints for what
/// carries `label` (`key=value`).
pub fn labelled(list: &[&str], label: &str) -> Vec<String> {
    Command::new("docker")
        .args(list)
        .args(["--filter", &format!("label={label}")])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
