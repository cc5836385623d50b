//! The messages roles exchange, and their payload formats inside a [`wire`] envelope.
//!
//! Each message has `encode` (to sealed bytes) and `decode` (from sealed bytes, against
//! the receiving role's own parameters). The main server shards the gallery without
//! ever parsing a ciphertext: enrolment units pass through it as raw bytes.

use crate::error::{ProtocolError, Result};
use crate::params::Params;
use crate::wire::{self, Artifact, Reader, Sealer, Writer};
use ed25519_dalek::{SigningKey, VerifyingKey};
use fhe::bfv::{Ciphertext, EvaluationKey, RelinearizationKey};
use fhe_traits::Serialize;

/// Limits on counts read from the wire, so a corrupt count cannot ask for terabytes.
const MAX_FEATURES: u64 = crate::limits::MAX_FEATURES as u64;
const MAX_ITEMS: u64 = 1 << 32;
/// The largest |weight| a 16-bit quantizer produces.
const MAX_WEIGHT: u64 = 1 << 15;

/// Which encrypted layout a deployment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Blind-Touch's slot layout; optionally with encrypted weights and mask.
    BlindTouch {
        /// Reproduce Blind-Touch's ciphertext×ciphertext weight and mask products.
        encrypted_weights: bool,
    },
    /// Feature-major layout with tensor products only.
    Columnar,
}

impl Layout {
    fn tag(self) -> u64 {
        match self {
            Layout::BlindTouch {
                encrypted_weights: false,
            } => 1,
            Layout::BlindTouch {
                encrypted_weights: true,
            } => 2,
            Layout::Columnar => 3,
        }
    }

    fn from_tag(tag: u64) -> Result<Self> {
        Ok(match tag {
            1 => Layout::BlindTouch {
                encrypted_weights: false,
            },
            2 => Layout::BlindTouch {
                encrypted_weights: true,
            },
            3 => Layout::Columnar,
            other => {
                return Err(ProtocolError::wire(
                    "setup",
                    format!("unknown layout tag {other}"),
                ))
            }
        })
    }

    /// Components of one evaluated ciphertext: 2 after relinearization, 3 without.
    pub fn result_components(self) -> usize {
        match self {
            Layout::BlindTouch { .. } => 2,
            Layout::Columnar => 3,
        }
    }
}

/// What the client gives the servers so they can evaluate: the head weights (in the
/// clear, or encrypted with the mask in Blind-Touch's faithful mode) and, for
/// blindtouch, relinearization and rotation keys. Never anything secret.
pub struct Setup {
    /// The owner's Ed25519 verifying key: servers accept enrolments and queries signed by
    /// it, and the deployment id is derived from it.
    pub owner: VerifyingKey,
    /// The layout the gallery and queries use.
    pub layout: Layout,
    /// Template length d.
    pub features: usize,
    /// Quantized weights in the clear (absent when they are encrypted).
    pub weights: Option<Vec<i64>>,
    /// Relinearization key (blindtouch).
    pub relin_key: Option<RelinearizationKey>,
    /// Rotation keys (blindtouch).
    pub rotation_keys: Option<EvaluationKey>,
    /// Encrypted repeated weights and encrypted mask (blindtouch, encrypted_weights).
    pub encrypted: Option<(Ciphertext, Ciphertext)>,
}

/// Byte sizes of the evaluation material, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupSizes {
    /// The whole setup message.
    pub total: usize,
    /// The relinearization key.
    pub relin_key: usize,
    /// All rotation (Galois) keys.
    pub rotation_keys: usize,
    /// Encrypted weights and mask.
    pub encrypted_weights: usize,
}

fn optional(w: &mut Writer, bytes: Option<Vec<u8>>) -> usize {
    match bytes {
        Some(b) => {
            w.u64(1).bytes(&b);
            b.len()
        }
        None => {
            w.u64(0);
            0
        }
    }
}

