//! `bosun-bench raft`: three masters on loopback driven by N concurrent
//! clients creating and updating ConfigMaps for T seconds; writes/s and
//! latency percentiles; with `--failover`, the leader is killed with
//! SIGKILL after a third of the run and the time until writes succeed
//! again is printed. `--etcd` runs the same load, with the same client
//! code, against a three-member etcd cluster (Debian's `etcd-server`):
//! etcd writes are raw 256-byte key puts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bosun_integration_tests::etcd::{EtcdCluster, KvClient, PutRequest};
use bosun_integration_tests::{channel, config_map, MasterCluster};
use bosun_proto::api::objects_client::ObjectsClient;
use bosun_proto::api::{CreateRequest, Object, UpdateRequest};
use tonic::transport::Channel;

use crate::{ms, percentile};

#[derive(clap::Parser, Clone)]
pub struct RaftArgs {
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Members in the cluster.
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Bytes of data in each ConfigMap (or etcd value).
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Send every write to the leader instead of spreading clients over all
    /// members (followers forward writes to the leader).
    #[arg(long)]
    leader_only: bool,
    /// Kill -9 the leader after a third of the run and measure recovery.
    #[arg(long)]
    failover: bool,
    /// Drive a three-member etcd cluster instead (needs `etcd` on PATH).
    #[arg(long)]
    etcd: bool,
}

/// The system under load.
enum Target {
    Bosun(MasterCluster),
    Etcd(EtcdCluster),
}

impl Target {
    fn addrs(&self) -> Vec<String> {
        match self {
            Target::Bosun(c) => c.addrs(),
            Target::Etcd(c) => c.addrs(),
        }
    }

    async fn leader(&self) -> Result<usize> {
        match self {
            Target::Bosun(c) => c.leader().await,
            Target::Etcd(c) => c.leader().await,
        }
    }

    fn kill(&mut self, index: usize) {
        match self {
            Target::Bosun(c) => c.kill(index),
            Target::Etcd(c) => c.kill(index),
        }
    }
}

/// One client's connection to the system under load.
enum Writer {
    Bosun {
        client: ObjectsClient<Channel>,
        last: Option<Box<Object>>,
    },
    Etcd(KvClient<Channel>),
}

impl Writer {
    async fn connect(etcd: bool, addr: &str) -> Result<Writer> {
        let channel = channel(addr).await?;
        Ok(if etcd {
            Writer::Etcd(KvClient::new(channel))
        } else {
            Writer::Bosun {
                client: ObjectsClient::new(channel),
                last: None,
            }
        })
    }

    /// Bosun: creates a ConfigMap, then alternately updates it and creates
    /// the next one. etcd: puts a new key.
    async fn write(&mut self, name: &str, value: &str) -> Result<(), tonic::Status> {
        match self {
            Writer::Bosun { client, last } => {
                let reply = match last.take() {
                    Some(object) => {
                        let mut object = *object;
                        object
                            .metadata_mut()
                            .expect("config map")
                            .labels
                            .insert("touched".into(), "yes".into());
                        client
                            .update(UpdateRequest {
                                object: Some(object),
                                ..Default::default()
                            })
                            .await
                            .map(|_| None)
                    }
                    None => client
                        .create(CreateRequest {
                            object: Some(config_map("default", name, value)),
                            ..Default::default()
                        })
                        .await
                        .map(|r| Some(Box::new(r.into_inner()))),
                }?;
                *last = reply;
                Ok(())
            }
            Writer::Etcd(kv) => {
                let request = PutRequest {
                    key: name.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                };
                kv.put(timed(request)).await.map(|_| ())
            }
        }
    }
}

/// A request that fails rather than hang on a dead member.
fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(REQUEST_TIMEOUT);
    request
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What one client saw.
#[derive(Default)]
struct ClientLog {
    /// (start, latency) of each acknowledged write.
    writes: Vec<(Instant, Duration)>,
    errors: usize,
}

