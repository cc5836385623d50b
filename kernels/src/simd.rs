//! AVX-512 versions of the NTT's butterfly levels, chosen at run time when the CPU has
//! AVX-512F and AVX-512DQ (scalar code otherwise). Eight 64-bit lanes run the very
//! integer steps of the scalar butterflies in `ntt.rs` — wrapping adds and subtracts,
//! Harvey's lazy reductions, Shoup's products — so the words are identical whichever path
//! runs (tested against the scalar code on every size and on primes up to 62 bits).
//!
//! AVX-512 has no 64×64→128-bit multiply: the high half of y·w′ (Shoup's quotient) is put
//! together from four 32×32→64-bit products (`vpmuludq`), and the low halves come from
//! `vpmullq`. Levels whose butterflies span at least 8 words run on whole vectors; the three
//! innermost (spans 4, 2, 1) run on pairs of vectors whose butterfly partners are brought
//! into matching lanes by `vpermt2q`, with per-lane twiddles.
//!
//! Primes below 2⁵⁰ (the fused engine's extension primes) run the same butterflies with
//! AVX-512 IFMA where the CPU has it: Shoup's product with a 52-bit quotient
//! ⌊w·2⁵²/p⌋ is three 52-bit multiply-adds (`vpmadd52{lo,hi}uq`), valid because every lazy
//! value stays below 4p < 2⁵². Lazy intermediates may differ from the 64-bit path by
//! multiples of p; the fully reduced outputs are the same words (tested).

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

    /// Shoup's lazy product with a 52-bit quotient w′ = ⌊w·2⁵²/p⌋, for p < 2⁵⁰ and
    /// y < 2⁵²: y·w − ⌊y·w′/2⁵²⌋·p lies in [0, 2p), so its low 52 bits are the value.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mul_shoup_lazy52(y: __m512i, w: __m512i, w_shoup: __m512i, p: __m512i) -> __m512i {
        let zero = _mm512_setzero_si512();
        let q = _mm512_madd52hi_epu64(zero, y, w_shoup);
        let yw = _mm512_madd52lo_epu64(zero, y, w);
        let qp = _mm512_madd52lo_epu64(zero, q, p);
        _mm512_and_si512(
            _mm512_sub_epi64(yw, qp),
            _mm512_set1_epi64(((1u64 << 52) - 1) as i64),
        )
    }

    /// How the butterflies multiply by a twiddle: the generic levels below run either.
    pub trait LazyMul {
        /// y·w mod p in [0, 2p), for y < 4p.
        ///
        /// # Safety
        /// The CPU must have the features the implementation names.
        unsafe fn mul(y: __m512i, tw: &Twiddles, p: __m512i) -> __m512i;
    }

    /// 64-bit Shoup quotients ⌊w·2⁶⁴/p⌋ (AVX-512F/DQ; any p < 2⁶²).
    pub struct Shoup64;

    /// 52-bit Shoup quotients ⌊w·2⁵²/p⌋ (AVX-512 IFMA; p < 2⁵⁰).
    pub struct Shoup52;

    impl LazyMul for Shoup64 {
        #[inline(always)]
        unsafe fn mul(y: __m512i, tw: &Twiddles, p: __m512i) -> __m512i {
            // SAFETY: the caller runs with AVX-512F and DQ.
            unsafe { mul_shoup_lazy(y, tw.w, tw.ws, tw.ws_hi, p) }
        }
    }

    impl LazyMul for Shoup52 {
        #[inline(always)]
        unsafe fn mul(y: __m512i, tw: &Twiddles, p: __m512i) -> __m512i {
            // SAFETY: the caller runs with AVX-512F and IFMA.
            unsafe { mul_shoup_lazy52(y, tw.w, tw.ws, p) }
        }
    }

    /// x·c mod p, fully reduced, for any 64-bit x and a constant c < p with its 64-bit
    /// Shoup quotient (`Modulus::mul_shoup`'s steps, lane-wise).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    pub fn mul_full(x: __m512i, c: &Twiddles, p: __m512i) -> __m512i {
        reduce_once(mul_shoup_lazy(x, c.w, c.ws, c.ws_hi, p), p)
    }

    /// x − m if x ≥ m (unsigned), for x < 2m.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn reduce_once(x: __m512i, m: __m512i) -> __m512i {
        _mm512_min_epu64(x, _mm512_sub_epi64(x, m))
    }

    /// A full forward transform (see `NttTable::forward`): the levels with half-size ≥ 8,
    /// the three innermost, the final reduction below p.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ; `a.len()` a multiple of 16.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn forward(a: &mut [u64], omegas: &[u64], omegas_shoup: &[u64], p: u64) {
        // SAFETY: the features are enabled here; the length is the caller's promise.
        unsafe { forward_with::<Shoup64>(a, omegas, omegas_shoup, p) }
    }

    /// [`forward`] with 52-bit Shoup quotients, for p < 2⁵⁰.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, DQ and IFMA; `a.len()` a multiple of 16; p < 2⁵⁰.
    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn forward52(a: &mut [u64], omegas: &[u64], omegas_shoup52: &[u64], p: u64) {
        // SAFETY: as for `forward`, with IFMA.
        unsafe { forward_with::<Shoup52>(a, omegas, omegas_shoup52, p) }
    }

    /// A full inverse transform (see `NttTable::inverse`): the three first levels, the
    /// rest, the product by n⁻¹.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ; `a.len()` a multiple of 16.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn inverse(
        a: &mut [u64],
        zetas: &[u64],
        zetas_shoup: &[u64],
        n_inv: (u64, u64),
        p: u64,
    ) {
        // SAFETY: the features are enabled here; the length is the caller's promise.
        unsafe { inverse_with::<Shoup64>(a, zetas, zetas_shoup, n_inv, p) }
    }

    /// [`inverse`] with 52-bit Shoup quotients (n⁻¹'s too), for p < 2⁵⁰.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, DQ and IFMA; `a.len()` a multiple of 16; p < 2⁵⁰.
    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn inverse52(
        a: &mut [u64],
        zetas: &[u64],
        zetas_shoup52: &[u64],
        n_inv: (u64, u64),
        p: u64,
    ) {
        // SAFETY: as for `inverse`, with IFMA.
        unsafe { inverse_with::<Shoup52>(a, zetas, zetas_shoup52, n_inv, p) }
    }

    #[inline(always)]
    unsafe fn forward_with<M: LazyMul>(a: &mut [u64], w: &[u64], ws: &[u64], p: u64) {
        // SAFETY: the callers enable what M and the levels need.
        unsafe {
            let k = forward_levels::<M>(a, w, ws, p, 8);
            forward_tail::<M>(a, w, ws, p, k);
            reduce_from_4p(a, p);
        }
    }

    #[inline(always)]
    unsafe fn inverse_with<M: LazyMul>(
        a: &mut [u64],
        z: &[u64],
        zs: &[u64],
        (n_inv, n_inv_shoup): (u64, u64),
        p: u64,
    ) {
        // SAFETY: the callers enable what M and the levels need.
        unsafe {
            let k = inverse_head::<M>(a, z, zs, p);
            inverse_levels::<M>(a, z, zs, p, 8, k);
            scale_with::<M>(a, n_inv, n_inv_shoup, p);
        }
    }

    /// The forward levels with half-size ≥ 8, from n/2 down to `last_half`; returns the
    /// next twiddle index. Same steps as `NttTable::forward`.
    #[inline(always)]
    unsafe fn forward_levels<M: LazyMul>(
        a: &mut [u64],
        omegas: &[u64],
        omegas_shoup: &[u64],
        p: u64,
        last_half: usize,
    ) -> usize {
        let n = a.len();
        // SAFETY (whole body): AVX-512F/DQ (and IFMA for Shoup52) are enabled by the
        // callers; every chunk is exactly 8 words, with unaligned loads and stores.
        unsafe {
            let two_p = _mm512_set1_epi64((2 * p) as i64);
            let pv = _mm512_set1_epi64(p as i64);
            let mut half = n >> 1;
            let mut k = 1;
            while half >= last_half {
                for chunk in a.chunks_exact_mut(2 * half) {
                    let tw = Twiddles::broadcast(omegas[k], omegas_shoup[k]);
                    k += 1;
                    let (left, right) = chunk.split_at_mut(half);
                    for (x8, y8) in left.chunks_exact_mut(8).zip(right.chunks_exact_mut(8)) {
                        let x = _mm512_loadu_si512(x8.as_ptr().cast());
                        let y = _mm512_loadu_si512(y8.as_ptr().cast());
                        let (x, y) = forward_butterfly::<M>(x, y, &tw, pv, two_p);
                        _mm512_storeu_si512(x8.as_mut_ptr().cast(), x);
                        _mm512_storeu_si512(y8.as_mut_ptr().cast(), y);
                    }
                }
                half >>= 1;
            }
            k
        }
    }

    /// Lane-wise twiddles with the high halves of their Shoup quotients.
    pub struct Twiddles {
        w: __m512i,
        ws: __m512i,
        ws_hi: __m512i,
    }

    impl Twiddles {
        /// One twiddle in every lane.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub fn broadcast(w: u64, ws: u64) -> Self {
            Self {
                w: _mm512_set1_epi64(w as i64),
                ws: _mm512_set1_epi64(ws as i64),
                ws_hi: _mm512_set1_epi64((ws >> 32) as i64),
            }
        }

        /// Lane i takes twiddle `k + idx[i]` (idx as 64-bit lane indices into 8 words
        /// loaded from k; lanes past the table are never selected).
        #[inline]
        #[target_feature(enable = "avx512f")]
        fn gather(w: &[u64], ws: &[u64], k: usize, count: usize, idx: __m512i) -> Self {
            let (w, ws) = (&w[k..k + count], &ws[k..k + count]);
            let mask = ((1u32 << count) - 1) as __mmask8;
            // SAFETY: the masked lanes lie inside the slices (count ≤ 8 words); the others
            // are neither read nor faulted on.
            let (vw, vs) = unsafe {
                (
                    _mm512_maskz_loadu_epi64(mask, w.as_ptr().cast()),
                    _mm512_maskz_loadu_epi64(mask, ws.as_ptr().cast()),
                )
            };
            let ws = _mm512_permutexvar_epi64(idx, vs);
            Self {
                w: _mm512_permutexvar_epi64(idx, vw),
                ws,
                ws_hi: _mm512_srli_epi64::<32>(ws),
            }
        }
    }

    /// Lane indices, first lane first.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lanes(i: [i64; 8]) -> __m512i {
        _mm512_set_epi64(i[7], i[6], i[5], i[4], i[3], i[2], i[1], i[0])
    }

    /// Harvey's forward butterfly on 8 lanes: (u + t, u + 2p − t), u = x mod 2p, t = y·w.
    #[inline(always)]
    unsafe fn forward_butterfly<M: LazyMul>(
        x: __m512i,
        y: __m512i,
        tw: &Twiddles,
        p: __m512i,
        two_p: __m512i,
    ) -> (__m512i, __m512i) {
        // SAFETY: the callers enable AVX-512F/DQ and what M needs.
        unsafe {
            let u = reduce_once(x, two_p);
            let t = M::mul(y, tw, p);
            (
                _mm512_add_epi64(u, t),
                _mm512_sub_epi64(_mm512_add_epi64(u, two_p), t),
            )
        }
    }

    /// The inverse butterfly on 8 lanes: ((x + y) mod 2p, (x + 2p − y)·z).
    #[inline(always)]
    unsafe fn inverse_butterfly<M: LazyMul>(
        x: __m512i,
        y: __m512i,
        tw: &Twiddles,
        p: __m512i,
        two_p: __m512i,
    ) -> (__m512i, __m512i) {
        // SAFETY: the callers enable AVX-512F/DQ and what M needs.
        unsafe {
            let sum = reduce_once(_mm512_add_epi64(x, y), two_p);
            let diff = _mm512_sub_epi64(_mm512_add_epi64(x, two_p), y);
            (sum, M::mul(diff, tw, p))
        }
    }

    /// The three innermost forward levels (half-sizes 4, 2, 1), twiddles from index `k`
    /// (the first level's), two blocks of 8 words at a time with the butterflies' partners
    /// brought into matching lanes by permutes: the same butterflies, in the same order
    /// per word, as the scalar levels.
    #[inline(always)]
    unsafe fn forward_tail<M: LazyMul>(
        a: &mut [u64],
        omegas: &[u64],
        omegas_shoup: &[u64],
        p: u64,
        k: usize,
    ) {
        let n = a.len();
        let (k4, k2, k1) = (k, k + n / 8, k + n / 8 + n / 4);
        // SAFETY (whole body): AVX-512F/DQ (and what M needs) are enabled by the callers;
        // `a` is 16-word pairs, with unaligned loads and stores.
        unsafe {
            let two_p = _mm512_set1_epi64((2 * p) as i64);
            let pv = _mm512_set1_epi64(p as i64);
            let dup4 = lanes([0, 0, 0, 0, 1, 1, 1, 1]);
            let dup2 = lanes([0, 0, 1, 1, 2, 2, 3, 3]);
            let ident = lanes([0, 1, 2, 3, 4, 5, 6, 7]);
            let lo_halves = lanes([0, 1, 2, 3, 8, 9, 10, 11]);
            let hi_halves = lanes([4, 5, 6, 7, 12, 13, 14, 15]);
            let x2 = lanes([0, 1, 8, 9, 4, 5, 12, 13]);
            let y2 = lanes([2, 3, 10, 11, 6, 7, 14, 15]);
            let x1 = lanes([0, 8, 2, 10, 4, 12, 6, 14]);
            let y1 = lanes([1, 9, 3, 11, 5, 13, 7, 15]);
            let out_a = lanes([0, 8, 1, 9, 2, 10, 3, 11]);
            let out_b = lanes([4, 12, 5, 13, 6, 14, 7, 15]);
            for (b, pair) in a.chunks_exact_mut(16).enumerate() {
                let va = _mm512_loadu_si512(pair.as_ptr().cast());
                let vb = _mm512_loadu_si512(pair.as_ptr().add(8).cast());
                // Half 4: x = the low halves of both blocks, y = the high halves.
                let tw = Twiddles::gather(omegas, omegas_shoup, k4 + 2 * b, 2, dup4);
                let (x, y) = forward_butterfly::<M>(
                    _mm512_permutex2var_epi64(va, lo_halves, vb),
                    _mm512_permutex2var_epi64(va, hi_halves, vb),
                    &tw,
                    pv,
                    two_p,
                );
                // Half 2 (block a = x₀..₃ y₀..₃, block b = x₄..₇ y₄..₇).
                let tw = Twiddles::gather(omegas, omegas_shoup, k2 + 4 * b, 4, dup2);
                let (x, y) = forward_butterfly::<M>(
                    _mm512_permutex2var_epi64(x, x2, y),
                    _mm512_permutex2var_epi64(x, y2, y),
                    &tw,
                    pv,
                    two_p,
                );
                // Half 1.
                let tw = Twiddles::gather(omegas, omegas_shoup, k1 + 8 * b, 8, ident);
                let (x, y) = forward_butterfly::<M>(
                    _mm512_permutex2var_epi64(x, x1, y),
                    _mm512_permutex2var_epi64(x, y1, y),
                    &tw,
                    pv,
                    two_p,
                );
                _mm512_storeu_si512(
                    pair.as_mut_ptr().cast(),
                    _mm512_permutex2var_epi64(x, out_a, y),
                );
                _mm512_storeu_si512(
                    pair.as_mut_ptr().add(8).cast(),
                    _mm512_permutex2var_epi64(x, out_b, y),
                );
            }
        }
    }

    /// The three first inverse levels (half-sizes 1, 2, 4), twiddles from index 0; returns
    /// the next twiddle index. The mirror of [`forward_tail`].
    #[inline(always)]
    unsafe fn inverse_head<M: LazyMul>(
        a: &mut [u64],
        zetas: &[u64],
        zetas_shoup: &[u64],
        p: u64,
    ) -> usize {
        let n = a.len();
        let (k1, k2, k4) = (0, n / 2, n / 2 + n / 4);
        // SAFETY (whole body): as in `forward_tail`.
        unsafe {
            let two_p = _mm512_set1_epi64((2 * p) as i64);
            let pv = _mm512_set1_epi64(p as i64);
            let dup4 = lanes([0, 0, 0, 0, 1, 1, 1, 1]);
            let dup2 = lanes([0, 0, 1, 1, 2, 2, 3, 3]);
            let ident = lanes([0, 1, 2, 3, 4, 5, 6, 7]);
            let evens = lanes([0, 2, 4, 6, 8, 10, 12, 14]);
            let odds = lanes([1, 3, 5, 7, 9, 11, 13, 15]);
            let x2 = lanes([0, 8, 2, 10, 4, 12, 6, 14]);
            let y2 = lanes([1, 9, 3, 11, 5, 13, 7, 15]);
            let x4 = lanes([0, 1, 8, 9, 4, 5, 12, 13]);
            let y4 = lanes([2, 3, 10, 11, 6, 7, 14, 15]);
            let lo_halves = lanes([0, 1, 2, 3, 8, 9, 10, 11]);
            let hi_halves = lanes([4, 5, 6, 7, 12, 13, 14, 15]);
            for (b, pair) in a.chunks_exact_mut(16).enumerate() {
                let va = _mm512_loadu_si512(pair.as_ptr().cast());
                let vb = _mm512_loadu_si512(pair.as_ptr().add(8).cast());
                // Half 1: x = even words, y = odd words.
                let tw = Twiddles::gather(zetas, zetas_shoup, k1 + 8 * b, 8, ident);
                let (x, y) = inverse_butterfly::<M>(
                    _mm512_permutex2var_epi64(va, evens, vb),
                    _mm512_permutex2var_epi64(va, odds, vb),
                    &tw,
                    pv,
                    two_p,
                );
                // Half 2.
                let tw = Twiddles::gather(zetas, zetas_shoup, k2 + 4 * b, 4, dup2);
                let (x, y) = inverse_butterfly::<M>(
                    _mm512_permutex2var_epi64(x, x2, y),
                    _mm512_permutex2var_epi64(x, y2, y),
                    &tw,
                    pv,
                    two_p,
                );
                // Half 4.
                let tw = Twiddles::gather(zetas, zetas_shoup, k4 + 2 * b, 2, dup4);
                let (x, y) = inverse_butterfly::<M>(
                    _mm512_permutex2var_epi64(x, x4, y),
                    _mm512_permutex2var_epi64(x, y4, y),
                    &tw,
                    pv,
                    two_p,
                );
                _mm512_storeu_si512(
                    pair.as_mut_ptr().cast(),
                    _mm512_permutex2var_epi64(x, lo_halves, y),
                );
                _mm512_storeu_si512(
                    pair.as_mut_ptr().add(8).cast(),
                    _mm512_permutex2var_epi64(x, hi_halves, y),
                );
            }
        }
        n / 2 + n / 4 + n / 8
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
    #[inline(always)]
    unsafe fn inverse_levels<M: LazyMul>(
        a: &mut [u64],
        zetas: &[u64],
        zetas_shoup: &[u64],
        p: u64,
        first_half: usize,
        mut k: usize,
    ) {
        let n = a.len();
        // SAFETY (whole body): as in `forward_levels`.
        unsafe {
            let two_p = _mm512_set1_epi64((2 * p) as i64);
            let pv = _mm512_set1_epi64(p as i64);
            let mut half = first_half;
            while half < n {
                for chunk in a.chunks_exact_mut(2 * half) {
                    let tw = Twiddles::broadcast(zetas[k], zetas_shoup[k]);
                    k += 1;
                    let (left, right) = chunk.split_at_mut(half);
                    for (x8, y8) in left.chunks_exact_mut(8).zip(right.chunks_exact_mut(8)) {
                        let x = _mm512_loadu_si512(x8.as_ptr().cast());
                        let y = _mm512_loadu_si512(y8.as_ptr().cast());
                        let (x, y) = inverse_butterfly::<M>(x, y, &tw, pv, two_p);
                        _mm512_storeu_si512(x8.as_mut_ptr().cast(), x);
                        _mm512_storeu_si512(y8.as_mut_ptr().cast(), y);
                    }
                }
                half <<= 1;
            }
        }
    }

    /// Features per IFMA accumulation before a reduction: each product is below 2p² <
    /// 2¹⁰¹, so its high part (bits 52 and up) is below 2⁴⁹ and 8 of them, plus the carry
    /// out of the low sums (below 8), stay below 2⁵² — an operand IFMA takes.
    const IFMA_CHUNK: usize = 8;

    /// Lane-wise Σ x·y as IFMA's split sums: lo gathers the products' low 52 bits, hi
    /// their high bits.
    #[derive(Clone, Copy)]
    struct Acc52 {
        lo: __m512i,
        hi: __m512i,
    }

    /// Column sums of lane-wise products, and their reduction mod p: what the generic
    /// accumulation bodies below run on (IFMA's split sums or the 28-bit split).
    pub trait Sums: Copy {
        /// Products per reduction (the sums' bound).
        const CHUNK: usize;
        /// What [`Sums::reduce`] multiplies by, for one prime.
        type Constants;
        /// The constants for p.
        ///
        /// # Safety
        /// The features the implementation names.
        unsafe fn constants(p: u64) -> Self::Constants;
        /// Empty sums.
        ///
        /// # Safety
        /// As for [`Sums::constants`].
        unsafe fn zero() -> Self;
        /// Adds x·y, for x and y within the implementation's bounds.
        ///
        /// # Safety
        /// As for [`Sums::constants`].
        unsafe fn mac(&mut self, x: __m512i, y: __m512i);
        /// The sum mod p, fully reduced, for at most [`Sums::CHUNK`] products.
        ///
        /// # Safety
        /// As for [`Sums::constants`].
        unsafe fn reduce(self, c: &Self::Constants, p: __m512i) -> __m512i;
    }

    impl Sums for Acc52 {
        const CHUNK: usize = IFMA_CHUNK;
        /// 2⁵² mod p and 1, with 52-bit Shoup quotients.
        type Constants = (Twiddles, Twiddles);

        #[inline(always)]
        unsafe fn constants(p: u64) -> Self::Constants {
            let shoup = |w: u64| (((w as u128) << 52) / p as u128) as u64;
            let r = ((1u128 << 52) % p as u128) as u64;
            // SAFETY: AVX-512F (the callers').
            unsafe {
                (
                    Twiddles::broadcast(r, shoup(r)),
                    Twiddles::broadcast(1, shoup(1)),
                )
            }
        }

        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX-512F (the callers').
            unsafe {
                Self {
                    lo: _mm512_setzero_si512(),
                    hi: _mm512_setzero_si512(),
                }
            }
        }

        /// For x, y < 2⁵² with x·y < 2¹⁰¹.
        #[inline(always)]
        unsafe fn mac(&mut self, x: __m512i, y: __m512i) {
            // SAFETY: AVX-512 IFMA (the callers').
            unsafe {
                self.lo = _mm512_madd52lo_epu64(self.lo, x, y);
                self.hi = _mm512_madd52hi_epu64(self.hi, x, y);
            }
        }

        /// hi·2⁵² + lo mod p.
        #[inline(always)]
        unsafe fn reduce(self, (r52, one): &Self::Constants, p: __m512i) -> __m512i {
            // SAFETY: AVX-512F, DQ and IFMA (the callers').
            unsafe {
                let mask = _mm512_set1_epi64(((1u64 << 52) - 1) as i64);
                // Carry the low sums' top bits (below 8) into the high part: hi < 2⁵².
                let hi = _mm512_add_epi64(self.hi, _mm512_srli_epi64::<52>(self.lo));
                let lo = _mm512_and_si512(self.lo, mask);
                // Both below 2⁵², each Shoup product below 2p.
                let high = Shoup52::mul(hi, r52, p);
                let low = Shoup52::mul(lo, one, p);
                let two_p = _mm512_slli_epi64::<1>(p);
                reduce_once(reduce_once(_mm512_add_epi64(high, low), two_p), p)
            }
        }
    }

    /// (a + b) mod p lane-wise, for a, b < p.
    #[inline(always)]
    pub unsafe fn add_mod(a: __m512i, b: __m512i, p: __m512i) -> __m512i {
        // SAFETY: AVX-512F (the callers').
        unsafe { reduce_once(_mm512_add_epi64(a, b), p) }
    }

    /// (a − b) mod p lane-wise, for a, b < p: the wrapped difference or it plus p,
    /// whichever is smaller (exactly one is below p).
    #[inline(always)]
    pub unsafe fn sub_mod(a: __m512i, b: __m512i, p: __m512i) -> __m512i {
        // SAFETY: AVX-512F (the callers').
        unsafe {
            let d = _mm512_sub_epi64(a, b);
            _mm512_min_epu64(d, _mm512_add_epi64(d, p))
        }
    }

    /// One limb of the expanded form's cross sum (see `expanded::cross_limb`, whose words
    /// these are) for a prime below 2⁵⁰: `a` is `[tile][feature][3][8]`, `b`
    /// `[tile][feature][2][8]`, all words below p; writes c₀, c₁, c₂ fully reduced.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, DQ and IFMA; p < 2⁵⁰; `a` and `b` hold n/8 tiles of `f`
    /// features and every `out` slice n words (n a multiple of 8).
    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn cross_limb52(p: u64, a: &[u64], b: &[u64], f: usize, out: [&mut [u64]; 3]) {
        // SAFETY: the features are enabled here; the shapes are the caller's promise.
        unsafe { cross_limb_with::<Acc52>(p, a, b, f, out) }
    }

    /// [`cross_limb52`] for a prime below 2⁵⁶ on AVX-512F/DQ alone (the 28-bit split of
    /// [`Acc28`]); the same words.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and DQ; p < 2⁵⁶; shapes as for [`cross_limb52`].
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn cross_limb_split(p: u64, a: &[u64], b: &[u64], f: usize, out: [&mut [u64]; 3]) {
        // SAFETY: as for `cross_limb52`, without IFMA (Acc28 needs none).
        unsafe { cross_limb_with::<Acc28>(p, a, b, f, out) }
    }

    /// The cross sum's body over any [`Sums`]: per tile of 8 coefficients, c₀ = Σx₀y₀,
    /// c₂ = Σx₁y₁ and c₁ = Σ(x₀+x₁)(y₀+y₁) − c₀ − c₂, reduced every `S::CHUNK` features.
    #[inline(always)]
    unsafe fn cross_limb_with<S: Sums>(
        p: u64,
        a: &[u64],
        b: &[u64],
        f: usize,
        out: [&mut [u64]; 3],
    ) {
        // SAFETY (whole body): the callers enable what S needs; every load reads 8 words
        // inside its chunk (3 or 2 rows of 8 per feature); every store `at + 8 ≤ n`.
        unsafe {
            let pv = _mm512_set1_epi64(p as i64);
            let c = S::constants(p);
            let [o0, o1, o2] = out;
            for (tile, (a, b)) in a
                .chunks_exact(24 * f)
                .zip(b.chunks_exact(16 * f))
                .enumerate()
            {
                let (mut r0, mut r1, mut r2) = (
                    _mm512_setzero_si512(),
                    _mm512_setzero_si512(),
                    _mm512_setzero_si512(),
                );
                for (ac, bc) in a.chunks(24 * S::CHUNK).zip(b.chunks(16 * S::CHUNK)) {
                    let (mut s0, mut s2, mut sk) = (S::zero(), S::zero(), S::zero());
                    for (x, y) in ac.chunks_exact(24).zip(bc.chunks_exact(16)) {
                        let x0 = _mm512_loadu_si512(x.as_ptr().cast());
                        let x1 = _mm512_loadu_si512(x.as_ptr().add(8).cast());
                        let xs = _mm512_loadu_si512(x.as_ptr().add(16).cast());
                        let y0 = _mm512_loadu_si512(y.as_ptr().cast());
                        let y1 = _mm512_loadu_si512(y.as_ptr().add(8).cast());
                        s0.mac(x0, y0);
                        s2.mac(x1, y1);
                        // xs < p, y₀ + y₁ < 2p: the product is below 2p².
                        sk.mac(xs, _mm512_add_epi64(y0, y1));
                    }
                    let (s0, s2, sk) = (s0.reduce(&c, pv), s2.reduce(&c, pv), sk.reduce(&c, pv));
                    r0 = add_mod(r0, s0, pv);
                    r2 = add_mod(r2, s2, pv);
                    r1 = add_mod(r1, sub_mod(sub_mod(sk, s0, pv), s2, pv), pv);
                }
                let at = tile * 8;
                _mm512_storeu_si512(o0[at..at + 8].as_mut_ptr().cast(), r0);
                _mm512_storeu_si512(o1[at..at + 8].as_mut_ptr().cast(), r1);
                _mm512_storeu_si512(o2[at..at + 8].as_mut_ptr().cast(), r2);
            }
        }
    }

    /// One limb of the direct form's accumulation (see `FusedPlan::accumulate`, whose
    /// words these are) for a prime below 2⁵⁰: per feature j the rows (q₀, q₁, g₀, g₁) of
    /// this limb and the weight w̃ⱼ mod p as a 52-bit Shoup pair; writes Σw̃a², 2·Σw̃ab and
    /// Σw̃b² with a = q₀ − g₀, b = q₁ − g₁, fully reduced.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, DQ and IFMA; p < 2⁵⁰; every row and `out` slice of one
    /// length n, a multiple of 8; words below p; as many weights as rows.
    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub unsafe fn accumulate_limb52(
        p: u64,
        weights: &[(u64, u64)],
        rows: &[[&[u64]; 4]],
        out: [&mut [u64]; 3],
    ) {
        // SAFETY: the features are enabled here; the shapes are the caller's promise.
        unsafe { accumulate_limb_with::<Acc52, Shoup52>(p, weights, rows, out) }
    }

    /// [`accumulate_limb52`] for a prime below 2⁵⁶ on AVX-512F/DQ alone (the 28-bit split
    /// of [`Acc28`], 64-bit Shoup weights); the same words.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and DQ; p < 2⁵⁶; shapes as for [`accumulate_limb52`], the
    /// weights with 64-bit Shoup quotients.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn accumulate_limb_split(
        p: u64,
        weights: &[(u64, u64)],
        rows: &[[&[u64]; 4]],
        out: [&mut [u64]; 3],
    ) {
        // SAFETY: as for `accumulate_limb52`, without IFMA (Acc28 and Shoup64 need none).
        unsafe { accumulate_limb_with::<Acc28, Shoup64>(p, weights, rows, out) }
    }

    /// The direct accumulation's body over any [`Sums`] and weight product [`LazyMul`]:
    /// per 8 coefficients a = q₀ − g₀, b = q₁ − g₁, the weighted w̃a and w̃b below 2p, and
    /// the sums of w̃a·a, w̃a·b, w̃b·b reduced every `S::CHUNK` features.
    #[inline(always)]
    unsafe fn accumulate_limb_with<S: Sums, M: LazyMul>(
        p: u64,
        weights: &[(u64, u64)],
        rows: &[[&[u64]; 4]],
        out: [&mut [u64]; 3],
    ) {
        // SAFETY (whole body): the callers enable what S and M need; `at + 8 ≤ n` for
        // every row and output (sliced, so checked).
        unsafe {
            let pv = _mm512_set1_epi64(p as i64);
            let c = S::constants(p);
            let [o0, o1, o2] = out;
            for at in (0..o0.len()).step_by(8) {
                let (mut r0, mut r1, mut r2) = (
                    _mm512_setzero_si512(),
                    _mm512_setzero_si512(),
                    _mm512_setzero_si512(),
                );
                for (wc, rc) in weights.chunks(S::CHUNK).zip(rows.chunks(S::CHUNK)) {
                    let (mut s0, mut s1, mut s2) = (S::zero(), S::zero(), S::zero());
                    for (&(w, ws), [q0, q1, g0, g1]) in wc.iter().zip(rc) {
                        let w = Twiddles::broadcast(w, ws);
                        let load =
                            |row: &[u64]| _mm512_loadu_si512(row[at..at + 8].as_ptr().cast());
                        let a = sub_mod(load(q0), load(g0), pv);
                        let b = sub_mod(load(q1), load(g1), pv);
                        // a, b < p; the weighted ones below 2p: each product below 2p².
                        let aw = M::mul(a, &w, pv);
                        let bw = M::mul(b, &w, pv);
                        s0.mac(a, aw);
                        s1.mac(b, aw);
                        s2.mac(b, bw);
                    }
                    r0 = add_mod(r0, s0.reduce(&c, pv), pv);
                    r1 = add_mod(r1, s1.reduce(&c, pv), pv);
                    r2 = add_mod(r2, s2.reduce(&c, pv), pv);
                }
                _mm512_storeu_si512(o0[at..at + 8].as_mut_ptr().cast(), r0);
                _mm512_storeu_si512(o1[at..at + 8].as_mut_ptr().cast(), add_mod(r1, r1, pv));
                _mm512_storeu_si512(o2[at..at + 8].as_mut_ptr().cast(), r2);
            }
        }
    }

    /// Features per 28-bit-split accumulation before a reduction (see [`Acc28`]).
    const SPLIT_CHUNK: usize = 16;

    /// Lane-wise Σ x·y for x < 2⁵⁶ and y < 2⁵⁷ without a 64×64-bit multiply: both split
    /// into 28-bit halves, four 32×32-bit products (`vpmuludq`) in three column sums. Over
    /// [`SPLIT_CHUNK`] products ll < 2⁶⁰, mid < 2⁶², hh < 2⁶¹: no overflow.
    #[derive(Clone, Copy)]
    struct Acc28 {
        ll: __m512i,
        mid: __m512i,
        hh: __m512i,
    }

    /// 2⁵⁶, 2²⁸ and 1 mod p as Shoup constants: what `Acc28`'s reduction multiplies by.
    pub struct Split28 {
        c56: Twiddles,
        c28: Twiddles,
        one: Twiddles,
    }

    impl Sums for Acc28 {
        const CHUNK: usize = SPLIT_CHUNK;
        type Constants = Split28;

        #[inline(always)]
        unsafe fn constants(p: u64) -> Split28 {
            let shoup = |w: u64| (((w as u128) << 64) / p as u128) as u64;
            let c = |e: u32| ((1u128 << e) % p as u128) as u64;
            let (c56, c28, one) = (c(56), c(28), 1 % p);
            // SAFETY: AVX-512F (the callers').
            unsafe {
                Split28 {
                    c56: Twiddles::broadcast(c56, shoup(c56)),
                    c28: Twiddles::broadcast(c28, shoup(c28)),
                    one: Twiddles::broadcast(one, shoup(one)),
                }
            }
        }

        #[inline(always)]
        unsafe fn zero() -> Self {
            // SAFETY: AVX-512F (the callers').
            unsafe {
                Self {
                    ll: _mm512_setzero_si512(),
                    mid: _mm512_setzero_si512(),
                    hh: _mm512_setzero_si512(),
                }
            }
        }

        /// For x < 2⁵⁶ and y < 2⁵⁷.
        #[inline(always)]
        unsafe fn mac(&mut self, x: __m512i, y: __m512i) {
            // SAFETY: AVX-512F (the callers').
            unsafe {
                let m = _mm512_set1_epi64((1 << 28) - 1);
                let (xl, xh) = (_mm512_and_si512(x, m), _mm512_srli_epi64::<28>(x));
                let (yl, yh) = (_mm512_and_si512(y, m), _mm512_srli_epi64::<28>(y));
                self.ll = _mm512_add_epi64(self.ll, _mm512_mul_epu32(xl, yl));
                self.mid = _mm512_add_epi64(
                    self.mid,
                    _mm512_add_epi64(_mm512_mul_epu32(xl, yh), _mm512_mul_epu32(xh, yl)),
                );
                self.hh = _mm512_add_epi64(self.hh, _mm512_mul_epu32(xh, yh));
            }
        }

        /// hh·2⁵⁶ + mid·2²⁸ + ll mod p.
        #[inline(always)]
        unsafe fn reduce(self, c: &Split28, p: __m512i) -> __m512i {
            // SAFETY: AVX-512F and DQ (the callers'); Shoup's product takes any word.
            unsafe {
                let high = add_mod(
                    mul_full(self.hh, &c.c56, p),
                    mul_full(self.mid, &c.c28, p),
                    p,
                );
                add_mod(high, mul_full(self.ll, &c.one, p), p)
            }
        }
    }

    /// dst ← (dst + src) mod p lane-wise, for words below p.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; both slices of one length, a multiple of 8.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add_assign_mod(dst: &mut [u64], src: &[u64], p: u64) {
        let pv = _mm512_set1_epi64(p as i64);
        for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(8)) {
            // SAFETY: 8 words each; unaligned.
            unsafe {
                let x = _mm512_loadu_si512(d.as_ptr().cast());
                let y = _mm512_loadu_si512(s.as_ptr().cast());
                _mm512_storeu_si512(d.as_mut_ptr().cast(), add_mod(x, y, pv));
            }
        }
    }

    /// d₀ = c·x₀, d₁ = c·x₁ and d₂ = d₀ + d₁, all mod p and reduced, lane-wise (the
    /// expanded form's scaled query operand).
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512DQ; all slices of one length, a multiple of 8.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub unsafe fn scale_pair(
        x0: &[u64],
        x1: &[u64],
        c: u64,
        c_shoup: u64,
        p: u64,
        out: [&mut [u64]; 3],
    ) {
        let cv = _mm512_set1_epi64(c as i64);
        let cs = _mm512_set1_epi64(c_shoup as i64);
        let cs_hi = _mm512_set1_epi64((c_shoup >> 32) as i64);
        let pv = _mm512_set1_epi64(p as i64);
        let [d0, d1, d2] = out;
        for i in (0..x0.len()).step_by(8) {
            // SAFETY: i + 8 ≤ len for every slice (same lengths, multiples of 8).
            unsafe {
                let a = _mm512_loadu_si512(x0.as_ptr().add(i).cast());
                let b = _mm512_loadu_si512(x1.as_ptr().add(i).cast());
                let a = reduce_once(mul_shoup_lazy(a, cv, cs, cs_hi, pv), pv);
                let b = reduce_once(mul_shoup_lazy(b, cv, cs, cs_hi, pv), pv);
                _mm512_storeu_si512(d0.as_mut_ptr().add(i).cast(), a);
                _mm512_storeu_si512(d1.as_mut_ptr().add(i).cast(), b);
                _mm512_storeu_si512(
                    d2.as_mut_ptr().add(i).cast(),
                    reduce_once(_mm512_add_epi64(a, b), pv),
                );
            }
        }
    }

    /// a ← a·c mod p (Shoup, fully reduced), lane-wise.
    #[inline(always)]
    unsafe fn scale_with<M: LazyMul>(a: &mut [u64], c: u64, c_shoup: u64, p: u64) {
        // SAFETY (whole body): the callers enable AVX-512F/DQ and what M needs; 8-word
        // chunks, unaligned.
        unsafe {
            let tw = Twiddles::broadcast(c, c_shoup);
            let pv = _mm512_set1_epi64(p as i64);
            for x8 in a.chunks_exact_mut(8) {
                let x = _mm512_loadu_si512(x8.as_ptr().cast());
                let r = reduce_once(M::mul(x, &tw, pv), pv);
                _mm512_storeu_si512(x8.as_mut_ptr().cast(), r);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::*;

/// True when arithmetic modulo `p` runs on the IFMA kernels here: p < 2⁵⁰ and [`ifma`].
pub(crate) fn ifma_prime(p: u64) -> bool {
    p < 1 << 50 && ifma()
}

/// True when arithmetic modulo `p` runs on the 28-bit-split AVX-512 kernels here (when
/// not on IFMA): p < 2⁵⁶ and [`avx512`].
pub(crate) fn split_prime(p: u64) -> bool {
    p < 1 << 56 && avx512()
}

/// True when, besides [`avx512`], the CPU has AVX-512 IFMA (52-bit multiply-add) and
/// `TOUCHSTONE_NO_IFMA` is not set (to measure or test the 64-bit path on such a CPU).
pub(crate) fn ifma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            avx512()
                && std::env::var_os("TOUCHSTONE_NO_IFMA").is_none()
                && std::is_x86_feature_detected!("avx512ifma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

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
