//! CLI front of the harness: `run`, `report`, `compare`, `regress`.

use crate::harness::{manifest, merge, regress, report, run, shard::Shard, slurm};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment config (YAML), e.g. configs/quickstart.yaml.
    config: PathBuf,
    /// Continue an interrupted run: the given run directory, or without a value the
    /// newest run of this config. Finished rows are kept, the rest are run.
    #[arg(long, num_args = 0..=1, default_missing_value = "", conflicts_with = "shard")]
    resume: Option<String>,
    /// Run only shard I of N (1-based) of the sweep, into RUN_DIR/shards/I-of-N; a rerun
    /// resumes it. `touchstone merge RUN_DIR` joins the shards.
    #[arg(long, value_name = "I/N", requires = "run_dir")]
    shard: Option<Shard>,
    /// The shared run folder of a sharded run (with --shard).
    #[arg(long, value_name = "RUN_DIR", requires = "shard")]
    run_dir: Option<PathBuf>,
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
pub struct MergeArgs {
    /// The shared run folder the shards ran in (`--run-dir` of `touchstone run --shard`).
    run_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// Experiment config (YAML).
    config: PathBuf,
    /// Number of array tasks (shards).
    #[arg(long)]
    shards: usize,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// Time limit per task, in Slurm's format (e.g. 02:00:00).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task.
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Memory per task, in Slurm's format (e.g. 8G).
    #[arg(long)]
    mem: Option<String>,
    /// Shared run folder (on storage every node sees); default
    /// <outputs.dir>/<name>/<timestamp>-slurm.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// The touchstone binary the tasks run (default: this one).
    #[arg(long)]
    touchstone: Option<PathBuf>,
    /// Submit the array and the merge job with sbatch and print their ids.
    #[arg(long)]
    submit: bool,
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
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    if let Some(kind) = crate::harness::study::kind(&text) {
        if args.shard.is_some() || args.resume.is_some() || args.max_rows.is_some() {
            anyhow::bail!(
                "{} is {kind}: it runs whole (no --shard, --resume or --max-rows; a preprocessing comparison's trained models are cached, so a rerun retrains none)",
                args.config.display()
            );
        }
        return crate::harness::study::run(&args.config, &text);
    }
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
        shard: args.shard.zip(args.run_dir.clone()),
    };
    run::run(&args.config, &options)?;
    Ok(())
}

pub fn merge(args: &MergeArgs) -> Result<()> {
    let merged = merge::merge(&args.run_dir)?;
    println!(
        "merged {} shards, {} rows; wrote {}",
        merged.shards,
        merged.rows,
        args.run_dir.join("summary.md").display()
    );
    Ok(())
}

pub fn slurm(args: &SlurmArgs) -> Result<()> {
    let request = slurm::plan(
        &args.config,
        args.run_dir.as_deref(),
        args.touchstone.as_deref(),
        slurm::Resources {
            shards: args.shards,
            partition: args.partition.clone(),
            time: args.time.clone(),
            cpus_per_task: args.cpus_per_task,
            mem: args.mem.clone(),
        },
    )?;
    let scripts = slurm::write_scripts(&request)?;
    println!(
        "wrote {}, {} and {}",
        scripts.array.display(),
        scripts.merge.display(),
        scripts.submit.display()
    );
    if args.submit {
        let ids = slurm::submit(&request, &scripts)?;
        println!(
            "submitted array job {} ({} tasks) and merge job {} (afterok); results in {}",
            ids.array_job,
            request.shards,
            ids.merge_job,
            request.run_dir.display()
        );
    } else {
        println!("submit with: {}", scripts.submit.display());
    }
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
