//! Augmentation geometry on known patterns, and the parameter ranges each op samples.

use datasets::augment::*;
use datasets::GrayF;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn pattern(w: usize, h: usize) -> GrayF {
    // Every pixel distinct, so a permutation of pixels is recognisable.
    GrayF {
        width: w,
        height: h,
        data: (0..w * h).map(|i| i as f64 / (w * h) as f64).collect(),
    }
}

fn params(degrees: f64, sx: f64, sy: f64, tx: f64, ty: f64) -> AffineParams {
    AffineParams {
        sx,
        sy,
        tx,
        ty,
        degrees,
        interpolation: Interpolation::Nearest,
        cval: 1.0,
    }
}

#[test]
fn translation_moves_pixels_by_whole_offsets() {
    let img = pattern(20, 16);
    let out = affine(&img, &params(0.0, 1.0, 1.0, 3.0, -2.0));
    for y in 0..16 {
        for x in 0..20 {
            let (sx, sy) = (x as i64 - 3, y as i64 + 2);
            let expected = if sx >= 0 && sy < 16 {
                img.get(sx as usize, sy as usize)
            } else {
                1.0
            };
            assert_eq!(out.get(x, y), expected, "({x}, {y})");
        }
    }
}

#[test]
fn rotation_by_90_degrees_about_the_centre_is_a_pixel_permutation() {
    // Even square: centre (3.5, 3.5); +90° maps input (x, y) to output (7 − y, x).
    let img = pattern(8, 8);
    let out = affine(&img, &params(90.0, 1.0, 1.0, 0.0, 0.0));
    for y in 0..8 {
        for x in 0..8 {
            assert_eq!(out.get(7 - y, x), img.get(x, y), "input ({x}, {y})");
        }
    }
    // And bilinear gives the same on exact grid points.
    let mut p = params(90.0, 1.0, 1.0, 0.0, 0.0);
    p.interpolation = Interpolation::Bilinear;
    let bilinear = affine(&img, &p);
    for (a, b) in bilinear.data.iter().zip(&out.data) {
        assert!((a - b).abs() < 1e-9);
    }
}

#[test]
fn scaling_about_the_centre_keeps_the_centre_and_stretches() {
    // Odd size so the centre is a pixel: c = (4, 4) for 9×9.
    let mut img = GrayF::filled(9, 9, 0.0);
    img.data[4 * 9 + 4] = 0.5; // centre
    img.data[4 * 9 + 6] = 0.9; // two to the right
    let out = affine(&img, &params(0.0, 2.0, 1.0, 0.0, 0.0));
    assert_eq!(out.get(4, 4), 0.5, "centre stays");
    assert_eq!(out.get(8, 4), 0.9, "x distance doubles");
    assert_eq!(out.get(6, 4), 0.0);
}

#[test]
fn outside_pixels_take_cval() {
    let img = GrayF::filled(10, 10, 0.0);
    let out = affine(&img, &params(0.0, 1.0, 1.0, 5.0, 0.0));
    assert!((0..10).all(|y| (0..5).all(|x| out.get(x, y) == 1.0)));
    assert!((0..10).all(|y| (5..10).all(|x| out.get(x, y) == 0.0)));
}

#[test]
fn blur_taps_match_imgaug_and_preserve_flat_images() {
    let taps = gaussian_taps(0.7);
    let reference = [0.00962, 0.205424, 0.569912, 0.205424, 0.00962];
    assert_eq!(taps.len(), 5);
    for (a, b) in taps.iter().zip(reference) {
        assert!((a - b).abs() < 1e-5, "{taps:?}");
    }
    assert_eq!(gaussian_taps(3.0).len(), 9); // σ ≥ 3: int(2.9·3) = 8, made odd
    assert_eq!(gaussian_taps(7.0).len(), 19); // σ ≥ 5: int(2.6·7) = 18, made odd
    let flat = GrayF::filled(12, 7, 0.4);
    assert!(gaussian_blur(&flat, 0.7)
        .data
        .iter()
        .all(|v| (v - 0.4).abs() < 1e-12));
    let img = pattern(6, 6);
    assert_eq!(
        gaussian_blur(&img, 1e-4),
        img,
        "σ < 1e-3 leaves the image unchanged"
    );
}

