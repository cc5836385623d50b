//! The byte format of everything that crosses a role boundary.
//!
//! fhe.rs deserializes ciphertexts against whatever parameters it is handed and checks
//! little (it ignores the serialized degree, and trusts coefficient values), so bytes
//! from another parameter set can decode into garbage instead of failing. Every artifact
//! is therefore sealed in an envelope:
//!
//! ```text
//! magic "TSTN" | version u8 | kind u8 | parameter fingerprint u64 | deployment id u64
//! | payload length u64 | payload checksum u64 (word-wise FNV-1a)
//! | Ed25519 signature [64] (zero when unsigned) | payload
//! ```
//!
//! so a foreign parameter set, a truncated message, a message of the wrong kind or a
//! flipped bit is refused with a clear error before fhe.rs sees the bytes.
//!
//! The deployment id names the client whose keys a message belongs to: the first 8 bytes
//! of SHA-256 over the client's Ed25519 verifying key (see `Client::deployment`). What the
//! client sends — setup, enrolment, queries — it signs: the signature covers the header
//! (magic to length) and SHA-256 of the payload. The setup carries the verifying key;
//! servers bind to it and then accept enrolments and queries only when they verify under
//! it, so copying an id does not make a message someone else's. Messages the servers make
//! (shards, cluster results, results, resets) are not signed: between the main server and
//! its clusters, and back to the client, integrity against an adversary is the
//! transport's job (TLS).
//!
//! The checksum is FNV-1a: it detects accidents (truncation, bit rot, a wrong file), not
//! tampering — anyone can recompute it. What a tamperer can still send is exactly what
//! the decoders below must survive: every field that reaches fhe.rs or fhe-math
//! (component counts, levels, polynomial representations, coefficient ranges, feature
//! ids, lengths) is validated before use, and the seeded mutation fuzzer
//! (`cargo run --release -p protocol --example fuzz_roles`) re-seals mutated messages so
//! its mutations reach them. Authenticating who sent a message is not the envelope's job:
//! between machines it belongs to the transport (TLS with client certificates), and a
//! tampered ciphertext that decodes can at worst change scores, which only the client sees.

use crate::error::{ProtocolError, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use fhe::bfv::{BfvParameters, Ciphertext};
use fhe_traits::{DeserializeParametrized, Serialize};
use sha2::{Digest, Sha256};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

const MAGIC: &[u8; 4] = b"TSTN";
const VERSION: u8 = 2;
const SIGNED_LEN: usize = 4 + 1 + 1 + 8 + 8 + 8;
const SIGNATURE_AT: usize = SIGNED_LEN + 8;
/// Bytes of the envelope header before the payload.
pub const HEADER_LEN: usize = SIGNATURE_AT + 64;
/// Largest payload an envelope may announce (4 GiB: a 1,000,000-user columnar gallery is
/// about 360 MB); a network transport allocates by this bound before reading.
pub const MAX_PAYLOAD: u64 = 1 << 32;

/// What an envelope holds; a role refuses an envelope of another kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Artifact {
    /// Evaluation material the client hands the servers (keys, weights, mask).
    Setup = 1,
    /// The client's encrypted gallery.
    Enrolment = 2,
    /// One cluster's shard of the gallery.
    Shard = 3,
    /// An encrypted query.
    Query = 4,
    /// One cluster's evaluated ciphertexts.
    ClusterResult = 5,
    /// The compressed results the client decrypts.
    Results = 6,
    /// Main server → cluster: forget the deployment (keys and gallery).
    Reset = 7,
    /// Client → main server: replace or add some gallery units (users added or removed)
    /// without re-sending the gallery; carries a request id so a retry applies once.
    Update = 8,
    /// Main server → cluster: the units of an update that this cluster holds.
    ShardUpdate = 9,
    /// An encrypted query already extended by the client to the fused engine's basis
    /// Q∪P in NTT form (see `messages::ExtendedQuery`): no extension on the servers, at
    /// about six times the upload.
    QueryExtended = 10,
}

impl Artifact {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Setup,
            2 => Self::Enrolment,
            3 => Self::Shard,
            4 => Self::Query,
            5 => Self::ClusterResult,
            6 => Self::Results,
            7 => Self::Reset,
            8 => Self::Update,
            9 => Self::ShardUpdate,
            10 => Self::QueryExtended,
            _ => return None,
        })
    }

    /// Human name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Enrolment => "enrolment",
            Self::Shard => "gallery shard",
            Self::Query => "query",
            Self::ClusterResult => "cluster result",
            Self::Results => "results",
            Self::Reset => "reset",
            Self::Update => "gallery update",
            Self::ShardUpdate => "shard update",
            Self::QueryExtended => "extended query",
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a, byte by byte (for short inputs such as parameter fingerprints).
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(FNV_OFFSET, |h, b| (h ^ b as u64).wrapping_mul(FNV_PRIME))
}

