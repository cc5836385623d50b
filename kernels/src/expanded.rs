//! The fused distance in expanded form, for the CPU engine:
//!
//! Σⱼ wⱼ(Qⱼ − Gⱼ)⊗(Qⱼ − Gⱼ) = Σⱼ wⱼQⱼ⊗Qⱼ + Σⱼ wⱼGⱼ⊗Gⱼ + Σⱼ (−2wⱼQⱼ)⊗Gⱼ.
//!
//! The first sum depends on the query alone (once per query), the second on the group
//! alone (once at enrolment), so a group costs only the cross sum: with the weight folded
//! into the query and Karatsuba's c₁ = (a₀+a₁)(b₀+b₁) − a₀b₀ − a₁b₁, three word products
//! per coefficient, feature and limb — the direct form needs three products plus two
//! weight multiplications and two subtractions. Operands are laid out coefficient-major
//! (`[limb][tile of 8 coefficients][feature][component][coefficient]`) so that a group streams through memory
//! once and every accumulator stays in a register.
//!
//! The CPU engine keeps galleries in this form where the direct sum runs on portable code
//! (see [`crate::backend::CpuForm`]); with the AVX-512 accumulations the direct form's
//! extra products cost less than this form's per-query square and larger operands.
//!
//! Exactness: every sum is taken modulo each prime of Q∪P, and the three sums add up to
//! the same residues as the direct form (the identity holds in any ring), so the words
//! equal [`FusedPlan::accumulate`]'s — tested.

use crate::arith::{Constant, Modulus};
use crate::fused::FusedPlan;
use crate::KernelError;
use rayon::prelude::*;

/// Features per u128 accumulation before a reduction: each product is below
/// 4p² < 2¹²² (p < 2⁶⁰), so 16 of them stay below 2¹²⁶.
const CHUNK: usize = 16;

/// Coefficients per tile: one cache line of words per feature and component, so that
/// changing layouts copies whole lines and a group streams through memory in order.
/// Plans have n ≥ 64, a multiple of it.
const TILE: usize = 8;

/// A gallery group prepared for the cross sum: its words tile-major
/// (`[limb][tile][feature][2][TILE]`) and its square term Σⱼ wⱼGⱼ⊗Gⱼ (3 polynomials
/// over Q∪P, NTT form, the usual limb-major layout).
#[derive(Clone, Debug)]
pub struct ExpandedGroup {
    words: Vec<u64>,
    square: Vec<u64>,
}

impl ExpandedGroup {
    /// Words held (operands and square term).
    pub fn len(&self) -> usize {
        self.words.len() + self.square.len()
    }

    /// True for a plan without features (never: plans need one).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// A query prepared for the cross sum: (−2wⱼ)·Qⱼ with the sum of its two
/// components, tile-major (`[limb][tile][feature][3][TILE]`), and its square term.
#[derive(Clone, Debug)]
pub struct ExpandedQuery {
    scaled: Vec<u64>,
    square: Vec<u64>,
}

impl FusedPlan {
    /// One group over Q∪P (NTT form, `extended_len()` words) in the expanded layout.
    pub fn expand_group(&self, group_ext: &[u64]) -> Result<ExpandedGroup, KernelError> {
        self.check_extended(group_ext, "gallery group")?;
        Ok(ExpandedGroup {
            words: self.interleave(group_ext),
            square: self.square_term(group_ext),
        })
    }

    /// One query over Q∪P (NTT form, `extended_len()` words) in the expanded layout.
    pub fn expand_query(&self, query_ext: &[u64]) -> Result<ExpandedQuery, KernelError> {
        self.check_extended(query_ext, "extended query")?;
        let scaled = self.scale_operand(query_ext, -2);
        let square = self.square_term(query_ext);
        Ok(ExpandedQuery { scaled, square })
    }

    /// Σⱼ wⱼ(Qⱼ − Gⱼ)⊗(Qⱼ − Gⱼ) over Q∪P in NTT form — the words of
    /// [`FusedPlan::accumulate`], from the expanded operands.
    pub fn accumulate_expanded(&self, query: &ExpandedQuery, group: &ExpandedGroup) -> Vec<u64> {
        let mut acc = vec![0u64; 3 * self.qp().poly_len()];
        self.cross_sum_into(
            &query.scaled,
            &group.words,
            &[&query.square, &group.square],
            &mut acc,
        );
        acc
    }

    /// One group: accumulate in expanded form, then scale (the words of
    /// [`FusedPlan::evaluate_group`]).
    pub fn evaluate_expanded(&self, query: &ExpandedQuery, group: &ExpandedGroup) -> Vec<u64> {
        self.finish(self.accumulate_expanded(query, group))
    }

