//! BFV parameter sets as validated values with named presets.
//!
//! fhe.rs checks almost nothing: it accepts insecure sets, panics when t equals a
//! ciphertext modulus, and only fails at encoding time when t does not support SIMD.
//! Every set is therefore checked here first, against the HomomorphicEncryption.org
//! 128-bit table, before fhe.rs builds it.

use crate::error::{ProtocolError, Result};
use fhe::bfv::{BfvParameters, BfvParametersBuilder};
use fhe_math::zq::primes::generate_prime;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Error variance fhe.rs uses by default (centred binomial, variance 10).
pub(crate) const VARIANCE: usize = 10;

/// HomomorphicEncryption.org standard, 128-bit classical security, ternary secret
/// (its most conservative column): N → the largest allowed log₂ of the whole modulus.
/// fhe.rs key switching uses no special primes, so the whole modulus is Q.
pub const SECURITY_128: [(usize, u32); 6] = [
    (1024, 27),
    (2048, 54),
    (4096, 109),
    (8192, 218),
    (16384, 438),
    (32768, 881),
];

/// The 128-bit bound on log₂ Q for degree `n`, if the standard lists one.
pub fn security_bound(n: usize) -> Option<u32> {
    SECURITY_128
        .iter()
        .find(|(degree, _)| *degree == n)
        .map(|(_, bits)| *bits)
}

/// How the plaintext modulus is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaintextModulus {
    /// The largest prime of this many bits with t ≡ 1 (mod 2N).
    Bits(u32),
    /// An explicit value, which must be a prime ≡ 1 (mod 2N).
    Value(u64),
}

/// What a user writes down to describe a parameter set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Name shown in tables and error messages.
    pub name: String,
    /// Polynomial degree N (also the number of SIMD slots).
    pub degree: usize,
    /// Bit sizes of the ciphertext moduli qᵢ (10..=62 each).
    pub moduli_bits: Vec<usize>,
    /// The plaintext modulus t.
    pub plaintext: PlaintextModulus,
    /// Accept a set above the 128-bit bound; every report then marks it insecure.
    #[serde(default)]
    pub allow_insecure: bool,
}

impl ParamSpec {
    /// A spec with the given numbers.
    pub fn new(
        name: &str,
        degree: usize,
        moduli_bits: &[usize],
        plaintext: PlaintextModulus,
    ) -> Self {
        Self {
            name: name.to_string(),
            degree,
            moduli_bits: moduli_bits.to_vec(),
            plaintext,
            allow_insecure: false,
        }
    }

    /// The built-in sets, in the order `touchstone params` lists them.
    pub fn presets() -> Vec<ParamSpec> {
        use PlaintextModulus::Bits;
        vec![
            // Blind-Touch's layout: relinearization, rotations and two per-slot plaintext
            // products need about 110 bits of noise room above t.
            ParamSpec::new("bt-8192", 8192, &[60, 60, 60], Bits(30)),
            // Blind-Touch with encrypted weights and mask: two more ciphertext products.
            ParamSpec::new("bt-8192-ew", 8192, &[54, 54, 54, 54], Bits(30)),
            // Columnar: one tensor product per feature, no key switching; [55, 55] leaves
            // about 20 bits of budget with secret-key encryption.
            ParamSpec::new("col-8192", 8192, &[55, 55], Bits(30)),
            // Columnar at N = 4096 (128-bit bound: log2 Q ≤ 109): half the work per query
            // and per group of a col-8192 group, for galleries up to 4,096 users per group.
            ParamSpec::new("col-4096", 4096, &[55, 54], Bits(30)),
            ParamSpec::new("col-16384", 16384, &[55, 55], Bits(30)),
        ]
    }

    /// A built-in set by name.
    pub fn preset(name: &str) -> Result<ParamSpec> {
        Self::presets()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<String> = Self::presets().into_iter().map(|p| p.name).collect();
                ProtocolError::params(name, format!("no such preset; known: {}", known.join(", ")))
            })
    }

    /// Validates the spec and builds the fhe.rs parameters.
    pub fn build(&self) -> Result<Params> {
        Params::build(self)
    }
}

