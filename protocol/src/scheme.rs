//! Schemes behind one trait, selected by name: `plain` (float reference), `quantized`
//! (integer reference), `blindtouch` and `columnar` (encrypted, through the three roles).

use crate::engine::{ColumnarEngine, ResolvedEngine};
use crate::error::{ProtocolError, Result};
use crate::messages::{Layout, QueryForm};
use crate::outcome::{Decision, EnrolmentReport, MatchOutcome, Scores, StageTimings, Traffic};
use crate::params::ParamSpec;
use crate::quantize::{MatchModel, QuantizedModel};
use crate::roles::{Client, MainServer};
use crate::transport::{Fault, Faulty, InProcess, Transport};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The schemes touchstone knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    /// Float scores, no encryption: the accuracy reference.
    Plain,
    /// Integer scores, no encryption: what the encrypted schemes must equal.
    Quantized,
    /// Blind-Touch's layout on BFV.
    #[serde(rename = "blindtouch")]
    BlindTouch,
    /// Feature-major layout, tensor products only, no evaluation keys.
    Columnar,
}

impl SchemeKind {
    /// All schemes, in table order.
    pub const ALL: [SchemeKind; 4] = [
        Self::Plain,
        Self::Quantized,
        Self::BlindTouch,
        Self::Columnar,
    ];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Quantized => "quantized",
            Self::BlindTouch => "blindtouch",
            Self::Columnar => "columnar",
        }
    }

    /// True for schemes that encrypt.
    pub fn encrypted(self) -> bool {
        matches!(self, Self::BlindTouch | Self::Columnar)
    }

    /// The parameter preset used when none is given.
    pub fn default_params(self, encrypted_weights: bool) -> Option<&'static str> {
        match self {
            Self::BlindTouch if encrypted_weights => Some("bt-8192-ew"),
            Self::BlindTouch => Some("bt-8192"),
            Self::Columnar => Some("col-8192"),
            _ => None,
        }
    }
}

impl fmt::Display for SchemeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchemeKind {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                ProtocolError::Input(format!("unknown scheme `{s}`; known: {}", names.join(", ")))
            })
    }
}

/// How to run one scheme.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemeConfig {
    /// Which scheme.
    pub kind: SchemeKind,
    /// Parameter set (encrypted schemes); None picks the scheme's default preset.
    pub params: Option<ParamSpec>,
    /// blindtouch only: encrypt the weights and mask as Blind-Touch did.
    pub encrypted_weights: bool,
    /// Cluster servers (encrypted schemes).
    pub clusters: usize,
    /// Measure the noise budget left in every result (client-side, untimed).
    pub measure_noise: bool,
    /// columnar only: which engine the cluster servers evaluate with.
    pub engine: ColumnarEngine,
    /// Fault injection between the main server and the clusters (tests of the exactness
    /// checks only; None in every measurement).
    pub fault: Option<Fault>,
    /// columnar on a fused engine: how the client sends its query.
    pub query_form: QueryForm,
}

impl SchemeConfig {
    /// A config with defaults: default parameters, 1 cluster, noise measured.
    pub fn new(kind: SchemeKind) -> Self {
        Self {
            kind,
            params: None,
            encrypted_weights: false,
            clusters: 1,
            measure_noise: true,
            engine: ColumnarEngine::default(),
            fault: None,
            query_form: QueryForm::default(),
        }
    }

    /// The parameter spec this config runs with (encrypted schemes).
    pub fn param_spec(&self) -> Result<Option<ParamSpec>> {
        if let Some(spec) = &self.params {
            return Ok(Some(spec.clone()));
        }
        self.kind
            .default_params(self.encrypted_weights)
            .map(ParamSpec::preset)
            .transpose()
    }
}

/// One scheme, ready to enrol a gallery and identify probes against it.
pub trait Matcher: Send {
    /// Which scheme this is.
    fn kind(&self) -> SchemeKind;

