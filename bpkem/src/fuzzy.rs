//! The sample-then-lock reusable fuzzy extractor (Canetti, Fuller, Paneth, Reyzin, Smith).
//!
//! `Gen(w)` draws a random key R and L random k-subsets J₁…J_L of the n positions. Locker
//! i stores Jᵢ, a fresh nonce and
//!
//! ```text
//! sealedᵢ = (R ‖ tag(R, nonceᵢ)) ⊕ pad(nonceᵢ, w|Jᵢ)
//! pad     = HMAC-SHA256(key = nonceᵢ, "bpkem/locker/v1" ‖ block ‖ w|Jᵢ), block = 0, 1, …
//! tag     = HMAC-SHA256(key = R, "bpkem/locker-tag/v1" ‖ nonceᵢ)[..16]
//! ```
//!
//! `Rep(w′)` recomputes each pad from w′|Jᵢ and accepts the first locker whose decrypted
//! tag matches its decrypted key. A locker opens exactly when w′ agrees with w on Jᵢ, so
//! with t differing positions one locker opens with probability p = C(n−t, k)/C(n, k)
//! and Rep fails with probability (1 − p)^L (the subsets are independent). A wrong pad
//! passes the 128-bit tag with probability 2⁻¹²⁸ per locker, so Rep never returns a key
//! other than R in practice; binding the tag to R (rather than the classic R ‖ 0ˢ) also
//! means flipping bits of a stored locker cannot steer Rep to a related key.
//!
//! **Security depends on k.** A locker hides R behind only the k bits w|Jᵢ: whoever holds
//! the helper data can try all 2ᵏ values for one locker offline (the tag says when one is
//! right). At the paper's k = 16 that is 65,536 trials of three HMAC calls — well under a
//! second — so the helper data must be treated as secret, not published (the paper puts
//! it on a blockchain); a test in this module recovers R this way. Real security needs
//! the per-locker entropy of the *descriptor's* k bits to be large (k of 60–80 bits with
//! nearly independent bits), which in turn needs descriptors with far smaller errors
//! than ours.

use crate::descriptor::Bits;
use crate::error::{BpkemError, Result};
use hmac::{Hmac, Mac};
use rand::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of each locker's nonce.
pub const NONCE_LEN: usize = 16;
/// Bytes of each locker's check tag.
pub const TAG_LEN: usize = 16;
/// Longest descriptor accepted (indices are stored as u16).
pub const MAX_N: usize = 4096;
/// Most lockers accepted.
pub const MAX_LOCKERS: usize = 1 << 16;
/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 64;

const MAGIC: &[u8; 4] = b"BPFE";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 2 + 2 + 4 + 2;

/// The extractor's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuzzyParams {
    /// Descriptor length n.
    pub n: usize,
    /// Positions per locker k.
    pub k: usize,
    /// Number of lockers L.
    pub lockers: usize,
    /// Key length in bytes.
    pub key_len: usize,
}

impl Default for FuzzyParams {
    /// n = 128, k = 16, L = 100, 32-byte key: the paper's n, its k (as its δ figures
    /// show, see [`paper_delta`]) and its larger L; at t = 10 the exact failure
    /// probability is 3.4·10⁻¹³.
    fn default() -> Self {
        Self {
            n: 128,
            k: 16,
            lockers: 100,
            key_len: 32,
        }
    }
}

impl FuzzyParams {
    /// The paper's experiment: L = 20 (exact failure 3.2·10⁻³ at t = 10).
    pub fn paper() -> Self {
        Self {
            lockers: 20,
            ..Self::default()
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_N).contains(&self.n) {
            return Err(BpkemError::params(
                "n",
                format!("{} not in 1..={MAX_N}", self.n),
            ));
        }
        if !(1..=self.n).contains(&self.k) {
            return Err(BpkemError::params(
                "k",
                format!("{} not in 1..={}", self.k, self.n),
            ));
        }
        if !(1..=MAX_LOCKERS).contains(&self.lockers) {
            return Err(BpkemError::params(
                "lockers",
                format!("{} not in 1..={MAX_LOCKERS}", self.lockers),
            ));
        }
        if !(1..=MAX_KEY_LEN).contains(&self.key_len) {
            return Err(BpkemError::params(
                "key_len",
                format!("{} not in 1..={MAX_KEY_LEN}", self.key_len),
            ));
        }
        Ok(())
    }

