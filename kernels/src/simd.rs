//! AVX-512 versions of the NTT's butterfly levels, chosen at run time when the CPU has
//! AVX-512F and AVX-512DQ (scalar code otherwise). Eight 64-bit lanes run the very
//! integer steps of the scalar butterflies in `ntt.rs` — wrapping adds and subtracts,
//! Harvey's lazy reductions, Shoup's products — so the words are identical whichever path
//! runs (tested against the scalar code on every size and on primes up to 62 bits).
//!
//! AVX-512 has no 64×64→128-bit multiply: the high half of y·w′ (Shoup's quotient) is put
//! together from four 32×32→64-bit products (`vpmuludq`), and the low halves come from
//! `vpmullq`. Levels whose butterflies span at least 8 words run here (all but the three
//! innermost); the innermost stay scalar.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// High 64 bits of the lane-wise 128-bit products a·b, where b's high halves are given
    /// (b_hi = b >> 32, computed once per twiddle).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn mulhi(a: __m512i, b: __m512i, b_hi: __m512i) -> __m512i {
        let mask = _mm512_set1_epi64(0xFFFF_FFFF);
        let a_hi = _mm512_srli_epi64::<32>(a);
        let ll = _mm512_mul_epu32(a, b);
        let lh = _mm512_mul_epu32(a, b_hi);
        let hl = _mm512_mul_epu32(a_hi, b);
        let hh = _mm512_mul_epu32(a_hi, b_hi);
        // Middle column: (ll >> 32) + low halves of the cross products, below 3·2³².
        let mid = _mm512_add_epi64(
            _mm512_srli_epi64::<32>(ll),
            _mm512_add_epi64(_mm512_and_si512(lh, mask), _mm512_and_si512(hl, mask)),
        );
        _mm512_add_epi64(
            _mm512_add_epi64(hh, _mm512_srli_epi64::<32>(mid)),
            _mm512_add_epi64(_mm512_srli_epi64::<32>(lh), _mm512_srli_epi64::<32>(hl)),
        )
    }

    /// y·w − ⌊y·w′/2⁶⁴⌋·p, wrapping: Shoup's lazy product in [0, 2p).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn mul_shoup_lazy(
        y: __m512i,
        w: __m512i,
        w_shoup: __m512i,
        w_shoup_hi: __m512i,
        p: __m512i,
    ) -> __m512i {
        let q = mulhi(y, w_shoup, w_shoup_hi);
        _mm512_sub_epi64(_mm512_mullo_epi64(y, w), _mm512_mullo_epi64(q, p))
    }

    /// x − m if x ≥ m (unsigned), for x < 2m.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce_once(x: __m512i, m: __m512i) -> __m512i {
        _mm512_min_epu64(x, _mm512_sub_epi64(x, m))
    }

    /// The forward levels with half-size ≥ 8, from n/2 down to `last_half`; returns the
    /// next twiddle index. Same steps as `NttTable::forward`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn forward_levels(
        a: &mut [u64],
        omegas: &[u64],
        omegas_shoup: &[u64],
        p: u64,
        last_half: usize,
    ) -> usize {
        let n = a.len();
        let two_p = _mm512_set1_epi64((2 * p) as i64);
        let pv = _mm512_set1_epi64(p as i64);
        let mut half = n >> 1;
        let mut k = 1;
        while half >= last_half {
            for chunk in a.chunks_exact_mut(2 * half) {
                let w = _mm512_set1_epi64(omegas[k] as i64);
                let ws = _mm512_set1_epi64(omegas_shoup[k] as i64);
                let ws_hi = _mm512_set1_epi64((omegas_shoup[k] >> 32) as i64);
                k += 1;
                let (left, right) = chunk.split_at_mut(half);
                for (x8, y8) in left.chunks_exact_mut(8).zip(right.chunks_exact_mut(8)) {
                    // SAFETY: each chunk is exactly 8 words; unaligned loads and stores.
                    unsafe {
                        let x = _mm512_loadu_si512(x8.as_ptr().cast());
                        let y = _mm512_loadu_si512(y8.as_ptr().cast());
                        let u = reduce_once(x, two_p);
                        let t = mul_shoup_lazy(y, w, ws, ws_hi, pv);
                        _mm512_storeu_si512(x8.as_mut_ptr().cast(), _mm512_add_epi64(u, t));
                        _mm512_storeu_si512(
                            y8.as_mut_ptr().cast(),
                            _mm512_sub_epi64(_mm512_add_epi64(u, two_p), t),
                        );
                    }
                }
            }
            half >>= 1;
        }
        k
    }

    /// Full reduction of values below 4p to [0, p).
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `a.len()` a multiple of 8.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn reduce_from_4p(a: &mut [u64], p: u64) {
        let two_p = _mm512_set1_epi64((2 * p) as i64);
        let pv = _mm512_set1_epi64(p as i64);
        for x8 in a.chunks_exact_mut(8) {
            // SAFETY: 8 words; unaligned.
            unsafe {
                let x = _mm512_loadu_si512(x8.as_ptr().cast());
                let r = reduce_once(reduce_once(x, two_p), pv);
                _mm512_storeu_si512(x8.as_mut_ptr().cast(), r);
            }
        }
    }

    /// The inverse levels with half-size from `first_half` (≥ 8) up to n/2, starting at
    /// twiddle index `k`. Same steps as `NttTable::inverse`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn inverse_levels(
        a: &mut [u64],
        zetas: &[u64],
        zetas_shoup: &[u64],
        p: u64,
        first_half: usize,
        mut k: usize,
    ) {
        let n = a.len();
        let two_p = _mm512_set1_epi64((2 * p) as i64);
        let pv = _mm512_set1_epi64(p as i64);
        let mut half = first_half;
        while half < n {
            for chunk in a.chunks_exact_mut(2 * half) {
                let z = _mm512_set1_epi64(zetas[k] as i64);
                let zs = _mm512_set1_epi64(zetas_shoup[k] as i64);
                let zs_hi = _mm512_set1_epi64((zetas_shoup[k] >> 32) as i64);
                k += 1;
                let (left, right) = chunk.split_at_mut(half);
                for (x8, y8) in left.chunks_exact_mut(8).zip(right.chunks_exact_mut(8)) {
                    // SAFETY: each chunk is exactly 8 words; unaligned loads and stores.
                    unsafe {
                        let u = _mm512_loadu_si512(x8.as_ptr().cast());
                        let y = _mm512_loadu_si512(y8.as_ptr().cast());
                        let sum = reduce_once(_mm512_add_epi64(u, y), two_p);
                        let diff = _mm512_sub_epi64(_mm512_add_epi64(u, two_p), y);
                        _mm512_storeu_si512(x8.as_mut_ptr().cast(), sum);
                        _mm512_storeu_si512(
                            y8.as_mut_ptr().cast(),
                            mul_shoup_lazy(diff, z, zs, zs_hi, pv),
                        );
                    }
                }
            }
            half <<= 1;
        }
    }

    /// a ← a·c mod p (Shoup, fully reduced), lane-wise.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ; `a.len()` a multiple of 8.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn scale(a: &mut [u64], c: u64, c_shoup: u64, p: u64) {
        let cv = _mm512_set1_epi64(c as i64);
        let cs = _mm512_set1_epi64(c_shoup as i64);
        let cs_hi = _mm512_set1_epi64((c_shoup >> 32) as i64);
        let pv = _mm512_set1_epi64(p as i64);
        for x8 in a.chunks_exact_mut(8) {
            // SAFETY: 8 words; unaligned.
            unsafe {
                let x = _mm512_loadu_si512(x8.as_ptr().cast());
                let r = reduce_once(mul_shoup_lazy(x, cv, cs, cs_hi, pv), pv);
                _mm512_storeu_si512(x8.as_mut_ptr().cast(), r);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::*;

/// True when the AVX-512 levels can run on this CPU (checked once; cached by std), and
/// `TOUCHSTONE_NO_SIMD` is not set (to measure or test the scalar path).
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            std::env::var_os("TOUCHSTONE_NO_SIMD").is_none()
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512dq")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
