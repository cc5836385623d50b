//! The CUDA engine: the steps of the CPU code, one thread per butterfly or coefficient,
//! compiled with NVRTC when the backend starts. All work runs on one stream, serialized
//! by a lock, so callers on several threads (in-process clusters) share one device.
//!
//! The gallery is extended once on the device and stays there; a query uploads its 16
//! ciphertexts over Q, is extended on the device, and every group is accumulated, scaled
//! and transformed back in batched launches before one download of the results.

use crate::backend::{Backend, StoredGallery};
use crate::convert::FlatRadix;
use crate::fused::FusedPlan;
use crate::rns::RnsBasis;
use crate::KernelError;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SOURCE: &str = include_str!("cuda_kernels.cu");
const THREADS: u32 = 256;
/// Grid rows above this loop inside the kernels (grid.y is limited to 65,535).
const MAX_GRID_Y: u32 = 65_535;

fn device(e: impl std::fmt::Display) -> KernelError {
    KernelError::Device(e.to_string())
}

struct Functions {
    forward_level: CudaFunction,
    forward_finish: CudaFunction,
    inverse_level: CudaFunction,
    inverse_finish: CudaFunction,
    copy_q_limbs: CudaFunction,
    lift: CudaFunction,
    accumulate: CudaFunction,
    scale: CudaFunction,
}

/// NTT tables of one basis on the device, limb-major like the host tables.
struct DeviceTables {
    n: usize,
    moduli: CudaSlice<u64>,
    omegas: CudaSlice<u64>,
    omegas_shoup: CudaSlice<u64>,
    zetas: CudaSlice<u64>,
    zetas_shoup: CudaSlice<u64>,
    n_inv: CudaSlice<u64>,
    n_inv_shoup: CudaSlice<u64>,
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

/// Device tables by (degree, primes).
type TableCache = HashMap<(usize, Vec<u64>), Arc<DeviceTables>>;

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    f: Functions,
    tables: Mutex<TableCache>,
    lock: Mutex<()>,
    name: String,
}

/// The CUDA backend. Cloning shares the device context.
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
}

impl CudaBackend {
    /// Starts the backend on device 0: probes for the driver and NVRTC libraries first
    /// (cudarc panics when they are missing), then compiles the kernels for the device.
    pub fn new() -> Result<Self, KernelError> {
        // SAFETY: these only try to open the shared libraries.
        let present = unsafe {
            cudarc::driver::sys::is_culib_present() && cudarc::nvrtc::sys::is_culib_present()
        };
        if !present {
            return Err(KernelError::Device(
                "no CUDA driver or NVRTC library found".into(),
            ));
        }
        let count = CudaContext::device_count().map_err(device)?;
        if count < 1 {
            return Err(KernelError::Device("no CUDA device found".into()));
        }
        let ctx = CudaContext::new(0).map_err(device)?;
        let (major, minor) = ctx.compute_capability().map_err(device)?;
        let name = ctx.name().map_err(device)?;
        let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
        let ptx = compile_ptx_with_opts(
            SOURCE,
            CompileOptions {
                arch: Some(arch),
                ..Default::default()
            },
        )
        .map_err(device)?;
        let module = ctx.load_module(ptx).map_err(device)?;
        let load = |name: &str| module.load_function(name).map_err(device);
        let f = Functions {
            forward_level: load("ntt_forward_level")?,
            forward_finish: load("ntt_forward_finish")?,
            inverse_level: load("ntt_inverse_level")?,
            inverse_finish: load("ntt_inverse_finish")?,
            copy_q_limbs: load("copy_q_limbs")?,
            lift: load("lift")?,
            accumulate: load("accumulate")?,
            scale: load("scale")?,
        };
        // One stream, used under one lock: no cross-stream events are needed.
        // SAFETY: every allocation and launch below goes to `stream`.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(Self {
            inner: Arc::new(Inner {
                ctx,
                stream,
                f,
                tables: Mutex::new(HashMap::new()),
                lock: Mutex::new(()),
                name: format!("{name} (sm_{major}{minor})"),
            }),
        })
    }
}

