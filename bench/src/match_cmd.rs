//! `touchstone match`: one encrypted 1:N deployment, on seeded synthetic templates or on a
//! trained model's test-split templates (`--model DIR --data DIR`), with a stage table and
//! an exactness check of every decrypted score against the plaintext integer score.

use crate::format::{accuracy_table, bytes, duration, median, Table};
use anyhow::{bail, Context, Result};
use clap::Args;
use protocol::transport::Fault;
use protocol::{
    build_matcher, ColumnarEngine, MatchOutcome, ParamSpec, Reference, SchemeConfig, SchemeKind,
    SyntheticSpec, Tally, Workload,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use train::evaluation::{self, Accuracy, ScoreMatrix, TestSet};

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// plain, quantized, blindtouch or columnar.
    #[arg(long, default_value = "columnar")]
    scheme: SchemeKind,
    /// Enrolled users (synthetic templates; default 5000).
    #[arg(long, conflicts_with = "model")]
    users: Option<usize>,
    /// Cluster servers.
    #[arg(long, default_value_t = 3)]
    clusters: usize,
    /// Probes, alternating genuine and impostor (synthetic templates; default 4).
    #[arg(long, conflicts_with = "model")]
    probes: Option<usize>,
    /// Seed of the synthetic templates and head, or of the model run's augmented probes
    /// and impostor pairs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parameter preset (see `touchstone params`), or `auto`: the cheapest secure preset
    /// whose t holds this model's scores and whose noise budget keeps a 10-bit margin in
    /// a trial match; default: the scheme's own.
    #[arg(long)]
    params: Option<String>,
    /// blindtouch: encrypt weights and mask as Blind-Touch did (ciphertext products).
    #[arg(long)]
    encrypted_weights: bool,
    /// columnar: evaluation engine — fhe (fhe.rs per operation), cpu or cuda (fused kernel).
    #[arg(long, default_value = "cpu")]
    engine: ColumnarEngine,
    /// columnar on cpu/cuda: `extended` has the client extend its query to the fused
    /// engine's basis (about 6× the upload, no extension on the servers).
    #[arg(long, default_value = "ciphertexts")]
    query_form: protocol::messages::QueryForm,
    /// Template length (synthetic templates; default 16).
    #[arg(long, conflicts_with = "model")]
    features: Option<usize>,
    /// Standard deviation of the noise on genuine probes (synthetic templates; finite,
    /// ≥ 0; default 0.2).
    #[arg(long, conflicts_with = "model", allow_negative_numbers = true)]
    noise: Option<f32>,
    /// Template quantization bits (2..=16).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=16))]
    bits: u32,
    /// Weight quantization bits (2..=16; with --model the weights use --bits).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=16), conflicts_with = "model")]
    weight_bits: u32,
    /// A model folder: enrol its test split's templates and identify every probe of the
    /// evaluation protocol (needs --data); accuracy then comes from this scheme's scores.
    #[arg(long, requires = "data")]
    model: Option<PathBuf>,
    /// The dataset the model is evaluated on (SOCOFing, PolyU or synthetic layout).
    #[arg(long, requires = "model")]
    data: Option<PathBuf>,
    /// Split seed (the model's training split, to evaluate on its test part).
    #[arg(long, default_value_t = 42)]
    split_seed: u64,
    /// Fault injection to check the exactness gate: cluster 0 shifts its first result by
    /// +1 (a homomorphic plaintext addition), so the run must fail.
    #[arg(long, hide = true)]
    inject_fault: bool,
}

