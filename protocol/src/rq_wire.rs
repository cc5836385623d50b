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
    Ok(read_unseeded(bytes, moduli, n, components, artifact)?.is_some())
}

/// [`check_unseeded`], returning each component's coefficient-form words (limb-major):
/// what a client turns into fhe.rs polynomials with the kernels' NTT. `Ok(None)` for a
/// seeded ciphertext.
pub fn read_unseeded(
    bytes: &[u8],
    moduli: &[u64],
    n: usize,
    components: usize,
    artifact: &str,
) -> Result<Option<Vec<Vec<u64>>>> {
    let bad = |why: String| ProtocolError::wire(artifact, format!("ciphertext: {why}"));
    let ct = fhe::proto::bfv::Ciphertext::decode(bytes).map_err(|e| bad(e.to_string()))?;
    if !ct.seed.is_empty() {
        return Ok(None);
    }
    // Exactly the bytes of its fields (what fhe.rs writes): padding in unknown fields,
    // which the decoder skips, would travel on to the client unchecked.
    if ct.encoded_len() != bytes.len() {
        return Err(bad(format!(
            "{} bytes where its fields take {}",
            bytes.len(),
            ct.encoded_len()
        )));
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
    ct.c.iter()
        .enumerate()
        .map(|(i, c)| read_component(c, moduli, n, &bad, i))
        .collect::<Result<Vec<_>>>()
        .map(Some)
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
    if rq.encoded_len() != bytes.len() {
        return Err(bad(format!(
            "component {index}: {} bytes where its fields take {}",
            bytes.len(),
            rq.encoded_len()
        )));
    }
    if !n.is_multiple_of(8) {
        return Err(bad(format!("degree {n} is not a multiple of 8")));
    }
    if rq.representation != NTT {
        let name = match rq.representation {
            1 => "PowerBasis".to_string(),
            3 => "NttShoup".to_string(),
            other => format!("an unknown ({other})"),
        };
        return Err(bad(format!(
            "component {index} in {name} representation; ciphertexts travel in Ntt"
        )));
    }
    if rq.degree as usize != n {
        return Err(bad(format!(
            "component {index}: degree {}, expected {n}",
            rq.degree
        )));
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
        let start = words.len();
        unpack_into(
            &rq.coefficients[at..at + len],
            packed_bits(q),
            n,
            &mut words,
        );
        at += len;
        if words[start..].iter().any(|&c| c >= q) {
            return Err(bad(format!(
                "component {index}: a coefficient not reduced modulo {q}"
            )));
        }
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
                pack_into(limb, packed_bits(q), &mut packed);
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

/// Appends `words` (each below 2^nbits) bit-packed as fhe-util's `transcode_to_bytes`
/// packs them — least significant bit first, no padding between words — a word at a
/// time rather than a byte at a time.
pub fn pack_into(words: &[u64], nbits: usize, out: &mut Vec<u8>) {
    assert!((1..=62).contains(&nbits), "packing width {nbits}");
    let mask = u64::MAX >> (64 - nbits);
    let mut acc = 0u128;
    let mut filled = 0;
    out.reserve((words.len() * nbits).div_ceil(8));
    for &w in words {
        acc |= ((w & mask) as u128) << filled;
        filled += nbits;
        if filled >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            filled -= 64;
        }
    }
    let tail = acc.to_le_bytes();
    out.extend_from_slice(&tail[..filled.div_ceil(8)]);
}

/// Appends the first `count` words of bytes packed as [`pack_into`] packs them (the
/// inverse of fhe-util's `transcode_to_bytes`); `bytes` holds at least count·nbits bits.
pub fn unpack_into(bytes: &[u8], nbits: usize, count: usize, out: &mut Vec<u64>) {
    assert!((1..=62).contains(&nbits), "packing width {nbits}");
    assert!(bytes.len() * 8 >= count * nbits, "too few packed bytes");
    let mask = u64::MAX >> (64 - nbits);
    out.reserve(count);
    for i in 0..count {
        let bit = i * nbits;
        let (byte, shift) = (bit / 8, bit % 8);
        // shift + nbits ≤ 69 bits: nine bytes at most, read as one little-endian window.
        let window = match bytes.get(byte..byte + 16) {
            Some(sixteen) => u128::from_le_bytes(sixteen.try_into().expect("16 bytes")),
            None => {
                let mut window = [0u8; 16];
                let end = (byte + 9).min(bytes.len());
                window[..end - byte].copy_from_slice(&bytes[byte..end]);
                u128::from_le_bytes(window)
            }
        };
        out.push((window >> shift) as u64 & mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A result ciphertext is checked as written; padding in an unknown field — which the
    /// decoder would skip and a pass-through would forward — is refused, at either level.
    #[test]
    fn results_are_read_back_and_padded_ones_refused() {
        let (moduli, n) = ([97u64, 101], 8);
        let polys: Vec<Vec<u64>> = (0..3u64)
            .map(|k| (0..16).map(|i| (i * 7 + k) % 97).collect())
            .collect();
        let refs: Vec<&[u64]> = polys.iter().map(Vec::as_slice).collect();
        let bytes = write_ciphertext(&refs, &moduli, false);
        let read = read_unseeded(&bytes, &moduli, n, 3, "results")
            .unwrap()
            .unwrap();
        assert_eq!(read, polys);
        // Field 15 (varint 1) appended to the ciphertext, then inside component 0.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0x78, 0x01]);
        let e = check_unseeded(&padded, &moduli, n, 3, "results").unwrap_err();
        assert!(e.to_string().contains("where its fields take"), "{e}");
        let mut ct = fhe::proto::bfv::Ciphertext::decode(bytes.as_slice()).unwrap();
        ct.c[0].extend_from_slice(&[0x78, 0x01]);
        let e = check_unseeded(&ct.encode_to_vec(), &moduli, n, 3, "results").unwrap_err();
        assert!(e.to_string().contains("component 0"), "{e}");
        // Wrong component count and an unreduced word are named.
        assert!(check_unseeded(&bytes, &moduli, n, 2, "results").is_err());
        let mut rq = RqWire::decode(
            fhe::proto::bfv::Ciphertext::decode(bytes.as_slice())
                .unwrap()
                .c[2]
                .as_slice(),
        )
        .unwrap();
        rq.coefficients[0] = 0xFF;
        let mut ct = fhe::proto::bfv::Ciphertext::decode(bytes.as_slice()).unwrap();
        ct.c[2] = rq.encode_to_vec();
        let e = check_unseeded(&ct.encode_to_vec(), &moduli, n, 3, "results").unwrap_err();
        assert!(
            e.to_string()
                .contains("component 2: a coefficient not reduced"),
            "{e}"
        );
    }

    /// Word-at-a-time packing gives fhe-util's bytes, and unpacking its words, for every
    /// width and for lengths that end mid-byte.
    #[test]
    fn packing_equals_fhe_util_transcoding() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for nbits in 1..=62usize {
            for len in [1usize, 7, 8, 9, 64, 131] {
                let words: Vec<u64> = (0..len)
                    .map(|_| rng.random::<u64>() >> (64 - nbits))
                    .collect();
                let mut packed = Vec::new();
                pack_into(&words, nbits, &mut packed);
                assert_eq!(
                    packed,
                    fhe_util::transcode_to_bytes(&words, nbits),
                    "{nbits} bits"
                );
                let mut back = Vec::new();
                unpack_into(&packed, nbits, len, &mut back);
                assert_eq!(back, words, "{nbits} bits, {len} words");
                let theirs = fhe_util::transcode_from_bytes(&packed, nbits);
                assert_eq!(&theirs[..len], words.as_slice());
            }
        }
    }
}
