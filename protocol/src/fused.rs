//! The `columnar` circuit through the fused kernel: the cluster keeps its shard extended
//! (on the GPU for the CUDA backend) and answers each query with one 3-component
//! ciphertext per group, as fhe.rs's per-operation circuit does.

use crate::error::{ProtocolError, Result};
use crate::messages::UnitId;
use crate::params::Params;
use fhe::bfv::{BfvParameters, Ciphertext};
use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use kernels::{Backend, FusedPlan, StoredGallery};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Evaluates columnar queries with a kernel backend.
pub struct FusedColumnar {
    plan: Arc<FusedPlan>,
    backend: Arc<dyn Backend>,
    par: Arc<BfvParameters>,
    ctx: Arc<Context>,
}

/// A shard held by the backend. The main server splits the gallery by ciphertext, so a
/// cluster may hold only some features of a group (then it returns that group's partial
/// sum, as the per-operation engine does): groups are stored by which features they hold,
/// each set with a plan whose weights are zero for the features it lacks.
pub struct StoredShard {
    parts: Vec<(Box<dyn StoredGallery>, Vec<usize>)>,
}

impl StoredShard {
    /// Bytes the backend holds for the extended shard.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|(g, _)| g.bytes()).sum()
    }
}

impl FusedColumnar {
    /// A plan for `params` (level 0) and the model's signed weights.
    pub fn new(params: &Params, weights: &[i64], backend: Arc<dyn Backend>) -> Result<Self> {
        let par = params.bfv().clone();
        let plan = FusedPlan::new(par.degree(), par.moduli(), par.plaintext(), weights)?;
        let ctx = par.context_at_level(0)?.clone();
        Ok(Self {
            plan: Arc::new(plan),
            backend,
            par,
            ctx,
        })
    }

    /// The kernel plan (bases, extension primes).
    pub fn plan(&self) -> &FusedPlan {
        &self.plan
    }

    /// Number of features (query ciphertexts expected).
    pub fn features(&self) -> usize {
        self.plan.features()
    }

    /// Hands the shard to the backend, grouped by group and by the features present.
    pub fn store(&self, units: &[(UnitId, Ciphertext)]) -> Result<StoredShard> {
        let features = self.features();
        let mut by_group: BTreeMap<usize, Vec<Option<&Ciphertext>>> = BTreeMap::new();
        for (id, ct) in units {
            let slots = by_group
                .entry(id.group)
                .or_insert_with(|| vec![None; features]);
            let slot = slots.get_mut(id.feature).ok_or_else(|| {
                ProtocolError::Layout(format!(
                    "gallery ciphertext for feature {}, but the model has {features} features",
                    id.feature
                ))
            })?;
            *slot = Some(ct);
        }
        type Part<'a> = (Vec<usize>, Vec<Vec<u64>>);
        let mut by_mask: BTreeMap<Vec<bool>, Part<'_>> = BTreeMap::new();
        let zero = vec![0u64; 2 * self.plan.q().poly_len()];
        for (group, slots) in by_group {
            let mask: Vec<bool> = slots.iter().map(Option::is_some).collect();
            let mut words = Vec::with_capacity(self.plan.unextended_len());
            for (j, ct) in slots.into_iter().enumerate() {
                match ct {
                    Some(ct) => words
                        .extend(self.words(&[ct], &format!("gallery group {group}, feature {j}"))?),
                    None => words.extend_from_slice(&zero),
                }
            }
            let part = by_mask.entry(mask).or_default();
            part.0.push(group);
            part.1.push(words);
        }
        let parts = by_mask
            .into_iter()
            .map(|(mask, (groups, data))| {
                let plan = if mask.iter().all(|&m| m) {
                    self.plan.clone()
                } else {
                    let weights: Vec<i64> = self
                        .plan
                        .weights()
                        .iter()
                        .zip(&mask)
                        .map(|(&w, &present)| if present { w } else { 0 })
                        .collect();
                    let par = &self.par;
                    Arc::new(FusedPlan::new(
                        par.degree(),
                        par.moduli(),
                        par.plaintext(),
                        &weights,
                    )?)
                };
                Ok((self.backend.store_gallery(&plan, data)?, groups))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StoredShard { parts })
    }

    /// One result ciphertext (3 components) per stored group.
    pub fn evaluate(
        &self,
        shard: &StoredShard,
        query: &[(usize, Ciphertext)],
    ) -> Result<Vec<(usize, Ciphertext)>> {
        let cts: Vec<&Ciphertext> = query.iter().map(|(_, ct)| ct).collect();
        let words = self.words(&cts, "query")?;
        let n = self.plan.degree();
        let limbs = self.plan.q().limbs();
        let mut out = Vec::new();
        for (gallery, groups) in &shard.parts {
            let results = gallery.evaluate(&words)?;
            for (&group, words) in groups.iter().zip(results) {
                let polys = words
                    .chunks_exact(limbs * n)
                    .map(|poly| {
                        Poly::try_convert_from(poly.to_vec(), &self.ctx, false, Representation::Ntt)
                            .map_err(|e| ProtocolError::Fhe(fhe::Error::MathError(e)))
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push((group, Ciphertext::new(polys, &self.par)?));
            }
        }
        out.sort_by_key(|(g, _)| *g);
        Ok(out)
    }

    /// The limbs of two-component, level-0 ciphertexts in NTT form, one after the other.
    fn words(&self, cts: &[&Ciphertext], what: &str) -> Result<Vec<u64>> {
        let n = self.plan.degree();
        let limbs = self.plan.q().limbs();
        let mut out = Vec::with_capacity(cts.len() * 2 * limbs * n);
        for (j, ct) in cts.iter().enumerate() {
            if ct.len() != 2 {
                return Err(ProtocolError::wire(
                    what,
                    format!("ciphertext {j} has {} components, expected 2", ct.len()),
                ));
            }
            for poly in ct.iter() {
                let converted;
                let poly = if poly.representation() == &Representation::Ntt {
                    poly
                } else {
                    let mut copy = poly.clone();
                    copy.change_representation(Representation::Ntt);
                    converted = copy;
                    &converted
                };
                let coefficients = poly.coefficients();
                if coefficients.dim() != (limbs, n) {
                    return Err(ProtocolError::wire(
                        what,
                        format!(
                            "ciphertext {j} has {:?} limbs × coefficients, expected ({limbs}, {n}) at level 0",
                            coefficients.dim()
                        ),
                    ));
                }
                out.extend(coefficients.iter());
            }
        }
        Ok(out)
    }
}
