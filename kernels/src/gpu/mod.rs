//! The GPU engine, written once over a [`Device`]: the same integer steps as the CPU code,
//! one thread per butterfly or coefficient, in the kernels of `cuda_kernels.cu`.
//!
//! Two devices run it: CUDA through cudarc (feature `cuda`, [`crate::cuda`]) and, in the
//! tests, the same kernel source compiled as host C++ with a grid emulator (`host`), so
//! every launch — grid, argument list, buffer layout — is checked word for word against
//! the CPU engine on machines without a GPU. All work of one backend runs under one lock,
//! so callers on several threads (in-process clusters) share one device.
//!
//! The gallery is extended once on the device and stays there; a query uploads its 16
//! ciphertexts over Q, is extended on the device, and every group is accumulated, scaled
//! and transformed back in batched launches before one download of the results.

#[cfg(all(test, not(no_host_kernels)))]
mod host;

use crate::backend::{Backend, StoredGallery};
use crate::convert::FlatRadix;
use crate::fused::FusedPlan;
use crate::rns::RnsBasis;
use crate::KernelError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Threads per block of every launch.
pub const THREADS: u32 = 256;

/// The kernels of `cuda_kernels.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    ForwardLevel,
    ForwardFinish,
    InverseLevel,
    InverseFinish,
    CopyQLimbs,
    Lift,
    Accumulate,
    Scale,
}

impl Kernel {
    /// Every kernel, in the order of their names in [`Kernel::name`].
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) const ALL: [Kernel; 8] = [
        Kernel::ForwardLevel,
        Kernel::ForwardFinish,
        Kernel::InverseLevel,
        Kernel::InverseFinish,
        Kernel::CopyQLimbs,
        Kernel::Lift,
        Kernel::Accumulate,
        Kernel::Scale,
    ];

    /// The kernel's name in the source.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::ForwardLevel => "ntt_forward_level",
            Kernel::ForwardFinish => "ntt_forward_finish",
            Kernel::InverseLevel => "ntt_inverse_level",
            Kernel::InverseFinish => "ntt_inverse_finish",
            Kernel::CopyQLimbs => "copy_q_limbs",
            Kernel::Lift => "lift",
            Kernel::Accumulate => "accumulate",
            Kernel::Scale => "scale",
        }
    }
}

/// One kernel argument: a 64-bit word (a device address or a value), a 32-bit value, or
/// the mixed-radix constants struct.
#[derive(Clone, Copy)]
pub enum Arg {
    Word(u64),
    Half(u32),
    Radix(RadixArgs),
}

/// The device addresses of one [`FlatRadix`], laid out like `struct Radix` in the source.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RadixArgs {
    pub moduli: u64,
    pub prefix_inv: u64,
    pub prefix_inv_shoup: u64,
    pub within: u64,
    pub within_shoup: u64,
    pub half: u64,
    pub target_moduli: u64,
    pub target_consts: u64,
    pub target_consts_shoup: u64,
    pub target_products: u64,
    pub limbs: u32,
}

/// A launch shape: `blocks.0 × blocks.1` blocks of `threads` threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub blocks: (u32, u32),
    pub threads: u32,
}

/// What the engine needs of a device: memory, copies and launches on one in-order queue.
pub trait Device: Send + Sync + 'static {
    /// Device memory of u64 words.
    type Buffer: Send + Sync;

    /// The backend's short name in reports.
    fn name(&self) -> &'static str;

    /// A line naming the device.
    fn describe(&self) -> String;

    /// The largest grid.y of a launch; rows above it loop inside the kernels.
    fn max_grid_y(&self) -> u32;

    /// A buffer holding a copy of `data` (at least one word).
    fn upload(&self, data: &[u64]) -> Result<Self::Buffer, KernelError>;

    /// A buffer of `len` zero words (at least one).
    fn zeros(&self, len: usize) -> Result<Self::Buffer, KernelError>;

    /// The buffer's device address, as kernels take it.
    fn address(&self, buffer: &Self::Buffer) -> u64;

    /// Copies the buffer's first `into.len()` words to the host (after earlier work).
    fn download(&self, buffer: &Self::Buffer, into: &mut [u64]) -> Result<(), KernelError>;

    /// Copies `src` into `dst` on the device (same length).
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<(), KernelError>;

    /// Queues `kernel` on `grid` with `args`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters, and every address must point into a
    /// live buffer of this device large enough for the rows the launch touches.
    unsafe fn launch(&self, kernel: Kernel, grid: Grid, args: &[Arg]) -> Result<(), KernelError>;

    /// Waits for all queued work.
    fn synchronize(&self) -> Result<(), KernelError>;
}

