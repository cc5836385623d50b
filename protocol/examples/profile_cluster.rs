//! Where a fused cluster's time goes for one query: stage by stage (client encryption,
//! reading and extending the query, whole evaluations of galleries of the given numbers of
//! groups, one group's accumulation and finish, single transforms and lifts), min and
//! median of repeated runs, on random gallery words (the cost does not depend on them).
//! A developer's tool, for `perf record` too:
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p protocol --example profile_cluster -- col-4096 2 25`
//!
//! With `ONLY_LIFT`, `ONLY_EXT`, `ONLY_ACC` or `ONLY_FINISH` set it loops on that one step
//! (after the setup) so that a profile shows little else.
use kernels::Backend;
use protocol::messages::{Ciphertexts, Layout};
use protocol::roles::Client;
use protocol::wire::Artifact;
use protocol::{ParamSpec, SyntheticSpec, Workload};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Instant;

fn stat(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name:40} min {:8.3} ms  median {:8.3} ms",
        v[0],
        v[v.len() / 2]
    );
}

fn time<T>(reps: usize, name: &str, mut f: impl FnMut() -> T) -> T {
    let mut v = Vec::new();
    let mut out = None;
    for _ in 0..reps {
        let s = Instant::now();
        out = Some(std::hint::black_box(f()));
        v.push(s.elapsed().as_secs_f64() * 1e3);
    }
    stat(name, v);
    out.unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map(String::as_str).unwrap_or("col-4096");
    let set = Workload::synthetic(&SyntheticSpec::new(2, 1, 4)).unwrap();
    let params = ParamSpec::preset(preset).unwrap().build().unwrap();
    let client = Client::new(params.clone(), Layout::Columnar, set.quantized.clone()).unwrap();
    let engine = protocol::fused::FusedColumnar::new(
        &params,
        &set.quantized.weights,
        Arc::new(kernels::CpuBackend),
    )
    .unwrap();
    let plan = Arc::new(engine.plan().clone());
    println!("Q {:?} P {:?}", plan.q().primes(), plan.p().primes());
    let probe = set.probes[0].template.clone();
    let reps = 30;
    let query = time(reps, "client encrypt", || {
        client.encrypt_query(&probe).unwrap()
    });
    let bytes = client.query_message(&query);
    let ctx = params.bfv().context_at_level(0).unwrap().clone();
    let (_, raw) = time(reps, "decode_serialized", || {
        Ciphertexts::decode_serialized(&bytes, Artifact::Query, &params).unwrap()
    });
    time(reps, "query words (unpack, c1, fwd c0)", || {
        engine.query_words(&raw).unwrap()
    });
    let ext = time(reps, "query extended from wire", || {
        protocol::fused::seeded_query_extended(&raw, &plan, &ctx, params.bfv()).unwrap()
    });
    if std::env::var_os("ONLY_EXT").is_some() {
        for _ in 0..1000 {
            std::hint::black_box(
                protocol::fused::seeded_query_extended(&raw, &plan, &ctx, params.bfv()).unwrap(),
            );
        }
        return;
    }
    let words = engine.query_words(&raw).unwrap();
    time(reps, "extend_ntt (from NTT words)", || {
        plan.extend_ntt(&words).unwrap()
    });
    time(reps, "expand_query", || plan.expand_query(&ext).unwrap());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let q = plan.q();
    if std::env::var_os("ONLY_LIFT").is_some() {
        let qc: Vec<u64> = (0..2 * plan.degree() as u64).collect();
        let mut pc = vec![0u64; 3 * plan.degree()];
        for _ in 0..20000 {
            plan.lift().apply(&qc, &mut pc, plan.degree());
        }
        return;
    }
    for groups in args[2..].iter().map(|g| g.parse::<usize>().unwrap()) {
        let gallery: Vec<Vec<u64>> = (0..groups)
            .map(|_| {
                let mut g = vec![0u64; plan.unextended_len()];
                for (limb_words, p) in g
                    .chunks_exact_mut(q.degree())
                    .zip(q.primes().iter().cycle())
                {
                    for w in limb_words {
                        *w = rng.random_range(0..*p);
                    }
                }
                g
            })
            .collect();
        let stored = kernels::CpuBackend.store_gallery(&plan, gallery).unwrap();
        time(
            reps.min(12),
            &format!("{groups} groups: evaluate_ext_coeff"),
            || stored.evaluate_extended_coefficients(&ext, &plan).unwrap(),
        );
    }
    let g = (0..plan.extended_len())
        .map(|i| i as u64 % 1000)
        .collect::<Vec<_>>();
    let eg = plan.expand_group(&g).unwrap();
    let eq = plan.expand_query(&ext).unwrap();
    let acc = time(reps, "accumulate_expanded", || {
        plan.accumulate_expanded(&eq, &eg)
    });
    time(reps, "accumulate direct", || plan.accumulate(&ext, &g));
    time(reps, "finish_coefficients", || {
        plan.finish_coefficients(acc.clone())
    });
    let mut limb: Vec<u64> = (0..plan.degree() as u64).collect();
    time(reps, "100 fwd NTT Q limb", || {
        for _ in 0..100 {
            plan.q().tables()[0].forward(&mut limb)
        }
    });
    time(reps, "100 fwd NTT P limb", || {
        for _ in 0..100 {
            plan.p().tables()[0].forward(&mut limb)
        }
    });
    time(reps, "100 inv NTT Q limb", || {
        for _ in 0..100 {
            plan.q().tables()[0].inverse(&mut limb)
        }
    });
    time(reps, "100 inv NTT P limb", || {
        for _ in 0..100 {
            plan.p().tables()[0].inverse(&mut limb)
        }
    });
    let qc: Vec<u64> = (0..2 * plan.degree() as u64).collect();
    let mut pc = vec![0u64; 3 * plan.degree()];
    time(reps, "32 lifts", || {
        for _ in 0..32 {
            plan.lift().apply(&qc, &mut pc, plan.degree())
        }
    });
    let mut polys = acc.clone();
    time(reps, "qp inverse (3 polys)", || {
        plan.qp().inverse(&mut polys).unwrap()
    });
}
