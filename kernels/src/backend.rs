//! One trait over the CPU and CUDA engines, and the run-time choice between them.

use crate::expanded::ExpandedGroup;
use crate::fused::FusedPlan;
use crate::rns::RnsBasis;
use crate::KernelError;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An engine for RNS polynomial arithmetic and the fused columnar evaluation.
pub trait Backend: Send + Sync {
    /// Short name for reports: `cpu` or `cuda`.
    fn name(&self) -> &'static str;

    /// A line describing the device (CPU threads, GPU model).
    fn device(&self) -> String;

    /// Forward NTT of every limb of every polynomial (limb-major) in `data`.
    fn forward_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError>;

    /// Inverse NTT of every limb of every polynomial in `data`.
    fn inverse_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError>;

    /// Times whole-batch transforms of `data` (limb-major polynomials over `basis`, each
    /// word below its limb's modulus) kept where this backend keeps its data — device
    /// memory for a GPU, so no host↔device copy is inside the timing: `repeats` rounds of
    /// one forward then one inverse transform of the batch; the best round of each.
    fn time_resident_ntt(
        &self,
        basis: &RnsBasis,
        data: &[u64],
        repeats: usize,
    ) -> Result<(Duration, Duration), KernelError>;

    /// Measured copy bandwidth of the memory the gallery lives in, in bytes moved (read
    /// plus written) per second: the ceiling a bandwidth-bound kernel is judged against.
    fn copy_bandwidth(&self, bytes: usize) -> Result<f64, KernelError>;

    /// Takes the gallery groups (each `plan.unextended_len()` words: the group's ciphertexts
    /// over Q in NTT form), extends and keeps them — on the device for GPU backends — for
    /// the queries to come.
    fn store_gallery(
        &self,
        plan: &Arc<FusedPlan>,
        groups: Vec<Vec<u64>>,
    ) -> Result<Box<dyn StoredGallery>, KernelError>;
}

/// A gallery held by a backend, extended to Q∪P in NTT form.
pub trait StoredGallery: Send + Sync {
    /// Number of groups.
    fn groups(&self) -> usize;

    /// Bytes held for the extended gallery.
    fn bytes(&self) -> usize;

    /// Scores every group against one query (`plan.unextended_len()` words over Q in NTT
    /// form): per group, the 3 result polynomials over Q in NTT form.
    fn evaluate(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError>;

    /// As [`StoredGallery::evaluate`], for a query already extended to Q∪P (NTT form,
    /// `plan.extended_len()` words, e.g. by [`FusedPlan::extend_ntt`]): no extension here.
    /// Every word must be below its limb's prime (the length is checked here; bytes from
    /// the wire are checked by `ExtendedQuery::decode`).
    fn evaluate_extended(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError>;

    /// As [`StoredGallery::evaluate_extended`], with the result polynomials in coefficient
    /// form (the form they are serialized in). By default the NTT-form results
    /// transformed back on the CPU; the CPU engine skips the transform there and back.
    fn evaluate_extended_coefficients(
        &self,
        query: &[u64],
        plan: &FusedPlan,
    ) -> Result<Vec<Vec<u64>>, KernelError> {
        let mut results = self.evaluate_extended(query)?;
        for result in &mut results {
            plan.q().inverse(result)?;
        }
        Ok(results)
    }
}

/// The CPU engine: rayon across groups, polynomials and limbs.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        format!("CPU, {} rayon threads", rayon::current_num_threads())
    }

    fn forward_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError> {
        basis.forward(data)
    }

    fn inverse_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError> {
        basis.inverse(data)
    }

    fn time_resident_ntt(
        &self,
        basis: &RnsBasis,
        data: &[u64],
        repeats: usize,
    ) -> Result<(Duration, Duration), KernelError> {
        let mut batch = data.to_vec();
        basis.count(&batch)?;
        let (mut forward, mut inverse) = (Duration::MAX, Duration::MAX);
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            basis.forward(&mut batch)?;
            forward = forward.min(start.elapsed());
            let start = Instant::now();
            basis.inverse(&mut batch)?;
            inverse = inverse.min(start.elapsed());
        }
        Ok((forward, inverse))
    }

    fn copy_bandwidth(&self, bytes: usize) -> Result<f64, KernelError> {
        let words = (bytes / 8).max(1);
        let src = vec![1u64; words];
        let mut dst = vec![0u64; words];
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            dst.par_chunks_mut(1 << 16)
                .zip(src.par_chunks(1 << 16))
                .for_each(|(d, s)| d.copy_from_slice(s));
            best = best.min(start.elapsed().as_secs_f64());
            std::hint::black_box(&dst);
        }
        Ok(2.0 * (words * 8) as f64 / best)
    }

    fn store_gallery(
        &self,
        plan: &Arc<FusedPlan>,
        groups: Vec<Vec<u64>>,
    ) -> Result<Box<dyn StoredGallery>, KernelError> {
        let form = CpuForm::for_plan(plan, groups.len());
        self.store_gallery_as(plan, groups, form)
    }
}