/// NTT tables of one basis on the device, limb-major like the host tables.
struct DeviceTables<D: Device> {
    n: usize,
    moduli: D::Buffer,
    omegas: D::Buffer,
    omegas_shoup: D::Buffer,
    zetas: D::Buffer,
    zetas_shoup: D::Buffer,
    n_inv: D::Buffer,
    n_inv_shoup: D::Buffer,
}

/// Which rows of a batch a transform touches: `count` limbs from `first`, in polynomials
/// of `stride` limbs.
#[derive(Clone, Copy)]
struct Rows {
    total: u32,
    count: u32,
    first: u32,
    stride: u32,
}

impl Rows {
    /// Every limb of `polys` polynomials of `limbs` limbs.
    fn whole(polys: usize, limbs: usize) -> Result<Self, KernelError> {
        let count = u32_of("limbs", limbs)?;
        Ok(Self {
            total: u32_of("rows", polys * limbs)?,
            count,
            first: 0,
            stride: count,
        })
    }

    fn args(self) -> [Arg; 4] {
        [
            Arg::Half(self.total),
            Arg::Half(self.count),
            Arg::Half(self.first),
            Arg::Half(self.stride),
        ]
    }
}

/// Device tables by (degree, primes).
type TableCache<D> = HashMap<(usize, Vec<u64>), Arc<DeviceTables<D>>>;

struct Inner<D: Device> {
    device: D,
    tables: Mutex<TableCache<D>>,
    lock: Mutex<()>,
}

/// The GPU engine on device `D`. Cloning shares the device.
pub struct GpuBackend<D: Device> {
    inner: Arc<Inner<D>>,
}

impl<D: Device> Clone for GpuBackend<D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

fn too_large(what: &str, value: usize) -> KernelError {
    KernelError::Shape(format!(
        "{what} ({value}) does not fit a 32-bit launch argument"
    ))
}

fn u32_of(what: &str, value: usize) -> Result<u32, KernelError> {
    u32::try_from(value).map_err(|_| too_large(what, value))
}

impl<D: Device> GpuBackend<D> {
    pub(crate) fn on(device: D) -> Self {
        Self {
            inner: Arc::new(Inner {
                device,
                tables: Mutex::new(HashMap::new()),
                lock: Mutex::new(()),
            }),
        }
    }
}

