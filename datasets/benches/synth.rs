//! Synthetic generation cost: growing one master (per finger) and rendering one
//! impression, for both presets. Run: `cargo bench -p datasets --bench synth -- --quick`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datasets::synth::impression::{self, ImpressionParams};
use datasets::synth::{filter_bank, master, Preset, PresetKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for kind in [PresetKind::Socofing, PresetKind::Polyu] {
        let preset = Preset::of(kind);
        let bank = filter_bank(kind);
        let name = format!("{kind:?}").to_lowercase();
        let mut seed = 0u64;
        group.bench_function(BenchmarkId::new("master_per_finger", &name), |b| {
            b.iter(|| {
                seed += 1;
                master::grow(&preset.master, &bank, &mut ChaCha8Rng::seed_from_u64(seed))
            })
        });
        let m = master::grow(&preset.master, &bank, &mut ChaCha8Rng::seed_from_u64(1));
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        group.bench_function(BenchmarkId::new("render_per_impression", &name), |b| {
            b.iter(|| {
                let p = ImpressionParams::sample(&preset.impression, &mut rng);
                impression::render(&m, &preset.impression, &p, &mut rng)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
