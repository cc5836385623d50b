//! The CUDA device: the kernels of `cuda_kernels.cu` compiled with NVRTC when the backend
//! starts, run by the engine in `gpu` on one stream under one lock.

use crate::gpu::{Arg, Device, GpuBackend, Grid, Kernel, RadixArgs};
use crate::KernelError;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use std::sync::Arc;

const SOURCE: &str = include_str!("cuda_kernels.cu");
/// grid.y is limited to 65,535 on every CUDA device.
const MAX_GRID_Y: u32 = 65_535;

fn device(e: impl std::fmt::Display) -> KernelError {
    KernelError::Device(e.to_string())
}

// SAFETY: a plain C struct of device addresses and one u32, laid out like `struct Radix`.
unsafe impl DeviceRepr for RadixArgs {}

/// One CUDA device (device 0) with the compiled kernels.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: Vec<(Kernel, CudaFunction)>,
    name: String,
}

/// The CUDA backend. Cloning shares the device context.
pub type CudaBackend = GpuBackend<CudaDevice>;

impl GpuBackend<CudaDevice> {
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
        let functions = Kernel::ALL
            .iter()
            .map(|&k| Ok((k, module.load_function(k.name()).map_err(device)?)))
            .collect::<Result<Vec<_>, KernelError>>()?;
        // One stream, used under one lock: no cross-stream events are needed.
        // SAFETY: every allocation and launch goes to `stream`.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(Self::on(CudaDevice {
            ctx,
            stream,
            functions,
            name: format!("{name} (sm_{major}{minor})"),
        }))
    }
}

impl Device for CudaDevice {
    type Buffer = CudaSlice<u64>;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn max_grid_y(&self) -> u32 {
        MAX_GRID_Y
    }

    fn upload(&self, data: &[u64]) -> Result<Self::Buffer, KernelError> {
        if data.is_empty() {
            return self.zeros(1);
        }
        self.stream.clone_htod(data).map_err(device)
    }

    fn zeros(&self, len: usize) -> Result<Self::Buffer, KernelError> {
        self.stream.alloc_zeros::<u64>(len.max(1)).map_err(device)
    }

    fn address(&self, buffer: &Self::Buffer) -> u64 {
        let (ptr, _sync) = buffer.device_ptr(&self.stream);
        ptr
    }

    fn download(&self, buffer: &Self::Buffer, into: &mut [u64]) -> Result<(), KernelError> {
        let len = into.len();
        if len > buffer.len() {
            return Err(KernelError::Shape(format!(
                "download of {len} words from a buffer of {}",
                buffer.len()
            )));
        }
        self.stream
            .memcpy_dtoh(&buffer.slice(..len), into)
            .map_err(device)
    }

    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<(), KernelError> {
        self.stream.memcpy_dtod(src, dst).map_err(device)
    }

    unsafe fn launch(&self, kernel: Kernel, grid: Grid, args: &[Arg]) -> Result<(), KernelError> {
        let function = self
            .functions
            .iter()
            .find(|(k, _)| *k == kernel)
            .map(|(_, f)| f)
            .ok_or_else(|| KernelError::Device(format!("kernel {} not loaded", kernel.name())))?;
        let mut b = self.stream.launch_builder(function);
        for a in args {
            match a {
                Arg::Word(w) => b.arg(w),
                Arg::Half(h) => b.arg(h),
                Arg::Radix(r) => b.arg(r),
            };
        }
        let config = LaunchConfig {
            grid_dim: (grid.blocks.0, grid.blocks.1, 1),
            block_dim: (grid.threads, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the caller guarantees the arguments match the kernel and its buffers.
        unsafe { b.launch(config) }.map_err(device)?;
        Ok(())
    }

    fn synchronize(&self) -> Result<(), KernelError> {
        self.stream.synchronize().map_err(device)
    }
}

/// Keeps `ctx` alive for as long as the device (the stream borrows it).
impl Drop for CudaDevice {
    fn drop(&mut self) {
        let _ = self.ctx.synchronize();
    }
}