    fn sealed_len(&self) -> usize {
        self.key_len + TAG_LEN
    }

    fn locker_bytes(&self) -> usize {
        2 * self.k + NONCE_LEN + self.sealed_len()
    }

    /// Serialized size of helper data with these parameters.
    pub fn helper_bytes(&self) -> usize {
        HEADER_LEN + self.lockers * self.locker_bytes()
    }
}

/// One digital locker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locker {
    /// The sampled positions, strictly increasing, each < n.
    pub indices: Vec<u16>,
    /// Per-locker nonce (the HMAC key of the pad).
    pub nonce: [u8; NONCE_LEN],
    /// (R ‖ tag) ⊕ pad, `key_len + TAG_LEN` bytes.
    pub sealed: Vec<u8>,
}

/// Public helper data P: the parameters and the lockers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperData {
    params: FuzzyParams,
    lockers: Vec<Locker>,
}

impl HelperData {
    /// The parameters it was made with.
    pub fn params(&self) -> &FuzzyParams {
        &self.params
    }

    /// The lockers.
    pub fn lockers(&self) -> &[Locker] {
        &self.lockers
    }

    /// `"BPFE" ‖ version ‖ n:u16 ‖ k:u16 ‖ L:u32 ‖ key_len:u16 ‖ L × (k × u16 index ‖
    /// nonce ‖ sealed)`, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = &self.params;
        let mut out = Vec::with_capacity(p.helper_bytes());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(p.n as u16).to_le_bytes());
        out.extend_from_slice(&(p.k as u16).to_le_bytes());
        out.extend_from_slice(&(p.lockers as u32).to_le_bytes());
        out.extend_from_slice(&(p.key_len as u16).to_le_bytes());
        for l in &self.lockers {
            for i in &l.indices {
                out.extend_from_slice(&i.to_le_bytes());
            }
            out.extend_from_slice(&l.nonce);
            out.extend_from_slice(&l.sealed);
        }
        out
    }

    /// Parses [`HelperData::to_bytes`]. The header's parameters are validated and the
    /// exact total length computed (checked arithmetic) and compared with the input
    /// before anything is allocated; indices must be strictly increasing and < n.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| BpkemError::malformed("helper data", reason);
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes, header needs {HEADER_LEN}",
                bytes.len()
            )));
        }
        if &bytes[..4] != MAGIC {
            return Err(bad("wrong magic".into()));
        }
        if bytes[4] != VERSION {
            return Err(bad(format!("version {}", bytes[4])));
        }
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
        let params = FuzzyParams {
            n: u16_at(5),
            k: u16_at(7),
            lockers: u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]) as usize,
            key_len: u16_at(13),
        };
        params.validate().map_err(|e| bad(e.to_string()))?;
        let expected = params
            .locker_bytes()
            .checked_mul(params.lockers)
            .and_then(|b| b.checked_add(HEADER_LEN))
            .ok_or_else(|| bad("size overflows".into()))?;
        if bytes.len() != expected {
            return Err(bad(format!(
                "{} bytes, the header announces {expected}",
                bytes.len()
            )));
        }
        let mut lockers = Vec::with_capacity(params.lockers);
        for chunk in bytes[HEADER_LEN..].chunks_exact(params.locker_bytes()) {
            let (index_bytes, rest) = chunk.split_at(2 * params.k);
            let indices: Vec<u16> = index_bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect();
            if indices.iter().any(|&i| i as usize >= params.n)
                || indices.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(bad(
                    "locker indices not strictly increasing positions < n".into()
                ));
            }
            let (nonce, sealed) = rest.split_at(NONCE_LEN);
            lockers.push(Locker {
                indices,
                nonce: nonce.try_into().expect("split at NONCE_LEN"),
                sealed: sealed.to_vec(),
            });
        }
        Ok(Self { params, lockers })
    }
}

