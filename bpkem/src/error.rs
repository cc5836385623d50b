//! One error type for the crate, so that a flow can pass any step's failure up with `?`
//! and a caller can still tell "the biometric did not match" from "the bytes are bad".

use thiserror::Error;

/// Everything that can go wrong in BPKEM.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BpkemError {
    /// Too few feature points survive edge screening to place three control points.
    #[error("too few minutiae: {found} after edge screening, at least {needed} needed")]
    TooFewMinutiae {
        /// How many survived.
        found: usize,
        /// The configured minimum.
        needed: usize,
    },
    /// The points (or the input vector) carry no usable geometry: collinear points,
    /// non-finite coordinates, an all-zero embedding.
    #[error("degenerate input: {0}")]
    Degenerate(String),
    /// A parameter outside its valid range.
    #[error("invalid parameter {what}: {reason}")]
    InvalidParams {
        /// Which parameter.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Serialized bytes (helper data, public key) that do not parse.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Two bit strings or vectors of different lengths were compared.
    #[error("length mismatch: {0} vs {1}")]
    LengthMismatch(usize, usize),
    /// No digital locker opened: the query descriptor is too far from the enrolled one.
    #[error("no locker opened: the descriptor is too far from the enrolled one")]
    NoLockerOpened,
    /// Shares that cannot be combined (none, duplicate or unknown holder indices).
    #[error("shares: {0}")]
    Shares(String),
    /// The key pair regenerated from the reconstructed secret does not have the stored
    /// public key: too few, wrong or corrupted shares, or a wrong biometric key.
    #[error("public key check failed: the regenerated public key differs from the stored one")]
    PublicKeyMismatch,
    /// The image could not be analysed.
    #[error("image analysis: {0}")]
    Image(String),
}

/// Shorthand for this crate.
pub type Result<T> = std::result::Result<T, BpkemError>;

impl BpkemError {
    pub(crate) fn params(what: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParams {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            reason: reason.into(),
        }
    }
}