    /// Enrols (replaces) the gallery.
    fn enrol(&mut self, gallery: &[Vec<f32>]) -> Result<EnrolmentReport>;

    /// Scores a probe against every enrolled user, decides and ranks.
    fn identify(&self, probe: &[f32]) -> Result<MatchOutcome>;
}

/// Builds the matcher for `config`. Encrypted schemes generate fresh keys.
pub fn build_matcher(
    config: &SchemeConfig,
    model: &MatchModel,
    quantized: &QuantizedModel,
) -> Result<Box<dyn Matcher>> {
    model.validate()?;
    if model.features() != quantized.features() {
        return Err(ProtocolError::Input(format!(
            "float model has {} features, quantized model {}",
            model.features(),
            quantized.features()
        )));
    }
    Ok(match config.kind {
        SchemeKind::Plain => Box::new(PlainMatcher {
            model: model.clone(),
            gallery: Vec::new(),
        }),
        SchemeKind::Quantized => Box::new(QuantizedMatcher {
            model: quantized.clone(),
            gallery: Vec::new(),
        }),
        SchemeKind::BlindTouch | SchemeKind::Columnar => {
            let spec = config
                .param_spec()?
                .expect("encrypted schemes have default parameters");
            let layout = match config.kind {
                SchemeKind::BlindTouch => Layout::BlindTouch {
                    encrypted_weights: config.encrypted_weights,
                },
                _ => Layout::Columnar,
            };
            crate::limits::check_clusters(config.clusters)?;
            let params = spec.build()?;
            // Key generation is the secret key here plus the evaluation keys inside
            // `deploy` (timed there), each counted once.
            let start = Instant::now();
            let client = Client::new(params, layout, quantized.clone())?;
            let secret_key = start.elapsed();
            let mut matcher = EncryptedMatcher::deploy(
                Arc::new(client),
                config.clusters,
                config.measure_noise,
                config.engine,
                config.fault,
            )?;
            matcher.keygen += secret_key;
            matcher.query_form = config.query_form;
            Box::new(matcher)
        }
    })
}

fn check_gallery(gallery: &[Vec<f32>], features: usize) -> Result<()> {
    if gallery.is_empty() {
        return Err(ProtocolError::Input("cannot enrol an empty gallery".into()));
    }
    crate::limits::check_users(gallery.len())?;
    if let Some((i, t)) = gallery
        .iter()
        .enumerate()
        .find(|(_, t)| t.len() != features)
    {
        return Err(ProtocolError::Input(format!(
            "template {i} has {} values, the model expects {features}",
            t.len()
        )));
    }
    Ok(())
}

fn check_probe(probe: &[f32], features: usize, enrolled: usize) -> Result<()> {
    if enrolled == 0 {
        return Err(ProtocolError::Input("no gallery enrolled".into()));
    }
    if probe.len() != features {
        return Err(ProtocolError::Input(format!(
            "probe has {} values, the model expects {features}",
            probe.len()
        )));
    }
    Ok(())
}

/// Float logits in the clear.
struct PlainMatcher {
    model: MatchModel,
    gallery: Vec<Vec<f32>>,
}

impl Matcher for PlainMatcher {
    fn kind(&self) -> SchemeKind {
        SchemeKind::Plain
    }

    fn enrol(&mut self, gallery: &[Vec<f32>]) -> Result<EnrolmentReport> {
        check_gallery(gallery, self.model.features())?;
        self.gallery = gallery.to_vec();
        Ok(EnrolmentReport {
            users: gallery.len(),
            ..Default::default()
        })
    }

    fn identify(&self, probe: &[f32]) -> Result<MatchOutcome> {
        check_probe(probe, self.model.features(), self.gallery.len())?;
        let start = Instant::now();
        let scores: Vec<f64> = self
            .gallery
            .iter()
            .map(|r| self.model.logit(probe, r))
            .collect();
        let evaluate = start.elapsed();
        let start = Instant::now();
        let decision = Decision::from_floats(&scores, self.model.threshold_logit());
        Ok(MatchOutcome {
            scores: Scores::Float(scores),
            decision,
            timings: in_the_clear(evaluate, start.elapsed()),
            traffic: Traffic::default(),
            noise_budget_bits: None,
        })
    }
}

