//! BPKEM enrolment and recovery, timed with the paper's cost model.
//!
//! **Enrolment** (descriptor w):
//! 1. `Gen(w)` → biometric key R and helper data P (fuzzy extractor).
//! 2. Hashing: `seed = KDF(R, "lwe-seed")` and `salt = KDF(R, "share-salt")`
//!    (KDF = HMAC-SHA256 keyed by R; R is already uniform, so no extract step).
//! 3. LWE key pair from the seed ([`lwe::keygen`]).
//! 4. The seed, read as a 256-bit integer S, is split with Asmuth–Bloom into one share
//!    per holder ("cluster").
//! 5. Each share is salted: yᵢ + PRF(salt, i) mod mᵢ (the paper salts its shares with
//!    hash(R)), so k colluding holders need R as well. R, however, is only as secret as
//!    the helper data: at small k a holder of the helper data recovers R by brute force
//!    (see [`crate::fuzzy`]), and with [`SeedSource::Derived`] R alone gives the LWE key
//!    pair without any share. The threshold protects the key only against parties that
//!    have neither the biometric nor the helper data.
//!
//! Stored: P (must stay secret: see [`crate::fuzzy`]), the public key (public), one
//! salted share per holder.
//!
//! **Recovery** (descriptor w′, the holders to ask): `Rep(w′)` → R → the salt key;
//! fetch the chosen holders' shares; unsalt; CRT → S; regenerate the key pair from S and
//! compare its public key with the stored one. Too few, wrong or corrupted shares, or a
//! wrong R, give a different S and fail that check ([`BpkemError::PublicKeyMismatch`]).
//!
//! **What is shared.** The 32-byte seed, not the secret vector s: the seed determines
//! the whole key pair, so sharing it is equivalent, and it keeps every share ≈ 35 bytes
//! instead of the ≈ 550 bytes the 4352-bit vector s (n = 256, 17 bits each) would need
//! per share. [`SeedSource::Independent`] draws the seed at random instead of from R:
//! that is the paper's sk1, which the biometric alone cannot regenerate (R then only
//! unsalts the shares); [`SeedSource::Derived`] is the default.
//!
//! **Timings** use the paper's names (its §5.2.2); each covers exactly one step:
//!
//! | field | paper | enrolment | recovery |
//! |---|---|---|---|
//! | `t_l` | T_L, LWE key pair | keygen from the seed | keygen from the reconstructed S + public-key comparison |
//! | `t_h` | T_H, hashing | the two KDF calls on R | the salt KDF on R |
//! | `t_n` | T_N, CRT split into n | Asmuth–Bloom sharing | — |
//! | `t_k` | T_K, recovery from k | — | CRT of the fetched shares |
//! | `t_s` | T_S, salt | salting n shares | unsalting the fetched shares |
//! | `t_f` | T_F, fetch k shares | — | reading the chosen holders' shares (in process here; a network or chain read in a deployment) |
//! | `fuzzy` | (not in the paper's sum) | `Gen` | `Rep` |
//! | `total` | the sum, measured | the whole call | the whole call |

use crate::asmuth_bloom::{Moduli, Share};
use crate::descriptor::Bits;
use crate::error::{BpkemError, Result};
use crate::fuzzy::{self, FuzzyParams, HelperData};
use crate::lwe::{self, KeyPair, LweParams, PublicKey};
use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{Duration, Instant};

/// Bits of the shared secret (the LWE seed).
pub const SECRET_BITS: u32 = 256;

/// Where the LWE seed comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeedSource {
    /// KDF(R, "lwe-seed"): the biometric key determines the key pair.
    Derived,
    /// Fresh randomness (the paper's independent sk1).
    Independent,
}

/// Everything a deployment fixes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowParams {
    /// Fuzzy extractor.
    pub fuzzy: FuzzyParams,
    /// LWE.
    pub lwe: LweParams,
    /// Share holders n (the paper: 20).
    pub holders: usize,
    /// Threshold k (the paper: 10).
    pub threshold: usize,
    /// Seed source.
    pub seed_source: SeedSource,
}

impl Default for FlowParams {
    fn default() -> Self {
        Self {
            fuzzy: FuzzyParams::default(),
            lwe: LweParams::default(),
            holders: 20,
            threshold: 10,
            seed_source: SeedSource::Derived,
        }
    }
}

