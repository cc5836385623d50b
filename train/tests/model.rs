//! The network's shapes, the split head, overfitting one batch, and export round trips.

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::ElementConversion;
use train::model::{ModelConfig, TEMPLATE};
use train::training::bce_with_logits;
use train::{CpuBackend, CpuTraining};

type B = CpuBackend;

fn device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

fn images<Bk: Backend>(n: usize, size: usize, seed: u64, device: &Bk::Device) -> Tensor<Bk, 4> {
    // Deterministic pseudo-random values in [0, 1].
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let data: Vec<f32> = (0..n * size * size)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [n, 1, size, size]), device)
}

fn to_vec<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

#[test]
fn layer_shapes_follow_the_input_size_and_width() {
    for (size, width) in [(32, 0.125), (64, 0.25), (96, 0.125), (224, 0.0625)] {
        let config = ModelConfig {
            input_size: size,
            width,
        };
        config.validate().unwrap();
        let model = config.init::<B>(&device());
        let x = images::<B>(2, size, 1, &device());
        let e = model.embed(x.clone());
        assert_eq!(e.dims(), [2, config.embedding_len()], "size {size}");
        assert_eq!(
            config.embedding_len(),
            config.filters()[4] * (size / 32) * (size / 32)
        );
        // L2-normalised rows.
        let norms = to_vec(e.powf_scalar(2.0).sum_dim(1));
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
        assert_eq!(model.logit(x.clone(), x.clone()).dims(), [2]);
        assert_eq!(model.query_templates(x).dims(), [2, TEMPLATE]);
    }
    assert_eq!(
        ModelConfig {
            input_size: 224,
            width: 1.0
        }
        .filters(),
        [32, 64, 128, 256, 512]
    );
    assert!(ModelConfig {
        input_size: 100,
        width: 1.0
    }
    .validate()
    .is_err());
    assert!(ModelConfig {
        input_size: 64,
        width: 0.0
    }
    .validate()
    .is_err());
}

#[test]
fn split_head_gives_the_same_logit_as_the_network() {
    let config = ModelConfig {
        input_size: 64,
        width: 0.25,
    };
    let model = config.init::<B>(&device());
    let (a, b) = (
        images::<B>(6, 64, 2, &device()),
        images::<B>(6, 64, 3, &device()),
    );
    let logits = to_vec(model.logit(a.clone(), b.clone()));
    let head = model.head();
    let (ea, eb) = (
        to_vec(model.embed(a.clone())),
        to_vec(model.embed(b.clone())),
    );
    let d = config.embedding_len();
    for i in 0..6 {
        // a is the network's first input (the enrolled print), b the second (the probe).
        let r = head.enrolment_template(&ea[i * d..(i + 1) * d]);
        let q = head.query_template(&eb[i * d..(i + 1) * d]);
        let from_head = head.logit(&q, &r);
        assert!(
            (from_head - logits[i] as f64).abs() < 1e-4,
            "pair {i}: {from_head} vs {}",
            logits[i]
        );
    }
    // The network's own template functions agree with the exported head.
    let q_net = to_vec(model.query_templates(b));
    let q_head = head.query_template(&eb[..d]);
    for j in 0..TEMPLATE {
        assert!((q_net[j] - q_head[j]).abs() < 1e-5);
    }
    let r_net = to_vec(model.enrolment_templates(a));
    let r_head = head.enrolment_template(&ea[..d]);
    for j in 0..TEMPLATE {
        assert!((r_net[j] - r_head[j]).abs() < 1e-5);
    }
}

#[test]
fn one_batch_overfits_to_near_zero_loss() {
    let dev = device();
    <CpuTraining as Backend>::seed(&dev, 3);
    let config = ModelConfig {
        input_size: 32,
        width: 0.25,
    };
    let mut model = config.init::<CpuTraining>(&dev);
    let a = images::<CpuTraining>(8, 32, 4, &dev);
    let b = images::<CpuTraining>(8, 32, 5, &dev);
    let labels = Tensor::<CpuTraining, 1>::from_data(
        TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [8]),
        &dev,
    );
    let mut optimizer = AdamConfig::new().init();
    let mut first = None;
    let mut last = f64::MAX;
    for _ in 0..150 {
        let loss = bce_with_logits(model.logit(a.clone(), b.clone()), labels.clone());
        last = loss.clone().into_scalar().elem::<f64>();
        first.get_or_insert(last);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(5e-3, model, grads);
    }
    assert!(last < 0.05, "loss {} → {last}", first.unwrap());
    let _ = model.valid();
}

