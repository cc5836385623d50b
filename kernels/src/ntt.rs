//! The negacyclic number-theoretic transform of one limb (coefficients mod one prime).
//!
//! Conventions are fhe-math 0.1.1's, so that a polynomial touchstone transforms is the
//! same array of words fhe.rs holds in NTT form (tested bit for bit): the primitive 2n-th
//! root ψ is the first ChaCha8(seed 0) draw r with r^((p−1)/2n) primitive; the forward
//! transform is Cooley–Tukey over ψ^bitrev(k) with Shoup butterflies kept lazily below 4p
//! and leaves its output in bit-reversed order, fully reduced; the inverse is
//! Gentleman–Sande over ψ^−(bitrev(k)+1), then × n⁻¹.

use crate::arith::{reduce_once, Modulus};
use crate::KernelError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Precomputed twiddles for one prime and one size.
#[derive(Clone, Debug)]
pub struct NttTable {
    p: Modulus,
    n: usize,
    /// ψ^bitrev(k) and Shoup quotients, forward order.
    omegas: Vec<u64>,
    omegas_shoup: Vec<u64>,
    /// ψ^−(bitrev(k)+1) and Shoup quotients, inverse order.
    zetas_inv: Vec<u64>,
    zetas_inv_shoup: Vec<u64>,
    n_inv: u64,
    n_inv_shoup: u64,
    psi: u64,
    /// For p < 2⁵⁰: the same twiddles' 52-bit Shoup quotients ⌊w·2⁵²/p⌋ (forward, inverse,
    /// n⁻¹), for the IFMA levels in [`crate::simd`].
    shoup52: Option<Shoup52>,
}

/// 52-bit Shoup quotients of one table's twiddles.
#[derive(Clone, Debug)]
struct Shoup52 {
    omegas: Vec<u64>,
    zetas_inv: Vec<u64>,
    n_inv: u64,
}

/// ⌊w·2⁵²/p⌋ for w < p < 2⁵⁰.
fn shoup52(w: u64, p: u64) -> u64 {
    (((w as u128) << 52) / p as u128) as u64
}

impl NttTable {
    /// Tables for size n (a power of two ≥ 8) and a prime p ≡ 1 (mod 2n) below 2⁶².
    pub fn new(p: u64, n: usize) -> Result<Self, KernelError> {
        let bad = |why: &str| KernelError::Modulus {
            p,
            n,
            why: why.to_string(),
        };
        if n < 8 || !n.is_power_of_two() {
            return Err(bad("the size must be a power of two ≥ 8"));
        }
        let m = Modulus::new(p).ok_or_else(|| bad("the modulus must be below 2^62"))?;
        if p % (2 * n as u64) != 1 || !crate::arith::is_prime(p) {
            return Err(bad("the modulus must be a prime ≡ 1 mod 2n"));
        }
        let psi = primitive_root(&m, n).ok_or_else(|| bad("no primitive 2n-th root found"))?;
        let psi_inv = m.inv(psi).expect("a root of unity is invertible");
        let mut powers = Vec::with_capacity(n);
        let mut powers_inv = Vec::with_capacity(n);
        let (mut x, mut y) = (1u64, psi_inv);
        for _ in 0..n {
            powers.push(x);
            powers_inv.push(y);
            x = m.mul(x, psi);
            y = m.mul(y, psi_inv);
        }
        let bits = n.trailing_zeros();
        let bitrev = |i: usize| i.reverse_bits() >> (usize::BITS - bits);
        let omegas: Vec<u64> = (0..n).map(|i| powers[bitrev(i)]).collect();
        let zetas_inv: Vec<u64> = (0..n).map(|i| powers_inv[bitrev(i)]).collect();
        let n_inv = m.inv(n as u64).expect("n < p is invertible");
        let shoup52 = (p < 1 << 50).then(|| Shoup52 {
            omegas: omegas.iter().map(|&w| shoup52(w, p)).collect(),
            zetas_inv: zetas_inv.iter().map(|&w| shoup52(w, p)).collect(),
            n_inv: shoup52(n_inv, p),
        });
        Ok(Self {
            shoup52,
            omegas_shoup: omegas.iter().map(|&w| m.shoup(w)).collect(),
            zetas_inv_shoup: zetas_inv.iter().map(|&w| m.shoup(w)).collect(),
            omegas,
            zetas_inv,
            n_inv,
            n_inv_shoup: m.shoup(n_inv),
            p: m,
            n,
            psi,
        })
    }

    /// The modulus.
    pub fn modulus(&self) -> &Modulus {
        &self.p
    }

