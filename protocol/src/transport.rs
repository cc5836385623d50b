//! How the main server reaches its cluster servers. Everything passes as bytes so that
//! the in-process transport used today and a network transport later measure the same
//! sizes and refuse the same corrupt input.

use crate::engine::{ColumnarEngine, ResolvedEngine};
use crate::error::{ProtocolError, Result};
use crate::messages::Ciphertexts;
use crate::params::Params;
use crate::roles::ClusterServer;
use crate::wire::{self, Artifact};
use fhe::bfv::{Encoding, Plaintext};
use fhe_traits::FheEncoder;

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
        crate::limits::check_clusters(clusters)?;
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

/// A fault to inject between the main server and its clusters. Exists only to prove that
/// the exactness checks catch a wrong result; no measurement ever sets one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cluster 0 adds the plaintext 1 to the first ciphertext of every query answer — a
    /// homomorphic operation any server can perform, so every slot of that result
    /// decrypts one higher, as a buggy or malicious cluster would make it.
    ShiftFirstResult,
}

/// Wraps a transport and applies a [`Fault`] to the clusters' answers.
pub struct Faulty {
    inner: Box<dyn Transport>,
    params: Params,
    components: usize,
    fault: Fault,
}

impl Faulty {
    /// `components`: the polynomials per evaluated ciphertext of the layout in use.
    pub fn new(inner: Box<dyn Transport>, params: Params, components: usize, fault: Fault) -> Self {
        Self {
            inner,
            params,
            components,
            fault,
        }
    }
}

impl Transport for Faulty {
    fn clusters(&self) -> usize {
        self.inner.clusters()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        let answer = self.inner.call(cluster, request)?;
        if cluster != 0 || wire::peek(request)? != Artifact::Query {
            return Ok(answer);
        }
        match self.fault {
            Fault::ShiftFirstResult => {
                let (nanos, mut items) = Ciphertexts::decode(
                    &answer,
                    Artifact::ClusterResult,
                    &self.params,
                    self.components,
                )?;
                if let Some((_, first)) = items.first_mut() {
                    let one = Plaintext::try_encode(&[1u64], Encoding::poly(), self.params.bfv())?;
                    *first += &one;
                }
                Ok(Ciphertexts::encode(
                    Artifact::ClusterResult,
                    &self.params,
                    wire::Sealer::Server(wire::deployment(&answer)?),
                    nanos,
                    &items,
                ))
            }
        }
    }
}
