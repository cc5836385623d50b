//! The training loop: seeded initialisation and sampling, Adam on binary cross-entropy,
//! a fixed validation pair set scored every epoch, early stopping on validation loss,
//! and the best epoch's weights kept.

use crate::config::TrainConfig;
use crate::data::{batch, label_matrix, sample_anchors, sample_pairs, ImageSet, Pair};
use crate::error::Result;
use crate::model::Siamese;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ElementConversion;
use datasets::augment::Augmenter;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// Checkpointing of a run (see [`crate::checkpoint`]).
#[derive(Clone, Debug, Default)]
pub struct Resumable {
    /// Folder of the per-epoch checkpoints; none: no checkpoints.
    pub dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in `dir` (a fresh start when there is none).
    pub resume: bool,
    /// Stop after this many epochs in all, with [`crate::TrainError::Stopped`] (a later
    /// run with `resume` continues from there).
    pub stop_after: Option<usize>,
}

/// Numerically stable binary cross-entropy on logits, averaged:
/// max(x, 0) − x·y + log(1 + e^(−|x|)).
pub fn bce_with_logits<B: Backend>(logits: Tensor<B, 1>, labels: Tensor<B, 1>) -> Tensor<B, 1> {
    bce_terms(logits, labels).mean()
}

/// Binary cross-entropy of every entry, max(x, 0) − x·y + log(1 + e^(−|x|)).
fn bce_terms<B: Backend, const D: usize>(
    logits: Tensor<B, D>,
    labels: Tensor<B, D>,
) -> Tensor<B, D> {
    let positive = logits.clone().clamp_min(0.0);
    let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    positive - logits * labels + softplus
}

/// The in-batch loss on a logit matrix Z (rows: enrolled prints, columns: probes) with
/// labels Y (1 genuine): class-balanced binary cross-entropy — the mean over genuine
/// entries plus the mean over impostor entries, halved, so the B − 1 impostors per row
/// do not drown the one genuine pair and the logit threshold stays meaningful — plus the
/// symmetric softmax cross-entropy of each row and each column against its genuine
/// entries, −log(Σ_genuine e^z / Σ_all e^z), which weights the hardest impostors most.
pub fn in_batch_loss<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 2>) -> Tensor<B, 1> {
    let bce = bce_terms(logits.clone(), labels.clone());
    let impostors = labels.clone().neg().add_scalar(1.0);
    let genuine_count = labels.clone().sum().clamp_min(1.0);
    let impostor_count = impostors.clone().sum().clamp_min(1.0);
    let balanced = ((bce.clone() * labels.clone()).sum() / genuine_count
        + (bce * impostors).sum() / impostor_count)
        .mul_scalar(0.5);
    // Impostor entries pushed far down give the log-sum-exp over the genuine entries alone
    // (every row and column of the batch has its own genuine probe or print).
    let genuine_only = logits.clone() + (labels - 1.0).mul_scalar(1e9);
    let term = |dim: usize| -> Tensor<B, 1> {
        (log_sum_exp(logits.clone(), dim) - log_sum_exp(genuine_only.clone(), dim))
            .mean()
            .reshape([1])
    };
    let softmax = (term(1) + term(0)).mul_scalar(0.5);
    balanced + softmax
}

/// log Σ e^x along `dim`, shifted by the (detached) maximum along it so that nothing
/// overflows or underflows to a zero sum.
fn log_sum_exp<B: Backend>(x: Tensor<B, 2>, dim: usize) -> Tensor<B, 2> {
    let shift = x.clone().max_dim(dim).detach();
    (x - shift.clone()).exp().sum_dim(dim).log() + shift
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss.
    pub validation_loss: f64,
    /// Validation accuracy at logit 0.
    pub validation_accuracy: f64,
    /// Training pairs per second.
    pub pairs_per_second: f64,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
}

/// The best model and the history of the run.
pub struct Trained<B: AutodiffBackend> {
    /// Weights of the best epoch (by validation loss), for inference.
    pub model: Siamese<B::InnerBackend>,
    /// Epoch the weights come from.
    pub best_epoch: usize,
    /// Every epoch.
    pub history: Vec<EpochStats>,
}

/// Validation pairs, sampled and augmented once (fixed for the whole run).
pub struct ValidationSet<B: Backend> {
    batches: Vec<(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 1>)>,
    /// Labels in order.
    pub labels: Vec<f32>,
}

impl<B: Backend> ValidationSet<B> {
    /// Samples one pair per image with a fixed seed and augments once.
    pub fn new(
        set: &ImageSet,
        augmenter: &Augmenter,
        batch_size: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pairs = sample_pairs(set, &mut rng);
        let batches = pairs
            .chunks(batch_size)
            .map(|chunk| batch::<B>(set, chunk, augmenter, &mut rng, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            batches,
            labels: pairs.iter().map(|p| p.label).collect(),
        })
    }

    /// Logits of every pair.
    pub fn logits(&self, model: &Siamese<B>) -> Vec<f32> {
        self.batches
            .iter()
            .flat_map(|(a, b, _)| {
                let l = model.logit(a.clone(), b.clone());
                l.into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .expect("f32 logits")
            })
            .collect()
    }
}

fn mean_bce(logits: &[f32], labels: &[f32]) -> f64 {
    logits
        .iter()
        .zip(labels)
        .map(|(&x, &y)| {
            let x = x as f64;
            x.max(0.0) - x * y as f64 + (-x.abs()).exp().ln_1p()
        })
        .sum::<f64>()
        / logits.len().max(1) as f64
}

fn progress(len: u64, epoch: usize) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {msg} [{bar:30}] {pos}/{len} pairs ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(epoch.to_string());
    bar
}

