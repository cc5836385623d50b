//! The BPKEM study (`touchstone run` of a config with a `bpkem:` section): biometric key
//! regeneration measured on the same fingerprints as the matching experiments.
//!
//! For every dataset: the test split's fingers, genuine pairs (two captures of one finger:
//! an impression of another session, or a SOCOFing-style alteration, against the first
//! real capture) and as many impostor pairs (first captures of two fingers); for every
//! descriptor (`minutiae`: the paper's Alg. 2 over our extractor's minutiae; `embedding`:
//! signs of seeded projections of the network's embedding) the intra/inter Hamming
//! histograms and, for every locker count L, the key-recovery rates (FRR/FAR) through the
//! real fuzzy extractor. Independently of the data: the success rate against a simulated
//! Hamming error (the paper's Table 8) next to the exact (1 − p)^L, and the whole flow
//! (Gen → LWE key pair → Asmuth–Bloom shares over the holders → Rep → k shares → CRT →
//! public-key check) timed with the paper's cost model on genuine pairs.

use super::config::{check_name, OutputConfig};
use super::manifest;
use anyhow::{bail, Context, Result};
use bpkem::descriptor::{self, Bits, DescriptorParams};
use bpkem::flow::{Deployment, FlowParams, SeedSource};
use bpkem::fuzzy::{self, FuzzyParams};
use bpkem::metrics::{self, Histogram, RecoveryRates, SuccessPoint};
use datasets::loaders::{self, Dataset, Variant};
use datasets::synth::SynthConfig;
use plotters::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A config file of this study: `name`, `description`, `bpkem:`, `outputs:`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub bpkem: BpkemConfig,
    #[serde(default)]
    pub outputs: OutputConfig,
}

/// The study's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BpkemConfig {
    /// The fingerprint sets (each generated or read from a folder).
    pub datasets: Vec<StudyData>,
    /// Seed of the protocol's train / validation / test split (only the test part is used).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Model folder for the `embedding` descriptor.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// `minutiae` and/or `embedding`.
    pub descriptors: Vec<DescriptorKind>,
    /// Descriptor length n.
    #[serde(default = "default_bits")]
    pub bits: usize,
    /// Positions per locker k.
    #[serde(default = "default_subset")]
    pub subset: usize,
    /// Locker counts L to compare.
    pub lockers: Vec<usize>,
    /// Key length in bytes.
    #[serde(default = "default_key_bytes")]
    pub key_bytes: usize,
    /// Share holders n and threshold k of the Asmuth–Bloom sharing.
    #[serde(default = "default_holders")]
    pub holders: usize,
    #[serde(default = "default_threshold")]
    pub threshold: usize,
    /// Hamming errors t of the simulated success-rate table.
    pub errors: Vec<usize>,
    /// Simulated trials per t.
    pub trials: usize,
    /// Most genuine (and impostor) pairs per dataset.
    pub pairs: usize,
    /// Genuine pairs run through the whole flow (timed).
    pub flows: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_split_seed() -> u64 {
    42
}
fn default_bits() -> usize {
    128
}
fn default_subset() -> usize {
    16
}
fn default_key_bytes() -> usize {
    32
}
fn default_holders() -> usize {
    20
}
fn default_threshold() -> usize {
    10
}
fn default_seed() -> u64 {
    1
}

/// One dataset of the study.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyData {
    /// Generate this synthetic set (cached under `<outputs.dir>/cache/`).
    #[serde(default)]
    pub synthetic: Option<SynthConfig>,
    /// Or read this folder.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// Where a descriptor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DescriptorKind {
    Minutiae,
    Embedding,
}

impl std::fmt::Display for DescriptorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Minutiae => "minutiae",
            Self::Embedding => "embedding",
        })
    }
}

/// Bounds checked before anything runs.
const MAX_TRIALS: usize = 1_000_000;
const MAX_PAIRS: usize = 100_000;
const MAX_FLOWS: usize = 10_000;
const MAX_LOCKERS: usize = 100_000;

/// Does this YAML text hold a BPKEM study (a top-level `bpkem:` key)?
pub fn is_study(text: &str) -> bool {
    super::study::has_section(text, "bpkem")
}

/// Parses and validates a study config; errors name `path:line:column` and the field.
pub fn parse(text: &str, path: &Path) -> Result<StudyConfig> {
    parse_with(text, path, true)
}

