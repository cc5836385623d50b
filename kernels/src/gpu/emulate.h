// Host emulation of the CUDA names cuda_kernels.cu uses, so that the same source compiles
// as C++ and runs on the CPU in the tests (gpu/host.rs). A launch is a loop over the grid:
// blocks and threads in *reverse* order, so a kernel whose result depends on the order of
// its threads (a race on a GPU) fails the word-for-word comparison instead of passing by
// luck. Shared memory and __syncthreads are not emulated: a kernel that starts using them
// fails to compile here until this header grows phase-by-phase block execution.
#pragma once
#include <cstdint>

struct dim3 {
    unsigned x, y, z;
};

static thread_local dim3 blockIdx, threadIdx, blockDim, gridDim;

#define KERNEL static
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ shared_memory_is_not_emulated
#define __syncthreads() syncthreads_is_not_emulated

static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}

// Runs `body` once per thread of a gx × gy grid of bx-thread blocks.
template <class F>
static void emulate_grid(unsigned gx, unsigned gy, unsigned bx, F body) {
    gridDim = dim3{gx, gy, 1};
    blockDim = dim3{bx, 1, 1};
    for (unsigned y = gy; y-- > 0;) {
        for (unsigned x = gx; x-- > 0;) {
            blockIdx = dim3{x, y, 0};
            for (unsigned t = bx; t-- > 0;) {
                threadIdx = dim3{t, 0, 0};
                body();
            }
        }
    }
}
