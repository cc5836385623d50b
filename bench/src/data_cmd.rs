//! `touchstone synth` and `touchstone data …`: write a synthetic set, check a dataset
//! folder, report how realistic a set is.

use crate::format::{duration, Table};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use datasets::loaders::{self, Variant};
use datasets::realism::{self, RealismReport};
use datasets::synth::{self, PresetKind, SynthConfig};
use datasets::Gray8;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// socofing (96×103, altered copies) or polyu (two sessions, six impressions).
    #[arg(long, default_value = "socofing")]
    preset: PresetKind,
    /// socofing: subjects, 10 fingers each (600 → 6,000 prints, as SOCOFing);
    /// polyu: fingers.
    #[arg(long)]
    fingers: usize,
    /// Seed; the same seed writes byte-identical files.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// socofing: skip the altered copies.
    #[arg(long)]
    no_altered: bool,
    /// Skip the realism report.
    #[arg(long)]
    no_report: bool,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Detect a folder's format, count fingers and impressions, decode every image and
    /// report problems (non-zero exit if any).
    Check {
        /// Dataset folder (SOCOFing, PolyU or a synthetic set).
        path: PathBuf,
    },
    /// Ridge period, minutiae per print and matcher EER of a dataset.
    Realism(RealismArgs),
}

#[derive(Args, Debug)]
pub struct RealismArgs {
    /// Dataset folder.
    path: PathBuf,
    /// Prints analysed at most.
    #[arg(long, default_value_t = 400)]
    prints: usize,
    /// Impostor pairs scored.
    #[arg(long, default_value_t = 2000)]
    impostors: usize,
    /// Seed of the choice of prints and pairs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn synth(args: &SynthArgs) -> Result<()> {
    let config = SynthConfig {
        preset: args.preset,
        fingers: args.fingers,
        seed: args.seed,
        altered: !args.no_altered,
    };
    let total = args.fingers * synth::Preset::of(args.preset).fingers_per_subject;
    let progress = bar(total as u64, "fingers");
    let (manifest, t) = synth::write(&config, &args.out, &|| progress.inc(1))
        .with_context(|| format!("writing {}", args.out.display()))?;
    progress.finish_and_clear();
    let real = manifest
        .images
        .iter()
        .filter(|i| i.variant == Variant::Real)
        .count();
    let mut table = Table::new(&["synthetic set", "value"]);
    table.row(vec!["folder".into(), args.out.display().to_string()]);
    table.row(vec!["fingers".into(), manifest.fingers.len().to_string()]);
    table.row(vec!["real prints".into(), real.to_string()]);
    table.row(vec!["altered copies".into(), (t.images - real).to_string()]);
    table.row(vec!["wall time".into(), duration(t.wall)]);
    table.row(vec![
        "master per finger (one core)".into(),
        duration(t.masters / t.fingers.max(1) as u32),
    ]);
    table.row(vec![
        "render per image (one core)".into(),
        duration(t.impressions / t.images.max(1) as u32),
    ]);
    table.row(vec![
        "encode + write per image".into(),
        duration(t.writing / t.images.max(1) as u32),
    ]);
    table.row(vec![
        "manifest".into(),
        args.out.join("manifest.json").display().to_string(),
    ]);
    table.row(vec![
        "contact sheet".into(),
        args.out.join("contact_sheet.png").display().to_string(),
    ]);
    println!("{}", table.render());
    if !args.no_report {
        let mut classes = BTreeMap::new();
        for f in &manifest.fingers {
            *classes
                .entry(f.master.class.name().to_string())
                .or_insert(0) += 1;
        }
        let report = realism_report(&args.out, classes, 400, 2000, 1)?;
        let path = args.out.join("realism.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\n(realism report also in {})", path.display());
    }
    Ok(())
}

fn realism_report(
    path: &Path,
    classes: BTreeMap<String, usize>,
    prints: usize,
    impostors: usize,
    seed: u64,
) -> Result<RealismReport> {
    let dataset = loaders::load(path)?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("realism report: minutiae, ridge period, matcher");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = realism::report(&dataset, classes, prints, impostors, seed)?;
    spinner.finish_and_clear();
    print_realism(&report);
    Ok(report)
}

