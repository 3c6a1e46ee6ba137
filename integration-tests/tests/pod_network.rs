//! The pod network: each node's block of the cluster's pod ranges, given
//! by the leader through Raft when the node registers.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::agents::{TestCluster, TEST_IMAGE, TEST_LABEL};
use bosun_integration_tests::{bin_dir, ctl, wait_until};
use bosun_proto::api::{EventType, Node, Pod};
use bosun_proto::client::{Api, WatchParams};
use bosun_proto::net::Cidr;

async fn pod_cidr(cluster: &TestCluster, name: &str) -> Result<String> {
    let node = Api::<Node>::all(&cluster.client()).get(name).await?;
    Ok(node.spec.map(|s| s.pod_cidr).unwrap_or_default())
}

async fn wait_pod_cidr(cluster: &TestCluster, name: &str) -> Result<String> {
    wait_until(
        Duration::from_secs(10),
        &format!("node {name} to get a pod range"),
        || async {
            let cidr = pod_cidr(cluster, name).await?;
            Ok((!cidr.is_empty()).then_some(cidr))
        },
    )
    .await
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
