//! `touchstone match`: one encrypted 1:N deployment on seeded synthetic templates, with
//! a stage table and an exactness check against the plaintext integer scores.

use crate::format::{bytes, duration, median, Table};
use anyhow::{bail, Context, Result};
use clap::Args;
use protocol::synthetic;
use protocol::{
    build_matcher, Calibration, ColumnarEngine, MatchOutcome, ParamSpec, QuantizedModel, Quantizer,
    SchemeConfig, SchemeKind,
};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// plain, quantized, blindtouch or columnar.
    #[arg(long, default_value = "columnar")]
    scheme: SchemeKind,
    /// Enrolled users.
    #[arg(long, default_value_t = 5000)]
    users: usize,
    /// Cluster servers.
    #[arg(long, default_value_t = 3)]
    clusters: usize,
    /// Probes (alternating genuine and impostor).
    #[arg(long, default_value_t = 4)]
    probes: usize,
    /// Seed of the synthetic templates and model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parameter preset (see `touchstone params`); default: the scheme's own.
    #[arg(long)]
    params: Option<String>,
    /// blindtouch: encrypt weights and mask as Blind-Touch did (ciphertext products).
    #[arg(long)]
    encrypted_weights: bool,
    /// columnar: evaluation engine — fhe (fhe.rs per operation), cpu or cuda (fused kernel).
    #[arg(long, default_value = "cpu")]
    engine: ColumnarEngine,
    /// Template length.
    #[arg(long, default_value_t = 16)]
    features: usize,
    /// Standard deviation of the noise on genuine probes.
    #[arg(long, default_value_t = 0.2)]
    noise: f32,
    /// Template quantization bits.
    #[arg(long, default_value_t = 8)]
    bits: u32,
    /// Weight quantization bits.
    #[arg(long, default_value_t = 8)]
    weight_bits: u32,
}

pub fn run(args: &MatchArgs) -> Result<()> {
    if args.users == 0 || args.probes == 0 {
        bail!("--users and --probes must be at least 1");
    }
    let set = synthetic::generate(
        args.users,
        args.probes,
        args.features,
        args.noise,
        args.seed,
    );
    let template = Quantizer::calibrate(
        &set.calibration_samples(),
        args.bits,
        Calibration::Quantile(0.999),
    )?;
    let model = QuantizedModel::new(&set.model, template, args.weight_bits)?;
    let config = SchemeConfig {
        kind: args.scheme,
        params: args.params.as_deref().map(ParamSpec::preset).transpose()?,
        encrypted_weights: args.encrypted_weights,
        clusters: args.clusters,
        measure_noise: true,
        engine: args.engine,
    };
    let spec = config.param_spec()?;
    let params = spec.as_ref().map(|s| s.build()).transpose()?;

    println!(
        "touchstone match · scheme {}{}{} · {} users · {} clusters · {} probes · seed {}",
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
        args.users,
        args.clusters,
        args.probes,
        args.seed
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

    let mut matcher = build_matcher(&config, &set.model, &model).context("building the scheme")?;
    let enrolment = matcher
        .enrol(&set.gallery)
        .context("enrolling the gallery")?;
    let mut outcomes = Vec::with_capacity(set.probes.len());
    for (i, probe) in set.probes.iter().enumerate() {
        outcomes.push(
            matcher
                .identify(&probe.template)
                .with_context(|| format!("probe {i}"))?,
        );
    }

    // Exactness and accuracy against the plaintext references.
    let gallery_q: Vec<Vec<i64>> = set.gallery.iter().map(|t| model.quantize(t)).collect();
    let (mut exact, mut compared, mut ranking_equal) = (0usize, 0usize, 0usize);
    let (mut genuine_hits, mut genuine, mut impostor_rejects, mut impostors) = (0, 0, 0, 0);
    for (probe, outcome) in set.probes.iter().zip(&outcomes) {
        if let Some(got) = outcome.scores.integers() {
            let q = model.quantize(&probe.template);
            let expected: Vec<i64> = gallery_q.iter().map(|r| model.score(&q, r)).collect();
            exact += got.iter().zip(&expected).filter(|(a, b)| a == b).count();
            compared += expected.len();
            let reference = protocol::Decision::from_integers(&expected, model.threshold_score);
            ranking_equal += usize::from(reference == outcome.decision);
        }
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
    println!(
        "accuracy: genuine probes matched and accepted {genuine_hits}/{genuine}, impostors rejected {impostor_rejects}/{impostors}"
    );
    if compared > 0 {
        let all = exact == compared && ranking_equal == outcomes.len();
        println!(
            "exact: {} — {exact} of {compared} decrypted scores equal the plaintext integer scores; \
             decisions and rankings equal for {ranking_equal} of {} probes",
            if all { "YES" } else { "NO" },
            outcomes.len()
        );
        if !all {
            bail!("encrypted scores differ from the plaintext integer scores");
        }
    }
    Ok(())
}

fn print_setup(e: &protocol::EnrolmentReport) {
    let mut t = Table::new(&["setup", "value"]);
    t.row(vec![
        "keygen (secret + evaluation keys)".into(),
        duration(e.keygen),
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
    add("upload".into(), &|o| o.timings.upload);
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
    add("download".into(), &|o| o.timings.download);
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