#[test]
fn sampled_parameters_stay_in_their_ranges_and_cover_them() {
    let aug = Augmenter::blindtouch_socofing();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut blur, mut keep, mut rot, mut scale, mut tx) = (vec![], vec![], vec![], vec![], vec![]);
    let mut orders = std::collections::HashSet::new();
    for _ in 0..3000 {
        for op in &aug.ops {
            match op.sample(100, 50, &mut rng) {
                Drawn::GaussianBlur(s) => blur.push(s),
                Drawn::Dropout(k) => keep.push(k),
                Drawn::Affine(p) => {
                    rot.push(p.degrees);
                    scale.extend([p.sx, p.sy]);
                    tx.push(p.tx / 100.0);
                    orders.insert(format!("{:?}", p.interpolation));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let span = |v: &[f64]| {
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let within = |v: &[f64], lo: f64, hi: f64| {
        let (a, b) = span(v);
        a >= lo && b <= hi && a < lo + 0.02 * (hi - lo) && b > hi - 0.02 * (hi - lo)
    };
    assert!(within(&blur, 0.0, 0.7), "{:?}", span(&blur));
    assert!(within(&keep, 0.85, 0.99), "{:?}", span(&keep));
    assert!(within(&rot, -30.0, 30.0), "{:?}", span(&rot));
    assert!(within(&scale, 0.9, 1.1), "{:?}", span(&scale));
    assert!(within(&tx, -0.1, 0.1), "{:?}", span(&tx));
    assert_eq!(orders.len(), 2, "both interpolations are chosen");
}

#[test]
fn dropout_zeroes_the_drawn_fraction() {
    let img = GrayF::filled(200, 200, 0.7);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let out = apply(&img, &Drawn::Dropout(0.9), &mut rng);
    let zeros = out.data.iter().filter(|&&v| v == 0.0).count() as f64 / out.data.len() as f64;
    assert!((zeros - 0.1).abs() < 0.01, "{zeros}");
    assert!(out.data.iter().all(|&v| v == 0.0 || v == 0.7));
}

#[test]
fn neutral_parameters_are_identities_and_crops_keep_a_window() {
    let img = pattern(16, 12);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(apply(&img, &Drawn::Elastic(0.0, 3.0, 5), &mut rng), img);
    let g = apply(&img, &Drawn::Gamma(1.0), &mut rng);
    assert!(g
        .data
        .iter()
        .zip(&img.data)
        .all(|(a, b)| (a - b).abs() < 1e-12));
    let c = apply(&img, &Drawn::Contrast(1.0), &mut rng);
    assert!(c
        .data
        .iter()
        .zip(&img.data)
        .all(|(a, b)| (a - b).abs() < 1e-12));
    assert_eq!(apply(&img, &Drawn::GaussianNoise(0.0, 3), &mut rng), img);
    let crop = apply(&img, &Drawn::RandomCrop(2, 3, 5, 4, 1.0), &mut rng);
    let kept = crop
        .data
        .iter()
        .zip(&img.data)
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(kept, 20);
    // An elastic field with α > 0 moves pixels but keeps values in range.
    let e = apply(&img, &Drawn::Elastic(4.0, 2.0, 5), &mut rng);
    assert_ne!(e, img);
    assert!(e.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn random_order_is_one_permutation_per_batch() {
    let aug = Augmenter::blindtouch_socofing();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        let mut order = aug.batch_order(&mut rng);
        seen.insert(order.clone());
        order.sort();
        assert_eq!(order, vec![0, 1, 2]);
    }
    assert_eq!(seen.len(), 6, "all 3! orders occur");
    let fixed = Augmenter {
        random_order: false,
        ..aug.clone()
    };
    assert_eq!(fixed.batch_order(&mut rng), vec![0, 1, 2]);
    // The batch is reproducible from the seed.
    let images = vec![pattern(24, 24), pattern(24, 24)];
    let a = aug
        .apply_batch(&images, &mut ChaCha8Rng::seed_from_u64(7))
        .unwrap();
    let b = aug
        .apply_batch(&images, &mut ChaCha8Rng::seed_from_u64(7))
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a[0], a[1], "parameters are drawn per image");
}

#[test]
fn configs_are_validated() {
    let bad = Augmenter {
        name: "bad".into(),
        ops: vec![Op::Dropout { p: (0.5, 0.2) }],
        random_order: false,
    };
    let msg = bad.validate().unwrap_err().to_string();
    assert!(msg.contains("dropout.p"), "{msg}");
    assert!(Augmenter::preset("nope").is_err());
    let json = r#"{"name":"x","ops":[{"op":"gamma","gamma":[0.8,1.2],"extra":1}]}"#;
    assert!(serde_json::from_str::<Augmenter>(json).is_err());
    let json = r#"{"name":"x","ops":[{"op":"gamma","gamma":[0.8,1.2]}]}"#;
    assert!(serde_json::from_str::<Augmenter>(json).is_ok());
}
