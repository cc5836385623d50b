//! Regev's LWE public-key encryption, with key pairs derived from a 32-byte seed.
//!
//! Secret s ∈ Z_q^n uniform; public key (A, b = A·s + e) with A ∈ Z_q^{m×n} uniform and
//! e a rounded Gaussian of standard deviation σ (cut at 10σ). A bit μ is encrypted with a
//! random subset r of the m rows as (Σ_{i∈r} Aᵢ, Σ_{i∈r} bᵢ + μ·⌊q/2⌋) and decrypted by
//! whether c − ⟨a, s⟩ is nearer q/2 than 0.
//!
//! Everything comes from the seed (HMAC-SHA256 with distinct labels → ChaCha20 streams):
//! A from a public `a_seed`, s and e from a private one. So the public key is stored as
//! `a_seed` and b (A is re-expanded, as Kyber does), and a recovered seed is checked by
//! regenerating the public key and comparing. [`PublicKey::check_secret`] checks a bare
//! secret vector instead: b − A·s must be small in every row.
//!
//! Default parameters ([`LweParams::default`]): Regev's recipe at n = 256 — q the
//! smallest prime ≥ n² (65537, inside Regev's [n², 2n²]), m = ⌈1.1·(n+1)·log₂q⌉ = 4524,
//! σ = 16 so that αq = σ√(2π) ≈ 40 > 2√n = 32 (Regev's reduction condition). The summed
//! error of a ciphertext has standard deviation ≤ σ√m ≈ 1076 against the q/4 = 16384 a
//! bit can absorb: over 15 standard deviations, so decryption never fails in practice.
//! These are textbook parameters, not a vetted security level: plain (unstructured) LWE
//! at n = 256 is commonly estimated well below 128-bit security; [`LweParams::regev`]
//! builds larger sets (n = 512 gives q = 262147, m = 10158).

use crate::descriptor::gaussian_pair;
use crate::error::{BpkemError, Result};
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Errors are cut at this many standard deviations.
pub const ERROR_TAIL: f64 = 10.0;
/// Decryption must keep this many standard deviations of the worst-case summed error
/// below q/4 ([`LweParams::validate`]).
pub const DECRYPTION_MARGIN: f64 = 12.0;
/// Largest matrix accepted (m·n entries), bounding memory at 64 MiB.
pub const MAX_ENTRIES: usize = 1 << 24;

const MAGIC: &[u8; 4] = b"BPLW";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 2 + 4 + 4 + 8 + 32;

/// LWE dimensions, modulus and error width.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LweParams {
    /// Secret dimension n.
    pub n: usize,
    /// Prime modulus q.
    pub q: u32,
    /// Number of samples m (rows of A).
    pub m: usize,
    /// Error standard deviation σ.
    pub sigma: f64,
}

impl Default for LweParams {
    /// n = 256, q = 65537, m = 4524, σ = 16 (see the module documentation).
    fn default() -> Self {
        Self::regev(256, 16.0).expect("the default parameters are valid")
    }
}

impl LweParams {
    /// Regev's recipe: q = smallest prime ≥ n², m = ⌈1.1·(n+1)·log₂q⌉, given σ.
    pub fn regev(n: usize, sigma: f64) -> Result<Self> {
        if !(2..=1024).contains(&n) {
            return Err(BpkemError::params("n", format!("{n} not in 2..=1024")));
        }
        let mut q = (n * n) as u64;
        while !is_prime_u64(q) {
            q += 1;
        }
        let m = (1.1 * (n as f64 + 1.0) * (q as f64).log2()).ceil() as usize;
        let params = Self {
            n,
            q: q as u32,
            m,
            sigma,
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks ranges, that q is prime, and that decryption is correct with a margin:
    /// 12·σ·√m < q/4.
    pub fn validate(&self) -> Result<()> {
        if !(2..=1024).contains(&self.n) {
            return Err(BpkemError::params(
                "n",
                format!("{} not in 2..=1024", self.n),
            ));
        }
        if !(5..1 << 31).contains(&self.q) || !is_prime_u64(self.q as u64) {
            return Err(BpkemError::params(
                "q",
                format!("{} is not a prime in 5..2^31", self.q),
            ));
        }
        if self.m < self.n || self.m > 1 << 16 || self.m * self.n > MAX_ENTRIES {
            return Err(BpkemError::params(
                "m",
                format!("{} not in n..=65536 with m·n ≤ {MAX_ENTRIES}", self.m),
            ));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(BpkemError::params("sigma", format!("{}", self.sigma)));
        }
        if DECRYPTION_MARGIN * self.sigma * (self.m as f64).sqrt() >= self.q as f64 / 4.0 {
            return Err(BpkemError::params(
                "sigma",
                format!("12·σ·√m ≥ q/4: decryption would fail (σ = {})", self.sigma),
            ));
        }
        Ok(())
    }

    /// Regev's condition for his worst-case reduction: αq = σ√(2π) > 2√n.
    pub fn meets_regev_noise_condition(&self) -> bool {
        self.sigma * (2.0 * std::f64::consts::PI).sqrt() > 2.0 * (self.n as f64).sqrt()
    }

    /// Bits per coefficient in serialized form.
    fn coefficient_bits(&self) -> u32 {
        32 - (self.q - 1).leading_zeros()
    }

    /// Serialized public-key size.
    pub fn public_key_bytes(&self) -> usize {
        HEADER_LEN + (self.m * self.coefficient_bits() as usize).div_ceil(8)
    }

    fn error_bound(&self) -> i64 {
        (ERROR_TAIL * self.sigma).ceil() as i64
    }
}

/// s ∈ Z_q^n.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    params_q: u32,
    s: Vec<u32>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey {{ n: {}, .. }}", self.s.len())
    }
}

