//! The preprocessing comparison (`touchstone run` of a config with a `pipelines:` section):
//! one model trained per candidate pipeline and seed — the same recipe, data, split and
//! budget, only the pipeline differs — each scored on the same test pairs and 1:N probes,
//! with bootstrap 95% confidence intervals and the paired difference to a reference
//! pipeline.
//!
//! The bootstrap is paired and two-level: each replicate draws the seeds with replacement
//! and, independently, the genuine pairs, the impostor pairs and the 1:N probes with
//! replacement; every pipeline is scored on the same draw, its metric averaged over the
//! drawn seeds. An interval is the 2.5th–97.5th percentile of the replicates, so it holds
//! both the test set's sampling error and the spread between training seeds; a paired
//! difference whose interval excludes 0 is a difference the data supports. Models come
//! from the harness's cache (`<outputs>/cache/model-<digest>`): a rerun retrains nothing.

use super::config::{check_name, OutputConfig, TrainDevice};
use super::manifest;
use anyhow::{bail, Context, Result};
use datasets::metrics;
use datasets::preprocess::Pipeline;
use plotters::prelude::*;
use protocol::{build_matcher, SchemeConfig, SchemeKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use train::config::Named;
use train::evaluation::{self, TestSet};

/// A config file of this study.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub pipelines: PipelinesConfig,
    #[serde(default)]
    pub outputs: OutputConfig,
}

/// The comparison's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    /// The training config every model follows (data, augmentation, model, training);
    /// its pipeline is replaced by each candidate's, its seed by each seed, its `out`
    /// by the cache folder.
    pub recipe: PathBuf,
    /// The candidates: preset names (sized to the model input) or explicit pipelines,
    /// each ending at the model's input size.
    pub candidates: Vec<Named<Pipeline>>,
    /// The reference of the paired differences (a candidate's name; default: the first).
    #[serde(default)]
    pub reference: Option<String>,
    /// Training seeds: one model per candidate and seed.
    pub seeds: Vec<u64>,
    /// Bootstrap replicates.
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    /// Seed of the test pairs' augmentation and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Where the models train.
    #[serde(default)]
    pub device: TrainDevice,
}

fn default_bootstrap() -> usize {
    1000
}

fn default_seed() -> u64 {
    1
}

/// Upper bounds checked before anything runs.
const MAX_CANDIDATES: usize = 16;
const MAX_SEEDS: usize = 20;
const MAX_BOOTSTRAP: usize = 100_000;

/// Is `text` a config of this study?
pub fn is_study(text: &str) -> bool {
    super::study::has_section(text, "pipelines")
}

/// A stored config (a run's manifest) for re-rendering: read as written, the recipe not
/// opened (it may have moved since).
pub fn parse_stored(text: &str, path: &Path) -> Result<StudyConfig> {
    let config: StudyConfig = super::study::deserialize(text, path)?;
    if let Err(why) = check_name(&config.name) {
        bail!("{}: name: {why}", path.display());
    }
    Ok(config)
}

