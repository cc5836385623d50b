//! The crate's one error type.

use std::path::PathBuf;

/// Everything this crate can refuse. Database errors name the file (and the row), so a
/// message read in a log says which store and which user to look at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument outside what the function accepts (wrong length, non-finite value…).
    #[error("invalid input: {0}")]
    Input(String),
    /// Scheme parameters outside their valid or bounded range.
    #[error("invalid parameters: {0}")]
    Params(String),
    /// The database file as a whole: missing, not SQLite, foreign, corrupt, or an
    /// SQLite failure.
    #[error("embedding database {}: {msg}", path.display())]
    Database { path: PathBuf, msg: String },
    /// One stored record failed its checks (checksum, blob length, captures count).
    #[error("embedding database {}: row of user {user:?}: {msg}", path.display())]
    Row {
        path: PathBuf,
        user: String,
        msg: String,
    },
    /// `verify` of a user who is not enrolled.
    #[error("embedding database {}: user {user:?} is not enrolled", path.display())]
    UnknownUser { path: PathBuf, user: String },
    /// `enrol` of a user who already is (remove first to re-enrol).
    #[error("embedding database {}: user {user:?} is already enrolled", path.display())]
    AlreadyEnrolled { path: PathBuf, user: String },
    /// Serialized bytes (an NDB) that do not parse.
    #[error("malformed bytes: {0}")]
    Decode(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