/// A config stored in a run's manifest: every check but the folders' existence.
pub fn parse_stored(text: &str, path: &Path) -> Result<StudyConfig> {
    parse_with(text, path, false)
}

fn parse_with(text: &str, path: &Path, check_files: bool) -> Result<StudyConfig> {
    let config: StudyConfig = super::study::deserialize(text, path)?;
    let bad = |field: &str, why: String| -> Result<StudyConfig> {
        bail!("{}: field `bpkem.{field}`: {why}", path.display())
    };
    if let Err(why) = check_name(&config.name) {
        bail!("{}: field `name`: {why}", path.display());
    }
    let b = &config.bpkem;
    if b.datasets.is_empty() {
        return bad("datasets", "list at least one dataset".into());
    }
    for (i, d) in b.datasets.iter().enumerate() {
        match (&d.synthetic, &d.path) {
            (Some(_), None) => {}
            (None, Some(p)) if !check_files || p.is_dir() => {}
            (None, Some(p)) => {
                return bad(
                    &format!("datasets[{i}].path"),
                    format!("{} is not a folder", p.display()),
                )
            }
            _ => {
                return bad(
                    &format!("datasets[{i}]"),
                    "give exactly one of `synthetic` or `path`".into(),
                )
            }
        }
    }
    if b.descriptors.is_empty() {
        return bad("descriptors", "list `minutiae` and/or `embedding`".into());
    }
    if b.descriptors.contains(&DescriptorKind::Embedding) && b.model.is_none() {
        return bad(
            "model",
            "the `embedding` descriptor needs a model folder".into(),
        );
    }
    if let Some(model) = b.model.as_ref().filter(|_| check_files) {
        if !model.join("head.json").is_file() {
            return bad(
                "model",
                format!("no model at {} (no head.json)", model.display()),
            );
        }
    }
    if b.lockers.is_empty() || b.lockers.iter().any(|&l| l == 0 || l > MAX_LOCKERS) {
        return bad(
            "lockers",
            format!("each in 1..={MAX_LOCKERS}, at least one"),
        );
    }
    for &lockers in &b.lockers {
        let params = FuzzyParams {
            n: b.bits,
            k: b.subset,
            lockers,
            key_len: b.key_bytes,
        };
        params
            .validate()
            .map_err(|e| anyhow::anyhow!("{}: bpkem: {e}", path.display()))?;
    }
    if let Err(e) = (DescriptorParams {
        bits: b.bits,
        ..DescriptorParams::default()
    })
    .validate()
    {
        return bad("bits", e.to_string());
    }
    if b.errors.is_empty() || b.errors.iter().any(|&t| t > b.bits) {
        return bad("errors", format!("each in 0..=bits ({})", b.bits));
    }
    if b.trials == 0 || b.trials > MAX_TRIALS {
        return bad("trials", format!("must be in 1..={MAX_TRIALS}"));
    }
    if b.pairs == 0 || b.pairs > MAX_PAIRS {
        return bad("pairs", format!("must be in 1..={MAX_PAIRS}"));
    }
    if b.flows > MAX_FLOWS {
        return bad("flows", format!("must be in 0..={MAX_FLOWS}"));
    }
    if b.threshold == 0 || b.threshold > b.holders || b.holders > 64 {
        return bad("threshold", "need 1 ≤ threshold ≤ holders ≤ 64".into());
    }
    Ok(config)
}

/// Key-recovery rates of one descriptor at one L.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockerRates {
    pub lockers: usize,
    pub rates: RecoveryRates,
    /// The paper's Table 8 from real pairs: genuine pairs binned by their measured
    /// Hamming distance, key regeneration per bin.
    #[serde(default)]
    pub by_distance: Vec<DistanceBin>,
}

/// Genuine pairs whose descriptors differ in `low..=high` bits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DistanceBin {
    pub low: usize,
    pub high: usize,
    pub pairs: usize,
    pub successes: usize,
    /// Mean over the bin's pairs of the exact 1 − (1 − p(t))^L at each pair's t.
    pub theory: f64,
}

/// Bin edges of the real-pair table (the paper's errors go to 10).
const BINS: [(usize, usize); 6] = [
    (0, 5),
    (6, 10),
    (11, 15),
    (16, 20),
    (21, 30),
    (31, usize::MAX),
];