/// A validated parameter set and the fhe.rs parameters built from it.
#[derive(Clone, Debug)]
pub struct Params {
    spec: ParamSpec,
    bfv: Arc<BfvParameters>,
    log2_q: f64,
    fingerprint: u64,
}

impl Params {
    fn build(spec: &ParamSpec) -> Result<Self> {
        let name = spec.name.as_str();
        let n = spec.degree;
        if !n.is_power_of_two() || !(1024..=32768).contains(&n) {
            return Err(ProtocolError::params(
                name,
                format!("degree N must be a power of two in 1024..=32768, got {n}"),
            ));
        }
        if spec.moduli_bits.is_empty() {
            return Err(ProtocolError::params(name, "no ciphertext moduli given"));
        }
        if let Some(bad) = spec.moduli_bits.iter().find(|b| !(10..=62).contains(*b)) {
            return Err(ProtocolError::params(
                name,
                format!("each ciphertext modulus must have 10..=62 bits, got {bad}"),
            ));
        }
        let moduli = generate_moduli(name, &spec.moduli_bits, n)?;
        let log2_q: f64 = moduli.iter().map(|&q| (q as f64).log2()).sum();
        let t = resolve_plaintext(name, spec.plaintext, n)?;

        if moduli.contains(&t) {
            return Err(ProtocolError::params(
                name,
                format!("plaintext modulus t = {t} equals one of the ciphertext moduli {moduli:?}"),
            ));
        }
        if (t as f64).log2() + 1.0 >= log2_q {
            return Err(ProtocolError::params(
                name,
                format!(
                    "plaintext modulus t = {t} ({:.1} bits) leaves no room below Q ({log2_q:.1} bits)",
                    (t as f64).log2()
                ),
            ));
        }
        match security_bound(n) {
            Some(bound) if log2_q <= bound as f64 => {}
            bound if !spec.allow_insecure => {
                let limit = bound
                    .map_or("the standard lists no bound for this N".to_string(), |b| {
                        format!("the 128-bit bound for N = {n} is {b} bits")
                    });
                return Err(ProtocolError::params(
                    name,
                    format!(
                        "log2 Q = {log2_q:.1} bits is above 128-bit security ({limit}); \
                         set allow_insecure to use it anyway"
                    ),
                ));
            }
            _ => {}
        }

        let bfv = BfvParametersBuilder::new()
            .set_degree(n)
            .set_plaintext_modulus(t)
            .set_moduli(&moduli)
            .set_variance(VARIANCE)
            .build_arc()?;
        let fingerprint = fingerprint_of(n, t, &moduli);
        Ok(Self {
            spec: spec.clone(),
            bfv,
            log2_q,
            fingerprint,
        })
    }

    /// The spec this set was built from.
    pub fn spec(&self) -> &ParamSpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The fhe.rs parameters. Everything that meets in one fhe.rs operation must share
    /// this one `Arc`.
    pub fn bfv(&self) -> &Arc<BfvParameters> {
        &self.bfv
    }

    /// Polynomial degree N, also the number of SIMD slots.
    pub fn degree(&self) -> usize {
        self.bfv.degree()
    }

    /// The plaintext modulus t.
    pub fn plaintext(&self) -> u64 {
        self.bfv.plaintext()
    }

    /// The ciphertext moduli.
    pub fn moduli(&self) -> &[u64] {
        self.bfv.moduli()
    }

    /// log₂ Q of the whole ciphertext modulus.
    pub fn log2_q(&self) -> f64 {
        self.log2_q
    }

    /// The 128-bit bound for this degree, if listed.
    pub fn security_bound(&self) -> Option<u32> {
        security_bound(self.degree())
    }

    /// True when the set is above the 128-bit bound (only possible with `allow_insecure`).
    pub fn insecure(&self) -> bool {
        self.security_bound()
            .is_none_or(|bound| self.log2_q > bound as f64)
    }

