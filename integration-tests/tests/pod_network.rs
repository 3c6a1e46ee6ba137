//! The pod network: each node's block of the cluster's pod ranges, given
//! by the leader through Raft when the node registers; and, on hosts of
//! their own (network namespaces with their own engines), pods reaching
//! pods on other hosts directly or through VXLAN.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::agents::{wait_pod_range, TestCluster, TEST_IMAGE, TEST_LABEL};
use bosun_integration_tests::hosts::{HostCluster, HostsSpec};
use bosun_integration_tests::{bin_dir, ctl, wait_until};
use bosun_node_agent::addresses::engine_range;
use bosun_proto::api::{EventType, Node, Pod};
use bosun_proto::client::{Api, WatchParams};
use bosun_proto::net::Cidr;

async fn pod_cidr(cluster: &TestCluster, name: &str) -> Result<String> {
    let node = Api::<Node>::all(&cluster.client()).get(name).await?;
    Ok(node.spec.map(|s| s.pod_cidr).unwrap_or_default())
}

async fn wait_pod_cidr(cluster: &TestCluster, name: &str) -> Result<String> {
    Ok(wait_pod_range(&cluster.client(), name).await?.to_string())
}

#[tokio::test]
async fn every_node_gets_a_block_of_its_own_and_keeps_it() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["a", "b"], &[]).await?;
    let (a, b) = (wait_pod_cidr(&cluster, "a").await?, wait_pod_cidr(&cluster, "b").await?);
    let mut blocks = [a.clone(), b];
    blocks.sort();
    assert_eq!(blocks, [cluster.pod_ranges.block(0), cluster.pod_ranges.block(1)]);
    // A cordon (an update without the range) keeps it; ctl shows it.
    let out = ctl(&cluster.servers(), &["cordon", "a"], "").await;
    ensure!(out.ok(), "{out:?}");
    assert_eq!(pod_cidr(&cluster, "a").await?, a);
    let out = ctl(&cluster.servers(), &["get", "node", "a", "-o", "yaml"], "").await;
    ensure!(out.stdout.contains(&format!("podCIDR: {a}")), "{}", out.stdout);
    // Changing it by hand is refused with the reason.
    let yaml = "apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.42.9.0/24}\n";
    let out = ctl(&cluster.servers(), &["apply", "-f", "-"], yaml).await;
    ensure!(!out.ok() && out.stderr.contains("spec.podCIDR is"), "{out:?}");
    Ok(())
}

/// A Node deleted while its agent runs is registered again by the agent,
/// with the block its pods hold addresses in.
#[tokio::test]
async fn a_node_deleted_under_its_agent_comes_back_with_its_block() -> Result<()> {
    let cluster = TestCluster::start(1, &[], &["a", "b"], &[]).await?;
    let block = wait_pod_cidr(&cluster, "b").await?;
    let params = WatchParams {
        field_selector: "metadata.name=b".into(),
        ..Default::default()
    };
    let mut changes = Api::<Node>::all(&cluster.client()).watch(&params).await?;
    let out = ctl(&cluster.servers(), &["delete", "node", "b"], "").await;
    ensure!(out.ok(), "{out:?}");
    // Created again with its block (not given one anew by the leader,
    // which would offer this same lowest free block).
    let created = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let change = changes.message().await?.context("the watch ended")?;
            if change.r#type() == EventType::Added {
                return anyhow::Ok(change.object.context("an object")?);
            }
        }
    })
    .await
    .context("b was not registered again")??;
    let again = Node::try_from(created)?.spec.map(|s| s.pod_cidr).unwrap_or_default();
    ensure!(again == block, "b came back with {again:?}, not {block}");
    cluster.wait_node_ready("b", true).await?;
    Ok(())
}