    /// The transform size.
    pub fn size(&self) -> usize {
        self.n
    }

    /// The primitive 2n-th root of unity the transform evaluates at.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// Forward twiddles ψ^bitrev(k) with their Shoup quotients (for device uploads).
    pub fn forward_twiddles(&self) -> (&[u64], &[u64]) {
        (&self.omegas, &self.omegas_shoup)
    }

    /// Inverse twiddles ψ^−(bitrev(k)+1) with their Shoup quotients, and n⁻¹ with its quotient.
    pub fn inverse_twiddles(&self) -> (&[u64], &[u64], u64, u64) {
        (
            &self.zetas_inv,
            &self.zetas_inv_shoup,
            self.n_inv,
            self.n_inv_shoup,
        )
    }

    /// In-place forward transform of n coefficients below p; output bit-reversed, below p.
    /// Runs the AVX-512 levels where the CPU has them (see [`crate::simd`]); the words
    /// are the same as [`NttTable::forward_scalar`]'s.
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        #[cfg(target_arch = "x86_64")]
        if self.n >= 16 && crate::simd::avx512() {
            let p = self.p.value();
            match &self.shoup52 {
                // SAFETY: AVX-512F, DQ and IFMA are present (checked by `ifma`), p < 2⁵⁰
                // (the table exists), n is a multiple of 16.
                Some(s) if crate::simd::ifma() => unsafe {
                    crate::simd::forward52(a, &self.omegas, &s.omegas, p)
                },
                // SAFETY: AVX-512F and DQ are present (checked by `avx512`); n is a
                // multiple of 16. The three innermost levels run there too, with permutes.
                _ => unsafe { crate::simd::forward(a, &self.omegas, &self.omegas_shoup, p) },
            }
            return;
        }
        self.forward_scalar(a);
    }

    /// [`NttTable::forward`] in portable scalar code (what runs without AVX-512).
    pub fn forward_scalar(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        self.forward_levels(a, self.n >> 1, 1);
        let p = self.p.value();
        let two_p = 2 * p;
        for x in a.iter_mut() {
            *x = reduce_once(reduce_once(*x, two_p), p);
        }
    }

    /// Forward levels from half-size `half` down to 1, starting at twiddle `k`.
    fn forward_levels(&self, a: &mut [u64], mut half: usize, mut k: usize) {
        let two_p = 2 * self.p.value();
        while half > 0 {
            for chunk in a.chunks_exact_mut(2 * half) {
                let (w, w_shoup) = (self.omegas[k], self.omegas_shoup[k]);
                k += 1;
                let (left, right) = chunk.split_at_mut(half);
                for (x, y) in left.iter_mut().zip(right.iter_mut()) {
                    // Harvey's butterfly: inputs < 4p, outputs < 4p.
                    let u = reduce_once(*x, two_p);
                    let t = self.p.mul_shoup_lazy(*y, w, w_shoup);
                    *x = u + t;
                    *y = u + two_p - t;
                }
            }
            half >>= 1;
        }
    }

    /// In-place inverse of [`NttTable::forward`]; input below 2p, output below p. Runs
    /// the AVX-512 levels where the CPU has them, with the same words as
    /// [`NttTable::inverse_scalar`].
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        #[cfg(target_arch = "x86_64")]
        if self.n >= 16 && crate::simd::avx512() {
            let p = self.p.value();
            match &self.shoup52 {
                // SAFETY: AVX-512F, DQ and IFMA are present (checked by `ifma`), p < 2⁵⁰
                // (the table exists), n is a multiple of 16.
                Some(s) if crate::simd::ifma() => unsafe {
                    let n_inv = (self.n_inv, s.n_inv);
                    crate::simd::inverse52(a, &self.zetas_inv, &s.zetas_inv, n_inv, p)
                },
                // SAFETY: AVX-512F and DQ are present (checked by `avx512`); n is a
                // multiple of 16.
                _ => unsafe {
                    let n_inv = (self.n_inv, self.n_inv_shoup);
                    crate::simd::inverse(a, &self.zetas_inv, &self.zetas_inv_shoup, n_inv, p)
                },
            }
            return;
        }
        self.inverse_scalar(a);
    }

    /// [`NttTable::inverse`] in portable scalar code (what runs without AVX-512).
    pub fn inverse_scalar(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length");
        self.inverse_levels(a, self.n);
        for x in a.iter_mut() {
            *x = self.p.mul_shoup(*x, self.n_inv, self.n_inv_shoup);
        }
    }

    /// Inverse levels from half-size 1 while below `end_half`; the next twiddle index.
    fn inverse_levels(&self, a: &mut [u64], end_half: usize) -> usize {
        let two_p = 2 * self.p.value();
        let mut half = 1;
        let mut k = 0;
        while half < end_half.min(self.n) {
            for chunk in a.chunks_exact_mut(2 * half) {
                let (z, z_shoup) = (self.zetas_inv[k], self.zetas_inv_shoup[k]);
                k += 1;
                let (left, right) = chunk.split_at_mut(half);
                for (x, y) in left.iter_mut().zip(right.iter_mut()) {
                    let u = *x;
                    *x = reduce_once(u + *y, two_p);
                    *y = self.p.mul_shoup_lazy(u + two_p - *y, z, z_shoup);
                }
            }
            half <<= 1;
        }
        k
    }
}