impl Inner {
    fn upload(&self, data: &[u64]) -> Result<CudaSlice<u64>, KernelError> {
        self.stream.clone_htod(data).map_err(device)
    }

    fn zeros(&self, len: usize) -> Result<CudaSlice<u64>, KernelError> {
        self.stream.alloc_zeros::<u64>(len.max(1)).map_err(device)
    }

    fn ptr(&self, slice: &CudaSlice<u64>) -> u64 {
        let (ptr, _sync) = slice.device_ptr(&self.stream);
        ptr
    }

    fn tables(&self, basis: &RnsBasis) -> Result<Arc<DeviceTables>, KernelError> {
        let key = (basis.degree(), basis.primes());
        let mut cache = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(&key) {
            return Ok(t.clone());
        }
        let mut all = [(); 6].map(|_| Vec::<u64>::new());
        for t in basis.tables() {
            let (w, ws) = t.forward_twiddles();
            let (z, zs, ni, nis) = t.inverse_twiddles();
            all[0].push(t.modulus().value());
            all[1].extend_from_slice(w);
            all[2].extend_from_slice(ws);
            all[3].extend_from_slice(z);
            all[4].extend_from_slice(zs);
            all[5].push(ni);
            all[5].push(nis);
        }
        let (n_inv, n_inv_shoup): (Vec<u64>, Vec<u64>) =
            all[5].chunks(2).map(|c| (c[0], c[1])).unzip();
        let tables = Arc::new(DeviceTables {
            n: basis.degree(),
            moduli: self.upload(&all[0])?,
            omegas: self.upload(&all[1])?,
            omegas_shoup: self.upload(&all[2])?,
            zetas: self.upload(&all[3])?,
            zetas_shoup: self.upload(&all[4])?,
            n_inv: self.upload(&n_inv)?,
            n_inv_shoup: self.upload(&n_inv_shoup)?,
        });
        cache.insert(key, tables.clone());
        Ok(tables)
    }

