//! Compiles the CUDA kernel source as host C++ (src/gpu/host_kernels.cpp, which includes
//! src/cuda_kernels.cu under src/gpu/emulate.h) for the tests that run every kernel on
//! the CPU and compare it with the CPU engine word for word. Nothing outside the tests
//! calls it, so the linker drops it from every other binary.
//!
//! Where no C++ compiler with `unsigned __int128` is found (MSVC, or none installed), the
//! build goes on without it: a warning says so and the cfg `no_host_kernels` leaves those
//! tests out — `.ci/run` checks that they ran, so CI cannot lose them silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_host_kernels)");
    for f in [
        "src/cuda_kernels.cu",
        "src/gpu/emulate.h",
        "src/gpu/host_kernels.cpp",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    let built = cc::Build::new()
        .cpp(true)
        .file("src/gpu/host_kernels.cpp")
        .flag_if_supported("-std=c++17")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .try_compile("touchstone_host_kernels");
    if let Err(e) = built {
        println!(
            "cargo:warning=the host-emulated CUDA kernel tests are left out: compiling \
             src/gpu/host_kernels.cpp failed ({e})"
        );
        println!("cargo:rustc-cfg=no_host_kernels");
    }
}
