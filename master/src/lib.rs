//! The Bosun master: holds the cluster's desired state, replicated with
//! Raft (openraft, rocksdb), and serves the public gRPC API.
//!
//! Start with [`server::run`], which wires everything together. Then:
//! - [`api`]: the public gRPC services (objects, cluster status).
//! - [`admission`] and [`defaults`]: what happens to an object before it
//!   is proposed.
//! - [`replica`]: proposing commands, forwarding to the leader, linearizable
//!   reads; [`membership`] joins and removes masters; [`proposer`] batches
//!   concurrent proposals into single log entries.
//! - [`raft`]: openraft's storage (rocksdb log and state machine) and the
//!   gRPC network between masters; [`db`] is the key layout.
//! - [`store`]: the applied state in memory and the deterministic apply
//!   rules, plus the watch history.
//! - [`leader`]: duties only the leader runs; [`nodes`] is node liveness
//!   from heartbeats and node-failure eviction; [`scheduler`] places pods;
//!   [`controllers`] keep ReplicaSets, Deployments and ownership in line;
//!   [`events`] is how they tell users.
//! - [`config`] holds the flags.

pub mod admission;
pub mod api;
pub mod config;
pub mod controllers;
pub(crate) mod db;
pub mod defaults;
pub mod events;
pub mod eviction;
pub mod leader;
pub mod membership;
pub mod nodes;
pub(crate) mod peers;
pub mod proposer;
pub mod raft;
pub mod replica;
pub mod scheduler;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{run, ServerError};
