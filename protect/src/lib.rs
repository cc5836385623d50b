//! Template protection next to Blind-Touch: the algorithms of the schemes the harness
//! compares it with, kept free of the protocol, training and bench crates (which depend
//! on this one).
//!
//! | module | holds |
//! |---|---|
//! | [`embedding_db`] | the unprotected baseline: k-capture averaging, cosine matching, and a SQLite store of plaintext embeddings (what a naive face-login server keeps) |
//! | [`iom`] | Index-of-Max hashing (GRP and URP), cancelable templates drawn from a per-user token |
//! | [`ndb`] | random-projection binarisation and negative databases (K-hidden generation), matching and the Hamming-distance estimate |
//! | [`metrics`] | the unlinkability measures D↔(s) and D↔sys of Gomez-Barrero et al. 2018 |
//!
//! Every public entry point validates its arguments and returns [`Error`] rather than
//! panicking; sizes are bounded before anything is allocated.

pub mod embedding_db;
mod error;
pub mod iom;
pub mod metrics;
pub mod ndb;
mod rng;

pub use error::{Error, Result};
