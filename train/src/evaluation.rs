//! The test protocol of a model folder on a dataset, shared by `touchstone eval`,
//! `touchstone match --model` and the experiment harness:
//!
//! 1. [`TestSet::load`]: the test split's templates. Every test image is enrolled with its
//!    enrolment template (r = W·e + b, the network's first input); probes are the query
//!    templates (q = W·e, the second input) of augmented copies of every test image and of
//!    the originals some pairs use — the orientation the network was trained in.
//! 2. [`score`]: a matching scheme ([`protocol::Matcher`]: plain, quantized or encrypted)
//!    enrols the gallery and identifies every probe; for an encrypted scheme every
//!    decrypted score is checked against the plaintext integer score ([`protocol::Tally`]).
//! 3. [`Accuracy::of`]: verification metrics of the pairs and 1:N rank rates, read off the
//!    scheme's own scores, so a row labelled with a scheme comes from running it.

use crate::error::{Result, TrainError};
use crate::export::ExportedModel;
use crate::{data::ImageSet, inference, CpuBackend};
use datasets::augment::Augmenter;
use datasets::metrics::{self, Verification};
use datasets::{loaders, splits};
use protocol::synthetic::Probe;
use protocol::{MatchModel, MatchOutcome, Matcher, Reference, Tally, Workload};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// One verification pair: enrolled user `gallery` against probe `probe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairRef {
    /// Index into [`TestSet::gallery`].
    pub gallery: usize,
    /// Index into [`TestSet::probes`].
    pub probe: usize,
    /// Same finger.
    pub genuine: bool,
}

/// The test split of a dataset as templates of one model.
#[derive(Clone, Debug)]
pub struct TestSet {
    /// Test images (= enrolled users).
    pub images: usize,
    /// Enrolment templates, one per test image.
    pub gallery: Vec<Vec<f32>>,
    /// Query templates: first the augmented copy of every test image (probe i is image i's
    /// copy, its 1:N mate is user i), then the originals that non-augmented pairs use.
    pub probes: Vec<Probe>,
    /// Verification pairs.
    pub pairs: Vec<PairRef>,
    /// The float head: FC-1 weights, bias, threshold τ.
    pub head: MatchModel,
    /// |template value| that maps to the largest quantization code (the model's 99.9th
    /// percentile on training templates).
    pub calibration_reference: f32,
    /// "MODEL on DATA, test split (N images)".
    pub description: String,
    /// The network's embedding of every enrolled image (parallel to `gallery`).
    pub gallery_embeddings: Vec<Vec<f32>>,
    /// The embedding behind every probe (parallel to `probes`).
    pub probe_embeddings: Vec<Vec<f32>>,
    /// Extra captures of every enrolled image (further augmented copies, drawn with their
    /// own seeds), as embeddings: `[user][capture]`; empty unless asked for. Schemes that
    /// average several captures (the embedding-login baseline) use them.
    pub extra_captures: Vec<Vec<Vec<f32>>>,
    /// Extra captures of every probe (`[probe][capture]`, as many as `extra_captures` per
    /// user): further augmented copies of the probe's source image, drawn with seeds of
    /// their own — what a login that averages k captures takes.
    pub probe_extra_captures: Vec<Vec<Vec<f32>>>,
    /// The network's head (FC-16 and FC-1), to turn embeddings into templates.
    pub network_head: crate::model::Head,
}

/// Which part of the protocol's split a [`TestSet`] is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The validation part (threshold choice).
    Validation,
    /// The test part (every reported number).
    Test,
}

impl TestSet {
    /// Loads `model_dir` and `data`, splits with `split_seed` (training's, to evaluate on
    /// its test part), augments probes and draws impostor pairs with `seed`; `pipeline`
    /// overrides the model's own preprocessing with a preset.
    pub fn load(
        model_dir: &Path,
        data: &Path,
        split_seed: u64,
        seed: u64,
        pipeline: Option<&str>,
    ) -> Result<Self> {
        Self::load_part(model_dir, data, split_seed, seed, pipeline, Part::Test, 0)
    }