fn print_realism(r: &RealismReport) {
    let mut t = Table::new(&["realism", "value"]);
    if !r.classes.is_empty() {
        let total: usize = r.classes.values().sum();
        let classes: Vec<String> = r
            .classes
            .iter()
            .map(|(c, n)| format!("{c} {:.1}%", 100.0 * *n as f64 / total as f64))
            .collect();
        t.row(vec!["classes".into(), classes.join(", ")]);
    }
    t.row(vec!["prints analysed".into(), r.prints.to_string()]);
    let p = &r.ridge_period;
    t.row(vec![
        "ridge period (px)".into(),
        format!(
            "median {:.2}, p10–p90 {:.2}–{:.2} ({} prints)",
            p.median, p.p10, p.p90, p.count
        ),
    ]);
    let m = &r.minutiae;
    t.row(vec![
        "minutiae per print".into(),
        format!(
            "mean {:.1} ± {:.1}, median {:.0}, p10–p90 {:.0}–{:.0}",
            m.mean, m.sd, m.median, m.p10, m.p90
        ),
    ]);
    t.row(vec![
        "ridge endings share".into(),
        format!("{:.1}%", 100.0 * r.endings_share),
    ]);
    t.row(vec![
        "matcher genuine pairs".into(),
        format!("{} ({})", r.genuine_pairs, r.genuine_protocol),
    ]);
    t.row(vec![
        "matcher impostor pairs".into(),
        r.impostor_pairs.to_string(),
    ]);
    t.row(vec!["matcher EER".into(), format!("{:.2}%", 100.0 * r.eer)]);
    t.row(vec!["matcher ROC AUC".into(), format!("{:.4}", r.auc)]);
    t.row(vec!["matcher d′".into(), format!("{:.2}", r.d_prime)]);
    println!("\n{}", t.render());
}

pub fn data(command: &DataCommand) -> Result<()> {
    match command {
        DataCommand::Check { path } => check(path),
        DataCommand::Realism(a) => {
            let classes = read_manifest_classes(&a.path);
            realism_report(&a.path, classes, a.prints, a.impostors, a.seed).map(|_| ())
        }
    }
}

/// Class counts from a synthetic set's manifest, if there is one.
fn read_manifest_classes(path: &Path) -> BTreeMap<String, usize> {
    let mut classes = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(path.join("manifest.json")) else {
        return classes;
    };
    if let Ok(m) = serde_json::from_str::<synth::Manifest>(&text) {
        for f in &m.fingers {
            *classes
                .entry(f.master.class.name().to_string())
                .or_insert(0) += 1;
        }
    }
    classes
}

fn check(path: &Path) -> Result<()> {
    let dataset = loaders::load(path)?;
    let progress = bar(dataset.samples.len() as u64, "decoding");
    // Each image's (width, height), or the decoder's message naming the file.
    let decoded: Vec<std::result::Result<(usize, usize), String>> = dataset
        .samples
        .par_iter()
        .map(|s| {
            let r = Gray8::load(&s.path)
                .map(|g| (g.width, g.height))
                .map_err(|e| e.to_string());
            progress.inc(1);
            r
        })
        .collect();
    progress.finish_and_clear();

    let mut problems = Vec::new();
    let mut sizes: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for r in &decoded {
        match r {
            Ok(size) => *sizes.entry(*size).or_default() += 1,
            Err(e) => problems.push(e.clone()),
        }
    }
    if sizes.len() > 1 {
        problems.push(format!(
            "images have {} different sizes: {sizes:?}",
            sizes.len()
        ));
    }
    let mut per_finger: BTreeMap<usize, usize> = BTreeMap::new();
    let mut variants: BTreeMap<String, usize> = BTreeMap::new();
    let mut sessions: BTreeMap<u32, usize> = BTreeMap::new();
    for s in &dataset.samples {
        if s.variant == Variant::Real {
            *per_finger.entry(s.finger).or_default() += 1;
        }
        let v = match &s.variant {
            Variant::Real => "real".to_string(),
            Variant::Altered { level, kind } => format!("altered {level} {kind}"),
        };
        *variants.entry(v).or_default() += 1;
        *sessions.entry(s.session).or_default() += 1;
    }
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for n in per_finger.values() {
        *counts.entry(*n).or_default() += 1;
    }
    if counts.len() > 1 {
        problems.push(format!(
            "fingers have unequal numbers of real impressions (impressions → fingers): {counts:?}"
        ));
    }

    let mut t = Table::new(&["dataset", "value"]);
    t.row(vec!["format".into(), format!("{:?}", dataset.format)]);
    t.row(vec!["root".into(), dataset.root.display().to_string()]);
    t.row(vec!["fingers".into(), dataset.fingers.to_string()]);
    t.row(vec!["images".into(), dataset.samples.len().to_string()]);
    t.row(vec![
        "real impressions per finger".into(),
        format!("{counts:?}"),
    ]);
    t.row(vec!["images per session".into(), format!("{sessions:?}")]);
    t.row(vec![
        "image sizes (w, h) → count".into(),
        format!("{sizes:?}"),
    ]);
    for (v, n) in &variants {
        t.row(vec![format!("  {v}"), n.to_string()]);
    }
    println!("{}", t.render());
    if problems.is_empty() {
        println!("\nno problems found");
        Ok(())
    } else {
        println!("\n{} problem(s):", problems.len());
        for p in problems.iter().take(50) {
            println!("  - {p}");
        }
        bail!("{} problem(s) in {}", problems.len(), path.display())
    }
}
