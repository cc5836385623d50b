//! The synthetic generator: reproducible to the byte, readable by the real loaders.

use datasets::loaders::{self, Format, Variant};
use datasets::synth::{self, master::FingerClass, PresetKind, SynthConfig};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn config(preset: PresetKind, fingers: usize, seed: u64) -> SynthConfig {
    SynthConfig {
        preset,
        fingers,
        seed,
        altered: true,
    }
}

#[test]
fn same_seed_gives_byte_identical_files_whatever_the_thread_count() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cfg = config(PresetKind::Socofing, 1, 7);
    synth::write(&cfg, a.path(), &|| {}).unwrap();
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    single.install(|| synth::write(&cfg, b.path(), &|| {}).unwrap());
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(
        fa.len(),
        10 + 90 + 2,
        "10 real, 90 altered, manifest, contact sheet"
    );
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between runs");
    }
    synth::write(&config(PresetKind::Socofing, 1, 8), c.path(), &|| {}).unwrap();
    let fc = files(c.path());
    let real = "SOCOFing/Real/1__M_Left_thumb_finger.BMP";
    let other_seed_same_name = fc
        .keys()
        .find(|k| k.ends_with("Left_thumb_finger.BMP") && k.contains("Real"));
    assert!(other_seed_same_name.is_some());
    assert_ne!(
        fa.get(real),
        fc.get(other_seed_same_name.unwrap()),
        "another seed gives other prints"
    );
}

#[test]
fn socofing_preset_is_read_by_the_socofing_loader() {
    let out = tempfile::tempdir().unwrap();
    let (manifest, timings) =
        synth::write(&config(PresetKind::Socofing, 2, 3), out.path(), &|| {}).unwrap();
    assert_eq!(manifest.fingers.len(), 20);
    assert_eq!(timings.images, 200);
    let ds = loaders::load(out.path()).unwrap();
    assert_eq!(ds.format, Format::Socofing);
    assert_eq!(ds.fingers, 20);
    assert_eq!(ds.real().len(), 20);
    assert_eq!(ds.samples.len(), 200);
    let altered = ds
        .samples
        .iter()
        .filter(|s| matches!(s.variant, Variant::Altered { .. }))
        .count();
    assert_eq!(altered, 180);
    let image = datasets::Gray8::load(&ds.samples[0].path).unwrap();
    assert_eq!((image.width, image.height), (96, 103));
    // Prints are textured: both dark ridges and light valleys occur.
    let dark = image.data.iter().filter(|&&v| v < 100).count();
    let light = image.data.iter().filter(|&&v| v > 180).count();
    assert!(dark > 500 && light > 500, "dark {dark}, light {light}");
    assert!(out.path().join("contact_sheet.png").is_file());
}

#[test]
fn polyu_preset_has_two_sessions_and_six_impressions() {
    let out = tempfile::tempdir().unwrap();
    synth::write(&config(PresetKind::Polyu, 3, 5), out.path(), &|| {}).unwrap();
    let ds = loaders::load(out.path()).unwrap();
    assert_eq!(ds.format, Format::Polyu);
    assert_eq!(ds.fingers, 3);
    // round(3 · 160/336) = 1 finger also has a second session.
    assert_eq!(ds.samples.len(), 3 * 6 + 6);
    assert_eq!(ds.samples.iter().filter(|s| s.session == 2).count(), 6);
    let image = datasets::Gray8::load(&ds.samples[0].path).unwrap();
    assert_eq!((image.width, image.height), (225, 350));
}

#[test]
fn classes_follow_natural_frequencies() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let n = 20_000;
    let mut counts: BTreeMap<FingerClass, usize> = BTreeMap::new();
    for _ in 0..n {
        *counts.entry(FingerClass::sample(&mut rng)).or_default() += 1;
    }
    for (class, p) in FingerClass::FREQUENCIES {
        let observed = counts[&class] as f64 / n as f64;
        assert!((observed - p).abs() < 0.01, "{class:?}: {observed} vs {p}");
    }
}

#[test]
fn empty_sets_are_refused() {
    let out = tempfile::tempdir().unwrap();
    assert!(synth::write(&config(PresetKind::Socofing, 0, 1), out.path(), &|| {}).is_err());
    assert!("nope".parse::<PresetKind>().is_err());
}
