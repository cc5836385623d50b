//! Unlinkability (Gomez-Barrero et al. 2018): limits, the local measure, and agreement
//! with a numerically integrated reference.

use protect::metrics::{local_linkability, unlinkability, Density, UnlinkabilityOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

fn kde() -> UnlinkabilityOptions {
    UnlinkabilityOptions {
        density: Density::Kde { bandwidth: None },
        ..Default::default()
    }
}

#[test]
fn local_measure() {
    assert_eq!(local_linkability(0.5, 1.0), 0.0);
    assert_eq!(local_linkability(1.0, 1.0), 0.0);
    assert!((local_linkability(3.0, 1.0) - 0.5).abs() < 1e-12);
    assert!((local_linkability(3.0, 2.0) - (2.0 * 6.0 / 7.0 - 1.0)).abs() < 1e-12);
    assert_eq!(local_linkability(f64::INFINITY, 1.0), 1.0);
}

#[test]
fn identical_distributions_are_unlinkable() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let scores = normal(&mut rng, 0.3, 0.1, 5000);
    for opts in [UnlinkabilityOptions::default(), kde()] {
        let u = unlinkability(&scores, &scores, &opts).unwrap();
        assert!(u.sys.abs() < 1e-12, "{}", u.sys);
        assert!(u.local.iter().all(|&d| d.abs() < 1e-12));
    }
    // Two independent samples of one distribution: only sampling noise.
    let other = normal(&mut rng, 0.3, 0.1, 5000);
    let u = unlinkability(&scores, &other, &UnlinkabilityOptions::default()).unwrap();
    assert!(u.sys < 0.06, "histogram {}", u.sys);
    let u = unlinkability(&scores, &other, &kde()).unwrap();
    assert!(u.sys < 0.03, "kde {}", u.sys);
}

#[test]
fn separated_distributions_are_fully_linkable() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mated = normal(&mut rng, 0.8, 0.03, 3000);
    let non_mated = normal(&mut rng, 0.2, 0.03, 3000);
    let u = unlinkability(&mated, &non_mated, &UnlinkabilityOptions::default()).unwrap();
    assert!(u.sys > 0.999, "{}", u.sys);
    let u = unlinkability(&mated, &non_mated, &kde()).unwrap();
    assert!(u.sys > 0.99, "{}", u.sys);
    let total: f64 = u.mated_density.iter().sum::<f64>() * u.step;
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn partial_overlap_matches_the_integral() {
    // Mated N(δ, 1), non-mated N(0, 1): LR(s) = exp(δs − δ²/2); D↔sys = ∫ D↔(s) f_m(s) ds
    // integrated numerically.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for delta in [0.5f64, 1.0, 2.0] {
        let pdf =
            |x: f64, mu: f64| (-(x - mu).powi(2) / 2.0).exp() / (std::f64::consts::TAU).sqrt();
        let h = 1e-3;
        let reference: f64 = (-10_000..10_000)
            .map(|i| {
                let s = i as f64 * h;
                let lr = pdf(s, delta) / pdf(s, 0.0);
                local_linkability(lr, 1.0) * pdf(s, delta) * h
            })
            .sum();
        let mated = normal(&mut rng, delta, 1.0, 40_000);
        let non_mated = normal(&mut rng, 0.0, 1.0, 40_000);
        for opts in [
            UnlinkabilityOptions {
                bins: 60,
                ..Default::default()
            },
            kde(),
        ] {
            let u = unlinkability(&mated, &non_mated, &opts).unwrap();
            eprintln!(
                "δ {delta} {:?}: {:.4} vs {reference:.4}",
                opts.density, u.sys
            );
            assert!(
                (u.sys - reference).abs() < 0.03,
                "δ {delta} {:?}: {} vs {reference}",
                opts.density,
                u.sys
            );
        }
    }
}

#[test]
fn prior_ratio_moves_the_measure() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mated = normal(&mut rng, 1.0, 1.0, 20_000);
    let non_mated = normal(&mut rng, 0.0, 1.0, 20_000);
    let sys = |omega| {
        unlinkability(&mated, &non_mated, &UnlinkabilityOptions { omega, ..kde() })
            .unwrap()
            .sys
    };
    assert!(sys(0.5) < sys(1.0) && sys(1.0) < sys(2.0));
}

#[test]
fn inputs_are_validated() {
    let ok = [0.1, 0.2];
    let d = UnlinkabilityOptions::default();
    assert!(unlinkability(&[], &ok, &d).is_err());
    assert!(unlinkability(&ok, &[f64::NAN], &d).is_err());
    assert!(unlinkability(&ok, &ok, &UnlinkabilityOptions { bins: 0, ..d }).is_err());
    assert!(unlinkability(&ok, &ok, &UnlinkabilityOptions { omega: 0.0, ..d }).is_err());
    let bad_bw = UnlinkabilityOptions {
        density: Density::Kde {
            bandwidth: Some(-1.0),
        },
        ..d
    };
    assert!(unlinkability(&ok, &ok, &bad_bw).is_err());
    // All scores equal: one cell, defined result.
    let u = unlinkability(&[0.5; 3], &[0.5; 4], &d).unwrap();
    assert_eq!(u.sys, 0.0);
}
