//! The augmentation ops against imgaug 0.4 itself. The fixtures under fixtures/imgaug/ were
//! written by fixtures/make_imgaug_fixtures.py (its docstring and the VERSION file record
//! the imgaug, numpy, OpenCV and scikit-image versions; regenerate only with that script).
//!
//! - Deterministic cases: imgaug's output for fixed σ / affine parameters on a committed
//!   40×32 ridge image, compared pixel by pixel with `gaussian_blur`, `affine`,
//!   `warp_affine` and Dropout's `apply`.
//! - Distributions: summary statistics of 20,000 parameter draws of the two Blind-Touch
//!   pipelines in imgaug against 20,000 draws of `Op::sample`, and the frequency of each
//!   op order of `Sequential(random_order=True)` against `Augmenter::batch_order`.

use datasets::augment::*;
use datasets::{Gray8, GrayF};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/imgaug")
        .join(name)
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Exact floats are written as decimal strings (Python's repr); `str::parse` rounds
/// correctly, so these are imgaug's values to the bit.
fn exact(v: &Value) -> f64 {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string float, got {v}"))
        .parse()
        .unwrap()
}

fn png(name: &str) -> GrayF {
    Gray8::load(&fixture(name))
        .unwrap_or_else(|e| panic!("{e}"))
        .to_unit()
}

fn raw(name: &str, width: usize, height: usize) -> Vec<f64> {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let data: Vec<f64> = if name.ends_with(".f64") {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        assert!(name.ends_with(".f32"), "{name}");
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    };
    assert_eq!(data.len(), width * height, "{name}");
    data
}

fn input(cases: &Value) -> GrayF {
    let img = png(cases["input"].as_str().unwrap());
    assert_eq!(
        (img.width, img.height),
        (
            cases["width"].as_u64().unwrap() as usize,
            cases["height"].as_u64().unwrap() as usize
        )
    );
    img
}

/// Largest |a − b| and how many pixels differ at all.
fn diff(ours: &[f64], theirs: &[f64]) -> (f64, usize) {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).fold((0.0, 0), |(max, n), (a, b)| {
        let d = (a - b).abs();
        (max.max(d), n + usize::from(d > 0.0))
    })
}

fn affine_params(case: &Value, width: usize, height: usize) -> AffineParams {
    AffineParams {
        sx: exact(&case["scale_x"]),
        sy: exact(&case["scale_y"]),
        tx: exact(&case["translate_x_percent"]) * width as f64,
        ty: exact(&case["translate_y_percent"]) * height as f64,
        degrees: exact(&case["rotate"]),
        interpolation: match case["order"].as_u64().unwrap() {
            0 => Interpolation::Nearest,
            1 => Interpolation::Bilinear,
            o => panic!("order {o}"),
        },
        cval: exact(&case["cval"]),
    }
}

fn imgaug_output(case: &Value, width: usize, height: usize) -> Vec<f64> {
    match case.get("png") {
        Some(name) => png(name.as_str().unwrap()).data,
        None => raw(case["f64"].as_str().unwrap(), width, height),
    }
}

/// GaussianBlur: the kernel size imgaug picks for σ, and the blurred image. Tolerance 1e-12
/// on values in [0, 1]: cv2 sums the symmetric taps in another order (f64 rounding only);
/// 5e-7 against imgaug run on float32 (what Blind-Touch fed it), which rounds the input,
/// the taps and every partial sum to float32 (ε = 6e-8; the fixtures differ by ≤ 1.2e-7).
#[test]
fn gaussian_blur_matches_imgaug() {
    let cases = json("cases.json");
    let img = input(&cases);
    let (w, h) = (img.width, img.height);
    for case in cases["gaussian_blur"].as_array().unwrap() {
        let sigma = exact(&case["sigma"]);
        let ours = gaussian_blur(&img, sigma);
        if sigma > 1e-3 {
            assert_eq!(
                gaussian_taps(sigma).len() as u64,
                case["ksize"].as_u64().unwrap(),
                "σ = {sigma}: kernel size"
            );
        }
        let theirs = raw(case["f64"].as_str().unwrap(), w, h);
        let (max, _) = diff(&ours.data, &theirs);
        assert!(max <= 1e-12, "σ = {sigma}: max |Δ| = {max:e}");
        if let Some(name) = case.get("f32") {
            let (max, _) = diff(&ours.data, &raw(name.as_str().unwrap(), w, h));
            assert!(max <= 5e-7, "σ = {sigma} (float32): max |Δ| = {max:e}");
        }
    }
    // σ below imgaug's eps is the identity, and the fixture agrees.
    let tiny = &cases["gaussian_blur"][0];
    assert!(exact(&tiny["sigma"]) <= 1e-3);
    assert_eq!(gaussian_blur(&img, exact(&tiny["sigma"])), img);
}