/// Integer scores in the clear: the exact reference for the encrypted schemes.
struct QuantizedMatcher {
    model: QuantizedModel,
    gallery: Vec<Vec<i64>>,
}

impl Matcher for QuantizedMatcher {
    fn kind(&self) -> SchemeKind {
        SchemeKind::Quantized
    }

    fn enrol(&mut self, gallery: &[Vec<f32>]) -> Result<EnrolmentReport> {
        check_gallery(gallery, self.model.features())?;
        self.gallery = gallery.iter().map(|t| self.model.quantize(t)).collect();
        Ok(EnrolmentReport {
            users: gallery.len(),
            ..Default::default()
        })
    }

    fn identify(&self, probe: &[f32]) -> Result<MatchOutcome> {
        check_probe(probe, self.model.features(), self.gallery.len())?;
        let start = Instant::now();
        let q = self.model.quantize(probe);
        let scores: Vec<i64> = self
            .gallery
            .iter()
            .map(|r| self.model.score(&q, r))
            .collect();
        let evaluate = start.elapsed();
        let start = Instant::now();
        let decision = Decision::from_integers(&scores, self.model.threshold_score);
        Ok(MatchOutcome {
            scores: Scores::Integer(scores),
            decision,
            timings: in_the_clear(evaluate, start.elapsed()),
            traffic: Traffic::default(),
            noise_budget_bits: None,
        })
    }
}

/// Unencrypted schemes have one server doing all the work: report it as one cluster.
fn in_the_clear(evaluate: Duration, decide: Duration) -> StageTimings {
    StageTimings {
        cluster_eval: vec![evaluate],
        clusters_wall: evaluate,
        decide,
        ..Default::default()
    }
}

/// A client, a main server and in-process cluster servers, every message serialized.
pub struct EncryptedMatcher {
    client: Arc<Client>,
    main: MainServer,
    measure_noise: bool,
    keygen: Duration,
    setup_distribute: Duration,
    setup: crate::messages::SetupSizes,
    users: usize,
    engine: ResolvedEngine,
    /// How the client sends its queries (columnar on a fused engine may extend them).
    pub query_form: QueryForm,
}

impl EncryptedMatcher {
    /// Deploys `client` (whose keys may be shared with other deployments) with
    /// `clusters` cluster servers: generates and distributes the evaluation material.
    /// `columnar` is evaluated with fhe.rs's per-operation reference.
    pub fn new(client: Arc<Client>, clusters: usize, measure_noise: bool) -> Result<Self> {
        Self::with_engine(client, clusters, measure_noise, ColumnarEngine::Fhe)
    }

    /// As [`EncryptedMatcher::new`], with the `columnar` evaluation on `engine`.
    pub fn with_engine(
        client: Arc<Client>,
        clusters: usize,
        measure_noise: bool,
        engine: ColumnarEngine,
    ) -> Result<Self> {
        Self::deploy(client, clusters, measure_noise, engine, None)
    }

    /// As [`EncryptedMatcher::with_engine`], with an optional fault injected between the
    /// main server and the clusters (see [`Fault`]).
    pub fn deploy(
        client: Arc<Client>,
        clusters: usize,
        measure_noise: bool,
        engine: ColumnarEngine,
        fault: Option<Fault>,
    ) -> Result<Self> {
        crate::limits::check_clusters(clusters)?;
        let params = client.params().spec().build()?;
        let engine = match client.layout() {
            Layout::Columnar => engine.resolve(),
            Layout::BlindTouch { .. } => ColumnarEngine::Fhe.resolve(),
        };
        let mut transport: Box<dyn Transport> =
            Box::new(InProcess::with_engine(&params, clusters, &engine)?);
        if let Some(fault) = fault {
            let components = client.layout().result_components();
            transport = Box::new(Faulty::new(transport, params.clone(), components, fault));
        }
        let mut main = MainServer::new(params, transport);
        // Evaluation keys are made once per client (cached): only the first deployment of a
        // client pays for them, and only that time is key generation.
        let start = Instant::now();
        let (bytes, setup) = client.setup_message()?;
        let keygen = start.elapsed();
        let start = Instant::now();
        main.setup(bytes)?;
        let setup_distribute = start.elapsed();
        let setup = *setup;
        Ok(Self {
            client,
            main,
            measure_noise,
            keygen,
            setup_distribute,
            setup,
            users: 0,
            engine,
            query_form: QueryForm::default(),
        })
    }