/// Trains `model` on `train` pairs, validating on `validation`, per `config`, with a
/// checkpoint after every epoch when `resumable.dir` is set.
pub fn train<B: AutodiffBackend>(
    config: &TrainConfig,
    model: Siamese<B>,
    train: &ImageSet,
    validation: &ImageSet,
    device: &B::Device,
    show_progress: bool,
    resumable: &Resumable,
) -> Result<Trained<B>> {
    let opt = &config.training;
    let augmenter = config.augmenter()?;
    let mut rng = ChaCha8Rng::seed_from_u64(opt.seed);
    let validation_set = ValidationSet::<B::InnerBackend>::new(
        validation,
        &augmenter,
        opt.batch_size,
        opt.seed ^ 0x5eed,
        device,
    )?;
    let mut optimizer = AdamConfig::new().init();
    let mut model = model;
    let mut best: Option<(f64, usize, Siamese<B::InnerBackend>)> = None;
    let mut history = Vec::new();
    let mut first = 1;
    let recipe = crate::checkpoint::recipe_digest(config);
    if let (Some(dir), true) = (&resumable.dir, resumable.resume) {
        let fresh = AdamConfig::new().init();
        if let Some(restored) = crate::checkpoint::load(dir, config, model.clone(), fresh, device)?
        {
            let state = restored.state;
            model = restored.model;
            optimizer = restored.optimizer;
            let position = state.rng_word_pos.parse::<u128>().map_err(|e| {
                crate::TrainError::model(dir, format!("checkpoint: generator position: {e}"))
            })?;
            rng.set_word_pos(position);
            best = Some((state.best_loss, state.best_epoch, restored.best));
            history = state.history;
            first = if state.finished {
                usize::MAX
            } else {
                state.epoch + 1
            };
            if show_progress {
                eprintln!(
                    "resuming after epoch {} from {}",
                    state.epoch,
                    dir.display()
                );
            }
        }
    }
    for epoch in first..=opt.epochs {
        let start = Instant::now();
        let in_batch = opt.objective == crate::config::Objective::InBatch;
        let pairs: Vec<Pair> = if in_batch {
            sample_anchors(train, &mut rng)
        } else {
            sample_pairs(train, &mut rng)
        };
        let rate = opt.schedule.rate(opt.learning_rate, epoch, opt.epochs);
        let bar = if show_progress {
            progress(pairs.len() as u64, epoch)
        } else {
            ProgressBar::hidden()
        };
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        for chunk in pairs.chunks(opt.batch_size) {
            let (a, b, labels) = batch::<B>(train, chunk, &augmenter, &mut rng, device)?;
            let loss = if in_batch {
                in_batch_loss(model.logit_matrix(a, b), label_matrix(train, chunk, device))
            } else {
                bce_with_logits(model.logit(a, b), labels)
            };
            loss_sum += loss.clone().into_scalar().elem::<f64>();
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(rate, model, grads);
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let train_seconds = start.elapsed().as_secs_f64();

        let inference = model.valid();
        let logits = validation_set.logits(&inference);
        let validation_loss = mean_bce(&logits, &validation_set.labels);
        let correct = logits
            .iter()
            .zip(&validation_set.labels)
            .filter(|(&x, &y)| (x >= 0.0) == (y > 0.5))
            .count();
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / batches.max(1) as f64,
            validation_loss,
            validation_accuracy: correct as f64 / logits.len().max(1) as f64,
            pairs_per_second: pairs.len() as f64 / train_seconds.max(1e-9),
            seconds: start.elapsed().as_secs_f64(),
        };
        if show_progress {
            eprintln!(
                "epoch {epoch}: train loss {:.4}, validation loss {:.4}, validation accuracy {:.2}%, {:.0} pairs/s",
                stats.train_loss,
                stats.validation_loss,
                100.0 * stats.validation_accuracy,
                stats.pairs_per_second
            );
        }
        history.push(stats);
        let improved = best
            .as_ref()
            .is_none_or(|(loss, _, _)| validation_loss < *loss);
        if improved {
            best = Some((validation_loss, epoch, inference));
        }
        let (best_loss, best_epoch, best_model) = best.as_ref().expect("set on the first epoch");
        let finished = !improved && epoch - best_epoch >= opt.patience;
        if let Some(dir) = &resumable.dir {
            let state = crate::checkpoint::State {
                format: crate::checkpoint::FORMAT,
                recipe: recipe.clone(),
                epoch,
                rng_word_pos: rng.get_word_pos().to_string(),
                history: history.clone(),
                best_loss: *best_loss,
                best_epoch: *best_epoch,
                finished,
            };
            crate::checkpoint::save(dir, &state, &model, &optimizer, best_model)?;
            if resumable.stop_after == Some(epoch) && !finished && epoch < opt.epochs {
                return Err(crate::TrainError::Stopped {
                    epoch,
                    checkpoint: dir.clone(),
                });
            }
        }
        if finished {
            break;
        }
    }
    let (_, best_epoch, model) = best.expect("at least one epoch ran");
    Ok(Trained {
        model,
        best_epoch,
        history,
    })
}

/// The logit threshold that maximises F1 on validation logits (ties: the lower).
pub fn choose_threshold(logits: &[f32], labels: &[f32]) -> f64 {
    let mut candidates: Vec<f32> = logits.to_vec();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let f1 = |t: f32| {
        let (mut tp, mut fp, mut fneg) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in logits.iter().zip(labels) {
            match (x >= t, y > 0.5) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fneg += 1.0,
                _ => {}
            }
        }
        2.0 * tp / (2.0 * tp + fp + fneg).max(1.0)
    };
    candidates
        .iter()
        .copied()
        .map(|t| (t, f1(t)))
        .fold(
            (0.0f32, -1.0f64),
            |best, (t, f)| if f > best.1 { (t, f) } else { best },
        )
        .0 as f64
}
