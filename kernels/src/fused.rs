//! The fused columnar distance: Σⱼ w̃ⱼ·(Qⱼ − R_{g,j})⊗(Qⱼ − R_{g,j}) for one gallery group,
//! accumulated pointwise over Q∪P in NTT form and scaled by t/Q once.
//!
//! fhe.rs computes each of the 16 products separately: extend both operands to Q∪P,
//! tensor, scale back — three basis conversions per product. Here the gallery is stored
//! extended, the query is extended once per query, and one scale per group remains, so a
//! group costs 16 multiply-adds per coefficient and limb plus one scale of 3 polynomials.
//!
//! Shapes: a ciphertext is 2 polynomials; a query or a group is `features` ciphertexts,
//! i.e. 2·features polynomials, each limb-major over its basis (see [`crate::rns`]).

use crate::arith::{Constant, Modulus};
use crate::convert::{Lift, Scaler};
use crate::rns::RnsBasis;
use crate::KernelError;
use rayon::prelude::*;

/// Bits of headroom the extension basis P needs beyond Q (see [`FusedPlan::new`]).
pub fn extension_bits(log2_q: f64, n: usize, features: usize, max_weight: u64) -> f64 {
    // |Dⱼ| < Q (difference of two centred lifts); a negacyclic product of two such
    // polynomials has coefficients below n·Q², the c₁ term carries a factor 2, and the sum
    // has `features` terms of weight ≤ max_weight. Exactness needs |x| < Q·P/2, so
    // P > 4·features·max_weight·n·Q; one more bit of margin.
    log2_q
        + 2.0
        + (features as f64).log2()
        + (max_weight.max(1) as f64).log2()
        + (n as f64).log2()
        + 1.0
}

/// Everything fixed for one deployment: the bases, conversions and signed weights.
#[derive(Clone, Debug)]
pub struct FusedPlan {
    t: u64,
    q: RnsBasis,
    p: RnsBasis,
    qp: RnsBasis,
    lift: Lift,
    scaler: Scaler,
    weights: Vec<i64>,
    /// w̃ⱼ mod each prime of Q∪P: `weight_consts[limb][feature]`.
    weight_consts: Vec<Vec<Constant>>,
    /// The same as (value, quotient) pairs for the AVX-512 accumulations, per limb: 64-bit
    /// Shoup quotients, and 52-bit ones for primes below 2⁵⁰ (IFMA; empty otherwise).
    weight_pairs: Vec<[Vec<(u64, u64)>; 2]>,
}

/// Bits of each extension prime: 50, so that the P limbs run on the CPU's 52-bit
/// multiply-add (AVX-512 IFMA) with Harvey's lazy values below 4p < 2⁵². The bound on P
/// is met with more primes where needed (three at both columnar presets).
pub const EXTENSION_PRIME_BITS: u32 = 50;

/// Largest ciphertext prime the fused kernel takes: below 2⁶⁰ the accumulation can keep the
/// weighted factor lazily reduced (below 2p), and 16 products below 2p² < 2¹²¹ still fit a
/// u128 with room to spare (Q's primes are ≤ 60 bits in every preset).
pub const MAX_CIPHERTEXT_PRIME_BITS: u32 = 60;

impl FusedPlan {
    /// A plan for ring degree n, ciphertext primes `q` (level 0 of the parameter set),
    /// plaintext modulus t and the signed integer weights. P is the smallest set of
    /// primes of [`EXTENSION_PRIME_BITS`] bits (distinct from Q) that makes the accumulation exact for these weights.
    pub fn new(n: usize, q: &[u64], t: u64, weights: &[i64]) -> Result<Self, KernelError> {
        Self::build(n, q, t, weights, None)
    }

    /// A plan with other weights over this plan's bases (same P): for a shard holding only
    /// some features, whose zeroed weights need no more room than the full set's. A query
    /// extended once for the full plan then serves every such plan. The weights must be
    /// no larger than P allows (checked).
    pub fn with_weights(&self, weights: &[i64]) -> Result<Self, KernelError> {
        Self::build(
            self.degree(),
            &self.q.primes(),
            self.t,
            weights,
            Some(&self.p.primes()),
        )
    }