/// fhe-math's choice of ψ: draws from ChaCha8 seeded with 0, raised to (p−1)/2n, until one
/// is a primitive 2n-th root.
fn primitive_root(p: &Modulus, n: usize) -> Option<u64> {
    let lambda = (p.value() - 1) / (2 * n as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..100).find_map(|_| {
        let root = p.pow(rng.random_range(0..p.value()), lambda);
        let primitive = p.pow(root, 2 * n as u64) == 1 && p.pow(root, n as u64) != 1;
        primitive.then_some(root)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schoolbook negacyclic product, the definition the transform must diagonalise.
    fn negacyclic(a: &[u64], b: &[u64], p: &Modulus) -> Vec<u64> {
        let n = a.len();
        let mut c = vec![0u64; n];
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                let prod = p.mul(x, y);
                let k = i + j;
                if k < n {
                    c[k] = p.add(c[k], prod);
                } else {
                    c[k - n] = p.sub(c[k - n], prod);
                }
            }
        }
        c
    }

    #[test]
    fn pointwise_products_are_negacyclic_convolutions() {
        let p = crate::arith::ntt_primes(40, 64, 1, &[]).unwrap()[0];
        let table = NttTable::new(p, 64).unwrap();
        let m = *table.modulus();
        let a: Vec<u64> = (0..64u64).map(|i| (i * 7919 + 13) % p).collect();
        let b: Vec<u64> = (0..64u64).map(|i| (i * i * 31 + 5) % p).collect();
        let expected = negacyclic(&a, &b, &m);
        let (mut fa, mut fb) = (a.clone(), b.clone());
        table.forward(&mut fa);
        table.forward(&mut fb);
        let mut c: Vec<u64> = fa.iter().zip(&fb).map(|(x, y)| m.mul(*x, *y)).collect();
        table.inverse(&mut c);
        assert_eq!(c, expected);
    }

    /// The AVX-512 levels give the scalar code's words, forward and inverse, for every
    /// size and for primes from 20 to 62 bits (inputs below p, and lazily up to 2p for the
    /// inverse, as the fused engine hands it).
    #[test]
    fn simd_and_scalar_transforms_give_the_same_words() {
        if !crate::simd::avx512() {
            eprintln!("skipped: this CPU has no AVX-512F/DQ (the scalar path is the only one)");
            return;
        }
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for n in [16usize, 32, 64, 1024, 4096, 8192, 16384] {
            // 45 and 50 bits run the IFMA levels where the CPU has them.
            for bits in [20u32, 40, 45, 50, 55, 60, 62] {
                let Some(primes) = crate::arith::ntt_primes(bits, n, 2, &[]) else {
                    continue;
                };
                for p in primes {
                    let table = NttTable::new(p, n).unwrap();
                    let input: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
                    let (mut fast, mut slow) = (input.clone(), input.clone());
                    table.forward(&mut fast);
                    table.forward_scalar(&mut slow);
                    assert_eq!(fast, slow, "forward n={n} p={p}");
                    let lazy: Vec<u64> = (0..n).map(|_| rng.random_range(0..2 * p)).collect();
                    let (mut fast, mut slow) = (lazy.clone(), lazy.clone());
                    table.inverse(&mut fast);
                    table.inverse_scalar(&mut slow);
                    assert_eq!(fast, slow, "inverse n={n} p={p}");
                }
            }
        }
    }

    #[test]
    fn unsupported_moduli_are_errors() {
        assert!(NttTable::new(97, 6).is_err());
        assert!(NttTable::new(1 << 62, 8).is_err());
        assert!(NttTable::new(241, 8).is_ok()); // 241 = 15·16 + 1 is prime
        assert!(NttTable::new(241, 16).is_err()); // but 241 ≢ 1 mod 32
        assert!(NttTable::new(273, 8).is_err()); // 273 = 17·16 + 1 = 3·7·13
    }
}
