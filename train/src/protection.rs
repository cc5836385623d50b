//! One interface for every template-protection scheme the harness compares: the
//! encrypted 1:N family (`plain`, `quantized`, `blindtouch`, `columnar`, through their
//! [`protocol::Matcher`]), the unprotected embedding login over a SQLite database,
//! cancelable Index-of-Max hashing and negative databases (the `protect` crate).
//!
//! A scheme enrols users (one or more captures each, and a per-user secret token where
//! the scheme has one), scores a probe against one claimed user (1:1) or against every
//! user (1:N), and says what it stores, what its server learns and whether it is exact.
//! Scores are "higher = more similar" for every scheme, so one set of metrics applies.

use crate::error::{Result, TrainError};
use crate::evaluation::TestSet;
use protect::embedding_db::{self, Store};
use protect::iom::{self, Code, GrpIom, Token, UrpIom};
use protect::ndb::{Binariser, BitVec, Estimator, Ndb, NdbParams};
use protocol::{Matcher, Reference, Tally, Workload};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// What a scheme is given for one capture of a finger.
#[derive(Clone, Debug)]
pub struct Capture {
    /// The network's embedding (512 values for the committed model).
    pub embedding: Vec<f32>,
    /// The enrolment template r = W·e + b (what the encrypted schemes enrol).
    pub enrol_template: Vec<f32>,
    /// The query template q = W·e (what they query with; also the "template" feature of
    /// the other schemes, on both sides).
    pub query_template: Vec<f32>,
}

/// One probe: an id (stable per probe, for schemes that answer 1:1 from a 1:N result)
/// and its captures (the first is the probe; more for schemes that average).
#[derive(Clone, Debug)]
pub struct Probe {
    /// Index of the probe in its test set.
    pub id: usize,
    /// The probe's captures (the first is the probe itself).
    pub captures: Vec<Capture>,
}

/// One user to enrol.
#[derive(Clone, Debug)]
pub struct User {
    /// Enrolment captures: the original first, then further copies.
    pub captures: Vec<Capture>,
    /// The user's secret (IoM token, binarisation seed); ignored by schemes without one.
    pub token: u64,
}

/// The features a non-encrypted scheme works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// The network's embedding.
    Embedding,
    /// The 16-value template W·e.
    Template,
}

impl Features {
    fn of<'a>(&self, c: &'a Capture) -> &'a [f32] {
        match self {
            Self::Embedding => &c.embedding,
            Self::Template => &c.query_template,
        }
    }
}

/// What a scheme stores, what its server learns, and whether it can be revoked: the
/// property table is generated from these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    /// What the server stores per user.
    pub stores: String,
    /// What an honest-but-curious server learns.
    pub server_learns: String,
    /// Whether a compromised template can be replaced by a new, unlinkable one.
    pub revocable: bool,
    /// Encrypted results equal the plaintext integer scores bit for bit (checked), or
    /// how the scheme's scores relate to the unprotected ones.
    pub exact: String,
}

/// Enrolment cost and storage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    /// Users enrolled.
    pub users: usize,
    /// Wall time of the whole enrolment.
    pub seconds: f64,
    /// Bytes the server keeps per user.
    pub storage_bytes_per_user: f64,
}

/// One probe's 1:N answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identified {
    /// Every user's score, in enrolment order.
    pub scores: Vec<f64>,
    /// Wall time of the query (for batched schemes, the batch's time per probe).
    pub seconds: f64,
    /// Bytes the client sends for this query.
    pub upload_bytes: usize,
    /// Bytes the client receives.
    pub download_bytes: usize,
}

/// A template-protection scheme.
pub trait ProtectionScheme {
    /// How tables name it.
    fn label(&self) -> String;
    /// What it stores, learns, and whether it is revocable or exact.
    fn properties(&self) -> Properties;
    /// Enrols (replaces) the users.
    fn enrol(&mut self, users: &[User]) -> Result<Enrolled>;
    /// 1:1: the probe against the claimed `user`.
    fn verify(&self, user: usize, probe: &Probe) -> Result<f64>;
    /// 1:N: the probe against every user.
    fn identify(&self, probe: &Probe) -> Result<Identified>;
    /// 1:N for many probes; schemes whose per-user work can be shared across probes
    /// (per-user hash functions) override it. Seconds are per probe.
    fn identify_many(&self, probes: &[&Probe]) -> Result<Vec<Identified>> {
        probes.iter().map(|p| self.identify(p)).collect()
    }
    /// Whether [`ProtectionScheme::identify_many`] shares per-user work across probes (its
    /// per-probe time is then a batch average, not the cost of one query).
    fn batches(&self) -> bool {
        false
    }
    /// Encrypted schemes: every decrypted score compared with the plaintext integer one.
    fn exactness(&self) -> Option<Tally> {
        None
    }
    /// The threshold the scheme decides with, when it has its own (the model's τ).
    fn own_threshold(&self) -> Option<f64> {
        None
    }
}

fn input(msg: impl Into<String>) -> TrainError {
    TrainError::Config(msg.into())
}

