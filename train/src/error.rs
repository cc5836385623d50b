//! Errors of training, export and inference.

use thiserror::Error;

/// What can go wrong.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A configuration value that cannot be used.
    #[error("config: {0}")]
    Config(String),
    /// Dataset loading, preprocessing or augmentation.
    #[error(transparent)]
    Data(#[from] datasets::DatasetError),
    /// A matching scheme (encrypted or plaintext) failed.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    /// A template-protection scheme (embedding database, IoM, NDB) failed.
    #[error(transparent)]
    Protect(#[from] protect::Error),
    /// Training stopped where it was asked to, with a checkpoint to resume from.
    #[error("training stopped after epoch {epoch} as asked; its checkpoint is in {} (resume to continue)", checkpoint.display())]
    Stopped {
        /// Epochs done.
        epoch: usize,
        /// The checkpoint folder.
        checkpoint: std::path::PathBuf,
    },
    /// Reading or writing a model folder.
    #[error("{path}: {reason}")]
    Model {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub(crate) fn model(path: &std::path::Path, reason: impl ToString) -> Self {
        Self::Model {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
