//! Encrypted scores must equal the plaintext integer scores bit for bit, for every user
//! and probe, across gallery sizes around the 512-user ciphertext boundary and cluster
//! counts larger than the work — for heads of both signs, zero weights, the extreme codes
//! ±(2^(b−1)−1) and the committed model's real head, on every layout and engine.

use protocol::messages::Layout;
use protocol::roles::Client;
use protocol::synthetic::{self, Probe};
use protocol::*;
use std::sync::Arc;

const USERS: [usize; 5] = [1, 511, 512, 513, 5000];
const CLUSTERS: [usize; 3] = [1, 3, 16];

/// The largest |S| the weights can reach on 8-bit codes: every feature of the dominant
/// sign at the widest difference (255), every other at none.
fn reachable_bound(weights: &[i64]) -> u64 {
    let positive: u64 = weights.iter().filter(|&&w| w > 0).map(|&w| w as u64).sum();
    let negative: u64 = weights
        .iter()
        .filter(|&&w| w < 0)
        .map(|w| w.unsigned_abs())
        .sum();
    positive.max(negative) * 255 * 255
}

/// A workload whose first user and last probe sit at opposite ends of the code range on
/// the features of the head's dominant sign (and agree elsewhere), so the largest score
/// these weights can produce is exercised.
fn dataset(users: usize, seed: u64, head: &MatchModel) -> Workload {
    let set = synthetic::generate(users, 2, 16, 0.2, seed);
    let mut gallery = set.gallery;
    gallery[0] = vec![50.0; 16];
    let dominant_positive = {
        let p: f32 = head.weights.iter().filter(|&&w| w > 0.0).sum();
        let n: f32 = -head.weights.iter().filter(|&&w| w < 0.0).sum::<f32>();
        p > n
    };
    let extreme: Vec<f32> = head
        .weights
        .iter()
        .map(|&w| {
            if (w > 0.0) == dominant_positive && w != 0.0 {
                -50.0
            } else {
                50.0
            }
        })
        .collect();
    let mut probes = set.probes;
    probes.push(Probe {
        template: extreme,
        identity: None,
    });
    // Calibrate on typical values so the extreme user and probe clamp to the end codes.
    let q = Quantizer::calibrate(
        &gallery[1.min(gallery.len() - 1)..]
            .iter()
            .flatten()
            .copied()
            .chain([1.0, -1.0])
            .collect::<Vec<_>>(),
        8,
        Calibration::Quantile(0.99),
    )
    .unwrap();
    let quantized = QuantizedModel::new(head, q, 8).unwrap();
    Workload {
        gallery,
        probes,
        model: head.clone(),
        quantized,
        source: Source::Synthetic { seed },
    }
}

/// The heads every layout is checked with.
fn heads() -> Vec<(&'static str, MatchModel)> {
    let synthetic = synthetic::generate(1, 1, 16, 0.2, 11).model;
    let extremes = MatchModel {
        // ±1 become the extreme codes ±127; zeros stay zero; both signs.
        weights: vec![
            1.0, -1.0, 0.0, 0.5, -0.5, 0.0, 1.0, -1.0, 0.25, -0.25, 0.0, 1.0, -1.0, 0.75, -0.75,
            0.0,
        ],
        bias: 0.5,
        threshold: 0.5,
    };
    let all_negative = MatchModel {
        weights: vec![-1.0; 16],
        bias: 1.0,
        threshold: 0.5,
    };
    vec![
        ("synthetic (mixed signs)", synthetic),
        ("extremes and zeros", extremes),
        ("all negative (reaches the t bound)", all_negative),
        ("committed model", committed_head()),
        ("committed model socofing", committed_head_of("socofing")),
    ]
}

/// FC-1 of models/socofing-small (9 positive, 7 negative weights).
fn committed_head() -> MatchModel {
    let head = committed_head_of("socofing-small");
    let weights = &head.weights;
    assert!(weights.iter().any(|&w| w > 0.0) && weights.iter().any(|&w| w < 0.0));
    head
}

