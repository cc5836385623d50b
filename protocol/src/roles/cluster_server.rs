//! A cluster server: holds one shard of the encrypted gallery and the public evaluation
//! material, evaluates queries on its shard. It sees only ciphertexts and public weights.

use crate::engine::{ColumnarEngine, ResolvedEngine};
use crate::error::{ProtocolError, Result};
use crate::evaluate::{signed_sum, BlindTouchEvaluator, ColumnarEvaluator};
use crate::fused::{FusedColumnar, StoredShard};
use crate::messages::{Ciphertexts, Gallery, Layout, Setup, UnitId};
use crate::params::Params;
use crate::wire::{self, Artifact};
use fhe::bfv::Ciphertext;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Instant;

const ROLE: &str = "cluster server";

enum Evaluator {
    BlindTouch(Box<BlindTouchEvaluator>),
    Columnar(ColumnarEvaluator),
    Fused(FusedColumnar),
}

#[derive(Default)]
struct State {
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
    /// in nanoseconds.
    pub fn handle(&self, request: &[u8]) -> Result<Vec<u8>> {
        match wire::peek(request)? {
            Artifact::Setup => {
                let setup = Setup::decode(request, &self.params)?;
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
                let mut state = self.write();
                state.stored = match &evaluator {
                    Evaluator::Fused(f) if !state.units.is_empty() => Some(f.store(&state.units)?),
                    _ => None,
                };
                state.evaluator = Some(evaluator);
                Ok(self.ack())
            }
            Artifact::Shard => {
                let (_, units) = Gallery::decode(request, Artifact::Shard, &self.params)?;
                let mut state = self.write();
                state.stored = match &state.evaluator {
                    Some(Evaluator::Fused(f)) => Some(f.store(&units)?),
                    _ => None,
                };
                state.units = units;
                Ok(self.ack())
            }
            Artifact::Query => self.evaluate(request),
            other => Err(ProtocolError::wire(
                other.name(),
                "a cluster server accepts setup, gallery shard and query messages only",
            )),
        }
    }

    fn ack(&self) -> Vec<u8> {
        Ciphertexts::encode(Artifact::ClusterResult, &self.params, 0, &[])
    }

    fn evaluate(&self, request: &[u8]) -> Result<Vec<u8>> {
        let state = self.read();
        let evaluator = state
            .evaluator
            .as_ref()
            .ok_or_else(|| ProtocolError::state(ROLE, "query before setup"))?;
        let (_, query) = Ciphertexts::decode(request, Artifact::Query, &self.params, 2)?;
        let start = Instant::now();
        let results = match evaluator {
            Evaluator::BlindTouch(e) => {
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
            Evaluator::Fused(f) => {
                check_columnar_query(&query, f.features())?;
                match &state.stored {
                    Some(shard) => f.evaluate(shard, &query)?,
                    None => Vec::new(),
                }
            }
            Evaluator::Columnar(e) => {
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
        let nanos = start.elapsed().as_nanos() as u64;
        Ok(Ciphertexts::encode(
            Artifact::ClusterResult,
            &self.params,
            nanos,
            &results,
        ))
    }
}

fn check_columnar_query(query: &[(usize, Ciphertext)], features: usize) -> Result<()> {
    let complete = query.len() == features && query.iter().enumerate().all(|(j, (i, _))| *i == j);
    if complete {
        Ok(())
    } else {
        Err(ProtocolError::wire(
            "query",
            format!("columnar expects query ciphertexts 0..{features}, one per feature"),
        ))
    }
}
