//! How the main server reaches its cluster servers. Everything passes as bytes so that
//! the in-process transport used today and a network transport later measure the same
//! sizes and refuse the same corrupt input.

use crate::engine::{ColumnarEngine, ResolvedEngine};
use crate::error::{ProtocolError, Result};
use crate::params::Params;
use crate::roles::ClusterServer;

/// A request/response channel to each of `clusters()` cluster servers. Calls to
/// different clusters may run concurrently.
pub trait Transport: Send + Sync {
    /// Number of cluster servers reachable.
    fn clusters(&self) -> usize;

    /// Sends `request` to cluster `cluster` and returns its response.
    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>>;
}

/// Cluster servers living in this process, each with its own parameter objects (as
/// separate machines would have); the main server calls them from one thread each.
pub struct InProcess {
    servers: Vec<ClusterServer>,
}

impl InProcess {
    /// `clusters` fresh servers configured with `params`' spec, evaluating `columnar`
    /// with fhe.rs.
    pub fn new(params: &Params, clusters: usize) -> Result<Self> {
        Self::with_engine(params, clusters, &ColumnarEngine::Fhe.resolve())
    }

    /// `clusters` fresh servers whose `columnar` evaluation runs on `engine`.
    pub fn with_engine(params: &Params, clusters: usize, engine: &ResolvedEngine) -> Result<Self> {
        if clusters == 0 {
            return Err(ProtocolError::Input(
                "at least one cluster server is needed".into(),
            ));
        }
        let servers = (0..clusters)
            .map(|_| {
                params
                    .spec()
                    .build()
                    .map(|p| ClusterServer::with_engine(p, engine.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { servers })
    }
}

impl Transport for InProcess {
    fn clusters(&self) -> usize {
        self.servers.len()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        let server = self.servers.get(cluster).ok_or_else(|| {
            ProtocolError::Input(format!(
                "no cluster {cluster}: {} clusters",
                self.servers.len()
            ))
        })?;
        server.handle(request)
    }
}
