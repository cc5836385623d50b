//! A trained model folder:
//!
//! ```text
//! model.mpk      Burn record of every weight (NamedMpk, full precision)
//! head.json      ExportedModel: network shape, preprocessing, FC-16 (W, b), FC-1 (w, c),
//!                decision threshold, template calibration — what the protocol needs
//! training.json  per-epoch history
//! curve.png      training curve
//! checksums.sha256  SHA-256 of model.mpk and head.json (`sha256sum -c` reads it)
//! ```
//!
//! Loading checks everything it can before a number is computed: the checksums, every
//! head.json field ([`ExportedModel::validate`]), every network parameter's shape against
//! the config ([`Siamese::check_shapes`]) and that model.mpk's FC-16 / FC-1 weights are
//! head.json's bit for bit. Each failure is a [`TrainError::Model`] naming the file and
//! the field.

use crate::config::validate_model;
use crate::error::{Result, TrainError};
use crate::model::{Head, ModelConfig, Siamese, TEMPLATE};
use crate::training::EpochStats;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use datasets::preprocess::{Pipeline, Step};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Format version of head.json.
pub const FORMAT_VERSION: u32 = 1;

/// Statistics of template values on training data, from which the protocol derives its
/// quantization scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateCalibration {
    /// Template values (enrolment and query) the statistics cover.
    pub samples: usize,
    /// Largest |value|.
    pub abs_max: f32,
    /// 99.9th percentile of |value|.
    pub abs_q999: f32,
    /// Every 997th value (sorted), for re-calibrating with another rule.
    pub sample_values: Vec<f32>,
}