impl<D: Device> Backend for GpuBackend<D> {
    fn name(&self) -> &'static str {
        self.inner.device.name()
    }

    fn device(&self) -> String {
        self.inner.device.describe()
    }

    fn forward_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError> {
        self.inner.whole(basis, data, true)
    }

    fn inverse_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError> {
        self.inner.whole(basis, data, false)
    }

    fn time_resident_ntt(
        &self,
        basis: &RnsBasis,
        data: &[u64],
        repeats: usize,
    ) -> Result<(Duration, Duration), KernelError> {
        let inner = &self.inner;
        let polys = basis.count(data)?;
        let _guard = inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let tables = inner.tables(basis)?;
        let d = &inner.device;
        let buffer = d.upload(data)?;
        let rows = Rows::whole(polys, basis.limbs())?;
        let address = d.address(&buffer);
        d.synchronize()?;
        let (mut forward, mut inverse) = (Duration::MAX, Duration::MAX);
        for _ in 0..repeats.max(1) {
            for (forward_pass, best) in [(true, &mut forward), (false, &mut inverse)] {
                let start = Instant::now();
                inner.transform(&tables, address, rows, forward_pass)?;
                d.synchronize()?;
                *best = (*best).min(start.elapsed());
            }
        }
        Ok((forward, inverse))
    }

    /// Device-to-device copy bandwidth, bytes moved (read + written) per second.
    fn copy_bandwidth(&self, bytes: usize) -> Result<f64, KernelError> {
        let d = &self.inner.device;
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let words = (bytes / 8).max(1);
        let src = d.zeros(words)?;
        let mut dst = d.zeros(words)?;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            d.synchronize()?;
            let start = Instant::now();
            d.copy(&src, &mut dst)?;
            d.synchronize()?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        Ok(2.0 * (words * 8) as f64 / best)
    }

    fn store_gallery(
        &self,
        plan: &Arc<FusedPlan>,
        groups: Vec<Vec<u64>>,
    ) -> Result<Box<dyn StoredGallery>, KernelError> {
        plan.check_groups(&groups)?;
        let gallery = DeviceGallery::new(self.inner.clone(), plan.clone(), groups.len())?;
        let flat: Vec<u64> = groups.concat();
        let d = &self.inner.device;
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let q = d.upload(&flat)?;
        gallery.extend(
            &q,
            d.address(&gallery.gallery),
            2 * plan.features() * groups.len(),
        )?;
        d.synchronize()?;
        Ok(Box::new(gallery))
    }
}

impl<D: Device> Inner<D> {
    fn tables(&self, basis: &RnsBasis) -> Result<Arc<DeviceTables<D>>, KernelError> {
        let key = (basis.degree(), basis.primes());
        let mut cache = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(&key) {
            return Ok(t.clone());
        }
        let mut all = [(); 7].map(|_| Vec::<u64>::new());
        for t in basis.tables() {
            let (w, ws) = t.forward_twiddles();
            let (z, zs, ni, nis) = t.inverse_twiddles();
            all[0].push(t.modulus().value());
            all[1].extend_from_slice(w);
            all[2].extend_from_slice(ws);
            all[3].extend_from_slice(z);
            all[4].extend_from_slice(zs);
            all[5].push(ni);
            all[6].push(nis);
        }
        let d = &self.device;
        let tables = Arc::new(DeviceTables {
            n: basis.degree(),
            moduli: d.upload(&all[0])?,
            omegas: d.upload(&all[1])?,
            omegas_shoup: d.upload(&all[2])?,
            zetas: d.upload(&all[3])?,
            zetas_shoup: d.upload(&all[4])?,
            n_inv: d.upload(&all[5])?,
            n_inv_shoup: d.upload(&all[6])?,
        });
        cache.insert(key, tables.clone());
        Ok(tables)
    }

    /// A grid of `threads` threads along x and `rows` rows along y (capped: the kernels
    /// loop over the rows above the device's limit).
    fn grid(&self, threads: usize, rows: u32) -> Result<Grid, KernelError> {
        Ok(Grid {
            blocks: (
                u32_of("blocks", threads.div_ceil(THREADS as usize))?,
                rows.clamp(1, self.device.max_grid_y()),
            ),
            threads: THREADS,
        })
    }

