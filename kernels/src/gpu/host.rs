//! The tests' device: `cuda_kernels.cu` compiled as host C++ (build.rs) with an emulated
//! grid, driven by the same engine as the CUDA device. Every launch's argument list is
//! checked against the kernel's parameters here — something a real GPU never reports —
//! and the results are compared word for word with the CPU engine.

use super::{Arg, Device, GpuBackend, Grid, Kernel, RadixArgs};
use crate::KernelError;
use std::cell::UnsafeCell;

type G = u32;

extern "C" {
    fn host_ntt_forward_level(
        gx: G,
        gy: G,
        bx: G,
        data: u64,
        omegas: u64,
        omegas_shoup: u64,
        moduli: u64,
        n: u32,
        h: u32,
        rows: u32,
        count: u32,
        first: u32,
        stride: u32,
    );
    fn host_ntt_forward_finish(
        gx: G,
        gy: G,
        bx: G,
        data: u64,
        moduli: u64,
        n: u32,
        rows: u32,
        count: u32,
        first: u32,
        stride: u32,
    );
    fn host_ntt_inverse_level(
        gx: G,
        gy: G,
        bx: G,
        data: u64,
        zetas: u64,
        zetas_shoup: u64,
        moduli: u64,
        n: u32,
        h: u32,
        rows: u32,
        count: u32,
        first: u32,
        stride: u32,
    );
    fn host_ntt_inverse_finish(
        gx: G,
        gy: G,
        bx: G,
        data: u64,
        moduli: u64,
        n_inv: u64,
        n_inv_shoup: u64,
        n: u32,
        rows: u32,
        count: u32,
        first: u32,
        stride: u32,
    );
    fn host_copy_q_limbs(
        gx: G,
        gy: G,
        bx: G,
        src: u64,
        dst: u64,
        n: u32,
        lq: u32,
        lqp: u32,
        polys: u32,
    );
    fn host_lift(
        gx: G,
        gy: G,
        bx: G,
        src: u64,
        dst: u64,
        r: RadixArgs,
        n: u32,
        lp: u32,
        polys: u32,
    );
    fn host_accumulate(
        gx: G,
        gy: G,
        bx: G,
        query: u64,
        gallery: u64,
        out: u64,
        moduli: u64,
        barrett_hi: u64,
        barrett_lo: u64,
        weights: u64,
        weights_shoup: u64,
        n: u32,
        limbs: u32,
        features: u32,
        groups: u32,
    );
    fn host_scale(
        gx: G,
        gy: G,
        bx: G,
        src: u64,
        dst: u64,
        rq: RadixArgs,
        rp: RadixArgs,
        q_inv_p: u64,
        q_inv_p_shoup: u64,
        t_q: u64,
        t_q_shoup: u64,
        t: u64,
        n: u32,
        polys: u32,
    );
}

/// Host memory standing in for device memory: the kernels write through its address.
pub struct HostBuffer {
    words: Box<[UnsafeCell<u64>]>,
}

// SAFETY: the engine touches a backend's buffers only under its lock, one launch at a time.
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    fn new(data: &[u64]) -> Self {
        Self {
            words: data.iter().map(|&w| UnsafeCell::new(w)).collect(),
        }
    }
}

/// The emulated device. `max_grid_y` is small so that the kernels' loops over rows beyond
/// grid.y — taken on a GPU only for galleries of 65,536+ rows — run in every test.
pub struct HostDevice {
    pub max_grid_y: u32,
}

/// The arguments of one launch, read in order and checked against the kernel's parameters.
struct Args<'a> {
    kernel: Kernel,
    list: &'a [Arg],
    next: usize,
}