impl TemplateCalibration {
    /// Statistics of the given template values.
    pub fn of(values: &[f32]) -> Self {
        let mut abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
        abs.sort_by(f32::total_cmp);
        let q = |p: f64| {
            abs.get(((abs.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let mut sorted = values.to_vec();
        sorted.sort_by(f32::total_cmp);
        Self {
            samples: values.len(),
            abs_max: q(1.0),
            abs_q999: q(0.999),
            sample_values: sorted.iter().step_by(997).copied().collect(),
        }
    }
}

/// Everything about a trained model except the convolution weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedModel {
    /// head.json format version.
    pub format_version: u32,
    /// Network shape.
    pub model: ModelConfig,
    /// The preprocessing the network was trained with.
    pub pipeline: Pipeline,
    /// FC-16 and FC-1 weights.
    pub head: Head,
    /// Decision threshold τ on sigmoid(logit), chosen on validation pairs (max F1).
    pub threshold: f64,
    /// logit(τ).
    pub threshold_logit: f64,
    /// Template statistics for quantization.
    pub calibration: TemplateCalibration,
    /// Free-form provenance: dataset, split, seeds, command.
    pub provenance: serde_json::Value,
}

impl ExportedModel {
    /// Checks every field a model folder's user relies on, naming the first one that is
    /// wrong: the network shape (see [`validate_model`]), the pipeline (valid, and its
    /// last resize is the input size), the head's shapes against the config (FC-16 weight
    /// [embedding_len][16], bias [16], FC-1 weight [16]) and finiteness, the threshold in
    /// (0, 1) with `threshold_logit` = ln(τ / (1 − τ)) (to 1e-6 relative, plus the
    /// rounding of τ itself), and the calibration (finite, 0 < abs_q999 ≤ abs_max).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let model = &self.model;
        validate_model(model).map_err(|e| format!("model: {e}"))?;
        let shape = format!(
            "the network (input_size {}, width {})",
            model.input_size, model.width
        );

        self.pipeline
            .validate()
            .map_err(|e| format!("pipeline: {e}"))?;
        let last_resize = self.pipeline.steps.iter().rev().find_map(|s| match s {
            Step::Resize { width, height } => Some((*width, *height)),
            _ => None,
        });
        if let Some((w, h)) = last_resize {
            if (w, h) != (model.input_size, model.input_size) {
                return Err(format!(
                    "pipeline `{}` resizes to {w}×{h}, but model.input_size is {}",
                    self.pipeline.name, model.input_size
                ));
            }
        }

        let head = &self.head;
        let d = model.embedding_len();
        if head.fc16_weight.len() != d {
            return Err(format!(
                "head.fc16_weight has {} rows, {shape} has embedding length {d}",
                head.fc16_weight.len()
            ));
        }
        for (i, row) in head.fc16_weight.iter().enumerate() {
            if row.len() != TEMPLATE {
                return Err(format!(
                    "head.fc16_weight[{i}] has {} values, the network has {TEMPLATE}",
                    row.len()
                ));
            }
        }
        for (name, len) in [
            ("head.fc16_bias", head.fc16_bias.len()),
            ("head.fc1_weight", head.fc1_weight.len()),
        ] {
            if len != TEMPLATE {
                return Err(format!(
                    "{name} has {len} values, the network has {TEMPLATE}"
                ));
            }
        }
        let finite = |name: String, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} is {v}, must be finite"))
            }
        };
        for (i, row) in head.fc16_weight.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                finite(format!("head.fc16_weight[{i}][{j}]"), v as f64)?;
            }
        }
        for (j, &v) in head.fc16_bias.iter().enumerate() {
            finite(format!("head.fc16_bias[{j}]"), v as f64)?;
        }
        for (j, &v) in head.fc1_weight.iter().enumerate() {
            finite(format!("head.fc1_weight[{j}]"), v as f64)?;
        }
        finite("head.fc1_bias".into(), head.fc1_bias as f64)?;

        let tau = self.threshold;
        if !(tau > 0.0 && tau < 1.0) {
            return Err(format!(
                "threshold is {tau}, must be in (0, 1) (a probability of sigmoid(logit))"
            ));
        }
        finite("threshold_logit".into(), self.threshold_logit)?;
        let expected = (tau / (1.0 - tau)).ln();
        // 1e-6 relative, plus what τ's own rounding (a few ulps) moves ln(τ/(1−τ)) by:
        // d/dτ = 1/(τ(1−τ)), large for τ near 0 or 1.
        let tolerance =
            1e-6 * self.threshold_logit.abs().max(1.0) + 4.0 * f64::EPSILON / (tau * (1.0 - tau));
        if (self.threshold_logit - expected).abs() > tolerance {
            return Err(format!(
                "threshold_logit is {}, but threshold {tau} has ln(τ/(1−τ)) = {expected}",
                self.threshold_logit
            ));
        }

        let c = &self.calibration;
        if c.samples == 0 {
            return Err("calibration.samples is 0: no template values were measured".into());
        }
        finite("calibration.abs_max".into(), c.abs_max as f64)?;
        finite("calibration.abs_q999".into(), c.abs_q999 as f64)?;
        if c.abs_q999 <= 0.0 {
            return Err(format!(
                "calibration.abs_q999 is {}, must be positive (the protocol's quantization \
                 scale is derived from it)",
                c.abs_q999
            ));
        }
        if c.abs_q999 > c.abs_max {
            return Err(format!(
                "calibration.abs_q999 ({}) is greater than calibration.abs_max ({})",
                c.abs_q999, c.abs_max
            ));
        }
        for (i, &v) in c.sample_values.iter().enumerate() {
            finite(format!("calibration.sample_values[{i}]"), v as f64)?;
        }
        Ok(())
    }
}

/// Name of the checksum file in a model folder.
pub const CHECKSUMS: &str = "checksums.sha256";
/// The files `checksums.sha256` must cover.
pub const CHECKED_FILES: [&str; 2] = ["model.mpk", "head.json"];

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Lower-case hex SHA-256, as sha256sum prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The largest model file read (the widest network the config allows — width 4 at
/// 1024 px — is about 250 MB of weights, and its head.json about 0.5 GB of JSON).
const MAX_FILE: u64 = 2 << 30;

fn read(path: &Path) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| TrainError::model(path, e))?
        .len();
    if size > MAX_FILE {
        return Err(TrainError::model(
            path,
            format!("is {size} bytes, above the {MAX_FILE}-byte limit for a model file"),
        ));
    }
    std::fs::read(path).map_err(|e| TrainError::model(path, e))
}