    /// `[limb][tile][feature][2][TILE]` from the usual layout.
    fn interleave(&self, ext: &[u64]) -> Vec<u64> {
        let (n, f, poly) = (self.degree(), self.features(), self.qp().poly_len());
        let mut out = vec![0u64; ext.len()];
        out.par_chunks_exact_mut(n * f * 2)
            .enumerate()
            .for_each(|(limb, dst)| {
                for (tile, dst) in dst.chunks_exact_mut(TILE * f * 2).enumerate() {
                    let start = limb * n + tile * TILE;
                    for (row, dst) in dst.chunks_exact_mut(TILE).enumerate() {
                        dst.copy_from_slice(&ext[row * poly + start..][..TILE]);
                    }
                }
            });
        out
    }

    /// `[limb][tile][feature][3][TILE]`: s·wⱼ·x₀, s·wⱼ·x₁ and their sum, each reduced.
    fn scale_operand(&self, ext: &[u64], s: i64) -> Vec<u64> {
        let (n, f, poly) = (self.degree(), self.features(), self.qp().poly_len());
        let mut out = vec![0u64; self.qp().limbs() * n * f * 3];
        out.par_chunks_exact_mut(n * f * 3)
            .zip(self.qp().tables())
            .enumerate()
            .for_each(|(limb, (dst, table))| {
                let m = table.modulus();
                let factors: Vec<Constant> =
                    self.weights().iter().map(|&w| factor(m, w, s)).collect();
                for (tile, dst) in dst.chunks_exact_mut(TILE * f * 3).enumerate() {
                    let start = limb * n + tile * TILE;
                    for (j, (c, dst)) in factors
                        .iter()
                        .zip(dst.chunks_exact_mut(3 * TILE))
                        .enumerate()
                    {
                        let x0 = &ext[2 * j * poly + start..][..TILE];
                        let x1 = &ext[(2 * j + 1) * poly + start..][..TILE];
                        let (d0, rest) = dst.split_at_mut(TILE);
                        let (d1, d2) = rest.split_at_mut(TILE);
                        #[cfg(target_arch = "x86_64")]
                        if crate::simd::avx512() {
                            let p = m.value();
                            // SAFETY: AVX-512F and DQ present (checked); TILE = 8 words each.
                            unsafe {
                                crate::simd::scale_pair(x0, x1, c.value, c.shoup, p, [d0, d1, d2])
                            };
                            continue;
                        }
                        for i in 0..TILE {
                            let (a, b) = (c.mul(x0[i], m), c.mul(x1[i], m));
                            d0[i] = a;
                            d1[i] = b;
                            d2[i] = m.add(a, b);
                        }
                    }
                }
            });
        out
    }

    /// Σⱼ aⱼ⊗bⱼ for a scaled operand and an interleaved one, plus the polynomials `plus`
    /// (3 polynomials over Q∪P in the usual layout, reduced), written into `out` limb by
    /// limb while each limb is still in cache.
    fn cross_sum_into(&self, a: &[u64], b: &[u64], plus: &[&[u64]], out: &mut [u64]) {
        let (n, f, limbs) = (self.degree(), self.features(), self.qp().limbs());
        crate::fused::limb_triples(out, limbs, n)
            .into_par_iter()
            .zip(a.par_chunks_exact(n * f * 3))
            .zip(b.par_chunks_exact(n * f * 2))
            .enumerate()
            .for_each(|(limb, ((out, a), b))| {
                let m = self.qp().tables()[limb].modulus();
                let [o0, o1, o2] = out;
                cross_limb(m, a, b, f, [&mut *o0, &mut *o1, &mut *o2]);
                for (k, row) in [o0, o1, o2].into_iter().enumerate() {
                    for term in plus {
                        add_assign_mod(row, &term[(k * limbs + limb) * n..][..n], m);
                    }
                }
            });
    }
}

/// dst ← (dst + src) mod p, word by word (AVX-512 where the CPU has it).
fn add_assign_mod(dst: &mut [u64], src: &[u64], m: &Modulus) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx512() && dst.len().is_multiple_of(8) {
        // SAFETY: AVX-512F present (checked); equal lengths, a multiple of 8 (checked).
        unsafe { crate::simd::add_assign_mod(dst, &src[..dst.len()], m.value()) };
        return;
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = m.add(*d, s);
    }
}

