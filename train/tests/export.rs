//! Bad model folders are refused at load with an error naming the file and the field:
//! every case copies the committed models/socofing-small, breaks one thing, and checks
//! that `load` (and `load_head`, where head.json is what is broken) says what is wrong.

use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use train::export::{self, ExportedModel, CHECKSUMS};
use train::model::ModelConfig;
use train::{CpuBackend, TrainError};

type B = CpuBackend;

fn device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/socofing-small")
}

/// A copy of the committed folder's model.mpk, head.json and checksums.sha256.
fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.mpk", "head.json", CHECKSUMS] {
        std::fs::copy(committed().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn read_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("head.json")).unwrap()).unwrap()
}

/// Rewrites head.json after `edit` and recomputes the checksums, so that only the
/// content checks can catch the edit.
fn edit_head(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut head = read_json(dir);
    edit(&mut head);
    std::fs::write(
        dir.join("head.json"),
        serde_json::to_string_pretty(&head).unwrap(),
    )
    .unwrap();
    export::write_checksums(dir).unwrap();
}

fn load_error(dir: &Path) -> TrainError {
    match export::load::<B>(dir, &device()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

/// `load` refuses with a `TrainError::Model` about `file` whose text has every needle.
fn assert_load_refuses(dir: &Path, file: &str, needles: &[&str]) -> String {
    let err = load_error(dir);
    let TrainError::Model { path, .. } = &err else {
        panic!("not a model-folder error: {err}");
    };
    assert_eq!(path, &dir.join(file), "{err}");
    let text = err.to_string();
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }
    text
}

/// Both `load_head` and `load` refuse a bad head.json with the same message.
fn assert_head_refused(dir: &Path, needles: &[&str]) -> String {
    let text = assert_load_refuses(dir, "head.json", needles);
    let head_err = export::load_head(dir).unwrap_err().to_string();
    assert_eq!(head_err, text);
    text
}

#[test]
fn the_committed_folder_loads_and_carries_sha256sum_compatible_checksums() {
    let dir = committed();
    let (_, exported) = export::load::<B>(&dir, &device()).unwrap();
    assert_eq!(export::load_head(&dir).unwrap(), exported);
    exported.validate().unwrap();
    // Independently of the crate: `<hex>  <name>` lines of the files' SHA-256.
    let text = std::fs::read_to_string(dir.join(CHECKSUMS)).unwrap();
    let mut names = Vec::new();
    for line in text.lines() {
        let (hex, name) = line.split_once("  ").unwrap();
        let digest = Sha256::digest(std::fs::read(dir.join(name)).unwrap());
        let want: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want, "{name}");
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["head.json", "model.mpk"]);
    // A copy loads too (the helpers' baseline).
    let copied = copy();
    assert!(export::load::<B>(copied.path(), &device()).is_ok());
}

