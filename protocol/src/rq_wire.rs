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
    let c0 = read_component(&ct.c[0], moduli, n, &bad, 0)?;
    Ok(Some(Seeded { c0, seed }))
}

/// Checks an unseeded ciphertext of `components` polynomials at level 0 over `moduli`
/// as fhe.rs's decoder and `wire::decode_ciphertext` would — parses, component count,
/// level, NTT representation, degree, sizes, reduced coefficients — without building
/// fhe.rs objects (no transforms): for servers that pass ciphertexts on unchanged.
/// `Ok(false)` for a seeded ciphertext, which the caller decodes in full instead.
pub fn check_unseeded(
    bytes: &[u8],
    moduli: &[u64],
    n: usize,
    components: usize,
    artifact: &str,
) -> Result<bool> {
    let bad = |why: String| ProtocolError::wire(artifact, format!("ciphertext: {why}"));
    let ct = fhe::proto::bfv::Ciphertext::decode(bytes).map_err(|e| bad(e.to_string()))?;
    if !ct.seed.is_empty() {
        return Ok(false);
    }
    if ct.c.len() != components {
        return Err(bad(format!(
            "{} components, expected {components}",
            ct.c.len()
        )));
    }
    if ct.level != 0 {
        return Err(bad(format!("level {}, expected the top level 0", ct.level)));
    }
    for (i, c) in ct.c.iter().enumerate() {
        read_component(c, moduli, n, &bad, i)?;
    }
    Ok(true)
}

/// One serialized polynomial of a ciphertext: NTT representation, degree n, the packed
/// size over `moduli`, every coefficient reduced; its power-basis words, limb-major.
fn read_component(
    bytes: &[u8],
    moduli: &[u64],
    n: usize,
    bad: &dyn Fn(String) -> ProtocolError,
    index: usize,
) -> Result<Vec<u64>> {
    let rq = RqWire::decode(bytes).map_err(|e| bad(format!("component {index}: {e}")))?;
    if rq.representation != NTT {
        return Err(bad(format!(
            "component {index} in representation {}; ciphertexts travel in Ntt",
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
            "{} coefficient bytes in component {index}, expected {total}",
            rq.coefficients.len()
        )));
    }
    let mut words = Vec::with_capacity(moduli.len() * n);
    let mut at = 0;
    for (&q, &len) in moduli.iter().zip(&lengths) {
        let limb = fhe_util::transcode_from_bytes(&rq.coefficients[at..at + len], packed_bits(q));
        at += len;
        if limb.len() < n || limb[..n].iter().any(|&c| c >= q) {
            return Err(bad(format!("a coefficient not reduced modulo {q}")));
        }
        words.extend_from_slice(&limb[..n]);
    }
    Ok(words)
}

/// An unseeded level-0 ciphertext as fhe.rs serializes it, from its polynomials'
/// coefficient-form words (limb-major over `moduli`, each reduced): NTT representation
/// recorded, coefficients bit-packed limb by limb, the variable-time flag as given.
pub fn write_ciphertext(polys: &[&[u64]], moduli: &[u64], allow_variable_time: bool) -> Vec<u8> {
    let n = polys.first().map_or(0, |p| p.len() / moduli.len().max(1));
    let c = polys
        .iter()
        .map(|words| {
            let mut packed = Vec::new();
            for (limb, &q) in words.chunks_exact(n).zip(moduli) {
                packed.extend(fhe_util::transcode_to_bytes(limb, packed_bits(q)));
            }
            RqWire {
                representation: NTT,
                degree: n as u32,
                coefficients: packed,
                allow_variable_time,
            }
            .encode_to_vec()
        })
        .collect();
    fhe::proto::bfv::Ciphertext {
        c,
        seed: Vec::new(),
        level: 0,
    }
    .encode_to_vec()
}
