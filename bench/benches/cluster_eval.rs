//! One cluster server evaluating one query on one unit of gallery, per encrypted scheme:
//! a 512-user ciphertext for blindtouch (plaintext and encrypted weights) and an
//! 8192-user group (16 ciphertexts) for columnar. Throughput is in users, so the report
//! compares schemes per enrolled user. Includes parsing the query and serializing the
//! result, as a cluster does for every query.
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
    ];
    for (name, layout, preset, users) in cases {
        let set = synthetic::generate(users, 1, 16, 0.2, 1);
        let q = Quantizer::calibrate(&set.calibration_samples(), 8, Calibration::MaxAbs).unwrap();
        let model = QuantizedModel::new(&set.model, q, 8).unwrap();
        let params = ParamSpec::preset(preset).unwrap().build().unwrap();
        let client = Client::new(params.clone(), layout, model).unwrap();
        let cluster = Arc::new(ClusterServer::new(params.spec().build().unwrap()));
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