    /// A hash of (N, t, moduli): two roles with equal fingerprints can exchange bytes.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Bits of noise room a fresh decryption has: log₂(Q / 2t). A ciphertext whose
    /// measured noise is below this decrypts correctly; the difference is the budget left.
    pub fn noise_capacity(&self) -> f64 {
        self.log2_q - (self.plaintext() as f64).log2() - 1.0
    }

    /// Refuses a set whose t cannot hold every score: centred decoding needs t > 2·bound.
    pub fn check_score_bound(&self, bound: u64) -> Result<()> {
        if (self.plaintext() as u128) <= 2 * bound as u128 {
            return Err(ProtocolError::params(
                self.name(),
                format!(
                    "plaintext modulus t = {} cannot hold scores up to ±{bound}: t must exceed {}",
                    self.plaintext(),
                    2 * bound as u128
                ),
            ));
        }
        Ok(())
    }
}

/// The same moduli fhe.rs would generate from these sizes (largest primes ≡ 1 mod 2N,
/// distinct), computed here so t can be compared with them before fhe.rs panics on it.
fn generate_moduli(name: &str, sizes: &[usize], n: usize) -> Result<Vec<u64>> {
    let mut moduli: Vec<u64> = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let mut upper = 1u64 << size;
        loop {
            let prime = generate_prime(size, 2 * n as u64, upper).ok_or_else(|| {
                ProtocolError::params(
                    name,
                    format!(
                        "not enough {size}-bit primes ≡ 1 mod {} for the moduli",
                        2 * n
                    ),
                )
            })?;
            if moduli.contains(&prime) {
                upper = prime;
            } else {
                moduli.push(prime);
                break;
            }
        }
    }
    Ok(moduli)
}

fn resolve_plaintext(name: &str, plaintext: PlaintextModulus, n: usize) -> Result<u64> {
    let two_n = 2 * n as u64;
    match plaintext {
        PlaintextModulus::Bits(bits) => {
            if !(10..=61).contains(&bits) {
                return Err(ProtocolError::params(
                    name,
                    format!("plaintext modulus must have 10..=61 bits, got {bits}"),
                ));
            }
            generate_prime(bits as usize, two_n, 1u64 << bits).ok_or_else(|| {
                ProtocolError::params(
                    name,
                    format!("no {bits}-bit prime t ≡ 1 mod {two_n} exists"),
                )
            })
        }
        PlaintextModulus::Value(t) => {
            // 61 bits at most: fhe.rs multiplies in an extended basis of 62-bit primes.
            if !(2..1 << 61).contains(&t) {
                return Err(ProtocolError::params(
                    name,
                    format!("plaintext modulus t = {t} must be in 2..2^61"),
                ));
            }
            if !fhe_util::is_prime(t) {
                return Err(ProtocolError::params(
                    name,
                    format!("plaintext modulus t = {t} is not prime (SIMD packing needs a prime)"),
                ));
            }
            if t % two_n != 1 {
                return Err(ProtocolError::params(
                    name,
                    format!(
                        "plaintext modulus t = {t} is not ≡ 1 mod 2N = {two_n} (t mod 2N = {}), \
                         so SIMD packing is impossible",
                        t % two_n
                    ),
                ));
            }
            Ok(t)
        }
    }
}

