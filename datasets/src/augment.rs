//! Random augmentation: the ops Blind-Touch used through imgaug 0.4 (GaussianBlur, Dropout,
//! Affine, in a random order per batch), plus the ops a student will reach for next:
//! elastic distortion, gamma, contrast, Gaussian noise and partial-print cropping. Images
//! are floats in [0, 1]; every draw comes from the caller's seeded RNG.
//!
//! Each op separates `sample` (draw this image's parameters) from `apply` (deterministic
//! given them, except Dropout's pixel mask), so tests can check parameters and geometry
//! apart.
//!
//! # What is verified against imgaug 0.4
//!
//! `tests/imgaug_equivalence.rs` compares with fixtures written by imgaug 0.4.0 itself
//! (`tests/fixtures/make_imgaug_fixtures.py`; its docstring pins imgaug, numpy, OpenCV and
//! scikit-image):
//!
//! - [`gaussian_blur`] equals `iaa.GaussianBlur(sigma=σ)` on float64 images to 1e-12
//!   (σ from 0.0009 to 7: kernel size, taps, REFLECT_101 border, the σ ≤ 10⁻³ no-op), and
//!   imgaug on float32 images to 5e-7.
//! - [`affine`] equals `iaa.Affine(scale={"x": sx, "y": sy}, translate_percent={"x": tx,
//!   "y": ty}, rotate=θ, order=0 or 1, cval=0 or 1, mode="constant")` bit for bit on
//!   float64 images: [`AffineParams::matrix`] is the matrix imgaug builds (centre, rotation
//!   sign, translation in pixels) and [`warp_affine`] is `cv2.warpAffine`'s fixed-point
//!   mapping (bilinear at 1/32 px with its weight table, nearest as ⌊x + ½⌋).
//! - Dropout: a dropped pixel becomes 0 and a kept one is unchanged, as in imgaug.
//! - For both Blind-Touch presets, every drawn parameter (σ, keep probability, fraction
//!   of pixels dropped, x and y scale and translation, rotation, interpolation) has the
//!   distribution of imgaug's draws for the notebooks' pipelines (min, max, mean, std and
//!   quantiles of 20,000 draws; x and y independent), and each of the 3! op orders is as
//!   frequent as under `Sequential(random_order=True)`.
//!
//! Not the same as imgaug: the random streams (the same seed draws other values and
//! masks); imgaug draws parameters as float32 and converts degrees to radians in float32
//! (here f64); Blind-Touch fed imgaug float32 images (here f64); imgaug's cv2 backend
//! truncates `cval` to an integer, so a fractional `cval` (allowed here) has no imgaug
//! counterpart; there is no shear. `scale` and `translate_percent` mean imgaug's dict form
//! (`{"x": range, "y": range}`, drawn independently, as the notebooks wrote them), not its
//! tuple form (one draw for both axes). Elastic, gamma, contrast, noise and crop are
//! touchstone's own.
//!
//! Regenerate the fixtures only with the script (from the repository root):
//!
//! ```text
//! python3 -m venv /tmp/imgaug-venv
//! /tmp/imgaug-venv/bin/pip install imgaug==0.4.0 numpy==1.23.5 \
//!     opencv-python==4.11.0.86 scikit-image==0.24.0 scipy==1.15.3
//! /tmp/imgaug-venv/bin/python datasets/tests/fixtures/make_imgaug_fixtures.py
//! ```

use crate::error::{DatasetError, Result};
use crate::image::GrayF;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// A closed range [lo, hi] a parameter is drawn from uniformly.
pub type Range = (f64, f64);

fn uniform(rng: &mut impl Rng, (lo, hi): Range) -> f64 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

fn check_range(op: &str, field: &str, (lo, hi): Range, min: f64, max: f64) -> Result<()> {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi && lo >= min && hi <= max) {
        return Err(DatasetError::invalid(
            &format!("augmentation {op}.{field}"),
            format!("range ({lo}, {hi}) must be ordered and within [{min}, {max}]"),
        ));
    }
    Ok(())
}

/// Interpolation used when warping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Nearest neighbour (imgaug order 0).
    Nearest,
    /// Bilinear (imgaug order 1).
    Bilinear,
}