async fn run_client(etcd: bool, id: usize, addrs: Vec<String>, value: String, stop: Arc<AtomicBool>) -> ClientLog {
    let mut log = ClientLog::default();
    let mut index = id;
    let mut writer = None;
    let mut sequence = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let current = match writer.as_mut() {
            Some(writer) => writer,
            None => match Writer::connect(etcd, &addrs[index % addrs.len()]).await {
                Ok(connected) => writer.insert(connected),
                Err(_) => {
                    index += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let start = Instant::now();
        let name = format!("bench-{id}-{sequence}");
        sequence += 1;
        match current.write(&name, &value).await {
            Ok(()) => log.writes.push((start, start.elapsed())),
            Err(status) => {
                log.errors += 1;
                // The member may have died: move to the next one.
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
                ) {
                    writer = None;
                    index += 1;
                } else if let Writer::Bosun { last, .. } = current {
                    *last = None;
                }
            }
        }
    }
    log
}

pub async fn run(args: RaftArgs) -> Result<()> {
    let mut target = if args.etcd {
        Target::Etcd(EtcdCluster::start(args.masters).await?)
    } else {
        Target::Bosun(MasterCluster::start(args.masters, &[]).await?)
    };
    let leader = target.leader().await?;
    let mut addrs = target.addrs();
    if args.leader_only {
        addrs.swap(0, leader);
        addrs.truncate(1);
    }
    println!(
        "bosun-bench raft: {} {} members, {} clients, {} s, {}-byte values, writes to {}",
        args.masters,
        if args.etcd { "etcd" } else { "bosun" },
        args.clients,
        args.seconds,
        args.value_bytes,
        if args.leader_only { "the leader" } else { "every member" }
    );
    let all_addrs = {
        let mut all = addrs.clone();
        all.extend(target.addrs().into_iter().filter(|a| !addrs.contains(a)));
        all
    };
    let stop = Arc::new(AtomicBool::new(false));
    let value = "x".repeat(args.value_bytes);
    let begin = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let start_at = id % addrs.len();
            let mut order = all_addrs.clone();
            order.rotate_left(start_at);
            tokio::spawn(run_client(args.etcd, id, order, value.clone(), stop.clone()))
        })
        .collect();
    let mut killed_at = None;
    if args.failover {
        tokio::time::sleep(Duration::from_secs(args.seconds) / 3).await;
        killed_at = Some(Instant::now());
        target.kill(leader);
        println!("killed the leader with SIGKILL");
        tokio::time::sleep(Duration::from_secs(args.seconds) * 2 / 3).await;
    } else {
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.context("client task")?);
    }
    report(&logs, begin.elapsed(), killed_at);
    Ok(())
}

fn report(logs: &[ClientLog], elapsed: Duration, killed_at: Option<Instant>) {
    let mut latencies: Vec<Duration> = logs.iter().flat_map(|l| l.writes.iter().map(|(_, d)| *d)).collect();
    latencies.sort();
    let errors: usize = logs.iter().map(|l| l.errors).sum();
    println!(
        "writes: {}  errors: {}  throughput: {:.0} writes/s",
        latencies.len(),
        errors,
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 100.0))
    );
    let Some(killed) = killed_at else {
        return;
    };
    // The first write issued after the kill that was acknowledged.
    let first = logs
        .iter()
        .flat_map(|l| l.writes.iter())
        .filter(|(start, _)| *start >= killed)
        .map(|(start, latency)| (*start + *latency).duration_since(killed))
        .min();
    let mut completions: Vec<Instant> = logs
        .iter()
        .flat_map(|l| l.writes.iter().map(|(s, d)| *s + *d))
        .collect();
    completions.sort();
    let gap = completions.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    match first {
        Some(d) => println!(
            "failover: first write acknowledged {} after the kill; longest pause in acknowledgements {}",
            ms(d),
            ms(gap)
        ),
        None => println!("failover: no write succeeded after the kill"),
    }
}
