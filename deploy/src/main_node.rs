//! `touchstone serve main`: the main server behind the `Main` gRPC service. It keeps the
//! client's setup message, the user count and which cluster holds each gallery unit in
//! its store (no ciphertext of the gallery), so a restart serves the same deployment.

use crate::answers::{Ack, IdentifyAnswer, ServerStatus};
use crate::grpc::main_service::main_server::{Main, MainServer as MainService};
use crate::grpc::{Chunk, ChunkStream};
use crate::node::{serve, Limits};
use crate::store::MainStore;
use crate::{DeployError, Result};
use protocol::messages::Gallery;
use protocol::roles::{FailurePolicy, MainServer};
use protocol::transport::Transport;
use protocol::wire::Artifact;
use protocol::Params;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tonic::{Request, Response, Status, Streaming};

const ROLE: &str = "main";

/// The main server, its store and its failure policy. Changes take the write lock
/// (and the store's); queries share the read lock and run concurrently.
pub struct MainNode {
    params: Params,
    server: RwLock<MainServer>,
    store: Mutex<MainStore>,
    policy: FailurePolicy,
    clusters: usize,
    cluster_names: Vec<String>,
    names_path: std::path::PathBuf,
}

/// Beside the store: the clusters' addresses, in the order the placement numbers them.
const CLUSTERS_FILE: &str = "clusters.json";

impl MainNode {
    /// Opens the store in `dir` and takes up the deployment it holds (checked as if the
    /// setup had just arrived).
    ///
    /// `cluster_names` (the clusters' addresses, in order) are recorded at setup in
    /// `clusters.json` beside the store: the placement says "cluster 2", so a restart with
    /// the clusters listed in another order or other clusters is refused rather than
    /// sending units to the wrong cluster.
    pub fn open(
        params: Params,
        transport: Box<dyn Transport>,
        dir: &Path,
        policy: FailurePolicy,
        cluster_names: Vec<String>,
    ) -> Result<Self> {
        let store = MainStore::open(dir)?;
        let clusters = transport.clusters();
        if cluster_names.len() != clusters {
            return Err(DeployError::Input(format!(
                "{} cluster names for {clusters} clusters",
                cluster_names.len()
            )));
        }
        let mut server = MainServer::new(params.clone(), transport);
        let names_path = dir.join(CLUSTERS_FILE);
        if let Some(snapshot) = store.load()? {
            let recorded: Vec<String> = std::fs::read(&names_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| {
                    DeployError::store(&names_path, "missing or malformed: the store holds a deployment but not the clusters it was set up with")
                })?;
            if recorded != cluster_names {
                return Err(DeployError::store(
                    &names_path,
                    format!(
                        "the deployment was set up with clusters [{}] in this order; got [{}] \
                         (start the main server with the same --cluster list, or edit this \
                         file if a cluster moved to another address)",
                        recorded.join(", "),
                        cluster_names.join(", ")
                    ),
                ));
            }
            server
                .restore(&snapshot.setup, snapshot.users, snapshot.placement)
                .map_err(|e| {
                    DeployError::store(
                        store.path(),
                        format!("stored deployment refused by the main server: {e}"),
                    )
                })?;
        }
        Ok(Self {
            params,
            server: RwLock::new(server),
            store: Mutex::new(store),
            policy,
            clusters,
            cluster_names,
            names_path,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, MainServer> {
        self.server.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, MainServer> {
        self.server.write().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> std::sync::MutexGuard<'_, MainStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client's setup: forwarded to every cluster, then stored.
    pub fn setup(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut server = self.write();
        let mut store = self.store();
        server.setup(bytes)?;
        let names = serde_json::to_vec(&self.cluster_names)
            .map_err(|e| DeployError::Input(format!("encoding the cluster list: {e}")))?;
        write_synced(&self.names_path, &names)?;
        store.save_setup(bytes)?;
        Ack::of(&server).encode()
    }

    /// A whole gallery: sharded over the clusters, then its placement stored.
    pub fn enrol(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut server = self.write();
        let mut store = self.store();
        server.enrol(bytes)?;
        store.save_enrolment(server.users(), &server.placement())?;
        Ack::of(&server).encode()
    }

    /// Users added or removed; a retried request (same id) is acknowledged, not applied
    /// again.
    pub fn update(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let (request, _, _) = Gallery::decode_update_raw(bytes, Artifact::Update, &self.params)?;
        let mut server = self.write();
        let mut store = self.store();
        if store.has_request(&request.0)? {
            let mut ack = Ack::of(&server);
            ack.duplicate = true;
            return ack.encode();
        }
        server.update(bytes)?;
        store.apply_update(&request.0, server.users(), &server.placement())?;
        Ack::of(&server).encode()
    }

    /// A query: evaluated on the clusters under the node's failure policy.
    pub fn identify(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let server = self.read();
        let (results, stats, coverage) = server.query_with(bytes, self.policy)?;
        IdentifyAnswer::new(server.users(), &stats, &coverage).encode(&results)
    }

    /// What the server holds.
    pub fn status(&self) -> Result<Vec<u8>> {
        let server = self.read();
        ServerStatus {
            deployment: server.deployment_id().map(|d| format!("{d:016x}")),
            users: server.users(),
            clusters: self.clusters,
            units: server.placement().len(),
            policy: format!("{:?}", self.policy).to_lowercase(),
        }
        .encode()
    }

    /// The gRPC service over this node.
    pub fn service(self: Arc<Self>, limits: Limits) -> MainService<Service> {
        MainService::new(Service { node: self, limits })
            .max_decoding_message_size(2 * crate::grpc::CHUNK_BYTES + 1024)
    }
}

/// The `Main` service.
pub struct Service {
    node: Arc<MainNode>,
    limits: Limits,
}

type Handler = fn(&MainNode, &[u8]) -> Result<Vec<u8>>;

impl Service {
    fn call(
        &self,
        method: &'static str,
        kind: Option<Artifact>,
        request: Request<Streaming<Chunk>>,
        handler: Handler,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        let node = self.node.clone();
        let limit = match kind {
            Some(Artifact::Query) => self.limits.query,
            None => 1024,
            Some(_) => self.limits.bulk,
        };
        serve(
            ROLE,
            method,
            request,
            limit,
            self.limits.receive,
            move |bytes| {
                if let Some(kind) = kind {
                    crate::node::expect_kind(&bytes, kind, method)?;
                }
                handler(&node, &bytes)
            },
        )
    }
}

#[tonic::async_trait]
impl Main for Service {
    type SetupStream = ChunkStream;
    type EnrolStream = ChunkStream;
    type UpdateStream = ChunkStream;
    type IdentifyStream = ChunkStream;
    type StatusStream = ChunkStream;

    async fn setup(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("setup", Some(Artifact::Setup), request, |n, b| n.setup(b))
    }

    async fn enrol(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("enrol", Some(Artifact::Enrolment), request, |n, b| {
            n.enrol(b)
        })
    }

    async fn update(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("update", Some(Artifact::Update), request, |n, b| {
            n.update(b)
        })
    }

    async fn identify(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("identify", Some(Artifact::Query), request, |n, b| {
            n.identify(b)
        })
    }

    async fn status(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> std::result::Result<Response<ChunkStream>, Status> {
        self.call("status", None, request, |n, _| n.status())
    }
}

/// temp → fsync → rename, so a crash leaves the old file or the new one.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let fail = |e: std::io::Error| DeployError::store(path, format!("cannot write: {e}"));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(())
}