/// One augmentation, by name and parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// imgaug `GaussianBlur(sigma=(lo, hi))`: σ ~ U[lo, hi) per image; σ ≤ 10⁻³ leaves the
    /// image unchanged.
    GaussianBlur {
        /// Range of σ in pixels.
        sigma: Range,
    },
    /// imgaug `Dropout(p=(lo, hi))`: keep probability k ~ U(1 − hi, 1 − lo) per image, then
    /// each pixel is kept with probability k, else set to 0.
    Dropout {
        /// Range of the drop probability.
        p: Range,
    },
    /// imgaug `Affine(scale={"x": scale, "y": scale}, translate_percent={"x": t, "y": t},
    /// rotate, order, cval, mode="constant")` about the centre (W/2 − ½, H/2 − ½); outside
    /// pixels take `cval`.
    Affine {
        /// Range of the x and y scale factors (drawn independently).
        scale: Range,
        /// Range of the translation as a fraction of width (x) and height (y), drawn
        /// independently.
        translate_percent: Range,
        /// Range of the rotation in degrees.
        rotate: Range,
        /// Interpolations to choose from at random per image.
        order: Vec<Interpolation>,
        /// Value of pixels mapped from outside the input (imgaug's cv2 backend truncates it
        /// to an integer: only 0 and 1 mean the same there).
        cval: f64,
    },
    /// Elastic distortion: a random displacement field smoothed by a Gaussian of σ and
    /// scaled by α pixels.
    Elastic {
        /// Range of α (displacement strength, pixels).
        alpha: Range,
        /// Range of σ (smoothness, pixels).
        sigma: Range,
    },
    /// v ↦ v^γ.
    Gamma {
        /// Range of γ.
        gamma: Range,
    },
    /// v ↦ 0.5 + gain·(v − 0.5), clamped.
    Contrast {
        /// Range of the gain.
        gain: Range,
    },
    /// Additive N(0, σ²) noise, clamped.
    GaussianNoise {
        /// Range of σ.
        sigma: Range,
    },
    /// Keeps a random window covering `fraction` of each side (a partial print); the rest
    /// becomes `cval`. The image keeps its size.
    RandomCrop {
        /// Range of the kept fraction of width and of height.
        fraction: Range,
        /// Value outside the window.
        cval: f64,
    },
}

/// The parameters one op drew for one image.
#[derive(Clone, Debug, PartialEq)]
pub enum Drawn {
    /// σ of the blur.
    GaussianBlur(f64),
    /// Keep probability and the per-pixel seed stream is drawn at apply time.
    Dropout(f64),
    /// The affine transform.
    Affine(AffineParams),
    /// α, σ and the field's seed.
    Elastic(f64, f64, u64),
    /// γ.
    Gamma(f64),
    /// Gain.
    Contrast(f64),
    /// σ and the noise seed.
    GaussianNoise(f64, u64),
    /// Window (x0, y0, w, h) and fill value.
    RandomCrop(usize, usize, usize, usize, f64),
}

/// One image's affine transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineParams {
    /// x scale.
    pub sx: f64,
    /// y scale.
    pub sy: f64,
    /// x translation in pixels.
    pub tx: f64,
    /// y translation in pixels.
    pub ty: f64,
    /// Rotation in degrees, clockwise on screen when positive (y points down), as imgaug.
    pub degrees: f64,
    /// Interpolation.
    pub interpolation: Interpolation,
    /// Fill value.
    pub cval: f64,
}

impl Op {
    /// Checks the op's ranges.
    pub fn validate(&self) -> Result<()> {
        match self {
            Op::GaussianBlur { sigma } => check_range("gaussian_blur", "sigma", *sigma, 0.0, 50.0),
            Op::Dropout { p } => check_range("dropout", "p", *p, 0.0, 1.0),
            Op::Affine {
                scale,
                translate_percent,
                rotate,
                order,
                cval,
            } => {
                check_range("affine", "scale", *scale, 1e-3, 100.0)?;
                check_range("affine", "translate_percent", *translate_percent, -1.0, 1.0)?;
                check_range("affine", "rotate", *rotate, -360.0, 360.0)?;
                if order.is_empty() {
                    return Err(DatasetError::invalid(
                        "augmentation affine.order",
                        "choose at least one interpolation",
                    ));
                }
                check_range("affine", "cval", (*cval, *cval), 0.0, 1.0)
            }
            Op::Elastic { alpha, sigma } => {
                check_range("elastic", "alpha", *alpha, 0.0, 1000.0)?;
                check_range("elastic", "sigma", *sigma, 0.1, 100.0)
            }
            Op::Gamma { gamma } => check_range("gamma", "gamma", *gamma, 1e-3, 100.0),
            Op::Contrast { gain } => check_range("contrast", "gain", *gain, 0.0, 100.0),
            Op::GaussianNoise { sigma } => {
                check_range("gaussian_noise", "sigma", *sigma, 0.0, 10.0)
            }
            Op::RandomCrop { fraction, cval } => {
                check_range("random_crop", "fraction", *fraction, 1e-3, 1.0)?;
                check_range("random_crop", "cval", (*cval, *cval), 0.0, 1.0)
            }
        }
    }