/// FNV-1a over the numbers that make two parameter sets interchangeable.
fn fingerprint_of(n: usize, t: u64, moduli: &[u64]) -> u64 {
    let mut words = vec![n as u64, t, VARIANCE as u64];
    words.extend_from_slice(moduli);
    crate::wire::fnv1a(words.iter().flat_map(|w| w.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(spec: &ParamSpec) -> String {
        match spec.build() {
            Ok(_) => panic!("spec {spec:?} should have been refused"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn presets_build_secure_and_distinct() {
        let mut fingerprints = Vec::new();
        for spec in ParamSpec::presets() {
            let p = spec.build().unwrap();
            assert!(!p.insecure(), "{}", p.name());
            assert!(p.log2_q() <= p.security_bound().unwrap() as f64);
            assert_eq!(p.plaintext() % (2 * p.degree() as u64), 1);
            assert!(fhe_util::is_prime(p.plaintext()));
            fingerprints.push(p.fingerprint());
        }
        fingerprints.sort();
        fingerprints.dedup();
        assert_eq!(fingerprints.len(), ParamSpec::presets().len());
    }

    #[test]
    fn same_spec_same_moduli_as_fhe_rs_would_generate() {
        let spec = ParamSpec::preset("bt-8192").unwrap();
        let ours = spec.build().unwrap();
        let theirs = BfvParametersBuilder::new()
            .set_degree(8192)
            .set_plaintext_modulus(ours.plaintext())
            .set_moduli_sizes(&spec.moduli_bits)
            .build()
            .unwrap();
        assert_eq!(ours.moduli(), theirs.moduli());
    }

    #[test]
    fn refuses_set_above_security_bound() {
        let spec = ParamSpec::new("big", 4096, &[60, 60], PlaintextModulus::Bits(20));
        let msg = err_text(&spec);
        assert!(
            msg.contains("above 128-bit security") && msg.contains("109"),
            "{msg}"
        );

        let allowed = ParamSpec {
            allow_insecure: true,
            ..spec
        };
        let p = allowed.build().unwrap();
        assert!(p.insecure(), "an allowed insecure set is still flagged");
    }

    #[test]
    fn refuses_bad_plaintext_moduli() {
        // 65537 is prime but 65537 mod 16384 = 1: fine for N = 8192; refused for N = 16384.
        let not_prime = ParamSpec::new("np", 8192, &[60, 60], PlaintextModulus::Value(65535));
        assert!(err_text(&not_prime).contains("not prime"));

        let wrong_residue = ParamSpec::new("wr", 8192, &[60, 60], PlaintextModulus::Value(65539));
        let msg = err_text(&wrong_residue);
        assert!(msg.contains("not ≡ 1 mod 2N = 16384"), "{msg}");

        let too_big = ParamSpec::new("tb", 8192, &[60, 60], PlaintextModulus::Value(1 << 62));
        assert!(err_text(&too_big).contains("2^61"));
    }

    #[test]
    fn refuses_t_equal_to_a_ciphertext_modulus() {
        // fhe.rs panics on this; we must refuse it first.
        let probe = ParamSpec::new("p", 8192, &[30, 30, 30], PlaintextModulus::Bits(20))
            .build()
            .unwrap();
        let q0 = probe.moduli()[0];
        let spec = ParamSpec::new("eq", 8192, &[30, 30, 30], PlaintextModulus::Value(q0));
        let msg = err_text(&spec);
        assert!(msg.contains("equals one of the ciphertext moduli"), "{msg}");
    }

    #[test]
    fn refuses_malformed_sets() {
        assert!(err_text(&ParamSpec::new(
            "d",
            3000,
            &[60],
            PlaintextModulus::Bits(20)
        ))
        .contains("power of two"));
        assert!(
            err_text(&ParamSpec::new("m", 8192, &[], PlaintextModulus::Bits(20)))
                .contains("no ciphertext moduli")
        );
        assert!(err_text(&ParamSpec::new(
            "s",
            8192,
            &[63],
            PlaintextModulus::Bits(20)
        ))
        .contains("10..=62"));
        assert!(err_text(&ParamSpec::new(
            "r",
            8192,
            &[35],
            PlaintextModulus::Bits(40)
        ))
        .contains("no room"));
        assert!(
            err_text(&ParamSpec::new("x", 8192, &[60], PlaintextModulus::Bits(5)))
                .contains("10..=61")
        );
        assert!(ParamSpec::preset("nope")
            .unwrap_err()
            .to_string()
            .contains("bt-8192"));
    }

    #[test]
    fn score_bound_check() {
        let p = ParamSpec::preset("col-8192").unwrap().build().unwrap();
        assert!(p
            .check_score_bound(crate::quantize::worst_case_score_bound(16, 8, 8))
            .is_ok());
        // t is odd: scores in [−(t−1)/2, (t−1)/2] decode; one more does not.
        assert!(p.check_score_bound(p.plaintext() / 2).is_ok());
        assert!(p.check_score_bound(p.plaintext() / 2 + 1).is_err());
    }
}
