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
    /// What each batch trains on (default: Blind-Touch's labelled pairs). Left out of the
    /// serialized config at its default, so recipes written before it keep their digests.
    #[serde(default, skip_serializing_if = "Objective::is_pairs")]
    pub objective: Objective,
    /// Learning-rate schedule over the epochs (default: constant, as in the paper).
    #[serde(default, skip_serializing_if = "Schedule::is_constant")]
    pub schedule: Schedule,
}

/// The training objective. Both train the same network and head, scored the same way;
/// they differ in how many pairs one batch of images teaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Blind-Touch: every image is the first half of one pair, genuine or impostor with
    /// probability 1/2, binary cross-entropy on the pair logits. A batch of B pairs
    /// teaches B pairs.
    #[default]
    Pairs,
    /// Every image of the batch is an enrolled print with its own genuine probe; the
    /// logit of every enrolled print against every probe of the batch is scored (B²
    /// pairs from the same 2B images: B genuine, B² − B impostor, the hardest among them
    /// included), with class-balanced binary cross-entropy plus a symmetric softmax
    /// (InfoNCE) term that ranks each print's genuine probe above its batch's impostors.
    InBatch,
}

impl Objective {
    /// True for the default.
    pub fn is_pairs(&self) -> bool {
        *self == Self::Pairs
    }
}

/// How the learning rate changes over the epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same rate every epoch.
    #[default]
    Constant,
    /// Half a cosine from the rate at epoch 1 down towards 0 after the last epoch:
    /// rate · (1 + cos(π · (epoch − 1) / epochs)) / 2.
    Cosine,
}

impl Schedule {
    /// True for the default.
    pub fn is_constant(&self) -> bool {
        *self == Self::Constant
    }

    /// The rate for `epoch` (from 1) of `epochs`, starting from `rate`.
    pub fn rate(&self, rate: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Self::Constant => rate,
            Self::Cosine => {
                let t = (epoch.saturating_sub(1)) as f64 / epochs.max(1) as f64;
                rate * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
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
