//! The client's query (columnar: one ciphertext per feature, 16 for the usual template):
//! encryption, sealing into the query message, and the server's parsing of it — per
//! preset. Run single-threaded to compare per core:
//! `RAYON_NUM_THREADS=1 cargo bench -p protocol --bench query -- --quick`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use protocol::messages::{Ciphertexts, Layout};
use protocol::roles::Client;
use protocol::wire::Artifact;
use protocol::{ParamSpec, SyntheticSpec, Workload};

fn query(c: &mut Criterion) {
    let mut group = c.benchmark_group("query");
    group.sample_size(20);
    let set = Workload::synthetic(&SyntheticSpec::new(4, 1, 5)).unwrap();
    let probe = set.probes[0].template.clone();
    for preset in ["col-4096", "col-8192"] {
        let params = ParamSpec::preset(preset).unwrap().build().unwrap();
        let client = Client::new(params.clone(), Layout::Columnar, set.quantized.clone()).unwrap();
        // Before: fhe.rs's encryption, then its serialization (what the message needs).
        group.bench_function(
            BenchmarkId::new("client fhe.rs encrypt + serialize (16 ct)", preset),
            |b| {
                b.iter(|| {
                    let cts = client.encrypt_query_reference(&probe).unwrap();
                    protocol::messages::EncryptedQuery::from_ciphertexts(&cts)
                })
            },
        );
        // After: the fast seeded encryption, which writes the serialized form directly.
        group.bench_function(BenchmarkId::new("client encrypt (16 ct)", preset), |b| {
            b.iter(|| client.encrypt_query(&probe).unwrap())
        });
        let query = client.encrypt_query(&probe).unwrap();
        group.bench_function(BenchmarkId::new("client seal query message", preset), |b| {
            b.iter(|| client.query_message(&query))
        });
        let bytes = client.query_message(&query);
        // Before: fhe.rs decodes every ciphertext (then the fused engine takes its words).
        group.bench_function(
            BenchmarkId::new("server parse query message", preset),
            |b| b.iter(|| Ciphertexts::decode(&bytes, Artifact::Query, &params, 2).unwrap()),
        );
        // After: the fused engine reads the seeded ciphertexts straight into its words.
        let engine = protocol::fused::FusedColumnar::new(
            &params,
            &set.quantized.weights,
            std::sync::Arc::new(kernels::CpuBackend),
        )
        .unwrap();
        group.bench_function(
            BenchmarkId::new("server query words from the wire", preset),
            |b| {
                b.iter(|| {
                    let (_, raw) =
                        Ciphertexts::decode_serialized(&bytes, Artifact::Query, &params).unwrap();
                    engine.query_words(&raw).unwrap()
                })
            },
        );
        // Of which: fhe-math drawing the 16 c₁ from their seeds.
        {
            let ctx = params.bfv().context_at_level(0).unwrap().clone();
            group.bench_function(BenchmarkId::new("server c1 from 16 seeds", preset), |b| {
                b.iter(|| {
                    (0..16u8)
                        .map(|i| {
                            fhe_math::rq::Poly::random_from_seed(
                                &ctx,
                                fhe_math::rq::Representation::Ntt,
                                [i; 32],
                            )
                        })
                        .collect::<Vec<_>>()
                })
            });
        }
        // The CPU engine's path: extended straight from the wire (c₀ lifted as it comes).
        let plan = engine.plan().clone();
        let ctx = params.bfv().context_at_level(0).unwrap().clone();
        group.bench_function(
            BenchmarkId::new("server query extended from the wire", preset),
            |b| {
                b.iter(|| {
                    let (_, raw) =
                        Ciphertexts::decode_serialized(&bytes, Artifact::Query, &params).unwrap();
                    protocol::fused::seeded_query_extended(&raw, &plan, &ctx, params.bfv()).unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, query);
criterion_main!(benches);