    fn grid(&self, threads: usize, rows: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                threads.div_ceil(THREADS as usize) as u32,
                rows.clamp(1, MAX_GRID_Y),
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One level (`level`: forward or inverse butterflies of half-size h) over the selected
    /// rows of the batch at device address `data`, with that direction's twiddles.
    #[allow(clippy::too_many_arguments)]
    fn level(
        &self,
        level: &CudaFunction,
        data: u64,
        twiddles: (u64, u64),
        moduli: u64,
        n: u32,
        h: u32,
        rows: Rows,
    ) -> Result<(), KernelError> {
        let mut b = self.stream.launch_builder(level);
        b.arg(&data)
            .arg(&twiddles.0)
            .arg(&twiddles.1)
            .arg(&moduli)
            .arg(&n)
            .arg(&h);
        b.arg(&rows.total)
            .arg(&rows.count)
            .arg(&rows.first)
            .arg(&rows.stride);
        // SAFETY: the kernel's arguments match its signature; rows stay inside `data`.
        unsafe { b.launch(self.grid(n as usize / 2, rows.total)) }.map_err(device)?;
        Ok(())
    }

    /// Forward NTT of the selected rows of the batch at device address `data`.
    fn forward(&self, t: &DeviceTables, data: u64, rows: Rows) -> Result<(), KernelError> {
        let n = t.n as u32;
        let moduli = self.ptr(&t.moduli);
        let twiddles = (self.ptr(&t.omegas), self.ptr(&t.omegas_shoup));
        let mut h = n / 2;
        while h > 0 {
            self.level(&self.f.forward_level, data, twiddles, moduli, n, h, rows)?;
            h /= 2;
        }
        let mut b = self.stream.launch_builder(&self.f.forward_finish);
        b.arg(&data).arg(&moduli).arg(&n);
        b.arg(&rows.total)
            .arg(&rows.count)
            .arg(&rows.first)
            .arg(&rows.stride);
        // SAFETY: as in `level`.
        unsafe { b.launch(self.grid(t.n, rows.total)) }.map_err(device)?;
        Ok(())
    }

    /// Inverse NTT of the selected rows of the batch at device address `data`.
    fn inverse(&self, t: &DeviceTables, data: u64, rows: Rows) -> Result<(), KernelError> {
        let n = t.n as u32;
        let moduli = self.ptr(&t.moduli);
        let twiddles = (self.ptr(&t.zetas), self.ptr(&t.zetas_shoup));
        let mut h = 1;
        while h < n {
            self.level(&self.f.inverse_level, data, twiddles, moduli, n, h, rows)?;
            h *= 2;
        }
        let (n_inv, n_inv_shoup) = (self.ptr(&t.n_inv), self.ptr(&t.n_inv_shoup));
        let mut b = self.stream.launch_builder(&self.f.inverse_finish);
        b.arg(&data)
            .arg(&moduli)
            .arg(&n_inv)
            .arg(&n_inv_shoup)
            .arg(&n);
        b.arg(&rows.total)
            .arg(&rows.count)
            .arg(&rows.first)
            .arg(&rows.stride);
        // SAFETY: as in `level`.
        unsafe { b.launch(self.grid(t.n, rows.total)) }.map_err(device)?;
        Ok(())
    }

    fn whole(&self, basis: &RnsBasis, data: &mut [u64], forward: bool) -> Result<(), KernelError> {
        let polys = basis.count(data)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let tables = self.tables(basis)?;
        let d = self.upload(data)?;
        let limbs = basis.limbs() as u32;
        let rows = Rows {
            total: polys as u32 * limbs,
            count: limbs,
            first: 0,
            stride: limbs,
        };
        if forward {
            self.forward(&tables, self.ptr(&d), rows)?;
        } else {
            self.inverse(&tables, self.ptr(&d), rows)?;
        }
        self.stream.memcpy_dtoh(&d, data).map_err(device)?;
        self.stream.synchronize().map_err(device)
    }
}

/// Device copies of one [`FlatRadix`], and the struct of pointers the kernels take.
struct DeviceRadix {
    _buffers: Vec<CudaSlice<u64>>,
    args: RadixArgs,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RadixArgs {
    moduli: u64,
    prefix_inv: u64,
    prefix_inv_shoup: u64,
    within: u64,
    within_shoup: u64,
    half: u64,
    target_moduli: u64,
    target_consts: u64,
    target_consts_shoup: u64,
    target_products: u64,
    limbs: u32,
}

// SAFETY: a plain C struct of device addresses and one u32, laid out like `struct Radix`.
unsafe impl DeviceRepr for RadixArgs {}

impl DeviceRadix {
    fn new(inner: &Inner, r: &FlatRadix) -> Result<Self, KernelError> {
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
            .map(|v| inner.upload(if v.is_empty() { &[0] } else { v }))
            .collect::<Result<Vec<_>, _>>()?;
        let p: Vec<u64> = buffers.iter().map(|b| inner.ptr(b)).collect();
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
                limbs: r.moduli.len() as u32,
            },
            _buffers: buffers,
        })
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn device(&self) -> String {
        self.inner.name.clone()
    }

    fn forward_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError> {
        self.inner.whole(basis, data, true)
    }

    fn inverse_ntt(&self, basis: &RnsBasis, data: &mut [u64]) -> Result<(), KernelError> {
        self.inner.whole(basis, data, false)
    }