impl Args<'_> {
    fn bad(&self, want: &str) -> KernelError {
        KernelError::Shape(format!(
            "kernel {}: argument {} should be {want}, got {}",
            self.kernel.name(),
            self.next,
            match self.list.get(self.next) {
                Some(Arg::Word(_)) => "a 64-bit word",
                Some(Arg::Half(_)) => "a 32-bit value",
                Some(Arg::Radix(_)) => "a radix struct",
                None => "nothing",
            }
        ))
    }

    fn word(&mut self) -> Result<u64, KernelError> {
        match self.list.get(self.next) {
            Some(Arg::Word(w)) => {
                self.next += 1;
                Ok(*w)
            }
            _ => Err(self.bad("a 64-bit word")),
        }
    }

    fn half(&mut self) -> Result<u32, KernelError> {
        match self.list.get(self.next) {
            Some(Arg::Half(h)) => {
                self.next += 1;
                Ok(*h)
            }
            _ => Err(self.bad("a 32-bit value")),
        }
    }

    fn radix(&mut self) -> Result<RadixArgs, KernelError> {
        match self.list.get(self.next) {
            Some(Arg::Radix(r)) => {
                self.next += 1;
                Ok(*r)
            }
            _ => Err(self.bad("a radix struct")),
        }
    }

    fn end(&self) -> Result<(), KernelError> {
        if self.next == self.list.len() {
            Ok(())
        } else {
            Err(KernelError::Shape(format!(
                "kernel {} takes {} arguments, the launch passed {}",
                self.kernel.name(),
                self.next,
                self.list.len()
            )))
        }
    }
}

impl Device for HostDevice {
    type Buffer = HostBuffer;

