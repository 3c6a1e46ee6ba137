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
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

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
    let peers = Arc::new(Peers::default());
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
        config.leader_wait(),
    ));
    tracing::info!(node_id = config.node_id, %advertise, data_dir = %data_dir.display(), "master starting");

    let token = CancellationToken::new();
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
                tokio::spawn(join_cluster(
                    replica.clone(),
                    seed.clone(),
                    advertise.clone(),
                    token.clone(),
                ));
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
    };
    tokio::spawn(crate::leader::supervise(replica.clone(), duties, token.clone()));

    let serve = serve(replica, liveness, listener, token.clone());
    tokio::pin!(serve);
    let result = tokio::select! {
        result = &mut serve => result,
        () = shutdown => {
            token.cancel();
            serve.await
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
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let raft = RaftServer::new(RaftService::new(replica.clone(), liveness.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(objects)
        .add_service(NodesServer::new(NodesService::new(replica.clone(), liveness)))
        .add_service(PodsServer::new(PodsService::new(replica.clone())))
        .add_service(ClusterServer::new(ClusterService::new(replica)))
        .add_service(raft)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            token.cancelled_owned(),
        )
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

/// Asks the master at `seed` to add this one, retrying until it succeeds
/// or the master shuts down.
async fn join_cluster(replica: Arc<Replica>, seed: String, advertise: String, token: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut client = replica.peers.client(&seed).map_err(|e| e.to_string())?;
            client
                .join(JoinRequest {
                    node_id: replica.id,
                    address: advertise.clone(),
                })
                .await
                .map_err(|s| s.message().to_string())
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = token.cancelled() => return,
        };
        match outcome {
            Ok(reply) => {
                tracing::info!(seed = %seed, leader = reply.into_inner().leader_id, "joined the cluster");
                return;
            }
            Err(e) => tracing::warn!(seed = %seed, error = %e, "cannot join yet; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = token.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
