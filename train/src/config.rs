//! What a training run is told to do (YAML / JSON via serde; unknown fields are errors).

use crate::model::ModelConfig;
use datasets::augment::Augmenter;
use datasets::preprocess::Pipeline;
use datasets::synth::SynthConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Largest square input side a model may have. Memory, not arithmetic, is the bound: the
/// first block alone holds a [batch, filters, S, S] f32 activation per layer it keeps for
/// back-propagation (conv, norm, swish), so at S = 1024, width 1 (32 filters) and a batch
/// of 64 pairs (128 images) that is 128 · 32 · 1024² · 4 B = 16 GiB per copy, about what
/// the largest GPUs this project runs on can hold; the exported head grows as S² too
/// (W has 512 · (S/32)² rows at width 1: 8.4 M weights, ~100 MB of head.json at 1024).
pub const MAX_INPUT_SIZE: usize = 1024;

/// Checks a network shape: [`ModelConfig::validate`] (a multiple of 32, width in (0, 4])
/// and `input_size` at most [`MAX_INPUT_SIZE`].
pub fn validate_model(model: &ModelConfig) -> Result<(), String> {
    model.validate()?;
    if model.input_size > MAX_INPUT_SIZE {
        return Err(format!(
            "input_size must be at most {MAX_INPUT_SIZE} (the memory of a training batch grows \
             as its square), got {}",
            model.input_size
        ));
    }
    Ok(())
}

/// A preset by name, or spelled out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Named<T> {
    /// A preset name.
    Preset(String),
    /// An explicit value.
    Custom(T),
}

/// Where the images come from and how they are prepared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A SOCOFing / PolyU / synthetic folder.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Or: generate this synthetic set (into `<out>/data`, reused when already there).
    #[serde(default)]
    pub synthetic: Option<SynthConfig>,
    /// Preprocessing: a preset name (sized to the model input) or explicit steps.
    pub pipeline: Named<Pipeline>,
    /// Augmentation of the second image of each pair: a preset name or explicit ops.
    pub augmentation: Named<Augmenter>,
    /// Seed of the train / validation / test split.
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
}

fn default_split_seed() -> u64 {
    42
}

/// Optimisation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimisation {
    /// Most epochs.
    pub epochs: usize,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Seed of initialisation, pair sampling and augmentation.
    pub seed: u64,
}

/// A whole training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Images.
    pub data: DataConfig,
    /// Network shape.
    pub model: ModelConfig,
    /// Optimiser and schedule.
    pub training: Optimisation,
    /// Folder for the exported model.
    pub out: PathBuf,
}

impl TrainConfig {
    /// Checks values a run cannot use.
    pub fn validate(&self) -> Result<(), String> {
        validate_model(&self.model).map_err(|e| format!("model: {e}"))?;
        match (&self.data.path, &self.data.synthetic) {
            (Some(_), Some(_)) => {
                return Err("data: give either `path` or `synthetic`, not both".into())
            }
            (None, None) => {
                return Err(
                    "data: give `path` (a dataset folder) or `synthetic` (a generator config)"
                        .into(),
                )
            }
            _ => {}
        }
        let t = &self.training;
        if t.epochs == 0 || t.batch_size == 0 {
            return Err("training: epochs and batch_size must be at least 1".into());
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(format!(
                "training: learning_rate must be positive, got {}",
                t.learning_rate
            ));
        }
        Ok(())
    }

    /// The preprocessing pipeline, sized to the model input.
    pub fn pipeline(&self) -> datasets::Result<Pipeline> {
        match &self.data.pipeline {
            Named::Preset(name) => Pipeline::preset(name, self.model.input_size),
            Named::Custom(p) => Ok(p.clone()),
        }
    }

    /// The augmentation.
    pub fn augmenter(&self) -> datasets::Result<Augmenter> {
        match &self.data.augmentation {
            Named::Preset(name) => Augmenter::preset(name),
            Named::Custom(a) => Ok(a.clone()),
        }
    }
}
