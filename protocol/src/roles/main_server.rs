//! The main server: holds nothing secret and no gallery. It forwards the client's
//! evaluation material, shards the gallery over the clusters, fans each query out to
//! them in parallel, and gathers and compresses their results for the client.

use crate::error::{ProtocolError, Result};
use crate::layout::{BlindTouchLayout, ColumnarLayout};
use crate::messages::{Ciphertexts, Gallery, Layout, Reset, SerializedItems, Setup, UnitId};
use crate::params::Params;
use crate::transport::Transport;
use crate::wire::{self, Artifact, Sealer};
use ed25519_dalek::VerifyingKey;
use fhe::bfv::Ciphertext;
use fhe_traits::Serialize;
use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const ROLE: &str = "main server";

/// How the gallery was spread over the clusters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardSummary {
    /// Gallery ciphertexts per cluster.
    pub per_cluster: Vec<usize>,
    /// Serialized gallery bytes over all clusters.
    pub stored_bytes: usize,
}

/// The main server's view of one query.
#[derive(Clone, Debug, Default)]
pub struct QueryStats {
    /// Envelope check of the incoming query.
    pub check: Duration,
    /// Evaluation time each cluster reported (zero for clusters with no shard).
    pub cluster_eval: Vec<Duration>,
    /// Fan-out until the last cluster answered.
    pub clusters_wall: Duration,
    /// Parsing the clusters' answers.
    pub gather: Duration,
    /// Summing them into result ciphertexts.
    pub compress: Duration,
    /// Serializing the results.
    pub serialize: Duration,
    /// Query bytes sent to clusters, all together.
    pub fanout_bytes: usize,
    /// Result bytes received from clusters, all together.
    pub gather_bytes: usize,
    /// Result ciphertexts for the client.
    pub result_ciphertexts: usize,
}

struct Deployment {
    /// The client this server serves (see `Client::deployment`).
    id: u64,
    /// Its verifying key: enrolments and queries must be signed by it.
    owner: VerifyingKey,
    layout: Layout,
    features: usize,
}

/// What to do when some clusters fail a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The query fails with an error naming the cluster (the default: never a silent
    /// wrong answer).
    #[default]
    Strict,
    /// The answer leaves out every gallery unit a failed cluster holds (a columnar group
    /// with any feature there is left out whole) and says which ones in [`Coverage`].
    Partial,
}

/// Which part of the gallery a query's results cover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Gallery units (blindtouch ciphertexts, columnar groups) with no result.
    pub missing_units: Vec<usize>,
    /// The clusters that failed, with their errors.
    pub failed: Vec<(usize, String)>,
}

impl Coverage {
    /// Whether some units are missing.
    pub fn is_partial(&self) -> bool {
        !self.missing_units.is_empty()
    }
}

/// What an update changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Units sent to each cluster.
    pub per_cluster: Vec<usize>,
    /// Users of the gallery after the update.
    pub users: usize,
}

/// The main server.
pub struct MainServer {
    params: Params,
    transport: Box<dyn Transport>,
    deployment: Option<Deployment>,
    /// Which cluster holds each gallery unit.
    placement: BTreeMap<UnitId, usize>,
    users: usize,
}

impl MainServer {
    /// A main server configured with its own copy of the parameter set.
    pub fn new(params: Params, transport: Box<dyn Transport>) -> Self {
        Self {
            params,
            transport,
            deployment: None,
            placement: BTreeMap::new(),
            users: 0,
        }
    }

    /// Gallery units per cluster.
    fn shards(&self) -> Vec<usize> {
        let mut per = vec![0; self.transport.clusters()];
        for &c in self.placement.values() {
            per[c] += 1;
        }
        per
    }

    /// Which cluster holds each gallery unit (what the main server's store keeps).
    pub fn placement(&self) -> Vec<(UnitId, usize)> {
        self.placement
            .iter()
            .map(|(u, &c)| (u.clone(), c))
            .collect()
    }