/// FNV-1a over little-endian 8-byte words, then the tail bytes and the length: a
/// payload checksum eight times cheaper than byte-wise FNV on megabyte ciphertexts.
pub fn checksum(payload: &[u8]) -> u64 {
    let mut words = payload.chunks_exact(8);
    let mut h = FNV_OFFSET;
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(FNV_PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
    }
    (h ^ payload.len() as u64).wrapping_mul(FNV_PRIME)
}

/// Wraps a payload in an unsigned envelope of deployment `deployment`.
pub fn seal(kind: Artifact, fingerprint: u64, deployment: u64, payload: &[u8]) -> Vec<u8> {
    seal_written(kind, fingerprint, deployment, payload.len(), |out| {
        out.extend_from_slice(payload)
    })
}

/// [`seal`] for a payload that `write` appends, written once into the envelope's own
/// buffer (sized by `capacity`, the payload's expected length): large messages (tens of
/// MB of result ciphertexts) are neither built twice nor grown by copying.
pub fn seal_written(
    kind: Artifact,
    fingerprint: u64,
    deployment: u64,
    capacity: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + capacity);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&deployment.to_le_bytes());
    // Length and checksum once the payload is written.
    out.extend_from_slice(&[0u8; 16 + 64]);
    write(&mut out);
    assert!(out.len() >= HEADER_LEN, "a payload writer only appends");
    let len = (out.len() - HEADER_LEN) as u64;
    let sum = checksum(&out[HEADER_LEN..]);
    out[SIGNED_LEN - 8..SIGNED_LEN].copy_from_slice(&len.to_le_bytes());
    out[SIGNED_LEN..SIGNATURE_AT].copy_from_slice(&sum.to_le_bytes());
    out
}

/// The deployment id of an owner's verifying key: SHA-256 of the key, first 8 bytes.
pub fn deployment_of_key(key: &VerifyingKey) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// What a signature covers: the header up to the length, and SHA-256 of the payload.
fn signed_message(bytes: &[u8]) -> Vec<u8> {
    let mut message = bytes[..SIGNED_LEN].to_vec();
    message.extend_from_slice(&Sha256::digest(&bytes[HEADER_LEN..]));
    message
}

/// Seals a payload and signs it with the owner's key; the deployment id is the key's.
pub fn seal_signed(kind: Artifact, fingerprint: u64, key: &SigningKey, payload: &[u8]) -> Vec<u8> {
    let mut out = seal(
        kind,
        fingerprint,
        deployment_of_key(&key.verifying_key()),
        payload,
    );
    let signature = key.sign(&signed_message(&out));
    out[SIGNATURE_AT..HEADER_LEN].copy_from_slice(&signature.to_bytes());
    out
}

/// Who seals a message: the deployment's owner (the client), who signs it, or a server,
/// which labels it with the deployment it serves.
#[derive(Clone, Copy)]
pub enum Sealer<'a> {
    /// The client: signed with its key; the id is the key's.
    Owner(&'a SigningKey),
    /// A server: unsigned, labelled with this deployment id.
    Server(u64),
}

impl Sealer<'_> {
    /// Seals `payload` as `kind` under `fingerprint`.
    pub fn seal(self, kind: Artifact, fingerprint: u64, payload: &[u8]) -> Vec<u8> {
        match self {
            Sealer::Owner(key) => seal_signed(kind, fingerprint, key, payload),
            Sealer::Server(id) => seal(kind, fingerprint, id, payload),
        }
    }
}

/// Refuses a message unless it is signed by `owner` (after [`open`] accepted it).
pub fn verify_owner(bytes: &[u8], kind: Artifact, owner: &VerifyingKey) -> Result<()> {
    if bytes.len() < HEADER_LEN {
        return Err(ProtocolError::wire(kind.name(), "truncated header"));
    }
    let signature = Signature::from_bytes(
        bytes[SIGNATURE_AT..HEADER_LEN]
            .try_into()
            .expect("64 bytes"),
    );
    owner
        .verify_strict(&signed_message(bytes), &signature)
        .map_err(|_| {
            ProtocolError::wire(
                kind.name(),
                "is not signed by this deployment's owner (a copied deployment id is not enough)",
            )
        })
}