/// The geometry: touchstone's forward matrix for imgaug's drawn parameters equals the one
/// imgaug handed to cv2.warpAffine. Tolerance 1e-5 px: imgaug converts degrees to radians in
/// float32 (np.deg2rad of a float32), an error of ≤ 4.4e-8 rad (at 90°) times coordinates
/// up to ~35 px; a wrong centre, sign or translation unit is off by ≥ 0.5.
#[test]
fn affine_matrix_matches_imgaug() {
    let cases = json("cases.json");
    let (w, h) = (40, 32);
    for case in cases["affine"].as_array().unwrap() {
        let ours = affine_params(case, w, h).matrix(w, h);
        let theirs: Vec<f64> = case["matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(exact)
            .collect();
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5,
                "{}: matrix[{i}] ours {a} imgaug {b}",
                case["name"]
            );
        }
    }
}

/// The warp: given imgaug's own matrix, `warp_affine` reproduces cv2.warpAffine (nearest
/// and bilinear, constant border) bit for bit on float64 images.
#[test]
fn warp_affine_equals_cv2_bit_for_bit() {
    let cases = json("cases.json");
    let img = input(&cases);
    let (w, h) = (img.width, img.height);
    for case in cases["affine"].as_array().unwrap() {
        let m: Vec<f64> = case["matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(exact)
            .collect();
        let p = affine_params(case, w, h);
        let ours = warp_affine(&img, &m.try_into().unwrap(), p.interpolation, p.cval);
        let (max, n) = diff(&ours.data, &imgaug_output(case, w, h));
        assert_eq!(
            n, 0,
            "{} {:?}: {n} pixels differ, max |Δ| = {max:e}",
            case["name"], p.interpolation
        );
    }
}

/// End to end: `affine` with imgaug's drawn parameters gives imgaug's image exactly. (The
/// one way this could break for other parameters: imgaug's float32 radians (see above)
/// moving a fixed-point source coordinate across a 1/1024 px rounding step — a 1/32 px
/// shift of one row or column. None of these cases does.) Against imgaug run on float32
/// images: 5e-7 (float32 rounding of v/255 and of the four weighted products; the
/// fixtures differ by ≤ 1.1e-7).
#[test]
fn affine_matches_imgaug() {
    let cases = json("cases.json");
    let img = input(&cases);
    let (w, h) = (img.width, img.height);
    for case in cases["affine"].as_array().unwrap() {
        let p = affine_params(case, w, h);
        let ours = affine(&img, &p);
        let (max, n) = diff(&ours.data, &imgaug_output(case, w, h));
        assert_eq!(
            n, 0,
            "{} {:?}: {n} pixels differ, max |Δ| = {max:e}",
            case["name"], p.interpolation
        );
        if let Some(name) = case.get("f32") {
            let (max, _) = diff(&ours.data, &raw(name.as_str().unwrap(), w, h));
            assert!(max <= 5e-7, "{} (float32): max |Δ| = {max:e}", case["name"]);
        }
    }
}

/// Dropout: a dropped pixel becomes 0 and a kept one is unchanged, in imgaug (p = 0.3 on
/// the ridge image) and in touchstone (keep = 0.7). The masks come from different RNGs, so
/// only the counts are compared: both within 5σ of Binomial(1280, 0.3) (σ = 16.4).
#[test]
fn dropout_semantics_match_imgaug() {
    let cases = json("cases.json");
    let img = input(&cases);
    let d = &cases["dropout"];
    let theirs = png(d["png"].as_str().unwrap());
    let p = d["p"].as_f64().unwrap();
    let n = img.data.len() as f64;
    let sd = (n * p * (1.0 - p)).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let ours = apply(&img, &Drawn::Dropout(1.0 - p), &mut rng);
    for (name, out) in [("imgaug", &theirs), ("touchstone", &ours)] {
        let mut zeroed = 0usize;
        for (o, i) in out.data.iter().zip(&img.data) {
            assert!(o == i || *o == 0.0, "{name}: {o} from {i}");
            zeroed += usize::from(*o == 0.0 && *i != 0.0);
        }
        assert!(
            (zeroed as f64 - n * p).abs() <= 5.0 * sd,
            "{name}: {zeroed} of {n} zeroed"
        );
    }
    let imgaug_zeroed = d["zeroed"].as_u64().unwrap() - d["zero_in_input"].as_u64().unwrap();
    let png_zeroed = theirs
        .data
        .iter()
        .zip(&img.data)
        .filter(|(o, i)| **o == 0.0 && **i != 0.0)
        .count() as u64;
    assert_eq!(png_zeroed, imgaug_zeroed);
}

struct Summary {
    n: usize,
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
}

/// numpy's default quantile: linear interpolation at q·(n − 1) of the sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    let hi = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + f * (hi - sorted[i])
}