    /// Takes up a deployment again after a restart: the client's setup message as it was
    /// received, the user count and the placement, all from the main server's own store.
    /// Nothing is sent to the clusters (they restore their own state); everything is
    /// checked as if it had just arrived.
    pub fn restore(
        &mut self,
        setup: &[u8],
        users: usize,
        placement: Vec<(UnitId, usize)>,
    ) -> Result<()> {
        let decoded = Setup::decode(setup, &self.params)?;
        self.deployment = Some(Deployment {
            id: wire::deployment(setup)?,
            owner: decoded.owner,
            layout: decoded.layout,
            features: decoded.features,
        });
        self.placement = BTreeMap::new();
        self.users = 0;
        if users == 0 {
            return Ok(());
        }
        crate::limits::check_users(users)?;
        // Counts first: the expected list is built only for a placement of that length.
        if placement.len() != self.expected_count(users)? {
            return Err(ProtocolError::state(
                ROLE,
                format!(
                    "stored placement lists {} units; {users} users need {}",
                    placement.len(),
                    self.expected_count(users)?
                ),
            ));
        }
        let clusters = self.transport.clusters();
        if let Some((u, c)) = placement.iter().find(|(_, c)| *c >= clusters) {
            return Err(ProtocolError::state(
                ROLE,
                format!(
                    "stored placement puts unit (group {}, feature {}) on cluster {c}, but                      {clusters} clusters are configured",
                    u.group, u.feature
                ),
            ));
        }
        let expected = self.expected_units(users)?;
        let found: Vec<&UnitId> = placement.iter().map(|(u, _)| u).collect();
        if found != expected.iter().collect::<Vec<_>>() {
            return Err(ProtocolError::state(
                ROLE,
                format!(
                    "stored placement lists {} units; {users} users need {}",
                    placement.len(),
                    expected.len()
                ),
            ));
        }
        self.placement = placement.into_iter().collect();
        self.users = users;
        Ok(())
    }

    /// Number of enrolled users.
    pub fn users(&self) -> usize {
        self.users
    }