    /// Draws this op's parameters for one image of the given size.
    pub fn sample(&self, width: usize, height: usize, rng: &mut impl Rng) -> Drawn {
        match self {
            Op::GaussianBlur { sigma } => Drawn::GaussianBlur(uniform(rng, *sigma)),
            Op::Dropout { p } => Drawn::Dropout(uniform(rng, (1.0 - p.1, 1.0 - p.0))),
            Op::Affine {
                scale,
                translate_percent,
                rotate,
                order,
                cval,
            } => Drawn::Affine(AffineParams {
                sx: uniform(rng, *scale),
                sy: uniform(rng, *scale),
                tx: uniform(rng, *translate_percent) * width as f64,
                ty: uniform(rng, *translate_percent) * height as f64,
                degrees: uniform(rng, *rotate),
                interpolation: order[rng.random_range(0..order.len())],
                cval: *cval,
            }),
            Op::Elastic { alpha, sigma } => {
                Drawn::Elastic(uniform(rng, *alpha), uniform(rng, *sigma), rng.random())
            }
            Op::Gamma { gamma } => Drawn::Gamma(uniform(rng, *gamma)),
            Op::Contrast { gain } => Drawn::Contrast(uniform(rng, *gain)),
            Op::GaussianNoise { sigma } => Drawn::GaussianNoise(uniform(rng, *sigma), rng.random()),
            Op::RandomCrop { fraction, cval } => {
                let w = ((uniform(rng, *fraction) * width as f64).round() as usize).clamp(1, width);
                let h =
                    ((uniform(rng, *fraction) * height as f64).round() as usize).clamp(1, height);
                let x0 = rng.random_range(0..=width - w);
                let y0 = rng.random_range(0..=height - h);
                Drawn::RandomCrop(x0, y0, w, h, *cval)
            }
        }
    }
}

/// Applies drawn parameters to an image. Dropout draws its pixel mask from `rng`.
pub fn apply(image: &GrayF, drawn: &Drawn, rng: &mut impl Rng) -> GrayF {
    match drawn {
        Drawn::GaussianBlur(sigma) => gaussian_blur(image, *sigma),
        Drawn::Dropout(keep) => {
            let mut out = image.clone();
            for v in out.data.iter_mut() {
                if rng.random::<f64>() >= *keep {
                    *v = 0.0;
                }
            }
            out
        }
        Drawn::Affine(p) => affine(image, p),
        Drawn::Elastic(alpha, sigma, seed) => elastic(image, *alpha, *sigma, *seed),
        Drawn::Gamma(g) => map(image, |v| v.clamp(0.0, 1.0).powf(*g)),
        Drawn::Contrast(gain) => map(image, |v| (0.5 + gain * (v - 0.5)).clamp(0.0, 1.0)),
        Drawn::GaussianNoise(sigma, seed) => {
            let mut noise_rng =
                <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(*seed);
            let normal = Normal::new(0.0, sigma.max(0.0)).expect("valid σ");
            map(image, |v| {
                (v + normal.sample(&mut noise_rng)).clamp(0.0, 1.0)
            })
        }
        Drawn::RandomCrop(x0, y0, w, h, cval) => {
            let mut out = image.clone();
            for y in 0..image.height {
                for x in 0..image.width {
                    if !(x >= *x0 && x < x0 + w && y >= *y0 && y < y0 + h) {
                        out.data[y * image.width + x] = *cval;
                    }
                }
            }
            out
        }
    }
}