/// Parses and validates a config (the recipe is read and checked too).
pub fn parse(text: &str, path: &Path) -> Result<(StudyConfig, train::config::TrainConfig)> {
    let config: StudyConfig = super::study::deserialize(text, path)?;
    if let Err(why) = check_name(&config.name) {
        bail!("{}: name: {why}", path.display());
    }
    let p = &config.pipelines;
    let at = |field: &str| format!("{}: pipelines.{field}", path.display());
    if p.candidates.len() < 2 || p.candidates.len() > MAX_CANDIDATES {
        bail!(
            "{}: give 2 to {MAX_CANDIDATES} pipelines, got {}",
            at("candidates"),
            p.candidates.len()
        );
    }
    if p.seeds.is_empty() || p.seeds.len() > MAX_SEEDS {
        bail!(
            "{}: give 1 to {MAX_SEEDS} seeds, got {}",
            at("seeds"),
            p.seeds.len()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = p.seeds.iter().find(|s| !seen.insert(**s)) {
        bail!("{}: seed {dup} is listed twice", at("seeds"));
    }
    if !(10..=MAX_BOOTSTRAP).contains(&p.bootstrap) {
        bail!(
            "{}: between 10 and {MAX_BOOTSTRAP} replicates, got {}",
            at("bootstrap"),
            p.bootstrap
        );
    }
    let recipe_path = resolve(path, &p.recipe);
    let recipe = train::read_config(&recipe_path).with_context(|| at("recipe"))?;
    let names = candidate_names(p, &recipe).with_context(|| at("candidates"))?;
    let mut unique = std::collections::BTreeSet::new();
    if let Some(dup) = names.iter().find(|n| !unique.insert(n.as_str())) {
        bail!("{}: two pipelines are named `{dup}`", at("candidates"));
    }
    if let Some(r) = &p.reference {
        if !names.contains(r) {
            bail!(
                "{}: `{r}` is not a candidate ({})",
                at("reference"),
                names.join(", ")
            );
        }
    }
    Ok((config, recipe))
}

/// A path in a config, relative to the config's folder unless absolute (or found as
/// given, relative to the working directory, as the other configs name files).
fn resolve(config: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    config.parent().unwrap_or(Path::new(".")).join(path)
}

/// Each candidate's pipeline, sized to the recipe's model.
fn pipelines(p: &PipelinesConfig, recipe: &train::config::TrainConfig) -> Result<Vec<Pipeline>> {
    p.candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let pipeline = match c {
                Named::Preset(name) => Pipeline::preset(name, recipe.model.input_size)?,
                Named::Custom(p) => p.clone(),
            };
            pipeline
                .validate()
                .with_context(|| format!("[{i}] `{}`", pipeline.name))?;
            Ok(pipeline)
        })
        .collect()
}

fn candidate_names(
    p: &PipelinesConfig,
    recipe: &train::config::TrainConfig,
) -> Result<Vec<String>> {
    Ok(pipelines(p, recipe)?.into_iter().map(|p| p.name).collect())
}

/// One trained model's test scores, reduced to what the bootstrap resamples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelScores {
    pub pipeline: String,
    pub seed: u64,
    pub model: PathBuf,
    /// Logit threshold the model decides with (from its validation pairs).
    pub threshold: f64,
    pub genuine: Vec<f64>,
    pub impostor: Vec<f64>,
    /// Per 1:N probe: was the mate ranked first (pessimistic on ties)?
    pub rank1_hits: Vec<bool>,
}

/// A metric's estimate and 95% interval.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// One pipeline's row of the table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PipelineRow {
    pub pipeline: String,
    pub eer: Interval,
    pub f1: Interval,
    pub rank1: Interval,
    /// This pipeline minus the reference (zero intervals for the reference itself).
    pub eer_difference: Interval,
    pub f1_difference: Interval,
    pub rank1_difference: Interval,
    /// The metrics of each seed's model on the whole test set.
    pub per_seed: Vec<SeedMetrics>,
}

/// One model's metrics on the whole test set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedMetrics {
    pub seed: u64,
    pub eer: f64,
    pub f1: f64,
    pub rank1: f64,
    pub model: PathBuf,
}

/// The study's result (`pipelines.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyResult {
    pub reference: String,
    pub seeds: Vec<u64>,
    pub bootstrap: usize,
    pub test: String,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    pub probes: usize,
    pub rows: Vec<PipelineRow>,
}

