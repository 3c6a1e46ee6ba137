//! Wires one master together: rocksdb, the Raft node, the gRPC services on
//! one port, bootstrapping or joining, and the leader's duties.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bosun_proto::api::cluster_server::ClusterServer;
use bosun_proto::api::nodes_server::NodesServer;
use bosun_proto::api::objects_server::ObjectsServer;
use bosun_proto::api::pods_server::PodsServer;
use bosun_proto::internal::raft_server::RaftServer;
use bosun_proto::internal::JoinRequest;
use bosun_proto::transport::Transport;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use crate::api::{ClusterService, NodesService, ObjectsService, PodsService};
use crate::config::Config;
use crate::db::{Db, DbError, CF_RAFT};
use crate::leader::Duties;
use crate::nodes::Liveness;
use crate::peers::{Peers, MAX_MESSAGE_BYTES};
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::service::RaftService;
use crate::raft::state_machine::{load_state, StateMachine};
use crate::raft::writer::Writer;
use crate::raft::{Node, Raft};
use crate::replica::Replica;
use crate::store::Store;

const KEY_NODE_ID: &[u8] = b"node_id";
/// The largest request the public object API decodes: room for a batch of
/// status updates, far below what would strain a master. One object is
/// held to `validate::MAX_OBJECT_BYTES` (1.5 MiB) on top of this.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Why a master could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read the stored state")]
    LoadState(#[source] Box<openraft::StorageError<u64>>),
    #[error("data directory {path} belongs to master {stored}, not {requested}; use --node-id {stored} or another --data-dir")]
    NodeIdMismatch { path: String, stored: u64, requested: u64 },
    #[error("cannot write to the data directory")]
    Storage(#[source] rocksdb::Error),
    #[error("listening on {listen} (an unspecified address): pass --advertise HOST:PORT so other masters can reach this one")]
    AdvertiseRequired { listen: SocketAddr },
    #[error("invalid Raft timing: {0}")]
    RaftConfig(String),
    #[error("the Raft node failed to start: {0}")]
    RaftStart(String),
    #[error("gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("gRPC reflection could not be set up: {0}")]
    Reflection(String),
    #[error("could not join the cluster through {seed}: {reason}")]
    Join { seed: String, reason: String },
    #[error("{0}")]
    Flag(String),
    #[error("--force-new-cluster: the data directory {path} holds no cluster to recover; start without the flag to make a new one")]
    NothingToRecover { path: String },
}

/// Runs a master on an already-bound listener until `shutdown` completes.
///
/// # Errors
/// [`ServerError`] when the data directory, Raft or the listener cannot be
/// used.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let pod_ranges = config.pod_ranges().map_err(ServerError::Flag)?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::RaftStart(e.to_string()))?;
    let advertise = match &config.advertise {
        Some(advertise) => advertise.clone(),
        None if local.ip().is_unspecified() => return Err(ServerError::AdvertiseRequired { listen: local }),
        None => local.to_string(),
    };
    let data_dir = config.data_dir();
    let db = Db::open(&data_dir)?;
    check_node_id(&db, config.node_id, &data_dir.display().to_string())?;

    let state = load_state(&db).map_err(|e| ServerError::LoadState(Box::new(e)))?;
    let store = Store::new(state, config.watch_history);
    let raft_config = config
        .raft
        .openraft_config()
        .validate()
        .map_err(|e| ServerError::RaftConfig(e.to_string()))?;
    if config.force_new_cluster {
        let forced = crate::raft::log_store::force_single_member(&db, config.node_id, &advertise)
            .map_err(|e| ServerError::LoadState(Box::new(e)))?
            .ok_or_else(|| ServerError::NothingToRecover {
                path: data_dir.display().to_string(),
            })?;
        tracing::warn!(
            node_id = config.node_id,
            index = forced.index,
            "--force-new-cluster: this master is now the only member; restart it without the flag, then join new masters"
        );
    }
    // Plaintext until the security issue builds it from the cluster's CA.
    let transport = Transport::plaintext();
    let peers = Arc::new(Peers::new(transport.clone()));
    let writer = Writer::start(db.clone());
    let log_store = LogStore::open(db.clone(), writer.clone()).map_err(|e| ServerError::LoadState(Box::new(e)))?;
    let raft = Raft::new(
        config.node_id,
        Arc::new(raft_config),
        Network::new(peers.clone()),
        log_store,
        StateMachine::new(db.clone(), writer, store.clone()),
    )
    .await
    .map_err(|e| ServerError::RaftStart(e.to_string()))?;
    let replica = Arc::new(Replica::new(
        config.node_id,
        raft.clone(),
        store,
        peers,
        config.replica_timing(),
    ));
    tracing::info!(node_id = config.node_id, %advertise, data_dir = %data_dir.display(), "master starting");

    let token = CancellationToken::new();
    let mut joining = None;
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ServerError::RaftStart(e.to_string()))?;
    if !initialized {
        match &config.join {
            None => {
                let members = BTreeMap::from([(
                    config.node_id,
                    Node {
                        addr: advertise.clone(),
                    },
                )]);
                raft.initialize(members)
                    .await
                    .map_err(|e| ServerError::RaftStart(e.to_string()))?;
                tracing::info!("initialized a new one-member cluster");
            }
            Some(seed) => {
                joining = Some(tokio::spawn(join_cluster(
                    replica.clone(),
                    seed.clone(),
                    advertise.clone(),
                    token.clone(),
                )));
            }
        }
    }
    let liveness = Arc::new(Liveness::default());
    let duties = Duties {
        liveness: liveness.clone(),
        node_grace: config.node_grace(),
        pod_eviction: config.pod_eviction(),
        event_ttl: config.event_ttl(),
        scheduler: config.scheduler_strategy,
        pod_ranges,
    };
    tokio::spawn(crate::leader::supervise(replica.clone(), duties, token.clone()));

    let serve = serve(replica, liveness, &transport, listener, token.clone());
    tokio::pin!(serve);
    let join_failed = async {
        match joining {
            Some(task) => match task.await {
                Ok(Err(reason)) => reason,
                _ => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = &mut serve => result,
        () = shutdown => {
            token.cancel();
            serve.await
        }
        reason = join_failed => {
            token.cancel();
            serve.await.and(Err(ServerError::Join {
                seed: config.join.clone().unwrap_or_default(),
                reason,
            }))
        }
    };
    token.cancel();
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    tracing::info!("master stopped");
    result
}

async fn serve(
    replica: Arc<Replica>,
    liveness: Arc<Liveness>,
    transport: &Transport,
    listener: TcpListener,
    token: CancellationToken,
) -> Result<(), ServerError> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<ObjectsServer<ObjectsService>>().await;
    health_reporter.set_serving::<ClusterServer<ClusterService>>().await;
    health_reporter.set_serving::<NodesServer<NodesService>>().await;
    health_reporter.set_serving::<PodsServer<PodsService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bosun_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bosun_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let objects = ObjectsServer::new(ObjectsService::new(replica.clone(), token.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let raft = RaftServer::new(RaftService::new(replica.clone(), liveness.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    transport
        .server()
        .add_service(objects)
        .add_service(NodesServer::new(NodesService::new(replica.clone(), liveness)))
        .add_service(PodsServer::new(PodsService::new(replica.clone())))
        .add_service(ClusterServer::new(ClusterService::new(replica)))
        .add_service(raft)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(transport.incoming(listener), token.cancelled_owned())
        .await
        .map_err(ServerError::Serve)
}

/// Refuses to start a data directory that belongs to another node id.
fn check_node_id(db: &Db, requested: u64, path: &str) -> Result<(), ServerError> {
    let cf = db.cf(CF_RAFT);
    match db.inner.get_cf(cf, KEY_NODE_ID).map_err(ServerError::Storage)? {
        Some(bytes) => {
            let stored = bytes.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if stored != requested {
                return Err(ServerError::NodeIdMismatch {
                    path: path.to_string(),
                    stored,
                    requested,
                });
            }
        }
        None => db
            .inner
            .put_cf(cf, KEY_NODE_ID, requested.to_be_bytes())
            .map_err(ServerError::Storage)?,
    }
    Ok(())
}

/// Asks the master at `seed` to add this one, retrying while no master
/// can answer or a membership change is under way, until it succeeds or
/// the master shuts down. A refusal (this node id is taken, or this master
/// did not catch up in time) is final: it is returned, and the master
/// stops with it.
async fn join_cluster(
    replica: Arc<Replica>,
    seed: String,
    advertise: String,
    token: CancellationToken,
) -> Result<(), String> {
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut client = replica
                .peers
                .client(&seed)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            client
                .join(JoinRequest {
                    node_id: replica.id,
                    address: advertise.clone(),
                })
                .await
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = token.cancelled() => return Ok(()),
        };
        match outcome {
            Ok(reply) => {
                tracing::info!(seed = %seed, leader = reply.into_inner().leader_id, "joined the cluster");
                return Ok(());
            }
            // This node id is taken, this master did not catch up in time,
            // or the seed's address is not one: asking again cannot help.
            // (A membership change already under way is worth a retry.)
            Err(status)
                if matches!(
                    status.code(),
                    Code::AlreadyExists | Code::DeadlineExceeded | Code::InvalidArgument
                ) =>
            {
                tracing::error!(seed = %seed, error = %status.message(), "the cluster refused this master");
                return Err(status.message().to_string());
            }
            Err(status) => tracing::warn!(seed = %seed, error = %status.message(), "cannot join yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = token.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
