// The kernels of cuda_kernels.cu as host functions, each behind a launcher that emulates
// its grid (emulate.h). Used only by the tests in gpu/host.rs.
#include "emulate.h"
#include "../cuda_kernels.cu"

#define GRID unsigned gx, unsigned gy, unsigned bx

// The launchers take device addresses as 64-bit integers, as the engine passes them on a
// GPU; A() turns one back into a pointer.
typedef unsigned long long addr;
template <class T = u64>
static T* A(addr a) { return reinterpret_cast<T*>(a); }

// struct Radix with its pointers as addresses (the engine's RadixArgs, #[repr(C)]).
struct RadixAddresses {
    addr moduli, prefix_inv, prefix_inv_shoup, within, within_shoup, half, target_moduli,
        target_consts, target_consts_shoup, target_products;
    unsigned limbs;
};

static Radix radix(const RadixAddresses& r) {
    return Radix{A(r.moduli),       A(r.prefix_inv),    A(r.prefix_inv_shoup),
                 A(r.within),       A(r.within_shoup),  A(r.half),
                 A(r.target_moduli), A(r.target_consts), A(r.target_consts_shoup),
                 A(r.target_products), r.limbs};
}

extern "C" {

void host_ntt_forward_level(GRID, addr data, addr omegas, addr omegas_shoup, addr moduli, unsigned n, unsigned h, unsigned rows, unsigned count, unsigned first, unsigned stride) {
    emulate_grid(gx, gy, bx, [&] {
        ntt_forward_level(A(data), A(omegas), A(omegas_shoup), A(moduli), n, h, rows, count, first, stride);
    });
}

void host_ntt_forward_finish(GRID, addr data, addr moduli, unsigned n, unsigned rows, unsigned count, unsigned first, unsigned stride) {
    emulate_grid(gx, gy, bx, [&] { ntt_forward_finish(A(data), A(moduli), n, rows, count, first, stride); });
}

void host_ntt_inverse_level(GRID, addr data, addr zetas, addr zetas_shoup, addr moduli, unsigned n, unsigned h, unsigned rows, unsigned count, unsigned first, unsigned stride) {
    emulate_grid(gx, gy, bx, [&] {
        ntt_inverse_level(A(data), A(zetas), A(zetas_shoup), A(moduli), n, h, rows, count, first, stride);
    });
}

void host_ntt_inverse_finish(GRID, addr data, addr moduli, addr n_inv, addr n_inv_shoup, unsigned n, unsigned rows, unsigned count, unsigned first, unsigned stride) {
    emulate_grid(gx, gy, bx, [&] {
        ntt_inverse_finish(A(data), A(moduli), A(n_inv), A(n_inv_shoup), n, rows, count, first, stride);
    });
}

void host_copy_q_limbs(GRID, addr src, addr dst, unsigned n, unsigned lq, unsigned lqp, unsigned polys) {
    emulate_grid(gx, gy, bx, [&] { copy_q_limbs(A(src), A(dst), n, lq, lqp, polys); });
}

void host_lift(GRID, addr src, addr dst, RadixAddresses R, unsigned n, unsigned lp, unsigned polys) {
    emulate_grid(gx, gy, bx, [&] { lift(A(src), A(dst), radix(R), n, lp, polys); });
}

void host_accumulate(GRID, addr query, addr gallery, addr out, addr moduli, addr barrett_hi, addr barrett_lo, addr weights, addr weights_shoup, unsigned n, unsigned limbs, unsigned features, unsigned groups) {
    emulate_grid(gx, gy, bx, [&] {
        accumulate(A(query), A(gallery), A(out), A(moduli), A(barrett_hi), A(barrett_lo), A(weights), A(weights_shoup), n, limbs, features, groups);
    });
}

void host_scale(GRID, addr src, addr dst, RadixAddresses RQ, RadixAddresses RP, addr q_inv_p, addr q_inv_p_shoup, addr t_q, addr t_q_shoup, u64 t, unsigned n, unsigned polys) {
    emulate_grid(gx, gy, bx, [&] {
        scale(A(src), A(dst), radix(RQ), radix(RP), A(q_inv_p), A(q_inv_p_shoup), A(t_q), A(t_q_shoup), t, n, polys);
    });
}

}  // extern "C"
