//! Changing who the masters are, with real master processes: a joiner
//! stays a learner until it has caught up (and is removed when it never
//! does), `ctl cluster remove` keeps a quorum unless forced, and
//! `--force-new-cluster` recovers a survivor of a lost majority.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::{channel, config_map, ctl, wait_until, MasterCluster};
use bosun_proto::api::{CreateRequest, GetRequest};
use bosun_proto::internal::raft_client::RaftClient;
use bosun_proto::internal::JoinRequest;

/// Short enough for a test, long enough for a learner on loopback.
const JOIN_TIMEOUT: &[&str] = &["--join-timeout-ms", "5000"];

async fn write(cluster: &MasterCluster, index: usize, name: &str) -> Result<()> {
    cluster
        .objects(index)
        .await?
        .create(CreateRequest {
            object: Some(config_map("default", name, name)),
            ..Default::default()
        })
        .await
        .with_context(|| format!("writing {name}"))?;
    Ok(())
}

/// (id, voter) of every member, as the leader lists them.
async fn members(cluster: &MasterCluster) -> Result<Vec<(u64, bool)>> {
    let leader = cluster.leader().await?;
    let status = cluster.status(leader).await?;
    Ok(status.members.iter().map(|m| (m.id, m.voter)).collect())
}

/// A join sent for a master that never answers (it stopped right after it
/// asked, or its address was mistyped): it is a learner meanwhile, writes
/// go on, and after the join timeout it is removed and the join fails with
/// the reason, also when the one who asked has gone away.
#[tokio::test]
async fn a_joiner_that_never_catches_up_stays_a_learner_and_is_removed() -> Result<()> {
    let cluster = MasterCluster::start(1, JOIN_TIMEOUT).await?;
    let mut raft = RaftClient::new(channel(&cluster.masters[0].addr).await?);
    let joins: Vec<_> = [2u64, 3, 4]
        .into_iter()
        .map(|node_id| {
            let mut raft = raft.clone();
            tokio::spawn(async move {
                raft.join(JoinRequest {
                    node_id,
                    // Nothing listens there.
                    address: format!("127.0.0.1:{}", node_id),
                })
                .await
            })
        })
        .collect();
    wait_until(Duration::from_secs(10), "three learners", || async {
        let listed = members(&cluster).await?;
        Ok((listed.len() == 4).then_some(listed))
    })
    .await
    .map(|listed| assert_eq!(listed, vec![(1, true), (2, false), (3, false), (4, false)]))?;
    // One of those who asked goes away: its learner must go all the same.
    joins[2].abort();
    write(&cluster, 0, "while-joining").await?;
    ensure!(
        members(&cluster).await?.len() == 4,
        "the write waited until the learners were removed"
    );
    for join in joins.into_iter().take(2) {
        let refused = join.await?.expect_err("a join that never caught up");
        assert_eq!(refused.code(), tonic::Code::DeadlineExceeded);
        assert!(
            refused.message().contains("did not catch up") && refused.message().contains("--advertise"),
            "{}",
            refused.message()
        );
    }
    wait_until(Duration::from_secs(10), "the learners to be removed", || async {
        Ok((members(&cluster).await? == vec![(1, true)]).then_some(()))
    })
    .await?;
    write(&cluster, 0, "after-joining").await?;
    // The same join, asked again, is refused again; nothing was left over.
    let again = raft
        .join(JoinRequest {
            node_id: 2,
            address: "127.0.0.1:2".into(),
        })
        .await
        .expect_err("still unreachable");
    assert_eq!(again.code(), tonic::Code::DeadlineExceeded);
    Ok(())
}

/// A real master started with a mistyped `--advertise` never becomes a
/// voter: it stops with the reason, and the cluster keeps taking writes.
#[tokio::test]
async fn a_master_with_a_mistyped_advertise_address_stops_with_the_reason() -> Result<()> {
    let mut cluster = MasterCluster::start(1, JOIN_TIMEOUT).await?;
    let index = cluster.add_master(&["--advertise", "127.0.0.1:1"]).await?;
    let log = cluster.wait_for_exit(index, Duration::from_secs(20)).await?;
    assert!(
        log.contains("could not join the cluster") && log.contains("did not catch up"),
        "{log}"
    );
    assert_eq!(members(&cluster).await?, vec![(1, true)]);
    write(&cluster, 0, "still-writable").await?;
    Ok(())
}