/// The key-derivation function: HMAC-SHA256 keyed by `key` over a versioned label.
pub fn kdf(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"bpkem/kdf/v1/");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// PRF(salt, i) reduced mod `modulus`, from 128 bits more than the modulus has (so the
/// reduction's bias is below 2⁻¹²⁸).
fn salt_value(salt: &[u8; 32], index: usize, modulus: &BigUint) -> BigUint {
    let blocks = (modulus.bits() as usize + 128).div_ceil(256);
    let mut bytes = Vec::with_capacity(blocks * 32);
    for block in 0..blocks as u32 {
        let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes any key length");
        mac.update(b"bpkem/salt/v1");
        mac.update(&(index as u32).to_le_bytes());
        mac.update(&block.to_le_bytes());
        bytes.extend_from_slice(&mac.finalize().into_bytes());
    }
    BigUint::from_bytes_le(&bytes) % modulus
}

/// The share holders ("clusters"), in process: holder i keeps salted share i.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holders {
    shares: Vec<Share>,
}

impl Holders {
    /// Number of holders.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// The shares of the given 1-based holders; an error for an unknown holder.
    pub fn fetch(&self, which: &[usize]) -> Result<Vec<Share>> {
        which
            .iter()
            .map(|&i| {
                i.checked_sub(1)
                    .and_then(|at| self.shares.get(at))
                    .cloned()
                    .ok_or_else(|| BpkemError::Shares(format!("unknown holder {i}")))
            })
            .collect()
    }

    /// Replaces holder `index`'s share (to model a corrupted or malicious holder).
    pub fn replace(&mut self, share: Share) -> Result<()> {
        let slot = share
            .index
            .checked_sub(1)
            .and_then(|at| self.shares.get_mut(at))
            .ok_or_else(|| BpkemError::Shares(format!("unknown holder {}", share.index)))?;
        *slot = share;
        Ok(())
    }
}

/// What is stored publicly per user.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    /// Fuzzy-extractor helper data.
    pub helper: HelperData,
    /// The LWE public key recovery is checked against.
    pub public_key: PublicKey,
}

/// Bytes stored per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Serialized helper data.
    pub helper: usize,
    /// All n shares: a 2-byte holder index and ⌈bits(mᵢ)/8⌉ value bytes each.
    pub shares: usize,
    /// Serialized public key.
    pub public_key: usize,
    /// The sum.
    pub total: usize,
}

/// Enrolment step times (see the module table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnrolTimings {
    /// Gen.
    pub fuzzy: Duration,
    /// T_H: KDFs on R.
    pub t_h: Duration,
    /// T_L: LWE keygen.
    pub t_l: Duration,
    /// T_N: Asmuth–Bloom split into n.
    pub t_n: Duration,
    /// T_S: salting the shares.
    pub t_s: Duration,
    /// The whole enrolment.
    pub total: Duration,
}

/// Recovery step times (see the module table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoverTimings {
    /// Rep.
    pub fuzzy: Duration,
    /// T_H: the salt KDF on R.
    pub t_h: Duration,
    /// T_F: fetching the shares.
    pub t_f: Duration,
    /// T_S: unsalting.
    pub t_s: Duration,
    /// T_K: CRT reconstruction.
    pub t_k: Duration,
    /// T_L: regenerating the key pair and comparing public keys.
    pub t_l: Duration,
    /// The whole recovery.
    pub total: Duration,
}

/// The result of an enrolment.
#[derive(Clone, Debug)]
pub struct Enrolment {
    /// Public per-user data.
    pub record: UserRecord,
    /// One salted share per holder.
    pub holders: Holders,
    /// The key pair (the user's; not stored anywhere by the deployment).
    pub keypair: KeyPair,
    /// Step times.
    pub timings: EnrolTimings,
    /// Bytes stored.
    pub storage: Storage,
}

/// The result of a successful recovery.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The regenerated key pair (its public key equals the stored one).
    pub keypair: KeyPair,
    /// Step times.
    pub timings: RecoverTimings,
}

/// A deployment: parameters and the public Asmuth–Bloom moduli.
#[derive(Clone, Debug)]
pub struct Deployment {
    params: FlowParams,
    moduli: Moduli,
}

fn timed<T>(slot: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    *slot += start.elapsed();
    out
}

impl Deployment {
    /// Validates the parameters and draws moduli for 256-bit secrets.
    pub fn new(params: FlowParams, rng: &mut impl Rng) -> Result<Self> {
        params.fuzzy.validate()?;
        params.lwe.validate()?;
        let moduli = Moduli::generate(SECRET_BITS, params.threshold, params.holders, rng)?;
        Ok(Self { params, moduli })
    }

    /// The parameters.
    pub fn params(&self) -> &FlowParams {
        &self.params
    }

    /// The public moduli.
    pub fn moduli(&self) -> &Moduli {
        &self.moduli
    }

