//! fhe-math's serialized polynomial (`Rq`, rq.proto) and fhe.rs's seeded ciphertext, read
//! and written without going through fhe.rs objects: the client's fast query encryption
//! writes them, and the fused engine reads the query straight into kernel words.
//!
//! fhe-math's proto module is private; this is the same message, field for field, so the
//! bytes are interchangeable (tested: fhe.rs re-serializes what we write byte for byte).

use crate::error::{ProtocolError, Result};
use prost::Message;

/// fhe-math's `Rq` message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RqWire {
    /// 1 = power basis, 2 = NTT, 3 = NTT with Shoup quotients.
    #[prost(int32, tag = "1")]
    pub representation: i32,
    /// The ring degree.
    #[prost(uint32, tag = "2")]
    pub degree: u32,
    /// Power-basis coefficients, limb after limb, each packed to its modulus' bit size.
    #[prost(bytes = "vec", tag = "3")]
    pub coefficients: Vec<u8>,
    /// fhe-math's variable-time flag (fresh ciphertexts carry `true`).
    #[prost(bool, tag = "4")]
    pub allow_variable_time: bool,
}

/// The `representation` value of a polynomial in NTT form.
pub const NTT: i32 = 2;

/// Bits fhe-math packs each coefficient modulo `q` into.
pub fn packed_bits(q: u64) -> usize {
    64 - (q - 1).leading_zeros() as usize
}

/// A fresh seeded ciphertext as it travels: c₀ in power basis (limb-major) and the seed
/// c₁ is drawn from.
pub struct Seeded {
    /// c₀'s power-basis coefficients, limb-major, each below its prime.
    pub c0: Vec<u64>,
    /// The 32-byte seed of c₁.
    pub seed: [u8; 32],
}

/// Reads a seeded two-component ciphertext at level 0 over `moduli` and degree `n`;
/// `Ok(None)` when the bytes hold another (valid-looking) shape of ciphertext, which the
/// caller decodes through fhe.rs. Checks what fhe.rs's decoder checks and what it does not
/// (reduced coefficients, NTT representation, level 0), naming what is wrong.
pub fn read_seeded(bytes: &[u8], moduli: &[u64], n: usize, what: &str) -> Result<Option<Seeded>> {
    let bad = |why: String| ProtocolError::wire("query", format!("{what}: {why}"));
    let ct = fhe::proto::bfv::Ciphertext::decode(bytes).map_err(|e| bad(e.to_string()))?;
    if ct.seed.is_empty() || ct.c.len() != 1 {
        return Ok(None);
    }
    if ct.level != 0 {
        return Err(bad(format!("level {}, expected the top level 0", ct.level)));
    }
    let seed: [u8; 32] = ct
        .seed
        .as_slice()
        .try_into()
        .map_err(|_| bad(format!("a seed of {} bytes, expected 32", ct.seed.len())))?;
    let rq = RqWire::decode(ct.c[0].as_slice()).map_err(|e| bad(e.to_string()))?;
    if rq.representation != NTT {
        return Err(bad(format!(
            "component 0 in representation {}; ciphertexts travel in Ntt",
            rq.representation
        )));
    }
    if rq.degree as usize != n {
        return Err(bad(format!("degree {}, expected {n}", rq.degree)));
    }
    let lengths: Vec<usize> = moduli.iter().map(|&q| packed_bits(q) * n / 8).collect();
    let total: usize = lengths.iter().sum();
    if rq.coefficients.len() != total {
        return Err(bad(format!(
            "{} coefficient bytes, expected {total}",
            rq.coefficients.len()
        )));
    }
    let mut c0 = Vec::with_capacity(moduli.len() * n);
    let mut at = 0;
    for (&q, &len) in moduli.iter().zip(&lengths) {
        let limb = fhe_util::transcode_from_bytes(&rq.coefficients[at..at + len], packed_bits(q));
        at += len;
        if limb.len() < n || limb[..n].iter().any(|&c| c >= q) {
            return Err(bad(format!("a coefficient not reduced modulo {q}")));
        }
        c0.extend_from_slice(&limb[..n]);
    }
    Ok(Some(Seeded { c0, seed }))
}
