//! A cluster server: holds one shard of the encrypted gallery and the public evaluation
//! material, evaluates queries on its shard. It sees only ciphertexts and public weights.

use crate::error::{ProtocolError, Result};
use crate::evaluate::{signed_sum, BlindTouchEvaluator, ColumnarEvaluator};
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
}

#[derive(Default)]
struct State {
    evaluator: Option<Evaluator>,
    units: Vec<(UnitId, Ciphertext)>,
}

/// One cluster server. Requests arrive as bytes (see [`ClusterServer::handle`]).
pub struct ClusterServer {
    params: Params,
    state: RwLock<State>,
}

impl ClusterServer {
    /// A server configured with its own copy of the parameter set.
    pub fn new(params: Params) -> Self {
        Self {
            params,
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
                    Layout::Columnar => {
                        Evaluator::Columnar(ColumnarEvaluator::new(&self.params, setup)?)
                    }
                };
                self.write().evaluator = Some(evaluator);
                Ok(self.ack())
            }
            Artifact::Shard => {
                let (_, units) = Gallery::decode(request, Artifact::Shard, &self.params)?;
                self.write().units = units;
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
            Evaluator::Columnar(e) => {
                let complete = query.len() == e.features()
                    && query.iter().enumerate().all(|(j, (i, _))| *i == j);
                if !complete {
                    return Err(ProtocolError::wire(
                        "query",
                        format!(
                            "columnar expects query ciphertexts 0..{}, one per feature",
                            e.features()
                        ),
                    ));
                }
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
