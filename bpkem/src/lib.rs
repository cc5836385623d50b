//! BPKEM (biometric private-key encryption and management, PLOS ONE 2023) as a
//! touchstone scheme: a biometric key from a fuzzy extractor protects an LWE key pair
//! whose seed is split among holders with Asmuth–Bloom threshold sharing.
//!
//! * [`descriptor`] — minutiae (Alg. 2, control points and barycentric weights) or
//!   embeddings (seeded random projections) → an n-bit descriptor.
//! * [`fuzzy`] — the sample-then-lock reusable fuzzy extractor: Gen, Rep, helper-data
//!   bytes, and its failure probability in theory.
//! * [`asmuth_bloom`] — (k, n) CRT secret sharing.
//! * [`lwe`] — Regev LWE key pairs from a seed, bit encryption, public-key checks.
//! * [`flow`] — enrolment and recovery with per-step times (the paper's T_L, T_H, T_N,
//!   T_K, T_S, T_F) and bytes stored per user.
//! * [`metrics`] — success against Hamming error with confidence intervals, FRR/FAR,
//!   distance histograms.
//!
//! Invariants: Rep returns the enrolled key or an error, never another key (a 128-bit
//! tag per locker); recovery returns a key pair only if its public key equals the stored
//! one, so fewer than k shares, a corrupted share or a wrong biometric key fail; hostile
//! helper-data and public-key bytes are errors, never panics, and are length-checked
//! before allocation.
#![warn(missing_docs)]

pub mod asmuth_bloom;
pub mod descriptor;
pub mod error;
pub mod flow;
pub mod fuzzy;
pub mod lwe;
pub mod metrics;

pub use error::{BpkemError, Result};
