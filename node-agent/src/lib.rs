//! The Bosun node agent: registers its node, heartbeats to the masters and
//! runs the pods bound to it as containers.
//!
//! Start with [`agent::run`]. Then:
//! - [`runtime`]: the container runtime trait, Docker and a fake.
//! - [`plan`]: the pure decision of what to do for one pod, given what the
//!   runtime reports (restart policy, back-off, status).
//! - [`addresses`]: the pods' addresses in the node's range, given by the
//!   agent so a pod keeps its address while its containers restart.
//! - [`worker`]: one task per pod acting on its plans.
//! - [`probe`]: startup, liveness and readiness probes of the running
//!   containers, whose verdicts the plan turns into readiness and kills.
//! - [`pods`]: watches the pods bound to this node and keeps one worker per
//!   pod; removes containers of pods that are gone.
//! - [`status`] and [`events`]: what the agent tells the masters about its
//!   pods.
//! - [`cleanup`]: the agent's identity on its engine, and the removal of
//!   its containers of clusters it no longer belongs to (and `--cleanup`).
//! - [`network`]: the pod network across hosts: routes to the other
//!   nodes' pod ranges (direct or VXLAN) and the forwarding and
//!   masquerading rules, kept in step with the Node objects.
//! - [`node`]: registration and heartbeats; [`server`]: logs and exec for
//!   the masters; [`simulate`]: many fake agents in one process.

pub mod addresses;
pub mod agent;
pub mod cleanup;
pub mod config;
pub mod context;
pub mod env;
pub mod events;
pub mod network;
pub mod node;
pub mod plan;
pub mod pods;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod simulate;
pub mod status;
pub mod worker;

pub use agent::run;
pub use config::{AgentConfig, Cli};

/// The agent's version, reported in the Node's status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
