//! The client: the only role that holds the secret key. It quantizes and encrypts the
//! gallery and queries, hands the servers evaluation material, and decrypts and decides.

use super::query_encryption::QueryEncryptor;
use crate::error::{ProtocolError, Result};
use crate::layout::{BlindTouchLayout, ColumnarLayout};
use crate::messages::{
    Ciphertexts, EncryptedQuery, ExtendedQuery, ExtendedWords, Gallery, Layout, RequestId, Setup,
    SetupSizes, UnitId,
};
use crate::outcome::Decision;
use crate::params::Params;
use crate::quantize::QuantizedModel;
use crate::wire::{self, Artifact, Sealer};
use ed25519_dalek::SigningKey;
use fhe::bfv::{
    Ciphertext, Encoding, EvaluationKeyBuilder, Plaintext, RelinearizationKey, SecretKey,
};
use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter, Serialize};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Holds the secret key and the quantized model.
pub struct Client {
    params: Params,
    layout: Layout,
    model: QuantizedModel,
    secret_key: SecretKey,
    /// Signs what the client sends (derived from the secret key, so it needs no storage of
    /// its own); servers bind to its verifying key at setup.
    signing: SigningKey,
    /// Names this client's deployment in every envelope (see [`Client::deployment`]).
    deployment: u64,
    /// Evaluation keys belong to the secret key: made once, handed to any deployment.
    setup: OnceLock<(Vec<u8>, SetupSizes)>,
    /// The secret key in the form the fast query encryption needs (made on first use).
    query_encryptor: OnceLock<QueryEncryptor>,
    /// The fused engine's plan, for the extended query form (made on first use).
    fused_plan: OnceLock<kernels::FusedPlan>,
    /// The ciphertext basis with the kernels' NTT tables, for reading results (None:
    /// moduli the kernels do not take; fhe.rs reads them).
    q_basis: OnceLock<Option<kernels::RnsBasis>>,
}

impl Client {
    /// Generates a secret key (OS randomness) after checking that `params` can hold every
    /// score the model can produce and that the layout fits the model.
    pub fn new(params: Params, layout: Layout, model: QuantizedModel) -> Result<Self> {
        params.check_score_bound(model.score_bound())?;
        match layout {
            Layout::BlindTouch { .. } => {
                BlindTouchLayout::new(params.degree(), model.features())?;
            }
            Layout::Columnar => {
                ColumnarLayout::new(params.degree(), model.features())?;
            }
        }
        let secret_key = SecretKey::random(params.bfv(), &mut rand::rng());
        let signing = signing_key(&secret_key);
        let deployment = wire::deployment_of_key(&signing.verifying_key());
        Ok(Self {
            params,
            layout,
            model,
            secret_key,
            signing,
            deployment,
            setup: OnceLock::new(),
            query_encryptor: OnceLock::new(),
            fused_plan: OnceLock::new(),
            q_basis: OnceLock::new(),
        })
    }

    /// A client with a secret key saved earlier by [`Client::secret_key_bytes`] (same
    /// checks as [`Client::new`]); it keeps its deployment id and signing key.
    pub fn from_secret_key(
        params: Params,
        layout: Layout,
        model: QuantizedModel,
        secret_key: &[u8],
    ) -> Result<Self> {
        let mut client = Self::new(params, layout, model)?;
        let key: SecretKey =
            crate::wire::decode_parametrized("secret key", secret_key, client.params.bfv())?;
        client.signing = signing_key(&key);
        client.deployment = wire::deployment_of_key(&client.signing.verifying_key());
        client.secret_key = key;
        Ok(client)
    }

    /// The serialized secret key, for the client's own folder only: whoever reads it can
    /// decrypt every template and score of the deployment.
    pub fn secret_key_bytes(&self) -> Vec<u8> {
        self.secret_key.to_bytes()
    }

    /// The deployment id: the first 8 bytes of SHA-256 over the client's Ed25519 verifying
    /// key, which is itself derived from the BFV secret key (so a client that reloads its
    /// key keeps its deployment). Servers bind to the verifying key at setup and accept
    /// only enrolments and queries it signed.
    pub fn deployment(&self) -> u64 {
        self.deployment
    }