impl SecretKey {
    /// The secret vector.
    pub fn coefficients(&self) -> &[u32] {
        &self.s
    }

    /// A secret from coefficients (each reduced mod q).
    pub fn from_coefficients(q: u32, s: Vec<u32>) -> Self {
        Self {
            params_q: q,
            s: s.into_iter().map(|v| v % q).collect(),
        }
    }
}

/// (a_seed, b); A is expanded from a_seed at construction and kept for encryption.
#[derive(Clone)]
pub struct PublicKey {
    params: LweParams,
    a_seed: [u8; 32],
    b: Vec<u32>,
    a: Vec<u32>,
}

impl PartialEq for PublicKey {
    /// A is a function of (params, a_seed), so it is not compared.
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params && self.a_seed == other.a_seed && self.b == other.b
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("params", &self.params)
            .field("a_seed", &self.a_seed)
            .field("b.len", &self.b.len())
            .finish()
    }
}

/// A derived key pair.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// The secret vector.
    pub secret: SecretKey,
    /// The public key.
    pub public: PublicKey,
}

/// A ciphertext of one bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    /// Σ_{i∈r} Aᵢ.
    pub a: Vec<u32>,
    /// Σ_{i∈r} bᵢ + μ·⌊q/2⌋.
    pub c: u32,
}

