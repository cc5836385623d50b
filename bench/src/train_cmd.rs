//! `touchstone train` and `touchstone eval`: train the feature model from a YAML config;
//! evaluate a model folder on its dataset's test protocol with float and quantized
//! (integer, as the encrypted schemes compute) scores.

use crate::format::Table;
use anyhow::{Context, Result};
use clap::Args;
use datasets::augment::Augmenter;
use datasets::loaders;
use datasets::metrics;
use datasets::splits;
use protocol::{MatchModel, QuantizedModel, Quantizer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use train::data::ImageSet;
use train::export::ExportedModel;
use train::{CpuBackend, CpuTraining};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training config (YAML).
    #[arg(long)]
    config: PathBuf,
    /// Train on the first CUDA GPU (needs a build with `--features cuda` and a driver).
    #[arg(long)]
    cuda: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model folder (model.mpk + head.json).
    #[arg(long)]
    model: PathBuf,
    /// Dataset folder (SOCOFing, PolyU or synthetic).
    #[arg(long)]
    data: PathBuf,
    /// Split seed (must match training's to evaluate on its test part).
    #[arg(long, default_value_t = 42)]
    split_seed: u64,
    /// Seed of augmented probes and impostor pairs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Template and weight quantization bits.
    #[arg(long, default_value_t = 8)]
    bits: u32,
}

pub fn train(args: &TrainArgs) -> Result<()> {
    let config = train::read_config(&args.config)?;
    let report = if args.cuda {
        train_on_cuda(&config)?
    } else {
        eprintln!(
            "training on the CPU (Burn Flex backend); model folder {}",
            config.out.display()
        );
        train::run::<CpuTraining>(&config, &Default::default(), true).context("training")?
    };
    let mut t = Table::new(&[
        "epoch",
        "train loss",
        "validation loss",
        "validation accuracy",
        "pairs/s",
        "seconds",
    ]);
    for h in &report.history {
        t.row(vec![
            format!(
                "{}{}",
                h.epoch,
                if h.epoch == report.best_epoch {
                    " (best)"
                } else {
                    ""
                }
            ),
            format!("{:.4}", h.train_loss),
            format!("{:.4}", h.validation_loss),
            format!("{:.2}%", 100.0 * h.validation_accuracy),
            format!("{:.1}", h.pairs_per_second),
            format!("{:.1}", h.seconds),
        ]);
    }
    println!("{}", t.render());
    println!(
        "\ndata {} (train {} / validation {} / test {} images); preparing {:.1} s, training {:.1} s; threshold τ = {:.4}",
        report.dataset.display(),
        report.sizes.0,
        report.sizes.1,
        report.sizes.2,
        report.prepare_seconds,
        report.train_seconds,
        report.exported.threshold
    );
    println!(
        "wrote {} (model.mpk, head.json, training.json, curve.png)\n",
        report.out.display()
    );
    evaluate(&report.out, &report.dataset, config.data.split_seed, 1, 8)
}

#[cfg(feature = "cuda")]
fn train_on_cuda(config: &train::config::TrainConfig) -> Result<train::RunReport> {
    use burn::prelude::*;
    // cudarc panics on its first driver call when no driver is installed: probe with a
    // one-element tensor (panic output silenced) and report a missing GPU as an error.
    let device = Default::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        Tensor::<train::CudaBackend, 1>::zeros([1], &device).into_data();
    });
    std::panic::set_hook(hook);
    if probe.is_err() {
        anyhow::bail!(
            "no usable CUDA device (no driver or no GPU found); train on the CPU without --cuda"
        );
    }
    eprintln!(
        "training on CUDA device 0; model folder {}",
        config.out.display()
    );
    train::run::<train::CudaTraining>(config, &device, true).context("training on CUDA")
}

#[cfg(not(feature = "cuda"))]
fn train_on_cuda(_config: &train::config::TrainConfig) -> Result<train::RunReport> {
    anyhow::bail!("this touchstone was built without CUDA: rebuild with `cargo build --release -p bench --features cuda`")
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    evaluate(
        &args.model,
        &args.data,
        args.split_seed,
        args.seed,
        args.bits,
    )
}

/// Verification metrics at one threshold plus threshold-free ones.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub eer: f64,
    pub fnmr_at_fmr_1pct: f64,
    pub fnmr_at_fmr_01pct: f64,
}

