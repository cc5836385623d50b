//! `touchstone`: the command-line entry point of the harness.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod data_cmd;
mod deploy_cmd;
mod format;
mod gpu_bench_cmd;
mod harness;
mod harness_cmd;
mod load_cmd;
mod match_cmd;
mod params_cmd;
mod train_cmd;

/// touchstone: privacy-preserving biometric matching, reproduced and measured.
#[derive(Parser)]
#[command(name = "touchstone", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment config: expand its sweep, run every point (resumable), write
    /// rows.csv / rows.parquet, summary.md, figures and manifest.json under results/.
    Run(harness_cmd::RunArgs),
    /// Join the shards of a sharded run (`run --shard I/N --run-dir DIR`) into one run
    /// folder, after checking that every point is there exactly once.
    Merge(harness_cmd::MergeArgs),
    /// Write (and with --submit, submit) a Slurm job array that runs a sweep's shards,
    /// and a merge job that runs when all of them succeeded.
    Slurm(harness_cmd::SlurmArgs),
    /// Re-render a run directory's tables and figures from its rows.
    Report(harness_cmd::ReportArgs),
    /// Two runs side by side with ratios.
    Compare(harness_cmd::CompareArgs),
    /// Check a run against a committed baseline; non-zero exit on a regression.
    Regress(harness_cmd::RegressArgs),
    /// Run encrypted 1:N matching on seeded synthetic templates and print stage timings,
    /// sizes, the noise budget left and whether every decrypted score is exact.
    Match(match_cmd::MatchArgs),
    /// Match one query against a large gallery (up to millions of users) on the fused
    /// columnar engine — CUDA, or the CPU without a GPU — and report end-to-end time, NTT
    /// limbs/s and achieved gallery bandwidth, as JSON.
    GpuBench(gpu_bench_cmd::GpuBenchArgs),
    /// List the built-in BFV parameter sets; with --scheme, choose one for a model.
    Params(params_cmd::ParamsArgs),
    /// Write a seeded synthetic fingerprint set (SOCOFing or PolyU layout) with a
    /// manifest, a contact sheet and a realism report.
    Synth(data_cmd::SynthArgs),
    /// Train the fingerprint feature model from a YAML config (CPU), then evaluate it.
    Train(train_cmd::TrainArgs),
    /// Evaluate a model folder on a dataset's test protocol (float and quantized scores).
    Eval(train_cmd::EvalArgs),
    /// Run a deployment's servers over gRPC and mutual TLS: `serve ca`, `serve cluster`,
    /// `serve main`.
    Serve {
        #[command(subcommand)]
        command: deploy_cmd::ServeCommand,
    },
    /// A deployment's client: `keygen`, `enrol`, `remove`, `identify`, `status`.
    Client {
        #[command(subcommand)]
        command: deploy_cmd::ClientCommand,
    },
    /// Closed-loop load on a running deployment: queries/s and latency p50/p95/p99 per
    /// concurrency level, every answer checked against the client's plaintext scores.
    Load(load_cmd::LoadArgs),
    /// Inspect fingerprint datasets.
    Data {
        #[command(subcommand)]
        command: data_cmd::DataCommand,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => harness_cmd::run(&args),
        Command::Merge(args) => harness_cmd::merge(&args),
        Command::Slurm(args) => harness_cmd::slurm(&args),
        Command::Report(args) => harness_cmd::report(&args),
        Command::Compare(args) => harness_cmd::compare(&args),
        Command::Regress(args) => harness_cmd::regress(&args),
        Command::Match(args) => match_cmd::run(&args),
        Command::GpuBench(args) => gpu_bench_cmd::run(&args),
        Command::Params(args) => params_cmd::run(&args),
        Command::Synth(args) => data_cmd::synth(&args),
        Command::Train(args) => train_cmd::train(&args),
        Command::Eval(args) => train_cmd::eval(&args),
        Command::Serve { command } => deploy_cmd::serve(&command),
        Command::Client { command } => deploy_cmd::client(&command),
        Command::Data { command } => data_cmd::data(&command),
        Command::Load(args) => load_cmd::run(&args),
    }
}
