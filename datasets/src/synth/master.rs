//! Master fingerprints (one per finger): silhouette, class, singular points, zero-pole
//! orientation field, density map, and ridges grown with oriented Gabor filters
//! (Cappelli, Maio, Maltoni — SFinGe). Minutiae are not placed: they appear where ridge
//! fronts meet during growth.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Henry class of a master print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerClass {
    /// Plain arch.
    Arch,
    /// Tented arch.
    TentedArch,
    /// Left loop.
    LeftLoop,
    /// Right loop.
    RightLoop,
    /// Whorl.
    Whorl,
}

impl FingerClass {
    /// Natural frequencies (SFinGe): arch 3.7%, tented arch 2.9%, left loop 33.8%,
    /// right loop 31.7%, whorl 27.9%.
    pub const FREQUENCIES: [(FingerClass, f64); 5] = [
        (FingerClass::Arch, 0.037),
        (FingerClass::TentedArch, 0.029),
        (FingerClass::LeftLoop, 0.338),
        (FingerClass::RightLoop, 0.317),
        (FingerClass::Whorl, 0.279),
    ];

    /// Draws a class with the natural frequencies.
    pub fn sample(rng: &mut impl Rng) -> Self {
        let mut u: f64 = rng.random();
        for (class, p) in Self::FREQUENCIES {
            if u < p {
                return class;
            }
            u -= p;
        }
        FingerClass::Whorl
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arch => "arch",
            Self::TentedArch => "tented_arch",
            Self::LeftLoop => "left_loop",
            Self::RightLoop => "right_loop",
            Self::Whorl => "whorl",
        }
    }
}

/// Shape and ridge parameters of a master, in master pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterInfo {
    /// Class.
    pub class: FingerClass,
    /// Cores (x, y).
    pub cores: Vec<(f64, f64)>,
    /// Deltas (x, y).
    pub deltas: Vec<(f64, f64)>,
    /// Mean ridge period.
    pub period: f64,
}

/// A grown master: ridge values in [−1, 1] (negative = ridge) and a silhouette.
pub struct Master {
    /// Canvas width.
    pub width: usize,
    /// Canvas height.
    pub height: usize,
    /// Ridge field, row-major.
    pub ridges: Vec<f32>,
    /// Silhouette in [0, 1] (soft edge).
    pub mask: Vec<f32>,
    /// Ridge orientation (radians, image coordinates, mod π), row-major.
    pub orientation: Vec<f32>,
    /// Parameters.
    pub info: MasterInfo,
}

/// Number of orientation bins of the Gabor filter bank.
const ORIENTATION_BINS: usize = 32;
/// Kernel radius: 17×17 taps.
const RADIUS: usize = 8;
const KSIZE: usize = 2 * RADIUS + 1;
/// Upper bound on growth iterations.
const MAX_ITERATIONS: usize = 25;

/// Oriented Gabor kernels for each (period bin, orientation bin), zero-mean.
pub struct FilterBank {
    periods: Vec<f64>,
    kernels: Vec<[f32; KSIZE * KSIZE]>,
}

