//! Descriptor stability and key recovery on synthetic PolyU-like prints: intra/inter
//! Hamming distances and FRR/FAR of the fuzzy extractor.
//!
//! `cargo run -p bpkem --release --example synthetic_prints -- [fingers] [bandwidth] [edge margin]`

use bpkem::descriptor::{self, Bits, DescriptorParams};
use bpkem::fuzzy::FuzzyParams;
use bpkem::metrics::{distance_histograms, key_recovery_rates};
use datasets::synth::{filter_bank, generate_finger, PresetKind, SynthConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let fingers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let bandwidth: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0.35);
    let edge_margin: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(12);
    let params = DescriptorParams {
        bandwidth,
        edge_margin,
        ..DescriptorParams::default()
    };
    let config = SynthConfig {
        preset: PresetKind::Polyu,
        fingers,
        seed: 7,
        altered: false,
    };
    let bank = filter_bank(PresetKind::Polyu);
    let mut per_finger: Vec<Vec<Bits>> = Vec::new();
    let mut refused = 0;
    for finger in 0..fingers {
        let images = generate_finger(&config, &bank, finger);
        let mut descriptors = Vec::new();
        for (_, image) in &images.images {
            match descriptor::from_image(image, &params) {
                Ok(d) => descriptors.push(d),
                Err(e) => {
                    refused += 1;
                    eprintln!("finger {finger}: {e}");
                }
            }
        }
        per_finger.push(descriptors);
    }
    let mut intra = Vec::new();
    let mut inter = Vec::new();
    for (f, ds) in per_finger.iter().enumerate() {
        for i in 0..ds.len() {
            for j in i + 1..ds.len() {
                intra.push((ds[i].clone(), ds[j].clone()));
            }
        }
        for other in &per_finger[f + 1..] {
            if let (Some(a), Some(b)) = (ds.first(), other.first()) {
                inter.push((a.clone(), b.clone()));
            }
        }
    }
    let h = distance_histograms(&intra, &inter, params.bits)?;
    let within = |t: usize| h.intra.counts[..=t].iter().sum::<u64>();
    println!("descriptors refused (too few minutiae): {refused}");
    println!(
        "intra: {} pairs, mean {:.1}, ≤ 10: {}; inter: {} pairs, mean {:.1}",
        h.intra.total(),
        h.intra.mean(),
        within(10),
        h.inter.total(),
        h.inter.mean()
    );
    println!(
        "intra histogram (distance: count): {:?}",
        nonzero(&h.intra.counts)
    );
    println!(
        "inter histogram (distance: count): {:?}",
        nonzero(&h.inter.counts)
    );
    let rates = key_recovery_rates(&FuzzyParams::default(), &intra, &inter, 1)?;
    println!(
        "k = 16, L = 100: FRR {:.3} {:?}, FAR {:.3} {:?}",
        rates.frr, rates.frr_ci, rates.far, rates.far_ci
    );
    Ok(())
}

fn nonzero(counts: &[u64]) -> Vec<(usize, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(d, &c)| (d, c))
        .collect()
}