fn read_flag(r: &mut Reader, field: &str) -> Result<bool> {
    match r.u64(field)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(ProtocolError::wire(
            "setup",
            format!("{field} flag is {other}"),
        )),
    }
}

impl Setup {
    /// Sealed bytes, signed by the owner, and the sizes of their parts.
    pub fn encode(&self, params: &Params, owner: &SigningKey) -> (Vec<u8>, SetupSizes) {
        let mut w = Writer::new();
        w.raw(owner.verifying_key().as_bytes());
        w.u64(self.layout.tag()).u64(self.features as u64);
        match &self.weights {
            Some(ws) => {
                w.u64(1).u64(ws.len() as u64);
                ws.iter().for_each(|&x| {
                    w.i64(x);
                });
            }
            None => {
                w.u64(0);
            }
        }
        let relin_key = optional(&mut w, self.relin_key.as_ref().map(|k| k.to_bytes()));
        let rotation_keys = optional(&mut w, self.rotation_keys.as_ref().map(|k| k.to_bytes()));
        let encrypted_weights = match &self.encrypted {
            Some((weights, mask)) => {
                let (a, b) = (weights.to_bytes(), mask.to_bytes());
                w.u64(1).bytes(&a).bytes(&b);
                a.len() + b.len()
            }
            None => {
                w.u64(0);
                0
            }
        };
        let bytes = wire::seal_signed(Artifact::Setup, params.fingerprint(), owner, &w.finish());
        let sizes = SetupSizes {
            total: bytes.len(),
            relin_key,
            rotation_keys,
            encrypted_weights,
        };
        (bytes, sizes)
    }

    /// Parses setup bytes against the receiver's parameters, and checks that they are
    /// signed by the owner key they carry and labelled with that key's deployment id.
    pub fn decode(bytes: &[u8], params: &Params) -> Result<Self> {
        let payload = wire::open(bytes, Artifact::Setup, params.fingerprint())?;
        let par = params.bfv();
        let mut r = Reader::new("setup", payload);
        let owner_bytes: [u8; 32] = r.raw(32, "owner key")?.try_into().expect("32 bytes");
        let owner = VerifyingKey::from_bytes(&owner_bytes)
            .map_err(|_| ProtocolError::wire("setup", "the owner key is not an Ed25519 key"))?;
        if wire::deployment(bytes)? != wire::deployment_of_key(&owner) {
            return Err(ProtocolError::wire(
                "setup",
                "its deployment id is not the one its owner key gives",
            ));
        }
        wire::verify_owner(bytes, Artifact::Setup, &owner)?;
        let layout = Layout::from_tag(r.u64("layout")?)?;
        let features = r.count("features", MAX_FEATURES)?;
        // The layout must be able to hold this many features at this degree.
        let fits = match layout {
            Layout::BlindTouch { .. } => {
                crate::layout::BlindTouchLayout::new(params.degree(), features).map(|_| ())
            }
            Layout::Columnar => {
                crate::layout::ColumnarLayout::new(params.degree(), features).map(|_| ())
            }
        };
        fits.map_err(|e| ProtocolError::wire("setup", e.to_string()))?;
        let weights = if read_flag(&mut r, "weights")? {
            let n = r.count("weight count", MAX_FEATURES)?;
            if n != features {
                return Err(ProtocolError::wire(
                    "setup",
                    format!("{n} weights for {features} features"),
                ));
            }
            let weights = (0..n)
                .map(|_| r.i64("weight"))
                .collect::<Result<Vec<_>>>()?;
            // Quantized weights are codes of at most 16 bits.
            if let Some(w) = weights.iter().find(|w| w.unsigned_abs() > MAX_WEIGHT) {
                return Err(ProtocolError::wire(
                    "setup",
                    format!("weight {w} is outside ±{MAX_WEIGHT} (16-bit codes)"),
                ));
            }
            Some(weights)
        } else {
            None
        };
        let relin_key = if read_flag(&mut r, "relinearization key")? {
            Some(wire::decode_parametrized(
                "relinearization key",
                r.bytes("relinearization key")?,
                par,
            )?)
        } else {
            None
        };
        let rotation_keys = if read_flag(&mut r, "rotation keys")? {
            Some(wire::decode_parametrized(
                "rotation keys",
                r.bytes("rotation keys")?,
                par,
            )?)
        } else {
            None
        };
        let encrypted = if read_flag(&mut r, "encrypted weights")? {
            let weights = r.ciphertext("encrypted weights", par, Some(2))?;
            let mask = r.ciphertext("encrypted mask", par, Some(2))?;
            Some((weights, mask))
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            owner,
            layout,
            features,
            weights,
            relin_key,
            rotation_keys,
            encrypted,
        })
    }
}

