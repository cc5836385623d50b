//! AVX-512 versions of the blocked conversions: eight coefficients per vector through the
//! very integer steps of the portable blocked code in the parent module — Shoup products,
//! conditional subtractions, the same double-precision division estimate with its exact
//! correction — so the words are the same (tested against it).

use super::{DigitBlock, Fit, Lift, MixedRadix, Scaler, BLOCK, MAX_LIMBS};
use crate::arith::{Constant, Modulus};
use crate::simd::{add_mod, mul_full, reduce_once, sub_mod, Twiddles};
use std::arch::x86_64::*;

/// Vectors of 8 coefficients per block.
const VECS: usize = BLOCK / 8;

/// Per-vector masks of a block's negative (upper-half) values.
type Negative = [__mmask8; VECS];

/// A modulus in every lane, with Shoup's quotient for 1 (to reduce any word).
struct Lanes {
    p: __m512i,
    one: Twiddles,
}

impl Lanes {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn new(m: &Modulus) -> Self {
        Self {
            p: _mm512_set1_epi64(m.value() as i64),
            one: Twiddles::broadcast(1 % m.value(), m.one_shoup()),
        }
    }

    /// [`Fit::reduce`], lane-wise.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn fit(&self, fit: Fit, d: __m512i) -> __m512i {
        match fit {
            Fit::Below => d,
            Fit::Twice => reduce_once(d, self.p),
            Fit::Any => mul_full(d, &self.one, self.p),
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn constant(c: &Constant) -> Twiddles {
    Twiddles::broadcast(c.value, c.shoup)
}

/// Vector `v` of a row (8 words from 8·v).
#[inline]
#[target_feature(enable = "avx512f")]
fn load(row: &[u64], v: usize) -> __m512i {
    let words = &row[8 * v..8 * v + 8];
    // SAFETY: 8 words in bounds (sliced above); unaligned load.
    unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store(row: &mut [u64], v: usize, x: __m512i) {
    let words = &mut row[8 * v..8 * v + 8];
    // SAFETY: 8 words in bounds (sliced above); unaligned store.
    unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), x) }
}

impl MixedRadix {
    /// [`MixedRadix::digits_block`], eight coefficients per vector.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn digits_avx512<'a>(&self, row: impl Fn(usize) -> &'a [u64], d: &mut DigitBlock) {
        d[0].copy_from_slice(&row(0)[..BLOCK]);
        for i in 1..self.moduli.len() {
            let m = Lanes::new(&self.moduli[i]);
            let fit = &self.within_fit[i];
            let inv = constant(&self.prefix_inv[i]);
            let x = &row(i)[..BLOCK];
            let (done, rest) = d.split_at_mut(i);
            // As in `eval_avx512`: no reduction before a Shoup product.
            let top_fit = if i > 1 { Fit::Below } else { fit[i - 1] };
            for v in 0..VECS {
                let mut acc = m.fit(top_fit, load(&done[i - 1], v));
                for k in (0..i - 1).rev() {
                    let digit = m.fit(fit[k], load(&done[k], v));
                    let w = constant(&self.within[i][k]);
                    // SAFETY: AVX-512F here; both below p.
                    acc = unsafe { add_mod(mul_full(acc, &w, m.p), digit, m.p) };
                }
                // SAFETY: AVX-512F here; x below its prime, acc reduced.
                let diff = unsafe { sub_mod(load(x, v), acc, m.p) };
                store(&mut rest[0], v, mul_full(diff, &inv, m.p));
            }
        }
    }

    /// [`MixedRadix::upper_half_block`]: which lanes spell a value above ⌊M/2⌋.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn upper_half_avx512(&self, d: &DigitBlock) -> Negative {
        let mut negative = [0; VECS];
        for (v, negative) in negative.iter_mut().enumerate() {
            let mut equal: __mmask8 = 0xFF;
            for i in (0..self.moduli.len()).rev() {
                let (x, h) = (load(&d[i], v), _mm512_set1_epi64(self.half[i] as i64));
                *negative |= equal & _mm512_cmpgt_epu64_mask(x, h);
                equal &= _mm512_cmpeq_epu64_mask(x, h);
            }
        }
        negative
    }

    /// [`MixedRadix::eval_block`]: the values mod target `j` (centred where `negative`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn eval_avx512(&self, d: &DigitBlock, j: usize, negative: Option<&Negative>, out: &mut [u64]) {
        let (m, consts, product) = &self.targets[j];
        let fit = &self.target_fit[j];
        let top = self.moduli.len() - 1;
        let m = Lanes::new(m);
        let product = _mm512_set1_epi64(*product as i64);
        // A Shoup product takes any word: the top digit needs no reduction when one follows
        // (the same value mod p, so the same words).
        let top_fit = if top > 0 { Fit::Below } else { fit[top] };
        for v in 0..VECS {
            let mut acc = m.fit(top_fit, load(&d[top], v));
            for k in (0..top).rev() {
                let digit = m.fit(fit[k], load(&d[k], v));
                let c = constant(&consts[k]);
                // SAFETY: AVX-512F here; both below p.
                acc = unsafe { add_mod(mul_full(acc, &c, m.p), digit, m.p) };
            }
            if let Some(negative) = negative {
                // SAFETY: AVX-512F here; both below p.
                let lifted = unsafe { sub_mod(acc, product, m.p) };
                acc = _mm512_mask_blend_epi64(negative[v], acc, lifted);
            }
            store(out, v, acc);
        }
    }
}