    /// Every butterfly level of one direction, then that direction's finishing pass, over
    /// the selected rows of the batch at device address `data`.
    fn transform(
        &self,
        t: &DeviceTables<D>,
        data: u64,
        rows: Rows,
        forward: bool,
    ) -> Result<(), KernelError> {
        let d = &self.device;
        let n = u32_of("degree", t.n)?;
        let moduli = d.address(&t.moduli);
        let (level, twiddles) = if forward {
            (Kernel::ForwardLevel, (&t.omegas, &t.omegas_shoup))
        } else {
            (Kernel::InverseLevel, (&t.zetas, &t.zetas_shoup))
        };
        let halves: Vec<u32> = if forward {
            std::iter::successors(Some(n / 2), |h| (*h > 1).then_some(h / 2)).collect()
        } else {
            std::iter::successors(Some(1), |h| (h * 2 < n).then_some(h * 2)).collect()
        };
        let level_grid = self.grid(t.n / 2, rows.total)?;
        for h in halves {
            let mut args = vec![
                Arg::Word(data),
                Arg::Word(d.address(twiddles.0)),
                Arg::Word(d.address(twiddles.1)),
                Arg::Word(moduli),
                Arg::Half(n),
                Arg::Half(h),
            ];
            args.extend(rows.args());
            // SAFETY: the arguments follow the level kernels' signature; the rows stay
            // inside `data` (callers size it) and the tables hold n words per limb.
            unsafe { d.launch(level, level_grid, &args)? };
        }
        let mut args = vec![Arg::Word(data), Arg::Word(moduli)];
        let kernel = if forward {
            Kernel::ForwardFinish
        } else {
            args.push(Arg::Word(d.address(&t.n_inv)));
            args.push(Arg::Word(d.address(&t.n_inv_shoup)));
            Kernel::InverseFinish
        };
        args.push(Arg::Half(n));
        args.extend(rows.args());
        // SAFETY: as above, for the finishing kernels' signatures.
        unsafe { d.launch(kernel, self.grid(t.n, rows.total)?, &args) }
    }

    fn whole(&self, basis: &RnsBasis, data: &mut [u64], forward: bool) -> Result<(), KernelError> {
        let polys = basis.count(data)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let tables = self.tables(basis)?;
        let d = &self.device;
        let buffer = d.upload(data)?;
        let rows = Rows::whole(polys, basis.limbs())?;
        self.transform(&tables, d.address(&buffer), rows, forward)?;
        d.download(&buffer, data)?;
        d.synchronize()
    }
}

/// Device copies of one [`FlatRadix`], and the struct of addresses the kernels take.
struct DeviceRadix<D: Device> {
    _buffers: Vec<D::Buffer>,
    args: RadixArgs,
}

impl<D: Device> DeviceRadix<D> {
    fn new(d: &D, r: &FlatRadix) -> Result<Self, KernelError> {
        let parts = [
            &r.moduli,
            &r.prefix_inv,
            &r.prefix_inv_shoup,
            &r.within,
            &r.within_shoup,
            &r.half,
            &r.target_moduli,
            &r.target_consts,
            &r.target_consts_shoup,
            &r.target_products,
        ];
        let buffers = parts
            .iter()
            .map(|v| d.upload(if v.is_empty() { &[0] } else { v }))
            .collect::<Result<Vec<_>, _>>()?;
        let p: Vec<u64> = buffers.iter().map(|b| d.address(b)).collect();
        Ok(Self {
            args: RadixArgs {
                moduli: p[0],
                prefix_inv: p[1],
                prefix_inv_shoup: p[2],
                within: p[3],
                within_shoup: p[4],
                half: p[5],
                target_moduli: p[6],
                target_consts: p[7],
                target_consts_shoup: p[8],
                target_products: p[9],
                limbs: u32_of("radix limbs", r.moduli.len())?,
            },
            _buffers: buffers,
        })
    }
}

struct DeviceGallery<D: Device> {
    inner: Arc<Inner<D>>,
    plan: Arc<FusedPlan>,
    groups: usize,
    gallery: D::Buffer,
    q_tables: Arc<DeviceTables<D>>,
    qp_tables: Arc<DeviceTables<D>>,
    lift: DeviceRadix<D>,
    scale_q: DeviceRadix<D>,
    scale_p: DeviceRadix<D>,
    /// Q⁻¹ mod P and t mod Q with Shoup quotients.
    q_inv_p: [D::Buffer; 2],
    t_q: [D::Buffer; 2],
    /// Per Q∪P limb: modulus, Barrett high and low words; weights `[limb][feature]`.
    barrett: [D::Buffer; 3],
    weights: [D::Buffer; 2],
}

