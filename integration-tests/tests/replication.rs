//! Three (and four) real master processes on loopback: replication,
//! leader failure, full restarts, joining from a snapshot, and watches that
//! resume across a leader change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::{config_map, wait_until, MasterCluster};
use bosun_proto::api::{self, CreateRequest, EventType, GetRequest, ListRequest, Object, UpdateRequest, WatchRequest};
use bosun_proto::client::{Api, Client, PostParams};
use futures::StreamExt;

fn data_of(object: &Object) -> String {
    api::ConfigMap::try_from(object.clone())
        .map(|cm| cm.data.get("value").cloned().unwrap_or_default())
        .unwrap_or_default()
}

async fn create_via(client: &mut Client, object: Object) -> Result<Object> {
    let kind = object.kind().context("an object with a kind")?;
    let api = Api::dynamic(client, kind, object.namespace());
    Ok(api.create(&PostParams::default(), object).await?)
}

fn get_request(name: &str, allow_stale: bool) -> GetRequest {
    GetRequest {
        kind: "ConfigMap".into(),
        namespace: "default".into(),
        name: name.into(),
        allow_stale,
    }
}

fn list_request(allow_stale: bool) -> ListRequest {
    ListRequest {
        kind: "ConfigMap".into(),
        namespace: "default".into(),
        label_selector: String::new(),
        field_selector: String::new(),
        allow_stale,
    }
}

#[tokio::test]
async fn an_object_written_through_a_follower_is_read_through_another_master() -> Result<()> {
    let cluster = MasterCluster::start(3, &[]).await?;
    let leader = cluster.leader().await?;
    let followers = cluster.others(leader);
    let created = cluster
        .objects(followers[0])
        .await?
        .create(CreateRequest {
            object: Some(config_map("default", "shared", "hello")),
            ..Default::default()
        })
        .await?
        .into_inner();
    for reader in [followers[1], leader] {
        let read = cluster
            .objects(reader)
            .await?
            .get(get_request("shared", false))
            .await?
            .into_inner();
        assert_eq!(data_of(&read), "hello");
        assert_eq!(read.resource_version(), created.resource_version());
        assert_eq!(read.metadata().unwrap().uid, created.metadata().unwrap().uid);
    }
    Ok(())
}