    fn name(&self) -> &'static str {
        "cuda-host-emulation"
    }

    fn describe(&self) -> String {
        "cuda_kernels.cu as host C++, emulated grid".into()
    }

    fn max_grid_y(&self) -> u32 {
        self.max_grid_y
    }

    fn upload(&self, data: &[u64]) -> Result<HostBuffer, KernelError> {
        Ok(HostBuffer::new(if data.is_empty() { &[0] } else { data }))
    }

    fn zeros(&self, len: usize) -> Result<HostBuffer, KernelError> {
        Ok(HostBuffer::new(&vec![0; len.max(1)]))
    }

    fn address(&self, buffer: &HostBuffer) -> u64 {
        buffer.words.as_ptr() as u64
    }

    fn download(&self, buffer: &HostBuffer, into: &mut [u64]) -> Result<(), KernelError> {
        if into.len() > buffer.words.len() {
            return Err(KernelError::Shape("download past the buffer".into()));
        }
        for (out, cell) in into.iter_mut().zip(buffer.words.iter()) {
            // SAFETY: no launch runs while the engine downloads (same lock, same thread).
            *out = unsafe { *cell.get() };
        }
        Ok(())
    }

    fn copy(&self, src: &HostBuffer, dst: &mut HostBuffer) -> Result<(), KernelError> {
        for (d, s) in dst.words.iter_mut().zip(src.words.iter()) {
            // SAFETY: as in `download`.
            *d.get_mut() = unsafe { *s.get() };
        }
        Ok(())
    }

    unsafe fn launch(&self, kernel: Kernel, grid: Grid, args: &[Arg]) -> Result<(), KernelError> {
        let (gx, gy, bx) = (grid.blocks.0, grid.blocks.1, grid.threads);
        let mut a = Args {
            kernel,
            list: args,
            next: 0,
        };
        // Every argument is read (and checked) before the call.
        // SAFETY (all calls): the caller guarantees the addresses point into live buffers
        // large enough for the launch; the signatures match host_kernels.cpp.
        match kernel {
            Kernel::ForwardLevel | Kernel::InverseLevel => {
                let v = (a.word()?, a.word()?, a.word()?, a.word()?);
                let h = (
                    a.half()?,
                    a.half()?,
                    a.half()?,
                    a.half()?,
                    a.half()?,
                    a.half()?,
                );
                a.end()?;
                let f = if kernel == Kernel::ForwardLevel {
                    host_ntt_forward_level
                } else {
                    host_ntt_inverse_level
                };
                unsafe { f(gx, gy, bx, v.0, v.1, v.2, v.3, h.0, h.1, h.2, h.3, h.4, h.5) }
            }
            Kernel::ForwardFinish => {
                let v = (a.word()?, a.word()?);
                let h = (a.half()?, a.half()?, a.half()?, a.half()?, a.half()?);
                a.end()?;
                unsafe { host_ntt_forward_finish(gx, gy, bx, v.0, v.1, h.0, h.1, h.2, h.3, h.4) }
            }
            Kernel::InverseFinish => {
                let v = (a.word()?, a.word()?, a.word()?, a.word()?);
                let h = (a.half()?, a.half()?, a.half()?, a.half()?, a.half()?);
                a.end()?;
                unsafe {
                    host_ntt_inverse_finish(gx, gy, bx, v.0, v.1, v.2, v.3, h.0, h.1, h.2, h.3, h.4)
                }
            }
            Kernel::CopyQLimbs => {
                let v = (a.word()?, a.word()?);
                let h = (a.half()?, a.half()?, a.half()?, a.half()?);
                a.end()?;
                unsafe { host_copy_q_limbs(gx, gy, bx, v.0, v.1, h.0, h.1, h.2, h.3) }
            }
            Kernel::Lift => {
                let v = (a.word()?, a.word()?);
                let r = a.radix()?;
                let h = (a.half()?, a.half()?, a.half()?);
                a.end()?;
                unsafe { host_lift(gx, gy, bx, v.0, v.1, r, h.0, h.1, h.2) }
            }
            Kernel::Accumulate => {
                let v = (
                    a.word()?,
                    a.word()?,
                    a.word()?,
                    a.word()?,
                    a.word()?,
                    a.word()?,
                    a.word()?,
                    a.word()?,
                );
                let h = (a.half()?, a.half()?, a.half()?, a.half()?);
                a.end()?;
                unsafe {
                    host_accumulate(
                        gx, gy, bx, v.0, v.1, v.2, v.3, v.4, v.5, v.6, v.7, h.0, h.1, h.2, h.3,
                    )
                }
            }
            Kernel::Scale => {
                let v = (a.word()?, a.word()?);
                let r = (a.radix()?, a.radix()?);
                let w = (a.word()?, a.word()?, a.word()?, a.word()?, a.word()?);
                let h = (a.half()?, a.half()?);
                a.end()?;
                unsafe {
                    host_scale(
                        gx, gy, bx, v.0, v.1, r.0, r.1, w.0, w.1, w.2, w.3, w.4, h.0, h.1,
                    )
                }
            }
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<(), KernelError> {
        Ok(())
    }
}

/// The GPU engine on the emulated device.
pub fn backend(max_grid_y: u32) -> GpuBackend<HostDevice> {
    GpuBackend::on(HostDevice { max_grid_y })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, CpuBackend};
    use crate::fused::FusedPlan;
    use crate::rns::RnsBasis;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::sync::Arc;

    /// `polys` random polynomials over `primes` (limb-major), each word below its limb's
    /// modulus.
    fn random(rng: &mut ChaCha8Rng, n: usize, primes: &[u64], polys: usize) -> Vec<u64> {
        (0..polys * primes.len() * n)
            .map(|i| rng.random_range(0..primes[(i / n) % primes.len()]))
            .collect()
    }

    /// Weights of both signs, like a model's FC-1 row.
    fn weights(features: usize) -> Vec<i64> {
        (0..features as i64)
            .map(|j| {
                if j % 3 == 0 {
                    -(j * 7 + 90)
                } else {
                    j * 5 + 100
                }
            })
            .collect()
    }

    #[test]
    fn transforms_equal_the_cpu_engine_word_for_word() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (n, bits, limbs, polys, max_y) in [
            (8usize, 20u32, 1usize, 1usize, 65_535u32),
            (1024, 55, 3, 5, 4),
            (8192, 60, 2, 3, 5),
        ] {
            let primes = crate::arith::ntt_primes(bits, n, limbs, &[]).unwrap();
            let basis = RnsBasis::new(n, &primes).unwrap();
            let gpu = backend(max_y);
            let input = random(&mut rng, n, &primes, polys);
            let (mut ours, mut cpu) = (input.clone(), input.clone());
            gpu.forward_ntt(&basis, &mut ours).unwrap();
            CpuBackend.forward_ntt(&basis, &mut cpu).unwrap();
            assert_eq!(ours, cpu, "forward, n = {n}");
            assert_ne!(ours, input, "the transform changed nothing, n = {n}");
            gpu.inverse_ntt(&basis, &mut ours).unwrap();
            CpuBackend.inverse_ntt(&basis, &mut cpu).unwrap();
            assert_eq!(ours, cpu, "inverse, n = {n}");
            assert_eq!(ours, input, "inverse ∘ forward, n = {n}");
        }
    }

    #[test]
    fn resident_transforms_run_the_same_kernels_and_report_times() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let n = 1024;
        let primes = crate::arith::ntt_primes(50, n, 2, &[]).unwrap();
        let basis = RnsBasis::new(n, &primes).unwrap();
        let data = random(&mut rng, n, &primes, 2);
        let (f, i) = backend(3).time_resident_ntt(&basis, &data, 2).unwrap();
        let (cf, ci) = CpuBackend.time_resident_ntt(&basis, &data, 2).unwrap();
        for d in [f, i, cf, ci] {
            assert!(d > std::time::Duration::ZERO && d < std::time::Duration::MAX);
        }
        let mut wrong = data.clone();
        wrong.pop();
        assert!(backend(3).time_resident_ntt(&basis, &wrong, 1).is_err());
    }

    /// The whole fused evaluation — gallery extension on the device, query extension,
    /// accumulate, inverse transforms, scale-and-round, forward transforms — against the
    /// CPU engine, at col-8192's shape and at a small one with more limbs, with grid.y
    /// capped so the row loops wrap.
    #[test]
    fn fused_evaluation_equals_the_cpu_engine_word_for_word() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for (n, q_bits, q_limbs, features, groups, max_y) in [
            (8192usize, 55u32, 2usize, 16usize, 2usize, 3u32),
            (1024, 40, 3, 5, 3, 2),
            // Enough groups for the CPU engine's expanded form (20 features: a partial
            // accumulation chunk too).
            (256, 50, 2, 20, crate::backend::EXPANDED_FROM_GROUPS + 1, 2),
        ] {
            let q = crate::arith::ntt_primes(q_bits, n, q_limbs, &[]).unwrap();
            let t = crate::arith::ntt_primes(20, n, 1, &q).unwrap()[0];
            let plan = Arc::new(FusedPlan::new(n, &q, t, &weights(features)).unwrap());
            let gallery: Vec<Vec<u64>> = (0..groups)
                .map(|_| random(&mut rng, n, &q, 2 * features))
                .collect();
            let gpu = backend(max_y);
            let ours = gpu.store_gallery(&plan, gallery.clone()).unwrap();
            let cpu = CpuBackend.store_gallery(&plan, gallery).unwrap();
            assert_eq!(ours.groups(), groups);
            if groups < crate::backend::EXPANDED_FROM_GROUPS {
                assert_eq!(ours.bytes(), cpu.bytes());
            }
            for _ in 0..2 {
                let query = random(&mut rng, n, &q, 2 * features);
                let got = ours.evaluate(&query).unwrap();
                let want = cpu.evaluate(&query).unwrap();
                assert_eq!(got.len(), groups);
                assert_eq!(got, want, "n = {n}, {q_limbs} Q limbs");
                assert!(got.iter().flatten().any(|&w| w != 0));
                // A query extended on the host, uploaded as is: the same words.
                let extended = plan.extend_ntt(&query).unwrap();
                assert_eq!(ours.evaluate_extended(&extended).unwrap(), want, "n = {n}");
            }
        }
    }

    #[test]
    fn a_launch_with_the_wrong_arguments_is_refused_before_it_runs() {
        let d = HostDevice { max_grid_y: 1 };
        let grid = Grid {
            blocks: (1, 1),
            threads: 1,
        };
        // SAFETY: refused before any address is used.
        let short = unsafe { d.launch(Kernel::CopyQLimbs, grid, &[Arg::Word(0)]) };
        let e = short.unwrap_err().to_string();
        assert!(
            e.contains("copy_q_limbs") && e.contains("argument 1"),
            "{e}"
        );
        let swapped = [Arg::Half(0); 6];
        // SAFETY: as above.
        let e = unsafe { d.launch(Kernel::CopyQLimbs, grid, &swapped) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("argument 0 should be a 64-bit word"), "{e}");
        let long = [
            Arg::Word(0),
            Arg::Word(0),
            Arg::Half(0),
            Arg::Half(0),
            Arg::Half(0),
            Arg::Half(0),
            Arg::Half(0),
        ];
        // SAFETY: as above.
        let e = unsafe { d.launch(Kernel::CopyQLimbs, grid, &long) }
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes 6 arguments, the launch passed 7"), "{e}");
    }
}
