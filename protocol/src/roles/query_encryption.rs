//! The columnar query's encryption, fast: the same seeded secret-key BFV ciphertexts
//! fhe.rs makes — c₁ = a drawn from a 32-byte seed (fhe-math's own sampler, so the
//! receiver regenerates it from the seed as for any fhe.rs ciphertext), c₀ = e + Δm − a·s
//! with e from fhe-util's centred binomial sampler — written directly in fhe.rs's
//! serialized form, byte for byte what `Ciphertext::to_bytes` would produce for them.
//!
//! Why it is faster than `SecretKey::try_encrypt` + `to_bytes` (measured in
//! `benches/query.rs`): the secret is transformed once, not per ciphertext; each
//! plaintext is a constant polynomial, so Δm is one word per limb and needs no transform;
//! and c₀ is built in coefficient form (one inverse NTT of a·s per limb, kernels' NTT),
//! which is the form fhe.rs serializes — fhe.rs instead transforms e and m forward and
//! then transforms c₀ back to serialize it.

use crate::error::{ProtocolError, Result};
use crate::params::{Params, VARIANCE};
use crate::rq_wire::{packed_bits, RqWire, NTT};
use fhe::bfv::SecretKey;
use fhe_math::rq::{Context, Poly, Representation};
use fhe_traits::Serialize;
use kernels::arith::Modulus;
use kernels::RnsBasis;
use prost::Message;
use rand::{CryptoRng, Rng, RngCore};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Encrypts constant plaintexts under one secret key at level 0 of one parameter set.
pub struct QueryEncryptor {
    ctx: Arc<Context>,
    basis: RnsBasis,
    moduli: Vec<Modulus>,
    /// The secret key in NTT form, limb-major.
    s_ntt: Zeroizing<Vec<u64>>,
    /// (−t)⁻¹ mod qᵢ: fhe.rs's Δ, as a constant polynomial's residue per limb.
    delta: Vec<u64>,
    /// Q mod t (fhe.rs multiplies the plaintext by it before Δ).
    q_mod_t: u64,
    t: u64,
}

impl QueryEncryptor {
    /// The encryptor for `secret` under `params` (the secret's own parameters).
    pub fn new(params: &Params, secret: &SecretKey) -> Result<Self> {
        let bfv = params.bfv();
        let ctx = bfv.context_at_level(0)?.clone();
        let n = params.degree();
        let primes = params.moduli().to_vec();
        let basis = RnsBasis::new(n, &primes)
            .map_err(|e| ProtocolError::Input(format!("query encryption: {e}")))?;
        let moduli: Vec<Modulus> = primes
            .iter()
            .map(|&q| Modulus::new(q).expect("ciphertext moduli are below 2^62"))
            .collect();
        // The secret's coefficients (small signed integers) from its serialized form: fhe.rs
        // offers no other read. Our copies are zeroized; fhe.rs's `to_bytes` makes one
        // temporary copy it does not zeroize, and prost's decoding may leave freed buffers
        // while it grows the vector (once per client, in the client's process only).
        let bytes = Zeroizing::new(secret.to_bytes());
        let proto = fhe::proto::bfv::SecretKey::decode(bytes.as_slice())
            .map_err(|e| ProtocolError::Input(format!("query encryption: secret key: {e}")))?;
        let coeffs = Zeroizing::new(proto.coeffs);
        if coeffs.len() != n {
            return Err(ProtocolError::Input(format!(
                "query encryption: the secret key has {} coefficients, the parameters {n}",
                coeffs.len()
            )));
        }
        let mut s_ntt = Zeroizing::new(vec![0u64; primes.len() * n]);
        for (limb, m) in s_ntt.chunks_exact_mut(n).zip(&moduli) {
            for (x, &c) in limb.iter_mut().zip(coeffs.iter()) {
                *x = m.from_i64(c);
            }
        }
        basis
            .forward(&mut s_ntt)
            .map_err(|e| ProtocolError::Input(format!("query encryption: {e}")))?;
        let t = params.plaintext();
        let delta = moduli
            .iter()
            .map(|m| {
                m.inv(m.neg(m.reduce(t)))
                    .expect("t is invertible modulo every ciphertext prime")
            })
            .collect();
        let q_mod_t = primes
            .iter()
            .fold(1u128, |acc, &q| acc * (q % t) as u128 % t as u128) as u64;
        Ok(Self {
            ctx,
            basis,
            moduli,
            s_ntt,
            delta,
            q_mod_t,
            t,
        })
    }