pub fn run(args: &MatchArgs) -> Result<()> {
    let test = match (&args.model, &args.data) {
        (Some(model), Some(data)) => Some(
            TestSet::load(model, data, args.split_seed, args.seed, None)
                .with_context(|| format!("evaluating {} on {}", model.display(), data.display()))?,
        ),
        _ => None,
    };
    let workload = match &test {
        Some(test) => test.workload(args.bits)?,
        None => Workload::synthetic(&SyntheticSpec {
            users: args.users.unwrap_or(5000),
            probes: args.probes.unwrap_or(4),
            features: args.features.unwrap_or(16),
            noise: args.noise.unwrap_or(0.2),
            seed: args.seed,
            bits: args.bits,
            weight_bits: args.weight_bits,
        })?,
    };
    if args.query_form == protocol::messages::QueryForm::Extended
        && (args.scheme != SchemeKind::Columnar || args.engine == ColumnarEngine::Fhe)
    {
        bail!("--query-form extended needs --scheme columnar on a fused engine (--engine cpu or cuda)");
    }
    let chosen = match args.params.as_deref() {
        Some("auto") => {
            let layout = protocol::choose::layout_of(args.scheme, args.encrypted_weights)
                .context("--params auto applies to the encrypted schemes (blindtouch, columnar)")?;
            let choice = protocol::choose::choose(layout, &workload.quantized)
                .context("choosing the parameter set (--params auto)")?;
            println!("params auto: the cheapest set that holds this model");
            for line in protocol::choose::describe(&choice.candidates) {
                println!("  {line}");
            }
            Some(choice.spec)
        }
        Some(name) => Some(ParamSpec::preset(name)?),
        None => None,
    };
    let config = SchemeConfig {
        kind: args.scheme,
        params: chosen,
        encrypted_weights: args.encrypted_weights,
        clusters: args.clusters,
        measure_noise: true,
        engine: args.engine,
        fault: args.inject_fault.then_some(Fault::ShiftFirstResult),
        query_form: args.query_form,
    };
    let spec = config.param_spec()?;
    let params = spec.as_ref().map(|s| s.build()).transpose()?;

    println!(
        "touchstone match · scheme {}{}{} · {} users · {} clusters · {} probes · {} templates{}",
        args.scheme,
        if args.scheme == SchemeKind::Columnar {
            format!(" (engine {})", args.engine)
        } else {
            String::new()
        },
        if args.encrypted_weights {
            " (encrypted weights)"
        } else {
            ""
        },
        workload.users(),
        args.clusters,
        workload.probes.len(),
        workload.source.label(),
        match &workload.source {
            protocol::Source::Synthetic { seed } => format!(" (seed {seed})"),
            protocol::Source::Model { description } => format!(": {description}"),
        }
    );
    if let Some(p) = &params {
        println!(
            "params {} · N {} · log2 Q {:.1} · t {} ({:.1} bits) · 128-bit bound {} · {}",
            p.name(),
            p.degree(),
            p.log2_q(),
            p.plaintext(),
            (p.plaintext() as f64).log2(),
            p.security_bound().map_or("none".into(), |b| b.to_string()),
            if p.insecure() {
                "INSECURE (allowed)"
            } else {
                "secure"
            }
        );
    }

    let mut matcher = build_matcher(&config, &workload.model, &workload.quantized)
        .context("building the scheme")?;
    let enrolment = matcher
        .enrol(&workload.gallery)
        .context("enrolling the gallery")?;
    let reference = Reference::of(&workload);
    let mut tally = Tally::default();
    let mut outcomes = Vec::with_capacity(workload.probes.len());
    let start = Instant::now();
    for (i, probe) in workload.probes.iter().enumerate() {
        let outcome = matcher
            .identify(&probe.template)
            .with_context(|| format!("probe {i}"))?;
        if args.scheme != SchemeKind::Plain {
            tally.check(&reference, &probe.template, &outcome);
        }
        outcomes.push(outcome);
    }
    let identify_all = start.elapsed();

    if let Some(why) = &enrolment.engine_fallback {
        println!("note: {why}");
    }
    print_setup(&enrolment);
    print_stages(&outcomes, args.clusters);
    print_traffic(&outcomes[0]);
    let budgets: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o.noise_budget_bits)
        .collect();
    if !budgets.is_empty() {
        let min = budgets.iter().copied().fold(f64::INFINITY, f64::min);
        println!("\nnoise budget left (min over probes and result ciphertexts): {min:.1} bits");
    }
    // Exactness first: a run whose decrypted scores differ prints no accuracy from them.
    if tally.probes > 0 {
        println!(
            "exact: {} — {} of {} {} scores equal the plaintext integer scores; \
             decisions and rankings equal for {} of {} probes",
            if tally.is_exact() { "YES" } else { "NO" },
            tally.scores_checked - tally.scores_differing,
            tally.scores_checked,
            if args.scheme.encrypted() {
                "decrypted"
            } else {
                "returned"
            },
            tally.probes - tally.decisions_differing,
            tally.probes
        );
        tally.require_exact(args.scheme.name())?;
    }
    match &test {
        Some(test) => {
            let matrix = ScoreMatrix::of(&outcomes);
            let accuracy = Accuracy::of(test, &matrix, evaluation::threshold(&workload, &matrix));
            let kind = match args.scheme {
                SchemeKind::Plain => "float",
                SchemeKind::Quantized => "integer",
                _ => "decrypted",
            };
            println!(
                "\naccuracy from this scheme's own {kind} scores ({} pairs, {} mated 1:N searches; {} queries in {}):\n{}",
                test.pairs.len(),
                test.images,
                outcomes.len(),
                duration(identify_all),
                accuracy_table(&[(args.scheme.to_string(), &accuracy)]).render()
            );
        }
        None => print_synthetic_accuracy(&workload, &outcomes),
    }
    Ok(())
}

