//! CLI front of the harness: `run`, `report`, `compare`, `regress`.

use crate::harness::{manifest, regress, report, run};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment config (YAML), e.g. configs/quickstart.yaml.
    config: PathBuf,
    /// Continue an interrupted run: the given run directory, or without a value the
    /// newest run of this config. Finished rows are kept, the rest are run.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Stop after this many new rows (what an interrupted run leaves behind).
    #[arg(long)]
    max_rows: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Fault injection to check the exactness gate: cluster 0 shifts its first result by
    /// +1 (a homomorphic plaintext addition), so the run must fail.
    #[arg(long, hide = true)]
    inject_fault: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directory (results/<name>/<timestamp>).
    run: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// First run directory.
    a: PathBuf,
    /// Second run directory.
    b: PathBuf,
}

#[derive(Args, Debug)]
pub struct RegressArgs {
    /// Baseline file (results/baselines/*.yaml).
    #[arg(long)]
    baseline: PathBuf,
    /// Run directory to check.
    run: PathBuf,
    /// Write the baseline from this run instead of checking.
    #[arg(long)]
    write: bool,
    /// With --write: reference scheme for timing ratios.
    #[arg(long, default_value = "columnar")]
    reference: protocol::SchemeKind,
    /// With --write: reference columnar engine.
    #[arg(long, default_value = "fhe")]
    reference_engine: protocol::ColumnarEngine,
    /// With --write: allowed absolute accuracy drop.
    #[arg(long, default_value_t = 0.02)]
    tolerance_accuracy: f64,
    /// With --write: allowed relative growth of a timing ratio.
    #[arg(long, default_value_t = 0.5)]
    tolerance_ratio: f64,
}

pub fn run(args: &RunArgs) -> Result<()> {
    let options = run::RunOptions {
        resume: args
            .resume
            .as_ref()
            .map(|d| (!d.is_empty()).then(|| PathBuf::from(d))),
        max_rows: args.max_rows,
        progress: !args.quiet,
        fault: args
            .inject_fault
            .then_some(protocol::transport::Fault::ShiftFirstResult),
    };
    run::run(&args.config, &options)?;
    Ok(())
}

pub fn report(args: &ReportArgs) -> Result<()> {
    report::render(&args.run)?;
    println!("wrote {}", args.run.join("summary.md").display());
    Ok(())
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    println!("{}", regress::compare(&args.a, &args.b)?);
    Ok(())
}

pub fn regress(args: &RegressArgs) -> Result<()> {
    if args.write {
        let man = manifest::Manifest::read(&args.run)?
            .with_context(|| format!("{} has no manifest.json", args.run.display()))?;
        regress::write_baseline(
            &args.run,
            &args.baseline,
            &man.config_path,
            regress::Reference {
                scheme: args.reference,
                engine: (args.reference == protocol::SchemeKind::Columnar)
                    .then_some(args.reference_engine),
            },
            regress::Tolerance {
                accuracy: args.tolerance_accuracy,
                ratio: args.tolerance_ratio,
            },
        )?;
        println!("wrote {}", args.baseline.display());
        return Ok(());
    }
    println!("{}", regress::regress(&args.baseline, &args.run)?);
    Ok(())
}