fn protect_err(e: protect::Error) -> TrainError {
    TrainError::Protect(e)
}

/// 1:N over many probes for schemes whose functions are per user: user u's functions
/// are made once (`per_user`) and score every probe's features (`score`); the time per
/// probe is the batch's average. `upload` is a probe's bytes on the wire.
fn batched<F>(
    probes: &[&Probe],
    features: Features,
    users: usize,
    per_user: impl Fn(usize) -> Result<F>,
    score: impl Fn(&F, usize, &[f32]) -> Result<f64>,
    upload: impl Fn(&[f32]) -> usize,
) -> Result<Vec<Identified>> {
    let start = Instant::now();
    let xs: Vec<&[f32]> = probes
        .iter()
        .map(|p| {
            p.captures
                .first()
                .map(|c| features.of(c))
                .ok_or_else(|| input("empty probe"))
        })
        .collect::<Result<_>>()?;
    let mut scores = vec![vec![0.0; users]; probes.len()];
    // u indexes the inner rows (probe-major), not a slice being walked.
    #[allow(clippy::needless_range_loop)]
    for u in 0..users {
        let f = per_user(u)?;
        for (p, x) in xs.iter().enumerate() {
            scores[p][u] = score(&f, u, x)?;
        }
    }
    let per_probe = start.elapsed().as_secs_f64() / probes.len().max(1) as f64;
    Ok(scores
        .into_iter()
        .zip(&xs)
        .map(|(scores, x)| Identified {
            scores,
            seconds: per_probe,
            upload_bytes: upload(x),
            download_bytes: 0,
        })
        .collect())
}

/// The captures of a test set: user u's enrolment captures (the original first, then
/// the extra augmented copies), and every probe with its own capture.
pub fn users_and_probes(test: &TestSet, tokens_seed: u64) -> (Vec<User>, Vec<Probe>) {
    let head = &test.network_head;
    let capture = |e: &Vec<f32>| Capture {
        embedding: e.clone(),
        enrol_template: head.enrolment_template(e),
        query_template: head.query_template(e),
    };
    let users = test
        .gallery_embeddings
        .iter()
        .enumerate()
        .map(|(u, e)| {
            let mut captures = vec![capture(e)];
            if let Some(extra) = test.extra_captures.get(u) {
                captures.extend(extra.iter().map(capture));
            }
            User {
                captures,
                token: token_for(tokens_seed, u),
            }
        })
        .collect();
    let probes = test
        .probe_embeddings
        .iter()
        .enumerate()
        .map(|(id, e)| {
            let mut captures = vec![capture(e)];
            if let Some(extra) = test.probe_extra_captures.get(id) {
                captures.extend(extra.iter().map(capture));
            }
            Probe { id, captures }
        })
        .collect();
    (users, probes)
}