    /// As [`TestSet::load`], on `part` of the split, with `extra_captures` further
    /// augmented copies of every enrolled image (embeddings only).
    pub fn load_part(
        model_dir: &Path,
        data: &Path,
        split_seed: u64,
        seed: u64,
        pipeline: Option<&str>,
        part: Part,
        extra_captures: usize,
    ) -> Result<Self> {
        let device = Default::default();
        let (model, exported): (_, ExportedModel) =
            crate::export::load::<CpuBackend>(model_dir, &device)?;
        let dataset = loaders::load(data)?;
        let split = crate::split_for(&dataset, split_seed)?;
        let size = exported.model.input_size;
        let pipeline = match pipeline {
            Some(name) => datasets::preprocess::Pipeline::preset(name, size)?,
            None => exported.pipeline.clone(),
        };
        let (indices, part_name) = match part {
            Part::Test => (&split.test, "test"),
            Part::Validation => (&split.validation, "validation"),
        };
        let test = ImageSet::prepare(&dataset, indices, &pipeline, size, &|| {})?;
        if test.len() < 2 {
            return Err(TrainError::Config(format!(
                "{}: the {part_name} split holds {} images; evaluation needs at least 2",
                data.display(),
                test.len()
            )));
        }
        let index_of: HashMap<usize, usize> = test
            .samples
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i))
            .collect();
        let pairs = splits::verification_pairs(&dataset, indices, 2 * indices.len(), seed)?;

        // Probes: augmented copies of every test image (Blind-Touch's SOCOFing protocol),
        // for the pairs that need them and for identification.
        let augmenter = Augmenter::preset(match dataset.format {
            loaders::Format::Socofing => "blindtouch-socofing",
            loaders::Format::Polyu => "blindtouch-polyu",
        })?;
        let copies = augmenter.apply_batch(&test.images, &mut ChaCha8Rng::seed_from_u64(seed))?;
        let head = &exported.head;
        let originals = inference::embeddings(&model, &test.images, size, 64, &device);
        let augmented = inference::embeddings(&model, &copies, size, 64, &device);
        // Extra captures: enrolment copies (streams 1..) and login copies (streams
        // 1001..), every one an independent augmentation of the image.
        let copies_of = |stream: u64| -> Result<Vec<Vec<f32>>> {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(stream));
            let more = augmenter.apply_batch(&test.images, &mut rng)?;
            Ok(inference::embeddings(&model, &more, size, 64, &device))
        };
        let per_image = if extra_captures > 0 { test.len() } else { 0 };
        let mut extra: Vec<Vec<Vec<f32>>> = vec![Vec::new(); per_image];
        let mut login: Vec<Vec<Vec<f32>>> = vec![Vec::new(); per_image];
        for c in 0..extra_captures as u64 {
            for (user, e) in copies_of(c + 1)?.into_iter().enumerate() {
                extra[user].push(e);
            }
            for (image, e) in copies_of(c + 1001)?.into_iter().enumerate() {
                login[image].push(e);
            }
        }
        let mut probe_embeddings: Vec<Vec<f32>> = augmented.clone();
        let gallery: Vec<Vec<f32>> = originals
            .iter()
            .map(|e| head.enrolment_template(e))
            .collect();
        let mut probes: Vec<Probe> = augmented
            .iter()
            .enumerate()
            .map(|(i, e)| Probe {
                template: head.query_template(e),
                identity: Some(i),
            })
            .collect();
        let mut original_probe: HashMap<usize, usize> = HashMap::new();
        let pairs = pairs
            .iter()
            .map(|p| {
                let (a, b) = (index_of[&p.a], index_of[&p.b]);
                // a is enrolled; b is the probe (its augmented copy when the protocol says
                // so, or when a pair would otherwise compare an image with itself).
                let probe = if p.augment_b || a == b {
                    b
                } else {
                    *original_probe.entry(b).or_insert_with(|| {
                        probes.push(Probe {
                            template: head.query_template(&originals[b]),
                            identity: Some(b),
                        });
                        probe_embeddings.push(originals[b].clone());
                        probes.len() - 1
                    })
                };
                PairRef {
                    gallery: a,
                    probe,
                    genuine: p.genuine,
                }
            })
            .collect();
        let probe_extra_captures = if extra_captures > 0 {
            probes
                .iter()
                .map(|p| p.identity.map_or_else(Vec::new, |i| login[i].clone()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            images: test.len(),
            gallery,
            probes,
            pairs,
            head: MatchModel {
                weights: head.fc1_weight.clone(),
                bias: head.fc1_bias,
                threshold: exported.threshold as f32,
            },
            calibration_reference: exported.calibration.abs_q999,
            description: format!(
                "{} on {}, {part_name} split ({} images)",
                model_dir.display(),
                data.display(),
                test.len()
            ),
            gallery_embeddings: originals,
            probe_extra_captures,
            probe_embeddings,
            extra_captures: extra,
            network_head: head.clone(),
        })
    }

    /// The workload every scheme scores: this gallery and these probes, quantized to
    /// `bits` with the model's calibration.
    pub fn workload(&self, bits: u32) -> protocol::Result<Workload> {
        Workload::from_model(
            self.head.clone(),
            self.calibration_reference,
            bits,
            self.gallery.clone(),
            self.probes.clone(),
            self.description.clone(),
        )
    }

    /// Probe indices of the 1:N mated searches (probe i's mate is user i).
    pub fn identification_probes(&self) -> std::ops::Range<usize> {
        0..self.images
    }
}