    /// The evaluation engine the clusters run, and why it differs from the request.
    pub fn engine(&self) -> &ResolvedEngine {
        &self.engine
    }

    /// The client (for tests that need its model or parameters).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Matcher for EncryptedMatcher {
    fn kind(&self) -> SchemeKind {
        match self.client.layout() {
            Layout::BlindTouch { .. } => SchemeKind::BlindTouch,
            Layout::Columnar => SchemeKind::Columnar,
        }
    }

    fn enrol(&mut self, gallery: &[Vec<f32>]) -> Result<EnrolmentReport> {
        check_gallery(gallery, self.client.model().features())?;
        let start = Instant::now();
        let message = self.client.enrolment_message(gallery)?;
        let encrypt = start.elapsed();
        let start = Instant::now();
        let shards = self.main.enrol(&message)?;
        let distribute = start.elapsed();
        self.users = gallery.len();
        Ok(EnrolmentReport {
            users: gallery.len(),
            keygen: self.keygen,
            setup_distribute: self.setup_distribute,
            setup: self.setup,
            encrypt,
            distribute,
            enrolment_bytes: message.len(),
            stored_ciphertexts: shards.per_cluster.iter().sum(),
            stored_bytes: shards.stored_bytes,
            per_cluster: shards.per_cluster,
            engine: self.engine.running().to_string(),
            engine_fallback: self.engine.fallback.clone(),
        })
    }

    fn identify(&self, probe: &[f32]) -> Result<MatchOutcome> {
        check_probe(probe, self.client.model().features(), self.users)?;
        let mut timings = StageTimings::default();
        let mut traffic = Traffic::default();

        let start = Instant::now();
        let query = match self.query_form {
            QueryForm::Ciphertexts => self.client.encrypt_query(probe)?,
            QueryForm::Extended => self.client.encrypt_query_extended(probe)?,
        };
        timings.encrypt = start.elapsed();

        let start = Instant::now();
        let upload = self.client.query_message(&query);
        let serialize_query = start.elapsed();
        traffic.upload = upload.len();

        let (download, stats) = self.main.query(&upload)?;
        timings.serialize_query = serialize_query + stats.check;
        timings.cluster_eval = stats.cluster_eval;
        timings.clusters_wall = stats.clusters_wall;
        timings.gather = stats.gather;
        timings.compress = stats.compress;
        traffic.fanout = stats.fanout_bytes;
        traffic.gather = stats.gather_bytes;
        traffic.download = download.len();
        traffic.result_ciphertexts = stats.result_ciphertexts;

        let start = Instant::now();
        let results = self.client.open_results(&download)?;
        timings.serialize_results = stats.serialize + start.elapsed();

        let start = Instant::now();
        let decoded = self.client.decrypt(&results)?;
        timings.decrypt = start.elapsed();

        let start = Instant::now();
        let (scores, decision) = self.client.decide(&decoded, self.users)?;
        timings.decide = start.elapsed();

        let noise_budget_bits = if self.measure_noise {
            Some(self.client.noise_budget(&results)?)
        } else {
            None
        };
        Ok(MatchOutcome {
            scores: Scores::Integer(scores),
            decision,
            timings,
            traffic,
            noise_budget_bits,
        })
    }
}