    fn copy_bandwidth(&self, bytes: usize) -> Result<f64, KernelError> {
        let inner = &self.inner;
        let _guard = inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let words = (bytes / 8).max(1);
        let src = inner.zeros(words)?;
        let mut dst = inner.zeros(words)?;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            inner.stream.synchronize().map_err(device)?;
            let start = std::time::Instant::now();
            inner.stream.memcpy_dtod(&src, &mut dst).map_err(device)?;
            inner.stream.synchronize().map_err(device)?;
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
        let _guard = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let q = self.inner.upload(&flat)?;
        gallery.extend(
            &q,
            self.inner.ptr(&gallery.gallery),
            2 * plan.features() * groups.len(),
        )?;
        self.inner.stream.synchronize().map_err(device)?;
        Ok(Box::new(gallery))
    }
}

struct DeviceGallery {
    inner: Arc<Inner>,
    plan: Arc<FusedPlan>,
    groups: usize,
    gallery: CudaSlice<u64>,
    q_tables: Arc<DeviceTables>,
    qp_tables: Arc<DeviceTables>,
    lift: DeviceRadix,
    scale_q: DeviceRadix,
    scale_p: DeviceRadix,
    /// Q⁻¹ mod P and t mod Q with Shoup quotients.
    q_inv_p: [CudaSlice<u64>; 2],
    t_q: [CudaSlice<u64>; 2],
    /// Per Q∪P limb: modulus, Barrett high and low words; weights `[limb][feature]`.
    barrett: [CudaSlice<u64>; 3],
    weights: [CudaSlice<u64>; 2],
}

impl DeviceGallery {
    fn new(inner: Arc<Inner>, plan: Arc<FusedPlan>, groups: usize) -> Result<Self, KernelError> {
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
        Ok(Self {
            gallery: inner.zeros(groups * plan.extended_len())?,
            q_tables: inner.tables(plan.q())?,
            qp_tables: inner.tables(plan.qp())?,
            lift: DeviceRadix::new(&inner, &plan.lift().radix().flat())?,
            scale_q: DeviceRadix::new(&inner, &rq.flat())?,
            scale_p: DeviceRadix::new(&inner, &rp.flat())?,
            q_inv_p: [inner.upload(&qi)?, inner.upload(&qis)?],
            t_q: [inner.upload(&tq)?, inner.upload(&tqs)?],
            barrett: [
                inner.upload(&barrett[0])?,
                inner.upload(&barrett[1])?,
                inner.upload(&barrett[2])?,
            ],
            weights: [inner.upload(&weights[0])?, inner.upload(&weights[1])?],
            inner,
            plan,
            groups,
        })
    }

    /// Extends `polys` polynomials over Q in NTT form (`q`, consumed as scratch) into the
    /// polynomials over Q∪P at device address `out`.
    fn extend(&self, q: &CudaSlice<u64>, out: u64, polys: usize) -> Result<(), KernelError> {
        let inner = &self.inner;
        let n = self.plan.degree() as u32;
        let lq = self.plan.q().limbs() as u32;
        let lp = self.plan.p().limbs() as u32;
        let polys32 = polys as u32;
        let src = inner.ptr(q);
        let mut b = inner.stream.launch_builder(&inner.f.copy_q_limbs);
        let lqp = lq + lp;
        b.arg(&src)
            .arg(&out)
            .arg(&n)
            .arg(&lq)
            .arg(&lqp)
            .arg(&polys32);
        // SAFETY: `q` holds polys × lq × n words and `out` polys × (lq + lp) × n.
        unsafe { b.launch(inner.grid(polys * (lq * n) as usize, 1)) }.map_err(device)?;
        let q_rows = Rows {
            total: polys32 * lq,
            count: lq,
            first: 0,
            stride: lq,
        };
        inner.inverse(&self.q_tables, src, q_rows)?;
        let mut b = inner.stream.launch_builder(&inner.f.lift);
        b.arg(&src)
            .arg(&out)
            .arg(&self.lift.args)
            .arg(&n)
            .arg(&lp)
            .arg(&polys32);
        // SAFETY: as above.
        unsafe { b.launch(inner.grid(polys * n as usize, 1)) }.map_err(device)?;
        let p_rows = Rows {
            total: polys32 * lp,
            count: lp,
            first: lq,
            stride: lqp,
        };
        inner.forward(&self.qp_tables, out, p_rows)
    }
}

