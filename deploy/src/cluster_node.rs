//! `touchstone serve cluster`: one cluster server behind the `Cluster` gRPC service,
//! persisting its setup and shard in its store so that a restart serves the same
//! gallery without re-enrolment.

use crate::grpc::cluster_service::cluster_server::{Cluster, ClusterServer as ClusterService};
use crate::grpc::{Chunk, ChunkStream};
use crate::node::{serve, Limits};
use crate::store::ClusterStore;
use crate::{DeployError, Result};
use protocol::messages::{Ciphertexts, Gallery, UnitId};
use protocol::roles::ClusterServer;
use protocol::wire::{self, Artifact, Sealer};
use protocol::{Params, ResolvedEngine};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status, Streaming};

const ROLE: &str = "cluster";

/// A cluster server and its store. Changes (setup, shard, update, reset) are applied
/// and stored one at a time under the store's lock; queries run concurrently.
pub struct ClusterNode {
    params: Params,
    server: ClusterServer,
    store: Mutex<ClusterStore>,
}

impl ClusterNode {
    /// Opens the store in `dir` and takes up what it holds: the stored setup and shard
    /// pass through the same checks as when they first arrived. A damaged store is an
    /// error naming its file; nothing is served from it.
    pub fn open(params: Params, engine: ResolvedEngine, dir: &Path) -> Result<Self> {
        let store = ClusterStore::open(dir)?;
        let server = ClusterServer::with_engine(params.clone(), engine);
        if let Some(snapshot) = store.load()? {
            let refuse = |e: protocol::ProtocolError| {
                DeployError::store(
                    store.path(),
                    format!("stored state refused by the cluster server: {e}"),
                )
            };
            server.handle(&snapshot.setup).map_err(refuse)?;
            if snapshot.users > 0 {
                let id = wire::deployment(&snapshot.setup).map_err(refuse)?;
                let shard = Gallery::encode(
                    Artifact::Shard,
                    &params,
                    Sealer::Server(id),
                    snapshot.users,
                    snapshot
                        .units
                        .iter()
                        .map(|(u, b)| (u.clone(), b.as_slice())),
                );
                server.handle(&shard).map_err(refuse)?;
            }
        }
        Ok(Self {
            params,
            server,
            store: Mutex::new(store),
        })
    }

    /// Handles one request and stores what it changed, under the store's lock.
    pub fn handle(&self, request: &[u8]) -> Result<Vec<u8>> {
        let kind = wire::peek(request)?;
        if matches!(kind, Artifact::Query | Artifact::QueryExtended) {
            return Ok(self.server.handle(request)?);
        }
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match kind {
            Artifact::ShardUpdate => {
                let (id, users, units) =
                    Gallery::decode_update_raw(request, Artifact::ShardUpdate, &self.params)?;
                if store.has_request(&id.0)? {
                    // A retry of an applied update: acknowledged, not applied again.
                    return Ok(Ciphertexts::encode(
                        Artifact::ClusterResult,
                        &self.params,
                        Sealer::Server(wire::deployment(request)?),
                        0,
                        &[],
                    ));
                }
                let ack = self.server.handle(request)?;
                let units: Vec<(UnitId, &[u8])> =
                    units.iter().map(|u| (u.id.clone(), u.bytes)).collect();
                store.apply_update(&id.0, users, &units)?;
                Ok(ack)
            }
            Artifact::Setup => {
                let bound = self.server.deployment();
                let ack = self.server.handle(request)?;
                // The owner's setup again is acknowledged without change: the stored
                // setup and shard stay.
                if bound.is_none() {
                    store.save_setup(request)?;
                }
                Ok(ack)
            }
            Artifact::Shard => {
                let ack = self.server.handle(request)?;
                let (users, units) = Gallery::decode_raw(request, Artifact::Shard, &self.params)?;
                let units: Vec<(UnitId, &[u8])> =
                    units.iter().map(|u| (u.id.clone(), u.bytes)).collect();
                store.save_shard(users, &units)?;
                Ok(ack)
            }
            Artifact::Reset => {
                let ack = self.server.handle(request)?;
                store.reset()?;
                Ok(ack)
            }
            _ => Ok(self.server.handle(request)?),
        }
    }

    /// The gRPC service over this node. With `caller`, only a peer presenting exactly
    /// that certificate (the deployment's server certificate, which the main server
    /// presents) is served: a client of the deployment cannot reset, overwrite or query
    /// a cluster directly.
    pub fn service(
        self: Arc<Self>,
        limits: Limits,
        caller: Option<Vec<u8>>,
    ) -> ClusterService<Service> {
        ClusterService::new(Service {
            node: self,
            limits,
            caller,
        })
        .max_decoding_message_size(2 * crate::grpc::CHUNK_BYTES + 1024)
    }
}

/// The `Cluster` service: every method checks that the envelope is the kind it
/// carries, then hands it to the node.
pub struct Service {
    node: Arc<ClusterNode>,
    limits: Limits,
    caller: Option<Vec<u8>>,
}

impl Service {
    fn call(
        &self,
        method: &'static str,
        kind: Artifact,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        if let Some(expected) = &self.caller {
            let certs = request.peer_certs();
            let presented = certs.as_ref().and_then(|c| c.first());
            if presented.map(|c| c.as_ref()) != Some(expected.as_slice()) {
                crate::node::log_line(
                    ROLE,
                    method,
                    0,
                    0,
                    std::time::Instant::now(),
                    "refused: caller is not the main server",
                );
                return Err(Status::permission_denied(
                    "only the deployment's main server (its server certificate) may call a cluster",
                ));
            }
        }
        let node = self.node.clone();
        let limit = if kind == Artifact::Query {
            self.limits.query
        } else {
            self.limits.bulk
        };
        serve(
            ROLE,
            method,
            request,
            limit,
            self.limits.receive,
            move |bytes| {
                crate::node::expect_kind(&bytes, kind, method)?;
                node.handle(&bytes)
            },
        )
    }
}

#[tonic::async_trait]
impl Cluster for Service {
    type SetupStream = ChunkStream;
    type ShardStream = ChunkStream;
    type UpdateStream = ChunkStream;
    type QueryStream = ChunkStream;
    type ResetStream = ChunkStream;

    async fn setup(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("setup", Artifact::Setup, request)
    }

    async fn shard(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("shard", Artifact::Shard, request)
    }

    async fn update(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("update", Artifact::ShardUpdate, request)
    }

    async fn query(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("query", Artifact::Query, request)
    }

    async fn reset(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("reset", Artifact::Reset, request)
    }
}
