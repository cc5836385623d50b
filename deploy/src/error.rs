//! The deployment's errors: each names what failed and where (file, address, cluster).

use std::path::PathBuf;

/// A deployment failure.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The protocol refused a message or a request.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    /// A stored file or database is missing, unreadable or damaged.
    #[error("store {path}: {message}")]
    Store {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Certificates and keys: missing, unreadable or not usable.
    #[error("TLS material {path}: {message}")]
    Tls {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A peer could not be reached or answered with an error.
    #[error("{peer}: {message}")]
    Peer {
        /// Who (e.g. "cluster 2 (127.0.0.1:7002)").
        peer: String,
        /// What happened.
        message: String,
    },
    /// Bad input from a user (arguments, files).
    #[error("{0}")]
    Input(String),
}

impl DeployError {
    /// A store error about `path`.
    pub fn store(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Store {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A TLS error about `path`.
    pub fn tls(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Tls {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, DeployError>;
