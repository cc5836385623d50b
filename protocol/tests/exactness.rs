//! Encrypted scores must equal the plaintext integer scores bit for bit, for every user
//! and probe, across gallery sizes around the 512-user ciphertext boundary and cluster
//! counts larger than the work.

use protocol::messages::Layout;
use protocol::roles::Client;
use protocol::synthetic::{self, SyntheticSet};
use protocol::*;
use std::sync::Arc;

const USERS: [usize; 5] = [1, 511, 512, 513, 5000];
const CLUSTERS: [usize; 3] = [1, 3, 16];

/// A synthetic set whose first user and last probe sit at opposite ends of the code
/// range, so the largest possible score (the bound that decides t) is exercised.
fn dataset(users: usize, seed: u64) -> SyntheticSet {
    let mut set = synthetic::generate(users, 2, 16, 0.2, seed);
    set.gallery[0] = vec![50.0; 16];
    set.probes.push(synthetic::Probe {
        template: vec![-50.0; 16],
        identity: None,
    });
    set
}

fn quantized_model(set: &SyntheticSet) -> QuantizedModel {
    // Calibrate on typical values so the extreme user and probe clamp to the end codes.
    let q =
        Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::Quantile(0.99)).unwrap();
    QuantizedModel::new(&set.model, q, 8).unwrap()
}

fn plaintext_scores(model: &QuantizedModel, gallery: &[Vec<f32>], probe: &[f32]) -> Vec<i64> {
    let q = model.quantize(probe);
    gallery
        .iter()
        .map(|r| model.score(&q, &model.quantize(r)))
        .collect()
}

/// Identifies every probe of `set` and asserts that the decrypted scores, decisions and
/// ranking equal the plaintext integer ones with noise budget left; true when some score
/// reached the score bound.
fn check_probes(
    matcher: &EncryptedMatcher,
    model: &QuantizedModel,
    set: &SyntheticSet,
    what: &str,
) -> bool {
    let mut extreme_seen = false;
    for probe in &set.probes {
        let outcome = matcher.identify(&probe.template).unwrap();
        let expected = plaintext_scores(model, &set.gallery, &probe.template);
        let got = outcome.scores.integers().expect("integer scores");
        let mismatches = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(mismatches, 0, "{what}: {mismatches} scores differ");
        let plain_decision = Decision::from_integers(&expected, model.threshold_score);
        assert_eq!(
            outcome.decision, plain_decision,
            "{what}: ranking and decisions"
        );
        let budget = outcome.noise_budget_bits.expect("noise measured");
        assert!(budget > 0.0, "{what}: noise budget {budget}");
        extreme_seen |= expected
            .iter()
            .any(|s| s.unsigned_abs() == model.score_bound());
    }
    extreme_seen
}

/// Runs the whole matrix for one layout, with one client (keys) for all deployments.
fn check_layout(layout: Layout, params: &str) {
    let reference = dataset(USERS[USERS.len() - 1], 11);
    let model = quantized_model(&reference);
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
            let set = dataset(users, 100 + users as u64);
            let report = matcher.enrol(&set.gallery).unwrap();
            assert_eq!(report.users, users);
            assert_eq!(report.per_cluster.len(), clusters);
            assert!(
                report.per_cluster.iter().filter(|&&n| n > 0).count() <= clusters,
                "{:?}",
                report.per_cluster
            );
            extreme_seen |= check_probes(
                &matcher,
                &model,
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

#[test]
fn blindtouch_with_encrypted_weights_is_exact() {
    let set = dataset(513 + 512 * 16, 5); // 18 ciphertexts: two result ciphertexts
    let model = quantized_model(&set);
    let mut config = SchemeConfig::new(SchemeKind::BlindTouch);
    config.encrypted_weights = true;
    config.clusters = 3;
    let mut matcher = build_matcher(&config, &set.model, &model).unwrap();
    let report = matcher.enrol(&set.gallery).unwrap();
    assert!(report.setup.encrypted_weights > 0);
    assert_eq!(report.stored_ciphertexts, 18);
    for probe in &set.probes {
        let outcome = matcher.identify(&probe.template).unwrap();
        let expected = plaintext_scores(&model, &set.gallery, &probe.template);
        assert_eq!(outcome.scores.integers().unwrap(), expected.as_slice());
        assert_eq!(
            outcome.traffic.result_ciphertexts, 2,
            "16 + 2 evaluated ciphertexts"
        );
    }
}

#[test]
fn compression_packs_sixteen_evaluated_ciphertexts_per_result() {
    let set = dataset(5000, 9);
    let model = quantized_model(&set);
    let mut config = SchemeConfig::new(SchemeKind::BlindTouch);
    config.clusters = 3;
    config.measure_noise = false;
    let mut matcher = build_matcher(&config, &set.model, &model).unwrap();
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
    let set = dataset(300, 3);
    let model = quantized_model(&set);
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
        let ints = plaintext_scores(&model, &set.gallery, &probe.template);
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
/// around the 8192-user group boundary and for a 13-group gallery.
fn check_fused(engine: ColumnarEngine) -> Option<()> {
    let reference = dataset(8192, 21);
    let model = quantized_model(&reference);
    let client = Arc::new(
        Client::new(
            ParamSpec::preset("col-8192").unwrap().build().unwrap(),
            Layout::Columnar,
            model.clone(),
        )
        .unwrap(),
    );
    let mut extreme_seen = false;
    for (users, clusters) in [(1, 1), (8191, 1), (8192, 3), (8193, 2), (100_000, 3)] {
        let mut matcher =
            EncryptedMatcher::with_engine(client.clone(), clusters, true, engine).unwrap();
        if let Some(why) = &matcher.engine().fallback {
            eprintln!("skipped: {why}");
            return None;
        }
        let set = dataset(users, 300 + users as u64);
        let report = matcher.enrol(&set.gallery).unwrap();
        assert_eq!(report.engine, engine.name());
        extreme_seen |= check_probes(&matcher, &model, &set, &format!("{engine} users={users}"));
    }
    assert!(extreme_seen, "the extreme pair must reach the score bound");
    Some(())
}

#[test]
fn fused_cpu_columnar_scores_are_exact_across_group_boundaries() {
    assert!(
        check_fused(ColumnarEngine::Cpu).is_some(),
        "the CPU engine never falls back"
    );
}

#[test]
fn fused_cuda_columnar_scores_are_exact_when_a_gpu_is_present() {
    let _ = check_fused(ColumnarEngine::Cuda);
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
