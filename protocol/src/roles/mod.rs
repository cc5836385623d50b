//! The three roles of a deployment. Only the client holds a secret; servers see
//! ciphertexts, public keys and the public head weights.

mod client;
mod cluster_server;
mod main_server;
pub mod query_encryption;

pub use client::Client;
pub use cluster_server::ClusterServer;
pub use main_server::{
    Coverage, FailurePolicy, MainServer, QueryStats, ShardSummary, UpdateSummary,
};
