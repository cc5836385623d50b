//! `touchstone run`: expand the sweep, run every point not yet in rows.jsonl, then write
//! the tables, figures and manifest.

use super::config::{self, ExperimentConfig};
use super::rows::{self, AccuracyCols, Row, Stat, STAGES};
use super::sweep::{self, Point};
use super::{machine, manifest, report};
use crate::train_cmd::{accuracy, Accuracy};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use protocol::synthetic;
use protocol::{
    build_matcher, Calibration, ParamSpec, QuantizedModel, Quantizer, SchemeConfig, SchemeKind,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to run.
pub struct RunOptions {
    /// Continue this run directory (or, when `Some(None)`, the newest one of the config).
    pub resume: Option<Option<PathBuf>>,
    /// Stop after this many new rows (as an interrupted run would); for tests and trials.
    pub max_rows: Option<usize>,
    /// Draw a progress bar.
    pub progress: bool,
}

/// Runs `config_path`; returns the run directory.
pub fn run(config_path: &Path, options: &RunOptions) -> Result<PathBuf> {
    let start = Instant::now();
    let (config, text) = config::read(config_path)?;
    let points = sweep::expand(&config)
        .with_context(|| format!("expanding the sweep of {}", config_path.display()))?;
    let hash = manifest::hash(&text);
    let root = config.outputs.dir.join(&config.name);
    let dir = match &options.resume {
        Some(Some(dir)) => dir.clone(),
        Some(None) => manifest::latest(&root)?.with_context(|| {
            format!(
                "--resume: no earlier run of `{}` under {}",
                config.name,
                root.display()
            )
        })?,
        None => root.join(manifest::timestamp()),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut man = match manifest::Manifest::read(&dir)? {
        Some(m) if options.resume.is_some() => {
            if m.config_hash != hash {
                bail!(
                    "{} was made from another version of the config (hash {} ≠ {}); start a new run",
                    dir.display(),
                    m.config_hash,
                    hash
                );
            }
            m
        }
        Some(_) => bail!(
            "{} already holds a run; pass --resume to continue it",
            dir.display()
        ),
        None => manifest::Manifest::new(&config, &text, config_path),
    };
    man.write(&dir)?;

    let log = dir.join("rows.jsonl");
    let done = rows::read_log(&log)?;
    let todo: Vec<&Point> = points
        .iter()
        .filter(|p| !done.iter().any(|r| r.key == p.key()))
        .collect();
    println!(
        "touchstone run {} · {} points ({} done, {} to run) · {}",
        config_path.display(),
        points.len(),
        points.len() - todo.len(),
        todo.len(),
        dir.display()
    );

    let bar = if options.progress {
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}]")
                .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut context = Shared::new(&config, &dir)?;
    let machine = machine::describe();
    for (i, point) in todo.iter().enumerate() {
        if options.max_rows.is_some_and(|m| i >= m) {
            bar.abandon();
            println!(
                "stopped after {i} new rows (--max-rows); resume with --resume {}",
                dir.display()
            );
            return Ok(dir);
        }
        bar.set_message(point.key());
        let row = run_point(&config, point, &mut context, &machine)
            .with_context(|| format!("run {}", point.key()))?;
        rows::append(&log, &row)?;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let all = rows::read_log(&log)?;
    man.finish(start.elapsed().as_secs_f64() + man.wall_s, all.len());
    man.write(&dir)?;
    report::render(&dir, &config)?;
    println!("wrote {}", dir.join("summary.md").display());
    Ok(dir)
}

/// What runs share: the dataset folder, the model folder and accuracy results.
struct Shared {
    data: Option<PathBuf>,
    model: Option<PathBuf>,
    accuracy: HashMap<(String, u32), Accuracy>,
    dir: PathBuf,
}

impl Shared {
    fn new(config: &ExperimentConfig, dir: &Path) -> Result<Self> {
        let Some(data) = &config.data else {
            return Ok(Self {
                data: None,
                model: None,
                accuracy: HashMap::new(),
                dir: dir.to_path_buf(),
            });
        };
        let folder = match (&data.synthetic, &data.path) {
            (Some(synth), _) => {
                let folder = config.outputs.dir.join("cache").join(
                    format!(
                        "synth-{:?}-{}-{}-{}",
                        synth.preset, synth.fingers, synth.seed, synth.altered
                    )
                    .to_lowercase(),
                );
                ensure_synthetic(synth, &folder)?;
                folder
            }
            (None, Some(path)) => path.clone(),
            (None, None) => unreachable!("validated by config::parse"),
        };
        let model_cfg = config.model.as_ref().expect("validated: data has a model");
        let model = match (&model_cfg.path, &model_cfg.train) {
            (Some(path), _) => path.clone(),
            (None, Some(train_config)) => {
                let mut tc = train::read_config(train_config)?;
                tc.out = dir.join("model");
                if !tc.out.join("head.json").is_file() {
                    println!(
                        "training the model from {} into {}",
                        train_config.display(),
                        tc.out.display()
                    );
                    let device = Default::default();
                    train::run::<train::CpuTraining>(&tc, &device, true)?;
                }
                tc.out
            }
            (None, None) => unreachable!("validated by config::parse"),
        };
        Ok(Self {
            data: Some(folder),
            model: Some(model),
            accuracy: HashMap::new(),
            dir: dir.to_path_buf(),
        })
    }

    fn accuracy(&mut self, config: &ExperimentConfig, point: &Point) -> Result<Option<&Accuracy>> {
        let (Some(data), Some(model)) = (&self.data, &self.model) else {
            return Ok(None);
        };
        let key = (point.preprocessing.clone(), point.bits);
        if !self.accuracy.contains_key(&key) {
            let split_seed = config.data.as_ref().map_or(42, |d| d.split_seed);
            let pipeline = (point.preprocessing != "model").then_some(point.preprocessing.as_str());
            let a = accuracy(model, data, split_seed, point.seed, point.bits, pipeline)
                .with_context(|| format!("evaluating {} on {}", model.display(), data.display()))?;
            let path = self
                .dir
                .join(report::scores_file(&point.preprocessing, point.bits));
            std::fs::write(&path, serde_json::to_string(&a.scores)?)
                .with_context(|| format!("writing {}", path.display()))?;
            self.accuracy.insert(key.clone(), a);
        }
        Ok(self.accuracy.get(&key))
    }
}

fn ensure_synthetic(synth: &datasets::synth::SynthConfig, folder: &Path) -> Result<()> {
    let manifest = folder.join("manifest.json");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        if let Ok(existing) = serde_json::from_str::<datasets::synth::Manifest>(&text) {
            if &existing.config == synth {
                return Ok(());
            }
        }
    }
    println!("generating the synthetic set into {}", folder.display());
    datasets::synth::write(synth, folder, &|| {})?;
    Ok(())
}

fn run_point(
    config: &ExperimentConfig,
    point: &Point,
    context: &mut Shared,
    machine: &str,
) -> Result<Row> {
    let start = Instant::now();
    let accuracy = context.accuracy(config, point)?.map(|a| {
        let (v, r1, r5) = if point.scheme == SchemeKind::Plain {
            (&a.float, a.rank1_float, a.rank5_float)
        } else {
            (&a.quantized, a.rank1_quantized, a.rank5_quantized)
        };
        AccuracyCols {
            accuracy: v.accuracy,
            precision: v.precision,
            recall: v.recall,
            f1: v.f1,
            roc_auc: v.roc_auc,
            eer: v.eer,
            fnmr_at_fmr_1pct: v.fnmr_at_fmr_1pct,
            rank1: r1,
            rank5: r5,
            test_images: a.test_images,
        }
    });

    // Latency on seeded synthetic templates: the timing of a 1:N match does not depend on
    // the template values, and these scale to any gallery size.
    let set = synthetic::generate(point.users, point.probes, 16, 0.2, point.seed);
    let q = Quantizer::calibrate(
        &set.calibration_samples(),
        point.bits,
        Calibration::Quantile(0.999),
    )?;
    let model = QuantizedModel::new(&set.model, q, point.bits)?;
    let scheme = SchemeConfig {
        kind: point.scheme,
        params: (point.params != "default")
            .then(|| ParamSpec::preset(&point.params))
            .transpose()?,
        encrypted_weights: point.encrypted_weights,
        clusters: point.clusters,
        measure_noise: true,
        engine: point.engine,
    };
    let params_name = scheme.param_spec()?.map_or("-".into(), |s| s.name.clone());
    let mut matcher = build_matcher(&scheme, &set.model, &model)?;
    let enrol_start = Instant::now();
    let enrolment = matcher.enrol(&set.gallery)?;
    let enrol_ms = enrol_start.elapsed().as_secs_f64() * 1e3;

    let gallery_q: Vec<Vec<i64>> = set.gallery.iter().map(|t| model.quantize(t)).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut cluster_eval = Vec::new();
    let (mut noise, mut exact, mut queries) = (f64::INFINITY, true, 0usize);
    let mut last = None;
    for _ in 0..config.repetitions {
        for probe in &set.probes {
            let outcome = matcher.identify(&probe.template)?;
            let t = &outcome.timings;
            let values = [
                t.encrypt,
                t.upload,
                t.clusters_wall,
                t.gather,
                t.compress,
                t.download,
                t.decrypt,
                t.decide,
                t.total(),
            ];
            for (s, v) in samples.iter_mut().zip(values) {
                s.push(v.as_secs_f64() * 1e3);
            }
            cluster_eval.push(
                t.cluster_eval
                    .iter()
                    .max()
                    .copied()
                    .unwrap_or_default()
                    .as_secs_f64()
                    * 1e3,
            );
            if let Some(bits) = outcome.noise_budget_bits {
                noise = noise.min(bits);
            }
            if let Some(got) = outcome.scores.integers() {
                let qp = model.quantize(&probe.template);
                exact &= got
                    .iter()
                    .zip(&gallery_q)
                    .all(|(s, r)| *s == model.score(&qp, r));
            }
            queries += 1;
            last = Some(outcome);
        }
    }
    let last = last.expect("at least one probe and repetition");
    let encrypted = point.scheme.encrypted();
    if encrypted && !exact {
        bail!("decrypted scores differ from the plaintext integer scores");
    }
    Ok(Row {
        key: point.key(),
        point: point.clone(),
        params_name,
        engine_running: if encrypted {
            enrolment.engine.clone()
        } else {
            "-".into()
        },
        accuracy,
        stages: samples.into_iter().map(Stat::of).collect(),
        cluster_eval: Stat::of(cluster_eval),
        keygen_ms: enrolment.keygen.as_secs_f64() * 1e3,
        enrol_ms,
        key_bytes: enrolment.setup.total,
        gallery_bytes: enrolment.stored_bytes,
        upload_bytes: last.traffic.upload,
        download_bytes: last.traffic.download,
        result_ciphertexts: last.traffic.result_ciphertexts,
        noise_budget_bits: encrypted.then_some(noise),
        exact: encrypted.then_some(exact),
        queries,
        machine: machine.to_string(),
        wall_s: start.elapsed().as_secs_f64(),
    })
}
