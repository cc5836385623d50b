// touchstone kernels: the same integer steps as the CPU code in ntt.rs, convert.rs and
// fused.rs, one thread per butterfly or coefficient. Compiled at run time with NVRTC, and
// in the tests as host C++ under gpu/emulate.h (which defines KERNEL and the CUDA names).
// No kernel uses shared memory or __syncthreads: each thread's work is independent.
#ifndef KERNEL
#define KERNEL extern "C" __global__
#endif
typedef unsigned long long u64;
typedef long long i64;

__device__ __forceinline__ u64 reduce_once(u64 a, u64 p) { return a >= p ? a - p : a; }
__device__ __forceinline__ u64 add_mod(u64 a, u64 b, u64 p) { return reduce_once(a + b, p); }
__device__ __forceinline__ u64 sub_mod(u64 a, u64 b, u64 p) { return reduce_once(a + p - b, p); }
__device__ __forceinline__ u64 mul_shoup_lazy(u64 a, u64 b, u64 bs, u64 p) {
    u64 q = __umul64hi(a, bs);
    return a * b - q * p;
}
__device__ __forceinline__ u64 mul_shoup(u64 a, u64 b, u64 bs, u64 p) {
    return reduce_once(mul_shoup_lazy(a, b, bs, p), p);
}
// Barrett reduction of hi·2^64 + lo with ⌊2^128/p⌋ = bhi·2^64 + blo (only q mod 2^64 matters).
__device__ __forceinline__ u64 reduce128(u64 hi, u64 lo, u64 p, u64 bhi, u64 blo) {
    u64 lolo_hi = __umul64hi(lo, blo);
    u64 hl_lo = hi * blo, hl_hi = __umul64hi(hi, blo);
    u64 lh_lo = lo * bhi, lh_hi = __umul64hi(lo, bhi);
    u64 s = lh_lo + hl_lo;
    u64 c1 = s < lh_lo;
    u64 s2 = s + lolo_hi;
    u64 c2 = s2 < s;
    u64 q = lh_hi + hl_hi + c1 + c2 + hi * bhi;
    return reduce_once(lo - q * p, p);
}
__device__ __forceinline__ u64 reduce64(u64 a, u64 p) { return a % p; }

// Row r of a batch: polynomial r / count, limb first + r % count, in polys of `stride` limbs.
__device__ __forceinline__ void row_of(unsigned r, unsigned count, unsigned first, unsigned stride,
                                       unsigned n, u64* offset, unsigned* limb) {
    unsigned poly = r / count;
    *limb = first + r % count;
    *offset = ((u64)poly * stride + *limb) * n;
}

// One forward Cooley–Tukey level with half-size h (Harvey butterflies, values < 4p).
KERNEL void ntt_forward_level(u64* data, const u64* omegas, const u64* omegas_shoup,
                                             const u64* moduli, unsigned n, unsigned h,
                                             unsigned rows, unsigned count, unsigned first,
                                             unsigned stride) {
    unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n / 2) return;
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        u64 off; unsigned limb;
        row_of(r, count, first, stride, n, &off, &limb);
        u64 p = moduli[limb], two_p = 2 * p;
        unsigned chunk = t / h, idx = t % h;
        unsigned k = n / (2 * h) + chunk;
        u64* x = data + off + (u64)chunk * 2 * h + idx;
        u64* y = x + h;
        u64 w = omegas[(u64)limb * n + k], ws = omegas_shoup[(u64)limb * n + k];
        u64 u = reduce_once(*x, two_p);
        u64 v = mul_shoup_lazy(*y, w, ws, p);
        *x = u + v;
        *y = u + two_p - v;
    }
}

KERNEL void ntt_forward_finish(u64* data, const u64* moduli, unsigned n,
                                              unsigned rows, unsigned count, unsigned first,
                                              unsigned stride) {
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n) return;
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        u64 off; unsigned limb;
        row_of(r, count, first, stride, n, &off, &limb);
        u64 p = moduli[limb];
        data[off + c] = reduce_once(reduce_once(data[off + c], 2 * p), p);
    }
}

// One inverse Gentleman–Sande level with half-size h (values < 2p).
KERNEL void ntt_inverse_level(u64* data, const u64* zetas, const u64* zetas_shoup,
                                             const u64* moduli, unsigned n, unsigned h,
                                             unsigned rows, unsigned count, unsigned first,
                                             unsigned stride) {
    unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n / 2) return;
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        u64 off; unsigned limb;
        row_of(r, count, first, stride, n, &off, &limb);
        u64 p = moduli[limb], two_p = 2 * p;
        unsigned chunk = t / h, idx = t % h;
        unsigned k = n - n / h + chunk;
        u64* x = data + off + (u64)chunk * 2 * h + idx;
        u64* y = x + h;
        u64 z = zetas[(u64)limb * n + k], zs = zetas_shoup[(u64)limb * n + k];
        u64 u = *x;
        *x = reduce_once(u + *y, two_p);
        *y = mul_shoup_lazy(u + two_p - *y, z, zs, p);
    }
}