#[tokio::test]
async fn removing_masters_keeps_a_quorum_unless_forced() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &["--leader-wait-ms", "2000"]).await?;
    let servers = cluster.addrs();
    cluster.kill(2);

    // Removing master 2 would leave {1, 3} with only 1 reachable.
    let refused = ctl(&servers, &["cluster", "remove", "2"], "").await;
    let error = refused.error.clone().unwrap_or_default();
    assert!(
        error.contains("leaves 1 of 2 voters reachable") && error.contains("--force"),
        "{refused:?}"
    );
    assert_eq!(members(&cluster).await?.len(), 3, "nothing removed");

    let removed = ctl(&servers, &["cluster", "remove", "3"], "").await;
    assert!(removed.ok(), "{removed:?}");
    assert_eq!(removed.stdout, "master 3 removed\n");
    assert_eq!(members(&cluster).await?, vec![(1, true), (2, true)]);
    let leader = cluster.leader().await?;
    write(&cluster, leader, "two-left").await?;

    let missing = ctl(&servers, &["cluster", "remove", "9"], "").await;
    assert!(
        missing
            .error
            .clone()
            .unwrap_or_default()
            .contains("master 9 is not a member"),
        "{missing:?}"
    );

    // Down to one voter by removing the leader itself: the other one
    // leads alone; then the last one is kept.
    let survivor = cluster.others(leader)[0];
    let survivor_id = cluster.masters[survivor].id;
    let leader_id = cluster.masters[leader].id;
    let removed = ctl(&servers, &["cluster", "remove", &leader_id.to_string()], "").await;
    assert!(removed.ok(), "{removed:?}");
    cluster.kill(leader);
    assert_eq!(members(&cluster).await?, vec![(survivor_id, true)]);
    let last = ctl(&servers, &["cluster", "remove", &survivor_id.to_string()], "").await;
    assert!(
        last.error.clone().unwrap_or_default().contains("is the last voter"),
        "{last:?}"
    );
    write(&cluster, survivor, "one-left").await?;
    Ok(())
}

/// Two of three masters are lost for good: the survivor is restarted with
/// `--force-new-cluster`, keeps every object, takes writes alone, and new
/// masters join it.
#[tokio::test]
async fn force_new_cluster_recovers_the_survivor_of_a_lost_majority() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &["--leader-wait-ms", "1000"]).await?;
    let leader = cluster.leader().await?;
    write(&cluster, leader, "before").await?;
    let survivor = cluster.others(leader)[0];
    for index in cluster.others(survivor) {
        cluster.kill(index);
    }
    let stuck = write(&cluster, survivor, "no-quorum").await;
    ensure!(stuck.is_err(), "a write without a quorum succeeded");

    cluster.stop(survivor).await?;
    cluster
        .restart_with(survivor, &["--leader-wait-ms", "1000", "--force-new-cluster"])
        .await?;
    let id = cluster.masters[survivor].id;
    wait_until(Duration::from_secs(15), "the survivor alone, leading", || async {
        let status = cluster.status(survivor).await?;
        let alone = status.leader_id == id && status.members.len() == 1 && status.members[0].voter;
        Ok(alone.then_some(()))
    })
    .await?;
    let kept = cluster
        .objects(survivor)
        .await?
        .get(GetRequest {
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: "before".into(),
            allow_stale: false,
        })
        .await;
    assert!(kept.is_ok(), "the object written before the loss: {kept:?}");
    write(&cluster, survivor, "after").await?;

    // Without the flag again, new masters join the recovered cluster.
    cluster.stop(survivor).await?;
    cluster.restart_with(survivor, &["--leader-wait-ms", "1000"]).await?;
    cluster.masters.swap(0, survivor);
    cluster.add_master(&[]).await?;
    cluster.wait_for_voters(2).await?;
    assert_eq!(members(&cluster).await?.len(), 2);
    let leader = cluster.leader().await?;
    write(&cluster, leader, "with-a-new-member").await?;
    Ok(())
}