/// Writes `checksums.sha256` for the folder's current `model.mpk` and `head.json`, in
/// sha256sum's format (`<hex>  <file>` per line), so `sha256sum -c checksums.sha256`
/// verifies a folder too. [`save`] calls it; call it yourself only on files you trust.
pub fn write_checksums(dir: &Path) -> Result<()> {
    let mut text = String::new();
    for name in CHECKED_FILES {
        let bytes = read(&dir.join(name))?;
        text.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    let path = dir.join(CHECKSUMS);
    std::fs::write(&path, text).map_err(|e| TrainError::model(&path, e))
}

/// The folder's checksums by file name; every file of [`CHECKED_FILES`] must be listed.
fn read_checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join(CHECKSUMS);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        TrainError::model(
            &path,
            format!(
                "cannot read it ({e}); a model folder must carry SHA-256 sums of {}. If these \
                 files are the ones exported, write it in the folder with \
                 `sha256sum model.mpk head.json > {CHECKSUMS}` (or \
                 train::export::write_checksums); otherwise re-export the model",
                CHECKED_FILES.join(" and ")
            ),
        )
    })?;
    let mut sums = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // sha256sum: 64 hex digits, a space, ' ' (text) or '*' (binary), the name.
        let parsed = line
            .get(..64)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .zip(line.get(64..66).filter(|sep| *sep == "  " || *sep == " *"))
            .map(|(hex, _)| (hex.to_ascii_lowercase(), &line[66..]));
        let Some((hex, name)) = parsed.filter(|(_, name)| !name.is_empty()) else {
            return Err(TrainError::model(
                &path,
                format!(
                    "line {}: expected `<64 hex digits>  <file name>`, got `{line}`",
                    n + 1
                ),
            ));
        };
        if sums.insert(name.to_string(), hex).is_some() {
            return Err(TrainError::model(
                &path,
                format!("line {}: {name} is listed twice", n + 1),
            ));
        }
    }
    for name in CHECKED_FILES {
        if !sums.contains_key(name) {
            return Err(TrainError::model(
                &path,
                format!(
                    "has no line for {name}; it must list {}",
                    CHECKED_FILES.join(" and ")
                ),
            ));
        }
    }
    Ok(sums)
}

/// Checks `bytes` (the content of `dir/name`) against the folder's checksum.
fn verify(dir: &Path, name: &str, bytes: &[u8], sums: &BTreeMap<String, String>) -> Result<()> {
    let expected = &sums[name];
    let actual = sha256_hex(bytes);
    if &actual != expected {
        return Err(TrainError::model(
            &dir.join(name),
            format!(
                "SHA-256 is {actual}, but {CHECKSUMS} says {expected}: the file is corrupt or \
                 was changed after export"
            ),
        ));
    }
    Ok(())
}

/// Compares the network's FC-16 / FC-1 weights with head.json's, bit for bit.
fn check_head_matches(network: &Head, exported: &Head) -> std::result::Result<(), String> {
    let differ = |field: String, net: f32, json: f32| {
        Err(format!(
            "{field} is {net:e} in model.mpk but {json:e} in head.json: the two files come \
             from different models"
        ))
    };
    let rows = network.fc16_weight.iter().zip(&exported.fc16_weight);
    for (i, (a, b)) in rows.enumerate() {
        for (j, (&x, &y)) in a.iter().zip(b).enumerate() {
            if x.to_bits() != y.to_bits() {
                return differ(format!("head.fc16_weight[{i}][{j}]"), x, y);
            }
        }
    }
    for (name, a, b) in [
        ("head.fc16_bias", &network.fc16_bias, &exported.fc16_bias),
        ("head.fc1_weight", &network.fc1_weight, &exported.fc1_weight),
    ] {
        for (j, (&x, &y)) in a.iter().zip(b).enumerate() {
            if x.to_bits() != y.to_bits() {
                return differ(format!("{name}[{j}]"), x, y);
            }
        }
    }
    if network.fc1_bias.to_bits() != exported.fc1_bias.to_bits() {
        return differ("head.fc1_bias".into(), network.fc1_bias, exported.fc1_bias);
    }
    Ok(())
}