    fn build(
        n: usize,
        q: &[u64],
        t: u64,
        weights: &[i64],
        extension: Option<&[u64]>,
    ) -> Result<Self, KernelError> {
        if n < 64 || !n.is_power_of_two() {
            return Err(KernelError::Shape(format!(
                "the fused kernel works on degrees ≥ 64 that are powers of two, not {n}"
            )));
        }
        if let Some(&big) = q.iter().find(|&&p| p >= 1 << MAX_CIPHERTEXT_PRIME_BITS) {
            return Err(KernelError::Modulus {
                p: big,
                n,
                why: format!(
                    "the fused kernel takes ciphertext primes of at most {MAX_CIPHERTEXT_PRIME_BITS} bits"
                ),
            });
        }
        if weights.is_empty() {
            return Err(KernelError::Shape(
                "the fused kernel needs at least one weight".into(),
            ));
        }
        let log2_q: f64 = q.iter().map(|&p| (p as f64).log2()).sum();
        let max_weight = weights.iter().map(|w| w.unsigned_abs()).max().unwrap_or(1);
        let needed = extension_bits(log2_q, n, weights.len(), max_weight);
        // Each prime of EXTENSION_PRIME_BITS bits exceeds 2^(bits − 1).
        let count = (needed / (EXTENSION_PRIME_BITS - 1) as f64).ceil() as usize;
        let p_primes = match extension {
            Some(p) if p.len() >= count => p.to_vec(),
            Some(p) => {
                return Err(KernelError::Shape(format!(
                    "these weights need {count} extension primes, the plan has {}",
                    p.len()
                )))
            }
            None => {
                crate::arith::ntt_primes(EXTENSION_PRIME_BITS, n, count, q).ok_or_else(|| {
                    KernelError::Shape(format!(
                        "not enough NTT primes of the extension size for degree {n}"
                    ))
                })?
            }
        };
        let all: Vec<u64> = q.iter().chain(&p_primes).copied().collect();
        let qp = RnsBasis::new(n, &all)?;
        let weight_consts = qp
            .tables()
            .iter()
            .map(|table| {
                let m = table.modulus();
                weights
                    .iter()
                    .map(|&w| Constant::new(m.from_i64(w), m))
                    .collect()
            })
            .collect::<Vec<Vec<Constant>>>();
        let weight_pairs = weight_consts
            .iter()
            .zip(qp.primes())
            .map(|(consts, p)| {
                let pairs64 = consts.iter().map(|c| (c.value, c.shoup)).collect();
                let pairs52 = if p < 1 << 50 {
                    let shoup52 = |w: u64| (((w as u128) << 52) / p as u128) as u64;
                    consts.iter().map(|c| (c.value, shoup52(c.value))).collect()
                } else {
                    Vec::new()
                };
                [pairs64, pairs52]
            })
            .collect();
        Ok(Self {
            t,
            q: RnsBasis::new(n, q)?,
            p: RnsBasis::new(n, &p_primes)?,
            lift: Lift::new(q, &p_primes)?,
            scaler: Scaler::new(q, &p_primes, t)?,
            qp,
            weights: weights.to_vec(),
            weight_consts,
            weight_pairs,
        })
    }

    /// Ring degree.
    pub fn degree(&self) -> usize {
        self.q.degree()
    }

    /// Plaintext modulus.
    pub fn plaintext_modulus(&self) -> u64 {
        self.t
    }

    /// Number of features (ciphertexts per query and per group).
    pub fn features(&self) -> usize {
        self.weights.len()
    }

    /// The signed weights.
    pub fn weights(&self) -> &[i64] {
        &self.weights
    }

    /// Ciphertext basis Q.
    pub fn q(&self) -> &RnsBasis {
        &self.q
    }

    /// Extension primes P.
    pub fn p(&self) -> &RnsBasis {
        &self.p
    }

    /// Q then P.
    pub fn qp(&self) -> &RnsBasis {
        &self.qp
    }

    /// w̃ⱼ mod each prime of Q∪P, `[limb][feature]`, with Shoup quotients.
    pub fn weight_constants(&self) -> &[Vec<Constant>] {
        &self.weight_consts
    }

    /// The coefficient-wise lift Q → P.
    pub fn lift(&self) -> &Lift {
        &self.lift
    }

    /// The scale-and-round Q∪P → Q.
    pub fn scaler(&self) -> &Scaler {
        &self.scaler
    }

    /// Words of one query or group over Q (2·features polynomials).
    pub fn unextended_len(&self) -> usize {
        2 * self.features() * self.q.poly_len()
    }