    /// The key the servers verify this client's messages with.
    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.signing.verifying_key()
    }

    /// How this client seals what it sends.
    fn sealer(&self) -> Sealer<'_> {
        Sealer::Owner(&self.signing)
    }

    /// Seals any payload as a message of this client (signed). The servers' decoders must
    /// survive whatever a client signs: the fuzzer and the refusal tests play a hostile
    /// client with this.
    pub fn sign(&self, kind: Artifact, payload: &[u8]) -> Vec<u8> {
        self.sealer().seal(kind, self.params.fingerprint(), payload)
    }

    /// The parameter set.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The quantized model.
    pub fn model(&self) -> &QuantizedModel {
        &self.model
    }

    fn blindtouch(&self) -> Result<BlindTouchLayout> {
        BlindTouchLayout::new(self.params.degree(), self.model.features())
    }

    fn columnar(&self) -> Result<ColumnarLayout> {
        ColumnarLayout::new(self.params.degree(), self.model.features())
    }

    fn encrypt_simd(&self, slots: &[i64]) -> Result<Ciphertext> {
        let pt = Plaintext::try_encode(slots, Encoding::simd(), self.params.bfv())?;
        Ok(self.secret_key.try_encrypt(&pt, &mut rand::rng())?)
    }

    /// Evaluation keys and weights for the servers (sealed), with their sizes; generated
    /// on the first call.
    pub fn setup_message(&self) -> Result<&(Vec<u8>, SetupSizes)> {
        if let Some(done) = self.setup.get() {
            return Ok(done);
        }
        let made = self.make_setup()?;
        Ok(self.setup.get_or_init(|| made))
    }

    fn make_setup(&self) -> Result<(Vec<u8>, SetupSizes)> {
        let features = self.model.features();
        let owner = self.signing.verifying_key();
        let setup = match self.layout {
            Layout::Columnar => Setup {
                owner,
                layout: self.layout,
                features,
                weights: Some(self.model.weights.clone()),
                relin_key: None,
                rotation_keys: None,
                encrypted: None,
            },
            Layout::BlindTouch { encrypted_weights } => {
                let layout = self.blindtouch()?;
                let mut rng = rand::rng();
                let relin_key = RelinearizationKey::new(&self.secret_key, &mut rng)?;
                let mut builder = EvaluationKeyBuilder::new(&self.secret_key)?;
                for r in layout.rotations_needed() {
                    builder.enable_column_rotation(r)?;
                }
                let rotation_keys = builder.build(&mut rng)?;
                let encrypted = if encrypted_weights {
                    let w = self.encrypt_simd(&layout.repeat(&self.model.weights)?)?;
                    let m = self.encrypt_simd(&layout.mask())?;
                    Some((w, m))
                } else {
                    None
                };
                Setup {
                    owner,
                    layout: self.layout,
                    features,
                    weights: (!encrypted_weights).then(|| self.model.weights.clone()),
                    relin_key: Some(relin_key),
                    rotation_keys: Some(rotation_keys),
                    encrypted,
                }
            }
        };
        Ok(setup.encode(&self.params, &self.signing))
    }

    /// Quantizes, packs and encrypts the gallery (in parallel); sealed for the main server.
    pub fn enrolment_message(&self, gallery: &[Vec<f32>]) -> Result<Vec<u8>> {
        let quantized: Vec<Vec<i64>> = gallery.iter().map(|t| self.model.quantize(t)).collect();
        let units = self.encrypt_units(&quantized, None)?;
        Ok(Gallery::encode(
            Artifact::Enrolment,
            &self.params,
            self.sealer(),
            gallery.len(),
            units.iter().map(|(id, b)| (id.clone(), b.as_slice())),
        ))
    }

    /// A gallery update: the whole gallery as it is after the change (added users at the
    /// end; `removed` users' slots are filled with zeros, so their encrypted template is
    /// gone from the servers), of which only the units holding a user of `changed` are
    /// encrypted and sent. The servers learn which units changed, not which user.
    pub fn update_message(
        &self,
        request: &RequestId,
        gallery: &[Vec<f32>],
        removed: &BTreeSet<usize>,
        changed: &BTreeSet<usize>,
    ) -> Result<Vec<u8>> {
        if let Some(&u) = changed.iter().chain(removed).find(|&&u| u >= gallery.len()) {
            return Err(ProtocolError::Input(format!(
                "user {u} is outside the gallery of {} users",
                gallery.len()
            )));
        }
        let quantized: Vec<Vec<i64>> = gallery
            .iter()
            .enumerate()
            .map(|(u, t)| {
                if removed.contains(&u) {
                    vec![0; self.model.features()]
                } else {
                    self.model.quantize(t)
                }
            })
            .collect();
        let units: BTreeSet<usize> = changed.iter().map(|&u| self.unit_of_user(u)).collect();
        let encrypted = self.encrypt_units(&quantized, Some(&units))?;
        Ok(Gallery::encode_update(
            Artifact::Update,
            &self.params,
            self.sealer(),
            request,
            gallery.len(),
            encrypted.iter().map(|(id, b)| (id.clone(), b.as_slice())),
        ))
    }

    /// Users per gallery unit: a blindtouch ciphertext, or a columnar group.
    pub fn users_per_unit(&self) -> Result<usize> {
        Ok(match self.layout {
            Layout::BlindTouch { .. } => self.blindtouch()?.users_per_ciphertext(),
            Layout::Columnar => self.columnar()?.users_per_group(),
        })
    }

    /// The unit (blindtouch ciphertext or columnar group) holding user `user`.
    pub fn unit_of_user(&self, user: usize) -> usize {
        // Both layouts were validated at construction, so a unit holds ≥ 1 user.
        user / self.users_per_unit().unwrap_or(1).max(1)
    }

    /// Packs and encrypts the gallery units (all, or the listed unit indices), in
    /// parallel.
    fn encrypt_units(
        &self,
        quantized: &[Vec<i64>],
        only: Option<&BTreeSet<usize>>,
    ) -> Result<Vec<(UnitId, Vec<u8>)>> {
        let wanted = |k: usize| only.is_none_or(|set| set.contains(&k));
        match self.layout {
            Layout::BlindTouch { .. } => {
                let layout = self.blindtouch()?;
                let per = layout.users_per_ciphertext();
                let chunks: Vec<(usize, &[Vec<i64>])> = quantized
                    .chunks(per)
                    .enumerate()
                    .filter(|(k, _)| wanted(*k))
                    .collect();
                chunks
                    .par_iter()
                    .map(|(k, chunk)| {
                        let ct = self.encrypt_simd(&layout.pack_gallery(chunk, k * per)?)?;
                        Ok((
                            UnitId {
                                group: *k,
                                feature: 0,
                            },
                            ct.to_bytes(),
                        ))
                    })
                    .collect()
            }
            Layout::Columnar => {
                let layout = self.columnar()?;
                let per = layout.users_per_group();
                let columns: Vec<(usize, usize, Vec<i64>)> = quantized
                    .chunks(per)
                    .enumerate()
                    .filter(|(g, _)| wanted(*g))
                    .map(|(g, chunk)| layout.pack_group(chunk, g * per).map(|cols| (g, cols)))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .flat_map(|(g, cols)| cols.into_iter().enumerate().map(move |(j, c)| (g, j, c)))
                    .collect();
                columns
                    .par_iter()
                    .map(|(g, j, column)| {
                        let ct = self.encrypt_simd(column)?;
                        Ok((
                            UnitId {
                                group: *g,
                                feature: *j,
                            },
                            ct.to_bytes(),
                        ))
                    })
                    .collect()
            }
        }
    }

    /// Encrypts a probe: 16 ciphertexts (one constant plaintext per feature) for
    /// `columnar`, with the fast seeded encryption of [`QueryEncryptor`] (byte for byte
    /// fhe.rs's serialized form; 3–4× faster than fhe.rs, see `benches/query.rs`); one
    /// SIMD ciphertext of the repeated template for `blindtouch`, with fhe.rs.
    pub fn encrypt_query(&self, probe: &[f32]) -> Result<EncryptedQuery> {
        let q = self.quantized_probe(probe)?;
        match self.layout {
            Layout::BlindTouch { .. } => Ok(EncryptedQuery {
                items: vec![(
                    0,
                    self.encrypt_simd(&self.blindtouch()?.repeat(&q)?)?
                        .to_bytes(),
                )],
                extended: None,
            }),
            Layout::Columnar => {
                let encryptor = self.query_encryptor()?;
                let items = q
                    .par_iter()
                    .enumerate()
                    .map(|(j, &v)| Ok((j, encryptor.encrypt(v, &mut rand::rng())?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(EncryptedQuery {
                    items,
                    extended: None,
                })
            }
        }
    }

    /// The columnar query in the extended form (see [`ExtendedQuery`]): encrypted as by
    /// [`Client::encrypt_query`], then extended to the fused engine's basis Q∪P by the
    /// client, so the servers need not.
    pub fn encrypt_query_extended(&self, probe: &[f32]) -> Result<EncryptedQuery> {
        if self.layout != Layout::Columnar {
            return Err(ProtocolError::Layout(
                "the extended query form is for columnar (the fused engines) only".into(),
            ));
        }
        let query = self.encrypt_query(probe)?;
        let plan = self.fused_plan()?;
        let items: Vec<(usize, &[u8])> = query
            .items
            .iter()
            .map(|(i, b)| (*i, b.as_slice()))
            .collect();
        let ctx = self.params.bfv().context_at_level(0)?;
        let words = crate::fused::seeded_query_extended(&items, plan, ctx, self.params.bfv())?;
        Ok(EncryptedQuery {
            items: Vec::new(),
            extended: Some(ExtendedWords {
                primes: plan.qp().primes(),
                features: plan.features(),
                words,
            }),
        })
    }

    /// The fused engine's plan for this client's parameters and weights (as the clusters
    /// build it), made on first use.
    fn fused_plan(&self) -> Result<&kernels::FusedPlan> {
        if let Some(p) = self.fused_plan.get() {
            return Ok(p);
        }
        let par = self.params.bfv();
        let made = kernels::FusedPlan::new(
            par.degree(),
            par.moduli(),
            par.plaintext(),
            &self.model.weights,
        )?;
        Ok(self.fused_plan.get_or_init(|| made))
    }

    /// The same query through fhe.rs's own encryption (`Plaintext::try_encode` and
    /// `SecretKey::try_encrypt` per feature): the reference the fast path is measured and
    /// tested against.
    pub fn encrypt_query_reference(&self, probe: &[f32]) -> Result<Vec<(usize, Ciphertext)>> {
        let q = self.quantized_probe(probe)?;
        match self.layout {
            Layout::BlindTouch { .. } => Ok(vec![(
                0,
                self.encrypt_simd(&self.blindtouch()?.repeat(&q)?)?,
            )]),
            Layout::Columnar => q
                .par_iter()
                .enumerate()
                .map(|(j, &v)| {
                    // A constant polynomial has the value v in every SIMD slot.
                    let pt = Plaintext::try_encode(&[v], Encoding::poly(), self.params.bfv())?;
                    Ok((j, self.secret_key.try_encrypt(&pt, &mut rand::rng())?))
                })
                .collect(),
        }
    }

    fn quantized_probe(&self, probe: &[f32]) -> Result<Vec<i64>> {
        if probe.len() != self.model.features() {
            return Err(ProtocolError::Layout(format!(
                "probe has {} values, the model expects {}",
                probe.len(),
                self.model.features()
            )));
        }
        Ok(self.model.quantize(probe))
    }

    /// The fast query encryptor of this client's secret key (made on first use).
    fn query_encryptor(&self) -> Result<&QueryEncryptor> {
        if let Some(e) = self.query_encryptor.get() {
            return Ok(e);
        }
        let made = QueryEncryptor::new(&self.params, &self.secret_key)?;
        Ok(self.query_encryptor.get_or_init(|| made))
    }

    /// Seals an encrypted query for the main server (in the form it was made in).
    pub fn query_message(&self, query: &EncryptedQuery) -> Vec<u8> {
        match &query.extended {
            Some(extended) => ExtendedQuery::encode(&self.params, self.sealer(), extended),
            None => Ciphertexts::encode_serialized(
                Artifact::Query,
                &self.params,
                self.sealer(),
                0,
                &query.items,
            ),
        }
    }

    /// Parses the main server's results (which must be this client's).
    pub fn open_results(&self, bytes: &[u8]) -> Result<Vec<(usize, Ciphertext)>> {
        let components = self.layout.result_components();
        let (_, raw) = Ciphertexts::decode_serialized(bytes, Artifact::Results, &self.params)?;
        wire::check_owner(bytes, Artifact::Results, self.deployment)?;
        raw.par_iter()
            .map(|&(index, ct)| Ok((index, self.result_ciphertext(ct, components)?)))
            .collect()
    }

    /// One result ciphertext: read and checked without fhe.rs's decoder and transformed
    /// with the kernels' NTT (fhe-math's words, faster), or — for a shape results do not
    /// have — through fhe.rs's decoder and checks.
    fn result_ciphertext(&self, bytes: &[u8], components: usize) -> Result<Ciphertext> {
        let par = self.params.bfv();
        let what = Artifact::Results.name();
        let Some(polys) =
            crate::rq_wire::read_unseeded(bytes, par.moduli(), par.degree(), components, what)?
        else {
            return wire::decode_ciphertext(what, "ciphertext", bytes, par, Some(components));
        };
        let basis = self
            .q_basis
            .get_or_init(|| kernels::RnsBasis::new(par.degree(), par.moduli()).ok());
        let Some(basis) = basis else {
            // Moduli the kernels do not take: fhe.rs decodes (the same ciphertext).
            return wire::decode_ciphertext(what, "ciphertext", bytes, par, Some(components));
        };
        let ctx = par.context_at_level(0)?;
        let polys = polys
            .into_iter()
            .map(|mut words| {
                basis.forward(&mut words)?;
                Poly::try_convert_from(words, ctx, false, Representation::Ntt)
                    .map_err(|e| ProtocolError::Fhe(fhe::Error::MathError(e)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Ciphertext::new(polys, par)?)
    }

    /// Decrypts and decodes every result ciphertext (centred slot values), in parallel.
    pub fn decrypt(&self, results: &[(usize, Ciphertext)]) -> Result<Vec<(usize, Vec<i64>)>> {
        results
            .par_iter()
            .map(|(index, ct)| {
                let pt = self.secret_key.try_decrypt(ct)?;
                Ok((*index, Vec::<i64>::try_decode(&pt, Encoding::simd())?))
            })
            .collect()
    }

    /// Reads every user's score out of the decoded slots and decides.
    pub fn decide(
        &self,
        decoded: &[(usize, Vec<i64>)],
        users: usize,
    ) -> Result<(Vec<i64>, Decision)> {
        self.check_result_indexes(decoded, users)?;
        let scores = match self.layout {
            Layout::BlindTouch { .. } => self.blindtouch()?.unpack_scores(decoded, users)?,
            Layout::Columnar => self.columnar()?.unpack_scores(decoded, users)?,
        };
        let decision = Decision::from_integers(&scores, self.model.threshold_score);
        Ok((scores, decision))
    }

    /// Refuses result indexes beyond what `users` users need, and repeated ones.
    fn check_result_indexes(&self, decoded: &[(usize, Vec<i64>)], users: usize) -> Result<()> {
        let expected = match self.layout {
            Layout::BlindTouch { .. } => {
                let layout = self.blindtouch()?;
                layout
                    .ciphertexts_for(users)
                    .div_ceil(layout.compression_capacity())
            }
            Layout::Columnar => self.columnar()?.groups_for(users),
        };
        let mut seen = BTreeSet::new();
        for (index, _) in decoded {
            if *index >= expected || !seen.insert(*index) {
                return Err(ProtocolError::wire(
                    "results",
                    format!(
                        "result {index} is unexpected or repeated ({expected} results for {users} users)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads the scores out of the results of a query some clusters did not answer:
    /// `None` for every user of a unit in `missing_units` (unit indices as in
    /// [`Client::unit_of_user`]) and for users no result carries; the others exact.
    pub fn scores_partial(
        &self,
        decoded: &[(usize, Vec<i64>)],
        users: usize,
        missing_units: &BTreeSet<usize>,
    ) -> Result<Vec<Option<i64>>> {
        self.check_result_indexes(decoded, users)?;
        let mut scores = match self.layout {
            Layout::BlindTouch { .. } => self.blindtouch()?.unpack_partial(decoded, users),
            Layout::Columnar => self.columnar()?.unpack_partial(decoded, users),
        };
        for (u, score) in scores.iter_mut().enumerate() {
            if missing_units.contains(&self.unit_of_user(u)) {
                *score = None;
            }
        }
        Ok(scores)
    }

    /// Smallest noise budget (bits) left in any result: how far evaluation is from
    /// breaking decryption. Negative means some slot decrypted wrongly.
    pub fn noise_budget(&self, results: &[(usize, Ciphertext)]) -> Result<f64> {
        let mut worst = f64::INFINITY;
        for (_, ct) in results {
            // SAFETY: measure_noise is only variable-time in the noise; the client owns the key
            // and the measurement never leaves it.
            let noise = unsafe { self.secret_key.measure_noise(ct)? };
            worst = worst.min(self.params.noise_capacity() - noise as f64);
        }
        Ok(worst)
    }
}

/// The Ed25519 signing key of a BFV secret key: its seed is SHA-256 over a domain tag and
/// the serialized secret key (one-way: the signing key reveals nothing of the BFV key).
fn signing_key(secret_key: &SecretKey) -> SigningKey {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"touchstone signing key v1");
    h.update(secret_key.to_bytes());
    SigningKey::from_bytes(&h.finalize().into())
}