impl CpuBackend {
    /// [`Backend::store_gallery`] in the given form (the trait picks it with
    /// [`CpuForm::for_plan`]); the same words either way.
    pub fn store_gallery_as(
        &self,
        plan: &Arc<FusedPlan>,
        groups: Vec<Vec<u64>>,
        form: CpuForm,
    ) -> Result<Box<dyn StoredGallery>, KernelError> {
        plan.check_groups(&groups)?;
        // Group by group, so that only one extended copy per thread exists at a time.
        let groups = match form {
            CpuForm::Expanded => CpuGroups::Expanded(
                groups
                    .par_iter()
                    .map(|group| plan.expand_group(&plan.extend_ntt(group)?))
                    .collect::<Result<_, _>>()?,
            ),
            CpuForm::Direct => CpuGroups::Direct(
                groups
                    .par_iter()
                    .map(|group| plan.extend_ntt(group))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Box::new(CpuGallery {
            plan: plan.clone(),
            groups,
        }))
    }
}

/// How the CPU engine keeps a stored gallery: extended groups for the direct sum, or the
/// expanded form's operands and squares ([`crate::expanded`]). The same words either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuForm {
    /// Extended groups, accumulated with the direct Σⱼ w̃ⱼ(Qⱼ − Gⱼ)⊗(Qⱼ − Gⱼ).
    Direct,
    /// The expanded form's tile-major operands and square terms.
    Expanded,
}

impl CpuForm {
    /// Direct where every limb of Q∪P accumulates on AVX-512 (IFMA or the 28-bit split):
    /// there the direct sum's two extra products per term cost less than the expanded
    /// form's per-query square and larger operands (one thread, n = 4096: 25 groups
    /// 36–53 ms direct against 39–51 ms expanded, 60 groups 87–92 against 93–113 ms).
    /// Otherwise — portable code, where the expanded form's three products per term win
    /// 1.6–4× per group — expanded from [`EXPANDED_FROM_GROUPS`] groups.
    pub fn for_plan(plan: &FusedPlan, groups: usize) -> Self {
        if plan.accumulates_on_vectors() || groups < EXPANDED_FROM_GROUPS {
            Self::Direct
        } else {
            Self::Expanded
        }
    }
}

/// Without the AVX-512 accumulations, galleries of at least this many groups are kept in
/// the expanded form ([`crate::expanded`]): its per-query squares cost about what 4–6
/// groups save.
pub const EXPANDED_FROM_GROUPS: usize = 6;

struct CpuGallery {
    plan: Arc<FusedPlan>,
    groups: CpuGroups,
}

/// The same words either way; only the cost differs.
enum CpuGroups {
    /// Extended groups in the usual layout, for the direct form.
    Direct(Vec<Vec<u64>>),
    /// The expanded form's operands and square terms.
    Expanded(Vec<ExpandedGroup>),
}

impl StoredGallery for CpuGallery {
    fn groups(&self) -> usize {
        match &self.groups {
            CpuGroups::Direct(groups) => groups.len(),
            CpuGroups::Expanded(groups) => groups.len(),
        }
    }

    fn bytes(&self) -> usize {
        match &self.groups {
            CpuGroups::Direct(groups) => groups.iter().map(|g| g.len() * 8).sum(),
            CpuGroups::Expanded(groups) => groups.iter().map(|g| g.len() * 8).sum(),
        }
    }

    fn evaluate(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError> {
        self.plan.check_unextended(query, "query")?;
        let query = self.plan.extend_ntt(query)?;
        self.evaluate_extended(&query)
    }

    fn evaluate_extended(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError> {
        self.each_group(query, |acc| self.plan.finish(acc))
    }

    fn evaluate_extended_coefficients(
        &self,
        query: &[u64],
        _plan: &FusedPlan,
    ) -> Result<Vec<Vec<u64>>, KernelError> {
        self.each_group(query, |acc| self.plan.finish_coefficients(acc))
    }
}

impl CpuGallery {
    /// Every group's accumulation over Q∪P (NTT form), finished by `finish` as soon as
    /// it is made (while it is still in cache).
    fn each_group(
        &self,
        query: &[u64],
        finish: impl Fn(Vec<u64>) -> Vec<u64> + Sync,
    ) -> Result<Vec<Vec<u64>>, KernelError> {
        self.plan.check_extended(query, "extended query")?;
        Ok(match &self.groups {
            CpuGroups::Direct(groups) => groups
                .par_iter()
                .map(|group| finish(self.plan.accumulate(query, group)))
                .collect(),
            CpuGroups::Expanded(groups) => {
                let query = self.plan.expand_query(query)?;
                groups
                    .par_iter()
                    .map(|group| finish(self.plan.accumulate_expanded(&query, group)))
                    .collect()
            }
        })
    }
}

/// Which engine to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The CPU engine.
    Cpu,
    /// The CUDA engine (needs the `cuda` feature and a driver; falls back to the CPU).
    Cuda,
}

impl BackendKind {
    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, KernelError> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(KernelError::Shape(format!(
                "unknown kernel backend `{other}`; known: cpu, cuda"
            ))),
        }
    }
}

/// A backend together with why it is not the one asked for, if it is not.
#[derive(Clone)]
pub struct Selected {
    /// The engine to use.
    pub backend: Arc<dyn Backend>,
    /// Set when the request fell back (e.g. CUDA asked for, no driver found).
    pub fallback: Option<String>,
}

/// The engine for `kind`. A CUDA request in a build without the `cuda` feature, or on a
/// machine without a usable driver or GPU, falls back to the CPU and says why.
pub fn select(kind: BackendKind) -> Selected {
    match kind {
        BackendKind::Cpu => Selected {
            backend: Arc::new(CpuBackend),
            fallback: None,
        },
        BackendKind::Cuda => match cuda_backend() {
            Ok(backend) => Selected {
                backend,
                fallback: None,
            },
            Err(why) => Selected {
                backend: Arc::new(CpuBackend),
                fallback: Some(format!(
                    "CUDA backend unavailable ({why}); using the CPU backend"
                )),
            },
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_backend() -> Result<Arc<dyn Backend>, String> {
    crate::cuda::CudaBackend::new()
        .map(|b| Arc::new(b) as Arc<dyn Backend>)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda_backend() -> Result<Arc<dyn Backend>, String> {
    Err("this build has no CUDA support; rebuild with `--features cuda`".into())
}