impl<D: Device> DeviceGallery<D> {
    fn new(inner: Arc<Inner<D>>, plan: Arc<FusedPlan>, groups: usize) -> Result<Self, KernelError> {
        let d = &inner.device;
        let (q_inv_p, t_q) = plan.scaler().constants();
        let (rq, rp) = plan.scaler().radices();
        let split = |v: &[(u64, u64)]| -> (Vec<u64>, Vec<u64>) { v.iter().copied().unzip() };
        let (qi, qis) = split(&q_inv_p);
        let (tq, tqs) = split(&t_q);
        let mut barrett = [Vec::new(), Vec::new(), Vec::new()];
        for t in plan.qp().tables() {
            let p = t.modulus().value();
            let b = u128::MAX / p as u128;
            barrett[0].push(p);
            barrett[1].push((b >> 64) as u64);
            barrett[2].push(b as u64);
        }
        let mut weights = [Vec::new(), Vec::new()];
        for limb in plan.weight_constants() {
            weights[0].extend(limb.iter().map(|c| c.value));
            weights[1].extend(limb.iter().map(|c| c.shoup));
        }
        let len = groups
            .checked_mul(plan.extended_len())
            .ok_or_else(|| too_large("gallery words", usize::MAX))?;
        Ok(Self {
            gallery: d.zeros(len)?,
            q_tables: inner.tables(plan.q())?,
            qp_tables: inner.tables(plan.qp())?,
            lift: DeviceRadix::new(d, &plan.lift().radix().flat())?,
            scale_q: DeviceRadix::new(d, &rq.flat())?,
            scale_p: DeviceRadix::new(d, &rp.flat())?,
            q_inv_p: [d.upload(&qi)?, d.upload(&qis)?],
            t_q: [d.upload(&tq)?, d.upload(&tqs)?],
            barrett: [
                d.upload(&barrett[0])?,
                d.upload(&barrett[1])?,
                d.upload(&barrett[2])?,
            ],
            weights: [d.upload(&weights[0])?, d.upload(&weights[1])?],
            inner,
            plan,
            groups,
        })
    }

    /// Extends `polys` polynomials over Q in NTT form (`q`, consumed as scratch) into the
    /// polynomials over Q∪P at device address `out`.
    fn extend(&self, q: &D::Buffer, out: u64, polys: usize) -> Result<(), KernelError> {
        let inner = &self.inner;
        let d = &inner.device;
        let n = u32_of("degree", self.plan.degree())?;
        let lq = u32_of("limbs", self.plan.q().limbs())?;
        let lp = u32_of("limbs", self.plan.p().limbs())?;
        let polys32 = u32_of("polynomials", polys)?;
        let src = d.address(q);
        let lqp = lq + lp;
        let args = [
            Arg::Word(src),
            Arg::Word(out),
            Arg::Half(n),
            Arg::Half(lq),
            Arg::Half(lqp),
            Arg::Half(polys32),
        ];
        let grid = inner.grid(polys * (lq * n) as usize, 1)?;
        // SAFETY: `q` holds polys × lq × n words and `out` polys × (lq + lp) × n.
        unsafe { d.launch(Kernel::CopyQLimbs, grid, &args)? };
        let q_rows = Rows {
            total: u32_of("rows", polys * lq as usize)?,
            count: lq,
            first: 0,
            stride: lq,
        };
        inner.transform(&self.q_tables, src, q_rows, false)?;
        let args = [
            Arg::Word(src),
            Arg::Word(out),
            Arg::Radix(self.lift.args),
            Arg::Half(n),
            Arg::Half(lp),
            Arg::Half(polys32),
        ];
        let grid = inner.grid(polys * n as usize, 1)?;
        // SAFETY: as above.
        unsafe { d.launch(Kernel::Lift, grid, &args)? };
        let p_rows = Rows {
            total: u32_of("rows", polys * lp as usize)?,
            count: lp,
            first: lq,
            stride: lqp,
        };
        inner.transform(&self.qp_tables, out, p_rows, true)
    }
}