fn label_seed(seed: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn uniform_mod(rng: &mut impl RngCore, q: u32) -> u32 {
    let mask = q.next_power_of_two() - 1;
    loop {
        let v = rng.next_u32() & mask;
        if v < q {
            return v;
        }
    }
}

fn expand_matrix(params: &LweParams, a_seed: &[u8; 32]) -> Vec<u32> {
    let mut rng = ChaCha20Rng::from_seed(*a_seed);
    (0..params.m * params.n)
        .map(|_| uniform_mod(&mut rng, params.q))
        .collect()
}

fn dot_mod(row: &[u32], s: &[u32], q: u32) -> u64 {
    // Each product < 2^62 only if reduced as we go: q < 2^31, so a product < 2^62 and
    // the running sum is reduced every step.
    row.iter()
        .zip(s)
        .fold(0u64, |acc, (&a, &x)| (acc + a as u64 * x as u64) % q as u64)
}

/// The key pair of `seed`: deterministic, so the same seed always gives the same keys.
pub fn keygen(params: &LweParams, seed: &[u8; 32]) -> Result<KeyPair> {
    params.validate()?;
    let a_seed = label_seed(seed, b"bpkem/lwe/v1/A");
    let mut rng = ChaCha20Rng::from_seed(label_seed(seed, b"bpkem/lwe/v1/secret"));
    let q = params.q;
    let s: Vec<u32> = (0..params.n).map(|_| uniform_mod(&mut rng, q)).collect();
    let bound = params.error_bound() as f64;
    let mut errors = Vec::with_capacity(params.m + 1);
    while errors.len() < params.m {
        let (x, y) = gaussian_pair(&mut rng);
        for v in [x, y] {
            let e = (v * params.sigma).round();
            if e.abs() <= bound {
                errors.push(e as i64);
            }
        }
    }
    errors.truncate(params.m);
    let a = expand_matrix(params, &a_seed);
    let b = a
        .chunks_exact(params.n)
        .zip(&errors)
        .map(|(row, &e)| ((dot_mod(row, &s, q) as i64 + e).rem_euclid(q as i64)) as u32)
        .collect();
    Ok(KeyPair {
        secret: SecretKey { params_q: q, s },
        public: PublicKey {
            params: *params,
            a_seed,
            b,
            a,
        },
    })
}

impl PublicKey {
    /// The parameters.
    pub fn params(&self) -> &LweParams {
        &self.params
    }

    /// The seed A is expanded from.
    pub fn a_seed(&self) -> &[u8; 32] {
        &self.a_seed
    }

    /// b = A·s + e.
    pub fn b(&self) -> &[u32] {
        &self.b
    }

    /// Whether `secret` is the secret of this key: every bᵢ − ⟨Aᵢ, s⟩ (centred) is within
    /// the error bound 10σ. A wrong s leaves uniform residues, so it fails on the first
    /// rows almost surely.
    pub fn check_secret(&self, secret: &SecretKey) -> bool {
        let q = self.params.q;
        if secret.s.len() != self.params.n || secret.params_q != q {
            return false;
        }
        let bound = self.params.error_bound();
        self.a
            .chunks_exact(self.params.n)
            .zip(&self.b)
            .all(|(row, &b)| {
                let r = (b as i64 - dot_mod(row, &secret.s, q) as i64).rem_euclid(q as i64);
                let centred = if r > q as i64 / 2 { r - q as i64 } else { r };
                centred.abs() <= bound
            })
    }

    /// Encrypts one bit under a fresh random subset of rows.
    pub fn encrypt(&self, bit: bool, rng: &mut impl Rng) -> Ciphertext {
        let (n, q) = (self.params.n, self.params.q as u64);
        let mut acc = vec![0u64; n];
        let mut c = 0u64;
        for (row, &b) in self.a.chunks_exact(n).zip(&self.b) {
            if rng.random::<bool>() {
                acc.iter_mut().zip(row).for_each(|(x, &v)| *x += v as u64);
                c += b as u64;
            }
        }
        c += if bit { q / 2 } else { 0 };
        Ciphertext {
            a: acc.into_iter().map(|x| (x % q) as u32).collect(),
            c: (c % q) as u32,
        }
    }

    /// `"BPLW" ‖ version ‖ n:u16 ‖ q:u32 ‖ m:u32 ‖ σ:f64 ‖ a_seed ‖ b` (b packed at
    /// ⌈log₂q⌉ bits per value, LSB-first), little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let mut out = Vec::with_capacity(p.public_key_bytes());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(p.n as u16).to_le_bytes());
        out.extend_from_slice(&p.q.to_le_bytes());
        out.extend_from_slice(&(p.m as u32).to_le_bytes());
        out.extend_from_slice(&p.sigma.to_le_bytes());
        out.extend_from_slice(&self.a_seed);
        let width = p.coefficient_bits();
        let mut packed = vec![0u8; (p.m * width as usize).div_ceil(8)];
        for (i, &v) in self.b.iter().enumerate() {
            for bit in 0..width as usize {
                if v >> bit & 1 == 1 {
                    let at = i * width as usize + bit;
                    packed[at / 8] |= 1 << (at % 8);
                }
            }
        }
        out.extend_from_slice(&packed);
        out
    }

    /// Parses [`PublicKey::to_bytes`]: parameters validated, exact length checked before
    /// allocating, every bᵢ < q, padding bits zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| BpkemError::malformed("public key", reason);
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes, header needs {HEADER_LEN}",
                bytes.len()
            )));
        }
        if &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(bad("wrong magic or version".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let params = LweParams {
            n: u16::from_le_bytes([bytes[5], bytes[6]]) as usize,
            q: u32_at(7),
            m: u32_at(11) as usize,
            sigma: f64::from_le_bytes(bytes[15..23].try_into().expect("8")),
        };
        params.validate().map_err(|e| bad(e.to_string()))?;
        if bytes.len() != params.public_key_bytes() {
            return Err(bad(format!(
                "{} bytes, the header announces {}",
                bytes.len(),
                params.public_key_bytes()
            )));
        }
        let a_seed: [u8; 32] = bytes[23..55].try_into().expect("32");
        let packed = &bytes[HEADER_LEN..];
        let width = params.coefficient_bits() as usize;
        let bit = |at: usize| packed[at / 8] >> (at % 8) & 1;
        let mut b = Vec::with_capacity(params.m);
        for i in 0..params.m {
            let v = (0..width).fold(0u32, |acc, j| acc | (bit(i * width + j) as u32) << j);
            if v >= params.q {
                return Err(bad(format!("b[{i}] = {v} ≥ q")));
            }
            b.push(v);
        }
        if (params.m * width..packed.len() * 8).any(|at| bit(at) == 1) {
            return Err(bad("padding bits set".into()));
        }
        let a = expand_matrix(&params, &a_seed);
        Ok(Self {
            params,
            a_seed,
            b,
            a,
        })
    }
}

