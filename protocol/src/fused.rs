//! The `columnar` circuit through the fused kernel: the cluster keeps its shard extended
//! (on the GPU for the CUDA backend) and answers each query with one 3-component
//! ciphertext per group, as fhe.rs's per-operation circuit does.

use crate::error::{ProtocolError, Result};
use crate::messages::UnitId;
use crate::params::Params;
use fhe::bfv::{BfvParameters, Ciphertext};
use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use kernels::{Backend, FusedPlan, StoredGallery};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Evaluates columnar queries with a kernel backend.
pub struct FusedColumnar {
    plan: Arc<FusedPlan>,
    backend: Arc<dyn Backend>,
    par: Arc<BfvParameters>,
    ctx: Arc<Context>,
}

/// The words of a query's seeded ciphertexts (both components, NTT form over Q, one
/// ciphertext after the other), read straight from their serialized form — see
/// [`FusedColumnar::query_words`] (what a device engine extends itself).
pub fn seeded_query_words(
    items: &[(usize, &[u8])],
    plan: &FusedPlan,
    ctx: &Arc<Context>,
    par: &Arc<BfvParameters>,
) -> Result<Vec<u64>> {
    let q = plan.q();
    let parts = query_parts(items, plan, ctx, par)?
        .into_par_iter()
        .map(|(mut words, c0_coefficients)| {
            if c0_coefficients {
                q.forward(&mut words[..q.poly_len()])?;
            }
            Ok(words)
        })
        .collect::<Result<Vec<Vec<u64>>>>()?;
    Ok(parts.concat())
}

/// The query extended to the fused engine's basis Q∪P (NTT form) straight from its
/// serialized ciphertexts: as [`seeded_query_words`] followed by
/// [`FusedPlan::extend_ntt`], with the same words, but a seeded ciphertext's c₀ — which
/// travels in coefficient form — is lifted as it comes instead of being transformed to
/// NTT form and back (32 fewer transforms per 16-feature query).
pub fn seeded_query_extended(
    items: &[(usize, &[u8])],
    plan: &FusedPlan,
    ctx: &Arc<Context>,
    par: &Arc<BfvParameters>,
) -> Result<Vec<u64>> {
    let parts = query_parts(items, plan, ctx, par)?;
    // Polynomial 2j is ciphertext j's c₀, in coefficient form when it came seeded; each
    // part holds c₀ then c₁ and is extended where it lies (no concatenated copy).
    let len = plan.q().poly_len();
    Ok(plan.extend_each(2 * parts.len(), |i| {
        let (words, seeded) = &parts[i / 2];
        (&words[(i % 2) * len..][..len], i % 2 == 0 && *seeded)
    })?)
}