impl<D: Device> StoredGallery for DeviceGallery<D> {
    fn groups(&self) -> usize {
        self.groups
    }

    fn bytes(&self) -> usize {
        self.groups * self.plan.extended_len() * 8
    }

    fn evaluate(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError> {
        self.plan.check_unextended(query, "query")?;
        let d = &self.inner.device;
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let q = d.upload(query)?;
        let extended = d.zeros(self.plan.extended_len())?;
        self.extend(&q, d.address(&extended), 2 * self.plan.features())?;
        self.score(&extended)
    }

    fn evaluate_extended(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError> {
        self.plan.check_extended(query, "extended query")?;
        let d = &self.inner.device;
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let extended = d.upload(query)?;
        self.score(&extended)
    }
}

impl<D: Device> DeviceGallery<D> {
    /// Accumulate, scale and transform every group against the extended query on the
    /// device (the caller holds the lock); the results on the host.
    fn score(&self, extended: &D::Buffer) -> Result<Vec<Vec<u64>>, KernelError> {
        let inner = &self.inner;
        let d = &inner.device;
        let plan = &self.plan;
        let n = u32_of("degree", plan.degree())?;
        let lq = u32_of("limbs", plan.q().limbs())?;
        let lqp = u32_of("limbs", plan.qp().limbs())?;
        let features = u32_of("features", plan.features())?;
        let groups = u32_of("groups", self.groups)?;

        let acc = d.zeros(self.groups * 3 * plan.qp().poly_len())?;
        let accp = d.address(&acc);
        let [m, bh, bl] = &self.barrett;
        let args = [
            Arg::Word(d.address(extended)),
            Arg::Word(d.address(&self.gallery)),
            Arg::Word(accp),
            Arg::Word(d.address(m)),
            Arg::Word(d.address(bh)),
            Arg::Word(d.address(bl)),
            Arg::Word(d.address(&self.weights[0])),
            Arg::Word(d.address(&self.weights[1])),
            Arg::Half(n),
            Arg::Half(lqp),
            Arg::Half(features),
            Arg::Half(groups),
        ];
        let grid = inner.grid((n * lqp) as usize, groups)?;
        // SAFETY: buffers sized from the plan: query and each group extended_len, acc
        // groups × 3 polys over Q∪P.
        unsafe { d.launch(Kernel::Accumulate, grid, &args)? };

        let polys = u32_of("polynomials", self.groups * 3)?;
        let acc_rows = Rows {
            total: u32_of("rows", self.groups * 3 * lqp as usize)?,
            count: lqp,
            first: 0,
            stride: lqp,
        };
        inner.transform(&self.qp_tables, accp, acc_rows, false)?;
        let out = d.zeros(self.groups * plan.result_len())?;
        let outp = d.address(&out);
        let args = [
            Arg::Word(accp),
            Arg::Word(outp),
            Arg::Radix(self.scale_q.args),
            Arg::Radix(self.scale_p.args),
            Arg::Word(d.address(&self.q_inv_p[0])),
            Arg::Word(d.address(&self.q_inv_p[1])),
            Arg::Word(d.address(&self.t_q[0])),
            Arg::Word(d.address(&self.t_q[1])),
            Arg::Word(plan.plaintext_modulus()),
            Arg::Half(n),
            Arg::Half(polys),
        ];
        let grid = inner.grid(polys as usize * n as usize, 1)?;
        // SAFETY: acc holds polys over Q∪P, out polys over Q.
        unsafe { d.launch(Kernel::Scale, grid, &args)? };
        let out_rows = Rows {
            total: u32_of("rows", polys as usize * lq as usize)?,
            count: lq,
            first: 0,
            stride: lq,
        };
        inner.transform(&self.q_tables, outp, out_rows, true)?;
        let mut host = vec![0u64; self.groups * plan.result_len()];
        d.download(&out, &mut host)?;
        d.synchronize()?;
        Ok(host
            .chunks_exact(plan.result_len())
            .map(<[u64]>::to_vec)
            .collect())
    }
}