/// s·w mod p as a Shoup constant (s·w computed without overflow for any i64 weight).
fn factor(m: &Modulus, w: i64, s: i64) -> Constant {
    Constant::new(m.mul(m.from_i64(w), m.from_i64(s)), m)
}

/// One limb of the cross sum: per coefficient c₀ = Σa₀b₀, c₂ = Σa₁b₁ and
/// c₁ = Σ(a₀+a₁)(b₀+b₁) − c₀ − c₂, accumulated in u128 over at most [`CHUNK`] features.
fn cross_limb(m: &Modulus, a: &[u64], b: &[u64], f: usize, out: [&mut [u64]; 3]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::ifma_prime(m.value()) {
        // SAFETY: IFMA present and p < 2⁵⁰ (checked); n/TILE tiles of f features in each
        // operand (the layouts above, TILE = 8), words below p.
        unsafe { crate::simd::cross_limb52(m.value(), a, b, f, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::split_prime(m.value()) {
        // SAFETY: AVX-512F/DQ present and p < 2⁵⁶ (checked); shapes as above.
        unsafe { crate::simd::cross_limb_split(m.value(), a, b, f, out) };
        return;
    }
    cross_limb_scalar(m, a, b, f, out);
}

/// [`cross_limb`] in portable code.
fn cross_limb_scalar(m: &Modulus, a: &[u64], b: &[u64], f: usize, out: [&mut [u64]; 3]) {
    for (tile, (a, b)) in a
        .chunks_exact(TILE * f * 3)
        .zip(b.chunks_exact(TILE * f * 2))
        .enumerate()
    {
        for c in 0..TILE {
            let (mut r0, mut r1, mut r2) = (0u64, 0u64, 0u64);
            for (ac, bc) in a.chunks(3 * TILE * CHUNK).zip(b.chunks(2 * TILE * CHUNK)) {
                let (mut s0, mut s2, mut sk) = (0u128, 0u128, 0u128);
                for (x, y) in ac.chunks_exact(3 * TILE).zip(bc.chunks_exact(2 * TILE)) {
                    let (y0, y1) = (y[c], y[TILE + c]);
                    s0 += x[c] as u128 * y0 as u128;
                    s2 += x[TILE + c] as u128 * y1 as u128;
                    // a₀+a₁ < p and b₀+b₁ < 2p: the product is below 2p² < 2¹²¹.
                    sk += x[2 * TILE + c] as u128 * (y0 + y1) as u128;
                }
                let (s0, s2) = (m.reduce_u128(s0), m.reduce_u128(s2));
                r0 = m.add(r0, s0);
                r2 = m.add(r2, s2);
                r1 = m.add(r1, m.sub(m.sub(m.reduce_u128(sk), s0), s2));
            }
            let at = tile * TILE + c;
            out[0][at] = r0;
            out[1][at] = r1;
            out[2][at] = r2;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    /// The AVX-512 cross sums (IFMA below 2⁵⁰, the 28-bit split below 2⁵⁶) give the
    /// portable code's words, on random words and on the largest ones (every word p − 1,
    /// the bound the chunking relies on), for feature counts around the chunk sizes.
    #[test]
    fn ifma_and_portable_cross_sums_agree() {
        if !crate::simd::avx512() {
            eprintln!("skipped: this CPU has no AVX-512 (the portable path is the only one)");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 64;
        // 50-bit primes as the extension uses; smaller ones as test plans' Q may have.
        let primes = [30, 40, 49, 50, 55, 56]
            .map(|bits| crate::arith::ntt_primes(bits, n, 1, &[]).unwrap()[0]);
        for p in primes {
            let m = crate::arith::Modulus::new(p).unwrap();
            for f in [1usize, 7, 8, 9, 16, 17, 33] {
                for largest in [false, true] {
                    let mut word = || {
                        if largest {
                            p - 1
                        } else {
                            rng.random_range(0..p)
                        }
                    };
                    let a: Vec<u64> = (0..n * f * 3).map(|_| word()).collect();
                    let b: Vec<u64> = (0..n * f * 2).map(|_| word()).collect();
                    let (mut fast, mut slow) = (vec![0; 3 * n], vec![0; 3 * n]);
                    let out = crate::fused::limb_triples(&mut fast, 1, n).pop().unwrap();
                    super::cross_limb(&m, &a, &b, f, out);
                    let out = crate::fused::limb_triples(&mut slow, 1, n).pop().unwrap();
                    super::cross_limb_scalar(&m, &a, &b, f, out);
                    assert_eq!(fast, slow, "p={p} f={f} largest={largest}");
                }
            }
        }
    }

    #[test]
    fn the_expanded_form_gives_the_direct_forms_words() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 256;
        let q = crate::arith::ntt_primes(55, n, 2, &[]).unwrap();
        let t = 65537;
        // 20 features: one full chunk of 16 and a partial one; weights of both signs,
        // the largest magnitudes a 16-bit quantization gives.
        let weights: Vec<i64> = (0..20)
            .map(|j| match j {
                0 => 32767,
                1 => -32768,
                2 => 0,
                _ if j % 2 == 0 => -(j as i64 * 97),
                _ => j as i64 * 131,
            })
            .collect();
        let plan = super::FusedPlan::new(n, &q, t, &weights).unwrap();
        let primes = plan.qp().primes();
        let mut random = |top: bool| -> Vec<u64> {
            (0..plan.extended_len())
                .map(|i| {
                    let p = primes[(i / n) % primes.len()];
                    // Edge words (0, p − 1) as well as random ones.
                    match (top, i % 7) {
                        (true, 0) => p - 1,
                        (true, 1) => 0,
                        _ => rng.random_range(0..p),
                    }
                })
                .collect()
        };
        for top in [false, true] {
            let (query, group) = (random(top), random(!top));
            let direct = plan.accumulate(&query, &group);
            let eq = plan.expand_query(&query).unwrap();
            let eg = plan.expand_group(&group).unwrap();
            assert_eq!(plan.accumulate_expanded(&eq, &eg), direct);
            assert_eq!(
                plan.evaluate_expanded(&eq, &eg),
                plan.evaluate_group(&query, &group)
            );
        }
        // A malformed operand is refused, not indexed out of bounds.
        assert!(plan.expand_query(&[1, 2, 3]).is_err());
    }

    /// The CPU engine keeps large galleries in the expanded form and small ones direct:
    /// both answer with the direct form's words, through the backend interface.
    #[test]
    fn the_cpu_engine_gives_the_same_words_in_either_form() {
        use crate::backend::{CpuBackend, CpuForm, EXPANDED_FROM_GROUPS};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let n = 128;
        let q = crate::arith::ntt_primes(50, n, 2, &[]).unwrap();
        let weights: Vec<i64> = (0..17)
            .map(|j| if j % 2 == 0 { j - 40 } else { 3 * j })
            .collect();
        let plan = std::sync::Arc::new(super::FusedPlan::new(n, &q, 257, &weights).unwrap());
        let mut random = || -> Vec<u64> {
            (0..plan.unextended_len())
                .map(|i| rng.random_range(0..q[(i / n) % q.len()]))
                .collect()
        };
        let query = random();
        let query_ext = plan.extend_ntt(&query).unwrap();
        // The engine's own choice: direct where the AVX-512 accumulations run, else
        // expanded from EXPANDED_FROM_GROUPS groups.
        let large = EXPANDED_FROM_GROUPS + 2;
        assert_eq!(
            CpuForm::for_plan(&plan, EXPANDED_FROM_GROUPS - 1),
            CpuForm::Direct
        );
        assert_eq!(
            CpuForm::for_plan(&plan, large) == CpuForm::Expanded,
            !plan.accumulates_on_vectors()
        );
        for (groups, form) in [
            (EXPANDED_FROM_GROUPS - 1, CpuForm::Direct),
            (large, CpuForm::Direct),
            (large, CpuForm::Expanded),
        ] {
            let gallery: Vec<Vec<u64>> = (0..groups).map(|_| random()).collect();
            let want: Vec<Vec<u64>> = gallery
                .iter()
                .map(|g| plan.evaluate_group(&query_ext, &plan.extend_ntt(g).unwrap()))
                .collect();
            let stored = CpuBackend.store_gallery_as(&plan, gallery, form).unwrap();
            assert_eq!(stored.groups(), groups);
            // The expanded form holds each group's square term too: proof it was built.
            let direct_bytes = groups * plan.extended_len() * 8;
            assert_eq!(
                stored.bytes() > direct_bytes,
                form == CpuForm::Expanded,
                "{groups} groups"
            );
            assert_eq!(stored.evaluate(&query).unwrap(), want, "{groups} groups");
            assert_eq!(stored.evaluate_extended(&query_ext).unwrap(), want);
            // In coefficient form: the same results, transformed back.
            let mut coefficients = want.clone();
            for result in &mut coefficients {
                plan.q().inverse(result).unwrap();
            }
            assert_eq!(
                stored
                    .evaluate_extended_coefficients(&query_ext, &plan)
                    .unwrap(),
                coefficients
            );
        }
    }
}