impl SecretKey {
    /// Decrypts one bit; an error when the ciphertext's length is not n.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<bool> {
        if ct.a.len() != self.s.len() {
            return Err(BpkemError::LengthMismatch(ct.a.len(), self.s.len()));
        }
        let q = self.params_q as u64;
        let v = (ct.c as u64 % q + q - dot_mod(&ct.a, &self.s, self.params_q)) % q;
        Ok(v > q / 4 && v < q - q / 4)
    }
}

fn is_prime_u64(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn default_parameters_follow_regevs_recipe() {
        let p = LweParams::default();
        assert_eq!((p.n, p.q, p.m), (256, 65537, 4524));
        assert!((p.n * p.n..=2 * p.n * p.n).contains(&(p.q as usize)));
        assert!(p.meets_regev_noise_condition());
        let big = LweParams::regev(512, 16.0).unwrap();
        assert_eq!((big.q, big.m), (262147, 10158));
        assert!(
            LweParams::regev(256, 80.0).is_err(),
            "too much noise to decrypt"
        );
        assert!(
            LweParams { q: 65536, ..p }.validate().is_err(),
            "q not prime"
        );
        assert!(LweParams { m: 100, ..p }.validate().is_err(), "m < n");
        assert!(LweParams {
            sigma: f64::NAN,
            ..p
        }
        .validate()
        .is_err());
    }

    #[test]
    fn decryption_is_correct_over_random_bits() {
        let params = LweParams::default();
        let keys = keygen(&params, &[7u8; 32]).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut ones = 0;
        for i in 0..1200 {
            let bit: bool = rng.random();
            ones += bit as usize;
            let ct = keys.public.encrypt(bit, &mut rng);
            assert_eq!(keys.secret.decrypt(&ct).unwrap(), bit, "bit {i}");
        }
        assert!((500..700).contains(&ones), "{ones} ones");
        let short = Ciphertext {
            a: vec![0; 3],
            c: 0,
        };
        assert!(keys.secret.decrypt(&short).is_err());
    }

    #[test]
    fn keys_are_a_function_of_the_seed_and_a_wrong_secret_fails_the_check() {
        let params = LweParams::default();
        let a = keygen(&params, &[1u8; 32]).unwrap();
        let again = keygen(&params, &[1u8; 32]).unwrap();
        let mut other_seed = [1u8; 32];
        other_seed[31] ^= 1;
        let b = keygen(&params, &other_seed).unwrap();
        assert_eq!(a.public, again.public);
        assert_eq!(a.secret, again.secret);
        assert_ne!(a.public, b.public);
        assert!(a.public.check_secret(&a.secret));
        assert!(b.public.check_secret(&b.secret));
        assert!(!a.public.check_secret(&b.secret));
        // A secret off by one in a single coefficient fails too.
        let mut near = a.secret.coefficients().to_vec();
        near[0] = (near[0] + 1) % params.q;
        assert!(!a
            .public
            .check_secret(&SecretKey::from_coefficients(params.q, near)));
        // Decrypting with the wrong secret is a coin flip.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let wrong = (0..200)
            .filter(|_| {
                let ct = a.public.encrypt(true, &mut rng);
                !b.secret.decrypt(&ct).unwrap()
            })
            .count();
        assert!((60..140).contains(&wrong), "{wrong} of 200 wrong");
    }

    #[test]
    fn public_key_bytes_round_trip_and_refuse_hostile_input() {
        let params = LweParams::regev(64, 2.0).unwrap();
        let keys = keygen(&params, &[3u8; 32]).unwrap();
        let bytes = keys.public.to_bytes();
        assert_eq!(bytes.len(), params.public_key_bytes());
        let back = PublicKey::from_bytes(&bytes).unwrap();
        assert_eq!(back, keys.public);
        assert!(back.check_secret(&keys.secret));
        for len in [0, 4, HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1] {
            assert!(
                PublicKey::from_bytes(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(PublicKey::from_bytes(&longer).is_err());
        let mut huge = bytes.clone();
        huge[11..15].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(PublicKey::from_bytes(&huge).is_err(), "m huge");
        let mut not_prime = bytes.clone();
        not_prime[7..11].copy_from_slice(&4096u32.to_le_bytes());
        assert!(PublicKey::from_bytes(&not_prime).is_err());
        // A coefficient ≥ q (q = 4099 needs 13 bits; all-ones is 8191).
        let mut big_value = bytes.clone();
        big_value[HEADER_LEN] = 0xff;
        big_value[HEADER_LEN + 1] |= 0x1f;
        assert!(PublicKey::from_bytes(&big_value).is_err());
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        for _ in 0..500 {
            let garbage: Vec<u8> = (0..rng.random_range(0..120))
                .map(|_| rng.random())
                .collect();
            assert!(PublicKey::from_bytes(&garbage).is_err());
        }
    }
}