#[test]
fn export_and_load_round_trip_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = ModelConfig {
        input_size: 64,
        width: 0.125,
    };
    let model = config.init::<B>(&device());
    let head = model.head();
    let exported = train::export::ExportedModel {
        format_version: train::export::FORMAT_VERSION,
        model: config.clone(),
        pipeline: datasets::preprocess::Pipeline::blindtouch_socofing(64),
        head: head.clone(),
        threshold: 0.5,
        threshold_logit: 0.0,
        calibration: train::export::TemplateCalibration::of(&[0.5, -1.0, 2.0]),
        provenance: serde_json::json!({"test": true}),
    };
    let (a, b) = (
        images::<B>(4, 64, 6, &device()),
        images::<B>(4, 64, 7, &device()),
    );
    let before = to_vec(model.logit(a.clone(), b.clone()));
    train::export::save(dir.path(), model, &exported).unwrap();
    let (loaded, read) = train::export::load::<B>(dir.path(), &device()).unwrap();
    assert_eq!(read, exported);
    let after = to_vec(loaded.logit(a, b));
    assert_eq!(before, after, "bit-identical logits after a round trip");

    // A corrupt head.json is an error naming the file.
    std::fs::write(dir.path().join("head.json"), b"{ not json").unwrap();
    let err = train::export::load::<B>(dir.path(), &device())
        .unwrap_err()
        .to_string();
    assert!(err.contains("head.json"), "{err}");
    let missing = train::export::load::<B>(&dir.path().join("nope"), &device())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("head.json"), "{missing}");
}

#[test]
fn committed_models_load_and_their_heads_reproduce_the_network() {
    for name in ["socofing-small", "socofing"] {
        committed_model_loads_and_its_head_reproduces_the_network(name);
    }
}

fn committed_model_loads_and_its_head_reproduces_the_network(name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name);
    let (model, exported) = train::export::load::<B>(&dir, &device()).unwrap();
    assert!(exported.threshold > 0.0 && exported.threshold < 1.0);
    assert!(
        exported.calibration.abs_q999 > 0.0
            && exported.calibration.abs_q999 <= exported.calibration.abs_max
    );
    let size = exported.model.input_size;
    let (a, b) = (
        images::<B>(3, size, 8, &device()),
        images::<B>(3, size, 9, &device()),
    );
    let logits = to_vec(model.logit(a.clone(), b.clone()));
    let d = exported.model.embedding_len();
    let (ea, eb) = (to_vec(model.embed(a)), to_vec(model.embed(b)));
    for i in 0..3 {
        let r = exported.head.enrolment_template(&ea[i * d..(i + 1) * d]);
        let q = exported.head.query_template(&eb[i * d..(i + 1) * d]);
        let head = exported.head.logit(&q, &r);
        assert!(
            (head - logits[i] as f64).abs() < 1e-4 * (1.0 + head.abs()),
            "{name}, pair {i}: head {head}, network {}",
            logits[i]
        );
        // With the trained (non-zero) FC-16 bias the head is not symmetric: the other
        // orientation — the bias on the probe, as the evaluation once scored — is a
        // different function of the pair.
        let r_swapped = exported.head.enrolment_template(&eb[i * d..(i + 1) * d]);
        let q_swapped = exported.head.query_template(&ea[i * d..(i + 1) * d]);
        let swapped = exported.head.logit(&q_swapped, &r_swapped);
        assert!(
            (swapped - logits[i] as f64).abs() > 1e-3,
            "{name}, pair {i}: swapping the pair must change the logit ({swapped} vs {})",
            logits[i]
        );
    }
}

#[test]
fn the_logit_matrix_holds_every_pairs_logit() {
    // Trained a few steps so that the head has weights of both signs and a bias that matters.
    let config = ModelConfig {
        input_size: 32,
        width: 0.125,
    };
    let device = device();
    let mut model = config.init::<CpuTraining>(&device);
    let mut optimizer = AdamConfig::new().init();
    for step in 0..3 {
        let a = images::<CpuTraining>(4, 32, 10 + step, &device);
        let b = images::<CpuTraining>(4, 32, 20 + step, &device);
        let labels = Tensor::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0], [4]), &device);
        let loss = bce_with_logits(model.logit(a, b), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-2, model, grads);
    }
    let model = model.valid();
    let (enrolled, probes) = (
        images::<B>(3, 32, 1, &device),
        images::<B>(5, 32, 2, &device),
    );
    let matrix = to_vec(model.logit_matrix(enrolled.clone(), probes.clone()));
    assert_eq!(matrix.len(), 15);
    for i in 0..3 {
        for k in 0..5 {
            let a = enrolled.clone().narrow(0, i, 1);
            let b = probes.clone().narrow(0, k, 1);
            let pair = to_vec(model.logit(a, b))[0];
            let entry = matrix[i * 5 + k];
            assert!(
                (pair - entry).abs() <= 1e-4 * (1.0 + pair.abs()),
                "({i}, {k}): pair logit {pair}, matrix entry {entry}"
            );
        }
    }
}