impl FilterBank {
    /// Kernels for periods from `min` to `max` in steps of `step`.
    pub fn new(min: f64, max: f64, step: f64) -> Self {
        let periods: Vec<f64> = (0..)
            .map(|i| min + i as f64 * step)
            .take_while(|&p| p <= max + 1e-9)
            .collect();
        let mut kernels = Vec::with_capacity(periods.len() * ORIENTATION_BINS);
        for &t in &periods {
            let sigma = 0.4 * t;
            let f = 1.0 / t;
            for b in 0..ORIENTATION_BINS {
                let theta = b as f64 * PI / ORIENTATION_BINS as f64;
                // The filter oscillates across the ridges: along the ridge normal.
                let phi = theta + PI / 2.0;
                let (s, c) = phi.sin_cos();
                let mut k = [0f32; KSIZE * KSIZE];
                let mut sum = 0.0;
                for y in 0..KSIZE {
                    for x in 0..KSIZE {
                        let (dx, dy) = (x as f64 - RADIUS as f64, y as f64 - RADIUS as f64);
                        let v = (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
                            * (2.0 * PI * f * (dx * c + dy * s)).cos();
                        k[y * KSIZE + x] = v as f32;
                        sum += v;
                    }
                }
                let mean = (sum / (KSIZE * KSIZE) as f64) as f32;
                let mut energy = 0.0f32;
                for v in k.iter_mut() {
                    *v -= mean;
                    energy += v.abs();
                }
                // Gain so a clean ridge pattern reproduces itself with amplitude ~1.5.
                for v in k.iter_mut() {
                    *v *= 3.0 / energy;
                }
                kernels.push(k);
            }
        }
        Self { periods, kernels }
    }

    fn index(&self, theta: f32, period: f32) -> usize {
        let t = (theta as f64).rem_euclid(PI);
        let b = ((t / PI * ORIENTATION_BINS as f64).round() as usize) % ORIENTATION_BINS;
        let p = self
            .periods
            .iter()
            .enumerate()
            .min_by(|a, b| {
                (a.1 - period as f64)
                    .abs()
                    .total_cmp(&(b.1 - period as f64).abs())
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        p * ORIENTATION_BINS + b
    }
}

/// The correction function g of the Vizcaya–Gerhardt model: piecewise linear through
/// αᵢ = −π + 2πi/8 with g(αᵢ) = αᵢ + εᵢ.
struct Correction {
    eps: [f64; 9],
}

impl Correction {
    fn new(rng: &mut impl Rng, strength: f64) -> Self {
        let mut eps = [0.0; 9];
        for e in eps.iter_mut().take(8) {
            *e = rng.random_range(-strength..=strength);
        }
        eps[8] = eps[0]; // periodic
        Self { eps }
    }

    fn apply(&self, alpha: f64) -> f64 {
        let t = (alpha + PI) / (2.0 * PI) * 8.0;
        let i = (t.floor() as usize).min(7);
        let f = t - i as f64;
        alpha + self.eps[i] * (1.0 - f) + self.eps[i + 1] * f
    }
}

/// Zero-pole orientation at (x, y) in image coordinates (y down). Computed with y up
/// (mathematical convention) and mapped back, so a loop's core is U-shaped on screen.
fn orientation_at(
    x: f64,
    y: f64,
    cores: &[(f64, f64)],
    deltas: &[(f64, f64)],
    g: &Correction,
) -> f64 {
    let mut theta = 0.0;
    for &(cx, cy) in cores {
        theta += g.apply((-(y - cy)).atan2(x - cx));
    }
    for &(dx, dy) in deltas {
        theta -= g.apply((-(y - dy)).atan2(x - dx));
    }
    // Back to y-down image coordinates.
    -(theta / 2.0)
}

/// Points (x, y) in master pixels.
type Points = Vec<(f64, f64)>;

/// Places singular points (cores, deltas) for a class in a box (x0, y0, w, h).
fn singular_points(
    class: FingerClass,
    rng: &mut impl Rng,
    w: f64,
    h: f64,
    x0: f64,
    y0: f64,
) -> (Points, Points) {
    let at = |u: f64, v: f64| (x0 + u * w, y0 + v * h);
    let jitter = |rng: &mut dyn rand::RngCore, s: f64| rng.random_range(-s..=s);
    match class {
        FingerClass::Arch => {
            // A core/delta pair well below the visible print bends the ridges into an arch.
            let u = 0.5 + jitter(rng, 0.1);
            (
                vec![at(u, 1.05 + jitter(rng, 0.05))],
                vec![at(u, 1.45 + jitter(rng, 0.1))],
            )
        }
        FingerClass::TentedArch => {
            let u = 0.5 + jitter(rng, 0.06);
            let v = 0.45 + jitter(rng, 0.05);
            (
                vec![at(u, v)],
                vec![at(u + jitter(rng, 0.02), v + 0.22 + jitter(rng, 0.04))],
            )
        }
        FingerClass::LeftLoop | FingerClass::RightLoop => {
            let side = if class == FingerClass::LeftLoop {
                1.0
            } else {
                -1.0
            };
            let u = 0.5 + jitter(rng, 0.1);
            let v = 0.4 + jitter(rng, 0.1);
            let core = at(u, v);
            let delta = at(
                u + side * (0.28 + jitter(rng, 0.06)),
                v + 0.32 + jitter(rng, 0.05),
            );
            (vec![core], vec![delta])
        }
        FingerClass::Whorl => {
            let u = 0.5 + jitter(rng, 0.08);
            let v = 0.45 + jitter(rng, 0.08);
            let tilt = jitter(rng, 0.05);
            let cores = vec![at(u - 0.04 + tilt, v - 0.06), at(u + 0.04 - tilt, v + 0.06)];
            let deltas = vec![
                at(u - 0.32 + jitter(rng, 0.05), v + 0.36 + jitter(rng, 0.05)),
                at(u + 0.32 + jitter(rng, 0.05), v + 0.36 + jitter(rng, 0.05)),
            ];
            (cores, deltas)
        }
    }
}

/// Parameters of master generation for a preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MasterSpec {
    /// Canvas width (master pixels).
    pub width: usize,
    /// Canvas height.
    pub height: usize,
    /// Range of the mean ridge period (master pixels).
    pub period: (f64, f64),
    /// Fraction of the canvas the silhouette spans horizontally and vertically.
    pub extent: (f64, f64),
}

/// Grows one master print.
pub fn grow(spec: &MasterSpec, bank: &FilterBank, rng: &mut ChaCha8Rng) -> Master {
    let (w, h) = (spec.width, spec.height);
    let class = FingerClass::sample(rng);

    // Silhouette: a rounded shape from four elliptical arcs around a central rectangle.
    let (cx, cy) = (
        w as f64 / 2.0 + rng.random_range(-0.03..0.03) * w as f64,
        h as f64 / 2.0 + rng.random_range(-0.03..0.03) * h as f64,
    );
    let half_w = spec.extent.0 * w as f64 / 2.0 * rng.random_range(0.9..1.02);
    let half_h = spec.extent.1 * h as f64 / 2.0 * rng.random_range(0.9..1.02);
    let (a1, a2) = (half_w, half_w * rng.random_range(0.9..1.0));
    let (b1, b2) = (
        half_h * rng.random_range(0.85..1.0),
        half_h * rng.random_range(0.7..0.9),
    );
    let c = rng.random_range(0.05..0.2) * half_h; // half-height of the straight middle section
    let inside = |x: f64, y: f64| -> f64 {
        let dx = x - cx;
        let a = if dx < 0.0 { a1 } else { a2 };
        let dy = y - cy;
        let (b, off) = if dy < -c {
            (b1, dy + c)
        } else if dy > c {
            (b2, dy - c)
        } else {
            (b1.max(b2), 0.0)
        };
        let r = (dx / a).powi(2) + (off / b).powi(2);
        // Soft edge about 3 master pixels wide.
        ((1.0 - r) * a.min(b) / 6.0).clamp(0.0, 1.0)
    };

    let (x0, y0) = (cx - half_w, cy - half_h);
    let (cores, deltas) = singular_points(class, rng, 2.0 * half_w, 2.0 * half_h, x0, y0);
    let g = Correction::new(rng, 0.15);
    let base_period = rng.random_range(spec.period.0..spec.period.1);

    let mut mask = vec![0f32; w * h];
    let mut orientation = vec![0f32; w * h];
    let mut period = vec![0f32; w * h];
    let mut bins = vec![0u32; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            mask[i] = inside(x as f64, y as f64) as f32;
            let theta = orientation_at(x as f64, y as f64, &cores, &deltas, &g);
            orientation[i] = theta.rem_euclid(PI) as f32;
            // Longer periods towards the top and bottom of the print.
            let v = ((y as f64 - cy) / half_h).abs().min(1.5);
            period[i] = (base_period * (1.0 + 0.12 * v * v)) as f32;
            bins[i] = bank.index(orientation[i], period[i]) as u32;
        }
    }

    // Ridge growth from sparse seeds, on a canvas padded by the kernel radius.
    let pw = w + 2 * RADIUS;
    let mut field = vec![0f32; pw * (h + 2 * RADIUS)];
    let seeds = (w * h) / 150;
    for _ in 0..seeds {
        let (x, y) = (rng.random_range(0..w), rng.random_range(0..h));
        field[(y + RADIUS) * pw + x + RADIUS] = if rng.random::<bool>() { 1.0 } else { -1.0 };
    }
    let active: Vec<usize> = (0..w * h)
        .filter(|&i| mask[i] > 0.0 || near_mask(&mask, w, h, i))
        .collect();
    let mut next = field.clone();
    let mut iterations = 0;
    // Stop once fewer than 1% of pixels flip between ridge and valley; a few regions
    // near singular points keep oscillating, so growth is also capped.
    for _ in 0..MAX_ITERATIONS {
        iterations += 1;
        let mut changed = 0usize;
        for &i in &active {
            let (x, y) = (i % w, i / w);
            let k = &bank.kernels[bins[i] as usize];
            // Independent lanes (summed once at the end) let the compiler vectorise;
            // a running f32 sum would force sequential adds.
            let mut lanes = [0f32; KSIZE];
            for ky in 0..KSIZE {
                let row = &field[(y + ky) * pw + x..(y + ky) * pw + x + KSIZE];
                let krow = &k[ky * KSIZE..(ky + 1) * KSIZE];
                for ((lane, a), b) in lanes.iter_mut().zip(row).zip(krow) {
                    *lane += a * b;
                }
            }
            let v = lanes.iter().sum::<f32>().clamp(-1.0, 1.0);
            let old = field[(y + RADIUS) * pw + x + RADIUS];
            if (v > 0.0) != (old > 0.0) {
                changed += 1;
            }
            next[(y + RADIUS) * pw + x + RADIUS] = v;
        }
        std::mem::swap(&mut field, &mut next);
        if changed * 100 < active.len() {
            break;
        }
    }
    if std::env::var_os("TOUCHSTONE_SYNTH_DEBUG").is_some() {
        eprintln!(
            "master: {iterations} iterations over {} pixels",
            active.len()
        );
    }
    let ridges = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            // Negative = ridge (dark), so invert the grown field's sign convention.
            -field[(y + RADIUS) * pw + x + RADIUS]
        })
        .collect();
    Master {
        width: w,
        height: h,
        ridges,
        mask,
        orientation,
        info: MasterInfo {
            class,
            cores,
            deltas,
            period: base_period,
        },
    }
}

/// True if a pixel is within a few pixels of the silhouette (ridges grow slightly past the
/// soft edge so the edge fades over ridges, not over an empty band).
fn near_mask(mask: &[f32], w: usize, h: usize, i: usize) -> bool {
    let (x, y) = ((i % w) as i64, (i / w) as i64);
    [(-3, 0), (3, 0), (0, -3), (0, 3)].iter().any(|(dx, dy)| {
        let (nx, ny) = (x + dx, y + dy);
        nx >= 0
            && ny >= 0
            && nx < w as i64
            && ny < h as i64
            && mask[ny as usize * w + nx as usize] > 0.0
    })
}