/// Runs the study; returns the run folder.
pub fn run(config_path: &Path, text: &str) -> Result<PathBuf> {
    let start = Instant::now();
    let (config, recipe) = parse(text, config_path)?;
    let p = &config.pipelines;
    let candidates = pipelines(p, &recipe)?;
    let dir = super::run::new_run_folder(&config.outputs.dir, &config.name)?;
    println!(
        "touchstone run {} · preprocessing comparison · {} pipelines × {} seeds · {}",
        config_path.display(),
        candidates.len(),
        p.seeds.len(),
        dir.display()
    );
    // The data once, shared by every model (a synthetic set into the harness's folder).
    let mut base = recipe.clone();
    let data = match (&recipe.data.synthetic, &recipe.data.path) {
        (Some(synth), _) => {
            let folder = super::run::synthetic_folder(&config.outputs.dir, synth);
            super::run::ensure_synthetic(synth, &folder)?;
            folder
        }
        (None, Some(path)) => path.clone(),
        (None, None) => unreachable!("validated by read_config"),
    };
    base.data.synthetic = None;
    base.data.path = Some(data.clone());
    let mut all = Vec::new();
    let mut test_description = String::new();
    for pipeline in &candidates {
        for &seed in &p.seeds {
            let mut tc = base.clone();
            tc.data.pipeline = Named::Custom(pipeline.clone());
            tc.training.seed = seed;
            let label = format!("pipeline `{}`, seed {seed}", pipeline.name);
            let model =
                super::run::ensure_trained_config(tc, &label, &config.outputs.dir, p.device)?;
            let (scores, images) = model_scores(
                &model,
                &data,
                recipe.data.split_seed,
                p.seed,
                &pipeline.name,
                seed,
            )
            .with_context(|| format!("evaluating {label}"))?;
            test_description = format!(
                "the test split of {} (split seed {}, {images} images)",
                data.display(),
                recipe.data.split_seed
            );
            println!(
                "  {:<28} seed {seed:<4} EER {:>6.2}%  F1 {:>6.2}%  rank-1 {:>6.2}%",
                pipeline.name,
                100.0 * metrics::eer(&scores.genuine, &scores.impostor),
                100.0 * f1(&scores.genuine, &scores.impostor, scores.threshold),
                100.0 * mean_hits(&scores.rank1_hits)
            );
            all.push(scores);
        }
    }
    let reference = p
        .reference
        .clone()
        .unwrap_or_else(|| candidates[0].name.clone());
    let names: Vec<String> = candidates.iter().map(|c| c.name.clone()).collect();
    let rows = compare(&all, &names, &reference, &p.seeds, p.bootstrap, p.seed)?;
    let first = &all[0];
    let result = StudyResult {
        reference,
        seeds: p.seeds.clone(),
        bootstrap: p.bootstrap,
        test: test_description,
        genuine_pairs: first.genuine.len(),
        impostor_pairs: first.impostor.len(),
        probes: first.rank1_hits.len(),
        rows,
    };
    super::atomic::write(
        &dir.join("pipelines.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    super::atomic::write(
        &dir.join("scores.json"),
        serde_json::to_string(&all)?.as_bytes(),
    )?;
    let mut man = manifest::Manifest::for_study(&config.name, text, config_path);
    man.seeds = p.seeds.clone();
    man.dataset = Some(manifest::dataset_inputs(&data)?);
    man.finish(start.elapsed().as_secs_f64(), result.rows.len());
    man.write(&dir)?;
    render(&dir, &config, &result)?;
    println!("wrote {}", dir.join("summary.md").display());
    Ok(dir)
}

/// The model's float scores on the test split (the threshold it decides with included).
fn model_scores(
    model: &Path,
    data: &Path,
    split_seed: u64,
    seed: u64,
    pipeline: &str,
    training_seed: u64,
) -> Result<(ModelScores, usize)> {
    let test = TestSet::load(model, data, split_seed, seed, None)?;
    let workload = test.workload(8)?;
    let mut matcher = build_matcher(
        &SchemeConfig::new(SchemeKind::Plain),
        &workload.model,
        &workload.quantized,
    )?;
    let matrix = evaluation::score(&workload, matcher.as_mut())?;
    let threshold = evaluation::threshold(&workload, &matrix);
    let accuracy = evaluation::Accuracy::of(&test, &matrix, threshold);
    let rank1_hits = test
        .identification_probes()
        .map(|probe| metrics::mate_rank(&matrix.rows[probe], probe) == 1)
        .collect();
    Ok((
        ModelScores {
            pipeline: pipeline.to_string(),
            seed: training_seed,
            model: model.to_path_buf(),
            threshold,
            genuine: accuracy.scores.genuine,
            impostor: accuracy.scores.impostor,
            rank1_hits,
        },
        test.images,
    ))
}

fn f1(genuine: &[f64], impostor: &[f64], threshold: f64) -> f64 {
    metrics::verification(genuine, impostor, threshold).f1
}

fn mean_hits(hits: &[bool]) -> f64 {
    hits.iter().filter(|&&h| h).count() as f64 / hits.len().max(1) as f64
}

/// The three metrics of one model on a resample (indices into its pairs and probes).
fn metrics_on(s: &ModelScores, g: &[usize], i: &[usize], r: &[usize]) -> [f64; 3] {
    let genuine: Vec<f64> = g.iter().map(|&k| s.genuine[k]).collect();
    let impostor: Vec<f64> = i.iter().map(|&k| s.impostor[k]).collect();
    let hits = r.iter().filter(|&&k| s.rank1_hits[k]).count() as f64 / r.len().max(1) as f64;
    [
        metrics::eer(&genuine, &impostor),
        f1(&genuine, &impostor, s.threshold),
        hits,
    ]
}

/// The percentile interval of `values` around `estimate`.
fn interval(estimate: f64, values: &mut [f64]) -> Interval {
    values.sort_by(|a, b| a.total_cmp(b));
    let at =
        |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    Interval {
        estimate,
        low: at(0.025),
        high: at(0.975),
    }
}

/// The table: estimates (means over seeds on the whole test set) and the paired,
/// two-level bootstrap's intervals (see the module's documentation).
pub fn compare(
    all: &[ModelScores],
    names: &[String],
    reference: &str,
    seeds: &[u64],
    replicates: usize,
    seed: u64,
) -> Result<Vec<PipelineRow>> {
    let model = |pipeline: &str, s: u64| {
        all.iter()
            .find(|m| m.pipeline == pipeline && m.seed == s)
            .with_context(|| format!("no model for pipeline `{pipeline}`, seed {s}"))
    };
    let first = &all[0];
    let (ng, ni, nr) = (
        first.genuine.len(),
        first.impostor.len(),
        first.rank1_hits.len(),
    );
    if let Some(m) = all
        .iter()
        .find(|m| (m.genuine.len(), m.impostor.len(), m.rank1_hits.len()) != (ng, ni, nr))
    {
        bail!(
            "pipeline `{}`, seed {}: {} / {} / {} pairs and probes, the first model has {ng} / {ni} / {nr} — the test sets differ",
            m.pipeline,
            m.seed,
            m.genuine.len(),
            m.impostor.len(),
            m.rank1_hits.len()
        );
    }
    if ng == 0 || ni == 0 || nr == 0 {
        bail!("the test split has no genuine pairs, impostor pairs or probes");
    }
    let all_g: Vec<usize> = (0..ng).collect();
    let all_i: Vec<usize> = (0..ni).collect();
    let all_r: Vec<usize> = (0..nr).collect();
    // Whole-test-set metrics per pipeline and seed; estimates are their means.
    let mut whole = Vec::new();
    for name in names {
        let mut per_seed = Vec::new();
        for &s in seeds {
            let m = model(name, s)?;
            per_seed.push((s, metrics_on(m, &all_g, &all_i, &all_r), m.model.clone()));
        }
        whole.push(per_seed);
    }
    let mean_over = |per_seed: &[(u64, [f64; 3], PathBuf)], k: usize| {
        per_seed.iter().map(|p| p.1[k]).sum::<f64>() / per_seed.len() as f64
    };
    let reference_index = names
        .iter()
        .position(|n| n == reference)
        .with_context(|| format!("reference `{reference}` is not a candidate"))?;
    // replicates × pipelines × metrics
    let mut boot = vec![vec![[0.0f64; 3]; names.len()]; replicates];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb007_57a9);
    let draw = |rng: &mut ChaCha8Rng, n: usize| -> Vec<usize> {
        (0..n).map(|_| rng.random_range(0..n)).collect()
    };
    for replicate in boot.iter_mut() {
        let drawn_seeds: Vec<u64> = (0..seeds.len())
            .map(|_| seeds[rng.random_range(0..seeds.len())])
            .collect();
        let (g, i, r) = (draw(&mut rng, ng), draw(&mut rng, ni), draw(&mut rng, nr));
        for (p, name) in names.iter().enumerate() {
            let mut sum = [0.0f64; 3];
            for &s in &drawn_seeds {
                let m = metrics_on(model(name, s)?, &g, &i, &r);
                for k in 0..3 {
                    sum[k] += m[k];
                }
            }
            replicate[p] = sum.map(|v| v / drawn_seeds.len() as f64);
        }
    }
    let mut rows = Vec::new();
    for (p, name) in names.iter().enumerate() {
        let est = |k: usize| mean_over(&whole[p], k);
        let est_ref = |k: usize| mean_over(&whole[reference_index], k);
        let metric = |k: usize| {
            let mut v: Vec<f64> = boot.iter().map(|b| b[p][k]).collect();
            interval(est(k), &mut v)
        };
        let difference = |k: usize| {
            let mut v: Vec<f64> = boot
                .iter()
                .map(|b| b[p][k] - b[reference_index][k])
                .collect();
            interval(est(k) - est_ref(k), &mut v)
        };
        rows.push(PipelineRow {
            pipeline: name.clone(),
            eer: metric(0),
            f1: metric(1),
            rank1: metric(2),
            eer_difference: difference(0),
            f1_difference: difference(1),
            rank1_difference: difference(2),
            per_seed: whole[p]
                .iter()
                .map(|(s, m, model)| SeedMetrics {
                    seed: *s,
                    eer: m[0],
                    f1: m[1],
                    rank1: m[2],
                    model: model.clone(),
                })
                .collect(),
        });
    }
    Ok(rows)
}

