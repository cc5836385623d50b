//! Which engine evaluates the `columnar` layout on the cluster servers: fhe.rs's
//! per-operation reference, or the fused kernel (`kernels`) on the CPU or on CUDA.

use crate::error::{ProtocolError, Result};
use kernels::{Backend, BackendKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The `columnar` evaluation engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnarEngine {
    /// fhe.rs: 16 tensor products per group, each extending, multiplying and scaling.
    Fhe,
    /// The fused kernel on the CPU: one extension per query, one scale per group.
    #[default]
    Cpu,
    /// The fused kernel on CUDA (falls back to the CPU, and says so, without a GPU).
    Cuda,
}

impl ColumnarEngine {
    /// All engines, in table order.
    pub const ALL: [ColumnarEngine; 3] = [Self::Fhe, Self::Cpu, Self::Cuda];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fhe => "fhe",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }

    /// Resolves the engine to what this machine can run.
    pub fn resolve(self) -> ResolvedEngine {
        let kind = match self {
            Self::Fhe => {
                return ResolvedEngine {
                    requested: self,
                    backend: None,
                    fallback: None,
                }
            }
            Self::Cpu => BackendKind::Cpu,
            Self::Cuda => BackendKind::Cuda,
        };
        let selected = kernels::select(kind);
        ResolvedEngine {
            requested: self,
            backend: Some(selected.backend),
            fallback: selected.fallback,
        }
    }
}

impl fmt::Display for ColumnarEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ColumnarEngine {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                ProtocolError::Input(format!(
                    "unknown columnar engine `{s}`; known: fhe, cpu, cuda"
                ))
            })
    }
}

/// An engine choice made concrete: the kernel backend (None for fhe.rs) and, when the
/// request could not be honoured, why.
#[derive(Clone)]
pub struct ResolvedEngine {
    /// What was asked for.
    pub requested: ColumnarEngine,
    /// The kernel backend for the fused engines.
    pub backend: Option<Arc<dyn Backend>>,
    /// Why the backend differs from the request (e.g. no CUDA device).
    pub fallback: Option<String>,
}

impl ResolvedEngine {
    /// The engine that actually runs: `fhe`, `cpu` or `cuda`.
    pub fn running(&self) -> &'static str {
        self.backend.as_ref().map_or("fhe", |b| b.name())
    }
}

impl fmt::Debug for ResolvedEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedEngine")
            .field("requested", &self.requested)
            .field("running", &self.running())
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl From<kernels::KernelError> for ProtocolError {
    fn from(e: kernels::KernelError) -> Self {
        ProtocolError::Input(format!("kernel: {e}"))
    }
}