/// Each query ciphertext's words over Q — c₀ then c₁ (NTT form, a seeded c₁ drawn from
/// its seed by fhe-math's own sampler) — and whether c₀ is still in the coefficient form
/// a seeded ciphertext carries it in. A ciphertext of any other shape goes through
/// fhe.rs's decoder and checks (both components in NTT form).
fn query_parts(
    items: &[(usize, &[u8])],
    plan: &FusedPlan,
    ctx: &Arc<Context>,
    par: &Arc<BfvParameters>,
) -> Result<Vec<(Vec<u64>, bool)>> {
    let n = plan.degree();
    let q = plan.q();
    let moduli = q.primes();
    items
        .par_iter()
        .enumerate()
        .map(|(j, (_, bytes))| {
            let what = format!("ciphertext {j}");
            match crate::rq_wire::read_seeded(bytes, &moduli, n, &what)? {
                Some(seeded) => {
                    let mut words = seeded.c0;
                    let a = Poly::random_from_seed(ctx, Representation::Ntt, seeded.seed);
                    words.extend(a.coefficients().iter());
                    Ok((words, true))
                }
                None => {
                    let ct = crate::wire::decode_ciphertext("query", &what, bytes, par, Some(2))?;
                    Ok((ciphertext_words(&[&ct], n, q.limbs(), "query")?, false))
                }
            }
        })
        .collect()
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
                    // Same bases as the full plan, so one extended query serves all.
                    Arc::new(self.plan.with_weights(&weights)?)
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
        self.evaluate_words(shard, &words)
    }

    /// The query's words (both components of every ciphertext, NTT form over Q) read
    /// straight from its serialized ciphertexts. The seeded fresh ciphertexts clients send
    /// skip fhe.rs's objects: c₀ is unpacked and transformed with the kernels' NTT (fhe.rs
    /// would transform it with fhe-math's, to the same words), c₁ is drawn from its seed by
    /// fhe-math's own sampler. Any other shape goes through fhe.rs's decoder and checks.
    pub fn query_words(&self, items: &[(usize, &[u8])]) -> Result<Vec<u64>> {
        seeded_query_words(items, &self.plan, &self.ctx, &self.par)
    }

    /// The result words (3 polynomials over Q, coefficient form) of every stored group,
    /// ordered by group, for a query as it came (serialized ciphertexts). The CPU engine
    /// extends it straight from the wire (see [`seeded_query_extended`]); a device engine
    /// takes its NTT words and extends them itself. [`FusedColumnar::serialize`] writes
    /// the answer.
    pub fn evaluate_serialized(
        &self,
        shard: &StoredShard,
        items: &[(usize, &[u8])],
    ) -> Result<Vec<(usize, Vec<u64>)>> {
        if self.backend.name() == "cpu" {
            let extended = seeded_query_extended(items, &self.plan, &self.ctx, &self.par)?;
            self.evaluate_extended_coefficients(shard, &extended)
        } else {
            let mut evaluated = self.evaluated(shard, &self.query_words(items)?)?;
            for (_, words) in &mut evaluated {
                self.plan.q().inverse(words)?;
            }
            Ok(evaluated)
        }
    }

    /// The result words (coefficient form) of every stored group, ordered by group, for
    /// an extended query (Q∪P, NTT form).
    pub fn evaluate_extended_coefficients(
        &self,
        shard: &StoredShard,
        extended: &[u64],
    ) -> Result<Vec<(usize, Vec<u64>)>> {
        self.each_part(shard, |gallery| {
            gallery.evaluate_extended_coefficients(extended, &self.plan)
        })
    }

    /// One result ciphertext (3 components) per stored group, for query words from
    /// [`FusedColumnar::query_words`].
    pub fn evaluate_words(
        &self,
        shard: &StoredShard,
        words: &[u64],
    ) -> Result<Vec<(usize, Ciphertext)>> {
        self.results(self.evaluated(shard, words)?)
    }

    /// One result ciphertext per stored group, for a query the client already extended to
    /// Q∪P (see [`crate::messages::ExtendedQuery`]).
    pub fn evaluate_extended_words(
        &self,
        shard: &StoredShard,
        extended: &[u64],
    ) -> Result<Vec<(usize, Ciphertext)>> {
        self.results(self.evaluated_extended(shard, extended)?)
    }

    /// Result words per group, ordered by group, for query words over Q.
    fn evaluated(&self, shard: &StoredShard, words: &[u64]) -> Result<Vec<(usize, Vec<u64>)>> {
        if let [(gallery, groups)] = shard.parts.as_slice() {
            // One part: the backend extends the query itself (on the device for a GPU).
            return Ok(by_group(vec![(groups, gallery.evaluate(words)?)]));
        }
        // Several feature subsets share the plan's bases: extend the query once.
        self.evaluated_extended(shard, &self.plan.extend_ntt(words)?)
    }

    /// Result words per group, ordered by group, for an extended query (Q∪P, NTT form).
    pub fn evaluated_extended(
        &self,
        shard: &StoredShard,
        extended: &[u64],
    ) -> Result<Vec<(usize, Vec<u64>)>> {
        self.each_part(shard, |gallery| gallery.evaluate_extended(extended))
    }

    /// `evaluate` on every stored part (feature subset), as (group, words) by group.
    fn each_part(
        &self,
        shard: &StoredShard,
        evaluate: impl Fn(
            &dyn StoredGallery,
        ) -> std::result::Result<Vec<Vec<u64>>, kernels::KernelError>,
    ) -> Result<Vec<(usize, Vec<u64>)>> {
        let evaluated = shard
            .parts
            .iter()
            .map(|(gallery, groups)| Ok((groups, evaluate(gallery.as_ref())?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(by_group(evaluated))
    }

    /// Result words into fhe.rs ciphertexts.
    fn results(&self, evaluated: Vec<(usize, Vec<u64>)>) -> Result<Vec<(usize, Ciphertext)>> {
        let n = self.plan.degree();
        let limbs = self.plan.q().limbs();
        evaluated
            .into_iter()
            .map(|(group, words)| {
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

    /// Result words in coefficient form (from [`FusedColumnar::evaluate_serialized`])
    /// serialized as fhe.rs serializes the ciphertexts [`FusedColumnar`]'s other methods
    /// return — the same bytes, tested — without building them: fhe.rs would transform
    /// each polynomial to NTT form for the object and back to coefficients to write it.
    pub fn serialize(&self, evaluated: Vec<(usize, Vec<u64>)>) -> Vec<(usize, Vec<u8>)> {
        let q = self.plan.q();
        let moduli = q.primes();
        evaluated
            .into_par_iter()
            .map(|(group, words)| {
                let polys: Vec<&[u64]> = words.chunks_exact(q.poly_len()).collect();
                // fhe.rs writes the flag its result polynomials carry: constant time.
                (
                    group,
                    crate::rq_wire::write_ciphertext(&polys, &moduli, false),
                )
            })
            .collect()
    }

    /// The limbs of two-component, level-0 ciphertexts in NTT form, one after the other.
    fn words(&self, cts: &[&Ciphertext], what: &str) -> Result<Vec<u64>> {
        ciphertext_words(cts, self.plan.degree(), self.plan.q().limbs(), what)
    }
}

/// Per-part results (groups in storage order) as (group, words), ordered by group.
fn by_group(evaluated: Vec<(&Vec<usize>, Vec<Vec<u64>>)>) -> Vec<(usize, Vec<u64>)> {
    let mut out: Vec<(usize, Vec<u64>)> = evaluated
        .into_iter()
        .flat_map(|(groups, results)| groups.iter().copied().zip(results))
        .collect();
    out.sort_by_key(|(g, _)| *g);
    out
}

/// The limbs of two-component, level-0 ciphertexts (degree n, `limbs` primes) in NTT
/// form, one after the other.
fn ciphertext_words(cts: &[&Ciphertext], n: usize, limbs: usize, what: &str) -> Result<Vec<u64>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Ciphertexts, EncryptedQuery, Layout};
    use crate::roles::Client;
    use crate::wire::Artifact;
    use crate::{ParamSpec, SyntheticSpec, Workload};

    /// A synthetic workload, `preset`'s parameters, a columnar client and a fused CPU
    /// engine for its model.
    fn setup(preset: &str) -> (Workload, crate::Params, Client, FusedColumnar) {
        let set = Workload::synthetic(&SyntheticSpec::new(2, 1, 4)).unwrap();
        let params = ParamSpec::preset(preset).unwrap().build().unwrap();
        let client = Client::new(params.clone(), Layout::Columnar, set.quantized.clone()).unwrap();
        let engine = FusedColumnar::new(
            &params,
            &set.quantized.weights,
            Arc::new(kernels::CpuBackend),
        )
        .unwrap();
        (set, params, client, engine)
    }

    /// The words read straight from the wire equal those of fhe.rs's decoding, for the
    /// fast encryption's seeded ciphertexts and for fhe.rs's own.
    #[test]
    fn query_words_from_the_wire_equal_fhe_rs_decoding() {
        for preset in ["col-4096", "col-8192"] {
            let (set, params, client, engine) = setup(preset);
            let probe = &set.probes[0].template;
            let fast = client.encrypt_query(probe).unwrap();
            let reference =
                EncryptedQuery::from_ciphertexts(&client.encrypt_query_reference(probe).unwrap());
            // Both encryptions are seeded fresh ciphertexts: the fast reader takes them.
            let moduli = params.moduli().to_vec();
            for (_, bytes) in fast.items.iter().chain(&reference.items) {
                let seeded = crate::rq_wire::read_seeded(bytes, &moduli, params.degree(), "test");
                assert!(seeded.unwrap().is_some(), "{preset}");
            }
            for query in [fast, reference] {
                let bytes = client.query_message(&query);
                let (_, raw) =
                    Ciphertexts::decode_serialized(&bytes, Artifact::Query, &params).unwrap();
                let (_, decoded) =
                    Ciphertexts::decode(&bytes, Artifact::Query, &params, 2).unwrap();
                let cts: Vec<&Ciphertext> = decoded.iter().map(|(_, c)| c).collect();
                let words = engine.words(&cts, "query").unwrap();
                assert_eq!(engine.query_words(&raw).unwrap(), words, "{preset}");
                // Extended straight from the wire (c₀ lifted from its coefficient form):
                // the extension of those words.
                assert_eq!(
                    seeded_query_extended(&raw, &engine.plan, &engine.ctx, &engine.par).unwrap(),
                    engine.plan.extend_ntt(&words).unwrap(),
                    "{preset}"
                );
            }
        }
    }

    /// The answer written from the result words is, byte for byte, what fhe.rs writes
    /// for the result ciphertexts; and a whole evaluation from the wire equals the one
    /// from fhe.rs's decoded query.
    #[test]
    fn answers_written_from_words_are_fhe_rs_bytes() {
        use crate::messages::Gallery;
        for preset in ["col-4096", "col-8192"] {
            let (set, params, client, engine) = setup(preset);
            let enrolment = client.enrolment_message(&set.gallery).unwrap();
            let (_, units) = Gallery::decode(&enrolment, Artifact::Enrolment, &params).unwrap();
            let shard = engine.store(&units).unwrap();
            let query = client.encrypt_query(&set.probes[0].template).unwrap();
            let bytes = client.query_message(&query);
            let (_, raw) =
                Ciphertexts::decode_serialized(&bytes, Artifact::Query, &params).unwrap();
            let evaluated = engine.evaluate_serialized(&shard, &raw).unwrap();
            let words = engine.query_words(&raw).unwrap();
            let reference = engine.evaluate_words(&shard, &words).unwrap();
            let written = engine.serialize(evaluated.clone());
            assert_eq!(written.len(), reference.len());
            for ((g, b), (h, ct)) in written.iter().zip(&reference) {
                assert_eq!(g, h);
                assert_eq!(
                    *b,
                    fhe_traits::Serialize::to_bytes(ct),
                    "{preset}, group {g}"
                );
            }
            // The client reads the answer (fast path) into fhe.rs's own ciphertexts.
            let results = Ciphertexts::encode_serialized(
                Artifact::Results,
                &params,
                crate::wire::Sealer::Server(client.deployment()),
                0,
                &written,
            );
            assert_eq!(client.open_results(&results).unwrap(), reference);
            let mut ntt = evaluated;
            for (_, words) in &mut ntt {
                engine.plan.q().forward(words).unwrap();
            }
            assert_eq!(engine.results(ntt).unwrap(), reference);
        }
    }

    /// A ciphertext that is not a fresh seeded one (here the sum of two, which drops the
    /// seed) goes through fhe.rs's decoder and gives its words.
    #[test]
    fn unseeded_ciphertexts_take_fhe_rs_decoding() {
        let (set, params, client, engine) = setup("col-4096");
        let cts = client
            .encrypt_query_reference(&set.probes[0].template)
            .unwrap();
        let summed: Vec<(usize, Ciphertext)> = cts.iter().map(|(i, c)| (*i, c + c)).collect();
        let query = EncryptedQuery::from_ciphertexts(&summed);
        let moduli = params.moduli().to_vec();
        let first = &query.items[0].1;
        assert!(
            crate::rq_wire::read_seeded(first, &moduli, params.degree(), "t")
                .unwrap()
                .is_none()
        );
        let raw: Vec<(usize, &[u8])> = query
            .items
            .iter()
            .map(|(i, b)| (*i, b.as_slice()))
            .collect();
        let refs: Vec<&Ciphertext> = summed.iter().map(|(_, c)| c).collect();
        let words = engine.words(&refs, "query").unwrap();
        assert_eq!(engine.query_words(&raw).unwrap(), words);
        assert_eq!(
            seeded_query_extended(&raw, &engine.plan, &engine.ctx, &engine.par).unwrap(),
            engine.plan.extend_ntt(&words).unwrap()
        );
    }

    /// Hostile seeded ciphertexts are refused with what is wrong, never decoded.
    #[test]
    fn malformed_seeded_ciphertexts_are_refused_naming_the_fault() {
        use crate::rq_wire::RqWire;
        use prost::Message;
        let (set, _, client, engine) = setup("col-4096");
        let good = client.encrypt_query(&set.probes[0].template).unwrap().items[0]
            .1
            .clone();
        let proto = fhe::proto::bfv::Ciphertext::decode(good.as_slice()).unwrap();
        let rq = RqWire::decode(proto.c[0].as_slice()).unwrap();
        let with = |f: &dyn Fn(&mut fhe::proto::bfv::Ciphertext, &mut RqWire)| {
            let (mut ct, mut rq) = (proto.clone(), rq.clone());
            f(&mut ct, &mut rq);
            ct.c = vec![rq.encode_to_vec()];
            let bytes = ct.encode_to_vec();
            engine
                .query_words(&[(0, bytes.as_slice())])
                .unwrap_err()
                .to_string()
        };
        assert!(with(&|_, r| r.representation = 1).contains("PowerBasis representation"));
        assert!(with(&|_, r| r.degree = 8192).contains("degree 8192"));
        assert!(with(&|_, r| {
            r.coefficients.pop();
        })
        .contains("coefficient bytes"));
        assert!(with(&|_, r| r.coefficients[..8].fill(0xff)).contains("not reduced"));
        assert!(with(&|c, _| c.level = 1).contains("level 1"));
        assert!(with(&|c, _| c.seed.truncate(31)).contains("31 bytes"));
        let garbage = engine
            .query_words(&[(0, &b"\xff\xff\xff"[..])])
            .unwrap_err();
        assert!(garbage.to_string().contains("ciphertext 0"), "{garbage}");
    }
}
