//! One error type for the whole protocol, so a caller (the harness, a test) can tell a
//! refused parameter set from corrupt bytes from a layout that cannot hold the data.

use thiserror::Error;

/// Everything that can go wrong while building parameters, packing, encrypting,
/// moving bytes between roles, evaluating or decrypting.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// A parameter set that fhe.rs would accept but that is unsafe or unusable.
    #[error("parameter set `{name}`: {reason}")]
    Parameters {
        /// Which parameter set.
        name: String,
        /// What is wrong with it, with the numbers involved.
        reason: String,
    },

    /// Bytes that arrived at a role and could not be accepted.
    #[error("{artifact} bytes rejected: {reason}")]
    Wire {
        /// What the bytes were supposed to hold (e.g. "query ciphertext").
        artifact: String,
        /// Why they were refused (truncated, other parameters, checksum, ...).
        reason: String,
    },

    /// Data that does not fit the packing layout (too many users in one ciphertext,
    /// a template of the wrong length, ...).
    #[error("layout: {0}")]
    Layout(String),

    /// Input values that the protocol cannot use (empty calibration set, NaN, ...).
    #[error("invalid input: {0}")]
    Input(String),

    /// A role was asked to do something before it had what it needs
    /// (e.g. evaluate before the keys arrived).
    #[error("{role}: {reason}")]
    State {
        /// The role that refused.
        role: &'static str,
        /// What it was missing.
        reason: String,
    },

    /// An error reported by fhe.rs.
    #[error("fhe.rs: {0}")]
    Fhe(#[from] fhe::Error),
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, ProtocolError>;

impl ProtocolError {
    pub(crate) fn params(name: &str, reason: impl Into<String>) -> Self {
        Self::Parameters {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn wire(artifact: &str, reason: impl Into<String>) -> Self {
        Self::Wire {
            artifact: artifact.to_string(),
            reason: reason.into(),
        }
    }

    /// A role asked to act in a state where it cannot (what, and why).
    pub fn state(role: &'static str, reason: impl Into<String>) -> Self {
        Self::State {
            role,
            reason: reason.into(),
        }
    }
}
