//! Blind-Touch as a deployment: the main server and the cluster servers as gRPC services
//! (tonic) over mutual TLS (rustls), each persisting what it holds in an embedded store
//! (SQLite), and the client's side of the calls.
//!
//! The payloads are the protocol's sealed envelopes (`protocol::wire`), carried as bytes
//! in chunks, so sizes, parameter fingerprints, checksums and signatures are the ones the
//! in-process deployment already checks.

pub mod answers;
pub mod call;
pub mod client_folder;
pub mod cluster_node;
pub mod error;
pub mod grpc;
pub mod main_node;
pub mod node;
pub mod remote;
pub mod serve;
pub mod store;
pub mod tls;
pub mod transport;

pub use error::{DeployError, Result};