/// One gallery ciphertext and where it belongs: ciphertext index `group` (blindtouch,
/// `feature` = 0) or group `group`, feature `feature` (columnar).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId {
    /// Gallery ciphertext index (blindtouch) or user group (columnar).
    pub group: usize,
    /// Feature index within a columnar group; 0 for blindtouch.
    pub feature: usize,
}

/// A gallery ciphertext, still serialized: the main server moves these without parsing.
pub struct RawUnit<'a> {
    /// Where it belongs.
    pub id: UnitId,
    /// Its fhe.rs bytes.
    pub bytes: &'a [u8],
}

/// The encrypted gallery (client → main server, kind `Enrolment`) or one cluster's part
/// of it (main server → cluster, kind `Shard`).
pub struct Gallery;

impl Gallery {
    /// Seals `users` and the units.
    pub fn encode<'a>(
        kind: Artifact,
        params: &Params,
        by: Sealer,
        users: usize,
        units: impl ExactSizeIterator<Item = (UnitId, &'a [u8])>,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        Self::write_body(&mut w, users, units);
        by.seal(kind, params.fingerprint(), &w.finish())
    }

    /// Seals an update (kinds `Update`, `ShardUpdate`): the request id, then the new user
    /// count and the units that replace or extend the stored ones.
    pub fn encode_update<'a>(
        kind: Artifact,
        params: &Params,
        by: Sealer,
        request: &RequestId,
        users: usize,
        units: impl ExactSizeIterator<Item = (UnitId, &'a [u8])>,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&request.0);
        Self::write_body(&mut w, users, units);
        by.seal(kind, params.fingerprint(), &w.finish())
    }

    fn write_body<'a>(
        w: &mut Writer,
        users: usize,
        units: impl ExactSizeIterator<Item = (UnitId, &'a [u8])>,
    ) {
        w.u64(users as u64).u64(units.len() as u64);
        for (id, bytes) in units {
            w.u64(id.group as u64).u64(id.feature as u64).bytes(bytes);
        }
    }