/// The kind of a sealed message, so a server can dispatch before opening it fully.
pub fn peek(bytes: &[u8]) -> Result<Artifact> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(ProtocolError::wire(
            "request",
            "not a touchstone message (bad magic or truncated header)",
        ));
    }
    Artifact::from_byte(bytes[5])
        .ok_or_else(|| ProtocolError::wire("request", format!("unknown kind {}", bytes[5])))
}

/// The deployment id of a sealed message (after [`open`] or [`peek`] accepted it).
pub fn deployment(bytes: &[u8]) -> Result<u64> {
    if bytes.len() < HEADER_LEN {
        return Err(ProtocolError::wire("request", "truncated header"));
    }
    Ok(u64::from_le_bytes(
        bytes[14..22].try_into().expect("8 bytes"),
    ))
}

/// Refuses a message of another deployment than `expected`.
pub fn check_owner(bytes: &[u8], kind: Artifact, expected: u64) -> Result<()> {
    let found = deployment(bytes)?;
    if found != expected {
        return Err(ProtocolError::wire(
            kind.name(),
            format!(
                "belongs to deployment {found:016x}, but this deployment is {expected:016x} \
                 (another client's keys; a server serves one client until it is reset)"
            ),
        ));
    }
    Ok(())
}

/// Checks an envelope and returns its payload.
pub fn open(bytes: &[u8], kind: Artifact, fingerprint: u64) -> Result<&[u8]> {
    let what = kind.name();
    if bytes.len() < HEADER_LEN {
        return Err(ProtocolError::wire(
            what,
            format!(
                "truncated: {} bytes, a header alone is {HEADER_LEN}",
                bytes.len()
            ),
        ));
    }
    if &bytes[..4] != MAGIC {
        return Err(ProtocolError::wire(
            what,
            "not a touchstone message (bad magic)",
        ));
    }
    if bytes[4] != VERSION {
        return Err(ProtocolError::wire(
            what,
            format!("format version {} (this build reads {VERSION})", bytes[4]),
        ));
    }
    match Artifact::from_byte(bytes[5]) {
        Some(found) if found == kind => {}
        Some(found) => {
            return Err(ProtocolError::wire(
                what,
                format!("holds a {} message instead", found.name()),
            ))
        }
        None => {
            return Err(ProtocolError::wire(
                what,
                format!("unknown kind {}", bytes[5]),
            ))
        }
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let found_fingerprint = word(6);
    if found_fingerprint != fingerprint {
        return Err(ProtocolError::wire(
            what,
            format!(
                "made under another parameter set (fingerprint {found_fingerprint:016x}, \
                 expected {fingerprint:016x})"
            ),
        ));
    }
    let length = word(22);
    if length > MAX_PAYLOAD {
        return Err(ProtocolError::wire(
            what,
            format!("announces a {length}-byte payload, above the {MAX_PAYLOAD}-byte limit"),
        ));
    }
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != length {
        return Err(ProtocolError::wire(
            what,
            format!(
                "payload is {} bytes, header announces {length} (truncated or padded)",
                payload.len()
            ),
        ));
    }
    if checksum(payload) != word(30) {
        return Err(ProtocolError::wire(
            what,
            "checksum mismatch: corrupted in transit",
        ));
    }
    Ok(payload)
}

/// Appends length-prefixed fields to a payload.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer whose buffer holds `bytes` before it grows (large payloads).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// A little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.u64(v as u64)
    }

    /// Bytes of a fixed, known length (no prefix).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    /// A serialized ciphertext.
    pub fn ciphertext(&mut self, ct: &Ciphertext) -> &mut Self {
        self.bytes(&ct.to_bytes())
    }

    /// Words, little-endian, without a length (the reader knows how many).
    pub fn words(&mut self, words: &[u64]) -> &mut Self {
        self.buf.reserve(words.len() * 8);
        for w in words {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
        self
    }

    /// The finished payload.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields back, reporting what it was reading when bytes ran out.
pub struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads the payload of a `what` message.
    pub fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Self { what, buf, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(ProtocolError::wire(
                self.what,
                format!(
                    "truncated while reading {field} at byte {} ({} bytes wanted, {} left)",
                    self.pos,
                    n,
                    self.buf.len() - self.pos
                ),
            )),
        }
    }

    /// A little-endian u64.
    pub fn u64(&mut self, field: &str) -> Result<u64> {
        let b = self.take(8, field)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A u64 that must be at most `max` (counts that size allocations).
    pub fn count(&mut self, field: &str, max: u64) -> Result<usize> {
        let v = self.u64(field)?;
        if v > max {
            return Err(ProtocolError::wire(
                self.what,
                format!("{field} = {v} exceeds the limit {max}"),
            ));
        }
        Ok(v as usize)
    }

    /// A little-endian i64.
    pub fn i64(&mut self, field: &str) -> Result<i64> {
        Ok(self.u64(field)? as i64)
    }

    /// Exactly `n` bytes (a fixed-length field).
    pub fn raw(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        self.take(n, field)
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self, field: &str) -> Result<&'a [u8]> {
        let n = self.u64(field)?;
        let n =
            usize::try_from(n).map_err(|_| ProtocolError::wire(self.what, "length overflow"))?;
        self.take(n, field)
    }

    /// A ciphertext under `par` with `components` polynomials (None: any number ≥ 2).
    pub fn ciphertext(
        &mut self,
        field: &str,
        par: &Arc<BfvParameters>,
        components: Option<usize>,
    ) -> Result<Ciphertext> {
        let bytes = self.bytes(field)?;
        decode_ciphertext(self.what, field, bytes, par, components)
    }

    /// `count` little-endian words (bounded by the bytes present, checked first).
    pub fn words(&mut self, field: &str, count: usize) -> Result<Vec<u64>> {
        let bytes = self.take(
            count.checked_mul(8).ok_or_else(|| {
                ProtocolError::wire(self.what, format!("{field}: length overflow"))
            })?,
            field,
        )?;
        Ok(bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(ProtocolError::wire(
                self.what,
                format!("{} unexpected trailing bytes", self.buf.len() - self.pos),
            ));
        }
        Ok(())
    }
}