KERNEL void ntt_inverse_finish(u64* data, const u64* moduli, const u64* n_inv,
                                              const u64* n_inv_shoup, unsigned n, unsigned rows,
                                              unsigned count, unsigned first, unsigned stride) {
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n) return;
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        u64 off; unsigned limb;
        row_of(r, count, first, stride, n, &off, &limb);
        data[off + c] = mul_shoup(data[off + c], n_inv[limb], n_inv_shoup[limb], moduli[limb]);
    }
}

// Copies the Q limbs of `polys` polynomials over Q into polynomials over Q∪P.
KERNEL void copy_q_limbs(const u64* src, u64* dst, unsigned n, unsigned lq,
                                        unsigned lqp, unsigned polys) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    u64 per = (u64)lq * n;
    if (i >= per * polys) return;
    u64 poly = i / per, rest = i % per;
    dst[poly * lqp * n + rest] = src[i];
}

// Mixed-radix constants (see convert.rs FlatRadix), passed as one struct of pointers.
struct Radix {
    const u64* moduli; const u64* prefix_inv; const u64* prefix_inv_shoup;
    const u64* within; const u64* within_shoup; const u64* half;
    const u64* target_moduli; const u64* target_consts; const u64* target_consts_shoup;
    const u64* target_products; unsigned limbs;
};

#define MAX_LIMBS 12

__device__ void digits(const Radix& R, const u64* x, u64* d) {
    d[0] = x[0];
    for (unsigned i = 1; i < R.limbs; i++) {
        u64 m = R.moduli[i];
        u64 v = reduce64(d[i - 1], m);
        for (int k = (int)i - 2; k >= 0; k--) {
            u64 c = R.within[i * R.limbs + k], cs = R.within_shoup[i * R.limbs + k];
            v = add_mod(mul_shoup(v, c, cs, m), reduce64(d[k], m), m);
        }
        d[i] = mul_shoup(sub_mod(x[i], v, m), R.prefix_inv[i], R.prefix_inv_shoup[i], m);
    }
}

__device__ bool upper_half(const Radix& R, const u64* d) {
    for (int i = (int)R.limbs - 1; i >= 0; i--) {
        if (d[i] != R.half[i]) return d[i] > R.half[i];
    }
    return false;
}

__device__ u64 eval_target(const Radix& R, const u64* d, unsigned j, bool negative) {
    u64 m = R.target_moduli[j];
    unsigned top = R.limbs - 1;
    u64 v = reduce64(d[top], m);
    for (int k = (int)top - 1; k >= 0; k--) {
        u64 c = R.target_consts[j * R.limbs + k], cs = R.target_consts_shoup[j * R.limbs + k];
        v = add_mod(mul_shoup(v, c, cs, m), reduce64(d[k], m), m);
    }
    return negative ? sub_mod(v, R.target_products[j], m) : v;
}

// Centred lift of coefficient-form Q limbs (polys over Q, `src`) into the P limbs of
// polys over Q∪P (`dst`).
KERNEL void lift(const u64* src, u64* dst, Radix R, unsigned n, unsigned lp,
                                unsigned polys) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)n * polys) return;
    u64 poly = i / n, c = i % n;
    unsigned lq = R.limbs;
    u64 x[MAX_LIMBS], d[MAX_LIMBS];
    for (unsigned l = 0; l < lq; l++) x[l] = src[(poly * lq + l) * n + c];
    digits(R, x, d);
    bool neg = upper_half(R, d);
    for (unsigned j = 0; j < lp; j++) dst[(poly * (lq + lp) + lq + j) * n + c] = eval_target(R, d, j, neg);
}