    /// Opens the envelope and lists the units without parsing any ciphertext.
    pub fn decode_raw<'a>(
        bytes: &'a [u8],
        kind: Artifact,
        params: &Params,
    ) -> Result<(usize, Vec<RawUnit<'a>>)> {
        let payload = wire::open(bytes, kind, params.fingerprint())?;
        let mut r = Reader::new(kind.name(), payload);
        let body = Self::read_body(&mut r, kind)?;
        r.finish()?;
        Ok(body)
    }

    /// Opens an update envelope: its request id, user count and units (unparsed).
    pub fn decode_update_raw<'a>(
        bytes: &'a [u8],
        kind: Artifact,
        params: &Params,
    ) -> Result<(RequestId, usize, Vec<RawUnit<'a>>)> {
        let payload = wire::open(bytes, kind, params.fingerprint())?;
        let mut r = Reader::new(kind.name(), payload);
        let request = RequestId(
            r.raw(16, "request id")?
                .try_into()
                .expect("Reader::raw returns 16 bytes"),
        );
        let (users, units) = Self::read_body(&mut r, kind)?;
        r.finish()?;
        Ok((request, users, units))
    }

    fn read_body<'a>(r: &mut Reader<'a>, kind: Artifact) -> Result<(usize, Vec<RawUnit<'a>>)> {
        let users = r.count("user count", crate::limits::MAX_USERS as u64)?;
        if users == 0 {
            return Err(ProtocolError::wire(kind.name(), "announces 0 users"));
        }
        let n = r.count("unit count", MAX_ITEMS)?;
        let mut units = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let group = r.count("unit group", MAX_ITEMS)?;
            let feature = r.count("unit feature", MAX_FEATURES)?;
            let bytes = r.bytes("unit ciphertext")?;
            units.push(RawUnit {
                id: UnitId { group, feature },
                bytes,
            });
        }
        Ok((users, units))
    }

    /// Parses every unit's ciphertext (what a cluster server does with a shard).
    pub fn parse_units(
        kind: Artifact,
        params: &Params,
        raw: Vec<RawUnit<'_>>,
    ) -> Result<Vec<(UnitId, Ciphertext)>> {
        let mut units = Vec::with_capacity(raw.len());
        for unit in raw {
            let ct = wire::decode_ciphertext(
                kind.name(),
                "gallery ciphertext",
                unit.bytes,
                params.bfv(),
                Some(2),
            )?;
            units.push((unit.id, ct));
        }
        Ok(units)
    }

    /// Opens the envelope and parses every ciphertext (what a cluster server does).
    pub fn decode(
        bytes: &[u8],
        kind: Artifact,
        params: &Params,
    ) -> Result<(usize, Vec<(UnitId, Ciphertext)>)> {
        let (users, raw) = Self::decode_raw(bytes, kind, params)?;
        Ok((users, Self::parse_units(kind, params, raw)?))
    }
}

/// Names one gallery update, so that a retried request is applied once: 16 random bytes
/// chosen by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub [u8; 16]);

impl RequestId {
    /// A fresh random id.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        Self(id)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Indexed serialized ciphertexts, borrowed from a message.
pub type SerializedItems<'a> = Vec<(usize, &'a [u8])>;

/// A list of indexed ciphertexts: the query (index = feature), a cluster's evaluated
/// ciphertexts, or the compressed results.
pub struct Ciphertexts;

/// An encrypted query: each ciphertext already in fhe.rs's serialized form (the client's
/// fast encryption writes that form directly; see `roles::query_encryption`) — or, in the
/// extended form, the words the fused engine evaluates (see [`ExtendedQuery`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptedQuery {
    /// (feature or unit index, fhe.rs `Ciphertext::to_bytes`); empty in extended form.
    pub items: Vec<(usize, Vec<u8>)>,
    /// The extended form, when the client extended the query itself.
    pub extended: Option<ExtendedWords>,
}

/// How a client sends its query.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum QueryForm {
    /// fhe.rs ciphertexts (seed-compressed); the servers extend them.
    #[default]
    Ciphertexts,
    /// Already extended by the client to the fused engine's basis (see [`ExtendedQuery`]).
    Extended,
}

impl QueryForm {
    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ciphertexts => "ciphertexts",
            Self::Extended => "extended",
        }
    }
}

impl std::fmt::Display for QueryForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for QueryForm {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ciphertexts" => Ok(Self::Ciphertexts),
            "extended" => Ok(Self::Extended),
            other => Err(ProtocolError::Input(format!(
                "unknown query form `{other}`; known: ciphertexts, extended"
            ))),
        }
    }
}

/// A columnar query over the fused engine's basis Q∪P, in NTT form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedWords {
    /// The primes of Q∪P, Q first (the basis the words are over).
    pub primes: Vec<u64>,
    /// Ciphertexts (one per feature).
    pub features: usize,
    /// features × 2 polynomials × primes × N words, limb-major per polynomial.
    pub words: Vec<u64>,
}

