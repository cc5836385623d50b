//! Seeded randomness shared by the schemes.
//!
//! The hashing functions of IoM and the projections of [`crate::ndb::Binariser`] must be
//! the same every time a token (or seed) is used — at enrolment and at every later query,
//! possibly years and library upgrades apart. So the stream is fixed here rather than
//! borrowed from a library whose sampling algorithms may change between versions:
//! ChaCha20 keyed by SHA-256 of a domain label and the parameters, Box–Muller for
//! Gaussians, and Lemire's multiply-and-reject for bounded integers. ChaCha20's output for
//! a given key is fixed by its specification.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// A ChaCha20 stream keyed by SHA-256(domain ‖ each word in little-endian). The domain
/// separates the schemes, so one token used by two schemes draws unrelated functions.
pub(crate) fn stream(domain: &str, words: &[u64]) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update((domain.len() as u64).to_le_bytes());
    h.update(domain.as_bytes());
    for w in words {
        h.update(w.to_le_bytes());
    }
    ChaCha20Rng::from_seed(h.finalize().into())
}

/// Uniform in (0, 1]: 53 random bits, shifted off zero so that `ln` is finite.
pub(crate) fn unit_open0<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in [0, 1).
pub(crate) fn unit<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in 0..n (n ≥ 1), unbiased (Lemire 2019, multiply and reject).
pub(crate) fn below<R: RngCore + ?Sized>(rng: &mut R, n: u32) -> u32 {
    debug_assert!(n > 0);
    let n64 = u64::from(n);
    let threshold = (u64::from(u32::MAX) + 1 - n64) % n64;
    loop {
        let m = u64::from(rng.next_u32()) * n64;
        if (m & 0xffff_ffff) >= threshold {
            return (m >> 32) as u32;
        }
    }
}

/// Standard normal variates by Box–Muller, both outputs of each pair used.
pub(crate) struct Gaussian<R> {
    rng: R,
    spare: Option<f64>,
}

impl<R: RngCore> Gaussian<R> {
    pub(crate) fn new(rng: R) -> Self {
        Gaussian { rng, spare: None }
    }

    pub(crate) fn next(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let radius = (-2.0 * unit_open0(&mut self.rng).ln()).sqrt();
        let angle = std::f64::consts::TAU * unit(&mut self.rng);
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

/// The first `w` entries of a uniformly random permutation of 0..d (partial
/// Fisher–Yates), appended to `out`. `scratch` is reset to the identity first.
pub(crate) fn permutation_prefix<R: RngCore + ?Sized>(
    rng: &mut R,
    d: usize,
    w: usize,
    scratch: &mut Vec<u32>,
    out: &mut Vec<u32>,
) {
    scratch.clear();
    scratch.extend(0..d as u32);
    for t in 0..w {
        let j = t + below(rng, (d - t) as u32) as usize;
        scratch.swap(t, j);
        out.push(scratch[t]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_moments() {
        let mut g = Gaussian::new(stream("test", &[1]));
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = g.next();
            s += z;
            s2 += z * z;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn below_is_uniform_and_in_range() {
        let mut rng = stream("test", &[2]);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[below(&mut rng, 7) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn streams_differ_by_domain_and_words() {
        let a = stream("a", &[1]).next_u64();
        assert_eq!(a, stream("a", &[1]).next_u64());
        assert_ne!(a, stream("b", &[1]).next_u64());
        assert_ne!(a, stream("a", &[2]).next_u64());
    }
}