/// FC-1, bias and threshold of the committed model folder `models/<name>`.
fn committed_head_of(name: &str) -> MatchModel {
    let path = format!("{}/../models/{name}/head.json", env!("CARGO_MANIFEST_DIR"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let weights: Vec<f32> = json["head"]["fc1_weight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(weights.len(), 16);
    MatchModel {
        weights,
        bias: json["head"]["fc1_bias"].as_f64().unwrap() as f32,
        threshold: json["threshold"].as_f64().unwrap() as f32,
    }
}

/// Identifies every probe and asserts that the decrypted scores, decisions and ranking
/// equal the plaintext integer ones with noise budget left; true when some score reached
/// the largest magnitude the weights allow.
fn check_probes(matcher: &dyn Matcher, workload: &Workload, what: &str) -> bool {
    let reference = Reference::of(workload);
    let mut tally = Tally::default();
    let mut extreme_seen = false;
    let bound = reachable_bound(&workload.quantized.weights);
    for probe in &workload.probes {
        let outcome = matcher.identify(&probe.template).unwrap();
        tally.check(&reference, &probe.template, &outcome);
        let budget = outcome.noise_budget_bits.expect("noise measured");
        assert!(budget > 0.0, "{what}: noise budget {budget}");
        extreme_seen |= reference
            .scores(&probe.template)
            .iter()
            .any(|s| s.unsigned_abs() == bound);
    }
    tally.require_exact(what).unwrap();
    assert_eq!(
        tally.scores_checked,
        (workload.users() * workload.probes.len()) as u64
    );
    extreme_seen
}

/// Runs the whole matrix for one layout, with one client (keys) for all deployments.
fn check_layout(layout: Layout, params: &str) {
    let head = synthetic::generate(1, 1, 16, 0.2, 11).model;
    let model = dataset(USERS[USERS.len() - 1], 11, &head).quantized;
    let client = Arc::new(
        Client::new(
            ParamSpec::preset(params).unwrap().build().unwrap(),
            layout,
            model.clone(),
        )
        .unwrap(),
    );
    let mut extreme_seen = false;
    for clusters in CLUSTERS {
        let mut matcher = EncryptedMatcher::new(client.clone(), clusters, true).unwrap();
        for users in USERS {
            let mut set = dataset(users, 100 + users as u64, &head);
            set.quantized = model.clone();
            let report = matcher.enrol(&set.gallery).unwrap();
            assert_eq!(report.users, users);
            assert_eq!(report.per_cluster.len(), clusters);
            extreme_seen |= check_probes(
                &matcher,
                &set,
                &format!("{layout:?} users={users} clusters={clusters}"),
            );
        }
    }
    assert!(extreme_seen, "the extreme pair must reach the score bound");
}

#[test]
fn blindtouch_scores_are_exact_for_every_size_and_cluster_count() {
    check_layout(
        Layout::BlindTouch {
            encrypted_weights: false,
        },
        "bt-8192",
    );
}

#[test]
fn columnar_scores_are_exact_for_every_size_and_cluster_count() {
    check_layout(Layout::Columnar, "col-8192");
}

/// Every head on every scheme configuration (513 users on 3 clusters: two blindtouch
/// ciphertexts split over clusters, one columnar group split by features), including the
/// largest score each head can reach.
#[test]
fn every_head_is_exact_on_every_layout_and_engine() {
    let configs: Vec<(&str, SchemeConfig)> = vec![
        ("blindtouch", SchemeConfig::new(SchemeKind::BlindTouch)),
        ("blindtouch encrypted weights", {
            let mut c = SchemeConfig::new(SchemeKind::BlindTouch);
            c.encrypted_weights = true;
            c
        }),
        ("columnar fhe", {
            let mut c = SchemeConfig::new(SchemeKind::Columnar);
            c.engine = ColumnarEngine::Fhe;
            c
        }),
        ("columnar fused cpu", {
            let mut c = SchemeConfig::new(SchemeKind::Columnar);
            c.engine = ColumnarEngine::Cpu;
            c
        }),
    ];
    // col-4096 on both columnar engines: the smaller ring must hold every head too.
    let configs: Vec<(&str, SchemeConfig)> = configs
        .into_iter()
        .flat_map(|(name, c)| {
            let mut small = c.clone();
            small.params = Some(ParamSpec::preset("col-4096").unwrap());
            let columnar = c.kind == SchemeKind::Columnar;
            let label = if name.ends_with("fhe") {
                "columnar fhe col-4096"
            } else {
                "columnar fused cpu col-4096"
            };
            std::iter::once((name, c)).chain(columnar.then_some((label, small)))
        })
        .collect();
    for (head_name, head) in heads() {
        let set = dataset(513, 7, &head);
        let bound = reachable_bound(&set.quantized.weights);
        if head_name.starts_with("all negative") {
            assert_eq!(bound, set.quantized.score_bound(), "the t bound itself");
        }
        if head_name.starts_with("extremes") {
            assert!(set.quantized.weights.contains(&127) && set.quantized.weights.contains(&-127));
            assert!(set.quantized.weights.contains(&0));
        }
        for (config_name, mut config) in configs.clone() {
            config.clusters = 3;
            let mut matcher = build_matcher(&config, &set.model, &set.quantized).unwrap();
            matcher.enrol(&set.gallery).unwrap();
            let what = format!("{head_name} on {config_name}");
            assert!(
                check_probes(matcher.as_ref(), &set, &what),
                "{what}: the extreme pair must reach the reachable bound"
            );
        }
    }
}

#[test]
fn blindtouch_with_encrypted_weights_is_exact() {
    let set = dataset(513 + 512 * 16, 5, &committed_head()); // 18 ciphertexts: two results
    let mut config = SchemeConfig::new(SchemeKind::BlindTouch);
    config.encrypted_weights = true;
    config.clusters = 3;
    let mut matcher = build_matcher(&config, &set.model, &set.quantized).unwrap();
    let report = matcher.enrol(&set.gallery).unwrap();
    assert!(report.setup.encrypted_weights > 0);
    assert_eq!(report.stored_ciphertexts, 18);
    let reference = Reference::of(&set);
    for probe in &set.probes {
        let outcome = matcher.identify(&probe.template).unwrap();
        assert_eq!(
            outcome.scores.integers().unwrap(),
            reference.scores(&probe.template).as_slice()
        );
        assert_eq!(
            outcome.traffic.result_ciphertexts, 2,
            "16 + 2 evaluated ciphertexts"
        );
    }
}

#[test]
fn compression_packs_sixteen_evaluated_ciphertexts_per_result() {
    let set = dataset(5000, 9, &committed_head());
    let mut config = SchemeConfig::new(SchemeKind::BlindTouch);
    config.clusters = 3;
    config.measure_noise = false;
    let mut matcher = build_matcher(&config, &set.model, &set.quantized).unwrap();
    let report = matcher.enrol(&set.gallery).unwrap();
    assert_eq!(report.stored_ciphertexts, 10);
    assert_eq!(report.per_cluster, vec![3, 3, 4]);
    let outcome = matcher.identify(&set.probes[0].template).unwrap();
    assert_eq!(
        outcome.traffic.result_ciphertexts, 1,
        "10 evaluated ciphertexts fit one result"
    );
    assert_eq!(outcome.timings.cluster_eval.len(), 3);
    assert!(outcome.noise_budget_bits.is_none());
}

#[test]
fn plaintext_schemes_agree_with_their_definitions() {
    let set = Workload::synthetic(&SyntheticSpec::new(300, 4, 3)).unwrap();
    let model = set.quantized.clone();
    let mut plain =
        build_matcher(&SchemeConfig::new(SchemeKind::Plain), &set.model, &model).unwrap();
    let mut quantized = build_matcher(
        &SchemeConfig::new(SchemeKind::Quantized),
        &set.model,
        &model,
    )
    .unwrap();
    plain.enrol(&set.gallery).unwrap();
    quantized.enrol(&set.gallery).unwrap();
    for probe in &set.probes[..2] {
        let p = plain.identify(&probe.template).unwrap();
        let floats: Vec<f64> = set
            .gallery
            .iter()
            .map(|r| set.model.logit(&probe.template, r))
            .collect();
        assert_eq!(p.scores, Scores::Float(floats));
        let q = quantized.identify(&probe.template).unwrap();
        let ints = Reference::of(&set).scores(&probe.template);
        assert_eq!(q.scores, Scores::Integer(ints));
        if let Some(id) = probe.identity {
            assert_eq!(
                p.decision.best(),
                Some(id),
                "genuine probe ranks its identity first"
            );
            assert_eq!(
                q.decision.best(),
                Some(id),
                "quantization keeps the genuine match first"
            );
        }
    }
}

/// The fused columnar engine (kernels crate) must decrypt to the plaintext integer scores
/// around the group boundary of each columnar preset (N users per group) and for a
/// gallery of 100,000 users (13 or 25 groups) split across clusters; None when the
/// engine fell back (no device).
fn check_fused(engine: ColumnarEngine) -> Option<()> {
    check_fused_on(engine, "col-8192")?;
    check_fused_on(engine, "col-4096")
}

fn check_fused_on(engine: ColumnarEngine, preset: &str) -> Option<()> {
    let head = committed_head();
    let params = ParamSpec::preset(preset).unwrap().build().unwrap();
    let n = params.degree();
    let model = dataset(n, 21, &head).quantized;
    let client = Arc::new(Client::new(params, Layout::Columnar, model.clone()).unwrap());
    let mut extreme_seen = false;
    for (users, clusters) in [
        (1, 1),
        (n - 1, 1),
        (n, 3),
        (n + 1, 2),
        (2 * n + 1, 2),
        (100_000, 3),
    ] {
        let mut matcher =
            EncryptedMatcher::with_engine(client.clone(), clusters, true, engine).unwrap();
        if matcher.engine().fallback.is_some() {
            return None;
        }
        let mut set = dataset(users, 300 + users as u64, &head);
        set.quantized = model.clone();
        let report = matcher.enrol(&set.gallery).unwrap();
        assert_eq!(report.engine, engine.name());
        extreme_seen |= check_probes(&matcher, &set, &format!("{engine} {preset} users={users}"));
    }
    assert!(extreme_seen, "the extreme pair must reach the score bound");
    Some(())
}

/// The extended query form (the client extends, the clusters only accumulate and scale)
/// decrypts to the plaintext integers too — including groups split across clusters, whose
/// feature subsets share the one extension.
#[test]
fn extended_queries_are_exact_including_split_groups() {
    let head = committed_head();
    let params = ParamSpec::preset("col-4096").unwrap().build().unwrap();
    let model = dataset(4096, 31, &head).quantized;
    let client = Arc::new(Client::new(params, Layout::Columnar, model.clone()).unwrap());
    let mut extreme_seen = false;
    for (users, clusters) in [(1, 1), (4097, 3), (8193, 2)] {
        let mut matcher =
            EncryptedMatcher::with_engine(client.clone(), clusters, true, ColumnarEngine::Cpu)
                .unwrap();
        matcher.query_form = protocol::messages::QueryForm::Extended;
        let mut set = dataset(users, 400 + users as u64, &head);
        set.quantized = model.clone();
        matcher.enrol(&set.gallery).unwrap();
        extreme_seen |= check_probes(&matcher, &set, &format!("extended users={users}"));
    }
    assert!(extreme_seen, "the extreme pair must reach the score bound");
}

#[test]
fn fused_cpu_columnar_scores_are_exact_across_group_boundaries() {
    assert!(
        check_fused(ColumnarEngine::Cpu).is_some(),
        "the CPU engine never falls back"
    );
}

/// Needs a CUDA GPU: ignored by default, so a machine without one reports it as ignored
/// rather than as a pass. Run on a GPU machine with
/// `cargo test -p protocol --features cuda --test exactness -- --ignored`; there it fails
/// if no device is found.
#[test]
#[ignore = "needs a CUDA GPU (run with --features cuda -- --ignored on a GPU machine)"]
fn fused_cuda_columnar_scores_are_exact_on_a_gpu() {
    assert!(
        check_fused(ColumnarEngine::Cuda).is_some(),
        "no CUDA device: {:?}",
        ColumnarEngine::Cuda.resolve().fallback
    );
}

#[test]
fn a_cuda_request_without_a_gpu_falls_back_to_the_cpu_and_says_so() {
    let engine = ColumnarEngine::Cuda.resolve();
    match &engine.fallback {
        Some(why) => {
            assert_eq!(engine.running(), "cpu");
            assert!(why.contains("CPU backend"), "{why}");
        }
        None => {
            eprintln!("skipped: a CUDA device is present");
            assert_eq!(engine.running(), "cuda");
        }
    }
    assert_eq!(ColumnarEngine::Fhe.resolve().running(), "fhe");
    assert!("gpu".parse::<ColumnarEngine>().is_err());
}