fn verification(genuine: &[f64], impostor: &[f64], threshold: f64) -> Verification {
    let tp = genuine.iter().filter(|&&s| s >= threshold).count() as f64;
    let fneg = genuine.len() as f64 - tp;
    let fp = impostor.iter().filter(|&&s| s >= threshold).count() as f64;
    let tn = impostor.len() as f64 - fp;
    Verification {
        accuracy: (tp + tn) / (genuine.len() + impostor.len()).max(1) as f64,
        precision: tp / (tp + fp).max(1.0),
        recall: tp / (tp + fneg).max(1.0),
        f1: 2.0 * tp / (2.0 * tp + fp + fneg).max(1.0),
        roc_auc: metrics::roc_auc(genuine, impostor),
        eer: metrics::eer(genuine, impostor),
        fnmr_at_fmr_1pct: metrics::fnmr_at_fmr(genuine, impostor, 0.01),
        fnmr_at_fmr_01pct: metrics::fnmr_at_fmr(genuine, impostor, 0.001),
    }
}

/// Rank-1 and rank-5 of mated probes: the share whose mate is among the best 1 / 5.
fn ranks(scores: &[Vec<f64>], mates: &[usize]) -> (f64, f64) {
    let (mut r1, mut r5) = (0usize, 0usize);
    for (row, &mate) in scores.iter().zip(mates) {
        let better = row.iter().filter(|&&s| s > row[mate]).count();
        r1 += usize::from(better == 0);
        r5 += usize::from(better < 5);
    }
    let n = mates.len().max(1) as f64;
    (r1 as f64 / n, r5 as f64 / n)
}

#[derive(Serialize)]
struct EvalReport {
    model: String,
    data: String,
    test_images: usize,
    genuine_pairs: usize,
    impostor_pairs: usize,
    float: Verification,
    quantized: Verification,
    template_bits: u32,
    rank1_float: f64,
    rank5_float: f64,
    rank1_quantized: f64,
    rank5_quantized: f64,
    gallery: usize,
    seconds: f64,
}

/// Genuine and impostor scores of the test protocol, float and quantized, with the
/// metrics they give: what `touchstone eval` prints and the harness records.
pub struct Accuracy {
    pub test_images: usize,
    pub float: Verification,
    pub quantized: Verification,
    pub rank1_float: f64,
    pub rank5_float: f64,
    pub rank1_quantized: f64,
    pub rank5_quantized: f64,
    pub scores: PairScores,
}

/// Scores of the verification pairs (for ROC and DET curves).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct PairScores {
    pub genuine_float: Vec<f64>,
    pub impostor_float: Vec<f64>,
    pub genuine_quantized: Vec<f64>,
    pub impostor_quantized: Vec<f64>,
}

/// Evaluates `model_dir` on the test split of `data`; `pipeline` overrides the model's
/// own preprocessing with a preset.
pub fn accuracy(
    model_dir: &Path,
    data: &Path,
    split_seed: u64,
    seed: u64,
    bits: u32,
    pipeline: Option<&str>,
) -> Result<Accuracy> {
    let device = Default::default();
    let (model, exported): (_, ExportedModel) =
        train::export::load::<CpuBackend>(model_dir, &device)?;
    let dataset = loaders::load(data)?;
    let split = train::split_for(&dataset, split_seed)?;
    let size = exported.model.input_size;
    let pipeline = match pipeline {
        Some(name) => datasets::preprocess::Pipeline::preset(name, size)?,
        None => exported.pipeline.clone(),
    };
    let test = ImageSet::prepare(&dataset, &split.test, &pipeline, size, &|| {})?;
    let index_of: std::collections::HashMap<usize, usize> = test
        .samples
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i))
        .collect();
    let pairs = splits::verification_pairs(&dataset, &split.test, 2 * split.test.len(), seed)?;

    // Probes: augmented copies of every test image (Blind-Touch's SOCOFing protocol) —
    // used for pairs that need them and for identification.
    let augmenter = Augmenter::preset(match dataset.format {
        loaders::Format::Socofing => "blindtouch-socofing",
        loaders::Format::Polyu => "blindtouch-polyu",
    })?;
    let copies = augmenter.apply_batch(&test.images, &mut ChaCha8Rng::seed_from_u64(seed))?;
    let head = &exported.head;
    let originals = train::inference::embeddings(&model, &test.images, size, 64, &device);
    let augmented = train::inference::embeddings(&model, &copies, size, 64, &device);
    let (enrol, _) = train::inference::templates(head, &originals);
    let (_, query_original) = train::inference::templates(head, &originals);
    let (_, query_augmented) = train::inference::templates(head, &augmented);

    // Quantization as the encrypted schemes do it.
    let float_model = MatchModel {
        weights: head.fc1_weight.clone(),
        bias: head.fc1_bias,
        threshold: exported.threshold as f32,
    };
    let template_quantizer = Quantizer::new(
        bits,
        ((1i64 << (bits - 1)) - 1) as f32 / exported.calibration.abs_q999.max(1e-6),
    )?;
    let quantized = QuantizedModel::new(&float_model, template_quantizer, bits)?;
    let q_enrol: Vec<Vec<i64>> = enrol.iter().map(|t| quantized.quantize(t)).collect();
    let q_query_orig: Vec<Vec<i64>> = query_original
        .iter()
        .map(|t| quantized.quantize(t))
        .collect();
    let q_query_aug: Vec<Vec<i64>> = query_augmented
        .iter()
        .map(|t| quantized.quantize(t))
        .collect();

    let (mut gf, mut imf, mut gq, mut imq) = (vec![], vec![], vec![], vec![]);
    for p in &pairs {
        let (a, b) = (index_of[&p.a], index_of[&p.b]);
        // a is enrolled; b is the probe (augmented when the protocol says so).
        let (qf, qq) = if p.augment_b || a == b {
            (&query_augmented[b], &q_query_aug[b])
        } else {
            (&query_original[b], &q_query_orig[b])
        };
        let sf = head.logit(qf, &enrol[a]);
        let sq = quantized.score(qq, &q_enrol[a]) as f64;
        if p.genuine {
            gf.push(sf);
            gq.push(sq);
        } else {
            imf.push(sf);
            imq.push(sq);
        }
    }
    let float = verification(&gf, &imf, exported.threshold_logit);
    let quant = verification(&gq, &imq, quantized.threshold_score as f64);

    // 1:N: every augmented copy against a gallery of every test original.
    let mates: Vec<usize> = (0..test.len()).collect();
    let float_scores: Vec<Vec<f64>> = query_augmented
        .iter()
        .map(|q| enrol.iter().map(|r| head.logit(q, r)).collect())
        .collect();
    let quant_scores: Vec<Vec<f64>> = q_query_aug
        .iter()
        .map(|q| {
            q_enrol
                .iter()
                .map(|r| quantized.score(q, r) as f64)
                .collect()
        })
        .collect();
    let (r1f, r5f) = ranks(&float_scores, &mates);
    let (r1q, r5q) = ranks(&quant_scores, &mates);

    Ok(Accuracy {
        test_images: test.len(),
        float,
        quantized: quant,
        rank1_float: r1f,
        rank5_float: r5f,
        rank1_quantized: r1q,
        rank5_quantized: r5q,
        scores: PairScores {
            genuine_float: gf,
            impostor_float: imf,
            genuine_quantized: gq,
            impostor_quantized: imq,
        },
    })
}