fn map(image: &GrayF, mut f: impl FnMut(f64) -> f64) -> GrayF {
    GrayF {
        width: image.width,
        height: image.height,
        data: image.data.iter().map(|&v| f(v)).collect(),
    }
}

/// imgaug 0.4's Gaussian kernel size for σ: int(max(k·σ, 5)) made odd, with k = 3.3 for
/// σ < 3, 2.9 for σ < 5 and 2.6 above (`_compute_gaussian_blur_ksize`).
pub fn gaussian_ksize(sigma: f64) -> usize {
    let k = if sigma < 3.0 {
        3.3
    } else if sigma < 5.0 {
        2.9
    } else {
        2.6
    };
    let size = (k * sigma).max(5.0) as usize;
    size | 1
}

/// The normalised taps imgaug's blur uses: `cv2.getGaussianKernel(gaussian_ksize(σ), σ)`
/// (exp(−x²/2σ²) at x = i − (n − 1)/2, times 1/Σ).
pub fn gaussian_taps(sigma: f64) -> Vec<f64> {
    let size = gaussian_ksize(sigma);
    let scale = -0.5 / (sigma * sigma);
    let c = (size - 1) as f64 * 0.5;
    let taps: Vec<f64> = (0..size)
        .map(|i| (scale * (i as f64 - c) * (i as f64 - c)).exp())
        .collect();
    let inv = 1.0 / taps.iter().sum::<f64>();
    taps.into_iter().map(|t| t * inv).collect()
}

/// imgaug's GaussianBlur for one σ: `cv2.GaussianBlur` with [`gaussian_taps`] in x and y
/// and REFLECT_101 borders; σ ≤ 10⁻³ (imgaug's eps) leaves the image unchanged.
pub fn gaussian_blur(image: &GrayF, sigma: f64) -> GrayF {
    if sigma <= 1e-3 {
        return image.clone();
    }
    let taps = gaussian_taps(sigma);
    GrayF {
        width: image.width,
        height: image.height,
        data: crate::filter::separable(&image.data, image.width, image.height, &taps, &taps),
    }
}

/// Samples `image` at real coordinates, `cval` outside: exact bilinear (not OpenCV's 1/32 px
/// steps) or nearest with ties away from zero. Used by the elastic distortion.
pub fn sample(image: &GrayF, x: f64, y: f64, how: Interpolation, cval: f64) -> f64 {
    let at = |xi: i64, yi: i64| -> f64 {
        if xi < 0 || yi < 0 || xi >= image.width as i64 || yi >= image.height as i64 {
            cval
        } else {
            image.get(xi as usize, yi as usize)
        }
    };
    match how {
        Interpolation::Nearest => at(x.round() as i64, y.round() as i64),
        Interpolation::Bilinear => {
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (xi, yi) = (x0 as i64, y0 as i64);
            (1.0 - fy) * ((1.0 - fx) * at(xi, yi) + fx * at(xi + 1, yi))
                + fy * ((1.0 - fx) * at(xi, yi + 1) + fx * at(xi + 1, yi + 1))
        }
    }
}

impl AffineParams {
    /// The forward 2×3 matrix imgaug 0.4 hands to `cv2.warpAffine` for a width × height
    /// image, row-major `[a, b, c, d, e, f]` (output = (a·x + b·y + c, d·x + e·y + f)):
    /// M = T(ctr + t)·R(θ)·diag(sx, sy)·T(−ctr), ctr = (W/2 − 0.5, H/2 − 0.5), with
    /// R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]] — clockwise on screen for θ > 0.
    pub fn matrix(&self, width: usize, height: usize) -> [f64; 6] {
        let (cx, cy) = (width as f64 / 2.0 - 0.5, height as f64 / 2.0 - 0.5);
        let (s, c) = self.degrees.to_radians().sin_cos();
        let (a, b) = (self.sx * c, -self.sy * s);
        let (d, e) = (self.sx * s, self.sy * c);
        [
            a,
            b,
            self.tx + cx - (a * cx + b * cy),
            d,
            e,
            self.ty + cy - (d * cx + e * cy),
        ]
    }
}