/// Gen on the first descriptor of every genuine pair, Rep on the second; binned by the
/// pair's Hamming distance.
fn by_distance(
    params: &FuzzyParams,
    genuine: &[(Bits, Bits)],
    seed: u64,
) -> Result<Vec<DistanceBin>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x7ab1_e008);
    let mut bins: Vec<DistanceBin> = BINS
        .iter()
        .map(|&(low, high)| DistanceBin {
            low,
            high: high.min(params.n),
            pairs: 0,
            successes: 0,
            theory: 0.0,
        })
        .filter(|b| b.low <= params.n)
        .collect();
    for (a, b) in genuine {
        let t = descriptor::hamming(a, b)?;
        let (key, helper) = fuzzy::gen(params, a, &mut rng)?;
        let ok = match fuzzy::rep(&helper, b) {
            Ok(k) if k == key => true,
            Ok(_) => bail!("Rep returned a key other than the enrolled one"),
            Err(bpkem::BpkemError::NoLockerOpened) => false,
            Err(e) => return Err(e.into()),
        };
        if let Some(bin) = bins.iter_mut().find(|x| (x.low..=x.high).contains(&t)) {
            bin.pairs += 1;
            bin.successes += usize::from(ok);
            bin.theory += 1.0 - fuzzy::failure_probability(params.n, params.k, t, params.lockers);
        }
    }
    for bin in &mut bins {
        if bin.pairs > 0 {
            bin.theory /= bin.pairs as f64;
        }
    }
    Ok(bins)
}

/// One descriptor on one dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DescriptorResult {
    pub descriptor: DescriptorKind,
    /// Images whose descriptor could not be extracted (too few minutiae after screening),
    /// and how many images were tried.
    pub failures: usize,
    pub images: usize,
    /// Pairs left after failures.
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    pub intra: Histogram,
    pub inter: Histogram,
    pub rates: Vec<LockerRates>,
}

/// Medians of the flow's steps, microseconds, and what it stores.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FlowResult {
    pub lockers: usize,
    pub descriptor: Option<DescriptorKind>,
    pub enrolments: usize,
    pub recoveries: usize,
    /// Genuine recoveries whose descriptor was too far (no locker opened).
    pub no_locker: usize,
    /// Recoveries with k − 1 shares that the public-key check refused (all, or a bug).
    pub short_refused: usize,
    pub short_tried: usize,
    pub enrol_us: BTreeMap<String, f64>,
    pub recover_us: BTreeMap<String, f64>,
    pub helper_bytes: usize,
    pub share_bytes: usize,
    pub public_key_bytes: usize,
    pub stored_bytes: usize,
}

/// One dataset's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatasetResult {
    pub label: String,
    pub path: String,
    pub test_fingers: usize,
    pub descriptors: Vec<DescriptorResult>,
    pub flows: Vec<FlowResult>,
}

/// Everything the study measured (bpkem.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyResult {
    pub bits: usize,
    pub subset: usize,
    pub holders: usize,
    pub threshold: usize,
    /// Per L: the simulated success rates.
    pub simulated: Vec<(usize, Vec<SuccessPoint>)>,
    pub datasets: Vec<DatasetResult>,
}

