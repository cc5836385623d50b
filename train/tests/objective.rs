//! The in-batch objective and the learning-rate schedule, against direct computations.

use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use train::config::Schedule;
use train::data::{label_matrix, sample_anchors, ImageSet};
use train::training::in_batch_loss;
use train::CpuBackend;

type B = CpuBackend;

fn device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

/// The loss written out in f64, entry by entry.
fn expected_loss(z: &[f64], y: &[f64], n: usize, m: usize) -> f64 {
    let bce = |x: f64, t: f64| x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
    let (mut gs, mut gn, mut is, mut inn) = (0.0, 0.0, 0.0, 0.0);
    for (x, t) in z.iter().zip(y) {
        if *t > 0.5 {
            gs += bce(*x, 1.0);
            gn += 1.0;
        } else {
            is += bce(*x, 0.0);
            inn += 1.0;
        }
    }
    let balanced = 0.5 * (gs / f64::max(gn, 1.0) + is / f64::max(inn, 1.0));
    let mut rows = 0.0;
    for i in 0..n {
        let all: f64 = (0..m).map(|k| z[i * m + k].exp()).sum();
        let genuine: f64 = (0..m).map(|k| y[i * m + k] * z[i * m + k].exp()).sum();
        rows += (all / genuine).ln();
    }
    let mut cols = 0.0;
    for k in 0..m {
        let all: f64 = (0..n).map(|i| z[i * m + k].exp()).sum();
        let genuine: f64 = (0..n).map(|i| y[i * m + k] * z[i * m + k].exp()).sum();
        cols += (all / genuine).ln();
    }
    balanced + 0.5 * (rows / n as f64 + cols / m as f64)
}

#[test]
fn in_batch_loss_is_balanced_bce_plus_symmetric_softmax() {
    let n = 4;
    // Logits of both signs, a genuine entry off the diagonal (a finger held twice).
    let z: Vec<f64> = vec![
        3.0, -2.0, 0.5, -7.0, //
        -1.0, 2.5, -0.25, 1.5, //
        0.0, -3.0, 4.0, -1.0, //
        -2.0, 1.0, -5.0, 0.75,
    ];
    let mut y = vec![0.0f64; n * n];
    for i in 0..n {
        y[i * n + i] = 1.0;
    }
    y[3] = 1.0; // enrolled 0 and probe 3 share a finger
    y[12] = 1.0; // and enrolled 3 and probe 0
    let tensor = |v: &[f64]| {
        Tensor::<B, 2>::from_data(
            TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n, n]),
            &device(),
        )
    };
    let loss = in_batch_loss(tensor(&z), tensor(&y)).into_scalar();
    let expected = expected_loss(&z, &y, n, n);
    assert!(
        (loss as f64 - expected).abs() < 1e-5 * expected.abs().max(1.0),
        "{loss} vs {expected}"
    );
    // Large logits (the softmax is shifted, so nothing overflows).
    let big: Vec<f64> = z.iter().map(|x| x * 40.0).collect();
    let loss = in_batch_loss(tensor(&big), tensor(&y)).into_scalar();
    assert!(loss.is_finite(), "{loss}");
    // A perfect separation costs less than a confused one.
    let perfect: Vec<f64> = y
        .iter()
        .map(|t| if *t > 0.5 { 8.0 } else { -8.0 })
        .collect();
    let confused: Vec<f64> = y
        .iter()
        .map(|t| if *t > 0.5 { -8.0 } else { 8.0 })
        .collect();
    let (p, c) = (
        in_batch_loss(tensor(&perfect), tensor(&y)).into_scalar(),
        in_batch_loss(tensor(&confused), tensor(&y)).into_scalar(),
    );
    assert!(p < 0.01 && c > 10.0, "{p} {c}");
}

#[test]
fn anchors_pair_each_image_once_with_its_own_finger() {
    // Fingers: 0 has three images, 1 one, 2 two.
    let fingers = vec![0, 1, 0, 2, 0, 2];
    let set = ImageSet {
        size: 1,
        images: vec![datasets::GrayF::new(1, 1, vec![0.0]).unwrap(); fingers.len()],
        fingers: fingers.clone(),
        samples: (0..fingers.len()).collect(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pairs = sample_anchors(&set, &mut rng);
    let mut firsts: Vec<usize> = pairs.iter().map(|p| p.a).collect();
    firsts.sort();
    assert_eq!(firsts, (0..6).collect::<Vec<_>>());
    for p in &pairs {
        assert_eq!(fingers[p.a], fingers[p.b], "{p:?}");
        // Another impression whenever the finger has one; the image itself otherwise.
        assert_eq!(p.a == p.b, fingers[p.a] == 1, "{p:?}");
    }
    let labels: Vec<f32> = label_matrix::<B>(&set, &pairs, &device())
        .into_data()
        .to_vec()
        .unwrap();
    for (i, p) in pairs.iter().enumerate() {
        for (k, q) in pairs.iter().enumerate() {
            let same = fingers[p.a] == fingers[q.b];
            assert_eq!(labels[i * pairs.len() + k], f32::from(u8::from(same)));
        }
    }
}

#[test]
fn cosine_schedule_halves_at_the_middle_and_constant_stays() {
    let cosine = Schedule::Cosine;
    assert_eq!(cosine.rate(1e-3, 1, 10), 1e-3);
    assert!((cosine.rate(1e-3, 6, 10) - 0.5e-3).abs() < 1e-15);
    let last = cosine.rate(1e-3, 10, 10);
    assert!(last > 0.0 && last < 0.03e-3, "{last}");
    let rates: Vec<f64> = (1..=10).map(|e| cosine.rate(1e-3, e, 10)).collect();
    assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    assert_eq!(Schedule::Constant.rate(1e-3, 7, 10), 1e-3);
}