fn pct(i: &Interval) -> String {
    format!(
        "{:.2}% [{:.2}, {:.2}]",
        100.0 * i.estimate,
        100.0 * i.low,
        100.0 * i.high
    )
}

fn signed_pct(i: &Interval) -> String {
    format!(
        "{:+.2} [{:+.2}, {:+.2}]{}",
        100.0 * i.estimate,
        100.0 * i.low,
        100.0 * i.high,
        if i.low > 0.0 || i.high < 0.0 {
            " *"
        } else {
            ""
        }
    )
}

/// summary.md and the figure (also `touchstone report` of a run folder).
pub fn render(dir: &Path, config: &StudyConfig, result: &StudyResult) -> Result<()> {
    let mut s = String::new();
    writeln!(s, "# {}\n", config.name)?;
    if !config.description.is_empty() {
        writeln!(s, "{}\n", config.description)?;
    }
    writeln!(
        s,
        "One model per pipeline and training seed (seeds {:?}), the same recipe ({}) and budget; \
         test: {}; {} genuine / {} impostor pairs, {} 1:N probes. Estimates: means over the \
         seeds' models on the whole test split. [95% intervals]: paired two-level bootstrap \
         ({} replicates; seeds, pairs and probes drawn with replacement). Differences are \
         this pipeline minus `{}` in percentage points; * = the interval excludes 0.\n",
        result.seeds,
        config.pipelines.recipe.display(),
        result.test,
        result.genuine_pairs,
        result.impostor_pairs,
        result.probes,
        result.bootstrap,
        result.reference
    )?;
    writeln!(
        s,
        "| pipeline | EER | F1 | rank-1 | ΔEER | ΔF1 | Δrank-1 |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    for r in &result.rows {
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.pipeline,
            pct(&r.eer),
            pct(&r.f1),
            pct(&r.rank1),
            signed_pct(&r.eer_difference),
            signed_pct(&r.f1_difference),
            signed_pct(&r.rank1_difference)
        )?;
    }
    writeln!(s, "\n### Per seed (whole test split)\n")?;
    writeln!(
        s,
        "| pipeline | seed | EER | F1 | rank-1 | model |\n|---|---:|---:|---:|---:|---|"
    )?;
    for r in &result.rows {
        for m in &r.per_seed {
            writeln!(
                s,
                "| {} | {} | {:.2}% | {:.2}% | {:.2}% | {} |",
                r.pipeline,
                m.seed,
                100.0 * m.eer,
                100.0 * m.f1,
                100.0 * m.rank1,
                m.model.display()
            )?;
        }
    }
    writeln!(s)?;
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures).with_context(|| format!("creating {}", figures.display()))?;
    train::curve::register_font();
    let png = figures.join("pipelines.png");
    {
        let root = BitMapBackend::new(&png, (1200, 480)).into_drawing_area();
        draw(&root, result)?;
        root.present().map_err(super::figures::err)?;
    }
    let mut written = vec!["figures/pipelines.png".to_string()];
    if config.outputs.svg {
        let path = figures.join("pipelines.svg");
        let root = SVGBackend::new(&path, (1200, 480)).into_drawing_area();
        draw(&root, result)?;
        root.present().map_err(super::figures::err)?;
        written.push("figures/pipelines.svg".into());
    }
    super::study::write_summary(dir, s, &written)
}