/// fhe.rs deserialization of a top-level ciphertext with `components` polynomials (None:
/// any number), with any panic inside fhe.rs turned into an error: bad bytes must never
/// bring a server down.
pub fn decode_ciphertext(
    what: &str,
    field: &str,
    bytes: &[u8],
    par: &Arc<BfvParameters>,
    components: Option<usize>,
) -> Result<Ciphertext> {
    let decoded = catch_unwind(AssertUnwindSafe(|| Ciphertext::from_bytes(bytes, par)));
    match decoded {
        Ok(Ok(ct)) => {
            if let Some(n) = components.filter(|&n| n != ct.len()) {
                return Err(ProtocolError::wire(
                    what,
                    format!("{field} has {} components, expected {n}", ct.len()),
                ));
            }
            check_ciphertext(what, field, &ct, par)?;
            Ok(ct)
        }
        Ok(Err(e)) => Err(ProtocolError::wire(what, format!("{field}: {e}"))),
        Err(_) => Err(ProtocolError::wire(
            what,
            format!("{field}: malformed ciphertext"),
        )),
    }
}

/// What fhe.rs's deserializer does not check but its arithmetic assumes (and asserts on,
/// or silently computes garbage with): every polynomial at the top level of the chain, in
/// NTT representation (the serialized representation byte is taken as given, so an edited
/// byte yields a PowerBasis or NttShoup polynomial that panics in the first subtraction),
/// and every coefficient reduced modulo its prime (bit-packing allows values up to the next
/// power of two).
fn check_ciphertext(
    what: &str,
    field: &str,
    ct: &Ciphertext,
    par: &Arc<BfvParameters>,
) -> Result<()> {
    use fhe_math::rq::Representation;
    if ct.len() < 2 || ct.len() > 3 {
        return Err(ProtocolError::wire(
            what,
            format!(
                "{field} has {} components; this protocol uses 2 or 3",
                ct.len()
            ),
        ));
    }
    let top = par
        .context_at_level(0)
        .map_err(|e| ProtocolError::wire(what, e.to_string()))?;
    let moduli = par.moduli();
    for (i, poly) in ct.iter().enumerate() {
        // Every artifact of this protocol lives at the top level of the modulus chain.
        if poly.ctx() != top {
            return Err(ProtocolError::wire(
                what,
                format!("{field} is not at the top level (component {i})"),
            ));
        }
        if poly.representation() != &Representation::Ntt {
            return Err(ProtocolError::wire(
                what,
                format!(
                    "{field} component {i} is in {:?} representation; ciphertexts travel in Ntt",
                    poly.representation()
                ),
            ));
        }
        let coefficients = poly.coefficients();
        if coefficients.nrows() != moduli.len() || coefficients.ncols() != par.degree() {
            return Err(ProtocolError::wire(
                what,
                format!(
                    "{field} component {i} has {} × {} coefficients, expected {} × {}",
                    coefficients.nrows(),
                    coefficients.ncols(),
                    moduli.len(),
                    par.degree()
                ),
            ));
        }
        for (row, &q) in coefficients.outer_iter().zip(moduli) {
            if row.iter().any(|&c| c >= q) {
                return Err(ProtocolError::wire(
                    what,
                    format!("{field} component {i} holds a coefficient not reduced modulo {q}"),
                ));
            }
        }
    }
    Ok(())
}