fn evaluate(model_dir: &Path, data: &Path, split_seed: u64, seed: u64, bits: u32) -> Result<()> {
    let start = Instant::now();
    let a = accuracy(model_dir, data, split_seed, seed, bits, None)?;
    let (r1f, r5f, r1q, r5q) = (
        a.rank1_float,
        a.rank5_float,
        a.rank1_quantized,
        a.rank5_quantized,
    );
    let report = EvalReport {
        model: model_dir.display().to_string(),
        data: data.display().to_string(),
        test_images: a.test_images,
        genuine_pairs: a.scores.genuine_float.len(),
        impostor_pairs: a.scores.impostor_float.len(),
        float: a.float,
        quantized: a.quantized,
        template_bits: bits,
        rank1_float: r1f,
        rank5_float: r5f,
        rank1_quantized: r1q,
        rank5_quantized: r5q,
        gallery: a.test_images,
        seconds: start.elapsed().as_secs_f64(),
    };
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    let mut t = Table::new(&["test metric", "float", &format!("quantized ({bits}-bit)")]);
    let rows: [(&str, f64, f64); 8] = [
        ("accuracy", report.float.accuracy, report.quantized.accuracy),
        (
            "precision",
            report.float.precision,
            report.quantized.precision,
        ),
        ("recall", report.float.recall, report.quantized.recall),
        ("F1", report.float.f1, report.quantized.f1),
        ("EER", report.float.eer, report.quantized.eer),
        (
            "FNMR @ FMR 1%",
            report.float.fnmr_at_fmr_1pct,
            report.quantized.fnmr_at_fmr_1pct,
        ),
        (
            "FNMR @ FMR 0.1%",
            report.float.fnmr_at_fmr_01pct,
            report.quantized.fnmr_at_fmr_01pct,
        ),
        ("rank-1 (1:N)", r1f, r1q),
    ];
    for (name, f, q) in rows {
        t.row(vec![name.into(), pct(f), pct(q)]);
    }
    t.row(vec!["rank-5 (1:N)".into(), pct(r5f), pct(r5q)]);
    t.row(vec![
        "ROC AUC".into(),
        format!("{:.4}", report.float.roc_auc),
        format!("{:.4}", report.quantized.roc_auc),
    ]);
    println!("{}", t.render());
    println!(
        "\n{} test images, {} genuine / {} impostor pairs, 1:N gallery {}; evaluation {:.1} s",
        report.test_images,
        report.genuine_pairs,
        report.impostor_pairs,
        report.gallery,
        report.seconds
    );
    let path = model_dir.join("eval.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("(also in {})", path.display());
    Ok(())
}