#[tokio::test]
async fn a_node_waits_for_a_free_block_and_says_why() -> Result<()> {
    // One block: the whole of the test's range.
    let mut cluster = TestCluster::start(1, &["--node-cidr-mask-size", "16"], &["a"], &[]).await?;
    let range = cluster.pod_ranges.range.clone();
    assert_eq!(pod_cidr(&cluster, "a").await?, range);
    // b registers, but gets no block, and does not heartbeat meanwhile.
    cluster.add_agent("b", &[])?;
    let (holder, waiter) = ("a", "b");
    let out = wait_until(
        Duration::from_secs(10),
        "the waiting node's condition and event",
        || async {
            let out = ctl(&cluster.servers(), &["describe", "node", waiter], "").await;
            Ok((out.stdout.contains("NoPodCIDR") && out.stdout.contains("CIDRNotAvailable")).then_some(out))
        },
    )
    .await?;
    ensure!(out.stdout.contains("used up"), "{}", out.stdout);
    // Deleted while it waits: its agent registers it again, and it waits on.
    let out = ctl(&cluster.servers(), &["delete", "node", waiter], "").await;
    ensure!(out.ok(), "{out:?}");
    wait_until(
        Duration::from_secs(10),
        "the waiting node to register again",
        || async {
            let nodes = Api::<Node>::all(&cluster.client());
            Ok(nodes.get_opt(waiter).await?.map(|_| ()))
        },
    )
    .await?;
    // The holder goes (its host is gone): the waiting node gets its block.
    cluster.kill_agent(holder)?;
    let out = ctl(&cluster.servers(), &["delete", "node", holder], "").await;
    ensure!(out.ok(), "{out:?}");
    let got = wait_pod_cidr(&cluster, waiter).await.context("the freed block")?;
    assert_eq!(got, range);
    cluster.wait_node_ready(waiter, true).await?;
    wait_until(Duration::from_secs(10), "the condition to go", || async {
        let node = Api::<Node>::all(&cluster.client()).get(waiter).await?;
        let marked = node
            .status
            .unwrap_or_default()
            .conditions
            .iter()
            .any(|c| c.reason == "NoPodCIDR");
        Ok((!marked).then_some(()))
    })
    .await
}

#[test]
fn bad_pod_range_flags_stop_the_master_with_the_reason() -> Result<()> {
    let data = tempfile::TempDir::with_prefix("bosun-test-flags-")?;
    let cases: [(&[&str], &str); 3] = [
        (&["--node-cidr-mask-size", "8"], "larger than the cluster range"),
        (&["--cluster-cidr", "10.42.0.0/16,10.42.0.0/17"], "overlaps"),
        (&["--cluster-cidr", "10.42.0.0"], "not an IPv4 range"),
    ];
    for (flags, reason) in cases {
        let out = Command::new(bin_dir().join("master"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("m"))
            .args(flags)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!out.status.success() && stderr.contains(reason), "{flags:?}: {stderr}");
    }
    Ok(())
}

fn pod_on(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: app, image: {TEST_IMAGE}, imagePullPolicy: Never, command: [sleep, \"3600\"]}}]\n"
    )
}

