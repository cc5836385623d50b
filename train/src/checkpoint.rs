//! Per-epoch checkpoints, so that a stopped run continues where it stopped and ends with
//! the weights an uninterrupted run ends with.
//!
//! After every epoch the whole training state goes to `<out>/checkpoint/epoch-NNNN/`: the
//! model (weights and batch-norm statistics), Adam's moments, the best epoch's model,
//! and `state.json` — the epoch, the sampling generator's position, the history, the
//! best validation loss and a digest of the recipe. The folder is written under a
//! temporary name and renamed when complete (a rename is atomic), and older epochs are
//! removed after it: whatever stops the process, the newest `epoch-*` folder is whole.
//! Everything random in a run comes from the seeded generator or the seeded
//! initialisation, so restoring these is restoring the run (the test compares a resumed
//! run with an uninterrupted one value for value).

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::model::Siamese;
use crate::training::EpochStats;
use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Format of `state.json`.
pub const FORMAT: u32 = 1;

/// What the loop keeps between epochs besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// `FORMAT`.
    pub format: u32,
    /// Digest of the recipe (everything in the config but the epoch budget and `out`).
    pub recipe: String,
    /// Epochs done.
    pub epoch: usize,
    /// Position of the sampling and augmentation generator (ChaCha8 word position).
    pub rng_word_pos: String,
    /// Every epoch so far.
    pub history: Vec<EpochStats>,
    /// Best validation loss and its epoch.
    pub best_loss: f64,
    /// Epoch of the best weights.
    pub best_epoch: usize,
    /// The run ended here (early stopping): a resume trains no further.
    pub finished: bool,
}

/// A checkpoint read back: the state and the tensors, on `device`.
pub struct Restored<B: AutodiffBackend, O> {
    /// The loop's state.
    pub state: State,
    /// The model as it was after `state.epoch`.
    pub model: Siamese<B>,
    /// The optimizer with its moments.
    pub optimizer: O,
    /// The best epoch's weights.
    pub best: Siamese<B::InnerBackend>,
}

fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::<FullPrecisionSettings>::new()
}

fn error(what: &str, path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::model(path, format!("checkpoint: {what}: {e}"))
}

/// The digest of everything that shapes a run except the epoch budget and the output
/// folder (a run may be resumed with more epochs, or from a moved folder).
pub fn recipe_digest(config: &TrainConfig) -> String {
    let mut value = config_without_out(config);
    // A constant rate lets a finished run be extended by more epochs; a schedule over
    // the epochs depends on their number, so it stays in the digest then.
    if config.training.schedule.is_constant() {
        if let Some(training) = value.get_mut("training").and_then(|t| t.as_object_mut()) {
            training.remove("epochs");
        }
    }
    crate::export::sha256_hex(value.to_string().as_bytes())
}

/// The config as JSON without its output folder (what digests of a recipe cover).
pub(crate) fn config_without_out(config: &TrainConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).expect("a config serializes");
    if let Some(object) = value.as_object_mut() {
        object.remove("out");
    }
    value
}

/// Writes the checkpoint of epoch `state.epoch` into `dir` and removes older ones.
pub fn save<B: AutodiffBackend, O: Optimizer<Siamese<B>, B>>(
    dir: &Path,
    state: &State,
    model: &Siamese<B>,
    optimizer: &O,
    best: &Siamese<B::InnerBackend>,
) -> Result<()> {
    let name = format!("epoch-{:04}", state.epoch);
    let partial = dir.join(format!("{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| error("removing", &partial, e))?;
    }
    std::fs::create_dir_all(&partial).map_err(|e| error("creating", &partial, e))?;
    let rec = recorder();
    model
        .clone()
        .save_file(partial.join("model"), &rec)
        .map_err(|e| error("writing the model", &partial, e))?;
    rec.record(optimizer.to_record(), partial.join("optimizer"))
        .map_err(|e| error("writing the optimizer in", &partial, e))?;
    best.clone()
        .save_file(partial.join("best"), &rec)
        .map_err(|e| error("writing the best model in", &partial, e))?;
    let json = serde_json::to_string_pretty(state).expect("state serializes");
    std::fs::write(partial.join("state.json"), json).map_err(|e| error("writing", &partial, e))?;
    let done = dir.join(&name);
    if done.exists() {
        std::fs::remove_dir_all(&done).map_err(|e| error("removing", &done, e))?;
    }
    std::fs::rename(&partial, &done).map_err(|e| error("renaming", &partial, e))?;
    for old in epochs(dir)? {
        if old != done {
            std::fs::remove_dir_all(&old).map_err(|e| error("removing", &old, e))?;
        }
    }
    Ok(())
}

/// The complete checkpoint folders in `dir` (`epoch-NNNN`, not `.partial`), oldest first.
fn epochs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("epoch-") && !n.ends_with(".partial"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(error("reading", dir, e)),
    };
    found.sort();
    Ok(found)
}

/// The newest checkpoint in `dir` for this recipe, if there is one; an error if the
/// newest was made with another recipe or cannot be read.
pub fn load<B: AutodiffBackend, O: Optimizer<Siamese<B>, B>>(
    dir: &Path,
    config: &TrainConfig,
    model: Siamese<B>,
    optimizer: O,
    device: &B::Device,
) -> Result<Option<Restored<B, O>>> {
    let Some(newest) = epochs(dir)?.pop() else {
        return Ok(None);
    };
    let path = newest.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| error("reading", &path, e))?;
    let state: State = serde_json::from_str(&text).map_err(|e| error("parsing", &path, e))?;
    if state.format != FORMAT {
        return Err(error(
            "reading",
            &path,
            format!("format {} (this build reads {FORMAT})", state.format),
        ));
    }
    if state.recipe != recipe_digest(config) {
        return Err(error(
            "resuming from",
            &newest,
            "it was made with another recipe (data, model or training settings differ); \
             remove the checkpoint folder to start over",
        ));
    }
    if state.epoch != state.history.len() || state.best_epoch == 0 || state.best_epoch > state.epoch
    {
        return Err(error(
            "reading",
            &path,
            "epoch, history and best epoch disagree",
        ));
    }
    let rec = recorder();
    let model = model
        .load_file(newest.join("model"), &rec, device)
        .map_err(|e| error("reading the model in", &newest, e))?;
    let record = rec
        .load(newest.join("optimizer"), device)
        .map_err(|e| error("reading the optimizer in", &newest, e))?;
    let optimizer = optimizer.load_record(record);
    let best = config
        .model
        .init::<B::InnerBackend>(device)
        .load_file(newest.join("best"), &rec, device)
        .map_err(|e| error("reading the best model in", &newest, e))?;
    Ok(Some(Restored {
        state,
        model,
        optimizer,
        best,
    }))
}