#[tokio::test]
async fn killing_the_leader_loses_no_acknowledged_write() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &[]).await?;
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for writer in 0..6 {
        // Each writer starts on a different master and fails over.
        let mut servers = cluster.addrs();
        servers.rotate_left(writer % 3);
        let (acknowledged, stop, count) = (acknowledged.clone(), stop.clone(), count.clone());
        writers.push(tokio::spawn(async move {
            let mut client = Client::new(servers);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{writer}-{n}");
                n += 1;
                if let Ok(created) = create_via(&mut client, config_map("default", &name, &name)).await {
                    acknowledged.lock().unwrap().insert(name, created.resource_version());
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    wait_until(Duration::from_secs(30), "100 writes before the kill", || async {
        Ok((count.load(Ordering::SeqCst) >= 100).then_some(()))
    })
    .await?;
    let leader = cluster.leader().await?;
    cluster.kill(leader);
    let before = count.load(Ordering::SeqCst);
    wait_until(Duration::from_secs(30), "100 writes after the kill", || async {
        Ok((count.load(Ordering::SeqCst) >= before + 100).then_some(()))
    })
    .await?;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await?;
    }
    let new_leader = cluster.leader().await?;
    ensure!(new_leader != leader, "a new leader was elected");
    let acknowledged = acknowledged.lock().unwrap().clone();
    let survivor = cluster.others(leader)[0];
    let listed = cluster
        .objects(survivor)
        .await?
        .list(list_request(false))
        .await?
        .into_inner();
    let stored: HashMap<String, u64> = listed
        .items
        .iter()
        .map(|o| (o.name().to_string(), o.resource_version()))
        .collect();
    for (name, revision) in &acknowledged {
        ensure!(
            stored.get(name) == Some(revision),
            "acknowledged write {name} at {revision} is missing"
        );
    }
    ensure!(
        acknowledged.len() >= 200,
        "only {} writes acknowledged",
        acknowledged.len()
    );
    Ok(())
}

#[tokio::test]
async fn stopping_and_restarting_every_master_keeps_objects_and_revisions() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &[]).await?;
    let mut client = Client::new(cluster.addrs());
    for i in 0..20 {
        create_via(&mut client, config_map("default", &format!("keep-{i}"), "v1")).await?;
    }
    let mut first = cluster.objects(0).await?;
    let current = first.get(get_request("keep-3", false)).await?.into_inner();
    let mut changed = config_map("default", "keep-3", "v2");
    changed.metadata_mut().unwrap().resource_version = current.resource_version();
    first
        .update(UpdateRequest {
            object: Some(changed),
            ..Default::default()
        })
        .await?;
    let before = first.list(list_request(false)).await?.into_inner();

    for index in 0..3 {
        cluster.stop(index).await?;
    }
    for index in 0..3 {
        cluster.restart(index).await?;
    }
    cluster.leader().await?;
    for index in 0..3 {
        let after = wait_until(Duration::from_secs(20), "the restarted master to serve", || async {
            Ok(Some(
                cluster
                    .objects(index)
                    .await?
                    .list(list_request(false))
                    .await?
                    .into_inner(),
            ))
        })
        .await?;
        let summary = |list: &api::ListResponse| -> BTreeMap<String, (u64, String)> {
            list.items
                .iter()
                .map(|o| (o.name().to_string(), (o.resource_version(), data_of(o))))
                .collect()
        };
        assert_eq!(summary(&after), summary(&before), "master {index}");
        ensure!(
            after.revision >= before.revision,
            "revision went backwards on master {index}"
        );
    }
    let next = create_via(
        &mut Client::new(cluster.addrs()),
        config_map("default", "after-restart", "x"),
    )
    .await?;
    ensure!(
        next.resource_version() > before.revision,
        "new writes get later revisions"
    );
    Ok(())
}

#[tokio::test]
async fn a_fourth_master_joins_and_catches_up_from_a_snapshot() -> Result<()> {
    let args = ["--snapshot-logs", "50", "--keep-logs", "5"];
    let mut cluster = MasterCluster::start(3, &args).await?;
    let mut client = Client::new(cluster.addrs());
    for i in 0..200 {
        create_via(&mut client, config_map("default", &format!("snap-{i}"), "x")).await?;
    }
    let leader = cluster.leader().await?;
    let leader_id = cluster.masters[leader].id;
    wait_until(Duration::from_secs(20), "the leader to compact its log", || async {
        let status = cluster.status(leader).await?;
        let me = status
            .members
            .iter()
            .find(|m| m.id == leader_id)
            .context("leader in status")?;
        Ok((me.purged_index > 0).then_some(()))
    })
    .await?;

    let fourth = cluster.add_master(&args).await?;
    cluster.wait_for_voters(4).await?;
    let fourth_id = cluster.masters[fourth].id;
    wait_until(
        Duration::from_secs(30),
        "the new master to hold every object",
        || async {
            let listed = cluster
                .objects(fourth)
                .await?
                .list(list_request(true))
                .await?
                .into_inner();
            Ok((listed.items.len() == 200).then_some(()))
        },
    )
    .await?;
    let status = cluster.status(fourth).await?;
    let me = status
        .members
        .iter()
        .find(|m| m.id == fourth_id)
        .context("new master in status")?;
    ensure!(me.voter, "the new master is a voter");
    ensure!(me.snapshot_index > 0, "the new master installed a snapshot: {me:?}");
    Ok(())
}

/// Reads events from a watch until `want` names have been seen.
async fn collect_events(
    stream: &mut tonic::Streaming<api::WatchEvent>,
    want: usize,
    seen: &mut Vec<(String, u64)>,
) -> Result<()> {
    let deadline = Duration::from_secs(20);
    while seen.len() < want {
        let event = tokio::time::timeout(deadline, stream.next())
            .await
            .context("waiting for a watch event")?
            .context("the watch ended")??;
        ensure!(event.r#type == EventType::Added as i32, "unexpected event {event:?}");
        let object = event.object.context("event without object")?;
        seen.push((object.name().to_string(), event.revision));
    }
    Ok(())
}

#[tokio::test]
async fn a_watch_resumed_across_a_leader_change_sees_every_event_once() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &[]).await?;
    let leader = cluster.leader().await?;
    let followers = cluster.others(leader);
    let start = cluster
        .objects(followers[0])
        .await?
        .list(list_request(false))
        .await?
        .into_inner()
        .revision;
    let watch = |since| WatchRequest {
        kind: "ConfigMap".into(),
        namespace: "default".into(),
        label_selector: String::new(),
        field_selector: String::new(),
        since_revision: since,
    };
    let mut stream = cluster
        .objects(followers[0])
        .await?
        .watch(watch(start))
        .await?
        .into_inner();
    let mut client = Client::new(cluster.addrs());
    for i in 0..50 {
        create_via(&mut client, config_map("default", &format!("ev-{i:03}"), "x")).await?;
    }
    let mut seen = Vec::new();
    collect_events(&mut stream, 25, &mut seen).await?;
    drop(stream);
    let resume_from = seen.last().map(|(_, revision)| *revision).context("events seen")?;

    cluster.kill(leader);
    let mut client = Client::new(cluster.addrs());
    for i in 50..100 {
        create_via(&mut client, config_map("default", &format!("ev-{i:03}"), "x")).await?;
    }
    // Resume on the other surviving master.
    let mut stream = cluster
        .objects(followers[1])
        .await?
        .watch(watch(resume_from))
        .await?
        .into_inner();
    collect_events(&mut stream, 100, &mut seen).await?;

    let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("ev-{i:03}")).collect();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "every event once, in order"
    );
    ensure!(seen.windows(2).all(|w| w[0].1 < w[1].1), "revisions increase");
    Ok(())
}

