//! `touchstone gpu-bench`: one encrypted 1:N match against a large synthetic gallery on a
//! fused `columnar` engine (CUDA, or the CPU where no GPU is found), with NTT throughput
//! and the gallery bandwidth achieved against the measured copy bandwidth; writes JSON.

use crate::format::{duration, median};
use anyhow::{bail, Context, Result};
use clap::Args;
use kernels::{FusedPlan, RnsBasis};
use protocol::messages::Layout;
use protocol::roles::Client;
use protocol::{
    ColumnarEngine, EncryptedMatcher, Matcher, ParamSpec, Reference, SyntheticSpec, Tally, Workload,
};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct GpuBenchArgs {
    /// Enrolled users (synthetic templates).
    #[arg(long, default_value_t = 1_000_000)]
    users: usize,
    /// Engine: cuda (falls back to cpu without a GPU, and says so) or cpu.
    #[arg(long, default_value = "cuda")]
    engine: ColumnarEngine,
    /// Probes to time (median reported).
    #[arg(long, default_value_t = 5)]
    probes: usize,
    /// Parameter preset.
    #[arg(long, default_value = "col-8192")]
    params: String,
    /// Where to write the JSON report.
    #[arg(long, default_value = "gpu-bench.json")]
    out: PathBuf,
    /// Seed of the synthetic templates.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Serialize)]
struct Report {
    device: String,
    engine_requested: String,
    engine_running: String,
    fallback: Option<String>,
    users: usize,
    groups: usize,
    params: String,
    enrol_s: f64,
    match_total_ms_median: f64,
    /// The cluster's own report of its evaluation (query decoding to result encoding).
    cluster_eval_ms_median: f64,
    /// Main server's fan-out until the cluster answered (adds the in-process call).
    clusters_wall_ms_median: f64,
    match_total_ms_all: Vec<f64>,
    exact: bool,
    noise_budget_bits_min: f64,
    extended_gallery_bytes: usize,
    achieved_gallery_bytes_per_s: f64,
    measured_copy_bytes_per_s: f64,
    bandwidth_fraction: f64,
    ntt: Vec<NttRate>,
}

/// Transforms of a batch held in the backend's own memory (device memory on a GPU): no
/// host↔device copy is inside these rates.
#[derive(Serialize)]
struct NttRate {
    n: usize,
    limbs: usize,
    forward_limbs_per_s: f64,
    inverse_limbs_per_s: f64,
}

pub fn run(args: &GpuBenchArgs) -> Result<()> {
    if args.users == 0 || args.probes == 0 {
        bail!("--users and --probes must be at least 1");
    }
    if args.engine == ColumnarEngine::Fhe {
        bail!("gpu-bench measures the fused engines: --engine cuda or cpu");
    }
    let start = Instant::now();
    let workload = Workload::synthetic(&SyntheticSpec::new(args.users, args.probes, args.seed))?;
    let model = workload.quantized.clone();
    let params = ParamSpec::preset(&args.params)?.build()?;
    let par = params.bfv().clone();
    let client = Arc::new(Client::new(params, Layout::Columnar, model.clone())?);
    let mut matcher = EncryptedMatcher::with_engine(client, 1, true, args.engine)?;
    // The bandwidth and NTT figures below come from the very backend the match runs on.
    let resolved = matcher.engine().clone();
    let backend = resolved
        .backend
        .clone()
        .context("the fused engines have a kernel backend")?;
    if let Some(why) = &resolved.fallback {
        println!("note: {why}");
    }
    println!("device: {}", backend.device());
    println!(
        "generated {} users in {}",
        args.users,
        duration(start.elapsed())
    );
    let start = Instant::now();
    let report = matcher.enrol(&workload.gallery).context("enrolling")?;
    let enrol = start.elapsed();
    println!("enrolled (encrypt + extend + store) in {}", duration(enrol));

    let reference = Reference::of(&workload);
    let mut tally = Tally::default();
    let (mut totals, mut evals, mut walls, mut budgets) = (vec![], vec![], vec![], vec![]);
    for probe in &workload.probes {
        let outcome = matcher.identify(&probe.template)?;
        totals.push(outcome.timings.total());
        evals.push(outcome.timings.slowest_cluster());
        walls.push(outcome.timings.clusters_wall);
        budgets.push(outcome.noise_budget_bits.unwrap_or(f64::NAN));
        tally.check(&reference, &probe.template, &outcome);
    }
    let exact = tally.is_exact();

    let plan = FusedPlan::new(par.degree(), par.moduli(), par.plaintext(), &model.weights)?;
    let groups = args.users.div_ceil(par.degree());
    let extended = groups * plan.extended_len() * 8;
    let eval = median(evals.clone());
    let achieved = extended as f64 / eval.as_secs_f64();
    let peak = backend.copy_bandwidth(1 << 30)?;

    let mut ntt = Vec::new();
    for n in [8192usize, 65536] {
        let primes = kernels::arith::ntt_primes(60, n, 4, &[]).context("NTT primes")?;
        let basis = RnsBasis::new(n, &primes)?;
        let limbs = (1 << 24) / n; // 128 MiB of limbs, whole polynomials of 4 limbs
                                   // Each word below its own limb's modulus (limb-major: word i is in limb i / n).
        let data: Vec<u64> = (0..limbs * n)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % primes[(i / n) % 4])
            .collect();
        // Resident: uploaded once, then transformed in place; the first round warms up
        // the tables (and on a GPU the module), the best of the rest is reported.
        let (fwd, inv) = backend.time_resident_ntt(&basis, &data, 4)?;
        ntt.push(NttRate {
            n,
            limbs,
            forward_limbs_per_s: limbs as f64 / fwd.as_secs_f64(),
            inverse_limbs_per_s: limbs as f64 / inv.as_secs_f64(),
        });
    }

    let out = Report {
        device: backend.device(),
        engine_requested: args.engine.name().into(),
        engine_running: report.engine.clone(),
        fallback: resolved.fallback.clone(),
        users: args.users,
        groups,
        params: args.params.clone(),
        enrol_s: enrol.as_secs_f64(),
        match_total_ms_median: median(totals.clone()).as_secs_f64() * 1e3,
        cluster_eval_ms_median: eval.as_secs_f64() * 1e3,
        clusters_wall_ms_median: median(walls).as_secs_f64() * 1e3,
        match_total_ms_all: totals.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
        exact,
        noise_budget_bits_min: budgets.iter().copied().fold(f64::INFINITY, f64::min),
        extended_gallery_bytes: extended,
        achieved_gallery_bytes_per_s: achieved,
        measured_copy_bytes_per_s: peak,
        bandwidth_fraction: achieved / peak,
        ntt,
    };
    let json = serde_json::to_string_pretty(&out)?;
    println!("{json}");
    // No report file from a run whose decrypted scores differ.
    tally.require_exact("gpu-bench")?;
    std::fs::write(&args.out, &json).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