    /// Calls every cluster in `targets` concurrently, one thread each.
    fn fan_out(&self, targets: &[(usize, &[u8])]) -> Vec<(usize, Result<Vec<u8>>, Duration)> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .map(|(c, request)| {
                    scope.spawn(move || {
                        let start = Instant::now();
                        let answer = self.transport.call(*c, request);
                        (*c, answer, start.elapsed())
                    })
                })
                .collect();
            // A cluster that panics is a failed cluster, not a failed main server.
            handles
                .into_iter()
                .zip(targets)
                .map(|(h, (c, _))| {
                    h.join().unwrap_or_else(|_| {
                        let failure = ProtocolError::state(ROLE, format!("cluster {c} crashed"));
                        (*c, Err(failure), Duration::ZERO)
                    })
                })
                .collect()
        })
    }

    fn all_ok(
        answers: Vec<(usize, Result<Vec<u8>>, Duration)>,
    ) -> Result<Vec<(usize, Vec<u8>, Duration)>> {
        answers
            .into_iter()
            .map(|(c, r, d)| {
                r.map(|bytes| (c, bytes, d))
                    .map_err(|e| ProtocolError::state(ROLE, format!("cluster {c} failed: {e}")))
            })
            .collect()
    }

    /// Checks the client's evaluation material (signed by the owner key it carries) and
    /// hands it to every cluster. The server then serves that client only, and its keys
    /// stay until [`MainServer::reset`]: any later setup — another client's, or the same
    /// client's — is refused, so keys are never replaced silently.
    pub fn setup(&mut self, bytes: &[u8]) -> Result<()> {
        let setup = Setup::decode(bytes, &self.params)?;
        let id = wire::deployment(bytes)?;
        if let Some(current) = &self.deployment {
            return Err(ProtocolError::state(
                ROLE,
                format!(
                    "serves deployment {:016x}; a setup from deployment {id:016x} needs an \
                     explicit reset first, which drops the current keys and gallery",
                    current.id
                ),
            ));
        }
        let targets: Vec<(usize, &[u8])> =
            (0..self.transport.clusters()).map(|c| (c, bytes)).collect();
        Self::all_ok(self.fan_out(&targets))?;
        self.deployment = Some(Deployment {
            id,
            owner: setup.owner,
            layout: setup.layout,
            features: setup.features,
        });
        self.placement.clear();
        self.users = 0;
        Ok(())
    }

    /// Forgets the deployment: every cluster drops its keys and gallery, and the server
    /// accepts a setup from any client again. What an operator does to hand the servers
    /// to another client; it is never triggered by a client's message.
    ///
    /// The reset reaches every cluster even when this server holds no deployment (after a
    /// restart, or a setup some clusters accepted and others refused): clusters obey
    /// resets from their main server whatever they hold.
    pub fn reset(&mut self) -> Result<()> {
        let id = self.deployment.as_ref().map_or(0, |d| d.id);
        let message = Reset::encode(&self.params, id);
        let targets: Vec<(usize, &[u8])> = (0..self.transport.clusters())
            .map(|c| (c, message.as_slice()))
            .collect();
        Self::all_ok(self.fan_out(&targets))?;
        self.deployment = None;
        self.placement.clear();
        self.users = 0;
        Ok(())
    }

    /// The deployment this server serves, if any.
    pub fn deployment_id(&self) -> Option<u64> {
        self.deployment.as_ref().map(|d| d.id)
    }

    fn deployment(&self) -> Result<&Deployment> {
        self.deployment
            .as_ref()
            .ok_or_else(|| ProtocolError::state(ROLE, "no setup received yet"))
    }

    /// How many gallery ciphertexts `users` users need (no allocation).
    fn expected_count(&self, users: usize) -> Result<usize> {
        let d = self.deployment()?;
        Ok(match d.layout {
            Layout::BlindTouch { .. } => {
                BlindTouchLayout::new(self.params.degree(), d.features)?.ciphertexts_for(users)
            }
            Layout::Columnar => {
                ColumnarLayout::new(self.params.degree(), d.features)?.groups_for(users)
                    * d.features
            }
        })
    }

    /// The unit ids a gallery of `users` users must consist of, in order.
    fn expected_units(&self, users: usize) -> Result<Vec<UnitId>> {
        let d = self.deployment()?;
        Ok(match d.layout {
            Layout::BlindTouch { .. } => {
                let layout = BlindTouchLayout::new(self.params.degree(), d.features)?;
                (0..layout.ciphertexts_for(users))
                    .map(|group| UnitId { group, feature: 0 })
                    .collect()
            }
            Layout::Columnar => {
                let layout = ColumnarLayout::new(self.params.degree(), d.features)?;
                (0..layout.groups_for(users))
                    .flat_map(|group| (0..d.features).map(move |feature| UnitId { group, feature }))
                    .collect()
            }
        })
    }

    /// Splits the encrypted gallery into contiguous, balanced shards (one per cluster;
    /// clusters beyond the number of ciphertexts get none) and sends them out.
    /// Replaces any earlier gallery.
    pub fn enrol(&mut self, bytes: &[u8]) -> Result<ShardSummary> {
        let (users, mut units) = Gallery::decode_raw(bytes, Artifact::Enrolment, &self.params)?;
        let deployment = self.deployment()?;
        let id = deployment.id;
        wire::check_owner(bytes, Artifact::Enrolment, id)?;
        wire::verify_owner(bytes, Artifact::Enrolment, &deployment.owner)?;
        // Compare counts before listing what `users` users need: the list is then no
        // longer than the units the message really carries.
        let needed = self.expected_count(users)?;
        if needed != units.len() {
            return Err(ProtocolError::wire(
                "enrolment",
                format!(
                    "{} gallery ciphertexts for {users} users do not match the layout, which needs {needed}",
                    units.len()
                ),
            ));
        }
        units.sort_by(|a, b| a.id.cmp(&b.id));
        let expected = self.expected_units(users)?;
        let found: Vec<&UnitId> = units.iter().map(|u| &u.id).collect();
        if found != expected.iter().collect::<Vec<_>>() {
            return Err(ProtocolError::wire(
                "enrolment",
                format!(
                    "{} gallery ciphertexts for {users} users do not match the layout, which needs {}",
                    units.len(),
                    expected.len()
                ),
            ));
        }
        let clusters = self.transport.clusters();
        let total = units.len();
        let mut targets = Vec::with_capacity(clusters);
        let mut summary = ShardSummary::default();
        let mut placement = BTreeMap::new();
        for c in 0..clusters {
            let shard = &units[c * total / clusters..(c + 1) * total / clusters];
            placement.extend(shard.iter().map(|u| (u.id.clone(), c)));
            summary.per_cluster.push(shard.len());
            summary.stored_bytes += shard.iter().map(|u| u.bytes.len()).sum::<usize>();
            let message = Gallery::encode(
                Artifact::Shard,
                &self.params,
                Sealer::Server(id),
                users,
                shard.iter().map(|u| (u.id.clone(), u.bytes)),
            );
            targets.push((c, message));
        }
        let targets: Vec<(usize, &[u8])> =
            targets.iter().map(|(c, m)| (*c, m.as_slice())).collect();
        Self::all_ok(self.fan_out(&targets))?;
        self.placement = placement;
        self.users = users;
        Ok(summary)
    }

    /// Applies a gallery update (kind `Update`, signed by the owner): each unit replaces
    /// the stored one, or is new and goes to the cluster holding the fewest units; every
    /// affected cluster receives its units (one `ShardUpdate` each, carrying the request
    /// id). The gallery never shrinks (a removed user's slot stays, zeroed by the
    /// client), and afterwards it must hold exactly the units `users` users need.
    ///
    /// Retries are the caller's to recognise by [`Gallery::decode_update_raw`]'s request
    /// id (the deployment layer keeps the applied ids in its store); applying the same
    /// update twice in a row is harmless anyway, since units are replaced, not added.
    pub fn update(&mut self, bytes: &[u8]) -> Result<UpdateSummary> {
        let (request, users, units) =
            Gallery::decode_update_raw(bytes, Artifact::Update, &self.params)?;
        let deployment = self.deployment()?;
        let id = deployment.id;
        wire::check_owner(bytes, Artifact::Update, id)?;
        wire::verify_owner(bytes, Artifact::Update, &deployment.owner)?;
        if self.users == 0 {
            return Err(ProtocolError::state(
                ROLE,
                "no gallery enrolled: enrol before updating",
            ));
        }
        if users < self.users {
            return Err(ProtocolError::wire(
                "gallery update",
                format!(
                    "announces {users} users, fewer than the {} enrolled (removed users keep                      their zeroed slots)",
                    self.users
                ),
            ));
        }
        // Counts first, so the unit list is never longer than the message carries.
        let needed = self.expected_count(users)?;
        if needed < self.placement.len() || units.len() > needed {
            return Err(ProtocolError::wire(
                "gallery update",
                format!(
                    "{} units for a gallery of {users} users, which needs {needed}",
                    units.len()
                ),
            ));
        }
        let mut placement = self.placement.clone();
        let mut load = self.shards();
        let mut seen = BTreeSet::new();
        let mut new_groups: BTreeMap<usize, usize> = BTreeMap::new();
        let clusters = self.transport.clusters();
        let mut per_cluster: Vec<Vec<(UnitId, &[u8])>> = vec![Vec::new(); clusters];
        for unit in &units {
            if !seen.insert(unit.id.clone()) {
                return Err(ProtocolError::wire(
                    "gallery update",
                    format!(
                        "unit (group {}, feature {}) appears twice",
                        unit.id.group, unit.id.feature
                    ),
                ));
            }
            // A new unit goes where the rest of its group went in this update (a columnar
            // group then lives on one cluster: no partial sums to gather), else to the
            // cluster holding the fewest units.
            let cluster = match placement.get(&unit.id) {
                Some(&c) => c,
                None => {
                    let c = match new_groups.get(&unit.id.group) {
                        Some(&c) => c,
                        None => (0..clusters).min_by_key(|&c| (load[c], c)).unwrap_or(0),
                    };
                    new_groups.insert(unit.id.group, c);
                    load[c] += 1;
                    placement.insert(unit.id.clone(), c);
                    c
                }
            };
            per_cluster[cluster].push((unit.id.clone(), unit.bytes));
        }
        let expected = self.expected_units(users)?;
        if !placement.keys().eq(expected.iter()) {
            return Err(ProtocolError::wire(
                "gallery update",
                format!(
                    "after it the gallery would hold {} units, but {users} users need exactly                      the {} units of the layout (new groups must come whole)",
                    placement.len(),
                    expected.len()
                ),
            ));
        }
        let messages: Vec<(usize, Vec<u8>)> = per_cluster
            .iter()
            .enumerate()
            .filter(|(_, units)| !units.is_empty())
            .map(|(c, units)| {
                let message = Gallery::encode_update(
                    Artifact::ShardUpdate,
                    &self.params,
                    Sealer::Server(id),
                    &request,
                    users,
                    units.iter().map(|(u, b)| (u.clone(), *b)),
                );
                (c, message)
            })
            .collect();
        let targets: Vec<(usize, &[u8])> =
            messages.iter().map(|(c, m)| (*c, m.as_slice())).collect();
        Self::all_ok(self.fan_out(&targets))?;
        self.placement = placement;
        self.users = users;
        Ok(UpdateSummary {
            per_cluster: per_cluster.iter().map(Vec::len).collect(),
            users,
        })
    }

    /// Evaluates a query on every cluster holding a shard and returns sealed results; any
    /// failed cluster fails the query.
    pub fn query(&self, bytes: &[u8]) -> Result<(Vec<u8>, QueryStats)> {
        let (sealed, stats, _) = self.query_with(bytes, FailurePolicy::Strict)?;
        Ok((sealed, stats))
    }

    /// [`MainServer::query`] under a failure policy; the coverage says what the results
    /// leave out (nothing under [`FailurePolicy::Strict`]).
    pub fn query_with(
        &self,
        bytes: &[u8],
        policy: FailurePolicy,
    ) -> Result<(Vec<u8>, QueryStats, Coverage)> {
        let deployment = self.deployment()?;
        let mut stats = QueryStats::default();
        let start = Instant::now();
        // Either form of query (ciphertexts or extended words); forwarded as it came.
        let kind = match wire::peek(bytes)? {
            Artifact::QueryExtended => Artifact::QueryExtended,
            _ => Artifact::Query,
        };
        wire::open(bytes, kind, self.params.fingerprint())?;
        wire::check_owner(bytes, kind, deployment.id)?;
        wire::verify_owner(bytes, kind, &deployment.owner)?;
        if kind == Artifact::QueryExtended && deployment.layout != Layout::Columnar {
            return Err(ProtocolError::wire(
                kind.name(),
                "this deployment is blindtouch; the extended form is for columnar",
            ));
        }
        stats.check = start.elapsed();
        if self.users == 0 {
            return Err(ProtocolError::state(ROLE, "no gallery enrolled"));
        }

        let shards = self.shards();
        let targets: Vec<(usize, &[u8])> = (0..shards.len())
            .filter(|&c| shards[c] > 0)
            .map(|c| (c, bytes))
            .collect();
        stats.fanout_bytes = targets.iter().map(|(_, b)| b.len()).sum();
        let start = Instant::now();
        let answers = self.fan_out(&targets);
        stats.clusters_wall = start.elapsed();
        let mut coverage = Coverage::default();
        let answers = match policy {
            FailurePolicy::Strict => Self::all_ok(answers)?,
            FailurePolicy::Partial => {
                let mut ok = Vec::new();
                for (c, answer, d) in answers {
                    match answer {
                        Ok(bytes) => ok.push((c, bytes, d)),
                        Err(e) => coverage.failed.push((c, e.to_string())),
                    }
                }
                if ok.is_empty() {
                    let (c, e) = &coverage.failed[0];
                    return Err(ProtocolError::state(
                        ROLE,
                        format!("no cluster answered (cluster {c} failed: {e})"),
                    ));
                }
                ok
            }
        };
        // Parse every answer; one that does not parse, is another deployment's or lists
        // units its cluster does not hold is that cluster's failure (named), never a
        // result.
        let start = Instant::now();
        stats.cluster_eval = vec![Duration::ZERO; shards.len()];
        // Each layout gathers and compresses its own way; the results leave serialized.
        let mut serialize = Duration::ZERO;
        let results: Vec<(usize, Cow<'_, [u8]>)> = match deployment.layout {
            Layout::Columnar => {
                // Each group's result passes through as its cluster serialized it (checked
                // without fhe.rs objects); only split groups' partial sums are decoded and
                // added. The client receives the same bytes either way.
                let (evaluated, missing) = self.gather(
                    deployment,
                    &answers,
                    policy,
                    &mut coverage,
                    &mut stats,
                    |answer| self.checked_items(answer),
                )?;
                stats.gather = start.elapsed();
                let start = Instant::now();
                let results = self.sum_split_groups(deployment, evaluated, &missing)?;
                stats.compress = start.elapsed();
                results
            }
            Layout::BlindTouch { .. } => {
                let components = deployment.layout.result_components();
                let (evaluated, missing) = self.gather(
                    deployment,
                    &answers,
                    policy,
                    &mut coverage,
                    &mut stats,
                    |answer| {
                        Ciphertexts::decode(
                            answer,
                            Artifact::ClusterResult,
                            &self.params,
                            components,
                        )
                    },
                )?;
                stats.gather = start.elapsed();
                let start = Instant::now();
                let results = self.compress(deployment, evaluated, &missing)?;
                stats.compress = start.elapsed();
                let start = Instant::now();
                let results = results
                    .into_iter()
                    .map(|(index, ct)| (index, Cow::Owned(ct.to_bytes())))
                    .collect();
                serialize = start.elapsed();
                results
            }
        };
        stats.result_ciphertexts = results.len();
        let start = Instant::now();
        let sealed = Ciphertexts::encode_serialized(
            Artifact::Results,
            &self.params,
            Sealer::Server(deployment.id),
            0,
            &results,
        );
        stats.serialize = serialize + start.elapsed();
        Ok((sealed, stats, coverage))
    }

    /// Parses every cluster's answer with `parse` and keeps the usable ones: an answer
    /// that does not parse, is another deployment's or lists units its cluster does not
    /// hold is that cluster's failure. Returns the results of the clusters that answered
    /// and the units left out with failed clusters.
    fn gather<'a, T>(
        &self,
        deployment: &Deployment,
        answers: &'a [(usize, Vec<u8>, Duration)],
        policy: FailurePolicy,
        coverage: &mut Coverage,
        stats: &mut QueryStats,
        parse: impl Fn(&'a [u8]) -> Result<(u64, Vec<(usize, T)>)>,
    ) -> Result<Gathered<T>> {
        let mut parsed: Vec<(usize, Vec<(usize, T)>)> = Vec::new();
        for (c, answer, _) in answers {
            stats.gather_bytes += answer.len();
            let checked = parse(answer).and_then(|(nanos, items)| {
                wire::check_owner(answer, Artifact::ClusterResult, deployment.id)?;
                let held: BTreeSet<usize> = self
                    .placement
                    .iter()
                    .filter(|(_, k)| **k == *c)
                    .map(|(u, _)| u.group)
                    .collect();
                if let Some((i, _)) = items.iter().find(|(i, _)| !held.contains(i)) {
                    return Err(ProtocolError::state(
                        ROLE,
                        format!("answered for unit {i}, which it does not hold"),
                    ));
                }
                Ok((nanos, items))
            });
            match (checked, policy) {
                (Ok((nanos, items)), _) => {
                    stats.cluster_eval[*c] = Duration::from_nanos(nanos);
                    parsed.push((*c, items));
                }
                (Err(e), FailurePolicy::Strict) => {
                    return Err(ProtocolError::state(
                        ROLE,
                        format!("cluster {c} failed: its answer was refused: {e}"),
                    ))
                }
                (Err(e), FailurePolicy::Partial) => {
                    coverage.failed.push((*c, format!("answer refused: {e}")));
                }
            }
        }
        if parsed.is_empty() {
            return Err(ProtocolError::state(ROLE, "no cluster answered usably"));
        }
        let failed: BTreeSet<usize> = coverage.failed.iter().map(|(c, _)| *c).collect();
        let missing: BTreeSet<usize> = self
            .placement
            .iter()
            .filter(|(_, c)| failed.contains(c))
            .map(|(u, _)| u.group)
            .collect();
        coverage.missing_units = missing.iter().copied().collect();
        let mut evaluated = Vec::new();
        for (_, items) in parsed {
            // A columnar group with a feature on a failed cluster is left out whole: its
            // partial sum from the clusters that did answer is not a score.
            evaluated.extend(items.into_iter().filter(|(i, _)| !missing.contains(i)));
        }
        Ok((evaluated, missing))
    }

    /// A columnar cluster answer's serialized result ciphertexts, each checked as
    /// fhe.rs's decoder would (3 components at the top level, NTT form, reduced words).
    fn checked_items<'a>(&self, answer: &'a [u8]) -> Result<(u64, SerializedItems<'a>)> {
        let (nanos, items) =
            Ciphertexts::decode_serialized(answer, Artifact::ClusterResult, &self.params)?;
        let par = self.params.bfv();
        let components = Layout::Columnar.result_components();
        for (_, bytes) in &items {
            let plain = crate::rq_wire::check_unseeded(
                bytes,
                par.moduli(),
                par.degree(),
                components,
                Artifact::ClusterResult.name(),
            )?;
            if !plain {
                // Not a shape clusters send: the full decoder decides.
                wire::decode_ciphertext(
                    Artifact::ClusterResult.name(),
                    "ciphertext",
                    bytes,
                    par,
                    Some(components),
                )?;
            }
        }
        Ok((nanos, items))
    }

    /// columnar: the result of group g is its one cluster's ciphertext, passed on as
    /// serialized, or the sum of the partial sums of the clusters holding some of its
    /// features (decoded, added, serialized again).
    fn sum_split_groups<'a>(
        &self,
        d: &Deployment,
        evaluated: Vec<(usize, &'a [u8])>,
        missing: &BTreeSet<usize>,
    ) -> Result<Vec<(usize, Cow<'a, [u8]>)>> {
        let units = ColumnarLayout::new(self.params.degree(), d.features)?.groups_for(self.users);
        let mut by_group: BTreeMap<usize, Vec<&'a [u8]>> = BTreeMap::new();
        for (index, bytes) in evaluated {
            if index >= units {
                return Err(ProtocolError::state(
                    ROLE,
                    format!("a cluster returned an unexpected result {index}"),
                ));
            }
            by_group.entry(index).or_default().push(bytes);
        }
        check_coverage(by_group.len(), units, missing, by_group.keys())?;
        let components = Layout::Columnar.result_components();
        by_group
            .into_iter()
            .map(|(group, parts)| {
                let bytes = match parts.as_slice() {
                    [one] => Cow::Borrowed(*one),
                    _ => {
                        let mut sum: Option<Ciphertext> = None;
                        for part in parts {
                            let ct = wire::decode_ciphertext(
                                Artifact::ClusterResult.name(),
                                "ciphertext",
                                part,
                                self.params.bfv(),
                                Some(components),
                            )?;
                            match &mut sum {
                                Some(s) => *s += &ct,
                                None => sum = Some(ct),
                            }
                        }
                        Cow::Owned(sum.expect("two or more parts").to_bytes())
                    }
                };
                Ok((group, bytes))
            })
            .collect()
    }

    /// blindtouch: evaluated ciphertext k (already rotated to offset k mod d by its
    /// cluster) is added into result k / d, so up to d share one result. columnar: the
    /// partial sums of group g (one per cluster holding some of its features) are added
    /// into result g.
    fn compress(
        &self,
        d: &Deployment,
        evaluated: Vec<(usize, Ciphertext)>,
        missing: &BTreeSet<usize>,
    ) -> Result<Vec<(usize, Ciphertext)>> {
        let (units, per_result, partials_allowed) = match d.layout {
            Layout::BlindTouch { .. } => {
                let layout = BlindTouchLayout::new(self.params.degree(), d.features)?;
                (
                    layout.ciphertexts_for(self.users),
                    layout.compression_capacity(),
                    false,
                )
            }
            Layout::Columnar => {
                let layout = ColumnarLayout::new(self.params.degree(), d.features)?;
                (layout.groups_for(self.users), 1, true)
            }
        };
        let mut results: BTreeMap<usize, Ciphertext> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (index, ct) in evaluated {
            let first = seen.insert(index);
            if index >= units || !(first || partials_allowed) {
                return Err(ProtocolError::state(
                    ROLE,
                    format!("a cluster returned an unexpected or duplicate result {index}"),
                ));
            }
            match results.entry(index / per_result) {
                Entry::Vacant(slot) => {
                    slot.insert(ct);
                }
                Entry::Occupied(mut sum) => *sum.get_mut() += &ct,
            }
        }
        check_coverage(seen.len(), units, missing, seen.iter())?;
        Ok(results.into_iter().collect())
    }
}

/// The usable results of a query's answers, and the units left out with failed clusters.
type Gathered<T> = (Vec<(usize, T)>, BTreeSet<usize>);

/// Every gallery unit answered exactly once or left out with a failed cluster.
fn check_coverage<'a>(
    answered: usize,
    units: usize,
    missing: &BTreeSet<usize>,
    mut seen: impl Iterator<Item = &'a usize>,
) -> Result<()> {
    if answered + missing.len() != units || seen.any(|u| missing.contains(u)) {
        return Err(ProtocolError::state(
            ROLE,
            format!(
                "clusters returned results for {answered} of {units} gallery units ({} left \
                 out with failed clusters)",
                missing.len()
            ),
        ));
    }
    Ok(())
}
