//! RNS polynomial arithmetic for BFV matching, on the CPU and (feature `cuda`) the GPU.
//!
//! - [`arith`]: Shoup and Barrett arithmetic for primes below 2⁶², NTT-friendly primes.
//! - [`ntt`]: the negacyclic NTT, word-for-word compatible with fhe-math 0.1.1.
//! - [`rns`]: bases of primes and limb-major batches of polynomials.
//! - [`convert`]: exact lift Q → P and scale-and-round Q∪P → Q (Garner mixed radix).
//! - [`fused`]: the fused columnar distance for a gallery group.
//! - [`expanded`]: the same distance with the query's and the group's squares computed
//!   once, leaving three products per coefficient and feature (the CPU engine's form).
//! - [`backend`]: the [`Backend`] trait, the CPU engine and the run-time choice.
//! - `gpu` (feature `cuda`, and the tests): the GPU engine over a device — CUDA
//!   ([`cuda`]), or in the tests the CUDA source compiled for the host with an emulated
//!   grid, compared with the CPU engine word for word.
//!
//! Invariant: every result here is exact integer arithmetic; the CPU and CUDA engines
//! produce the same words.
#![warn(missing_docs)]

pub mod arith;
pub mod backend;
pub mod convert;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod expanded;
pub mod fused;
#[cfg(any(feature = "cuda", test))]
mod gpu;
pub mod ntt;
pub mod rns;
mod simd;

pub use backend::{select, Backend, BackendKind, CpuBackend, CpuForm, Selected, StoredGallery};
pub use fused::FusedPlan;
pub use ntt::NttTable;
pub use rns::RnsBasis;

/// What can go wrong in kernel set-up or calls.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A modulus that cannot serve (not prime, too large, no NTT of this size).
    #[error("modulus {p} for degree {n}: {why}")]
    Modulus {
        /// The modulus.
        p: u64,
        /// The ring degree (0 when not relevant).
        n: usize,
        /// Why it was refused.
        why: String,
    },
    /// Data of the wrong shape.
    #[error("{0}")]
    Shape(String),
    /// A device (driver, compiler, memory) failure.
    #[error("CUDA: {0}")]
    Device(String),
}