impl StoredGallery for DeviceGallery {
    fn groups(&self) -> usize {
        self.groups
    }

    fn bytes(&self) -> usize {
        self.groups * self.plan.extended_len() * 8
    }

    fn evaluate(&self, query: &[u64]) -> Result<Vec<Vec<u64>>, KernelError> {
        self.plan.check_unextended(query, "query")?;
        let inner = &self.inner;
        let _guard = inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let plan = &self.plan;
        let n = plan.degree() as u32;
        let lq = plan.q().limbs() as u32;
        let lqp = plan.qp().limbs() as u32;
        let features = plan.features() as u32;
        let groups = self.groups as u32;

        let q = inner.upload(query)?;
        let extended = inner.zeros(plan.extended_len())?;
        self.extend(&q, inner.ptr(&extended), 2 * plan.features())?;

        let acc = inner.zeros(self.groups * 3 * plan.qp().poly_len())?;
        let (qe, gal, accp) = (
            inner.ptr(&extended),
            inner.ptr(&self.gallery),
            inner.ptr(&acc),
        );
        let [m, bh, bl] = &self.barrett;
        let (m, bh, bl) = (inner.ptr(m), inner.ptr(bh), inner.ptr(bl));
        let (w, ws) = (inner.ptr(&self.weights[0]), inner.ptr(&self.weights[1]));
        let mut b = inner.stream.launch_builder(&inner.f.accumulate);
        b.arg(&qe)
            .arg(&gal)
            .arg(&accp)
            .arg(&m)
            .arg(&bh)
            .arg(&bl)
            .arg(&w)
            .arg(&ws);
        b.arg(&n).arg(&lqp).arg(&features).arg(&groups);
        // SAFETY: buffers sized from the plan: query and each group extended_len, acc
        // groups × 3 polys over Q∪P.
        unsafe { b.launch(inner.grid((n * lqp) as usize, groups)) }.map_err(device)?;

        let acc_rows = Rows {
            total: groups * 3 * lqp,
            count: lqp,
            first: 0,
            stride: lqp,
        };
        inner.inverse(&self.qp_tables, accp, acc_rows)?;
        let out = inner.zeros(self.groups * plan.result_len())?;
        let outp = inner.ptr(&out);
        let (qi, qis) = (inner.ptr(&self.q_inv_p[0]), inner.ptr(&self.q_inv_p[1]));
        let (tq, tqs) = (inner.ptr(&self.t_q[0]), inner.ptr(&self.t_q[1]));
        let t = plan.plaintext_modulus();
        let polys = groups * 3;
        let mut b = inner.stream.launch_builder(&inner.f.scale);
        b.arg(&accp)
            .arg(&outp)
            .arg(&self.scale_q.args)
            .arg(&self.scale_p.args);
        b.arg(&qi)
            .arg(&qis)
            .arg(&tq)
            .arg(&tqs)
            .arg(&t)
            .arg(&n)
            .arg(&polys);
        // SAFETY: acc holds polys over Q∪P, out polys over Q.
        unsafe { b.launch(inner.grid((polys * n) as usize, 1)) }.map_err(device)?;
        let out_rows = Rows {
            total: polys * lq,
            count: lq,
            first: 0,
            stride: lq,
        };
        inner.forward(&self.q_tables, outp, out_rows)?;
        let host = inner.stream.clone_dtoh(&out).map_err(device)?;
        inner.stream.synchronize().map_err(device)?;
        Ok(host
            .chunks_exact(plan.result_len())
            .map(<[u64]>::to_vec)
            .collect())
    }
}

/// Keeps `ctx` alive for as long as the backend (the stream borrows it).
impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.ctx.synchronize();
    }
}