/// Writes `model.mpk`, `head.json` and `checksums.sha256` into `dir`. Refuses (before
/// writing anything) what [`load`] would refuse: an invalid head.json, a network whose
/// shapes are not the config's, or a head that is not the network's.
pub fn save<B: Backend>(dir: &Path, model: Siamese<B>, exported: &ExportedModel) -> Result<()> {
    let head = dir.join("head.json");
    let mpk = dir.join("model.mpk");
    exported
        .validate()
        .map_err(|e| TrainError::model(&head, e))?;
    model
        .check_shapes(&exported.model)
        .map_err(|e| TrainError::model(&mpk, e))?;
    check_head_matches(&model.head(), &exported.head).map_err(|e| TrainError::model(&mpk, e))?;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::model(dir, e))?;
    model
        .save_file(dir.join("model"), &recorder())
        .map_err(|e| TrainError::model(&mpk, e))?;
    let json = serde_json::to_string_pretty(exported).expect("serializable");
    std::fs::write(&head, json).map_err(|e| TrainError::model(&head, e))?;
    write_checksums(dir)
}

/// Reads `head.json` alone (enough for the protocol's head weights): checks its SHA-256
/// against `checksums.sha256` (which must list model.mpk too), its format version and
/// every field ([`ExportedModel::validate`]).
pub fn load_head(dir: &Path) -> Result<ExportedModel> {
    let path = dir.join("head.json");
    let bytes = read(&path)?;
    let sums = read_checksums(dir)?;
    verify(dir, "head.json", &bytes, &sums)?;
    let exported: ExportedModel =
        serde_json::from_slice(&bytes).map_err(|e| TrainError::model(&path, e))?;
    if exported.format_version != FORMAT_VERSION {
        return Err(TrainError::model(
            &path,
            format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                exported.format_version
            ),
        ));
    }
    exported
        .validate()
        .map_err(|e| TrainError::model(&path, e))?;
    Ok(exported)
}

/// Loads a model folder onto `device`: [`load_head`], then model.mpk's SHA-256, its
/// parameter shapes against head.json's config ([`Siamese::check_shapes`]) and its
/// FC-16 / FC-1 weights against head.json's head, bit for bit.
pub fn load<B: Backend>(dir: &Path, device: &B::Device) -> Result<(Siamese<B>, ExportedModel)> {
    let exported = load_head(dir)?;
    let path = dir.join("model.mpk");
    let bytes = read(&path)?;
    verify(dir, "model.mpk", &bytes, &read_checksums(dir)?)?;
    // Decode the bytes just verified (the file recorder's format, from memory).
    let record: <Siamese<B> as Module<B>>::Record =
        NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
            .load(bytes, device)
            .map_err(|e| TrainError::model(&path, e))?;
    // Burn asserts (panics) on a block count that differs from the module's.
    let blocks = exported.model.filters().len();
    if record.blocks.len() != blocks {
        return Err(TrainError::model(
            &path,
            format!(
                "the network has {} blocks, the config builds {blocks}",
                record.blocks.len()
            ),
        ));
    }
    let model = exported.model.init::<B>(device).load_record(record);
    model
        .check_shapes(&exported.model)
        .map_err(|e| TrainError::model(&path, e))?;
    check_head_matches(&model.head(), &exported.head).map_err(|e| TrainError::model(&path, e))?;
    Ok((model, exported))
}

/// Writes the per-epoch history.
pub fn save_history(dir: &Path, history: &[EpochStats]) -> Result<()> {
    let path = dir.join("training.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(history).expect("serializable"),
    )
    .map_err(|e| TrainError::model(&path, e))
}