/// Runs the study in `config_path`; returns the run folder.
pub fn run(config_path: &Path, text: &str) -> Result<PathBuf> {
    let start = Instant::now();
    let config = parse(text, config_path)?;
    let b = &config.bpkem;
    let dir = super::run::new_run_folder(&config.outputs.dir, &config.name)?;
    println!(
        "touchstone run {} · BPKEM study · {} dataset(s) · {}",
        config_path.display(),
        b.datasets.len(),
        dir.display()
    );
    let mut simulated = Vec::new();
    for &lockers in &b.lockers {
        let params = fuzzy_params(b, lockers);
        simulated.push((
            lockers,
            metrics::success_vs_errors(&params, &b.errors, b.trials, b.seed)?,
        ));
    }
    let model = match &b.model {
        Some(m) => Some(load_model(m)?),
        None => None,
    };
    let mut datasets = Vec::new();
    for (i, data) in b.datasets.iter().enumerate() {
        let folder = match (&data.synthetic, &data.path) {
            (Some(synth), _) => {
                let folder = super::run::synthetic_folder(&config.outputs.dir, synth);
                super::run::ensure_synthetic(synth, &folder)?;
                folder
            }
            (None, Some(p)) => p.clone(),
            (None, None) => unreachable!("validated by parse"),
        };
        datasets.push(
            study_dataset(b, &folder, model.as_ref())
                .with_context(|| format!("bpkem.datasets[{i}] ({})", folder.display()))?,
        );
    }
    let result = StudyResult {
        bits: b.bits,
        subset: b.subset,
        holders: b.holders,
        threshold: b.threshold,
        simulated,
        datasets,
    };
    super::atomic::write(
        &dir.join("bpkem.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    let mut man = manifest::Manifest::for_study(&config.name, text, config_path);
    man.seeds = vec![b.seed];
    man.model = b.model.as_deref().map(manifest::model_inputs).transpose()?;
    man.finish(start.elapsed().as_secs_f64(), 0);
    man.write(&dir)?;
    render(&dir, &config, &result)?;
    println!("wrote {}", dir.join("summary.md").display());
    Ok(dir)
}

fn fuzzy_params(b: &BpkemConfig, lockers: usize) -> FuzzyParams {
    FuzzyParams {
        n: b.bits,
        k: b.subset,
        lockers,
        key_len: b.key_bytes,
    }
}

/// The model, its preprocessing and input size, for embedding descriptors.
struct Model {
    net: train::model::Siamese<train::CpuBackend>,
    exported: train::export::ExportedModel,
}

fn load_model(dir: &Path) -> Result<Model> {
    let device = Default::default();
    let (net, exported) = train::export::load::<train::CpuBackend>(dir, &device)?;
    Ok(Model { net, exported })
}

/// Two sample indices: the enrolled capture and the query.
type Pair = (usize, usize);

/// Genuine and impostor pairs of sample indices over the test split's fingers.
fn pairs(dataset: &Dataset, test: &[usize], cap: usize, seed: u64) -> (Vec<Pair>, Vec<Pair>) {
    let fingers: BTreeSet<usize> = test.iter().map(|&i| dataset.samples[i].finger).collect();
    // Every capture of those fingers, the first real one first.
    let mut by_finger: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, s) in dataset.samples.iter().enumerate() {
        if fingers.contains(&s.finger) {
            by_finger.entry(s.finger).or_default().push(i);
        }
    }
    for captures in by_finger.values_mut() {
        captures.sort_by_key(|&i| {
            let s = &dataset.samples[i];
            (s.variant != Variant::Real, s.session, s.impression, i)
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut genuine: Vec<(usize, usize)> = by_finger
        .values()
        .flat_map(|c| c[1..].iter().map(move |&b| (c[0], b)))
        .collect();
    genuine.shuffle(&mut rng);
    genuine.truncate(cap);
    let firsts: Vec<usize> = by_finger.values().map(|c| c[0]).collect();
    let mut impostor = Vec::new();
    if firsts.len() >= 2 {
        while impostor.len() < genuine.len().max(1).min(cap) {
            let a = rng.random_range(0..firsts.len());
            let b = rng.random_range(0..firsts.len());
            if a != b {
                impostor.push((firsts[a], firsts[b]));
            }
        }
    }
    (genuine, impostor)
}

fn study_dataset(b: &BpkemConfig, folder: &Path, model: Option<&Model>) -> Result<DatasetResult> {
    let dataset = loaders::load(folder)?;
    let split = train::split_for(&dataset, b.split_seed)?;
    let (genuine, impostor) = pairs(&dataset, &split.test, b.pairs, b.seed);
    if genuine.is_empty() {
        bail!(
            "no finger of the test split has two captures (a SOCOFing-style set needs `altered: true`)"
        );
    }
    let images: Vec<usize> = genuine
        .iter()
        .chain(&impostor)
        .flat_map(|&(a, c)| [a, c])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut descriptors = Vec::new();
    let mut flows = Vec::new();
    for &kind in &b.descriptors {
        let codes: BTreeMap<usize, Bits> = match kind {
            DescriptorKind::Minutiae => {
                let params = DescriptorParams {
                    bits: b.bits,
                    ..DescriptorParams::default()
                };
                let mut codes = BTreeMap::new();
                for &i in &images {
                    let image = datasets::Gray8::load(&dataset.samples[i].path)?;
                    // Too few minutiae after screening (or a degenerate point set): a
                    // failure to extract, counted; anything else is an error.
                    match descriptor::from_image(&image, &params) {
                        Ok(code) => {
                            codes.insert(i, code);
                        }
                        Err(
                            bpkem::BpkemError::TooFewMinutiae { .. }
                            | bpkem::BpkemError::Degenerate(_),
                        ) => {}
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("descriptor of {}", dataset.samples[i].path.display())
                            })
                        }
                    }
                }
                codes
            }
            DescriptorKind::Embedding => {
                let model = model.expect("validated: embedding needs a model");
                let size = model.exported.model.input_size;
                let set = train::data::ImageSet::prepare(
                    &dataset,
                    &images,
                    &model.exported.pipeline,
                    size,
                    &|| {},
                )?;
                let device = Default::default();
                let embeddings =
                    train::inference::embeddings(&model.net, &set.images, size, 64, &device);
                let projection = descriptor::RandomProjection::new(
                    b.bits,
                    embeddings.first().map_or(1, Vec::len),
                    b.seed,
                )?;
                let mut codes = BTreeMap::new();
                for (&i, e) in images.iter().zip(&embeddings) {
                    codes.insert(i, projection.apply(e)?);
                }
                codes
            }
        };
        let keep = |list: &[(usize, usize)]| -> Vec<(Bits, Bits)> {
            list.iter()
                .filter_map(|(a, c)| Some((codes.get(a)?.clone(), codes.get(c)?.clone())))
                .collect()
        };
        let (g, im) = (keep(&genuine), keep(&impostor));
        let hist = metrics::distance_histograms(&g, &im, b.bits)?;
        let mut rates = Vec::new();
        for &lockers in &b.lockers {
            let params = fuzzy_params(b, lockers);
            rates.push(LockerRates {
                lockers,
                rates: metrics::key_recovery_rates(&params, &g, &im, b.seed)?,
                by_distance: by_distance(&params, &g, b.seed)?,
            });
        }
        if b.flows > 0 {
            for &lockers in &b.lockers {
                flows.push(flow(b, lockers, kind, &g)?);
            }
        }
        descriptors.push(DescriptorResult {
            descriptor: kind,
            failures: images.len() - codes.len(),
            images: images.len(),
            genuine_pairs: g.len(),
            impostor_pairs: im.len(),
            intra: hist.intra,
            inter: hist.inter,
            rates,
        });
    }
    let name = folder.file_name().map_or_else(
        || folder.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(DatasetResult {
        label: format!("{name} ({:?})", dataset.format).to_lowercase(),
        path: folder.display().to_string(),
        test_fingers: split
            .test
            .iter()
            .map(|&i| dataset.samples[i].finger)
            .collect::<BTreeSet<_>>()
            .len(),
        descriptors,
        flows,
    })
}

fn median_us(mut v: Vec<Duration>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// The whole flow on up to `b.flows` genuine pairs: enrol the first capture, recover from
/// the second with the first k holders, then try k − 1 holders (must be refused).
fn flow(
    b: &BpkemConfig,
    lockers: usize,
    kind: DescriptorKind,
    genuine: &[(Bits, Bits)],
) -> Result<FlowResult> {
    let mut rng = ChaCha20Rng::seed_from_u64(b.seed ^ lockers as u64);
    let deployment = Deployment::new(
        FlowParams {
            fuzzy: fuzzy_params(b, lockers),
            holders: b.holders,
            threshold: b.threshold,
            seed_source: SeedSource::Derived,
            ..FlowParams::default()
        },
        &mut rng,
    )?;
    let mut out = FlowResult {
        lockers,
        descriptor: Some(kind),
        ..FlowResult::default()
    };
    let mut enrol: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut recover: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let first_k: Vec<usize> = (1..=b.threshold).collect();
    for (w, w2) in genuine.iter().take(b.flows) {
        let e = deployment.enrol(w, &mut rng)?;
        out.enrolments += 1;
        let t = &e.timings;
        for (name, d) in [
            ("T_L", t.t_l),
            ("T_H", t.t_h),
            ("T_N", t.t_n),
            ("T_S", t.t_s),
            ("Gen", t.fuzzy),
            ("total", t.total),
        ] {
            enrol.entry(name).or_default().push(d);
        }
        out.helper_bytes = e.storage.helper;
        out.share_bytes = e.storage.shares;
        out.public_key_bytes = e.storage.public_key;
        out.stored_bytes = e.storage.total;
        match deployment.recover(&e.record, w2, &e.holders, &first_k) {
            Ok(r) => {
                if r.keypair.public != e.keypair.public {
                    bail!("the flow recovered a key pair other than the enrolled one");
                }
                out.recoveries += 1;
                let t = &r.timings;
                for (name, d) in [
                    ("Rep", t.fuzzy),
                    ("T_H", t.t_h),
                    ("T_F", t.t_f),
                    ("T_S", t.t_s),
                    ("T_K", t.t_k),
                    ("T_L", t.t_l),
                    ("total", t.total),
                ] {
                    recover.entry(name).or_default().push(d);
                }
            }
            Err(bpkem::BpkemError::NoLockerOpened) => out.no_locker += 1,
            Err(e) => return Err(e.into()),
        }
        if b.threshold > 1 {
            // The enrolled descriptor itself opens a locker; only the shares are short.
            out.short_tried += 1;
            match deployment.recover(&e.record, w, &e.holders, &first_k[..b.threshold - 1]) {
                Err(bpkem::BpkemError::PublicKeyMismatch) => out.short_refused += 1,
                Ok(_) => bail!("k − 1 = {} shares recovered the key", b.threshold - 1),
                Err(e) => return Err(e.into()),
            }
        }
    }
    out.enrol_us = enrol
        .into_iter()
        .map(|(k, v)| (k.to_string(), median_us(v)))
        .collect();
    out.recover_us = recover
        .into_iter()
        .map(|(k, v)| (k.to_string(), median_us(v)))
        .collect();
    Ok(out)
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// summary.md and the figures, from the results.
pub fn render(dir: &Path, config: &StudyConfig, r: &StudyResult) -> Result<()> {
    let figures = draw(dir, r)?;
    let mut s = String::new();
    writeln!(s, "# {}\n", config.name)?;
    if !config.description.is_empty() {
        writeln!(s, "{}\n", config.description.trim())?;
    }
    writeln!(
        s,
        "BPKEM (PLOS ONE 2023) on touchstone's data: descriptors of n = {} bits, sample-then-lock \
         fuzzy extractor with k = {} positions per locker, Asmuth–Bloom ({}, {}) sharing of the \
         LWE key seed. All data here is synthetic (touchstone's generator), not the paper's.\n",
        r.bits, r.subset, r.threshold, r.holders
    )?;
    writeln!(
        s,
        "## Success rate vs Hamming error (simulated; the paper's Table 8)\n"
    )?;
    writeln!(
        s,
        "A random descriptor, Gen, t random bits flipped, Rep; `theory` = 1 − (1 − p)^L with \
         p = C(n−t, k)/C(n, k). The paper reports ≈100% for t ≤ 10 (1,000 trials) with L = 20 \
         and L = 100; for n = 128, t = 10 it states δ = 6.28·10⁻⁴ (L = 20) and 9.773·10⁻¹² (L = 100), \
         which the exact (1 − p)^L reproduces for no single k (see the δ table below).\n"
    )?;
    let mut header = vec!["t".to_string()];
    for (l, _) in &r.simulated {
        header.push(format!("L={l}: measured (95% CI)"));
        header.push(format!("L={l}: theory"));
    }
    let mut t = crate::format::Table::new(&header.iter().map(String::as_str).collect::<Vec<_>>());
    if let Some((_, first)) = r.simulated.first() {
        for (i, p0) in first.iter().enumerate() {
            let mut row = vec![p0.t.to_string()];
            for (_, points) in &r.simulated {
                let p = &points[i];
                row.push(format!(
                    "{} ({}–{}){}",
                    pct(p.rate),
                    pct(p.ci.low),
                    pct(p.ci.high),
                    if p.wrong_keys > 0 { " WRONG KEYS" } else { "" }
                ));
                row.push(format!("{:.6}", p.theory));
            }
            t.row(row);
        }
    }
    writeln!(s, "{}\n", t.render())?;
    let trials = r
        .simulated
        .first()
        .and_then(|(_, p)| p.first())
        .map_or(0, |p| p.trials);
    writeln!(
        s,
        "{trials} trials per t. δ at the paper's t = 10, computed vs measured. The paper's δ \
         values follow from its looser bound (1 − (1 − t/(n−k))^k)^L with k = 16: that gives \
         9.773·10⁻¹² for L = 100 exactly, and 6.28·10⁻³ (not the printed 6.28·10⁻⁴) for \
         L = 20; the exact failure probability (1 − p)^L is what Rep measures:\n"
    )?;
    let mut d = crate::format::Table::new(&[
        "L",
        "δ computed (1 − p)^L",
        "δ measured",
        "95% CI of δ",
        "agrees",
        "paper's δ",
        "paper's formula, this k",
    ]);
    for (l, points) in &r.simulated {
        if let Some(p) = points.iter().find(|p| p.t == 10) {
            d.row(vec![
                l.to_string(),
                format!(
                    "{:.3e}",
                    fuzzy::failure_probability(r.bits, r.subset, 10, *l)
                ),
                format!("{:.3e}", 1.0 - p.rate),
                format!("{:.3e} – {:.3e}", 1.0 - p.ci.high, 1.0 - p.ci.low),
                if p.agrees() {
                    "yes".into()
                } else {
                    "NO".into()
                },
                // The paper's figures are for n = 128, k = 16 only.
                match (r.bits, r.subset, l) {
                    (128, 16, 20) => "6.28e-4".into(),
                    (128, 16, 100) => "9.773e-12".into(),
                    _ => "-".into(),
                },
                format!("{:.3e}", 1.0 - p.paper_bound),
            ]);
        }
    }
    writeln!(s, "{}\n", d.render())?;

    for ds in &r.datasets {
        writeln!(s, "## {} — {} test fingers\n", ds.label, ds.test_fingers)?;
        let mut t = crate::format::Table::new(&[
            "descriptor",
            "failed to extract",
            "genuine pairs",
            "impostor pairs",
            "intra mean",
            "inter mean",
            "intra ≤ 10",
        ]);
        for d in &ds.descriptors {
            let within: u64 = d.intra.counts.iter().take(11).sum();
            t.row(vec![
                d.descriptor.to_string(),
                format!("{} of {}", d.failures, d.images),
                d.genuine_pairs.to_string(),
                d.impostor_pairs.to_string(),
                format!("{:.1}", d.intra.mean()),
                format!("{:.1}", d.inter.mean()),
                if d.intra.total() == 0 {
                    "-".into()
                } else {
                    pct(within as f64 / d.intra.total() as f64)
                },
            ]);
        }
        writeln!(
            s,
            "Hamming distances of the descriptors (paper: same finger ≤ 10 after screening, \
             different fingers 74–81 on average):\n\n{}\n",
            t.render()
        )?;
        let mut t = crate::format::Table::new(&[
            "descriptor",
            "L",
            "FRR (95% CI)",
            "FAR (95% CI)",
            "wrong keys",
        ]);
        for d in &ds.descriptors {
            for lr in &d.rates {
                let x = &lr.rates;
                t.row(vec![
                    d.descriptor.to_string(),
                    lr.lockers.to_string(),
                    format!(
                        "{} ({}–{})",
                        pct(x.frr),
                        pct(x.frr_ci.low),
                        pct(x.frr_ci.high)
                    ),
                    format!(
                        "{} ({}–{})",
                        pct(x.far),
                        pct(x.far_ci.low),
                        pct(x.far_ci.high)
                    ),
                    x.wrong_keys.to_string(),
                ]);
            }
        }
        writeln!(
            s,
            "Key recovery through the fuzzy extractor (genuine: Rep on the second capture \
             regenerates the key; impostor: another finger's descriptor does). Images whose \
             descriptor failed to extract are left out of these pairs:\n\n{}\n",
            t.render()
        )?;
        let edges: Vec<String> = ds
            .descriptors
            .first()
            .and_then(|d| d.rates.first())
            .map(|lr| {
                lr.by_distance
                    .iter()
                    .map(|x| {
                        if x.high >= r.bits {
                            format!("t ≥ {}", x.low)
                        } else {
                            format!("t {}–{}", x.low, x.high)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut header = vec!["descriptor".to_string(), "L".to_string()];
        header.extend(edges);
        let mut t =
            crate::format::Table::new(&header.iter().map(String::as_str).collect::<Vec<_>>());
        for d in &ds.descriptors {
            for lr in &d.rates {
                let mut row = vec![d.descriptor.to_string(), lr.lockers.to_string()];
                row.extend(lr.by_distance.iter().map(|x| {
                    if x.pairs == 0 {
                        "-".to_string()
                    } else {
                        format!("{}/{} (theory {})", x.successes, x.pairs, pct(x.theory))
                    }
                }));
                t.row(row);
            }
        }
        writeln!(
            s,
            "Table 8 from real pairs: genuine pairs binned by their measured Hamming error t, \
             keys regenerated / pairs (the exact theory averaged over the bin's t):\n\n{}\n",
            t.render()
        )?;
        if !ds.flows.is_empty() {
            let mut t = crate::format::Table::new(&[
                "descriptor",
                "L",
                "enrol: Gen",
                "T_H",
                "T_L",
                "T_N",
                "T_S",
                "total",
                "recover: Rep",
                "T_H",
                "T_F",
                "T_S",
                "T_K",
                "T_L",
                "total",
                "recovered",
                "k−1 refused",
                "stored/user",
            ]);
            for f in &ds.flows {
                let us = |m: &BTreeMap<String, f64>, k: &str| {
                    m.get(k).map_or("-".to_string(), |v| format!("{v:.0} µs"))
                };
                let e = |k: &str| us(&f.enrol_us, k);
                let q = |k: &str| us(&f.recover_us, k);
                t.row(vec![
                    f.descriptor.map_or("-".into(), |d| d.to_string()),
                    f.lockers.to_string(),
                    e("Gen"),
                    e("T_H"),
                    e("T_L"),
                    e("T_N"),
                    e("T_S"),
                    e("total"),
                    q("Rep"),
                    q("T_H"),
                    q("T_F"),
                    q("T_S"),
                    q("T_K"),
                    q("T_L"),
                    q("total"),
                    format!("{} of {}", f.recoveries, f.enrolments),
                    format!("{} of {}", f.short_refused, f.short_tried),
                    crate::format::bytes(f.stored_bytes),
                ]);
            }
            writeln!(
                s,
                "The whole flow on genuine pairs (medians; T_F reads in-process holders, the \
                 paper read a blockchain). Stored per user: helper data {} + {} shares + public \
                 key {}:\n\n{}\n",
                crate::format::bytes(ds.flows[0].helper_bytes),
                crate::format::bytes(ds.flows[0].share_bytes),
                crate::format::bytes(ds.flows[0].public_key_bytes),
                t.render()
            )?;
        }
    }
    super::study::write_summary(dir, s, &figures)
}

use super::figures::err;

/// Hamming histograms (one per dataset × descriptor) and success-rate curves.
fn draw(dir: &Path, r: &StudyResult) -> Result<Vec<String>> {
    train::curve::register_font();
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures)?;
    let mut written = Vec::new();
    for (i, ds) in r.datasets.iter().enumerate() {
        for d in &ds.descriptors {
            let name = format!("hamming_{i}_{}.png", d.descriptor);
            let path = figures.join(&name);
            let root = BitMapBackend::new(&path, (900, 500)).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let share = |h: &Histogram| -> Vec<f64> {
                let total = h.total().max(1) as f64;
                h.counts.iter().map(|&c| c as f64 / total).collect()
            };
            let (intra, inter) = (share(&d.intra), share(&d.inter));
            let top = intra
                .iter()
                .chain(&inter)
                .copied()
                .fold(0.0, f64::max)
                .max(0.01)
                * 1.1;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!(
                        "{} descriptor, {}: Hamming distance (blue: same finger, red: different)",
                        d.descriptor, ds.label
                    ),
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..r.bits as f64 + 1.0, 0.0..top)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("Hamming distance")
                .y_desc("share of pairs")
                .draw()
                .map_err(err)?;
            for (values, color) in [(&intra, BLUE.mix(0.6)), (&inter, RED.mix(0.6))] {
                chart
                    .draw_series(values.iter().enumerate().filter(|(_, v)| **v > 0.0).map(
                        |(x, v)| {
                            Rectangle::new([(x as f64, 0.0), (x as f64 + 1.0, *v)], color.filled())
                        },
                    ))
                    .map_err(err)?;
            }
            root.present().map_err(err)?;
            written.push(format!("figures/{name}"));
        }
    }
    let name = "success_vs_errors.png";
    let path = figures.join(name);
    let root = BitMapBackend::new(&path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max_t = r
        .simulated
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.t))
        .max()
        .unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "key regeneration success vs Hamming error (points: measured, lines: theory)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_t.max(1.0), 0.0..1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("Hamming error t")
        .y_desc("success rate")
        .draw()
        .map_err(err)?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN];
    for (i, (l, points)) in r.simulated.iter().enumerate() {
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.t as f64, p.theory)),
                c,
            ))
            .map_err(err)?
            .label(format!("L = {l}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.t as f64, p.rate), 4, c.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    written.push(format!("figures/{name}"));
    Ok(written)
}
