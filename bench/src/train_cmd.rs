//! `touchstone train` and `touchstone eval`: train the feature model from a YAML config;
//! evaluate a model folder on its dataset's test protocol with float and quantized
//! (integer, as the encrypted schemes compute) scores. The protocol itself lives in
//! `train::evaluation`; this module only parses arguments and prints.

use crate::format::{accuracy_table, Table};
use anyhow::{Context, Result};
use clap::Args;
use datasets::metrics::Verification;
use protocol::{build_matcher, SchemeConfig, SchemeKind};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use train::evaluation::{self, Accuracy, TestSet};
use train::CpuTraining;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training config (YAML).
    #[arg(long, required_unless_present = "bench")]
    config: Option<PathBuf>,
    /// Train on the first CUDA GPU (needs a build with `--features cuda` and a driver).
    #[arg(long)]
    cuda: bool,
    /// Continue from the newest checkpoint in `<out>/checkpoint` (written after every
    /// epoch); the run ends with the weights an uninterrupted one ends with.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs in all (resume later with `--resume`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    stop_after: Option<u64>,
    /// Time training steps on random images instead of training (no data, no output
    /// folder): pairs/s and images/s at `--size`, `--width`, `--batch`.
    #[arg(long, conflicts_with_all = ["config", "resume", "stop_after"])]
    bench: bool,
    /// Network input side for `--bench` (a multiple of 32).
    #[arg(long, default_value_t = 64, requires = "bench")]
    size: usize,
    /// Width multiplier for `--bench`.
    #[arg(long, default_value_t = 0.25, requires = "bench")]
    width: f64,
    /// Pairs per step for `--bench`.
    #[arg(long, default_value_t = 32, requires = "bench", value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Timed steps for `--bench` (after one warm-up step).
    #[arg(long, default_value_t = 10, requires = "bench", value_parser = clap::value_parser!(u64).range(1..=100000))]
    steps: u64,
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
    /// Template and weight quantization bits (2..=16).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=16))]
    bits: u32,
    /// Also write the report as JSON to this file (nothing is written otherwise; a model
    /// folder's own eval.json is only replaced when it is named here).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn train(args: &TrainArgs) -> Result<()> {
    if args.bench {
        return bench(args);
    }
    let config = train::read_config(
        args.config
            .as_ref()
            .expect("clap: required without --bench"),
    )?;
    let stop_after = args.stop_after.map(|e| e as usize);
    let outcome = if args.cuda {
        train_on_cuda(&config, args.resume, stop_after)?
    } else {
        eprintln!(
            "training on the CPU (Burn Flex backend); model folder {}",
            config.out.display()
        );
        let device = Default::default();
        train::run_with::<CpuTraining>(&config, &device, true, args.resume, stop_after)
    };
    let report = match outcome {
        Ok(report) => report,
        // Stopping where asked is the expected end of this run, not a failure.
        Err(stopped @ train::TrainError::Stopped { .. }) => {
            println!("{stopped}");
            return Ok(());
        }
        Err(e) => return Err(e).context("training"),
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
    // The training run's own folder gets its evaluation.
    evaluate(
        &report.out,
        &report.dataset,
        config.data.split_seed,
        1,
        8,
        Some(&report.out.join("eval.json")),
    )
}

/// `touchstone train --bench`: training steps on random images, then the augmenter alone.
fn bench(args: &TrainArgs) -> Result<()> {
    let model = train::model::ModelConfig {
        input_size: args.size,
        width: args.width,
    };
    let (batch, steps) = (args.batch as usize, args.steps as usize);
    let augmenter = datasets::augment::Augmenter::preset("blindtouch-socofing")?;
    let augment = train::speed::augment_seconds(&augmenter, args.size, batch, 3)
        .map_err(anyhow::Error::msg)?;
    let mut runs = Vec::new();
    if args.cuda {
        runs.push(("cuda (Burn)", bench_on_cuda(&model, batch, steps)?));
    } else {
        // Burn's own operations first, then touchstone's CPU kernels, in one process.
        for (name, kernels) in [
            ("cpu, Burn Flex ops", false),
            ("cpu, touchstone kernels", true),
        ] {
            train::cpu_ops::set_enabled(kernels);
            let device = Default::default();
            let speed = train::speed::training_steps::<CpuTraining>(&model, batch, steps, &device)
                .map_err(anyhow::Error::msg)?;
            runs.push((name, speed));
        }
        train::cpu_ops::set_enabled(true);
    }
    let mut t = Table::new(&[
        "backend",
        "input",
        "width",
        "batch",
        "steps",
        "pairs/s",
        "images/s",
        "augment ms/batch",
    ]);
    for (backend, speed) in &runs {
        t.row(vec![
            backend.to_string(),
            format!("{0}×{0}", speed.input_size),
            format!("{}", speed.width),
            format!("{}", speed.batch),
            format!("{}", speed.steps),
            format!("{:.1}", speed.pairs_per_second),
            format!("{:.1}", speed.images_per_second),
            format!("{:.1}", 1e3 * augment),
        ]);
    }
    println!("{}", t.render());
    if let [(_, before), (_, after)] = &runs[..] {
        println!(
            "touchstone's kernels / Burn's ops: {:.2}×",
            after.pairs_per_second / before.pairs_per_second
        );
    }
    println!(
        "training steps on random images (both forward passes, backward, Adam), after one warm-up step; \
         augmentation (blindtouch-socofing preset, one thread per image) timed separately"
    );
    Ok(())
}