#[tokio::test]
async fn pods_take_addresses_from_their_node_s_block_and_a_network_on_another_subnet_is_refused() -> Result<()> {
    let mut cluster = TestCluster::start(1, &[], &["a"], &[]).await?;
    let block: Cidr = wait_pod_cidr(&cluster, "a").await?.parse()?;
    let out = ctl(&cluster.servers(), &["apply", "-f", "-"], &pod_on("on-a", "a")).await;
    ensure!(out.ok(), "{out:?}");
    let pods = Api::<Pod>::namespaced(&cluster.client(), "default");
    let ip = wait_until(Duration::from_secs(30), "on-a to run with an address", || async {
        let pod = pods.get("on-a").await?;
        let ip = pod.status.map(|s| s.pod_ip).unwrap_or_default();
        Ok((!ip.is_empty()).then_some(ip))
    })
    .await?;
    ensure!(block.contains(ip.parse()?), "{ip} is not in the node's block {block}");
    // The bridge is on exactly the block, its gateway the first address.
    let ipam = std::process::Command::new("docker")
        .args(["network", "inspect", "-f", "{{json .IPAM.Config}}"])
        .arg(cluster.network("a"))
        .output()?;
    let ipam = String::from_utf8_lossy(&ipam.stdout);
    let gateway = block.gateway().context("a gateway")?;
    ensure!(
        ipam.contains(&format!("\"Subnet\":\"{block}\"")) && ipam.contains(&format!("\"Gateway\":\"{gateway}\"")),
        "{ipam}"
    );

    // A network of node b's name already there, on a subnet Docker chose.
    let made = std::process::Command::new("docker")
        .args(["network", "create", "--label"])
        .arg(format!("{TEST_LABEL}={}", cluster.run))
        .arg(cluster.network("b"))
        .output()?;
    ensure!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    cluster.join_agent("b", &[]).await?;
    let out = ctl(&cluster.servers(), &["apply", "-f", "-"], &pod_on("on-b", "b")).await;
    ensure!(out.ok(), "{out:?}");
    let message = wait_until(Duration::from_secs(30), "on-b to fail with the reason", || async {
        let pod = pods.get("on-b").await?;
        let waiting = pod
            .status
            .unwrap_or_default()
            .container_statuses
            .into_iter()
            .find_map(|c| c.state.and_then(|s| s.waiting));
        Ok(waiting.filter(|w| w.message.contains("has subnet")).map(|w| w.message))
    })
    .await;
    let message = match message {
        Ok(message) => message,
        Err(e) => {
            let out = ctl(&cluster.servers(), &["describe", "pod", "on-b"], "").await;
            anyhow::bail!("{e}: {}", out.stdout)
        }
    };
    let b_block = pod_cidr(&cluster, "b").await?;
    ensure!(
        message.contains(&b_block) && message.contains("docker network rm"),
        "{message}"
    );
    Ok(())
}

// ---- Across hosts: each a network namespace with its own engine. ----

/// A pod on `node` that serves `hello from NAME` on port 8080 and logs
/// each request's source address (`httpd -vv`).
fn server_on(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {TEST_IMAGE}\n    imagePullPolicy: Never\n    command: [sh, -c, 'mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -vv -p 8080 -h /www']\n"
    )
}

/// Creates a pod from `yaml` and waits until it runs; its address.
async fn run_pod(cluster: &HostCluster, name: &str, yaml: &str) -> Result<Ipv4Addr> {
    let out = ctl(&cluster.servers(), &["apply", "-f", "-"], yaml).await;
    ensure!(out.ok(), "{out:?}");
    let pods = Api::<Pod>::namespaced(&cluster.client(), "default");
    let waited = wait_until(Duration::from_secs(60), &format!("pod {name} to run"), || async {
        let status = pods.get(name).await?.status.unwrap_or_default();
        let running = status.phase == "Running" && status.container_statuses.iter().all(|c| c.ready);
        Ok((running && !status.pod_ip.is_empty()).then_some(status.pod_ip))
    })
    .await;
    match waited {
        Ok(ip) => Ok(ip.parse()?),
        Err(e) => {
            let out = ctl(&cluster.servers(), &["describe", "pod", name], "").await;
            anyhow::bail!("{e}\n{}", out.stdout)
        }
    }
}