#[test]
fn a_50_byte_flip_in_model_mpk_is_caught_by_the_checksum() {
    let dir = copy();
    let path = dir.path().join("model.mpk");
    let mut bytes = std::fs::read(&path).unwrap();
    let start = bytes.len() / 2;
    for b in &mut bytes[start..start + 50] {
        *b ^= 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let text = assert_load_refuses(
        dir.path(),
        "model.mpk",
        &["SHA-256 is", "checksums.sha256 says", "corrupt"],
    );
    // Both hashes are named.
    let listed = std::fs::read_to_string(committed().join(CHECKSUMS)).unwrap();
    let expected = listed.lines().next().unwrap().split_once("  ").unwrap().0;
    assert!(text.contains(expected), "{text}");
    assert!(text.contains(&export::sha256_hex(&bytes)), "{text}");
}

#[test]
fn an_edited_head_json_without_new_checksums_is_caught() {
    let dir = copy();
    let text = std::fs::read_to_string(dir.path().join("head.json")).unwrap();
    let edited = text.replacen("\"fc1_bias\": 0.", "\"fc1_bias\": 1.", 1);
    assert_ne!(edited, text);
    std::fs::write(dir.path().join("head.json"), edited).unwrap();
    assert_head_refused(dir.path(), &["SHA-256 is", "checksums.sha256 says"]);
}

#[test]
fn a_missing_or_malformed_checksum_file_is_an_error_that_says_how_to_fix_it() {
    let dir = copy();
    let sums = dir.path().join(CHECKSUMS);
    std::fs::remove_file(&sums).unwrap();
    for err in [
        load_error(dir.path()).to_string(),
        export::load_head(dir.path()).unwrap_err().to_string(),
    ] {
        assert!(
            err.contains("checksums.sha256")
                && err.contains("sha256sum model.mpk head.json > checksums.sha256"),
            "{err}"
        );
    }
    // The suggested fix works.
    export::write_checksums(dir.path()).unwrap();
    assert!(export::load::<B>(dir.path(), &device()).is_ok());

    let good = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(&sums, good.lines().next().unwrap()).unwrap();
    assert_load_refuses(dir.path(), CHECKSUMS, &["has no line for head.json"]);
    std::fs::write(&sums, format!("{good}not a checksum line\n")).unwrap();
    assert_load_refuses(dir.path(), CHECKSUMS, &["line 3", "64 hex digits"]);
    // sha256sum's binary-mode marker is read too.
    std::fs::write(&sums, good.replace("  ", " *")).unwrap();
    assert!(export::load::<B>(dir.path(), &device()).is_ok());
}

#[test]
fn fc16_weight_rows_must_be_the_embedding_length() {
    let dir = copy();
    edit_head(dir.path(), |h| {
        h["head"]["fc16_weight"].as_array_mut().unwrap().pop();
    });
    assert_head_refused(
        dir.path(),
        &["head.fc16_weight has 511 rows", "has embedding length 512"],
    );
}

#[test]
fn fc16_weight_rows_must_have_16_values() {
    let dir = copy();
    edit_head(dir.path(), |h| {
        h["head"]["fc16_weight"][7].as_array_mut().unwrap().pop();
    });
    assert_head_refused(
        dir.path(),
        &["head.fc16_weight[7] has 15 values, the network has 16"],
    );
}

#[test]
fn fc16_bias_must_have_16_values() {
    let dir = copy();
    edit_head(dir.path(), |h| h["head"]["fc16_bias"] = json!([]));
    assert_head_refused(
        dir.path(),
        &["head.json: head.fc16_bias has 0 values, the network has 16"],
    );
    edit_head(dir.path(), |h| {
        h["head"]["fc16_bias"]
            .as_array_mut()
            .unwrap()
            .extend(vec![json!(0.5); 17]);
    });
    assert_head_refused(dir.path(), &["head.fc16_bias has 17 values"]);
}

#[test]
fn fc1_weight_must_have_16_values() {
    let dir = copy();
    edit_head(dir.path(), |h| {
        h["head"]["fc1_weight"].as_array_mut().unwrap().truncate(3);
    });
    assert_head_refused(
        dir.path(),
        &["head.fc1_weight has 3 values, the network has 16"],
    );
}

/// A needle of the expected error and the head.json edit that causes it.
type Case = (&'static str, fn(&mut Value));

#[test]
fn infinite_weights_and_biases_are_refused() {
    // 1e39 is beyond f32: serde reads it as an infinite f32.
    let cases: [Case; 3] = [
        ("head.fc16_weight[3][5] is inf", |h| {
            h["head"]["fc16_weight"][3][5] = json!(1e39)
        }),
        ("head.fc16_bias[2] is -inf", |h| {
            h["head"]["fc16_bias"][2] = json!(-1e39)
        }),
        ("head.fc1_bias is inf", |h| {
            h["head"]["fc1_bias"] = json!(1e39)
        }),
    ];
    for (needle, edit) in cases {
        let dir = copy();
        edit_head(dir.path(), edit);
        assert_head_refused(dir.path(), &[needle, "must be finite"]);
    }
    // NaN cannot be written in JSON, but a head built in code can hold one.
    let mut exported = export::load_head(&committed()).unwrap();
    exported.head.fc1_weight[4] = f32::NAN;
    let err = exported.validate().unwrap_err();
    assert!(err.contains("head.fc1_weight[4] is NaN"), "{err}");
}

#[test]
fn a_nan_head_is_not_saved() {
    let config = ModelConfig {
        input_size: 32,
        width: 0.125,
    };
    let model = config.init::<B>(&device());
    let mut exported = exported_for(&config, &model);
    exported.head.fc16_weight[0][0] = f32::NAN;
    let dir = tempfile::tempdir().unwrap();
    let err = export::save(dir.path(), model, &exported)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head.fc16_weight[0][0] is NaN"), "{err}");
    assert!(!dir.path().join("model.mpk").exists(), "nothing is written");
}

#[test]
fn the_threshold_must_be_a_probability() {
    for tau in [0.0, 1.0, -0.25, 1.5] {
        let dir = copy();
        edit_head(dir.path(), |h| h["threshold"] = json!(tau));
        assert_head_refused(dir.path(), &["threshold is", "must be in (0, 1)"]);
    }
}

#[test]
fn the_threshold_logit_must_be_the_thresholds_logit() {
    let dir = copy();
    let logit = read_json(dir.path())["threshold_logit"].as_f64().unwrap();
    edit_head(dir.path(), |h| h["threshold_logit"] = json!(logit + 0.01));
    assert_head_refused(dir.path(), &["threshold_logit is", "ln(τ/(1−τ))"]);
    // Within the tolerance (1e-6 relative) it is the same threshold.
    edit_head(dir.path(), |h| {
        h["threshold_logit"] = json!(logit * (1.0 + 1e-9))
    });
    assert!(export::load_head(dir.path()).is_ok());
    // Near 1 the tolerance follows τ's own rounding: the logit of 1 − 1e-12 is accepted.
    let mut exported = export::load_head(dir.path()).unwrap();
    exported.threshold_logit = 27.631;
    exported.threshold = 1.0 / (1.0 + (-exported.threshold_logit).exp());
    exported.validate().unwrap();
}

#[test]
fn calibration_statistics_must_be_finite_positive_and_ordered() {
    let cases: [Case; 5] = [
        ("calibration.abs_q999 is 0, must be positive", |h| {
            h["calibration"]["abs_q999"] = json!(0.0)
        }),
        ("calibration.abs_q999 is -1, must be positive", |h| {
            h["calibration"]["abs_q999"] = json!(-1.0)
        }),
        (
            "calibration.abs_q999 (5) is greater than calibration.abs_max",
            |h| h["calibration"]["abs_q999"] = json!(5.0),
        ),
        ("calibration.abs_max is inf", |h| {
            h["calibration"]["abs_max"] = json!(1e39)
        }),
        ("calibration.samples is 0", |h| {
            h["calibration"]["samples"] = json!(0)
        }),
    ];
    for (needle, edit) in cases {
        let dir = copy();
        edit_head(dir.path(), edit);
        assert_head_refused(dir.path(), &[needle]);
    }
}

#[test]
fn input_size_has_an_upper_bound() {
    let dir = copy();
    edit_head(dir.path(), |h| h["model"]["input_size"] = json!(2048));
    assert_head_refused(
        dir.path(),
        &["model: input_size must be at most 1024", "got 2048"],
    );
    let mut config = train::read_config(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/train-socofing-small.yaml"),
    )
    .unwrap();
    config.model.input_size = 1056;
    let err = config.validate().unwrap_err();
    assert!(err.contains("at most 1024"), "{err}");
    config.model.input_size = 1024;
    config.validate().unwrap();
}

#[test]
fn a_config_that_is_not_the_networks_is_refused() {
    // Another width: head.json's FC-16 no longer has the config's embedding length.
    let dir = copy();
    edit_head(dir.path(), |h| h["model"]["width"] = json!(0.5));
    assert_head_refused(
        dir.path(),
        &["head.fc16_weight has 512 rows, the network (input_size 64, width 0.5) has embedding length 1024"],
    );
    // Another input size: the pipeline no longer resizes to it.
    let dir = copy();
    edit_head(dir.path(), |h| h["model"]["input_size"] = json!(96));
    assert_head_refused(
        dir.path(),
        &["resizes to 64×64, but model.input_size is 96"],
    );
    // A consistent head.json (512 = 512 · (32/32)²) for another network than model.mpk:
    // only the record's shapes can tell.
    let dir = copy();
    edit_head(dir.path(), |h| {
        h["model"] = json!({"input_size": 32, "width": 1.0});
        h["pipeline"]["steps"][0] = json!({"step": "resize", "width": 32, "height": 32});
    });
    assert!(export::load_head(dir.path()).is_ok());
    assert_load_refuses(
        dir.path(),
        "model.mpk",
        &["blocks.0.conv.weight has shape [8, 1, 3, 3], the config (input_size 32, width 1) builds [32, 1, 3, 3]"],
    );
}

fn save_record<M: Module<B>>(model: M, dir: &Path) {
    model
        .save_file(
            dir.join("model"),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
        )
        .unwrap();
    export::write_checksums(dir).unwrap();
}

#[test]
fn a_model_mpk_of_another_width_is_refused_by_the_shape_check() {
    let dir = copy();
    let other = ModelConfig {
        input_size: 64,
        width: 0.5,
    };
    save_record(other.init::<B>(&device()), dir.path());
    assert!(export::load_head(dir.path()).is_ok(), "head.json is intact");
    assert_load_refuses(
        dir.path(),
        "model.mpk",
        &["blocks.0.conv.weight has shape [16, 1, 3, 3], the config (input_size 64, width 0.25) builds [8, 1, 3, 3]"],
    );
}

#[test]
fn a_model_mpk_of_the_same_shape_but_other_weights_is_refused_by_the_head_check() {
    let dir = copy();
    let config = export::load_head(dir.path()).unwrap().model;
    save_record(config.init::<B>(&device()), dir.path());
    assert_load_refuses(
        dir.path(),
        "model.mpk",
        &[
            "head.fc16_weight[0][0] is",
            "in model.mpk but",
            "in head.json: the two files come from different models",
        ],
    );
}

/// The network's layout with a chosen number of blocks: a record of another architecture.
mod other {
    use burn::nn::conv::Conv2d;
    use burn::nn::pool::MaxPool2d;
    use burn::nn::{BatchNorm, Linear};
    use burn::prelude::*;

    #[derive(Module, Debug)]
    pub struct Siamese<B: Backend> {
        pub blocks: Vec<Block<B>>,
        pub fc16: Linear<B>,
        pub fc1: Linear<B>,
    }

    #[derive(Module, Debug)]
    pub struct Block<B: Backend> {
        pub conv: Conv2d<B>,
        pub norm: BatchNorm<B>,
        pub pool: MaxPool2d,
    }
}

#[test]
fn a_model_mpk_with_fewer_blocks_is_an_error_not_a_panic() {
    let dir = copy();
    let d = &device();
    let mut channels = 1;
    let blocks = [8, 16, 32, 64]
        .into_iter()
        .map(|out| {
            let block = other::Block {
                conv: Conv2dConfig::new([channels, out], [3, 3])
                    .with_padding(PaddingConfig2d::Same)
                    .init(d),
                norm: BatchNormConfig::new(out).init(d),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            };
            channels = out;
            block
        })
        .collect();
    let net = other::Siamese::<B> {
        blocks,
        fc16: LinearConfig::new(512, 16).init(d),
        fc1: LinearConfig::new(16, 1).init(d),
    };
    save_record(net, dir.path());
    assert_load_refuses(
        dir.path(),
        "model.mpk",
        &["the network has 4 blocks, the config builds 5"],
    );
}

fn exported_for(config: &ModelConfig, model: &train::model::Siamese<B>) -> ExportedModel {
    ExportedModel {
        format_version: export::FORMAT_VERSION,
        model: config.clone(),
        pipeline: datasets::preprocess::Pipeline::blindtouch_socofing(config.input_size),
        head: model.head(),
        threshold: 0.5,
        threshold_logit: 0.0,
        calibration: export::TemplateCalibration::of(&[0.5, -1.0, 2.0]),
        provenance: json!({"test": true}),
    }
}

#[test]
fn save_writes_checksums_and_refuses_a_head_that_is_not_the_networks() {
    let config = ModelConfig {
        input_size: 32,
        width: 0.125,
    };
    let model = config.init::<B>(&device());
    let exported = exported_for(&config, &model);
    let dir = tempfile::tempdir().unwrap();
    export::save(dir.path(), model.clone(), &exported).unwrap();
    let sums = std::fs::read_to_string(dir.path().join(CHECKSUMS)).unwrap();
    assert!(
        sums.lines().any(|l| l.ends_with("  model.mpk"))
            && sums.lines().any(|l| l.ends_with("  head.json")),
        "{sums}"
    );
    let (_, read) = export::load::<B>(dir.path(), &device()).unwrap();
    assert_eq!(read, exported);

    // Another network's head, or a config the network does not have, is not saved.
    let other = config.init::<B>(&device());
    let mut wrong = exported.clone();
    wrong.head = other.head();
    let err = export::save(dir.path(), model.clone(), &wrong)
        .unwrap_err()
        .to_string();
    assert!(err.contains("different models"), "{err}");
    let mut wrong = exported.clone();
    wrong.model.width = 0.25;
    wrong.head.fc16_weight = vec![vec![0.0; 16]; wrong.model.embedding_len()];
    let err = export::save(dir.path(), model, &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blocks.0.conv.weight has shape [4, 1, 3, 3]"),
        "{err}"
    );
}