    /// Enrols descriptor `w`.
    pub fn enrol(&self, w: &Bits, rng: &mut impl CryptoRng) -> Result<Enrolment> {
        let mut t = EnrolTimings::default();
        let start = Instant::now();
        let (r, helper) = timed(&mut t.fuzzy, || fuzzy::gen(&self.params.fuzzy, w, rng))?;
        let (derived, salt) = timed(&mut t.t_h, || {
            (kdf(&r, b"lwe-seed"), kdf(&r, b"share-salt"))
        });
        let seed = match self.params.seed_source {
            SeedSource::Derived => derived,
            SeedSource::Independent => {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            }
        };
        let keypair = timed(&mut t.t_l, || lwe::keygen(&self.params.lwe, &seed))?;
        let secret = BigUint::from_bytes_le(&seed);
        let shares = timed(&mut t.t_n, || self.moduli.share(&secret, rng))?;
        let salted: Vec<Share> = timed(&mut t.t_s, || {
            shares
                .into_iter()
                .map(|s| {
                    let mi = &self.moduli.moduli()[s.index - 1];
                    Share {
                        index: s.index,
                        value: (s.value + salt_value(&salt, s.index, mi)) % mi,
                    }
                })
                .collect()
        });
        t.total = start.elapsed();
        let helper_bytes = helper.to_bytes().len();
        let public_key_bytes = keypair.public.to_bytes().len();
        let share_bytes: usize = self
            .moduli
            .moduli()
            .iter()
            .map(|m| 2 + m.bits().div_ceil(8) as usize)
            .sum();
        Ok(Enrolment {
            record: UserRecord {
                helper,
                public_key: keypair.public.clone(),
            },
            holders: Holders { shares: salted },
            keypair,
            timings: t,
            storage: Storage {
                helper: helper_bytes,
                shares: share_bytes,
                public_key: public_key_bytes,
                total: helper_bytes + share_bytes + public_key_bytes,
            },
        })
    }

