//! Compiles the CUDA kernel source as host C++ (src/gpu/host_kernels.cpp, which includes
//! src/cuda_kernels.cu under src/gpu/emulate.h) for the tests that run every kernel on
//! the CPU and compare it with the CPU engine word for word. Nothing outside the tests
//! calls it, so the linker drops it from every other binary.

fn main() {
    for f in [
        "src/cuda_kernels.cu",
        "src/gpu/emulate.h",
        "src/gpu/host_kernels.cpp",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    cc::Build::new()
        .cpp(true)
        .file("src/gpu/host_kernels.cpp")
        .flag_if_supported("-std=c++17")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .compile("touchstone_host_kernels");
}
