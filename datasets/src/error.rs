//! Errors that name the file or folder they are about.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Everything that can go wrong loading, generating or transforming fingerprint data.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// A folder or file that should exist does not.
    #[error("{path}: not found ({what})")]
    Missing {
        /// Where we looked.
        path: PathBuf,
        /// What we expected there.
        what: String,
    },
    /// A folder whose layout is not what the format requires.
    #[error("{path}: {reason}")]
    Layout {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An image that cannot be decoded or encoded.
    #[error("{path}: cannot decode or encode image: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The codec's message.
        reason: String,
    },
    /// An I/O failure on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A parameter outside its valid range (pipeline step, preset, split...).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which parameter.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Shorthand for this crate.
pub type Result<T> = std::result::Result<T, DatasetError>;

impl DatasetError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn layout(path: &Path, reason: impl Into<String>) -> Self {
        Self::Layout {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(what: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.to_string(),
            reason: reason.into(),
        }
    }
}