fn pad(nonce: &[u8; NONCE_LEN], subset_bits: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.next_multiple_of(32));
    let mut block = 0u8;
    while out.len() < len {
        let mut mac = HmacSha256::new_from_slice(nonce).expect("HMAC takes any key length");
        mac.update(b"bpkem/locker/v1");
        mac.update(&[block]);
        mac.update(subset_bits);
        out.extend_from_slice(&mac.finalize().into_bytes());
        block += 1;
    }
    out.truncate(len);
    out
}

fn tag(key: &[u8], nonce: &[u8; NONCE_LEN]) -> [u8; TAG_LEN] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"bpkem/locker-tag/v1");
    mac.update(nonce);
    let full = mac.finalize().into_bytes();
    full[..TAG_LEN].try_into().expect("SHA-256 is 32 bytes")
}

/// Equality without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Gen: a fresh random key R and helper data locking it under L subsets of `w`.
pub fn gen(
    params: &FuzzyParams,
    w: &Bits,
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, HelperData)> {
    params.validate()?;
    if w.len() != params.n {
        return Err(BpkemError::LengthMismatch(w.len(), params.n));
    }
    let mut key = vec![0u8; params.key_len];
    rng.fill_bytes(&mut key);
    let mut lockers = Vec::with_capacity(params.lockers);
    for _ in 0..params.lockers {
        let mut indices: Vec<u16> = rand::seq::index::sample(&mut *rng, params.n, params.k)
            .into_iter()
            .map(|i| i as u16)
            .collect();
        indices.sort_unstable();
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut sealed = key.clone();
        sealed.extend_from_slice(&tag(&key, &nonce));
        let mask = pad(&nonce, &w.gather(&indices), params.sealed_len());
        sealed.iter_mut().zip(&mask).for_each(|(s, m)| *s ^= m);
        lockers.push(Locker {
            indices,
            nonce,
            sealed,
        });
    }
    Ok((
        key,
        HelperData {
            params: *params,
            lockers,
        },
    ))
}

/// Rep: the key R of the first locker `w` opens, or [`BpkemError::NoLockerOpened`].
pub fn rep(helper: &HelperData, w: &Bits) -> Result<Vec<u8>> {
    let p = &helper.params;
    if w.len() != p.n {
        return Err(BpkemError::LengthMismatch(w.len(), p.n));
    }
    for locker in &helper.lockers {
        let mask = pad(&locker.nonce, &w.gather(&locker.indices), p.sealed_len());
        let open: Vec<u8> = locker
            .sealed
            .iter()
            .zip(&mask)
            .map(|(s, m)| s ^ m)
            .collect();
        let (key, check) = open.split_at(p.key_len);
        if constant_time_eq(check, &tag(key, &locker.nonce)) {
            return Ok(key.to_vec());
        }
    }
    Err(BpkemError::NoLockerOpened)
}

/// p = C(n−t, k) / C(n, k): the probability that a uniformly random k-subset avoids t
/// given positions, i.e. that one locker opens at Hamming distance t.
pub fn locker_survival(n: usize, k: usize, t: usize) -> f64 {
    if k > n || t > n || k > n - t {
        return 0.0;
    }
    (0..k)
        .map(|i| (n - t - i) as f64 / (n - i) as f64)
        .product()
}

/// (1 − p)^L: the exact probability that Rep fails at Hamming distance t.
pub fn failure_probability(n: usize, k: usize, t: usize, lockers: usize) -> f64 {
    let p = locker_survival(n, k, t);
    if p >= 1.0 {
        return 0.0;
    }
    (lockers as f64 * (-p).ln_1p()).exp()
}

