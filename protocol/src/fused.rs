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

/// A shard held by the backend, with the group number of each stored group.
pub struct StoredShard {
    gallery: Box<dyn StoredGallery>,
    groups: Vec<usize>,
}

impl StoredShard {
    /// Bytes the backend holds for the extended shard.
    pub fn bytes(&self) -> usize {
        self.gallery.bytes()
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

    /// Hands the shard to the backend, grouped: every group must hold one ciphertext per
    /// feature.
    pub fn store(&self, units: &[(UnitId, Ciphertext)]) -> Result<StoredShard> {
        let mut by_group: BTreeMap<usize, Vec<Option<&Ciphertext>>> = BTreeMap::new();
        for (id, ct) in units {
            let slots = by_group
                .entry(id.group)
                .or_insert_with(|| vec![None; self.features()]);
            let slot = slots.get_mut(id.feature).ok_or_else(|| {
                ProtocolError::Layout(format!(
                    "gallery ciphertext for feature {}, but the model has {} features",
                    id.feature,
                    self.features()
                ))
            })?;
            *slot = Some(ct);
        }
        let mut groups = Vec::with_capacity(by_group.len());
        let mut data = Vec::with_capacity(by_group.len());
        for (group, slots) in by_group {
            let cts = slots
                .into_iter()
                .enumerate()
                .map(|(j, ct)| {
                    ct.ok_or_else(|| {
                        ProtocolError::Layout(format!("gallery group {group} lacks feature {j}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            data.push(self.words(&cts, &format!("gallery group {group}"))?);
            groups.push(group);
        }
        let gallery = self.backend.store_gallery(&self.plan, data)?;
        Ok(StoredShard { gallery, groups })
    }

    /// One result ciphertext (3 components) per stored group.
    pub fn evaluate(
        &self,
        shard: &StoredShard,
        query: &[(usize, Ciphertext)],
    ) -> Result<Vec<(usize, Ciphertext)>> {
        let cts: Vec<&Ciphertext> = query.iter().map(|(_, ct)| ct).collect();
        let words = self.words(&cts, "query")?;
        let results = shard.gallery.evaluate(&words)?;
        let n = self.plan.degree();
        let limbs = self.plan.q().limbs();
        shard
            .groups
            .iter()
            .zip(results)
            .map(|(&group, words)| {
                let polys = words
                    .chunks_exact(limbs * n)
                    .map(|poly| {
                        Poly::try_convert_from(poly.to_vec(), &self.ctx, false, Representation::Ntt)
                            .map_err(|e| ProtocolError::Fhe(fhe::Error::MathError(e)))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((group, Ciphertext::new(polys, &self.par)?))
            })
            .collect()
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