fn summarize(sorted: &[f64]) -> Summary {
    let n = sorted.len();
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let std = (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    Summary {
        n,
        min: sorted[0],
        max: sorted[n - 1],
        mean,
        std,
    }
}

/// How far one statistic of ours may be from imgaug's.
struct Law {
    /// Where every draw must lie.
    support: (f64, f64),
    /// Width over which the law spreads (its density at the compared quantiles is at least
    /// 1/(2·spread)).
    spread: f64,
    /// Tolerance for min and max.
    edge: f64,
}

impl Law {
    /// U[lo, hi] sampled N times: the gap between the sample minimum (maximum) and the end
    /// of the support is ~Exp with mean span/N, so 10·span/N bounds both sides' gaps.
    fn uniform((lo, hi): Range, n: usize) -> Self {
        Self {
            support: (lo, hi),
            spread: hi - lo,
            edge: 10.0 * (hi - lo) / n as f64,
        }
    }
}

/// Compares our N draws of one parameter with imgaug's summary of its N draws. The standard
/// error of a difference of means is √2·σ/√N, of standard deviations (laws with kurtosis
/// ≤ 3) ≤ √2·σ/√(2N), and of the q-quantile √2·√(q(1−q)/N)/f(x_q) ≤ √2·√(q(1−q)/N)·2·spread;
/// each must hold within 5 standard errors (the seeds are fixed, so the test is
/// deterministic; 5 keeps it true for other seeds too).
fn compare(what: &str, ours: &[f64], theirs: &Value, law: Law) {
    let mut sorted = ours.to_vec();
    sorted.sort_by(f64::total_cmp);
    let s = summarize(&sorted);
    let n = theirs["n"].as_u64().unwrap() as usize;
    assert_eq!(s.n, n, "{what}: sample size");
    let nf = n as f64;
    let t = |k: &str| theirs[k].as_f64().unwrap();
    let (lo, hi) = law.support;
    assert!(
        s.min >= lo && s.max <= hi,
        "{what}: ours [{}, {}] outside [{lo}, {hi}]",
        s.min,
        s.max
    );
    if law.spread == 0.0 {
        assert!(t("min") == lo && t("max") == hi, "{what}: imgaug varies");
        return;
    }
    let sigma = t("std");
    let se = 2f64.sqrt();
    let checks = [
        ("min", s.min, t("min"), law.edge),
        ("max", s.max, t("max"), law.edge),
        ("mean", s.mean, t("mean"), 5.0 * se * sigma / nf.sqrt()),
        ("std", s.std, sigma, 5.0 * se * sigma / (2.0 * nf).sqrt()),
    ];
    for (stat, a, b, tol) in checks {
        assert!(
            (a - b).abs() <= tol,
            "{what}: {stat} ours {a} imgaug {b} (tolerance {tol:e})"
        );
    }
    for (key, b) in theirs["quantiles"].as_object().unwrap() {
        let q: f64 = key.parse().unwrap();
        let (a, b) = (quantile(&sorted, q), b.as_f64().unwrap());
        let tol = 5.0 * se * (q * (1.0 - q) / nf).sqrt() * 2.0 * law.spread;
        assert!(
            (a - b).abs() <= tol,
            "{what}: quantile {q} ours {a} imgaug {b} (tolerance {tol:e})"
        );
    }
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// What the Blind-Touch presets draw equals what the notebooks' imgaug pipelines draw:
/// σ, keep probability, the fraction of pixels Dropout zeroes, the x and y scales and
/// translations (independent: imgaug's dict form), rotation, and the interpolation.
#[test]
fn sampled_parameters_match_imgaug_distributions() {
    let dist = json("distributions.json");
    let n = dist["n"].as_u64().unwrap() as usize;
    let (w, h) = (
        dist["width"].as_u64().unwrap() as usize,
        dist["height"].as_u64().unwrap() as usize,
    );
    let nf = n as f64;
    for (preset, theirs) in dist["presets"].as_object().unwrap() {
        let aug = Augmenter::preset(preset).unwrap();
        let [Op::GaussianBlur { sigma }, Op::Dropout { p }, Op::Affine {
            scale,
            translate_percent,
            rotate,
            ..
        }] = aug.ops.as_slice()
        else {
            panic!(
                "{preset}: expected blur, dropout, affine; got {:?}",
                aug.ops
            );
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let draws = |op: &Op, rng: &mut ChaCha8Rng| -> Vec<Drawn> {
            (0..n).map(|_| op.sample(w, h, rng)).collect()
        };
        let sigmas: Vec<f64> = draws(&aug.ops[0], &mut rng)
            .into_iter()
            .map(|d| match d {
                Drawn::GaussianBlur(s) => s,
                other => panic!("{other:?}"),
            })
            .collect();
        compare(
            &format!("{preset} σ"),
            &sigmas,
            &theirs["gaussian_blur.sigma"],
            Law::uniform(*sigma, n),
        );
        let keeps: Vec<f64> = draws(&aug.ops[1], &mut rng)
            .into_iter()
            .map(|d| match d {
                Drawn::Dropout(k) => k,
                other => panic!("{other:?}"),
            })
            .collect();
        compare(
            &format!("{preset} keep"),
            &keeps,
            &theirs["dropout.keep"],
            Law::uniform((1.0 - p.1, 1.0 - p.0), n),
        );
        let ones = GrayF::filled(w, h, 1.0);
        let dropped: Vec<f64> = keeps
            .iter()
            .map(|&k| {
                let out = apply(&ones, &Drawn::Dropout(k), &mut rng);
                out.data.iter().filter(|&&v| v == 0.0).count() as f64 / (w * h) as f64
            })
            .collect();
        // 1 − keep plus binomial noise over w·h pixels: the extremes move by a few binomial
        // standard deviations (√(0.15·0.85/1280) = 0.01), not by span/N.
        compare(
            &format!("{preset} dropped fraction"),
            &dropped,
            &theirs["dropout.dropped_fraction"],
            Law {
                support: (0.0, 1.0),
                spread: p.1 - p.0,
                edge: 0.03,
            },
        );
        let affines: Vec<AffineParams> = draws(&aug.ops[2], &mut rng)
            .into_iter()
            .map(|d| match d {
                Drawn::Affine(a) => a,
                other => panic!("{other:?}"),
            })
            .collect();
        let col = |f: &dyn Fn(&AffineParams) -> f64| affines.iter().map(f).collect::<Vec<_>>();
        let (sx, sy) = (col(&|a| a.sx), col(&|a| a.sy));
        let (tx, ty) = (col(&|a| a.tx / w as f64), col(&|a| a.ty / h as f64));
        compare(
            &format!("{preset} scale x"),
            &sx,
            &theirs["affine.scale_x"],
            Law::uniform(*scale, n),
        );
        compare(
            &format!("{preset} scale y"),
            &sy,
            &theirs["affine.scale_y"],
            Law::uniform(*scale, n),
        );
        // tx / w undoes tx = pct · w up to one rounding.
        let widen = |(lo, hi): Range| Law {
            support: (lo - 1e-12, hi + 1e-12),
            ..Law::uniform((lo, hi), n)
        };
        compare(
            &format!("{preset} translate x"),
            &tx,
            &theirs["affine.translate_x_percent"],
            widen(*translate_percent),
        );
        compare(
            &format!("{preset} translate y"),
            &ty,
            &theirs["affine.translate_y_percent"],
            widen(*translate_percent),
        );
        compare(
            &format!("{preset} rotate"),
            &col(&|a| a.degrees),
            &theirs["affine.rotate"],
            Law::uniform(*rotate, n),
        );
        // Independent x and y (correlation ~ N(0, 1/N)); a shared draw would give 1.
        for (what, ours, key) in [
            ("scale", correlation(&sx, &sy), "affine.corr_scale_xy"),
            (
                "translate",
                correlation(&tx, &ty),
                "affine.corr_translate_xy",
            ),
        ] {
            let theirs = theirs[key].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() <= 5.0 * 2f64.sqrt() / nf.sqrt(),
                "{preset} {what} x/y correlation: ours {ours} imgaug {theirs}"
            );
        }
        let nearest = affines
            .iter()
            .filter(|a| a.interpolation == Interpolation::Nearest)
            .count() as f64
            / nf;
        let their_nearest = theirs["affine.nearest_fraction"].as_f64().unwrap();
        assert!(
            (nearest - their_nearest).abs() <= 5.0 * 2f64.sqrt() * (0.25 / nf).sqrt(),
            "{preset}: nearest fraction ours {nearest} imgaug {their_nearest}"
        );
        let cval = theirs["affine.cval"].as_f64().unwrap();
        assert!(affines.iter().all(|a| a.cval == cval), "{preset}: cval");
    }
}

/// One op order per batch, each of the 3! orders equally likely: Pearson's χ² of each
/// side's counts against uniform below 20.5 (df 5, p = 0.001), and each order's frequency
/// within 5·√2·√(p(1−p)/N) of imgaug's.
#[test]
fn random_op_order_is_uniform_like_imgaug() {
    let dist = json("distributions.json");
    let counts = dist["random_order_counts"].as_object().unwrap();
    let n: u64 = counts.values().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(n, dist["n"].as_u64().unwrap());
    let aug = Augmenter::blindtouch_socofing();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut ours = std::collections::BTreeMap::<String, u64>::new();
    for _ in 0..n {
        let order = aug.batch_order(&mut rng);
        let key: String = order.iter().map(|i| i.to_string()).collect();
        *ours.entry(key).or_default() += 1;
    }
    assert_eq!(ours.len(), 6, "{ours:?}");
    let expected = n as f64 / 6.0;
    let chi2 = |it: &mut dyn Iterator<Item = u64>| {
        it.map(|c| (c as f64 - expected).powi(2) / expected)
            .sum::<f64>()
    };
    let ours_chi2 = chi2(&mut ours.values().copied());
    let theirs_chi2 = chi2(&mut counts.values().map(|c| c.as_u64().unwrap()));
    assert!(ours_chi2 < 20.5, "touchstone χ² = {ours_chi2}: {ours:?}");
    assert!(theirs_chi2 < 20.5, "imgaug χ² = {theirs_chi2}: {counts:?}");
    let tol = 5.0 * 2f64.sqrt() * (1.0 / 6.0 * 5.0 / 6.0 / n as f64).sqrt();
    for (order, c) in counts {
        let theirs = c.as_u64().unwrap() as f64 / n as f64;
        let mine = *ours.get(order).unwrap_or(&0) as f64 / n as f64;
        assert!(
            (mine - theirs).abs() <= tol,
            "order {order}: ours {mine} imgaug {theirs}"
        );
    }
}