fn pod_event(name: &str) -> Object {
    let pod = api::ObjectMeta {
        namespace: "default".into(),
        name: "web".into(),
        ..Default::default()
    };
    let source = bosun_proto::events::Source::new("test");
    let involved = bosun_proto::events::involving(bosun_proto::Kind::Pod, &pod);
    let mut event = bosun_proto::events::event(involved, &source, "Normal", "Started", "Started container app");
    if let Some(meta) = event.metadata_mut() {
        meta.name = name.into();
    }
    event
}

fn event_request(name: &str) -> GetRequest {
    GetRequest {
        kind: "Event".into(),
        ..get_request(name, false)
    }
}

/// Events are kept by the leader alone, not in the Raft log: one recorded
/// through a follower is read, listed and watched through every master; a
/// new leader starts without the old one's, tells a watch resumed from the
/// old one's revisions to list again, and records new ones.
#[tokio::test]
async fn events_are_kept_by_the_leader_and_served_by_every_master() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &[]).await?;
    let leader = cluster.leader().await?;
    let followers = cluster.others(leader);
    let watch = WatchRequest {
        kind: "Event".into(),
        namespace: "default".into(),
        ..Default::default()
    };
    let mut events = cluster
        .objects(followers[1])
        .await?
        .watch(watch.clone())
        .await?
        .into_inner();
    let created = cluster
        .objects(followers[0])
        .await?
        .create(CreateRequest {
            object: Some(pod_event("started")),
            ..Default::default()
        })
        .await?
        .into_inner();
    for reader in [followers[1], leader, followers[0]] {
        let read = cluster
            .objects(reader)
            .await?
            .get(event_request("started"))
            .await?
            .into_inner();
        ensure!(read.resource_version() == created.resource_version(), "{read:?}");
    }
    let listed = cluster
        .objects(followers[1])
        .await?
        .list(ListRequest {
            kind: "ev".into(),
            ..list_request(false)
        })
        .await?
        .into_inner();
    ensure!(
        listed.items.len() == 1 && listed.revision >= created.resource_version(),
        "{listed:?}"
    );
    let seen = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .context("the watch through a follower saw nothing")?
        .context("the watch ended")??;
    ensure!(
        seen.r#type() == EventType::Added && seen.object.as_ref().map(Object::name) == Some("started"),
        "{seen:?}"
    );

    cluster.kill(leader);
    let survivor = cluster.others(leader)[0];
    wait_until(
        Duration::from_secs(30),
        "a new leader without the old one's events",
        || async {
            let Ok(mut objects) = cluster.objects(survivor).await else {
                return Ok(None);
            };
            match objects.get(event_request("started")).await {
                Err(status) if status.code() == tonic::Code::NotFound => Ok(Some(())),
                _ => Ok(None),
            }
        },
    )
    .await?;
    let resumed = cluster
        .objects(survivor)
        .await?
        .watch(WatchRequest {
            since_revision: listed.revision,
            ..watch
        })
        .await;
    let expired = match resumed {
        Err(status) => status,
        Ok(stream) => match stream.into_inner().next().await {
            Some(Err(status)) => status,
            other => anyhow::bail!("a watch from the old leader's revision went on: {other:?}"),
        },
    };
    ensure!(expired.code() == tonic::Code::OutOfRange, "{expired:?}");
    cluster
        .objects(survivor)
        .await?
        .create(CreateRequest {
            object: Some(pod_event("again")),
            ..Default::default()
        })
        .await?;
    Ok(())
}