// Σⱼ wⱼ (Qⱼ − Gⱼ)⊗(Qⱼ − Gⱼ) for every group: thread = (coefficient, limb), grid.y = group.
KERNEL void accumulate(const u64* query, const u64* gallery, u64* out,
                                      const u64* moduli, const u64* barrett_hi,
                                      const u64* barrett_lo, const u64* weights,
                                      const u64* weights_shoup, unsigned n, unsigned limbs,
                                      unsigned features, unsigned groups) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)n * limbs) return;
    unsigned limb = i / n;
    u64 poly = (u64)limbs * n;
    u64 p = moduli[limb], bh = barrett_hi[limb], bl = barrett_lo[limb];
    for (unsigned g = blockIdx.y; g < groups; g += gridDim.y) {
        const u64* gal = gallery + (u64)g * 2 * features * poly;
        u64 a0l = 0, a0h = 0, a1l = 0, a1h = 0, a2l = 0, a2h = 0;
        for (unsigned j = 0; j < features; j++) {
            u64 at0 = 2 * j * poly + i, at1 = at0 + poly;
            u64 a = sub_mod(query[at0], gal[at0], p);
            u64 b = sub_mod(query[at1], gal[at1], p);
            u64 w = weights[limb * features + j], ws = weights_shoup[limb * features + j];
            u64 aw = mul_shoup(a, w, ws, p), bw = mul_shoup(b, w, ws, p);
            u64 lo, hi;
            lo = aw * a; hi = __umul64hi(aw, a); a0l += lo; a0h += hi + (a0l < lo);
            lo = aw * b; hi = __umul64hi(aw, b); a1l += lo; a1h += hi + (a1l < lo);
            lo = bw * b; hi = __umul64hi(bw, b); a2l += lo; a2h += hi + (a2l < lo);
            if (j % 16 == 15) {
                a0l = reduce128(a0h, a0l, p, bh, bl); a0h = 0;
                a1l = reduce128(a1h, a1l, p, bh, bl); a1h = 0;
                a2l = reduce128(a2h, a2l, p, bh, bl); a2h = 0;
            }
        }
        u64* o = out + (u64)g * 3 * poly + i;
        o[0] = reduce128(a0h, a0l, p, bh, bl);
        u64 cross = reduce128(a1h, a1l, p, bh, bl);
        o[poly] = add_mod(cross, cross, p);
        o[2 * poly] = reduce128(a2h, a2l, p, bh, bl);
    }
}

// (t·d + carry) / q and remainder; see convert.rs div_small.
__device__ void div_small(u64 t, u64 d, u64 carry, u64 q, u64* quot_out, u64* rem_out) {
    double est = ((double)t * (double)d + (double)carry) / (double)q;
    u64 quot = (u64)est;
    u64 low = t * d + carry;
    i64 rem = (i64)(low - quot * q);
    for (int s = 0; s < 2; s++) {
        if (rem < 0) { quot -= 1; rem += (i64)q; }
        if (rem >= (i64)q) { quot += 1; rem -= (i64)q; }
    }
    *quot_out = quot;
    *rem_out = (u64)rem;
}

// Scale-and-round by t/Q from polys over Q∪P (coefficient form) to polys over Q.
KERNEL void scale(const u64* src, u64* dst, Radix RQ, Radix RP, const u64* q_inv_p,
                                 const u64* q_inv_p_shoup, const u64* t_q, const u64* t_q_shoup,
                                 u64 t, unsigned n, unsigned polys) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (u64)n * polys) return;
    u64 poly = i / n, c = i % n;
    unsigned lq = RQ.limbs, lp = RP.limbs;
    const u64* in = src + poly * (lq + lp) * n;
    u64 x[MAX_LIMBS], dq[MAX_LIMBS], kp[MAX_LIMBS], dp[MAX_LIMBS], rems[MAX_LIMBS];
    for (unsigned l = 0; l < lq; l++) x[l] = in[l * n + c];
    digits(RQ, x, dq);
    u64 whole = 0;
    for (unsigned l = 0; l < lq; l++) {
        u64 quot, rem;
        div_small(t, dq[l], whole, RQ.moduli[l], &quot, &rem);
        whole = quot;
        rems[l] = rem;
    }
    bool up = false;
    for (int l = (int)lq - 1; l >= 0; l--) {
        u64 mid = (RQ.moduli[l] - 1) / 2;
        if (rems[l] != mid) { up = rems[l] > mid; break; }
    }
    u64 e = whole + (up ? 1 : 0);
    for (unsigned j = 0; j < lp; j++) {
        u64 m = RP.moduli[j];
        u64 r = eval_target(RQ, dq, j, false);
        kp[j] = mul_shoup(sub_mod(in[(lq + j) * n + c], r, m), q_inv_p[j], q_inv_p_shoup[j], m);
    }
    digits(RP, kp, dp);
    bool neg = upper_half(RP, dp);
    for (unsigned l = 0; l < lq; l++) {
        u64 m = RQ.moduli[l];
        u64 k = eval_target(RP, dp, l, neg);
        dst[(poly * lq + l) * n + c] = add_mod(mul_shoup(k, t_q[l], t_q_shoup[l], m), reduce64(e, m), m);
    }
}