/// `cv2.warpAffine(image, m, (W, H), flags, BORDER_CONSTANT, cval)` for one channel, to the
/// bit: OpenCV inverts `m`, maps each output pixel to source coordinates in fixed point
/// (1/1024 px), then nearest takes ⌊x + ½⌋ and bilinear rounds to 1/32 px and weighs the
/// four neighbours with its table of k/1024 weights (taps outside take `cval`).
pub fn warp_affine(image: &GrayF, m: &[f64; 6], how: Interpolation, cval: f64) -> GrayF {
    const AB_BITS: i32 = 10;
    const AB_SCALE: f64 = (1 << AB_BITS) as f64;
    const INTER_BITS: i32 = 5;
    const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
    let (w, h) = (image.width, image.height);
    // cv::warpAffine's inversion (no WARP_INVERSE_MAP), term for term.
    let mut im = *m;
    let det = im[0] * im[4] - im[1] * im[3];
    let det = if det != 0.0 { 1.0 / det } else { 0.0 };
    let (a11, a22) = (im[4] * det, im[0] * det);
    im[0] = a11;
    im[1] *= -det;
    im[3] *= -det;
    im[4] = a22;
    let b1 = -im[0] * im[2] - im[1] * im[5];
    let b2 = -im[3] * im[2] - im[4] * im[5];
    im[2] = b1;
    im[5] = b2;
    // saturate_cast<int>(double) is cvRound: round half to even.
    let fix = |v: f64| v.round_ties_even().clamp(i32::MIN as f64, i32::MAX as f64) as i32;
    let adelta: Vec<i32> = (0..w).map(|x| fix(im[0] * x as f64 * AB_SCALE)).collect();
    let bdelta: Vec<i32> = (0..w).map(|x| fix(im[3] * x as f64 * AB_SCALE)).collect();
    let at = |xi: i32, yi: i32| -> f64 {
        if xi < 0 || yi < 0 || xi >= w as i32 || yi >= h as i32 {
            cval
        } else {
            image.data[yi as usize * w + xi as usize]
        }
    };
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let round_delta = match how {
            Interpolation::Nearest => 1 << (AB_BITS - 1),
            Interpolation::Bilinear => 1 << (AB_BITS - INTER_BITS - 1),
        };
        let x0 = fix((im[1] * y as f64 + im[2]) * AB_SCALE) + round_delta;
        let y0 = fix((im[4] * y as f64 + im[5]) * AB_SCALE) + round_delta;
        for x in 0..w {
            let (xs, ys) = (x0 + adelta[x], y0 + bdelta[x]);
            out[y * w + x] = match how {
                Interpolation::Nearest => at(xs >> AB_BITS, ys >> AB_BITS),
                Interpolation::Bilinear => {
                    let (xs, ys) = (xs >> (AB_BITS - INTER_BITS), ys >> (AB_BITS - INTER_BITS));
                    let (sx, sy) = (xs >> INTER_BITS, ys >> INTER_BITS);
                    if sx >= w as i32 || sx + 1 < 0 || sy >= h as i32 || sy + 1 < 0 {
                        cval
                    } else {
                        // BilinearTab_f: products of (1 − f, f), f = k/32, exact in f32.
                        let fx = (xs & (INTER_TAB_SIZE - 1)) as f64 / INTER_TAB_SIZE as f64;
                        let fy = (ys & (INTER_TAB_SIZE - 1)) as f64 / INTER_TAB_SIZE as f64;
                        let wt = [
                            (1.0 - fy) * (1.0 - fx),
                            (1.0 - fy) * fx,
                            fy * (1.0 - fx),
                            fy * fx,
                        ];
                        at(sx, sy) * wt[0]
                            + at(sx + 1, sy) * wt[1]
                            + at(sx, sy + 1) * wt[2]
                            + at(sx + 1, sy + 1) * wt[3]
                    }
                }
            };
        }
    }
    GrayF {
        width: w,
        height: h,
        data: out,
    }
}

/// imgaug 0.4's Affine on one image: [`AffineParams::matrix`] warped by [`warp_affine`]
/// (its cv2 backend), except that a matrix whose mean absolute difference from the 3×3
/// identity is at most 10⁻⁴ leaves the image unchanged, as imgaug does.
pub fn affine(image: &GrayF, p: &AffineParams) -> GrayF {
    let m = p.matrix(image.width, image.height);
    let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let off: f64 = m.iter().zip(identity).map(|(a, b)| (a - b).abs()).sum();
    if off / 9.0 <= 1e-4 {
        return image.clone();
    }
    warp_affine(image, &m, p.interpolation, p.cval)
}