/// A user's token: a keyed mix of the application seed and the user index.
pub fn token_for(seed: u64, user: usize) -> u64 {
    let mut z = seed ^ (user as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------
// The encrypted 1:N family through its Matcher.

/// `plain`, `quantized`, `blindtouch`, `columnar`: the enrolment templates go to the
/// matcher, each probe's query template is identified through the real roles; a 1:1
/// score is the claimed user's score of that probe's 1:N answer (computed once).
pub struct MatcherScheme {
    matcher: Box<dyn Matcher>,
    workload: Workload,
    reference: Option<Reference>,
    tally: RefCell<Tally>,
    answers: RefCell<HashMap<usize, Identified>>,
}

impl MatcherScheme {
    /// `workload` is the test set's (its quantization is the scheme's); `matcher` was
    /// built for it.
    pub fn new(matcher: Box<dyn Matcher>, workload: Workload) -> Self {
        Self {
            matcher,
            workload,
            reference: None,
            tally: RefCell::new(Tally::default()),
            answers: RefCell::new(HashMap::new()),
        }
    }
}

impl ProtectionScheme for MatcherScheme {
    fn label(&self) -> String {
        self.matcher.kind().to_string()
    }

    fn properties(&self) -> Properties {
        use protocol::SchemeKind::*;
        let kind = self.matcher.kind();
        let (stores, learns) = match kind {
            Plain | Quantized => (
                "16-value templates in the clear",
                "every template and query; the scores",
            ),
            BlindTouch | Columnar => (
                "BFV ciphertexts of the 16-value templates",
                "sizes and timing only (IND-CPA ciphertexts; the client decrypts the scores)",
            ),
        };
        Properties {
            stores: stores.into(),
            server_learns: learns.into(),
            revocable: kind.encrypted(),
            exact: if kind.encrypted() {
                "decrypted scores = plaintext integer scores (checked)".into()
            } else if kind == Quantized {
                "integer scores of 8-bit codes".into()
            } else {
                "float reference".into()
            },
        }
    }

    fn enrol(&mut self, users: &[User]) -> Result<Enrolled> {
        if users.len() != self.workload.gallery.len() {
            return Err(input(format!(
                "{} users, but the workload holds {}",
                users.len(),
                self.workload.gallery.len()
            )));
        }
        let start = Instant::now();
        let report = self.matcher.enrol(&self.workload.gallery)?;
        self.reference = self
            .matcher
            .kind()
            .encrypted()
            .then(|| Reference::of(&self.workload));
        self.answers.borrow_mut().clear();
        *self.tally.borrow_mut() = Tally::default();
        let bytes = report.stored_bytes as f64;
        Ok(Enrolled {
            users: users.len(),
            seconds: start.elapsed().as_secs_f64(),
            storage_bytes_per_user: if self.matcher.kind().encrypted() {
                bytes / users.len().max(1) as f64
            } else {
                // 16 values in the clear: f32 or 8-bit codes.
                let d = self.workload.gallery.first().map_or(0, Vec::len);
                (if self.matcher.kind() == protocol::SchemeKind::Plain {
                    4 * d
                } else {
                    d
                }) as f64
            },
        })
    }

    fn verify(&self, user: usize, probe: &Probe) -> Result<f64> {
        let answer = self.identify(probe)?;
        answer
            .scores
            .get(user)
            .copied()
            .ok_or_else(|| input(format!("no user {user}")))
    }

    fn identify(&self, probe: &Probe) -> Result<Identified> {
        if let Some(a) = self.answers.borrow().get(&probe.id) {
            return Ok(a.clone());
        }
        let template = self
            .workload
            .probes
            .get(probe.id)
            .map(|p| p.template.clone())
            .ok_or_else(|| input(format!("no probe {}", probe.id)))?;
        let outcome = self.matcher.identify(&template)?;
        if let Some(reference) = &self.reference {
            self.tally
                .borrow_mut()
                .check(reference, &template, &outcome);
        }
        let answer = Identified {
            scores: outcome.scores.to_f64(),
            seconds: outcome.timings.total().as_secs_f64(),
            upload_bytes: outcome.traffic.upload,
            download_bytes: outcome.traffic.download,
        };
        self.answers.borrow_mut().insert(probe.id, answer.clone());
        Ok(answer)
    }

    fn exactness(&self) -> Option<Tally> {
        self.reference.as_ref().map(|_| self.tally.borrow().clone())
    }

    fn own_threshold(&self) -> Option<f64> {
        Some(match self.matcher.kind() {
            protocol::SchemeKind::Plain => self.workload.model.threshold_logit(),
            _ => self.workload.quantized.threshold_score as f64,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The unprotected embedding login.

/// Enrolment averages the user's k captures and stores one row per user in SQLite; login
/// averages the probe's captures and scores by cosine similarity.
pub struct EmbeddingDbScheme {
    features: Features,
    captures: usize,
    path: PathBuf,
    store: Option<Store>,
}

impl EmbeddingDbScheme {
    /// A database at `path` (created at enrolment; an existing file is replaced).
    pub fn new(features: Features, captures: usize, path: PathBuf) -> Result<Self> {
        if !(1..=8).contains(&captures) {
            return Err(input(format!(
                "embedding-db captures {captures}: must be 1..=8"
            )));
        }
        Ok(Self {
            features,
            captures,
            path,
            store: None,
        })
    }

    fn store(&self) -> Result<&Store> {
        self.store
            .as_ref()
            .ok_or_else(|| input("embedding-db: nothing enrolled"))
    }

    fn probe_vector(&self, probe: &Probe) -> Result<Vec<f32>> {
        let caps: Vec<Vec<f32>> = probe
            .captures
            .iter()
            .take(self.captures)
            .map(|c| self.features.of(c).to_vec())
            .collect();
        embedding_db::average(&caps).map_err(protect_err)
    }

    /// User ids sort in enrolment order.
    fn id(user: usize) -> String {
        format!("u{user:08}")
    }
}

impl ProtectionScheme for EmbeddingDbScheme {
    fn label(&self) -> String {
        format!(
            "embedding-db ({}, k={})",
            match self.features {
                Features::Embedding => "embedding",
                Features::Template => "template",
            },
            self.captures
        )
    }

    fn properties(&self) -> Properties {
        Properties {
            stores: "the mean embedding in the clear (SQLite)".into(),
            server_learns: "every enrolled and login embedding".into(),
            revocable: false,
            exact: "unprotected baseline".into(),
        }
    }

    fn enrol(&mut self, users: &[User]) -> Result<Enrolled> {
        let start = Instant::now();
        self.store = None;
        if self.path.exists() {
            std::fs::remove_file(&self.path)
                .map_err(|e| input(format!("replacing {}: {e}", self.path.display())))?;
        }
        let dim = users
            .first()
            .and_then(|u| u.captures.first())
            .map_or(0, |c| self.features.of(c).len());
        let mut store = Store::create(&self.path, dim).map_err(protect_err)?;
        for (u, user) in users.iter().enumerate() {
            let caps: Vec<Vec<f32>> = user
                .captures
                .iter()
                .take(self.captures)
                .map(|c| self.features.of(c).to_vec())
                .collect();
            if caps.len() < self.captures {
                return Err(input(format!(
                    "user {u} has {} captures; embedding-db averages {}",
                    caps.len(),
                    self.captures
                )));
            }
            let mean = embedding_db::average(&caps).map_err(protect_err)?;
            store
                .enrol(&Self::id(u), &mean, caps.len() as u32)
                .map_err(protect_err)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        self.store = Some(store);
        Ok(Enrolled {
            users: users.len(),
            seconds,
            storage_bytes_per_user: embedding_db::record_bytes(dim, Self::id(0).len()) as f64,
        })
    }

    fn verify(&self, user: usize, probe: &Probe) -> Result<f64> {
        let v = self.probe_vector(probe)?;
        let (score, _) = self
            .store()?
            .verify(&Self::id(user), &v, 0.0)
            .map_err(protect_err)?;
        Ok(score as f64)
    }

    fn identify(&self, probe: &Probe) -> Result<Identified> {
        let start = Instant::now();
        let v = self.probe_vector(probe)?;
        let ranked = self.store()?.identify(&v).map_err(protect_err)?;
        let mut scores = vec![f64::NEG_INFINITY; ranked.len()];
        for (id, s) in ranked {
            let u: usize = id[1..]
                .parse()
                .map_err(|_| input(format!("embedding-db: foreign user id {id}")))?;
            *scores
                .get_mut(u)
                .ok_or_else(|| input(format!("embedding-db: user {id} out of range")))? = s as f64;
        }
        Ok(Identified {
            scores,
            seconds: start.elapsed().as_secs_f64(),
            upload_bytes: 4 * v.len(),
            download_bytes: 0,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Index-of-Max hashing with per-user tokens.

/// GRP-IoM or URP-IoM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IomKind {
    /// Gaussian random projections.
    Grp(GrpIom),
    /// Uniform random permutations.
    Urp(UrpIom),
}

/// The user's code under their token is stored; a probe claimed as user u is hashed with
/// u's token (1:1); 1:N hashes it with every user's token. Score = collision rate.
pub struct IomScheme {
    kind: IomKind,
    features: Features,
    tokens: Vec<u64>,
    codes: Vec<Code>,
    dim: usize,
    /// The last claimed user's hash functions (drawing GRP's m·q·d Gaussians costs more
    /// than hashing; consecutive 1:1 claims of one user reuse them).
    last: RefCell<Option<(usize, std::rc::Rc<Hasher>)>>,
}

/// One user's hash functions, drawn once.
enum Hasher {
    Grp(iom::GrpHasher),
    Urp(iom::UrpHasher),
}

impl Hasher {
    fn hash(&self, x: &[f32]) -> Result<Code> {
        match self {
            Self::Grp(h) => h.hash(x),
            Self::Urp(h) => h.hash(x),
        }
        .map_err(protect_err)
    }
}

impl IomScheme {
    /// A scheme with validated parameters (the feature size comes at enrolment).
    pub fn new(kind: IomKind, features: Features) -> Result<Self> {
        match kind {
            IomKind::Grp(p) => p.validate(),
            IomKind::Urp(p) => p.validate(),
        }
        .map_err(protect_err)?;
        Ok(Self {
            kind,
            features,
            tokens: Vec::new(),
            codes: Vec::new(),
            dim: 0,
            last: RefCell::new(None),
        })
    }

    fn hasher(&self, token: u64, dim: usize) -> Result<Hasher> {
        Ok(match self.kind {
            IomKind::Grp(p) => Hasher::Grp(p.hasher(Token(token), dim).map_err(protect_err)?),
            IomKind::Urp(p) => Hasher::Urp(p.hasher(Token(token), dim).map_err(protect_err)?),
        })
    }

    /// The code of `x` under `token` (what a stored template is).
    pub fn code(&self, token: u64, x: &[f32]) -> Result<Code> {
        self.hasher(token, x.len())?.hash(x)
    }

    /// The feature vector the scheme hashes.
    pub fn features_of<'a>(&self, c: &'a Capture) -> &'a [f32] {
        self.features.of(c)
    }
}

impl ProtectionScheme for IomScheme {
    fn label(&self) -> String {
        match self.kind {
            IomKind::Grp(p) => format!("iom-grp (m={}, q={})", p.m, p.q),
            IomKind::Urp(p) => format!("iom-urp (m={}, w={}, p={})", p.m, p.w, p.p),
        }
    }

    fn properties(&self) -> Properties {
        Properties {
            stores: "IoM codes (m argmax indices) under per-user tokens".into(),
            server_learns: "the codes; with a user's token, the ranking order of their projections"
                .into(),
            revocable: true,
            exact: "approximates the embedding's similarity (collision rate)".into(),
        }
    }

    fn enrol(&mut self, users: &[User]) -> Result<Enrolled> {
        let start = Instant::now();
        self.tokens = users.iter().map(|u| u.token).collect();
        self.codes = Vec::with_capacity(users.len());
        self.dim = 0;
        *self.last.borrow_mut() = None;
        for (u, user) in users.iter().enumerate() {
            let c = user
                .captures
                .first()
                .ok_or_else(|| input(format!("user {u} has no capture")))?;
            let x = self.features.of(c);
            self.dim = x.len();
            self.codes.push(self.code(user.token, x)?);
        }
        Ok(Enrolled {
            users: users.len(),
            seconds: start.elapsed().as_secs_f64(),
            storage_bytes_per_user: self.codes.first().map_or(0, Code::bytes) as f64,
        })
    }

    fn verify(&self, user: usize, probe: &Probe) -> Result<f64> {
        let token = *self
            .tokens
            .get(user)
            .ok_or_else(|| input(format!("no user {user}")))?;
        let c = probe.captures.first().ok_or_else(|| input("empty probe"))?;
        let x = self.features.of(c);
        let cached = self
            .last
            .borrow()
            .as_ref()
            .filter(|(u, _)| *u == user)
            .map(|(_, h)| h.clone());
        let hasher = match cached {
            Some(h) => h,
            None => {
                let h = std::rc::Rc::new(self.hasher(token, x.len())?);
                *self.last.borrow_mut() = Some((user, h.clone()));
                h
            }
        };
        iom::similarity(&self.codes[user], &hasher.hash(x)?).map_err(protect_err)
    }

    fn identify(&self, probe: &Probe) -> Result<Identified> {
        Ok(self.identify_many(&[probe])?.remove(0))
    }

    fn batches(&self) -> bool {
        true
    }

    fn identify_many(&self, probes: &[&Probe]) -> Result<Vec<Identified>> {
        batched(
            probes,
            self.features,
            self.codes.len(),
            |u| self.hasher(self.tokens[u], self.dim),
            |hasher, u, x| iom::similarity(&self.codes[u], &hasher.hash(x)?).map_err(protect_err),
            |x| 4 * x.len(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Negative databases.

/// The features are binarised by m seeded projections (the seed is the user's token, so a
/// new token renews the string) and each user's string is stored only as its K-hidden
/// negative database; a probe's score is minus the Hamming distance estimated from how
/// many entries it matches.
pub struct NdbScheme {
    bits: usize,
    params: NdbParams,
    features: Features,
    seed: u64,
    tokens: Vec<u64>,
    databases: Vec<Ndb>,
    estimator: Estimator,
    dim: usize,
}

impl NdbScheme {
    /// `bits` binarised bits, K-hidden `params`; `seed` seeds the databases' generation.
    pub fn new(bits: usize, params: NdbParams, features: Features, seed: u64) -> Result<Self> {
        params.validate(bits).map_err(protect_err)?;
        let estimator = Estimator::new(bits, params.k, &params.p).map_err(protect_err)?;
        Ok(Self {
            bits,
            params,
            features,
            seed,
            tokens: Vec::new(),
            databases: Vec::new(),
            estimator,
            dim: 0,
        })
    }

    fn binariser(&self, token: u64, dim: usize) -> Result<Binariser> {
        Binariser::new(dim, self.bits, token).map_err(protect_err)
    }

    /// The NDB of `x` under `token`, generated with `rng_seed`.
    pub fn database(&self, token: u64, x: &[f32], rng_seed: u64) -> Result<Ndb> {
        let bits = self
            .binariser(token, x.len())?
            .apply(x)
            .map_err(protect_err)?;
        let mut rng = ChaCha20Rng::seed_from_u64(rng_seed);
        Ndb::generate(&bits, &self.params, &mut rng).map_err(protect_err)
    }

    /// The binarised string of `x` under `token` (what a query sends).
    pub fn string(&self, token: u64, x: &[f32]) -> Result<BitVec> {
        self.binariser(token, x.len())?
            .apply(x)
            .map_err(protect_err)
    }

    fn score(&self, db: &Ndb, y: &BitVec) -> Result<f64> {
        let matches = db.matches(y).map_err(protect_err)?;
        Ok(-self
            .estimator
            .estimate(matches, db.len())
            .map_err(protect_err)?
            .distance)
    }

    /// The feature vector the scheme binarises.
    pub fn features_of<'a>(&self, c: &'a Capture) -> &'a [f32] {
        self.features.of(c)
    }
}

/// An attacker's estimate of the string behind a negative database: at every position,
/// the value its entries specify less often (entries are built around values that
/// differ from x with probability E[i]/K; below ½ the majority value is x's, above it the
/// minority is). Used to link databases across applications.
pub fn ndb_majority_string(db: &Ndb, bits: usize, differing_fraction: f64) -> BitVec {
    let mut ones = vec![0i64; bits];
    let mut seen = vec![0i64; bits];
    for e in 0..db.len() {
        if let Some((pos, value)) = db.entry(e) {
            for (t, &p) in pos.iter().enumerate() {
                seen[p as usize] += 1;
                ones[p as usize] += i64::from(value >> t & 1 == 1);
            }
        }
    }
    let mut out = BitVec::zeros(bits);
    for j in 0..bits {
        let majority_one = 2 * ones[j] > seen[j];
        out.set(
            j,
            if differing_fraction < 0.5 {
                majority_one
            } else {
                !majority_one
            },
        );
    }
    out
}

impl ProtectionScheme for NdbScheme {
    fn label(&self) -> String {
        format!(
            "ndb (m={}, K={}, r={})",
            self.bits, self.params.k, self.params.r
        )
    }

    fn properties(&self) -> Properties {
        Properties {
            stores: "a K-hidden negative database of the binarised features".into(),
            server_learns: "each query's binary string; the estimated distance to every user"
                .into(),
            revocable: true,
            exact: "estimates the Hamming distance of binarised features".into(),
        }
    }

    fn enrol(&mut self, users: &[User]) -> Result<Enrolled> {
        let start = Instant::now();
        self.tokens = users.iter().map(|u| u.token).collect();
        self.databases = Vec::with_capacity(users.len());
        for (u, user) in users.iter().enumerate() {
            let c = user
                .captures
                .first()
                .ok_or_else(|| input(format!("user {u} has no capture")))?;
            let x = self.features.of(c);
            self.dim = x.len();
            let db = self.database(user.token, x, self.seed ^ token_for(user.token, u))?;
            self.databases.push(db);
        }
        Ok(Enrolled {
            users: users.len(),
            seconds: start.elapsed().as_secs_f64(),
            storage_bytes_per_user: self.databases.first().map_or(0, Ndb::byte_len) as f64,
        })
    }

    fn verify(&self, user: usize, probe: &Probe) -> Result<f64> {
        let token = *self
            .tokens
            .get(user)
            .ok_or_else(|| input(format!("no user {user}")))?;
        let c = probe.captures.first().ok_or_else(|| input("empty probe"))?;
        let y = self.string(token, self.features.of(c))?;
        self.score(&self.databases[user], &y)
    }

    fn identify(&self, probe: &Probe) -> Result<Identified> {
        Ok(self.identify_many(&[probe])?.remove(0))
    }

    fn batches(&self) -> bool {
        true
    }

    fn identify_many(&self, probes: &[&Probe]) -> Result<Vec<Identified>> {
        batched(
            probes,
            self.features,
            self.databases.len(),
            |u| self.binariser(self.tokens[u], self.dim),
            |binariser, u, x| {
                let y = binariser.apply(x).map_err(protect_err)?;
                self.score(&self.databases[u], &y)
            },
            |_| self.bits.div_ceil(8),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Running a scheme over a test set.

/// What one scheme produced on one test set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The scheme's label.
    pub label: String,
    /// Its properties.
    pub properties: Properties,
    /// Enrolment cost and storage.
    pub enrolled: Enrolled,
    /// Verification-pair scores (1:1 through [`ProtectionScheme::verify`]).
    pub genuine: Vec<f64>,
    /// Impostor-pair scores.
    pub impostor: Vec<f64>,
    /// 1:N rank-1 and rank-5 rates over the identification probes run.
    pub rank1: f64,
    /// Rank-5 rate.
    pub rank5: f64,
    /// Identification probes run (each against every enrolled user).
    pub identified: usize,
    /// Seconds per 1:N query: every identification probe's own time, or — for schemes
    /// that batch — one probe identified alone.
    pub query_seconds: Vec<f64>,
    /// Schemes that batch: the batch's time per probe.
    pub batch_seconds_per_probe: Option<f64>,
    /// Bytes up and down per 1:N query (the first query's).
    pub upload_bytes: usize,
    /// Bytes down per query.
    pub download_bytes: usize,
    /// Encrypted schemes: decrypted vs plaintext integer scores.
    pub exactness: Option<Tally>,
    /// The scheme's own decision threshold, if it has one.
    pub own_threshold: Option<f64>,
}

/// Enrols `users`, identifies the first `identify_probes` identification probes of `test`
/// (probe i's mate is user i) and scores every verification pair 1:1.
pub fn evaluate(
    test: &TestSet,
    scheme: &mut dyn ProtectionScheme,
    users: &[User],
    probes: &[Probe],
    identify_probes: usize,
) -> Result<Evaluation> {
    let enrolled = scheme.enrol(users)?;
    let ids: Vec<usize> = test.identification_probes().take(identify_probes).collect();
    let batch: Vec<&Probe> = ids.iter().map(|&i| &probes[i]).collect();
    let answers = scheme.identify_many(&batch)?;
    let rows: Vec<&[f64]> = answers.iter().map(|a| a.scores.as_slice()).collect();
    let (rank1, rank5) = datasets::metrics::rank_rates(&rows, &ids);
    let (query_seconds, batch_seconds_per_probe) = match (scheme.batches(), batch.first()) {
        (true, Some(first)) => (
            vec![scheme.identify(first)?.seconds],
            answers.first().map(|a| a.seconds),
        ),
        _ => (answers.iter().map(|a| a.seconds).collect(), None),
    };
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    // Pairs grouped by claimed user, so a scheme can reuse that user's hash functions.
    let mut pairs: Vec<_> = test.pairs.iter().collect();
    pairs.sort_by_key(|p| p.gallery);
    for pair in pairs {
        let s = scheme.verify(pair.gallery, &probes[pair.probe])?;
        if pair.genuine {
            genuine.push(s);
        } else {
            impostor.push(s);
        }
    }
    Ok(Evaluation {
        label: scheme.label(),
        properties: scheme.properties(),
        enrolled,
        genuine,
        impostor,
        rank1,
        rank5,
        identified: answers.len(),
        query_seconds,
        batch_seconds_per_probe,
        upload_bytes: answers.first().map_or(0, |a| a.upload_bytes),
        download_bytes: answers.first().map_or(0, |a| a.download_bytes),
        exactness: scheme.exactness(),
        own_threshold: scheme.own_threshold(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn random_capture(rng: &mut ChaCha20Rng, d: usize) -> Capture {
        let e: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        Capture {
            embedding: e.clone(),
            enrol_template: e[..4].to_vec(),
            query_template: e[..4].to_vec(),
        }
    }

    fn population(n: usize, d: usize, seed: u64) -> (Vec<User>, Vec<Probe>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let users: Vec<User> = (0..n)
            .map(|u| User {
                captures: (0..3).map(|_| random_capture(&mut rng, d)).collect(),
                token: token_for(seed, u),
            })
            .collect();
        let probes = (0..n)
            .map(|id| Probe {
                id,
                captures: (0..3).map(|_| random_capture(&mut rng, d)).collect(),
            })
            .collect();
        (users, probes)
    }

    fn cosine64(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    }

    fn mean(caps: &[Capture], k: usize) -> Vec<f32> {
        let d = caps[0].embedding.len();
        (0..d)
            .map(|i| caps[..k].iter().map(|c| c.embedding[i]).sum::<f32>() / k as f32)
            .collect()
    }

    /// The ranking a 1:N answer implies (descending score, ties by user index).
    fn ranking(scores: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order
    }

    /// Every scheme's 1:N answer, scored from scratch by an independent brute-force
    /// computation per user, gives the same scores and the same ranking.
    #[test]
    fn one_to_n_rankings_equal_a_brute_force_reference() {
        let (n, d) = (12, 24);
        let (users, probes) = population(n, d, 5);
        let tmp = tempfile::tempdir().unwrap();

        // embedding-db: cosine of the k-capture means, computed here in f64.
        let mut db =
            EmbeddingDbScheme::new(Features::Embedding, 3, tmp.path().join("e.sqlite")).unwrap();
        db.enrol(&users).unwrap();
        for p in &probes {
            let got = db.identify(p).unwrap().scores;
            let want: Vec<f64> = users
                .iter()
                .map(|u| cosine64(&mean(&u.captures, 3), &mean(&p.captures, 3)))
                .collect();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{g} vs {w}");
            }
            assert_eq!(ranking(&got), ranking(&want));
        }

        // IoM (both kinds): each user's code under their token against the probe's code
        // under the same token, hashers drawn afresh.
        for kind in [
            IomKind::Grp(GrpIom { m: 40, q: 4 }),
            IomKind::Urp(UrpIom { m: 40, w: 8, p: 2 }),
        ] {
            let mut s = IomScheme::new(kind, Features::Embedding).unwrap();
            s.enrol(&users).unwrap();
            let refs: Vec<&Probe> = probes.iter().collect();
            let many = s.identify_many(&refs).unwrap();
            for (p, answer) in probes.iter().zip(&many) {
                let want: Vec<f64> = users
                    .iter()
                    .map(|u| {
                        // protect's own one-shot hash, not the scheme's cached hashers.
                        let hash = |x: &[f32]| match kind {
                            IomKind::Grp(g) => g.hash(Token(u.token), x).unwrap(),
                            IomKind::Urp(r) => r.hash(Token(u.token), x).unwrap(),
                        };
                        let a = hash(&u.captures[0].embedding);
                        let b = hash(&p.captures[0].embedding);
                        let same = a.0.iter().zip(&b.0).filter(|(x, y)| x == y).count();
                        same as f64 / a.0.len() as f64
                    })
                    .collect();
                assert_eq!(answer.scores, want);
                assert_eq!(s.identify(p).unwrap().scores, want);
                assert_eq!(ranking(&answer.scores), ranking(&want));
                for (u, w) in want.iter().enumerate() {
                    assert_eq!(s.verify(u, p).unwrap(), *w);
                }
            }
        }

        // NDB: each user's database regenerated with the same seeds, the probe binarised
        // under the user's token, minus the estimated distance.
        let params = NdbParams {
            k: 3,
            r: 4,
            p: vec![0.6, 0.3, 0.1],
        };
        let mut s = NdbScheme::new(32, params.clone(), Features::Embedding, 9).unwrap();
        s.enrol(&users).unwrap();
        let estimator = Estimator::new(32, 3, &params.p).unwrap();
        for p in &probes {
            let got = s.identify(p).unwrap().scores;
            let want: Vec<f64> = users
                .iter()
                .enumerate()
                .map(|(u, user)| {
                    // protect directly: binarise, generate with the same seed, estimate.
                    let x = protect::ndb::binarise(&user.captures[0].embedding, 32, user.token)
                        .unwrap();
                    let mut rng = ChaCha20Rng::seed_from_u64(9 ^ token_for(user.token, u));
                    let db = Ndb::generate(&x, &params, &mut rng).unwrap();
                    let y =
                        protect::ndb::binarise(&p.captures[0].embedding, 32, user.token).unwrap();
                    let m = db.matches(&y).unwrap();
                    -estimator.estimate(m, db.len()).unwrap().distance
                })
                .collect();
            assert_eq!(got, want);
            assert_eq!(ranking(&got), ranking(&want));
        }
    }

    /// plain, quantized and columnar through `MatcherScheme`: the 1:N scores equal the
    /// head's float logits (plain) or the plaintext integer scores (quantized, and the
    /// decrypted columnar ones), computed here per user.
    #[test]
    fn matcher_schemes_equal_their_plaintext_reference_per_user() {
        use protocol::{build_matcher, SchemeConfig, SchemeKind, SyntheticSpec};
        let spec = SyntheticSpec::new(9, 4, 11);
        let workload = Workload::synthetic(&spec).unwrap();
        let reference = Reference::of(&workload);
        let users: Vec<User> = (0..spec.users)
            .map(|u| User {
                captures: Vec::new(),
                token: u as u64,
            })
            .collect();
        for kind in [
            SchemeKind::Plain,
            SchemeKind::Quantized,
            SchemeKind::Columnar,
        ] {
            let matcher = build_matcher(
                &SchemeConfig::new(kind),
                &workload.model,
                &workload.quantized,
            )
            .unwrap();
            let mut scheme = MatcherScheme::new(matcher, workload.clone());
            scheme.enrol(&users).unwrap();
            for (id, probe) in workload.probes.iter().enumerate() {
                let p = Probe {
                    id,
                    captures: Vec::new(),
                };
                let got = scheme.identify(&p).unwrap().scores;
                let want: Vec<f64> = match kind {
                    SchemeKind::Plain => workload
                        .gallery
                        .iter()
                        .map(|g| workload.model.logit(&probe.template, g))
                        .collect(),
                    _ => reference
                        .scores(&probe.template)
                        .into_iter()
                        .map(|s| s as f64)
                        .collect(),
                };
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{kind}: {g} vs {w}"
                    );
                }
                assert_eq!(ranking(&got), ranking(&want), "{kind}");
                assert_eq!(scheme.verify(3, &p).unwrap(), got[3]);
            }
            if kind.encrypted() {
                assert!(scheme.exactness().unwrap().is_exact());
            }
        }
    }

    #[test]
    fn a_new_token_renews_iom_and_ndb_templates() {
        let (users, _) = population(1, 64, 3);
        let x = &users[0].captures[0].embedding;
        let iom =
            IomScheme::new(IomKind::Grp(GrpIom { m: 100, q: 8 }), Features::Embedding).unwrap();
        let (a, b) = (iom.code(1, x).unwrap(), iom.code(2, x).unwrap());
        let same = a.0.iter().zip(&b.0).filter(|(p, q)| p == q).count();
        // Two tokens agree on about m/q positions by chance, far from all m.
        assert!(same < 40, "{same} of 100 positions agree under two tokens");
        assert_eq!(iom.code(1, x).unwrap(), a);
        let ndb = NdbScheme::new(64, NdbParams::recommended(), Features::Embedding, 1).unwrap();
        let (s1, s2) = (ndb.string(1, x).unwrap(), ndb.string(2, x).unwrap());
        assert!(s1.hamming(&s2).unwrap() > 10);
    }

    /// The majority attack reads most of x off an unbalanced NDB (specified bits differ
    /// from x a third of the time) and about half of it off a balanced one (the
    /// recommended p, E[i]/K = ½), which is what balancing is for.
    #[test]
    fn the_majority_attack_reads_unbalanced_ndbs_not_balanced_ones() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let bools: Vec<bool> = (0..64).map(|_| rng.random()).collect();
        let x = BitVec::from_bools(&bools);
        let unbalanced = NdbParams {
            k: 3,
            r: 8,
            p: vec![1.0, 0.0, 0.0],
        };
        let db = Ndb::generate(&x, &unbalanced, &mut rng).unwrap();
        let guess = ndb_majority_string(&db, 64, unbalanced.differing_fraction());
        assert!(guess.hamming(&x).unwrap() < 8);
        let balanced = NdbParams::recommended();
        let db = Ndb::generate(&x, &balanced, &mut rng).unwrap();
        let guess = ndb_majority_string(&db, 64, balanced.differing_fraction());
        let wrong = guess.hamming(&x).unwrap();
        assert!((16..=48).contains(&wrong), "{wrong} of 64 bits wrong");
    }
}
