//! Starting the servers: bind, serve over mutual TLS until SIGTERM or Ctrl-C, then stop
//! accepting and finish the calls in flight.

use crate::cluster_node::ClusterNode;
use crate::main_node::MainNode;
use crate::node::{shutdown_signal, Limits};
use crate::tls::{Identity, TlsDir};
use crate::transport::{Deadlines, GrpcTransport};
use crate::{DeployError, Result};
use protocol::roles::FailurePolicy;
use protocol::{Params, ResolvedEngine};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tonic::transport::Server;

/// What `touchstone serve cluster` needs.
pub struct ClusterOptions {
    /// Address to listen on (HOST:PORT).
    pub listen: String,
    /// The store folder.
    pub store: PathBuf,
    /// The CA folder (ca.pem, server.pem, server.key).
    pub tls: PathBuf,
    /// The parameter set the deployment uses.
    pub params: Params,
    /// How `columnar` is evaluated.
    pub engine: ResolvedEngine,
    /// Size limits on what it receives.
    pub limits: Limits,
}

/// What `touchstone serve main` needs.
pub struct MainOptions {
    /// Address to listen on (HOST:PORT).
    pub listen: String,
    /// The clusters' addresses, in order.
    pub clusters: Vec<String>,
    /// The store folder.
    pub store: PathBuf,
    /// The CA folder.
    pub tls: PathBuf,
    /// The parameter set.
    pub params: Params,
    /// Strict (a failed cluster fails the query) or partial.
    pub policy: FailurePolicy,
    /// Deadlines of the calls to the clusters.
    pub deadlines: Deadlines,
    /// Size limits.
    pub limits: Limits,
}

fn address(listen: &str) -> Result<SocketAddr> {
    listen
        .parse()
        .map_err(|e| DeployError::Input(format!("--listen `{listen}`: {e} (expected IP:PORT)")))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DeployError::Input(format!("cannot start the async runtime: {e}")))
}

/// Runs a cluster server until SIGTERM/Ctrl-C.
pub fn run_cluster(options: ClusterOptions) -> Result<()> {
    let addr = address(&options.listen)?;
    let tls = TlsDir::open(&options.tls, Identity::Server)?;
    let node = Arc::new(ClusterNode::open(
        options.params,
        options.engine,
        &options.store,
    )?);
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = bind(addr).await?;
        eprintln!(
            "[cluster] listening on {} (store {})",
            listener.local_addr().map_or(addr, |a| a),
            options.store.display()
        );
        server_builder()
            .tls_config(tls.server_config())
            .map_err(|e| DeployError::Input(format!("TLS: {e}")))?
            .add_service(node.service(options.limits, Some(tls.leaf_der().to_vec())))
            .serve_with_incoming_shutdown(incoming(listener), shutdown_signal())
            .await
            .map_err(|e| DeployError::Input(format!("cluster server on {addr}: {e}")))?;
        eprintln!("[cluster] stopped");
        Ok(())
    })
}

/// Runs a main server until SIGTERM/Ctrl-C.
pub fn run_main(options: MainOptions) -> Result<()> {
    let addr = address(&options.listen)?;
    let tls = TlsDir::open(&options.tls, Identity::Server)?;
    let rt = runtime()?;
    let transport = GrpcTransport::new(
        rt.handle().clone(),
        &options.clusters,
        &tls,
        options.deadlines,
        options.limits,
    )?;
    let node = Arc::new(MainNode::open(
        options.params,
        Box::new(transport),
        &options.store,
        options.policy,
        options.clusters.clone(),
    )?);
    rt.block_on(async move {
        let listener = bind(addr).await?;
        eprintln!(
            "[main] listening on {} with clusters {} (store {})",
            listener.local_addr().map_or(addr, |a| a),
            options.clusters.join(", "),
            options.store.display()
        );
        server_builder()
            .tls_config(tls.server_config())
            .map_err(|e| DeployError::Input(format!("TLS: {e}")))?
            .add_service(node.service(options.limits))
            .serve_with_incoming_shutdown(incoming(listener), shutdown_signal())
            .await
            .map_err(|e| DeployError::Input(format!("main server on {addr}: {e}")))?;
        eprintln!("[main] stopped");
        Ok(())
    })
}

/// HTTP/2 keepalive finds dead peers; the stream limit bounds one connection's share.
fn server_builder() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .tcp_keepalive(Some(std::time::Duration::from_secs(60)))
        .max_concurrent_streams(Some(64))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| DeployError::Input(format!("cannot listen on {addr}: {e}")))
}

fn incoming(listener: tokio::net::TcpListener) -> tokio_stream::wrappers::TcpListenerStream {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}
