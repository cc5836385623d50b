//! One cluster server evaluating one query on one unit of gallery, per encrypted scheme:
//! a 512-user ciphertext for blindtouch (plaintext and encrypted weights) and an
//! 8192-user group (16 ciphertexts) for columnar, with fhe.rs's per-operation engine and
//! with the fused CPU kernel (which here includes extending the query). Throughput is in users, so the report
//! compares schemes per enrolled user. Includes parsing the query and serializing the
//! result, as a cluster does for every query.
//!
//! The last case is one group of the fused engine with the query already extended: what
//! each further 8192 users add to a large gallery.
//!
//! Run: `cargo bench -p bench --bench cluster_eval -- --quick`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use protocol::messages::Layout;
use protocol::roles::{Client, ClusterServer, MainServer};
use protocol::transport::Transport;
use protocol::*;
use std::sync::Arc;

/// One cluster shared between the main server (which sets it up and enrols) and the
/// bench loop (which queries it directly).
struct Shared(Arc<ClusterServer>);

impl Transport for Shared {
    fn clusters(&self) -> usize {
        1
    }

    fn call(&self, _cluster: usize, request: &[u8]) -> Result<Vec<u8>> {
        self.0.handle(request)
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("cluster_eval");
    group.sample_size(10);
    let cases = [
        (
            "blindtouch",
            Layout::BlindTouch {
                encrypted_weights: false,
            },
            "bt-8192",
            512,
        ),
        (
            "blindtouch-ew",
            Layout::BlindTouch {
                encrypted_weights: true,
            },
            "bt-8192-ew",
            512,
        ),
        ("columnar", Layout::Columnar, "col-8192", 8192),
        ("columnar-fused-cpu", Layout::Columnar, "col-8192", 8192),
    ];
    for (name, layout, preset, users) in cases {
        let engine = if name.contains("fused") {
            ColumnarEngine::Cpu
        } else {
            ColumnarEngine::Fhe
        };
        let set = synthetic::generate(users, 1, 16, 0.2, 1);
        let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
        let model = QuantizedModel::new(&set.model, q, 8).unwrap();
        let params = ParamSpec::preset(preset).unwrap().build().unwrap();
        let client = Client::new(params.clone(), layout, model).unwrap();
        let cluster = Arc::new(ClusterServer::with_engine(
            params.spec().build().unwrap(),
            engine.resolve(),
        ));
        let mut main = MainServer::new(params, Box::new(Shared(cluster.clone())));
        main.setup(&client.setup_message().unwrap().0).unwrap();
        main.enrol(&client.enrolment_message(&set.gallery).unwrap())
            .unwrap();
        let query = client.query_message(&client.encrypt_query(&set.probes[0].template).unwrap());

        group.throughput(Throughput::Elements(users as u64));
        group.bench_function(BenchmarkId::new(name, users), |b| {
            b.iter(|| cluster.handle(&query).unwrap())
        });
    }

    // What every further 8192 users cost a large gallery on the fused engine: one group
    // with the query already extended (accumulate, scale, transform back).
    let params = ParamSpec::preset("col-8192").unwrap().build().unwrap();
    let par = params.bfv();
    let weights: Vec<i64> = (0..16)
        .map(|j| if j % 3 == 0 { -90 - j } else { 100 + j })
        .collect();
    let plan =
        kernels::FusedPlan::new(par.degree(), par.moduli(), par.plaintext(), &weights).unwrap();
    let n = par.degree();
    let random = |seed: u64| -> Vec<u64> {
        let mut x = seed;
        (0..plan.unextended_len())
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 1) % par.moduli()[(i / n) % par.moduli().len()]
            })
            .collect()
    };
    let query = plan.extend_ntt(&random(1)).unwrap();
    let gallery = plan.extend_ntt(&random(2)).unwrap();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("columnar-fused-cpu-group", n), |b| {
        b.iter(|| plan.evaluate_group(&query, &gallery))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
