//! A trained model folder:
//!
//! ```text
//! model.mpk      Burn record of every weight (NamedMpk, full precision)
//! head.json      ExportedModel: network shape, preprocessing, FC-16 (W, b), FC-1 (w, c),
//!                decision threshold, template calibration — what the protocol needs
//! training.json  per-epoch history
//! curve.png      training curve
//! ```

use crate::error::{Result, TrainError};
use crate::model::{Head, ModelConfig, Siamese};
use crate::training::EpochStats;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use datasets::preprocess::Pipeline;
use serde::{Deserialize, Serialize};
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

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Writes `model.mpk` and `head.json` into `dir`.
pub fn save<B: Backend>(dir: &Path, model: Siamese<B>, exported: &ExportedModel) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::model(dir, e))?;
    model
        .save_file(dir.join("model"), &recorder())
        .map_err(|e| TrainError::model(&dir.join("model.mpk"), e))?;
    let head = dir.join("head.json");
    let json = serde_json::to_string_pretty(exported).expect("serializable");
    std::fs::write(&head, json).map_err(|e| TrainError::model(&head, e))
}

/// Reads `head.json` alone (enough for the protocol's head weights).
pub fn load_head(dir: &Path) -> Result<ExportedModel> {
    let path = dir.join("head.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::model(&path, e))?;
    let exported: ExportedModel =
        serde_json::from_str(&text).map_err(|e| TrainError::model(&path, e))?;
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
        .model
        .validate()
        .map_err(|e| TrainError::model(&path, e))?;
    Ok(exported)
}

/// Loads a model folder onto `device`.
pub fn load<B: Backend>(dir: &Path, device: &B::Device) -> Result<(Siamese<B>, ExportedModel)> {
    let exported = load_head(dir)?;
    let model = exported
        .model
        .init::<B>(device)
        .load_file(dir.join("model"), &recorder(), device)
        .map_err(|e| TrainError::model(&dir.join("model.mpk"), e))?;
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