/// The δ the paper reports: (1 − (1 − t/(n−k))^k)^L, Canetti et al.'s lower bound
/// (1 − t/(n−k))^k on one locker's survival in place of the exact p. With n = 128,
/// t = 10, k = 16 it gives 9.773·10⁻¹² for L = 100 (the paper's figure) and
/// 6.281·10⁻³ for L = 20 (the paper prints 6.28e−4, a factor of ten off).
pub fn paper_delta(n: usize, k: usize, t: usize, lockers: usize) -> f64 {
    if k >= n {
        return if t == 0 { 0.0 } else { 1.0 };
    }
    let bound = (1.0 - t as f64 / (n - k) as f64).max(0.0).powi(k as i32);
    (1.0 - bound).powf(lockers as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::random_bits;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn setup(params: &FuzzyParams, seed: u64) -> (Bits, Vec<u8>, HelperData, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let w = random_bits(params.n, &mut rng);
        let (key, helper) = gen(params, &w, &mut rng).unwrap();
        (w, key, helper, rng)
    }

    /// The attack the module docs describe: from the helper data alone, all 2ᵏ values of
    /// one locker's positions; the tag confirms R. (k = 10 here: 1,024 trials.)
    #[test]
    fn helper_data_alone_gives_r_by_brute_force_at_small_k() {
        let params = FuzzyParams {
            n: 128,
            k: 10,
            lockers: 20,
            key_len: 32,
        };
        let (_, key, helper, _) = setup(&params, 77);
        let first = &helper.lockers()[0];
        let mut found = None;
        for v in 0u32..1 << params.k {
            let mut guess = Bits::zeros(params.n);
            for (bit, &i) in first.indices.iter().enumerate() {
                guess.set(i as usize, v >> bit & 1 == 1);
            }
            let one = HelperData {
                params,
                lockers: vec![first.clone()],
            };
            if let Ok(r) = rep(&one, &guess) {
                found = Some((v, r));
                break;
            }
        }
        let (_, r) = found.expect("one of the 2^k guesses opens the locker");
        assert_eq!(r, key);
    }

    #[test]
    fn rep_recovers_whenever_the_error_avoids_one_lockers_subset() {
        let params = FuzzyParams::default();
        let (w, key, helper, mut rng) = setup(&params, 1);
        assert_eq!(key.len(), 32);
        assert_eq!(rep(&helper, &w).unwrap(), key, "no error");
        for trial in 0..50 {
            // Flip up to 100 bits, all outside one randomly chosen locker's subset.
            let locker = &helper.lockers()[rng.random_range(0..params.lockers)];
            let mut noisy = w.clone();
            let flips = rng.random_range(1..=100);
            let outside: Vec<usize> = (0..params.n)
                .filter(|i| !locker.indices.contains(&(*i as u16)))
                .collect();
            for j in rand::seq::index::sample(&mut rng, outside.len(), flips) {
                noisy.flip(outside[j]);
            }
            assert_eq!(rep(&helper, &noisy).unwrap(), key, "trial {trial}");
        }
        // One flipped bit in every locker's subset: nothing opens.
        let mut noisy = w.clone();
        for locker in helper.lockers() {
            if locker
                .indices
                .iter()
                .all(|&i| noisy.get(i as usize) == w.get(i as usize))
            {
                noisy.flip(locker.indices[0] as usize);
            }
        }
        assert_eq!(rep(&helper, &noisy), Err(BpkemError::NoLockerOpened));
        assert!(matches!(
            rep(&helper, &Bits::zeros(127)),
            Err(BpkemError::LengthMismatch(..))
        ));
    }

    #[test]
    fn rep_never_returns_a_wrong_key() {
        // Small k so that many lockers open at large errors too, and impostors (random
        // descriptors) — every answer must be R or NoLockerOpened.
        let params = FuzzyParams {
            n: 64,
            k: 6,
            lockers: 30,
            key_len: 16,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (mut opened, mut refused) = (0, 0);
        for trial in 0..1500 {
            let w = random_bits(params.n, &mut rng);
            let (key, helper) = gen(&params, &w, &mut rng).unwrap();
            let query = if trial % 3 == 0 {
                random_bits(params.n, &mut rng)
            } else {
                let mut q = w.clone();
                let t = rng.random_range(0..=40);
                for i in rand::seq::index::sample(&mut rng, params.n, t) {
                    q.flip(i);
                }
                q
            };
            match rep(&helper, &query) {
                Ok(k) => {
                    assert_eq!(k, key, "trial {trial}: wrong key");
                    opened += 1;
                }
                Err(BpkemError::NoLockerOpened) => refused += 1,
                Err(e) => panic!("trial {trial}: {e}"),
            }
        }
        assert!(
            opened > 100 && refused > 100,
            "both outcomes exercised: {opened} / {refused}"
        );
    }

    #[test]
    fn a_tampered_locker_does_not_yield_a_related_key() {
        let params = FuzzyParams {
            lockers: 1,
            ..FuzzyParams::default()
        };
        let (w, key, helper, _) = setup(&params, 3);
        for byte in [
            0,
            5,
            params.key_len - 1,
            params.key_len,
            params.key_len + TAG_LEN - 1,
        ] {
            let mut bad = helper.clone();
            bad.lockers[0].sealed[byte] ^= 0x01;
            assert_eq!(
                rep(&bad, &w),
                Err(BpkemError::NoLockerOpened),
                "byte {byte}"
            );
        }
        let mut bad = helper.clone();
        bad.lockers[0].nonce[0] ^= 0x80;
        assert_eq!(rep(&bad, &w), Err(BpkemError::NoLockerOpened));
        assert_eq!(rep(&helper, &w).unwrap(), key);
    }

    #[test]
    fn theory_matches_counting_and_the_papers_figures() {
        // C(8, 3) / C(10, 3) = 56 / 120.
        assert!((locker_survival(10, 3, 2) - 56.0 / 120.0).abs() < 1e-12);
        // Brute force over all 3-subsets of 7 positions avoiding the flipped {0, 1}.
        let (mut avoid, mut total) = (0, 0);
        for a in 0..7 {
            for b in a + 1..7 {
                for c in b + 1..7 {
                    total += 1;
                    if [a, b, c].iter().all(|&x| x >= 2) {
                        avoid += 1;
                    }
                }
            }
        }
        assert!((locker_survival(7, 3, 2) - avoid as f64 / total as f64).abs() < 1e-12);
        assert_eq!(locker_survival(128, 16, 0), 1.0);
        assert_eq!(locker_survival(20, 15, 10), 0.0);
        assert_eq!(failure_probability(128, 16, 0, 20), 0.0);
        // Exact failure at t = 10 for k = 16.
        let exact20 = failure_probability(128, 16, 10, 20);
        let exact100 = failure_probability(128, 16, 10, 100);
        assert!((exact20 / 3.2153e-3 - 1.0).abs() < 1e-3, "{exact20}");
        assert!((exact100 / 3.4365e-13 - 1.0).abs() < 1e-3, "{exact100}");
        // The paper's δ: 9.773e-12 at L = 100 (as printed), 6.281e-3 at L = 20 (printed
        // as 6.28e-4).
        let paper100 = paper_delta(128, 16, 10, 100);
        let paper20 = paper_delta(128, 16, 10, 20);
        assert!((paper100 / 9.773e-12 - 1.0).abs() < 1e-3, "{paper100}");
        assert!((paper20 / 6.2807e-3 - 1.0).abs() < 1e-3, "{paper20}");
        // The bound is conservative: δ ≥ the exact failure.
        for t in 0..40 {
            assert!(paper_delta(128, 16, t, 100) >= failure_probability(128, 16, t, 100));
        }
    }

    #[test]
    fn helper_data_round_trips() {
        let params = FuzzyParams::paper();
        let (w, key, helper, _) = setup(&params, 4);
        let bytes = helper.to_bytes();
        assert_eq!(bytes.len(), params.helper_bytes());
        let back = HelperData::from_bytes(&bytes).unwrap();
        assert_eq!(back, helper);
        assert_eq!(rep(&back, &w).unwrap(), key);
    }

    #[test]
    fn helper_data_parsing_refuses_hostile_bytes() {
        let params = FuzzyParams {
            n: 128,
            k: 5,
            lockers: 3,
            key_len: 8,
        };
        let (_, _, helper, mut rng) = setup(&params, 5);
        let bytes = helper.to_bytes();
        for len in 0..bytes.len() {
            assert!(
                HelperData::from_bytes(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(HelperData::from_bytes(&longer).is_err(), "trailing byte");

        let patched = |at: usize, value: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + value.len()].copy_from_slice(value);
            HelperData::from_bytes(&b)
        };
        assert!(patched(0, b"XPFE").is_err(), "magic");
        assert!(patched(4, &[2]).is_err(), "version");
        assert!(patched(5, &0u16.to_le_bytes()).is_err(), "n = 0");
        assert!(patched(5, &4097u16.to_le_bytes()).is_err(), "n too large");
        assert!(patched(7, &200u16.to_le_bytes()).is_err(), "k > n");
        assert!(
            patched(9, &u32::MAX.to_le_bytes()).is_err(),
            "L huge, body small"
        );
        assert!(patched(9, &0u32.to_le_bytes()).is_err(), "L = 0");
        assert!(patched(13, &65u16.to_le_bytes()).is_err(), "key too long");
        // Indices: out of range, repeated, decreasing.
        assert!(
            patched(HEADER_LEN, &128u16.to_le_bytes()).is_err(),
            "index ≥ n"
        );
        let first = u16::from_le_bytes([bytes[HEADER_LEN], bytes[HEADER_LEN + 1]]);
        assert!(
            patched(HEADER_LEN + 2, &first.to_le_bytes()).is_err(),
            "repeated index"
        );

        // A huge announced size is refused before allocating anything.
        let mut header = bytes[..HEADER_LEN].to_vec();
        header[5..7].copy_from_slice(&4096u16.to_le_bytes());
        header[7..9].copy_from_slice(&4096u16.to_le_bytes());
        header[9..13].copy_from_slice(&(MAX_LOCKERS as u32).to_le_bytes());
        assert!(HelperData::from_bytes(&header).is_err());

        // Garbage and random mutations: errors or valid helper data, never a panic.
        for trial in 0..2000 {
            let garbage: Vec<u8> = (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect();
            assert!(HelperData::from_bytes(&garbage).is_err(), "garbage {trial}");
            let mut mutated = bytes.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..mutated.len());
                mutated[at] = rng.random();
            }
            if let Ok(parsed) = HelperData::from_bytes(&mutated) {
                let n = parsed.params().n;
                let _ = rep(&parsed, &Bits::zeros(n));
            }
        }
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let w = Bits::zeros(128);
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        for bad in [
            FuzzyParams {
                k: 0,
                ..FuzzyParams::default()
            },
            FuzzyParams {
                k: 129,
                ..FuzzyParams::default()
            },
            FuzzyParams {
                lockers: 0,
                ..FuzzyParams::default()
            },
            FuzzyParams {
                key_len: 0,
                ..FuzzyParams::default()
            },
            FuzzyParams {
                key_len: 65,
                ..FuzzyParams::default()
            },
        ] {
            assert!(matches!(
                gen(&bad, &w, &mut rng),
                Err(BpkemError::InvalidParams { .. })
            ));
        }
        assert!(matches!(
            gen(&FuzzyParams::default(), &Bits::zeros(64), &mut rng),
            Err(BpkemError::LengthMismatch(64, 128))
        ));
    }
}