/// Three panels (EER, F1, rank-1): each pipeline's estimate with its 95% interval.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    result: &StudyResult,
) -> Result<()> {
    use super::figures::err;
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 3));
    let n = result.rows.len();
    let names: Vec<String> = result.rows.iter().map(|r| r.pipeline.clone()).collect();
    type Pick = fn(&PipelineRow) -> Interval;
    let metrics: [(&str, Pick); 3] = [
        ("EER (%)", |r| r.eer),
        ("F1 (%)", |r| r.f1),
        ("rank-1 (%)", |r| r.rank1),
    ];
    for (area, (title, pick)) in panels.iter().zip(metrics) {
        let values: Vec<Interval> = result.rows.iter().map(pick).collect();
        let lo = values.iter().map(|v| v.low).fold(f64::INFINITY, f64::min);
        let hi = values
            .iter()
            .map(|v| v.high)
            .fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.15).max(0.005);
        let (y0, y1) = (100.0 * (lo - pad).max(0.0), 100.0 * (hi + pad).min(1.0));
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), y0..y1.max(y0 + 0.1))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(err)?;
        // Each interval as a vertical bar with caps, the estimate as a dot.
        let cap = 0.08;
        for (i, v) in values.iter().enumerate() {
            let x = i as f64;
            let (lo, est, hi) = (100.0 * v.low, 100.0 * v.estimate, 100.0 * v.high);
            let lines = [
                vec![(x, lo), (x, hi)],
                vec![(x - cap, lo), (x + cap, lo)],
                vec![(x - cap, hi), (x + cap, hi)],
            ];
            chart
                .draw_series(
                    lines
                        .into_iter()
                        .map(|l| PathElement::new(l, BLUE.stroke_width(2))),
                )
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new((x, est), 5, BLUE.filled())))
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(pipeline: &str, seed: u64, shift: f64) -> ModelScores {
        // Genuine scores above impostor ones, overlapping more as `shift` shrinks.
        ModelScores {
            pipeline: pipeline.into(),
            seed,
            model: PathBuf::from(format!("m-{pipeline}-{seed}")),
            threshold: 0.0,
            genuine: (0..200)
                .map(|k| shift + (k % 20) as f64 * 0.1 - 1.0)
                .collect(),
            impostor: (0..400)
                .map(|k| -1.0 + (k % 20) as f64 * 0.1 - 1.0 + 0.5 * (seed as f64) * 0.01)
                .collect(),
            rank1_hits: (0..100)
                .map(|k| (k as f64) < 100.0 * (0.5 + shift / 4.0))
                .collect(),
        }
    }

    #[test]
    fn a_clearly_better_pipeline_has_a_difference_interval_away_from_zero() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut all = Vec::new();
        for s in [1, 2, 3] {
            all.push(scores("a", s, 0.2));
            all.push(scores("b", s, 1.5));
        }
        let rows = compare(&all, &names, "a", &[1, 2, 3], 300, 7).unwrap();
        let (a, b) = (&rows[0], &rows[1]);
        // The reference's differences to itself are exactly zero.
        assert_eq!(
            a.eer_difference,
            Interval {
                estimate: 0.0,
                low: 0.0,
                high: 0.0
            }
        );
        // b separates better: lower EER, higher rank-1, intervals away from 0.
        assert!(b.eer.estimate < a.eer.estimate);
        assert!(b.eer_difference.high < 0.0, "{:?}", b.eer_difference);
        assert!(b.rank1_difference.low > 0.0, "{:?}", b.rank1_difference);
        // Estimates lie inside their intervals and intervals are ordered.
        for r in &rows {
            for i in [r.eer, r.f1, r.rank1] {
                assert!(
                    i.low <= i.estimate + 1e-12 && i.estimate <= i.high + 1e-12,
                    "{i:?}"
                );
            }
        }
        // Per-seed whole-set metrics computed independently here.
        let m = &b.per_seed[0];
        assert_eq!(m.rank1, 0.88);
        assert!((m.eer - metrics::eer(&all[1].genuine, &all[1].impostor)).abs() < 1e-12);
    }

    #[test]
    fn identical_pipelines_have_intervals_around_zero() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut all = Vec::new();
        for s in [1, 2, 3] {
            all.push(scores("a", s, 0.5));
            all.push(scores("b", s, 0.5));
        }
        let rows = compare(&all, &names, "a", &[1, 2, 3], 200, 7).unwrap();
        assert_eq!(
            rows[1].eer_difference,
            Interval {
                estimate: 0.0,
                low: 0.0,
                high: 0.0
            }
        );
    }

    #[test]
    fn models_scored_on_different_test_sets_are_refused() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut short = scores("b", 1, 0.5);
        short.genuine.pop();
        let all = vec![scores("a", 1, 0.5), short];
        let err = compare(&all, &names, "a", &[1], 50, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("test sets differ"), "{err}");
    }
}
