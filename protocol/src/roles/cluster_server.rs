//! A cluster server: holds one shard of the encrypted gallery and the public evaluation
//! material, evaluates queries on its shard. It sees only ciphertexts and public weights.

use crate::engine::{ColumnarEngine, ResolvedEngine};
use crate::error::{ProtocolError, Result};
use crate::evaluate::{signed_sum, BlindTouchEvaluator, ColumnarEvaluator};
use crate::fused::{FusedColumnar, StoredShard};
use crate::layout::ColumnarLayout;
use crate::messages::{Ciphertexts, ExtendedQuery, Gallery, Layout, Reset, Setup, UnitId};
use crate::params::Params;
use crate::wire::{self, Artifact, Sealer};
use fhe::bfv::Ciphertext;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::Instant;

const ROLE: &str = "cluster server";

enum Evaluator {
    BlindTouch(Box<BlindTouchEvaluator>),
    Columnar(ColumnarEvaluator),
    Fused(FusedColumnar),
}

impl Evaluator {
    /// Checks a shard's unit ids against the layout before anything indexes with them:
    /// features in range (0 for blindtouch), groups within what `users` users need, and
    /// no unit twice.
    fn check_units<'a>(
        &self,
        params: &Params,
        users: usize,
        units: impl IntoIterator<Item = &'a UnitId>,
    ) -> Result<()> {
        let (features, groups) = match self {
            Evaluator::BlindTouch(e) => (1, e.layout().ciphertexts_for(users)),
            Evaluator::Columnar(e) => (
                e.features(),
                ColumnarLayout::new(params.degree(), e.features())?.groups_for(users),
            ),
            Evaluator::Fused(f) => (
                f.features(),
                ColumnarLayout::new(params.degree(), f.features())?.groups_for(users),
            ),
        };
        let mut seen = BTreeSet::new();
        for id in units {
            if id.feature >= features || id.group >= groups {
                return Err(ProtocolError::wire(
                    "gallery shard",
                    format!(
                        "unit (group {}, feature {}) is outside the layout: {groups} groups of \
                         {features} ciphertexts for {users} users",
                        id.group, id.feature
                    ),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(ProtocolError::wire(
                    "gallery shard",
                    format!(
                        "unit (group {}, feature {}) appears twice",
                        id.group, id.feature
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    /// The deployment (client) the stored material belongs to.
    deployment: Option<u64>,
    evaluator: Option<Evaluator>,
    units: Vec<(UnitId, Ciphertext)>,
    /// The shard as the fused engine holds it (extended, possibly on the GPU).
    stored: Option<StoredShard>,
}

/// One cluster server. Requests arrive as bytes (see [`ClusterServer::handle`]).
pub struct ClusterServer {
    params: Params,
    engine: ResolvedEngine,
    state: RwLock<State>,
}

impl ClusterServer {
    /// A server configured with its own copy of the parameter set, evaluating `columnar`
    /// with fhe.rs's per-operation reference.
    pub fn new(params: Params) -> Self {
        Self::with_engine(params, ColumnarEngine::Fhe.resolve())
    }

    /// A server whose `columnar` evaluation runs on `engine`.
    pub fn with_engine(params: Params, engine: ResolvedEngine) -> Self {
        Self {
            params,
            engine,
            state: RwLock::new(State::default()),
        }
    }

    /// The deployment this server is bound to, if any.
    pub fn deployment(&self) -> Option<u64> {
        self.read().deployment
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one request: `Setup` and `Shard` are stored and acknowledged; `Query` is
    /// evaluated and answered with a `ClusterResult` whose header is the evaluation time
    /// in nanoseconds. A setup replaces the evaluation material and drops any stored
    /// shard (it was encrypted for other keys); a shard before any setup is refused.
    pub fn handle(&self, request: &[u8]) -> Result<Vec<u8>> {
        match wire::peek(request)? {
            Artifact::Setup => {
                // Decoding checks the owner's signature and that the id is the owner key's.
                let setup = Setup::decode(request, &self.params)?;
                let id = wire::deployment(request)?;
                if self.read().deployment == Some(id) {
                    // The owner's setup again (a main server retrying a setup that another
                    // cluster refused): acknowledged, nothing replaced — the keys stay the
                    // ones the shard is evaluated with.
                    return Ok(self.ack(id));
                }
                self.refuse_if_bound(&self.read(), id)?;
                let evaluator = match setup.layout {
                    Layout::BlindTouch { .. } => Evaluator::BlindTouch(Box::new(
                        BlindTouchEvaluator::new(&self.params, setup)?,
                    )),
                    Layout::Columnar => match &self.engine.backend {
                        None => Evaluator::Columnar(ColumnarEvaluator::new(&self.params, setup)?),
                        Some(backend) => {
                            let weights = setup.weights.ok_or_else(|| {
                                ProtocolError::state(ROLE, "setup lacks the weights")
                            })?;
                            Evaluator::Fused(FusedColumnar::new(
                                &self.params,
                                &weights,
                                backend.clone(),
                            )?)
                        }
                    },
                };
                // Check again under the write lock: another setup may have bound this
                // server while the evaluator was being built.
                let mut state = self.write();
                self.refuse_if_bound(&state, id)?;
                *state = State {
                    deployment: Some(id),
                    evaluator: Some(evaluator),
                    units: Vec::new(),
                    stored: None,
                };
                Ok(self.ack(id))
            }
            Artifact::Shard => {
                let (users, units) = Gallery::decode(request, Artifact::Shard, &self.params)?;
                let mut state = self.write();
                let (Some(id), Some(evaluator)) = (state.deployment, state.evaluator.as_ref())
                else {
                    return Err(ProtocolError::state(ROLE, "gallery shard before setup"));
                };
                wire::check_owner(request, Artifact::Shard, id)?;
                evaluator.check_units(&self.params, users, units.iter().map(|(id, _)| id))?;
                state.stored = match evaluator {
                    Evaluator::Fused(f) => Some(f.store(&units)?),
                    _ => None,
                };
                state.units = units;
                Ok(self.ack(id))
            }
            Artifact::ShardUpdate => {
                let (_, users, raw) =
                    Gallery::decode_update_raw(request, Artifact::ShardUpdate, &self.params)?;
                let changed = Gallery::parse_units(Artifact::ShardUpdate, &self.params, raw)?;
                let mut guard = self.write();
                // Through a plain reference, so the evaluator and the units borrow apart.
                let state = &mut *guard;
                let (Some(id), Some(evaluator)) = (state.deployment, state.evaluator.as_ref())
                else {
                    return Err(ProtocolError::state(ROLE, "shard update before setup"));
                };
                wire::check_owner(request, Artifact::ShardUpdate, id)?;
                // Check before changing anything: the update on its own (no unit twice,
                // all within the new layout), and the units kept (a smaller user count
                // must not leave stored units outside the layout).
                evaluator.check_units(&self.params, users, changed.iter().map(|(id, _)| id))?;
                let replaced: BTreeSet<&UnitId> = changed.iter().map(|(id, _)| id).collect();
                evaluator.check_units(
                    &self.params,
                    users,
                    state
                        .units
                        .iter()
                        .map(|(id, _)| id)
                        .filter(|id| !replaced.contains(id)),
                )?;
                let mut merged: BTreeMap<UnitId, Ciphertext> =
                    std::mem::take(&mut state.units).into_iter().collect();
                merged.extend(changed);
                let units: Vec<(UnitId, Ciphertext)> = merged.into_iter().collect();
                let stored = match evaluator {
                    Evaluator::Fused(f) => Some(f.store(&units)),
                    _ => None,
                };
                state.units = units;
                state.stored = stored.transpose()?;
                Ok(self.ack(id))
            }
            Artifact::Query => self.evaluate(request),
            Artifact::QueryExtended => self.evaluate_extended(request),
            Artifact::Reset => {
                // Resets come from the main server (the operator), over the channel that
                // authenticates it; they clear whatever this server holds.
                Reset::decode(request, &self.params)?;
                *self.write() = State::default();
                Ok(self.ack(wire::deployment(request)?))
            }
            other => Err(ProtocolError::wire(
                other.name(),
                "a cluster server accepts setup, gallery shard, shard update, query and reset messages only",
            )),
        }
    }

    fn ack(&self, deployment: u64) -> Vec<u8> {
        Ciphertexts::encode(
            Artifact::ClusterResult,
            &self.params,
            Sealer::Server(deployment),
            0,
            &[],
        )
    }

    /// A bound server takes no other deployment's setup until it is reset (keys are never
    /// replaced silently; the owner's own setup again is acknowledged without change).
    fn refuse_if_bound(&self, state: &State, id: u64) -> Result<()> {
        match state.deployment {
            Some(current) => Err(ProtocolError::state(
                ROLE,
                format!(
                    "holds deployment {current:016x}; a setup from deployment {id:016x} needs a \
                     reset first"
                ),
            )),
            None => Ok(()),
        }
    }

    fn evaluate(&self, request: &[u8]) -> Result<Vec<u8>> {
        let state = self.read();
        let (Some(id), Some(evaluator)) = (state.deployment, state.evaluator.as_ref()) else {
            return Err(ProtocolError::state(ROLE, "query before setup"));
        };
        let (_, raw) = Ciphertexts::decode_serialized(request, Artifact::Query, &self.params)?;
        wire::check_owner(request, Artifact::Query, id)?;
        let start = Instant::now();
        let decode = || {
            raw.iter()
                .map(|&(index, ct)| {
                    let ct = wire::decode_ciphertext(
                        "query",
                        "ciphertext",
                        ct,
                        self.params.bfv(),
                        Some(2),
                    )?;
                    Ok((index, ct))
                })
                .collect::<Result<Vec<_>>>()
        };
        let results = match evaluator {
            Evaluator::Fused(f) => {
                // Straight into kernel words and back to bytes: no fhe.rs objects for the
                // query or the answer (see FusedColumnar::evaluate_serialized).
                let indexes: Vec<usize> = raw.iter().map(|(i, _)| *i).collect();
                check_columnar_indexes(&indexes, f.features())?;
                let evaluated = match &state.stored {
                    Some(shard) => f.evaluate_serialized(shard, &raw)?,
                    None => {
                        // Nothing to score, but a malformed query is still refused.
                        f.query_words(&raw)?;
                        Vec::new()
                    }
                };
                return self.serialized_result_message(id, start, f, evaluated);
            }
            Evaluator::BlindTouch(e) => {
                let query = decode()?;
                let [(_, q)] = query.as_slice() else {
                    return Err(ProtocolError::wire(
                        "query",
                        format!(
                            "blindtouch expects one query ciphertext, got {}",
                            query.len()
                        ),
                    ));
                };
                state
                    .units
                    .par_iter()
                    .map(|(id, r)| Ok((id.group, e.evaluate(q, r, id.group)?)))
                    .collect::<Result<Vec<_>>>()?
            }
            Evaluator::Columnar(e) => {
                let query = decode()?;
                check_columnar_query(&query, e.features())?;
                let terms = state
                    .units
                    .par_iter()
                    .map(|(id, r)| Ok((id.group, e.term(&query[id.feature].1, r, id.feature)?)))
                    .collect::<Result<Vec<_>>>()?;
                let mut by_group: BTreeMap<usize, Vec<(Ciphertext, bool)>> = BTreeMap::new();
                for (group, term) in terms {
                    by_group.entry(group).or_default().push(term);
                }
                by_group
                    .into_iter()
                    .filter_map(|(g, terms)| signed_sum(terms).map(|ct| (g, ct)))
                    .collect()
            }
        };
        Ok(self.result_message(id, start, &results))
    }

    /// An extended query (the fused engines only): no decoding, no extension.
    fn evaluate_extended(&self, request: &[u8]) -> Result<Vec<u8>> {
        let state = self.read();
        let (Some(id), Some(evaluator)) = (state.deployment, state.evaluator.as_ref()) else {
            return Err(ProtocolError::state(ROLE, "query before setup"));
        };
        let Evaluator::Fused(f) = evaluator else {
            return Err(ProtocolError::wire(
                Artifact::QueryExtended.name(),
                "this cluster evaluates with fhe.rs; the extended form needs a fused engine (cpu or cuda)",
            ));
        };
        // The owner first (a header read): another deployment's query is refused before
        // its megabytes are copied and checked.
        wire::peek(request)?;
        wire::check_owner(request, Artifact::QueryExtended, id)?;
        let words =
            ExtendedQuery::decode(request, &self.params, &f.plan().qp().primes(), f.features())?;
        let start = Instant::now();
        let evaluated = match &state.stored {
            Some(shard) => f.evaluate_extended_coefficients(shard, &words)?,
            None => Vec::new(),
        };
        self.serialized_result_message(id, start, f, evaluated)
    }

    /// The sealed cluster result of the fused engine, written from its words; the
    /// evaluation time runs to the end of the evaluation, as for the other engines (the
    /// answer's serialization is part of the cluster's wall time).
    fn serialized_result_message(
        &self,
        id: u64,
        start: Instant,
        f: &FusedColumnar,
        evaluated: Vec<(usize, Vec<u64>)>,
    ) -> Result<Vec<u8>> {
        let nanos = start.elapsed().as_nanos() as u64;
        Ok(Ciphertexts::encode_serialized(
            Artifact::ClusterResult,
            &self.params,
            Sealer::Server(id),
            nanos,
            &f.serialize(evaluated),
        ))
    }

    /// The sealed cluster result, with the evaluation time since `start`.
    fn result_message(&self, id: u64, start: Instant, results: &[(usize, Ciphertext)]) -> Vec<u8> {
        let nanos = start.elapsed().as_nanos() as u64;
        Ciphertexts::encode(
            Artifact::ClusterResult,
            &self.params,
            Sealer::Server(id),
            nanos,
            results,
        )
    }
}

fn check_columnar_query(query: &[(usize, Ciphertext)], features: usize) -> Result<()> {
    let indexes: Vec<usize> = query.iter().map(|(i, _)| *i).collect();
    check_columnar_indexes(&indexes, features)
}

fn check_columnar_indexes(indexes: &[usize], features: usize) -> Result<()> {
    let complete = indexes.len() == features && indexes.iter().enumerate().all(|(j, i)| *i == j);
    if complete {
        Ok(())
    } else {
        Err(ProtocolError::wire(
            "query",
            format!("columnar expects query ciphertexts 0..{features}, one per feature"),
        ))
    }
}