/// What `wget` in pod `from` gets from `url`, once it gets it (under
/// `timeout`: BusyBox 1.35's `wget -T` crashes).
async fn fetch(cluster: &HostCluster, from: &str, url: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let servers = cluster.servers();
    loop {
        let out = ctl(
            &servers,
            &["exec", from, "--", "timeout", "3", "wget", "-q", "-O", "-", url],
            "",
        )
        .await;
        if out.ok() {
            return Ok(out.stdout);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{from} could not fetch {url} within 20 s; last try: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pod `name`'s log.
async fn logs(cluster: &HostCluster, name: &str) -> String {
    ctl(&cluster.servers(), &["logs", name], "").await.stdout
}

/// The client pod's source address as the server pod's log shows it.
async fn wait_logged(cluster: &HostCluster, server: &str, source: Ipv4Addr) -> Result<()> {
    let waited = wait_until(
        Duration::from_secs(10),
        &format!("{server} to log a request from {source}"),
        || async {
            let log = logs(cluster, server).await;
            Ok(logged(&log, source).then_some(()))
        },
    )
    .await;
    if let Err(e) = waited {
        anyhow::bail!("{e}; its log:\n{}", logs(cluster, server).await);
    }
    Ok(())
}

/// Whether an `httpd -vv` log has a request from `source` (`IP:port`, or
/// `[::ffff:IP]:port` from a server on an IPv6 socket).
fn logged(log: &str, source: Ipv4Addr) -> bool {
    log.lines()
        .any(|l| l.starts_with(&format!("{source}:")) || l.starts_with(&format!("[::ffff:{source}]:")))
}

fn client_on(name: &str, node: &str) -> String {
    pod_on(name, node)
}

async fn routes(cluster: &HostCluster, host: &str) -> Result<String> {
    cluster.exec_ok(host, &["ip", "route", "show", "proto", "98"]).await
}

async fn block_of(cluster: &HostCluster, node: &str) -> Result<Cidr> {
    wait_pod_range(&cluster.client(), node).await
}

#[tokio::test]
async fn pods_on_hosts_of_one_link_reach_each_other_directly_and_keep_their_source() -> Result<()> {
    let mut cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("b", 1)])).await?;
    let server_ip = run_pod(&cluster, "server", &server_on("server", "b")).await?;
    let client_ip = run_pod(&cluster, "client", &client_on("client", "a")).await?;
    let b_block = block_of(&cluster, "b").await?;
    ensure!(b_block.contains(server_ip), "{server_ip} outside b's block {b_block}");

    // host-gw: a direct route via b's address, no overlay.
    let b = cluster.host("b")?.address;
    let table = routes(&cluster, "a").await?;
    ensure!(table.contains(&format!("{b_block} via {b} ")), "a's routes:\n{table}");
    let links = cluster.exec_ok("a", &["ip", "-o", "link", "show"]).await?;
    ensure!(!links.contains("bosun.vxlan"), "{links}");
    // The pod bridge takes the host's MTU, and leaves masquerading to the
    // agent's chain (which spares the pod ranges).
    let uplink = cluster.exec_ok("a", &["ip", "-o", "link", "show", "eth0"]).await?;
    let mtu = uplink
        .split(" mtu ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .context("eth0's MTU")?;
    let options = cluster
        .docker_cli("a", &["network", "inspect", "bosun", "-f", "{{json .Options}}"])
        .await?;
    let options = String::from_utf8_lossy(&options.stdout);
    ensure!(
        options.contains(&format!("\"com.docker.network.driver.mtu\":\"{mtu}\""))
            && options.contains("\"com.docker.network.bridge.enable_ip_masquerade\":\"false\""),
        "the bridge's options: {options}"
    );

    let page = fetch(&cluster, "client", &format!("http://{server_ip}:8080/")).await?;
    ensure!(page.contains("hello from server"), "{page}");
    wait_logged(&cluster, "server", client_ip).await?;

    // Anything outside the pod ranges sees the node's address instead.
    let outside = cluster.outside(1)?;
    let www = outside.dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "outside\n")?;
    let www = www.display().to_string();
    cluster.spawn(
        &outside.name,
        &["busybox", "httpd", "-f", "-vv", "-p", "8080", "-h", &www],
    )?;
    let page = fetch(&cluster, "client", &format!("http://{}:8080/", outside.address)).await?;
    ensure!(page.contains("outside"), "{page}");
    let a = cluster.host("a")?.address;
    let log_dir = outside.dir.clone();
    let log = wait_until(Duration::from_secs(10), "the outside server's log", || async {
        let log = std::fs::read_dir(&log_dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("spawned-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        Ok(log.contains("url:/").then_some(log))
    })
    .await?;
    ensure!(
        logged(&log, a) && !logged(&log, client_ip),
        "the outside server saw:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn pods_on_hosts_behind_a_router_reach_each_other_through_vxlan() -> Result<()> {
    let cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("c", 2)])).await?;
    let server_ip = run_pod(&cluster, "server", &server_on("server", "c")).await?;
    let client_ip = run_pod(&cluster, "client", &client_on("client", "a")).await?;
    let c_block = block_of(&cluster, "c").await?;
    let table = routes(&cluster, "a").await?;
    ensure!(
        table.contains(&format!("{c_block} via {} dev bosun.vxlan", c_block.network())),
        "a's routes:\n{table}"
    );
    // The overlay's MTU leaves room for its headers.
    let device = cluster
        .exec_ok("a", &["ip", "-d", "link", "show", "bosun.vxlan"])
        .await?;
    ensure!(
        device.contains("mtu 1450") && device.contains("vxlan id 42"),
        "{device}"
    );
    let page = fetch(&cluster, "client", &format!("http://{server_ip}:8080/")).await?;
    ensure!(page.contains("hello from server"), "{page}");
    wait_logged(&cluster, "server", client_ip).await?;
    // And back, from c's pods to a's.
    let back_ip = run_pod(&cluster, "back", &server_on("back", "a")).await?;
    run_pod(&cluster, "caller", &client_on("caller", "c")).await?;
    let page = fetch(&cluster, "caller", &format!("http://{back_ip}:8080/")).await?;
    ensure!(page.contains("hello from back"), "{page}");
    Ok(())
}