impl Lift {
    /// The whole blocks of [`Lift::apply`]; returns how many coefficients it did.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn apply_avx512(
        &self,
        q_coeffs: &[u64],
        p_coeffs: &mut [u64],
        n: usize,
    ) -> usize {
        let blocked = n - n % BLOCK;
        let mut d = [[0u64; BLOCK]; MAX_LIMBS];
        for start in (0..blocked).step_by(BLOCK) {
            self.radix
                .digits_avx512(|i| &q_coeffs[i * n + start..], &mut d);
            let negative = self.radix.upper_half_avx512(&d);
            for j in 0..self.extra {
                self.radix
                    .eval_avx512(&d, j, Some(&negative), &mut p_coeffs[j * n + start..]);
            }
        }
        blocked
    }
}

/// `div_small` lane-wise: (t·d + carry) = quot·q + rem with the same estimate and
/// corrections.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn div_small(t: u64, d: __m512i, carry: __m512i, q: u64) -> (__m512i, __m512i) {
    let (tv, qv) = (_mm512_set1_epi64(t as i64), _mm512_set1_epi64(q as i64));
    let estimate = _mm512_div_pd(
        _mm512_add_pd(
            _mm512_mul_pd(_mm512_set1_pd(t as f64), _mm512_cvtepu64_pd(d)),
            _mm512_cvtepu64_pd(carry),
        ),
        _mm512_set1_pd(q as f64),
    );
    let mut quot = _mm512_cvttpd_epu64(estimate);
    let low = _mm512_add_epi64(_mm512_mullo_epi64(tv, d), carry);
    let mut rem = _mm512_sub_epi64(low, _mm512_mullo_epi64(quot, qv));
    let (zero, one) = (_mm512_setzero_si512(), _mm512_set1_epi64(1));
    for _ in 0..2 {
        let under = _mm512_cmplt_epi64_mask(rem, zero);
        quot = _mm512_mask_sub_epi64(quot, under, quot, one);
        rem = _mm512_mask_add_epi64(rem, under, rem, qv);
        let over = _mm512_cmpge_epi64_mask(rem, qv);
        quot = _mm512_mask_add_epi64(quot, over, quot, one);
        rem = _mm512_mask_sub_epi64(rem, over, rem, qv);
    }
    (quot, rem)
}

impl Scaler {
    /// `rounded_fraction` for vector `v` of a block's Q digits.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn rounded_fraction_avx512(&self, d: &DigitBlock, v: usize) -> __m512i {
        let l = self.q_primes.len();
        let mut remainders = [_mm512_setzero_si512(); MAX_LIMBS];
        let mut whole = _mm512_setzero_si512();
        for (i, &qi) in self.q_primes.iter().enumerate() {
            let (quot, rem) = div_small(self.t, load(&d[i], v), whole, qi);
            whole = quot;
            remainders[i] = rem;
        }
        // Decided at the first level from the top whose remainder differs from (q − 1)/2.
        let (mut up, mut decided): (__mmask8, __mmask8) = (0, 0);
        for i in (0..l).rev() {
            let mid = _mm512_set1_epi64(((self.q_primes[i] - 1) / 2) as i64);
            let differs = _mm512_cmpneq_epu64_mask(remainders[i], mid);
            up |= !decided & differs & _mm512_cmpgt_epu64_mask(remainders[i], mid);
            decided |= differs;
        }
        _mm512_mask_add_epi64(whole, up, whole, _mm512_set1_epi64(1))
    }

    /// The whole blocks of [`Scaler::apply_range`] (same arguments); returns the end of
    /// the blocked part.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn apply_range_avx512(
        &self,
        qp_coeffs: &[u64],
        q_out: &mut [u64],
        n: usize,
        range: std::ops::Range<usize>,
    ) -> usize {
        let (l, k) = (self.q.limbs(), self.p.limbs());
        let len = range.len();
        let blocked = range.start + (len - len % BLOCK);
        let mut dq = [[0u64; BLOCK]; MAX_LIMBS];
        let mut kp = [[0u64; BLOCK]; MAX_LIMBS];
        let mut dp = [[0u64; BLOCK]; MAX_LIMBS];
        let mut r = [0u64; BLOCK];
        let mut e = [_mm512_setzero_si512(); VECS];
        for start in (range.start..blocked).step_by(BLOCK) {
            self.q
                .digits_avx512(|i| &qp_coeffs[i * n + start..], &mut dq);
            for (v, e) in e.iter_mut().enumerate() {
                *e = self.rounded_fraction_avx512(&dq, v);
            }
            for (j, kp) in kp.iter_mut().enumerate().take(k) {
                let m = Lanes::new(&self.p.moduli()[j]);
                let q_inv = constant(&self.q_inv_p[j]);
                let x = &qp_coeffs[(l + j) * n + start..][..BLOCK];
                self.q.eval_avx512(&dq, j, None, &mut r);
                for v in 0..VECS {
                    // SAFETY: AVX-512F here; x below its prime, r reduced.
                    let diff = unsafe { sub_mod(load(x, v), load(&r, v), m.p) };
                    store(kp, v, mul_full(diff, &q_inv, m.p));
                }
            }
            self.p.digits_avx512(|i| &kp[i], &mut dp);
            let negative = self.p.upper_half_avx512(&dp);
            for i in 0..l {
                let m = Lanes::new(&self.q.moduli()[i]);
                let t_q = constant(&self.t_q[i]);
                self.p.eval_avx512(&dp, i, Some(&negative), &mut r);
                let out = &mut q_out[i * len + start - range.start..][..BLOCK];
                for (v, &e) in e.iter().enumerate() {
                    // e ≤ t < 2⁴⁰ may exceed a prime only in tests with tiny primes.
                    let e = m.fit(Fit::Any, e);
                    // SAFETY: AVX-512F here; both below p.
                    let y = unsafe { add_mod(mul_full(load(&r, v), &t_q, m.p), e, m.p) };
                    store(out, v, y);
                }
            }
        }
        blocked
    }
}