    /// Recovers the key pair from descriptor `w` and the shares of holders `which`
    /// (1-based). Errors: [`BpkemError::NoLockerOpened`] when `w` is too far from the
    /// enrolled descriptor, [`BpkemError::Shares`] for unknown or repeated holders,
    /// [`BpkemError::PublicKeyMismatch`] when the reconstructed key is not the enrolled
    /// one (fewer than k shares, a corrupted share).
    pub fn recover(
        &self,
        record: &UserRecord,
        w: &Bits,
        holders: &Holders,
        which: &[usize],
    ) -> Result<Recovery> {
        let mut t = RecoverTimings::default();
        let start = Instant::now();
        let r = timed(&mut t.fuzzy, || fuzzy::rep(&record.helper, w))?;
        let salt = timed(&mut t.t_h, || kdf(&r, b"share-salt"));
        let fetched = timed(&mut t.t_f, || holders.fetch(which))?;
        let unsalted: Vec<Share> = timed(&mut t.t_s, || {
            fetched
                .into_iter()
                .map(|s| {
                    let mi = self
                        .moduli
                        .moduli()
                        .get(s.index.wrapping_sub(1))
                        .ok_or_else(|| BpkemError::Shares(format!("unknown holder {}", s.index)))?;
                    let pad = salt_value(&salt, s.index, mi);
                    Ok(Share {
                        index: s.index,
                        value: (s.value % mi + mi - pad) % mi,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let secret = timed(&mut t.t_k, || self.moduli.combine(&unsalted))?;
        let keypair = timed(&mut t.t_l, || -> Result<KeyPair> {
            if secret.bits() > u64::from(SECRET_BITS) {
                return Err(BpkemError::PublicKeyMismatch);
            }
            let mut seed = [0u8; 32];
            let bytes = secret.to_bytes_le();
            seed[..bytes.len()].copy_from_slice(&bytes);
            let keypair = lwe::keygen(&self.params.lwe, &seed)?;
            if keypair.public != record.public_key {
                return Err(BpkemError::PublicKeyMismatch);
            }
            Ok(keypair)
        })?;
        t.total = start.elapsed();
        Ok(Recovery {
            keypair,
            timings: t,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::hamming;
    use crate::metrics::random_bits;
    use rand::seq::index::sample;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn noisy(w: &Bits, t: usize, rng: &mut ChaCha20Rng) -> Bits {
        let mut out = w.clone();
        for i in sample(rng, w.len(), t) {
            out.flip(i);
        }
        out
    }

    fn holders_subset(rng: &mut ChaCha20Rng, n: usize, count: usize) -> Vec<usize> {
        sample(rng, n, count).into_iter().map(|i| i + 1).collect()
    }

    #[test]
    fn any_k_shares_recover_and_k_minus_1_fail_the_public_key_check() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let params = FlowParams::default();
        let (n, k) = (params.holders, params.threshold);
        let deployment = Deployment::new(params.clone(), &mut rng).unwrap();
        let w = random_bits(128, &mut rng);
        let enrolment = deployment.enrol(&w, &mut rng).unwrap();
        let record = &enrolment.record;
        let holders = &enrolment.holders;
        assert_eq!(holders.len(), n);

        // The biometric with t = 10 errors and any k (or more) holders.
        for count in [k, k, k + 1, n] {
            let query = noisy(&w, 10, &mut rng);
            assert_eq!(hamming(&w, &query).unwrap(), 10);
            let which = holders_subset(&mut rng, n, count);
            let recovered = deployment.recover(record, &query, holders, &which).unwrap();
            assert_eq!(
                recovered.keypair.public, enrolment.keypair.public,
                "{which:?}"
            );
            assert_eq!(
                recovered.keypair.secret, enrolment.keypair.secret,
                "{which:?}"
            );
        }
        // k − 1 random holders: a different secret, refused by the public-key check.
        for _ in 0..4 {
            let which = holders_subset(&mut rng, n, k - 1);
            assert_eq!(
                deployment.recover(record, &w, holders, &which).unwrap_err(),
                BpkemError::PublicKeyMismatch,
                "{which:?}"
            );
        }
        // One corrupted share among k.
        let which = holders_subset(&mut rng, n, k);
        let mut corrupted = holders.clone();
        let mut share = holders.fetch(&which[..1]).unwrap().remove(0);
        share.value = (share.value + 1u8) % &deployment.moduli().moduli()[share.index - 1];
        corrupted.replace(share).unwrap();
        assert_eq!(
            deployment
                .recover(record, &w, &corrupted, &which)
                .unwrap_err(),
            BpkemError::PublicKeyMismatch
        );
        // Shares alone are salted: CRT of k raw shares is not the seed.
        let raw = deployment
            .moduli()
            .reconstruct(&holders.fetch(&which).unwrap())
            .unwrap();
        let seed =
            BigUint::from_bytes_le(&kdf(&fuzzy::rep(&record.helper, &w).unwrap(), b"lwe-seed"));
        assert_ne!(raw, seed);
        // A different finger opens no locker; unknown and repeated holders are errors.
        let impostor = random_bits(128, &mut rng);
        assert_eq!(
            deployment
                .recover(record, &impostor, holders, &which)
                .unwrap_err(),
            BpkemError::NoLockerOpened
        );
        assert!(matches!(
            deployment.recover(record, &w, holders, &[1, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
            Err(BpkemError::Shares(_))
        ));
        assert!(matches!(
            deployment.recover(record, &w, holders, &[0]),
            Err(BpkemError::Shares(_))
        ));
        assert!(matches!(
            deployment.recover(record, &w, holders, &[21]),
            Err(BpkemError::Shares(_))
        ));
    }

    #[test]
    fn storage_is_counted_and_independent_seeds_work() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let params = FlowParams {
            seed_source: SeedSource::Independent,
            lwe: LweParams::regev(64, 2.0).unwrap(),
            ..FlowParams::default()
        };
        let deployment = Deployment::new(params.clone(), &mut rng).unwrap();
        let w = random_bits(128, &mut rng);
        let enrolment = deployment.enrol(&w, &mut rng).unwrap();
        let s = enrolment.storage;
        assert_eq!(s.helper, params.fuzzy.helper_bytes());
        assert_eq!(s.public_key, params.lwe.public_key_bytes());
        // 20 moduli of 256 + 10 + 8 = 274 bits: 35 bytes each plus a 2-byte index.
        assert_eq!(s.shares, 20 * (2 + 35));
        assert_eq!(s.total, s.helper + s.shares + s.public_key);
        // The seed is not KDF(R): the biometric alone does not determine the key.
        let r = fuzzy::rep(&enrolment.record.helper, &w).unwrap();
        let derived = lwe::keygen(&params.lwe, &kdf(&r, b"lwe-seed")).unwrap();
        assert_ne!(derived.public, enrolment.keypair.public);
        let which: Vec<usize> = (5..15).collect();
        let recovered = deployment
            .recover(&enrolment.record, &w, &enrolment.holders, &which)
            .unwrap();
        assert_eq!(recovered.keypair.public, enrolment.keypair.public);
        assert_eq!(
            deployment
                .recover(&enrolment.record, &w, &enrolment.holders, &which[..9])
                .unwrap_err(),
            BpkemError::PublicKeyMismatch
        );
    }
}
