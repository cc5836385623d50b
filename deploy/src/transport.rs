//! The main server's way to its clusters over gRPC: a `protocol::transport::Transport`,
//! so the main server's logic is the one tested in process. Channels connect lazily
//! (the main server starts while a cluster is down, and reconnects when it is back);
//! every call has a deadline.

use crate::call::finish;
use crate::grpc::chunks;
use crate::grpc::cluster_service::cluster_client::ClusterClient;
use crate::node::Limits;
use crate::tls::TlsDir;
use crate::{DeployError, Result};
use protocol::transport::Transport;
use protocol::wire::{self, Artifact};
use protocol::ProtocolError;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// Deadlines of the calls to the clusters.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// A query.
    pub query: Duration,
    /// Setup, shard, update and reset (large messages).
    pub bulk: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            query: Duration::from_secs(30),
            bulk: Duration::from_secs(600),
        }
    }
}

/// The `https://` URI of an address, and the name its certificate must carry.
pub fn endpoint(addr: &str, tls: &TlsDir) -> Result<Endpoint> {
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| DeployError::Input(format!("address `{addr}` lacks a port (HOST:PORT)")))?;
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| DeployError::Input(format!("address `{addr}`: {e}")))?
        .tls_config(tls.client_config(host))
        .map_err(|e| DeployError::Input(format!("TLS for `{addr}`: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    Ok(endpoint)
}

struct Peer {
    addr: String,
    client: ClusterClient<Channel>,
}

/// The clusters behind a main server, reached over mutual TLS.
pub struct GrpcTransport {
    runtime: tokio::runtime::Handle,
    peers: Vec<Peer>,
    deadlines: Deadlines,
    limits: Limits,
}

impl GrpcTransport {
    /// Lazy channels to `addrs` (nothing is connected yet), driven by `runtime`.
    pub fn new(
        runtime: tokio::runtime::Handle,
        addrs: &[String],
        tls: &TlsDir,
        deadlines: Deadlines,
        limits: Limits,
    ) -> Result<Self> {
        protocol::limits::check_clusters(addrs.len())?;
        let peers = addrs
            .iter()
            .map(|addr| {
                let channel = {
                    let _guard = runtime.enter();
                    endpoint(addr, tls)?.connect_lazy()
                };
                let client = ClusterClient::new(channel)
                    .max_decoding_message_size(2 * crate::grpc::CHUNK_BYTES + 1024);
                Ok(Peer {
                    addr: addr.clone(),
                    client,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            runtime,
            peers,
            deadlines,
            limits,
        })
    }

    /// The cluster addresses, in order.
    pub fn addrs(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.addr.clone()).collect()
    }
}

impl Transport for GrpcTransport {
    fn clusters(&self) -> usize {
        self.peers.len()
    }

    fn call(&self, cluster: usize, request: &[u8]) -> protocol::Result<Vec<u8>> {
        let peer = self.peers.get(cluster).ok_or_else(|| {
            ProtocolError::Input(format!(
                "no cluster {cluster}: {} clusters",
                self.peers.len()
            ))
        })?;
        let kind = wire::peek(request)?;
        // A cluster's answer to a query holds one evaluated ciphertext per unit it
        // holds (hundreds of MB for a large blindtouch shard): bounded by the bulk limit.
        let query = matches!(kind, Artifact::Query | Artifact::QueryExtended);
        let (deadline, limit) = if query {
            (self.deadlines.query, self.limits.bulk)
        } else {
            (self.deadlines.bulk, self.limits.bulk)
        };
        let mut client = peer.client.clone();
        let stream = tokio_stream::iter(chunks(request.to_vec()));
        let sent = request.len();
        let failed = |message: String| {
            ProtocolError::state("main server", format!("{} {message}", peer.addr))
        };
        self.runtime.block_on(async move {
            let started = Instant::now();
            let exchange = async {
                let response = match kind {
                    Artifact::Setup => client.setup(stream).await,
                    Artifact::Shard => client.shard(stream).await,
                    Artifact::ShardUpdate => client.update(stream).await,
                    Artifact::Query | Artifact::QueryExtended => client.query(stream).await,
                    Artifact::Reset => client.reset(stream).await,
                    other => {
                        return Err(format!("cannot carry a {} message", other.name()));
                    }
                };
                finish(response, started, sent, limit, "cluster answer").await
            };
            match tokio::time::timeout(deadline, exchange).await {
                Ok(Ok(timed)) => Ok(timed.answer),
                Ok(Err(message)) => Err(failed(message)),
                Err(_) => Err(failed(format!(
                    "did not answer within the {:.1} s deadline",
                    deadline.as_secs_f64()
                ))),
            }
        })
    }
}
