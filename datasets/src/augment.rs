//! Random augmentation equivalent in distribution to imgaug 0.4 (the ops Blind-Touch
//! used: GaussianBlur, Dropout, Affine, in a random order per batch), plus the ops a
//! student will reach for next: elastic distortion, gamma, contrast, Gaussian noise and
//! partial-print cropping. Images are floats in [0, 1]; every draw comes from the
//! caller's seeded RNG.
//!
//! Each op separates `sample` (draw this image's parameters) from `apply` (deterministic
//! given them), so tests can check parameter ranges and geometry independently.

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
    /// imgaug GaussianBlur: σ ~ U[sigma); σ < 1e-3 leaves the image unchanged.
    GaussianBlur {
        /// Range of σ in pixels.
        sigma: Range,
    },
    /// imgaug Dropout: keep probability p ~ U(1 − hi, 1 − lo) per image, then each pixel
    /// is kept with probability p, else set to 0.
    Dropout {
        /// Range of the drop probability.
        p: Range,
    },
    /// imgaug Affine about the image centre; outside pixels take `cval`.
    Affine {
        /// Range of the x and y scale factors (drawn independently).
        scale: Range,
        /// Range of the translation as a fraction of width (x) and height (y).
        translate_percent: Range,
        /// Range of the rotation in degrees.
        rotate: Range,
        /// Interpolations to choose from at random per image.
        order: Vec<Interpolation>,
        /// Value of pixels mapped from outside the input.
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
    /// Rotation in degrees (counter-clockwise on screen is negative: y points down).
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

/// imgaug's Gaussian kernel: size int(max(3.3σ, 5)) made odd, normalised taps.
pub fn gaussian_taps(sigma: f64) -> Vec<f64> {
    let mut size = (3.3 * sigma).max(5.0) as usize;
    if size.is_multiple_of(2) {
        size += 1;
    }
    let c = (size / 2) as f64;
    let taps: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.into_iter().map(|t| t / sum).collect()
}

/// Separable Gaussian blur with REFLECT_101 borders (σ < 1e-3: unchanged).
pub fn gaussian_blur(image: &GrayF, sigma: f64) -> GrayF {
    if sigma < 1e-3 {
        return image.clone();
    }
    let taps = gaussian_taps(sigma);
    GrayF {
        width: image.width,
        height: image.height,
        data: crate::filter::separable(&image.data, image.width, image.height, &taps, &taps),
    }
}

/// Samples `image` at real coordinates, `cval` outside.
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

/// imgaug's Affine: M = T(c)·[R(θ)·diag(sx, sy) | t]·T(−c), c = (W/2 − 0.5, H/2 − 0.5);
/// each output pixel samples the input at M⁻¹(x, y).
pub fn affine(image: &GrayF, p: &AffineParams) -> GrayF {
    let (w, h) = (image.width, image.height);
    let (cx, cy) = (w as f64 / 2.0 - 0.5, h as f64 / 2.0 - 0.5);
    let (s, c) = p.degrees.to_radians().sin_cos();
    // Forward linear part A = R·S; inverse A⁻¹ = S⁻¹·Rᵀ.
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f64 - cx - p.tx, y as f64 - cy - p.ty);
            let (ru, rv) = (c * u + s * v, -s * u + c * v);
            let (sx, sy) = (ru / p.sx + cx, rv / p.sy + cy);
            out[y * w + x] = sample(image, sx, sy, p.interpolation, p.cval);
        }
    }
    GrayF {
        width: w,
        height: h,
        data: out,
    }
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