    /// Words of one query or group over Q∪P.
    pub fn extended_len(&self) -> usize {
        2 * self.features() * self.qp.poly_len()
    }

    /// Words of one result (3 polynomials over Q).
    pub fn result_len(&self) -> usize {
        3 * self.q.poly_len()
    }

    /// Checks that `data` is one query or group over Q.
    pub fn check_unextended(&self, data: &[u64], what: &str) -> Result<(), KernelError> {
        if data.len() != self.unextended_len() {
            return Err(KernelError::Shape(format!(
                "{what}: {} words, expected {} ciphertexts × 2 polynomials × {} limbs × {}",
                data.len(),
                self.features(),
                self.q.limbs(),
                self.degree()
            )));
        }
        Ok(())
    }

    /// Checks that `data` is one query or group over Q∪P.
    pub fn check_extended(&self, data: &[u64], what: &str) -> Result<(), KernelError> {
        if data.len() != self.extended_len() {
            return Err(KernelError::Shape(format!(
                "{what}: {} words, expected {} ciphertexts × 2 polynomials × {} limbs × {} (over Q∪P)",
                data.len(),
                self.features(),
                self.qp.limbs(),
                self.degree()
            )));
        }
        Ok(())
    }

    /// True when every limb of Q∪P accumulates on AVX-512 on this CPU (IFMA below 2⁵⁰,
    /// the 28-bit split below 2⁵⁶; see [`crate::simd`]).
    pub fn accumulates_on_vectors(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let n = self.degree();
            n.is_multiple_of(8)
                && self
                    .qp
                    .primes()
                    .iter()
                    .all(|&p| crate::simd::ifma_prime(p) || crate::simd::split_prime(p))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// True when `other` has this plan's bases (a query extended for one serves both).
    pub fn same_bases(&self, other: &FusedPlan) -> bool {
        self.degree() == other.degree()
            && self.qp.primes() == other.qp.primes()
            && self.q.limbs() == other.q.limbs()
    }

    /// Checks that every gallery group is one group over Q.
    pub fn check_groups(&self, groups: &[Vec<u64>]) -> Result<(), KernelError> {
        for (g, group) in groups.iter().enumerate() {
            self.check_unextended(group, &format!("gallery group {g}"))?;
        }
        Ok(())
    }

    /// Extends polynomials over Q in NTT form to Q∪P in NTT form (CPU, rayon across
    /// polynomials). The Q limbs are copied unchanged; the P limbs come from the centred lift
    /// of the coefficients.
    pub fn extend_ntt(&self, q_ntt: &[u64]) -> Result<Vec<u64>, KernelError> {
        self.extend_polys(q_ntt, |_| false)
    }

    /// As [`FusedPlan::extend_ntt`], where polynomial i is given in coefficient form when
    /// `coefficient_form(i)` (e.g. the c₀ of a seeded ciphertext as it travels): its lift
    /// needs no inverse transform, and its Q limbs are transformed here. The output is the
    /// same NTT-form extension either way.
    pub fn extend_polys(
        &self,
        polys: &[u64],
        coefficient_form: impl Fn(usize) -> bool + Sync,
    ) -> Result<Vec<u64>, KernelError> {
        let count = self.q.count(polys)?;
        let len = self.q.poly_len();
        self.extend_each(count, |i| (&polys[i * len..][..len], coefficient_form(i)))
    }

    /// As [`FusedPlan::extend_polys`] for `count` polynomials that are not one buffer:
    /// `poly(i)` gives polynomial i's words over Q and whether they are in coefficient
    /// form (e.g. a query's ciphertexts as they were read, without concatenating them).
    pub fn extend_each<'a>(
        &self,
        count: usize,
        poly: impl Fn(usize) -> (&'a [u64], bool) + Sync,
    ) -> Result<Vec<u64>, KernelError> {
        let (n, lq, lp) = (self.degree(), self.q.limbs(), self.p.limbs());
        if let Some(i) = (0..count).find(|&i| poly(i).0.len() != lq * n) {
            return Err(KernelError::Shape(format!(
                "polynomial {i}: {} words, expected {lq} limbs × {n}",
                poly(i).0.len()
            )));
        }
        let mut out = vec![0u64; count * (lq + lp) * n];
        out.par_chunks_exact_mut((lq + lp) * n)
            .enumerate()
            .for_each(|(i, ext)| {
                let (src, coefficient_form) = poly(i);
                let (q_part, p_part) = ext.split_at_mut(lq * n);
                q_part.copy_from_slice(src);
                if coefficient_form {
                    self.lift.apply(src, p_part, n);
                    for (limb, table) in q_part.chunks_exact_mut(n).zip(self.q.tables()) {
                        table.forward(limb);
                    }
                } else {
                    let mut coeffs = src.to_vec();
                    for (limb, table) in coeffs.chunks_exact_mut(n).zip(self.q.tables()) {
                        table.inverse(limb);
                    }
                    self.lift.apply(&coeffs, p_part, n);
                }
                for (limb, table) in p_part.chunks_exact_mut(n).zip(self.p.tables()) {
                    table.forward(limb);
                }
            });
        Ok(out)
    }

    /// Σⱼ w̃ⱼ·(Qⱼ − Gⱼ)⊗(Qⱼ − Gⱼ) over Q∪P in NTT form: 3 polynomials (c₀, c₁, c₂).
    pub fn accumulate(&self, query: &[u64], group: &[u64]) -> Vec<u64> {
        debug_assert_eq!(group.len(), self.extended_len());
        self.accumulate_against(query, Some(group))
    }

    /// Σⱼ w̃ⱼ·Xⱼ⊗Xⱼ over Q∪P in NTT form (3 polynomials) for one query or group X over
    /// Q∪P: the accumulation against a zero group, i.e. the expanded form's square terms
    /// ([`crate::expanded`]) in one pass.
    pub fn square_term(&self, x: &[u64]) -> Vec<u64> {
        self.accumulate_against(x, None)
    }

    /// [`FusedPlan::accumulate`] against `group`, or against zero.
    fn accumulate_against(&self, query: &[u64], group: Option<&[u64]>) -> Vec<u64> {
        let (n, limbs) = (self.degree(), self.qp.limbs());
        debug_assert_eq!(query.len(), self.extended_len());
        let poly = limbs * n;
        let zero = vec![0u64; n];
        let mut result = vec![0u64; 3 * poly];
        limb_triples(&mut result, limbs, n)
            .into_par_iter()
            .enumerate()
            .for_each(|(limb, out)| {
                // Feature j's rows of this limb: (q₀, q₁, g₀, g₁).
                let rows: Vec<[&[u64]; 4]> = (0..self.features())
                    .map(|j| {
                        let at = |k: usize| k * poly + limb * n;
                        let (c0, c1) = (at(2 * j), at(2 * j + 1));
                        let (g0, g1) = match group {
                            Some(g) => (&g[c0..][..n], &g[c1..][..n]),
                            None => (&zero[..], &zero[..]),
                        };
                        [&query[c0..][..n], &query[c1..][..n], g0, g1]
                    })
                    .collect();
                self.accumulate_limb(limb, &rows, out);
            });
        result
    }

    /// One limb of the accumulation (see [`accumulate_limb`]) with this plan's weights.
    fn accumulate_limb(&self, limb: usize, rows: &[[&[u64]; 4]], out: [&mut [u64]; 3]) {
        let m = self.qp.tables()[limb].modulus();
        accumulate_limb(
            m,
            &self.weight_consts[limb],
            &self.weight_pairs[limb],
            rows,
            out,
        );
    }

    /// Inverse NTT over Q∪P, scale by t/Q and round, forward NTT over Q: the 3 result
    /// polynomials over Q in NTT form.
    pub fn finish(&self, acc: Vec<u64>) -> Vec<u64> {
        let mut out = self.finish_coefficients(acc);
        self.q.forward(&mut out).expect("3 polynomials over Q");
        out
    }

    /// [`FusedPlan::finish`] without the final forward transform: the 3 result
    /// polynomials over Q in coefficient form (what is serialized; saves a transform
    /// there and back per polynomial).
    pub fn finish_coefficients(&self, mut acc: Vec<u64>) -> Vec<u64> {
        let n = self.degree();
        self.qp.inverse(&mut acc).expect("3 polynomials over Q∪P");
        let lq = self.q.limbs();
        if rayon::current_num_threads() == 1 {
            // One thread: each polynomial scaled straight into the result.
            let mut out = vec![0u64; self.result_len()];
            for (dst, src) in out
                .chunks_exact_mut(self.q.poly_len())
                .zip(acc.chunks_exact(self.qp.poly_len()))
            {
                self.scaler.apply(src, dst, n);
            }
            return out;
        }
        // Blocks of coefficients rather than whole polynomials, so that 3 polynomials keep
        // any number of cores busy.
        const BLOCK: usize = 1024;
        let blocks = n.div_ceil(BLOCK);
        let scaled: Vec<Vec<u64>> = (0..3 * blocks)
            .into_par_iter()
            .map(|task| {
                let (poly, block) = (task / blocks, task % blocks);
                let range = block * BLOCK..((block + 1) * BLOCK).min(n);
                let src = &acc[poly * self.qp.poly_len()..(poly + 1) * self.qp.poly_len()];
                let mut dst = vec![0u64; lq * range.len()];
                self.scaler.apply_range(src, &mut dst, n, range);
                dst
            })
            .collect();
        let mut out = vec![0u64; self.result_len()];
        for (task, dst) in scaled.iter().enumerate() {
            let (poly, block) = (task / blocks, task % blocks);
            let start = block * BLOCK;
            let len = dst.len() / lq;
            for limb in 0..lq {
                let at = poly * self.q.poly_len() + limb * n + start;
                out[at..at + len].copy_from_slice(&dst[limb * len..(limb + 1) * len]);
            }
        }
        out
    }

    /// One group on the CPU: accumulate, then finish.
    pub fn evaluate_group(&self, query_ext: &[u64], group_ext: &[u64]) -> Vec<u64> {
        self.finish(self.accumulate(query_ext, group_ext))
    }
}
/// The limbs of 3 polynomials over a basis of `limbs` primes (the usual `[poly][limb][n]`
/// layout) as one (c₀, c₁, c₂) triple of n-word slices per limb, so that limbs can be
/// written in parallel straight into the result.
pub(crate) fn limb_triples(polys: &mut [u64], limbs: usize, n: usize) -> Vec<[&mut [u64]; 3]> {
    let mut rows: Vec<Option<&mut [u64]>> = polys.chunks_exact_mut(n).map(Some).collect();
    let mut take = |i: usize| rows[i].take().expect("each row once");
    (0..limbs)
        .map(|limb| [take(limb), take(limbs + limb), take(2 * limbs + limb)])
        .collect()
}

/// One limb of [`FusedPlan::accumulate`]: per feature j its rows (q₀, q₁, g₀, g₁) of
/// n words below p and w̃ⱼ mod p; writes Σw̃a², 2·Σw̃ab and Σw̃b² with a = q₀ − g₀,
/// b = q₁ − g₁ into `out`. Runs on AVX-512 where the CPU has it ([`crate::simd`]: IFMA
/// below 2⁵⁰, the 28-bit split below 2⁵⁶), with the same words.
/// `pairs` holds the weights as (value, 64-bit Shoup quotient) and, for p < 2⁵⁰, as
/// (value, 52-bit quotient) pairs (see `FusedPlan::weight_pairs`).
fn accumulate_limb(
    m: &Modulus,
    weights: &[Constant],
    pairs: &[Vec<(u64, u64)>; 2],
    rows: &[[&[u64]; 4]],
    out: [&mut [u64]; 3],
) {
    let n = out[0].len();
    let [pairs64, pairs52] = pairs;
    #[cfg(target_arch = "x86_64")]
    if crate::simd::ifma_prime(m.value()) && n.is_multiple_of(8) && pairs52.len() == rows.len() {
        // SAFETY: IFMA present and p < 2⁵⁰ (checked); every row and output n words (a
        // multiple of 8, checked), words below p, one weight per row (checked).
        unsafe { crate::simd::accumulate_limb52(m.value(), pairs52, rows, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::split_prime(m.value()) && n.is_multiple_of(8) && pairs64.len() == rows.len() {
        // SAFETY: AVX-512F/DQ present and p < 2⁵⁶ (checked); shapes as above.
        unsafe { crate::simd::accumulate_limb_split(m.value(), pairs64, rows, out) };
        return;
    }
    accumulate_limb_scalar(m, weights, rows, out);
}

/// [`accumulate_limb`] in portable code: u128 sums, reduced every 16 features.
fn accumulate_limb_scalar(
    m: &Modulus,
    weights: &[Constant],
    rows: &[[&[u64]; 4]],
    out: [&mut [u64]; 3],
) {
    let n = out[0].len();
    const BLOCK: usize = 64;
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        let mut acc = [[0u128; BLOCK]; 3];
        for (j, (w, [q0, q1, g0, g1])) in weights.iter().zip(rows).enumerate() {
            let (q0, q1) = (&q0[start..][..len], &q1[start..][..len]);
            let (g0, g1) = (&g0[start..][..len], &g1[start..][..len]);
            for c in 0..len {
                let a = m.sub(q0[c], g0[c]);
                let b = m.sub(q1[c], g1[c]);
                // Lazy: below 2p, so each product is below 2p² ≤ 2^121.
                let aw = m.mul_shoup_lazy(a, w.value, w.shoup);
                let bw = m.mul_shoup_lazy(b, w.value, w.shoup);
                acc[0][c] += aw as u128 * a as u128;
                acc[1][c] += aw as u128 * b as u128;
                acc[2][c] += bw as u128 * b as u128;
            }
            // 16 products below 2^121 (2^125 together) fit in a u128.
            if j % 16 == 15 {
                for row in acc.iter_mut() {
                    for v in row.iter_mut() {
                        *v = m.reduce_u128(*v) as u128;
                    }
                }
            }
        }
        for c in 0..len {
            out[0][start + c] = m.reduce_u128(acc[0][c]);
            let cross = m.reduce_u128(acc[1][c]);
            out[1][start + c] = m.add(cross, cross);
            out[2][start + c] = m.reduce_u128(acc[2][c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The AVX-512 accumulations (IFMA below 2⁵⁰, the 28-bit split below 2⁵⁶) give the
    /// portable code's words, on random words and weights and on the largest differences
    /// (q − g = p − 1 in every coefficient, as q = p − 1, g = 0 and as q = 0, g = 1, with
    /// weights p − 1 and random: the products the chunk bounds are about), for feature
    /// counts around the chunk sizes.
    #[test]
    fn ifma_and_portable_accumulations_agree() {
        if !crate::simd::avx512() {
            eprintln!("skipped: this CPU has no AVX-512 (the portable path is the only one)");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let n = 128;
        // 50-bit primes as the extension uses; smaller ones as test plans' Q may have.
        let primes = [30, 40, 49, 50, 55, 56]
            .map(|bits| crate::arith::ntt_primes(bits, n, 1, &[]).unwrap()[0]);
        for p in primes {
            let m = Modulus::new(p).unwrap();
            for f in [1usize, 7, 8, 9, 16, 17, 33] {
                for largest in [false, true] {
                    // Rows q₀, q₁, g₀, g₁ of feature j = row / 4.
                    let data: Vec<Vec<u64>> = (0..4 * f)
                        .map(|row| {
                            let (j, k) = (row / 4, row % 4);
                            (0..n)
                                .map(|_| match (largest, j % 2, k < 2) {
                                    (false, _, _) => rng.random_range(0..p),
                                    (true, 0, true) => p - 1,
                                    (true, 0, false) => 0,
                                    (true, _, true) => 0,
                                    (true, _, false) => 1,
                                })
                                .collect()
                        })
                        .collect();
                    let weights: Vec<Constant> = (0..f)
                        .map(|j| {
                            let w = if largest && j % 2 == 0 {
                                p - 1
                            } else {
                                rng.random_range(0..p)
                            };
                            Constant::new(w, &m)
                        })
                        .collect();
                    let rows: Vec<[&[u64]; 4]> = data
                        .chunks_exact(4)
                        .map(|r| [&r[0][..], &r[1][..], &r[2][..], &r[3][..]])
                        .collect();
                    let (mut fast, mut slow) = (vec![0; 3 * n], vec![0; 3 * n]);
                    let out = limb_triples(&mut fast, 1, n).pop().unwrap();
                    let pairs64 = weights.iter().map(|c| (c.value, c.shoup)).collect();
                    let shoup52 = |w: u64| (((w as u128) << 52) / p as u128) as u64;
                    let pairs52 = if p < 1 << 50 {
                        weights
                            .iter()
                            .map(|c| (c.value, shoup52(c.value)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    accumulate_limb(&m, &weights, &[pairs64, pairs52], &rows, out);
                    let out = limb_triples(&mut slow, 1, n).pop().unwrap();
                    accumulate_limb_scalar(&m, &weights, &rows, out);
                    assert_eq!(fast, slow, "p={p} f={f} largest={largest}");
                }
            }
        }
    }
}