/// Every probe's scores against every enrolled user, as one scheme computed them (float
/// logits for `plain`, integer scores otherwise), and the exactness tally of an encrypted
/// scheme.
#[derive(Clone, Debug, Default)]
pub struct ScoreMatrix {
    /// `rows[p][u]`: probe p against user u.
    pub rows: Vec<Vec<f64>>,
    /// Whether the scores are integers (every scheme but `plain`).
    pub integer: bool,
    /// For encrypted schemes: every decrypted score compared with the plaintext one.
    pub exactness: Option<Tally>,
    /// Smallest noise budget left over all queries (encrypted schemes).
    pub noise_budget_bits: Option<f64>,
}

/// Enrols `workload`'s gallery with `matcher` and identifies every probe. For an
/// encrypted scheme every decrypted score, decision and ranking is compared with the
/// plaintext integer reference; the tally is returned, not judged (the caller decides
/// whether a difference is fatal — the harness and `match` make it so).
pub fn score(workload: &Workload, matcher: &mut dyn Matcher) -> protocol::Result<ScoreMatrix> {
    matcher.enrol(&workload.gallery)?;
    let reference = matcher.kind().encrypted().then(|| Reference::of(workload));
    let mut tally = Tally::default();
    let mut matrix = ScoreMatrix::default();
    for probe in &workload.probes {
        let outcome = matcher.identify(&probe.template)?;
        if let Some(reference) = &reference {
            tally.check(reference, &probe.template, &outcome);
        }
        matrix.push(&outcome);
    }
    matrix.exactness = reference.map(|_| tally);
    Ok(matrix)
}

impl ScoreMatrix {
    /// Appends one probe's outcome (its scores and noise budget).
    pub fn push(&mut self, outcome: &MatchOutcome) {
        if let Some(bits) = outcome.noise_budget_bits {
            self.noise_budget_bits = Some(self.noise_budget_bits.map_or(bits, |n| n.min(bits)));
        }
        self.integer = outcome.scores.integers().is_some();
        self.rows.push(outcome.scores.to_f64());
    }

    /// The matrix of outcomes already computed (e.g. by `touchstone match`, which also
    /// keeps their timings).
    pub fn of(outcomes: &[MatchOutcome]) -> Self {
        let mut matrix = Self::default();
        outcomes.iter().for_each(|o| matrix.push(o));
        matrix
    }
}

/// Verification-pair scores, for ROC and DET curves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PairScores {
    /// Scores of genuine pairs.
    pub genuine: Vec<f64>,
    /// Scores of impostor pairs.
    pub impostor: Vec<f64>,
}

/// What a scheme's scores give on the test protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Test images (= enrolled users).
    pub test_images: usize,
    /// Verification metrics at the scheme's threshold.
    pub verification: Verification,
    /// 1:N rank-1 of the augmented copies against every test image (pessimistic on ties).
    pub rank1: f64,
    /// 1:N rank-5.
    pub rank5: f64,
    /// The pairs' scores.
    pub scores: PairScores,
}

impl Accuracy {
    /// Reads the metrics off `matrix` with decision threshold `threshold` (a logit for float
    /// scores, an integer score otherwise).
    pub fn of(test: &TestSet, matrix: &ScoreMatrix, threshold: f64) -> Self {
        let mut scores = PairScores::default();
        for p in &test.pairs {
            let s = matrix.rows[p.probe][p.gallery];
            if p.genuine {
                scores.genuine.push(s);
            } else {
                scores.impostor.push(s);
            }
        }
        let verification = metrics::verification(&scores.genuine, &scores.impostor, threshold);
        let rows: Vec<&[f64]> = test
            .identification_probes()
            .map(|p| matrix.rows[p].as_slice())
            .collect();
        let mates: Vec<usize> = test.identification_probes().collect();
        let (rank1, rank5) = metrics::rank_rates(&rows, &mates);
        Self {
            test_images: test.images,
            verification,
            rank1,
            rank5,
            scores,
        }
    }
}

/// The decision threshold a scheme's scores are compared with (the one its matcher
/// decides with): logit(τ) for float scores, the quantized model's integer threshold
/// otherwise.
pub fn threshold(workload: &Workload, matrix: &ScoreMatrix) -> f64 {
    if matrix.integer {
        workload.quantized.threshold_score as f64
    } else {
        workload.model.threshold_logit()
    }
}