    /// fhe.rs's serialized ciphertext of the constant polynomial `value` (taken mod t, as
    /// fhe.rs encodes a signed value), with fresh randomness from `rng`.
    pub fn encrypt<R: RngCore + CryptoRng>(&self, value: i64, rng: &mut R) -> Result<Vec<u8>> {
        let n = self.basis.degree();
        let mut seed = [0u8; 32];
        rng.fill(&mut seed);
        // c₁ = a, exactly as fhe.rs regenerates it from the seed (NTT form).
        let a = Poly::random_from_seed(&self.ctx, Representation::Ntt, seed);
        let a = a.coefficients();
        let mut c0 = Zeroizing::new(vec![0u64; self.moduli.len() * n]);
        for (i, (limb, m)) in c0.chunks_exact_mut(n).zip(&self.moduli).enumerate() {
            let a_row = a.row(i);
            let a_row = a_row.as_slice().ok_or_else(|| {
                ProtocolError::Input("query encryption: a is not contiguous".into())
            })?;
            let s_row = &self.s_ntt[i * n..(i + 1) * n];
            for ((x, &ai), &si) in limb.iter_mut().zip(a_row).zip(s_row) {
                *x = m.mul(ai, si);
            }
        }
        // a·s in coefficient form.
        self.basis
            .inverse(&mut c0)
            .map_err(|e| ProtocolError::Input(format!("query encryption: {e}")))?;
        let e = Zeroizing::new(
            fhe_util::sample_vec_cbd(n, VARIANCE, rng)
                .map_err(|e| ProtocolError::Input(format!("query encryption: noise: {e}")))?,
        );
        let value = value.rem_euclid(self.t as i64) as u64;
        let scaled = ((value as u128 * self.q_mod_t as u128) % self.t as u128) as u64;
        let mut packed = Vec::new();
        for (i, (limb, m)) in c0.chunks_exact_mut(n).zip(&self.moduli).enumerate() {
            // c₀ = e + Δm − a·s, with Δm the constant m·(Q mod t)·(−t)⁻¹ at coefficient 0.
            for (x, &ei) in limb.iter_mut().zip(e.iter()) {
                *x = m.sub(m.from_i64(ei), *x);
            }
            limb[0] = m.add(limb[0], m.mul(m.reduce(scaled), self.delta[i]));
            crate::rq_wire::pack_into(limb, packed_bits(m.value()), &mut packed);
        }
        let rq = RqWire {
            representation: NTT,
            degree: n as u32,
            coefficients: packed,
            allow_variable_time: true,
        };
        let ct = fhe::proto::bfv::Ciphertext {
            c: vec![rq.encode_to_vec()],
            seed: seed.to_vec(),
            level: 0,
        };
        Ok(ct.encode_to_vec())
    }
}

/// Checks that `bytes` is what fhe.rs itself writes for the ciphertext it decodes to.
#[cfg(test)]
pub(crate) fn reencoded(bytes: &[u8], params: &Params) -> Vec<u8> {
    use fhe_traits::DeserializeParametrized;
    fhe::bfv::Ciphertext::from_bytes(bytes, params.bfv())
        .expect("fhe.rs decodes it")
        .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhe::bfv::{Ciphertext, Encoding, Plaintext};
    use fhe_traits::{DeserializeParametrized, FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
    use rand::SeedableRng;

    #[test]
    fn fhe_rs_reads_writes_and_decrypts_these_ciphertexts_as_its_own() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for preset in ["col-4096", "col-8192", "col-16384"] {
            let params = crate::ParamSpec::preset(preset).unwrap().build().unwrap();
            let sk = SecretKey::random(params.bfv(), &mut rng);
            let enc = QueryEncryptor::new(&params, &sk).unwrap();
            let t = params.plaintext() as i64;
            for value in [0i64, 1, -1, 127, -128, 255, t / 2, -(t / 2), t - 1] {
                let bytes = enc.encrypt(value, &mut rng).unwrap();
                // Byte for byte fhe.rs's own serialization of the ciphertext it reads.
                assert_eq!(reencoded(&bytes, &params), bytes, "{preset} {value}");
                // fhe.rs decrypts it to what it decrypts its own encryption of the value to.
                let reference = sk
                    .try_encrypt(
                        &Plaintext::try_encode(&[value], Encoding::poly(), params.bfv()).unwrap(),
                        &mut rng,
                    )
                    .unwrap();
                let decrypt = |ct: &Ciphertext| {
                    Vec::<i64>::try_decode(&sk.try_decrypt(ct).unwrap(), Encoding::poly()).unwrap()
                };
                let ct = Ciphertext::from_bytes(&bytes, params.bfv()).unwrap();
                let (got, want) = (decrypt(&ct), decrypt(&reference));
                assert_eq!(got, want, "{preset} {value}");
                assert_eq!(
                    got[0].rem_euclid(t),
                    value.rem_euclid(t),
                    "{preset} {value}"
                );
                assert!(got[1..].iter().all(|&c| c == 0), "{preset} {value}");
                // Fresh noise: as small as fhe.rs's own fresh ciphertexts (within 2 bits).
                // SAFETY: measurement with the test's own key.
                let (ours, theirs) = unsafe {
                    (
                        sk.measure_noise(&ct).unwrap(),
                        sk.measure_noise(&reference).unwrap(),
                    )
                };
                assert!(
                    ours <= theirs + 2,
                    "{preset}: noise {ours} vs fhe.rs {theirs}"
                );
            }
        }
    }

    #[test]
    fn two_encryptions_of_one_value_differ() {
        let params = crate::ParamSpec::preset("col-4096")
            .unwrap()
            .build()
            .unwrap();
        let mut rng = rand::rng();
        let sk = SecretKey::random(params.bfv(), &mut rng);
        let enc = QueryEncryptor::new(&params, &sk).unwrap();
        assert_ne!(
            enc.encrypt(3, &mut rng).unwrap(),
            enc.encrypt(3, &mut rng).unwrap()
        );
    }
}