fn elastic(image: &GrayF, alpha: f64, sigma: f64, seed: u64) -> GrayF {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    let (w, h) = (image.width, image.height);
    let field = |rng: &mut rand_chacha::ChaCha8Rng| {
        let raw = GrayF {
            width: w,
            height: h,
            data: (0..w * h).map(|_| rng.random_range(-1.0..1.0)).collect(),
        };
        gaussian_blur(&raw, sigma)
    };
    let (dx, dy) = (field(&mut rng), field(&mut rng));
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (sx, sy) = (x as f64 + alpha * dx.data[i], y as f64 + alpha * dy.data[i]);
            let (sx, sy) = (sx.clamp(0.0, (w - 1) as f64), sy.clamp(0.0, (h - 1) as f64));
            out[i] = sample(image, sx, sy, Interpolation::Bilinear, 0.0);
        }
    }
    GrayF {
        width: w,
        height: h,
        data: out,
    }
}

/// A sequence of ops, optionally shuffled once per batch (imgaug's `random_order=True`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augmenter {
    /// Name in tables.
    pub name: String,
    /// The ops.
    pub ops: Vec<Op>,
    /// Shuffle the op order once per batch.
    #[serde(default)]
    pub random_order: bool,
}

impl Augmenter {
    /// Blind-Touch's SOCOFing notebook pipeline.
    pub fn blindtouch_socofing() -> Self {
        Self {
            name: "blindtouch-socofing".into(),
            ops: vec![
                Op::GaussianBlur { sigma: (0.0, 0.7) },
                Op::Dropout { p: (0.01, 0.15) },
                Op::Affine {
                    scale: (0.9, 1.1),
                    translate_percent: (-0.1, 0.1),
                    rotate: (-30.0, 30.0),
                    order: vec![Interpolation::Nearest, Interpolation::Bilinear],
                    cval: 1.0,
                },
            ],
            random_order: true,
        }
    }

    /// Blind-Touch's PolyU notebook pipeline (no scale, no rotation).
    pub fn blindtouch_polyu() -> Self {
        Self {
            name: "blindtouch-polyu".into(),
            ops: vec![
                Op::GaussianBlur { sigma: (0.0, 0.3) },
                Op::Dropout { p: (0.01, 0.15) },
                Op::Affine {
                    scale: (1.0, 1.0),
                    translate_percent: (-0.15, 0.2),
                    rotate: (0.0, 0.0),
                    order: vec![Interpolation::Nearest, Interpolation::Bilinear],
                    cval: 1.0,
                },
            ],
            random_order: true,
        }
    }

    /// A preset by name: blindtouch-socofing, blindtouch-polyu, none.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "blindtouch-socofing" => Ok(Self::blindtouch_socofing()),
            "blindtouch-polyu" => Ok(Self::blindtouch_polyu()),
            "none" => Ok(Self {
                name: "none".into(),
                ops: vec![],
                random_order: false,
            }),
            other => Err(DatasetError::invalid(
                "augmentation preset",
                format!("`{other}`; known: blindtouch-socofing, blindtouch-polyu, none"),
            )),
        }
    }

    /// Checks every op.
    pub fn validate(&self) -> Result<()> {
        self.ops.iter().try_for_each(Op::validate)
    }

    /// The op order for one batch: a fresh permutation with `random_order`, else as listed.
    pub fn batch_order(&self, rng: &mut impl Rng) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.ops.len()).collect();
        if self.random_order {
            order.shuffle(rng);
        }
        order
    }

    /// Augments a batch: one op order for the whole batch, fresh parameters per image.
    pub fn apply_batch(&self, images: &[GrayF], rng: &mut impl Rng) -> Result<Vec<GrayF>> {
        self.validate()?;
        let order = self.batch_order(rng);
        Ok(images
            .iter()
            .map(|image| {
                order.iter().fold(image.clone(), |img, &i| {
                    let drawn = self.ops[i].sample(img.width, img.height, rng);
                    apply(&img, &drawn, rng)
                })
            })
            .collect())
    }
}