#[tokio::test]
async fn a_joining_host_is_routed_to_at_once_and_a_deleted_one_is_forgotten() -> Result<()> {
    let mut cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("b", 1)])).await?;
    run_pod(&cluster, "client", &client_on("client", "a")).await?;
    cluster.add_host("c", 1, &[]).await?;
    let c_block = block_of(&cluster, "c").await?;
    for host in ["a", "b"] {
        wait_until(Duration::from_secs(10), &format!("{host} to route to c"), || async {
            Ok(routes(&cluster, host)
                .await?
                .contains(&c_block.to_string())
                .then_some(()))
        })
        .await?;
    }
    cluster.wait_node_ready("c", true).await?;
    let server_ip = run_pod(&cluster, "server", &server_on("server", "c")).await?;
    let page = fetch(&cluster, "client", &format!("http://{server_ip}:8080/")).await?;
    ensure!(page.contains("hello from server"), "{page}");

    // The host goes, then its Node: its routes go everywhere.
    let out = ctl(
        &cluster.servers(),
        &["delete", "pod", "server", "--grace-period", "0"],
        "",
    )
    .await;
    ensure!(out.ok(), "{out:?}");
    cluster.remove_host("c")?;
    let out = ctl(&cluster.servers(), &["delete", "node", "c"], "").await;
    ensure!(out.ok(), "{out:?}");
    for host in ["a", "b"] {
        wait_until(Duration::from_secs(10), &format!("{host} to forget c"), || async {
            Ok((!routes(&cluster, host).await?.contains(&c_block.to_string())).then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// The lines that went and came between two states.
fn difference(was: &str, now: &str) -> String {
    let gone: Vec<&str> = was.lines().filter(|l| !now.lines().any(|n| n == *l)).collect();
    let came: Vec<&str> = now.lines().filter(|l| !was.lines().any(|w| w == *l)).collect();
    format!("gone: {gone:#?}\ncame: {came:#?}\nnow:\n{now}")
}

/// What the pod network touches on a host, with counters and comments
/// left out: routes, links, the packet filter and the engine's networks.
async fn host_state(cluster: &HostCluster, host: &str) -> Result<String> {
    // Without the carrier flag, which an empty bridge loses in its own time.
    let routes = cluster
        .exec_ok(host, &["ip", "-4", "route", "show", "table", "all"])
        .await?;
    let routes = routes.replace(" linkdown", "");
    let links = cluster.exec_ok(host, &["ip", "-o", "link", "show"]).await?;
    let links: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    let neighbours = cluster
        .exec_ok(host, &["ip", "neigh", "show", "nud", "permanent"])
        .await?;
    let rules = cluster.exec_ok(host, &["iptables-save"]).await?;
    let rules: Vec<String> = rules
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_string())
        .collect();
    let networks = cluster
        .docker_cli(host, &["network", "ls", "--format", "{{.Name}}"])
        .await?;
    // Sorted: Docker moves its own DOCKER-USER jump to the top now and
    // then, which changes nothing the host holds.
    let mut rules = rules;
    rules.sort();
    Ok(format!(
        "routes:\n{routes}\nlinks: {links:?}\nneighbours:\n{neighbours}\nrules:\n{}\nnetworks:\n{}",
        rules.join("\n"),
        String::from_utf8_lossy(&networks.stdout)
    ))
}

/// What the agent itself keeps on a host: its routes, its VXLAN device
/// and entries, and its rules (lines with BOSUN, jumps included).
async fn bosun_state(cluster: &HostCluster, host: &str) -> Result<String> {
    let routes = routes(cluster, host).await?;
    let device = cluster
        .exec_ok(host, &["ip", "-d", "-o", "link", "show", "bosun.vxlan"])
        .await?;
    let device = device
        .split(" link/")
        .next()
        .unwrap_or_default()
        .replace(" state UNKNOWN", "");
    let neighbours = cluster
        .exec_ok(host, &["ip", "neigh", "show", "dev", "bosun.vxlan"])
        .await?;
    let fdb = cluster
        .exec_ok(host, &["bridge", "fdb", "show", "dev", "bosun.vxlan"])
        .await?;
    let rules = cluster.exec_ok(host, &["iptables-save"]).await?;
    let rules: Vec<&str> = rules
        .lines()
        .filter(|l| l.contains("BOSUN"))
        .map(|l| l.split(" [").next().unwrap_or(l))
        .collect();
    Ok(format!(
        "routes:\n{routes}\ndevice: {device}\nneighbours:\n{neighbours}\nfdb:\n{fdb}\nrules:\n{}",
        rules.join("\n")
    ))
}

#[tokio::test]
async fn a_killed_agent_converges_on_the_same_routes_and_rules_and_cleanup_leaves_the_host_as_it_was() -> Result<()> {
    let mut cluster = HostCluster::start(HostsSpec::new(1, &[("a", 1), ("c", 2)])).await?;
    cluster.add_idle_host("d", 1).await?;
    // Docker adds its engine-wide jumps (to DOCKER, DOCKER-ISOLATION) with
    // its first bridge network and keeps them after the last: an engine
    // that has had a network, as any user's has, is the host as found.
    for step in [&["network", "create", "first"][..], &["network", "rm", "first"]] {
        let out = cluster.docker_cli("d", step).await?;
        ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let before = host_state(&cluster, "d").await?;
    cluster.start_agent("d", &[])?;
    cluster.wait_node_ready("d", true).await?;
    let (a_block, c_block) = (block_of(&cluster, "a").await?, block_of(&cluster, "c").await?);
    let d_block = block_of(&cluster, "d").await?;
    // Both backends at once: a directly, c through VXLAN; and d's own
    // bridge made.
    wait_until(
        Duration::from_secs(10),
        "d to route to a and c and to its bridge",
        || async {
            let table = routes(&cluster, "d").await?;
            let bridge = cluster
                .exec_ok("d", &["ip", "route", "show", &d_block.to_string()])
                .await?;
            let ready = table.contains(&a_block.to_string())
                && table.contains(&c_block.to_string())
                && bridge.contains("dev br-");
            Ok(ready.then_some(()))
        },
    )
    .await?;
    let running = bosun_state(&cluster, "d").await?;

    cluster.kill_agent("d")?;
    // Taken away meanwhile, to see the new agent put it back.
    cluster
        .exec_ok("d", &["ip", "route", "del", &a_block.to_string()])
        .await?;
    cluster.restart_agent("d")?;
    wait_until(
        Duration::from_secs(20),
        "the restarted agent to route to a again",
        || async {
            Ok(routes(&cluster, "d")
                .await?
                .contains(&a_block.to_string())
                .then_some(()))
        },
    )
    .await?;
    let again = bosun_state(&cluster, "d").await?;
    ensure!(again == running, "after a restart, {}", difference(&running, &again));
    for jump in ["-A FORWARD -j BOSUN-FORWARD", "-A POSTROUTING -j BOSUN-POSTROUTING"] {
        let count = again.lines().filter(|l| *l == jump).count();
        ensure!(count == 1, "{count} times {jump:?}:\n{again}");
    }
    ensure!(again.contains("bosun.vxlan") && again.contains("PERMANENT"), "{again}");

    // --cleanup with the agent's own flags: the host as it was.
    cluster.kill_agent("d")?;
    let host = cluster.host("d")?.clone();
    let agent = bin_dir().join("node-agent");
    let data = host.dir.join("agent").display().to_string();
    let cleanup = [
        agent.to_str().context("a path")?,
        "--cleanup",
        "--name",
        "d",
        "--address",
        &host.address.to_string(),
        "--docker-host",
        host.docker_host.as_deref().context("an engine")?,
        "--data-dir",
        &data,
    ];
    cluster.exec_ok("d", &cleanup).await?;
    let after = host_state(&cluster, "d").await?;
    ensure!(after == before, "after --cleanup, {}", difference(&before, &after));
    Ok(())
}

/// A pod network made for another backend (Docker masquerading, or not)
/// is refused with the remedy, like one on another subnet: pod-to-pod
/// traffic would lose its source address, or pods the way out.
#[tokio::test]
async fn a_network_made_for_another_backend_is_refused() -> Result<()> {
    let mut cluster = TestCluster::start(1, &[], &["a"], &[]).await?;
    let block: Cidr = cluster.pod_ranges.block(1).parse()?;
    let gateway = block.gateway().context("a gateway")?;
    let made = Command::new("docker")
        .args(["network", "create", "--label"])
        .arg(format!("{TEST_LABEL}={}", cluster.run))
        .arg(format!("--subnet={block}"))
        .arg(format!("--gateway={gateway}"))
        .arg(format!(
            "--ip-range={}",
            engine_range(block).context("an engine range")?
        ))
        .args(["-o", "com.docker.network.bridge.enable_ip_masquerade=false"])
        .arg(cluster.network("b"))
        .output()?;
    ensure!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    cluster.join_agent("b", &[]).await?;
    ensure!(pod_cidr(&cluster, "b").await? == block.to_string());
    let out = ctl(&cluster.servers(), &["apply", "-f", "-"], &pod_on("on-b", "b")).await;
    ensure!(out.ok(), "{out:?}");
    let pods = Api::<Pod>::namespaced(&cluster.client(), "default");
    let message = wait_until(Duration::from_secs(30), "on-b to fail with the reason", || async {
        let waiting = pods
            .get("on-b")
            .await?
            .status
            .unwrap_or_default()
            .container_statuses
            .into_iter()
            .find_map(|c| c.state.and_then(|s| s.waiting));
        Ok(waiting
            .map(|w| w.message)
            .filter(|m| m.contains("another --network-backend")))
    })
    .await?;
    ensure!(message.contains("docker network rm"), "{message}");
    Ok(())
}

#[test]
fn an_agent_that_routes_refuses_an_address_not_of_this_host() -> Result<()> {
    let data = tempfile::TempDir::with_prefix("bosun-test-address-")?;
    let cases = [
        ("agent", "needs the node's --address as an IPv4 address"),
        (
            "192.0.2.77",
            "no interface of this host has the node's address 192.0.2.77",
        ),
    ];
    for (address, reason) in cases {
        let out = Command::new(bin_dir().join("node-agent"))
            .args([
                "--master",
                "127.0.0.1:1",
                "--listen",
                "127.0.0.1:0",
                "--address",
                address,
            ])
            .arg("--data-dir")
            .arg(data.path())
            .env("RUST_BACKTRACE", "0")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains(reason),
            "--address {address}: {stderr}"
        );
    }
    Ok(())
}