/// Decodes an fhe.rs key (or any parametrized object) with panics turned into errors.
pub fn decode_parametrized<T>(what: &str, bytes: &[u8], par: &Arc<BfvParameters>) -> Result<T>
where
    T: DeserializeParametrized<Parameters = BfvParameters, Error = fhe::Error>,
{
    match catch_unwind(AssertUnwindSafe(|| T::from_bytes(bytes, par))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ProtocolError::wire(what, e.to_string())),
        Err(_) => Err(ProtocolError::wire(what, "malformed key material")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let payload = b"hello ciphertexts".to_vec();
        let sealed = seal(Artifact::Query, 42, 9, &payload);
        assert_eq!(open(&sealed, Artifact::Query, 42).unwrap(), &payload[..]);
        assert_eq!(deployment(&sealed).unwrap(), 9);
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let signed = seal_signed(Artifact::Query, 42, &key, &payload);
        assert_eq!(open(&signed, Artifact::Query, 42).unwrap(), &payload[..]);
        assert!(verify_owner(&signed, Artifact::Query, &key.verifying_key()).is_ok());
        assert!(verify_owner(&signed, Artifact::Query, &other.verifying_key()).is_err());
        assert!(verify_owner(&sealed, Artifact::Query, &key.verifying_key()).is_err());
        // The signature covers the header and the payload.
        for at in [5usize, 6, 14, 22, signed.len() - 1] {
            let mut forged = signed.clone();
            forged[at] ^= 1;
            assert!(
                verify_owner(&forged, Artifact::Query, &key.verifying_key()).is_err(),
                "byte {at}"
            );
        }
        assert!(check_owner(&sealed, Artifact::Query, 9).is_ok());
        let e = check_owner(&sealed, Artifact::Query, 8)
            .unwrap_err()
            .to_string();
        assert!(e.contains("belongs to deployment 0000000000000009"), "{e}");

        let err = |bytes: &[u8], kind, fp| open(bytes, kind, fp).unwrap_err().to_string();
        assert!(err(&sealed, Artifact::Query, 7).contains("another parameter set"));
        assert!(err(&sealed, Artifact::Results, 42).contains("holds a query message"));
        assert!(err(&sealed[..sealed.len() - 1], Artifact::Query, 42).contains("truncated"));
        assert!(err(&sealed[..10], Artifact::Query, 42).contains("truncated"));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(err(&flipped, Artifact::Query, 42).contains("checksum"));
        let mut magic = sealed.clone();
        magic[0] = b'X';
        assert!(err(&magic, Artifact::Query, 42).contains("magic"));
    }

    #[test]
    fn checksum_sees_every_byte_and_the_length() {
        let base: Vec<u8> = (0..37u8).collect();
        let reference = checksum(&base);
        for i in 0..base.len() {
            let mut changed = base.clone();
            changed[i] ^= 0x01;
            assert_ne!(checksum(&changed), reference, "flip at byte {i}");
        }
        assert_ne!(checksum(&base[..36]), reference);
        assert_ne!(
            checksum(&[0u8; 8]),
            checksum(&[0u8; 16]),
            "zero words still count"
        );
    }

    #[test]
    fn reader_reports_truncation_with_field() {
        let mut w = Writer::new();
        w.u64(5).bytes(b"abc");
        let buf = w.finish();
        let mut r = Reader::new("test", &buf[..buf.len() - 1]);
        assert_eq!(r.u64("count").unwrap(), 5);
        let e = r.bytes("blob").unwrap_err().to_string();
        assert!(e.contains("truncated while reading blob"), "{e}");

        let mut r = Reader::new("test", &buf);
        assert!(r
            .count("count", 4)
            .unwrap_err()
            .to_string()
            .contains("exceeds"));
    }
}