impl EncryptedQuery {
    /// fhe.rs ciphertexts, serialized.
    pub fn from_ciphertexts(items: &[(usize, Ciphertext)]) -> Self {
        Self {
            items: items.iter().map(|(i, ct)| (*i, ct.to_bytes())).collect(),
            extended: None,
        }
    }

    /// Number of ciphertexts.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Keeps the first `len` ciphertexts (tests of malformed queries).
    pub fn truncate(&mut self, len: usize) {
        self.items.truncate(len);
    }
}

impl Ciphertexts {
    /// Seals indexed ciphertexts with an extra number (a cluster's evaluation time in ns).
    pub fn encode(
        kind: Artifact,
        params: &Params,
        by: Sealer,
        extra: u64,
        items: &[(usize, Ciphertext)],
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(extra).u64(items.len() as u64);
        for (index, ct) in items {
            w.u64(*index as u64).ciphertext(ct);
        }
        by.seal(kind, params.fingerprint(), &w.finish())
    }

    /// As [`Ciphertexts::encode`], for ciphertexts already serialized (the same bytes),
    /// written straight into the envelope.
    pub fn encode_serialized<B: AsRef<[u8]>>(
        kind: Artifact,
        params: &Params,
        by: Sealer,
        extra: u64,
        items: &[(usize, B)],
    ) -> Vec<u8> {
        let size = 16
            + items
                .iter()
                .map(|(_, b)| 16 + b.as_ref().len())
                .sum::<usize>();
        let write = |out: &mut Vec<u8>| {
            out.extend_from_slice(&extra.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for (index, ct) in items {
                let ct = ct.as_ref();
                out.extend_from_slice(&(*index as u64).to_le_bytes());
                out.extend_from_slice(&(ct.len() as u64).to_le_bytes());
                out.extend_from_slice(ct);
            }
        };
        match by {
            Sealer::Server(id) => wire::seal_written(kind, params.fingerprint(), id, size, write),
            Sealer::Owner(_) => {
                let mut payload = Vec::with_capacity(size);
                write(&mut payload);
                by.seal(kind, params.fingerprint(), &payload)
            }
        }
    }

    /// Parses them back, each with `components` polynomials.
    pub fn decode(
        bytes: &[u8],
        kind: Artifact,
        params: &Params,
        components: usize,
    ) -> Result<(u64, Vec<(usize, Ciphertext)>)> {
        let (extra, raw) = Self::decode_serialized(bytes, kind, params)?;
        let items = raw
            .into_iter()
            .map(|(index, ct)| {
                Ok((
                    index,
                    wire::decode_ciphertext(
                        kind.name(),
                        "ciphertext",
                        ct,
                        params.bfv(),
                        Some(components),
                    )?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((extra, items))
    }

    /// Opens the envelope and splits it into indexed serialized ciphertexts, without
    /// decoding them (the fused engine reads the query's straight into kernel words).
    pub fn decode_serialized<'a>(
        bytes: &'a [u8],
        kind: Artifact,
        params: &Params,
    ) -> Result<(u64, SerializedItems<'a>)> {
        let payload = wire::open(bytes, kind, params.fingerprint())?;
        let mut r = Reader::new(kind.name(), payload);
        let extra = r.u64("header")?;
        let n = r.count("ciphertext count", MAX_ITEMS)?;
        let mut items = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let index = r.count("ciphertext index", MAX_ITEMS)?;
            items.push((index, r.bytes("ciphertext")?));
        }
        r.finish()?;
        Ok((extra, items))
    }
}

/// The extended query form (`Artifact::QueryExtended`): the client sends its columnar
/// query already extended to the fused engine's basis Q∪P in NTT form, so neither the
/// main server nor a cluster transforms it. The trade-off: the upload and each cluster's
/// fan-out lose fhe.rs's seed compression and bit packing and grow from |Q| to |Q| + |P|
/// limbs per polynomial (col-8192: 1.8 MB → 10.5 MB per query, about 6×), while the
/// servers skip about 16 × 2 × (|Q| + |P|) NTTs and the lift per query; the client does
/// that work instead.
/// Worth it where bandwidth is cheap and server time is not (one data centre, many
/// clients). Only the fused engines (cpu, cuda) evaluate it.
pub struct ExtendedQuery;

/// Bounds what an extended query may announce before anything is allocated.
const MAX_EXTENDED_LIMBS: u64 = 64;
const MAX_EXTENDED_FEATURES: u64 = 4096;

impl ExtendedQuery {
    /// Seals `query` for the main server.
    pub fn encode(params: &Params, by: Sealer, query: &ExtendedWords) -> Vec<u8> {
        let mut w = Writer::with_capacity(8 * (3 + query.primes.len() + query.words.len()));
        w.u64(params.degree() as u64).u64(query.primes.len() as u64);
        for &p in &query.primes {
            w.u64(p);
        }
        w.u64(query.features as u64).words(&query.words);
        by.seal(Artifact::QueryExtended, params.fingerprint(), &w.finish())
    }

    /// Opens an extended query for a plan over `primes` (Q∪P) with `features` features;
    /// refuses another basis or shape and any word not below its limb's prime.
    pub fn decode(
        bytes: &[u8],
        params: &Params,
        primes: &[u64],
        features: usize,
    ) -> Result<Vec<u64>> {
        let what = Artifact::QueryExtended.name();
        let payload = wire::open(bytes, Artifact::QueryExtended, params.fingerprint())?;
        let mut r = Reader::new(what, payload);
        let n = r.count("degree", 1 << 17)?;
        if n != params.degree() {
            return Err(ProtocolError::wire(
                what,
                format!("degree {n}, expected {}", params.degree()),
            ));
        }
        let limbs = r.count("prime count", MAX_EXTENDED_LIMBS)?;
        let sent = (0..limbs)
            .map(|_| r.u64("prime"))
            .collect::<Result<Vec<_>>>()?;
        if sent != primes {
            return Err(ProtocolError::wire(
                what,
                format!(
                    "extended over primes {sent:?}; this server's fused plan is over {primes:?} \
                     (the client must extend with the same model weights and parameters)"
                ),
            ));
        }
        let count = r.count("feature count", MAX_EXTENDED_FEATURES)?;
        if count != features {
            return Err(ProtocolError::wire(
                what,
                format!("{count} features, the model has {features}"),
            ));
        }
        let total = count
            .checked_mul(2 * limbs)
            .and_then(|x| x.checked_mul(n))
            .ok_or_else(|| ProtocolError::wire(what, "word count overflows"))?;
        let words = r.words("words", total)?;
        r.finish()?;
        // Limb by limb (no division per word): limb k of every polynomial is row k mod
        // limbs.
        for (row, limb) in words.chunks_exact(n).enumerate() {
            let p = primes[row % limbs];
            if let Some(at) = limb.iter().position(|&w| w >= p) {
                return Err(ProtocolError::wire(
                    what,
                    format!("word {} is not reduced modulo {p}", row * n + at),
                ));
            }
        }
        Ok(words)
    }
}

/// Main server → cluster: drop the deployment's keys and gallery.
pub struct Reset;

impl Reset {
    /// A reset of deployment `deployment`.
    pub fn encode(params: &Params, deployment: u64) -> Vec<u8> {
        wire::seal(Artifact::Reset, params.fingerprint(), deployment, &[])
    }

    /// Checks a reset envelope (it carries no payload).
    pub fn decode(bytes: &[u8], params: &Params) -> Result<()> {
        let payload = wire::open(bytes, Artifact::Reset, params.fingerprint())?;
        if !payload.is_empty() {
            return Err(ProtocolError::wire(
                "reset",
                "carries an unexpected payload",
            ));
        }
        Ok(())
    }
}
