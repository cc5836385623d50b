//! NTT of one limb, touchstone's (AVX-512 where the CPU has it, and the scalar path) against
//! fhe-math's, for every ring size the issue names, and touchstone's on a 50-bit prime (the
//! fused engine's extension primes: AVX-512 IFMA where the CPU has it),
//! and the fused group evaluation with the query already extended (what each further
//! 8192 users cost a large gallery).
//!
//! Run: `cargo bench -p kernels --bench ntt -- --quick`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fhe_math::ntt::NttOperator;
use fhe_math::zq::{primes::generate_prime, Modulus};
use kernels::{FusedPlan, NttTable};
use rand::{Rng, SeedableRng};

fn ntt(c: &mut Criterion) {
    let mut group = c.benchmark_group("ntt_forward_limb");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for n in [4096usize, 8192, 16384, 32768, 65536] {
        let p = generate_prime(62, 2 * n as u64, 1 << 62).unwrap();
        let ours = NttTable::new(p, n).unwrap();
        let theirs = NttOperator::new(&Modulus::new(p).unwrap(), n).unwrap();
        let input: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("touchstone", n), |b| {
            let mut a = input.clone();
            b.iter(|| ours.forward(&mut a))
        });
        group.bench_function(BenchmarkId::new("touchstone-scalar", n), |b| {
            let mut a = input.clone();
            b.iter(|| ours.forward_scalar(&mut a))
        });
        group.bench_function(BenchmarkId::new("fhe-math", n), |b| {
            let mut a = input.clone();
            b.iter(|| theirs.forward(&mut a))
        });
        group.bench_function(BenchmarkId::new("touchstone-inverse", n), |b| {
            let mut a = input.clone();
            b.iter(|| ours.inverse(&mut a))
        });
        group.bench_function(BenchmarkId::new("touchstone-inverse-scalar", n), |b| {
            let mut a = input.clone();
            b.iter(|| ours.inverse_scalar(&mut a))
        });
        group.bench_function(BenchmarkId::new("fhe-math-inverse", n), |b| {
            let mut a = input.clone();
            b.iter(|| theirs.backward(&mut a))
        });
        let p50 = generate_prime(50, 2 * n as u64, 1 << 50).unwrap();
        let ours50 = NttTable::new(p50, n).unwrap();
        let input50: Vec<u64> = (0..n).map(|_| rng.random_range(0..p50)).collect();
        group.bench_function(BenchmarkId::new("touchstone-50bit", n), |b| {
            let mut a = input50.clone();
            b.iter(|| ours50.forward(&mut a))
        });
        group.bench_function(BenchmarkId::new("touchstone-50bit-inverse", n), |b| {
            let mut a = input50.clone();
            b.iter(|| ours50.inverse(&mut a))
        });
    }
    group.finish();
}

fn fused(c: &mut Criterion) {
    let mut group = c.benchmark_group("fused_group");
    group.sample_size(10);
    for n in [4096, 8192] {
        fused_at(&mut group, n);
    }
    group.finish();
}

/// One group at degree n (col-4096 / col-8192: two 55-bit primes, a 30-bit t).
fn fused_at(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    let q: Vec<u64> = kernels::arith::ntt_primes(55, n, 2, &[]).unwrap();
    let t = kernels::arith::ntt_primes(30, n, 1, &[]).unwrap()[0];
    let weights: Vec<i64> = (0..16)
        .map(|j| if j % 3 == 0 { -(j + 90) } else { j + 100 })
        .collect();
    let plan = FusedPlan::new(n, &q, t, &weights).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut random_q = || -> Vec<u64> {
        (0..plan.unextended_len())
            .map(|i| rng.random_range(0..q[(i / n) % q.len()]))
            .collect()
    };
    let (query_q, group_q) = (random_q(), random_q());
    let query = plan.extend_ntt(&query_q).unwrap();
    let gallery = plan.extend_ntt(&group_q).unwrap();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(
        BenchmarkId::new("accumulate+scale (query extended)", n),
        |b| b.iter(|| plan.evaluate_group(&query, &gallery)),
    );
    group.bench_function(BenchmarkId::new("accumulate only", n), |b| {
        b.iter(|| plan.accumulate(&query, &gallery))
    });
    group.bench_function(BenchmarkId::new("extend query (32 polys)", n), |b| {
        b.iter(|| plan.extend_ntt(&query_q).unwrap())
    });
    // The CPU engine's form: squares once per query / at enrolment, three products a group.
    let expanded_query = plan.expand_query(&query).unwrap();
    let expanded_group = plan.expand_group(&gallery).unwrap();
    group.bench_function(
        BenchmarkId::new("accumulate+scale, expanded form", n),
        |b| b.iter(|| plan.evaluate_expanded(&expanded_query, &expanded_group)),
    );
    group.bench_function(BenchmarkId::new("accumulate only, expanded form", n), |b| {
        b.iter(|| plan.accumulate_expanded(&expanded_query, &expanded_group))
    });
    group.bench_function(
        BenchmarkId::new("expand query (square term, once per query)", n),
        |b| b.iter(|| plan.expand_query(&query).unwrap()),
    );
    let acc = plan.accumulate(&query, &gallery);
    group.bench_function(
        BenchmarkId::new("finish (inverse NTT, scale, forward NTT)", n),
        |b| b.iter(|| plan.finish(acc.clone())),
    );
    let mut coeffs = acc.clone();
    plan.qp().inverse(&mut coeffs).unwrap();
    let per = plan.qp().poly_len();
    group.bench_function(BenchmarkId::new("scale only (3 polys)", n), |b| {
        b.iter(|| {
            let mut out = vec![0u64; plan.q().poly_len()];
            for poly in coeffs.chunks_exact(per) {
                plan.scaler().apply(poly, &mut out, n);
            }
            out
        })
    });
}

criterion_group!(benches, ntt, fused);
criterion_main!(benches);