/// Synthetic probes know their identity: genuine ones should rank it first and be
/// accepted, impostors should be rejected by everyone.
fn print_synthetic_accuracy(workload: &Workload, outcomes: &[MatchOutcome]) {
    let (mut genuine_hits, mut genuine, mut impostor_rejects, mut impostors) = (0, 0, 0, 0);
    for (probe, outcome) in workload.probes.iter().zip(outcomes) {
        match probe.identity {
            Some(id) => {
                genuine += 1;
                genuine_hits += usize::from(
                    outcome.decision.best() == Some(id) && outcome.decision.accepted.contains(&id),
                );
            }
            None => {
                impostors += 1;
                impostor_rejects += usize::from(outcome.decision.accepted.is_empty());
            }
        }
    }
    println!(
        "accuracy: genuine probes matched and accepted {genuine_hits}/{genuine}, impostors rejected {impostor_rejects}/{impostors}"
    );
}

fn print_setup(e: &protocol::EnrolmentReport) {
    let mut t = Table::new(&["setup", "value"]);
    t.row(vec![
        "keygen (secret + evaluation keys)".into(),
        duration(e.keygen),
    ]);
    t.row(vec![
        "setup distribute (servers)".into(),
        duration(e.setup_distribute),
    ]);
    t.row(vec![
        "evaluation material to servers".into(),
        bytes(e.setup.total),
    ]);
    t.row(vec![
        "  relinearization key".into(),
        bytes(e.setup.relin_key),
    ]);
    t.row(vec!["  rotation keys".into(), bytes(e.setup.rotation_keys)]);
    t.row(vec![
        "  encrypted weights + mask".into(),
        bytes(e.setup.encrypted_weights),
    ]);
    t.row(vec![
        "enrolment encrypt (client)".into(),
        duration(e.encrypt),
    ]);
    t.row(vec![
        "enrolment distribute (servers)".into(),
        duration(e.distribute),
    ]);
    t.row(vec!["enrolment message".into(), bytes(e.enrolment_bytes)]);
    t.row(vec![
        "gallery ciphertexts stored".into(),
        e.stored_ciphertexts.to_string(),
    ]);
    t.row(vec![
        "ciphertexts per user".into(),
        format!("{:.5}", e.ciphertexts_per_user()),
    ]);
    t.row(vec!["gallery bytes stored".into(), bytes(e.stored_bytes)]);
    t.row(vec![
        "ciphertexts per cluster".into(),
        format!("{:?}", e.per_cluster),
    ]);
    println!("\n{}", t.render());
}

fn print_stages(outcomes: &[MatchOutcome], clusters: usize) {
    let column = |f: &dyn Fn(&MatchOutcome) -> Duration| -> (String, String) {
        let all: Vec<Duration> = outcomes.iter().map(f).collect();
        let min = all.iter().min().copied().unwrap_or_default();
        let max = all.iter().max().copied().unwrap_or_default();
        (
            duration(median(all)),
            format!("{} – {}", duration(min), duration(max)),
        )
    };
    let mut t = Table::new(&["stage", "median", "range"]);
    let mut add = |name: String, f: &dyn Fn(&MatchOutcome) -> Duration| {
        let (m, r) = column(f);
        t.row(vec![name, m, r]);
    };
    add("client encrypt".into(), &|o| o.timings.encrypt);
    add("serialize query (no transfer)".into(), &|o| {
        o.timings.serialize_query
    });
    let reported = outcomes[0].timings.cluster_eval.len();
    for c in 0..reported.min(clusters.max(1)) {
        add(format!("  cluster {c} eval"), &|o| {
            o.timings.cluster_eval[c]
        });
    }
    add("clusters (wall, parallel)".into(), &|o| {
        o.timings.clusters_wall
    });
    add("gather".into(), &|o| o.timings.gather);
    add("compress".into(), &|o| o.timings.compress);
    add("serialize results (no transfer)".into(), &|o| {
        o.timings.serialize_results
    });
    add("decrypt".into(), &|o| o.timings.decrypt);
    add("decide".into(), &|o| o.timings.decide);
    add("total".into(), &|o| o.timings.total());
    println!("\n{}", t.render());
}

fn print_traffic(o: &MatchOutcome) {
    let mut t = Table::new(&["bytes per query", "value"]);
    t.row(vec![
        "upload (client → main)".into(),
        bytes(o.traffic.upload),
    ]);
    t.row(vec![
        "fan-out (main → clusters)".into(),
        bytes(o.traffic.fanout),
    ]);
    t.row(vec![
        "gather (clusters → main)".into(),
        bytes(o.traffic.gather),
    ]);
    t.row(vec![
        "download (main → client)".into(),
        bytes(o.traffic.download),
    ]);
    t.row(vec![
        "result ciphertexts".into(),
        o.traffic.result_ciphertexts.to_string(),
    ]);
    println!("\n{}", t.render());
}