#[cfg(feature = "cuda")]
fn bench_on_cuda(
    model: &train::model::ModelConfig,
    batch: usize,
    steps: usize,
) -> Result<train::speed::StepSpeed> {
    let device = Default::default();
    probe_cuda(&device)?;
    train::speed::training_steps::<train::CudaTraining>(model, batch, steps, &device)
        .map_err(anyhow::Error::msg)
}

#[cfg(not(feature = "cuda"))]
fn bench_on_cuda(
    _model: &train::model::ModelConfig,
    _batch: usize,
    _steps: usize,
) -> Result<train::speed::StepSpeed> {
    anyhow::bail!("this touchstone was built without CUDA: rebuild with `cargo build --release -p bench --features cuda`")
}

/// cudarc panics on its first driver call when no driver is installed: probe with a
/// one-element tensor (panic output silenced) and report a missing GPU as an error.
#[cfg(feature = "cuda")]
fn probe_cuda(device: &burn::tensor::Device<train::CudaBackend>) -> Result<()> {
    use burn::prelude::*;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        Tensor::<train::CudaBackend, 1>::zeros([1], device).into_data();
    });
    std::panic::set_hook(hook);
    if probe.is_err() {
        anyhow::bail!(
            "no usable CUDA device (no driver or no GPU found); train on the CPU without --cuda"
        );
    }
    Ok(())
}

#[cfg(feature = "cuda")]
pub(crate) fn train_on_cuda(
    config: &train::config::TrainConfig,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<train::Result<train::RunReport>> {
    let device = Default::default();
    probe_cuda(&device)?;
    eprintln!(
        "training on CUDA device 0; model folder {}",
        config.out.display()
    );
    Ok(train::run_with::<train::CudaTraining>(
        config, &device, true, resume, stop_after,
    ))
}

#[cfg(not(feature = "cuda"))]
pub(crate) fn train_on_cuda(
    _config: &train::config::TrainConfig,
    _resume: bool,
    _stop_after: Option<usize>,
) -> Result<train::Result<train::RunReport>> {
    anyhow::bail!("this touchstone was built without CUDA: rebuild with `cargo build --release -p bench --features cuda`")
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    evaluate(
        &args.model,
        &args.data,
        args.split_seed,
        args.seed,
        args.bits,
        args.out.as_deref(),
    )
}

#[derive(Serialize)]
struct EvalReport {
    model: String,
    data: String,
    test_images: usize,
    genuine_pairs: usize,
    impostor_pairs: usize,
    template_bits: u32,
    /// Pairs scored in the network's training orientation: enrolled print first (its
    /// template carries FC-16's bias), probe second.
    orientation: &'static str,
    float: Verification,
    quantized: Verification,
    rank1_float: f64,
    rank5_float: f64,
    rank1_quantized: f64,
    rank5_quantized: f64,
    /// 1:N ranks are pessimistic on ties.
    gallery: usize,
    seconds: f64,
}

/// Scores the test protocol with the plain (float) and quantized (integer) schemes.
fn evaluate(
    model_dir: &Path,
    data: &Path,
    split_seed: u64,
    seed: u64,
    bits: u32,
    out: Option<&Path>,
) -> Result<()> {
    let start = Instant::now();
    let test = TestSet::load(model_dir, data, split_seed, seed, None)
        .with_context(|| format!("evaluating {} on {}", model_dir.display(), data.display()))?;
    let workload = test.workload(bits)?;
    let mut results = Vec::new();
    for kind in [SchemeKind::Plain, SchemeKind::Quantized] {
        let mut matcher = build_matcher(
            &SchemeConfig::new(kind),
            &workload.model,
            &workload.quantized,
        )?;
        let matrix = evaluation::score(&workload, matcher.as_mut())?;
        let threshold = evaluation::threshold(&workload, &matrix);
        results.push(Accuracy::of(&test, &matrix, threshold));
    }
    let (float, quantized) = (&results[0], &results[1]);
    println!(
        "{}",
        accuracy_table(&[
            ("float".into(), float),
            (format!("quantized ({bits}-bit)"), quantized)
        ])
        .render()
    );
    let report = EvalReport {
        model: model_dir.display().to_string(),
        data: data.display().to_string(),
        test_images: test.images,
        genuine_pairs: float.scores.genuine.len(),
        impostor_pairs: float.scores.impostor.len(),
        template_bits: bits,
        orientation: "enrolled first (bias), probe second — as trained",
        float: float.verification.clone(),
        quantized: quantized.verification.clone(),
        rank1_float: float.rank1,
        rank5_float: float.rank5,
        rank1_quantized: quantized.rank1,
        rank5_quantized: quantized.rank5,
        gallery: test.images,
        seconds: start.elapsed().as_secs_f64(),
    };
    println!(
        "\n{} test images, {} genuine / {} impostor pairs, 1:N gallery {} (ranks pessimistic on ties); evaluation {:.1} s",
        report.test_images,
        report.genuine_pairs,
        report.impostor_pairs,
        report.gallery,
        report.seconds
    );
    if let Some(path) = out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("(also in {})", path.display());
    }
    Ok(())
}
