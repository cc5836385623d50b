//! Binary descriptors: the fuzzy extractor's input `w`.
//!
//! Two sources:
//!
//! * **Minutiae** (the paper's Alg. 2, "stable distinguishable descriptor"). Minutiae near
//!   the print's border are dropped first (the paper measured Hamming errors of up to 30
//!   bits before this screening and ≤ 10 after). Three non-collinear control points are
//!   placed on the remaining points — C1 their mean, C2 and C3 one standard deviation
//!   along the two eigenvectors of AᵀA (A = the centred points) — and every point is
//!   written in barycentric weights α = (α1, α2, α3) with p = α1·C1 + α2·C2 + α3·C3,
//!   Σα = 1. Those weights do not change when the print is translated, rotated or scaled,
//!   which is why the paper uses them. The paper does not say how the weights become
//!   128 bits. Here the points' (α2, α3) coordinates (α1 is redundant) are whitened — zero
//!   mean, unit covariance — and smoothed by a Gaussian kernel; bit j compares that
//!   density at a seeded probe qⱼ ~ N(0, I) with the density at qⱼ turned about the
//!   centre by a seeded angle in [π/3, 5π/3]. Both probes lie at the same radius, so the
//!   bit does not just say "near the centre" (comparing every probe with one median
//!   instead made all prints alike: different synthetic fingers then differed in only
//!   ~36 of 128 bits); it says on which side the finger has more minutiae, which a
//!   different finger decides independently (≈ 64 differing bits), while a few moved
//!   minutiae change few comparisons.
//! * **Embeddings** (a network's `f32` vector): the signs of `bits` seeded Gaussian random
//!   projections (SimHash), whose Hamming distance estimates the angle between vectors.
//!
//! Both are deterministic functions of (input, parameters, seed).
//!
//! Measured on synthetic prints (`examples/synthetic_prints.rs`: 8 PolyU-like fingers,
//! 324 same-finger pairs, default parameters): same-finger descriptors differ in 44 of
//! 128 bits on average and only 11 pairs are within 10 bits; different fingers differ in
//! 56. The whole-print frame (centroid, principal axes and their signs) moves with partial
//! captures and spurious minutiae, at times flipping an axis (distances above 64), so the
//! paper's "≤ 10 bits after screening" is not reproduced on these prints.

use crate::error::{BpkemError, Result};
use datasets::image::Gray8;
use datasets::realism::{analyse, Analysis, Minutia};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A fixed-length bit string (bit i is bit `i % 64` of word `i / 64`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bits {
    len: usize,
    words: Vec<u64>,
}

impl Bits {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> Self {
        Self {
            len,
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// From one `bool` per bit.
    pub fn from_bools(bits: &[bool]) -> Self {
        let mut out = Self::zeros(bits.len());
        for (i, &b) in bits.iter().enumerate() {
            out.set(i, b);
        }
        out
    }

    /// The bits as `bool`s.
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i`. Panics when `i >= len` (a caller bug, never input-driven: parsers check
    /// indices against the length first).
    pub fn get(&self, i: usize) -> bool {
        assert!(i < self.len, "bit {i} of {}", self.len);
        self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Sets bit `i` (panics when out of range, as [`Bits::get`]).
    pub fn set(&mut self, i: usize, value: bool) {
        assert!(i < self.len, "bit {i} of {}", self.len);
        let mask = 1u64 << (i % 64);
        if value {
            self.words[i / 64] |= mask;
        } else {
            self.words[i / 64] &= !mask;
        }
    }

    /// Flips bit `i` (panics when out of range, as [`Bits::get`]).
    pub fn flip(&mut self, i: usize) {
        assert!(i < self.len, "bit {i} of {}", self.len);
        self.words[i / 64] ^= 1u64 << (i % 64);
    }

    /// Number of one bits.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The bits at `indices`, packed LSB-first into bytes (the digital lockers' input).
    pub fn gather(&self, indices: &[u16]) -> Vec<u8> {
        let mut out = vec![0u8; indices.len().div_ceil(8)];
        for (j, &i) in indices.iter().enumerate() {
            if self.get(i as usize) {
                out[j / 8] |= 1 << (j % 8);
            }
        }
        out
    }

    /// LSB-first bytes, `len.div_ceil(8)` of them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len.div_ceil(8)];
        for i in 0..self.len {
            if self.get(i) {
                out[i / 8] |= 1 << (i % 8);
            }
        }
        out
    }

    /// Inverse of [`Bits::to_bytes`]; refuses a wrong byte count or set padding bits.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Self> {
        if bytes.len() != len.div_ceil(8) {
            return Err(BpkemError::malformed(
                "bit string",
                format!("{} bytes for {len} bits", bytes.len()),
            ));
        }
        let mut out = Self::zeros(len);
        for (i, &byte) in bytes.iter().enumerate() {
            for b in 0..8 {
                if byte >> b & 1 == 1 {
                    let at = i * 8 + b;
                    if at >= len {
                        return Err(BpkemError::malformed("bit string", "padding bits set"));
                    }
                    out.set(at, true);
                }
            }
        }
        Ok(out)
    }
}

/// Hamming distance; an error when the lengths differ.
pub fn hamming(a: &Bits, b: &Bits) -> Result<usize> {
    if a.len != b.len {
        return Err(BpkemError::LengthMismatch(a.len, b.len));
    }
    Ok(a.words
        .iter()
        .zip(&b.words)
        .map(|(x, y)| (x ^ y).count_ones() as usize)
        .sum())
}

/// Settings of the minutiae descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DescriptorParams {
    /// Descriptor length n (the paper: 128).
    pub bits: usize,
    /// Minutiae closer than this many pixels (chessboard distance) to the background or
    /// the image border are dropped as unstable.
    pub edge_margin: usize,
    /// Fewest minutiae left after screening; fewer is [`BpkemError::TooFewMinutiae`].
    pub min_minutiae: usize,
    /// Kernel bandwidth in the whitened (α2, α3) plane.
    pub bandwidth: f64,
    /// Seed of the probe points (public; the same for enrolment and query).
    pub seed: u64,
}

impl Default for DescriptorParams {
    fn default() -> Self {
        Self {
            bits: 128,
            edge_margin: 12,
            min_minutiae: 8,
            bandwidth: 0.35,
            seed: 0x6270_6b65_6d00_0001,
        }
    }
}

impl DescriptorParams {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_BITS).contains(&self.bits) {
            return Err(BpkemError::params(
                "bits",
                format!("{} not in 2..={MAX_BITS}", self.bits),
            ));
        }
        if self.min_minutiae < 3 {
            return Err(BpkemError::params(
                "min_minutiae",
                "three control points need at least 3 points",
            ));
        }
        if !(self.bandwidth.is_finite() && self.bandwidth > 0.0) {
            return Err(BpkemError::params(
                "bandwidth",
                format!("{}", self.bandwidth),
            ));
        }
        Ok(())
    }
}

/// Longest descriptor accepted (bounds the probe and projection tables).
pub const MAX_BITS: usize = 4096;

/// Minutiae at least `margin` pixels (chessboard distance) inside the foreground of
/// `analysis`, counting everything outside the image as background.
pub fn screen_edges(
    analysis: &Analysis,
    width: usize,
    height: usize,
    margin: usize,
) -> Result<Vec<Minutia>> {
    if analysis.mask.len() != width * height {
        return Err(BpkemError::LengthMismatch(
            analysis.mask.len(),
            width * height,
        ));
    }
    let depth = depth_map(&analysis.mask, width, height);
    Ok(analysis
        .minutiae
        .iter()
        .filter(|m| {
            let (x, y) = (m.x.round(), m.y.round());
            if !(x >= 0.0 && y >= 0.0 && (x as usize) < width && (y as usize) < height) {
                return false;
            }
            depth[y as usize * width + x as usize] >= margin
        })
        .copied()
        .collect())
}

/// Chessboard distance of each foreground pixel to the nearest background pixel or to
/// the outside of the image (two-pass chamfer); 0 on the background.
fn depth_map(mask: &[bool], w: usize, h: usize) -> Vec<usize> {
    let mut d = vec![0usize; w * h];
    let at = |d: &[usize], x: isize, y: isize| -> usize {
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize {
            0
        } else {
            d[y as usize * w + x as usize]
        }
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            if mask[i] {
                let best = [(-1, -1), (0, -1), (1, -1), (-1, 0)]
                    .iter()
                    .map(|&(dx, dy)| at(&d, x + dx, y + dy))
                    .min()
                    .unwrap_or(0);
                d[i] = best + 1;
            }
        }
    }
    for y in (0..h as isize).rev() {
        for x in (0..w as isize).rev() {
            let i = y as usize * w + x as usize;
            if mask[i] {
                let best = [(1, 1), (0, 1), (-1, 1), (1, 0)]
                    .iter()
                    .map(|&(dx, dy)| at(&d, x + dx, y + dy))
                    .min()
                    .unwrap_or(0);
                d[i] = d[i].min(best + 1);
            }
        }
    }
    d
}

/// The three control points of a point set (Alg. 2): C1 the mean, C2 = C1 + σ1·v1,
/// C3 = C1 + σ2·v2 with (λi, vi) the eigenpairs of AᵀA/N, σi = √λi, λ1 ≥ λ2. Each
/// eigenvector's sign is fixed so that the points' third moment along it is ≥ 0, which
/// makes the frame (and the weights) invariant to rotation of the whole set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControlPoints {
    /// C1, C2, C3.
    pub c: [[f64; 2]; 3],
}

impl ControlPoints {
    /// Control points of `points`; an error for fewer than 3 points, non-finite
    /// coordinates or a (near-)collinear set.
    pub fn of(points: &[[f64; 2]]) -> Result<Self> {
        if points.len() < 3 {
            return Err(BpkemError::TooFewMinutiae {
                found: points.len(),
                needed: 3,
            });
        }
        if points.iter().flatten().any(|v| !v.is_finite()) {
            return Err(BpkemError::Degenerate("non-finite coordinate".into()));
        }
        let count = points.len() as f64;
        let mean = [
            points.iter().map(|p| p[0]).sum::<f64>() / count,
            points.iter().map(|p| p[1]).sum::<f64>() / count,
        ];
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for p in points {
            let (dx, dy) = (p[0] - mean[0], p[1] - mean[1]);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        let (sxx, sxy, syy) = (sxx / count, sxy / count, syy / count);
        let half_trace = (sxx + syy) / 2.0;
        let root = (((sxx - syy) / 2.0).powi(2) + sxy * sxy).sqrt();
        let (l1, l2) = (half_trace + root, half_trace - root);
        if l1 <= 0.0 || l2 <= 1e-9 * l1 {
            return Err(BpkemError::Degenerate("collinear points".into()));
        }
        let mut v1 = if sxy.abs() > 1e-12 * l1 {
            let v = [l1 - syy, sxy];
            let norm = v[0].hypot(v[1]);
            [v[0] / norm, v[1] / norm]
        } else if sxx >= syy {
            [1.0, 0.0]
        } else {
            [0.0, 1.0]
        };
        let mut v2 = [-v1[1], v1[0]];
        for v in [&mut v1, &mut v2] {
            let skew: f64 = points
                .iter()
                .map(|p| ((p[0] - mean[0]) * v[0] + (p[1] - mean[1]) * v[1]).powi(3))
                .sum();
            if skew < 0.0 {
                *v = [-v[0], -v[1]];
            }
        }
        let (s1, s2) = (l1.sqrt(), l2.sqrt());
        Ok(Self {
            c: [
                mean,
                [mean[0] + s1 * v1[0], mean[1] + s1 * v1[1]],
                [mean[0] + s2 * v2[0], mean[1] + s2 * v2[1]],
            ],
        })
    }

    /// Barycentric weights (α1, α2, α3) of `p`: p = Σ αj·Cj with Σ αj = 1 (the paper's
    /// Eq. 8, solved by Cramer's rule).
    pub fn weights(&self, p: [f64; 2]) -> [f64; 3] {
        let [c1, c2, c3] = self.c;
        let (ux, uy) = (c2[0] - c1[0], c2[1] - c1[1]);
        let (vx, vy) = (c3[0] - c1[0], c3[1] - c1[1]);
        let (px, py) = (p[0] - c1[0], p[1] - c1[1]);
        let det = ux * vy - uy * vx;
        let a2 = (px * vy - py * vx) / det;
        let a3 = (ux * py - uy * px) / det;
        [1.0 - a2 - a3, a2, a3]
    }
}

/// Descriptor of minutiae that were already screened (see [`screen_edges`]).
pub fn from_minutiae(minutiae: &[Minutia], params: &DescriptorParams) -> Result<Bits> {
    let points: Vec<[f64; 2]> = minutiae.iter().map(|m| [m.x, m.y]).collect();
    from_points(&points, params)
}

/// Descriptor of 2-D feature points (minutiae or face landmarks).
pub fn from_points(points: &[[f64; 2]], params: &DescriptorParams) -> Result<Bits> {
    params.validate()?;
    if points.len() < params.min_minutiae {
        return Err(BpkemError::TooFewMinutiae {
            found: points.len(),
            needed: params.min_minutiae,
        });
    }
    let control = ControlPoints::of(points)?;
    let plane: Vec<[f64; 2]> = points
        .iter()
        .map(|&p| {
            let [_, a2, a3] = control.weights(p);
            [a2, a3]
        })
        .collect();
    let probes = probe_points(params.bits, params.seed);
    let inv = 1.0 / (2.0 * params.bandwidth * params.bandwidth);
    let density = |q: [f64; 2]| -> f64 {
        plane
            .iter()
            .map(|u| (-((u[0] - q[0]).powi(2) + (u[1] - q[1]).powi(2)) * inv).exp())
            .sum()
    };
    Ok(Bits::from_bools(
        &probes
            .iter()
            .map(|(q, partner)| density(*q) > density(*partner))
            .collect::<Vec<_>>(),
    ))
}

/// Analyses a print with [`datasets::realism::analyse`], screens edge minutiae and
/// returns the descriptor.
pub fn from_image(image: &Gray8, params: &DescriptorParams) -> Result<Bits> {
    let analysis = analyse(image).map_err(|e| BpkemError::Image(e.to_string()))?;
    let kept = screen_edges(&analysis, image.width, image.height, params.edge_margin)?;
    from_minutiae(&kept, params)
}

/// `count` probe pairs: q from a seeded standard 2-D normal (Box–Muller on ChaCha8) and
/// its partner, q turned about the origin by a seeded angle in [π/3, 5π/3].
fn probe_points(count: usize, seed: u64) -> Vec<([f64; 2], [f64; 2])> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let (a, b) = gaussian_pair(&mut rng);
            let turn = std::f64::consts::PI * rng.random_range(1.0 / 3.0..5.0 / 3.0);
            let (c, s) = (turn.cos(), turn.sin());
            ([a, b], [c * a - s * b, s * a + c * b])
        })
        .collect()
}

/// Two independent standard normal values (Box–Muller).
pub(crate) fn gaussian_pair(rng: &mut impl Rng) -> (f64, f64) {
    // 1 − u ∈ (0, 1] keeps the logarithm finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    let r = (-2.0 * u.ln()).sqrt();
    let t = 2.0 * std::f64::consts::PI * v;
    (r * t.cos(), r * t.sin())
}

/// Signs of seeded Gaussian random projections of an embedding (SimHash): the expected
/// Hamming distance of two descriptors is `bits · angle / π`.
#[derive(Clone, Debug)]
pub struct RandomProjection {
    bits: usize,
    dim: usize,
    rows: Vec<f64>,
}

impl RandomProjection {
    /// `bits` directions in `dim` dimensions drawn from N(0, I) with `seed`.
    pub fn new(bits: usize, dim: usize, seed: u64) -> Result<Self> {
        if !(1..=MAX_BITS).contains(&bits) {
            return Err(BpkemError::params(
                "bits",
                format!("{bits} not in 1..={MAX_BITS}"),
            ));
        }
        if !(1..=1 << 16).contains(&dim) {
            return Err(BpkemError::params("dim", format!("{dim} not in 1..=65536")));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Vec::with_capacity(bits * dim + 1);
        while rows.len() < bits * dim {
            let (a, b) = gaussian_pair(&mut rng);
            rows.push(a);
            rows.push(b);
        }
        rows.truncate(bits * dim);
        Ok(Self { bits, dim, rows })
    }

    /// Descriptor length.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bit j = [⟨wⱼ, x⟩ > 0]. An error for a wrong length, non-finite values or the zero
    /// vector (whose signs carry no information).
    pub fn apply(&self, x: &[f32]) -> Result<Bits> {
        if x.len() != self.dim {
            return Err(BpkemError::LengthMismatch(x.len(), self.dim));
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(BpkemError::Degenerate("non-finite embedding value".into()));
        }
        if x.iter().all(|&v| v == 0.0) {
            return Err(BpkemError::Degenerate("zero embedding".into()));
        }
        let signs: Vec<bool> = self
            .rows
            .chunks_exact(self.dim)
            .map(|row| row.iter().zip(x).map(|(w, &v)| w * v as f64).sum::<f64>() > 0.0)
            .collect();
        Ok(Bits::from_bools(&signs))
    }
}

/// Shorthand for `RandomProjection::new(bits, x.len(), seed)?.apply(x)`.
pub fn from_embedding(x: &[f32], bits: usize, seed: u64) -> Result<Bits> {
    RandomProjection::new(bits, x.len(), seed)?.apply(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// `count` points spread over a 200×250 print-sized area.
    fn random_points(count: usize, seed: u64) -> Vec<[f64; 2]> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| [rng.random_range(20.0..220.0), rng.random_range(20.0..270.0)])
            .collect()
    }

    fn minutiae(points: &[[f64; 2]]) -> Vec<Minutia> {
        points
            .iter()
            .map(|p| Minutia {
                x: p[0],
                y: p[1],
                angle: 0.0,
                bifurcation: false,
            })
            .collect()
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let params = DescriptorParams::default();
        let points = random_points(40, 1);
        let a = from_points(&points, &params).unwrap();
        let b = from_minutiae(&minutiae(&points), &params).unwrap();
        assert_eq!(a.len(), 128);
        assert_eq!(a, b);
        assert_eq!(a, from_points(&points, &params).unwrap());
        assert!(
            (48..=80).contains(&a.count_ones()),
            "balanced: {}",
            a.count_ones()
        );
        let reseeded = DescriptorParams {
            seed: 99,
            ..params.clone()
        };
        assert!(hamming(&a, &from_points(&points, &reseeded).unwrap()).unwrap() > 20);
        let long = DescriptorParams {
            bits: 256,
            ..params
        };
        assert_eq!(from_points(&points, &long).unwrap().len(), 256);
    }

    #[test]
    fn invariant_to_moving_turning_and_scaling_the_print() {
        let params = DescriptorParams::default();
        let points = random_points(35, 2);
        let base = from_points(&points, &params).unwrap();
        let (c, s) = (0.7f64.cos(), 0.7f64.sin());
        let moved: Vec<[f64; 2]> = points
            .iter()
            .map(|p| {
                [
                    1.3 * (c * p[0] - s * p[1]) + 40.0,
                    1.3 * (s * p[0] + c * p[1]) - 15.0,
                ]
            })
            .collect();
        let d = hamming(&base, &from_points(&moved, &params).unwrap()).unwrap();
        assert!(d <= 2, "similarity transform moved {d} bits");
    }

    #[test]
    fn jitter_flips_few_bits_and_other_fingers_about_half() {
        let params = DescriptorParams::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut intra, mut inter) = (0usize, 0usize);
        let fingers = 20;
        for f in 0..fingers {
            let points = random_points(40, 100 + f);
            let other = random_points(40, 1000 + f);
            let jittered: Vec<[f64; 2]> = points
                .iter()
                .map(|p| {
                    let (a, b) = gaussian_pair(&mut rng);
                    [p[0] + a, p[1] + b]
                })
                .collect();
            let base = from_points(&points, &params).unwrap();
            intra += hamming(&base, &from_points(&jittered, &params).unwrap()).unwrap();
            inter += hamming(&base, &from_points(&other, &params).unwrap()).unwrap();
        }
        let (intra, inter) = (intra as f64 / fingers as f64, inter as f64 / fingers as f64);
        assert!(intra < 20.0, "1-pixel jitter: mean {intra} bits");
        assert!(
            (45.0..85.0).contains(&inter),
            "different fingers: mean {inter} bits"
        );
    }

    #[test]
    fn too_few_or_degenerate_points_are_clear_errors() {
        let params = DescriptorParams::default();
        let points = random_points(7, 4);
        assert_eq!(
            from_points(&points, &params),
            Err(BpkemError::TooFewMinutiae {
                found: 7,
                needed: 8
            })
        );
        let line: Vec<[f64; 2]> = (0..20).map(|i| [i as f64, 2.0 * i as f64 + 1.0]).collect();
        assert!(matches!(
            from_points(&line, &params),
            Err(BpkemError::Degenerate(_))
        ));
        let mut nan = random_points(20, 5);
        nan[3][0] = f64::NAN;
        assert!(matches!(
            from_points(&nan, &params),
            Err(BpkemError::Degenerate(_))
        ));
        // A blank image has no minutiae at all.
        let blank = Gray8::filled(96, 96, 200);
        assert!(matches!(
            from_image(&blank, &params),
            Err(BpkemError::TooFewMinutiae { found: 0, .. })
        ));
        let bad = DescriptorParams {
            min_minutiae: 2,
            ..params
        };
        assert!(matches!(
            from_points(&points, &bad),
            Err(BpkemError::InvalidParams { .. })
        ));
    }

    #[test]
    fn edge_screening_drops_minutiae_near_the_border() {
        // Foreground: the square [10, 90) × [10, 90) of a 100 × 100 image.
        let (w, h) = (100, 100);
        let mask: Vec<bool> = (0..w * h)
            .map(|i| (10..90).contains(&(i % w)) && (10..90).contains(&(i / w)))
            .collect();
        let at = |x: f64, y: f64| Minutia {
            x,
            y,
            angle: 0.0,
            bifurcation: true,
        };
        let analysis = Analysis {
            mask,
            orientation: vec![],
            ridges: vec![],
            skeleton: vec![],
            minutiae: vec![
                at(50.0, 50.0),
                at(15.0, 50.0),
                at(50.0, 86.0),
                at(22.0, 22.0),
                at(5.0, 5.0),
            ],
            period: None,
        };
        let kept = screen_edges(&analysis, w, h, 12).unwrap();
        assert_eq!(kept, vec![at(50.0, 50.0), at(22.0, 22.0)]);
        assert_eq!(screen_edges(&analysis, w, h, 0).unwrap().len(), 5);
        assert!(screen_edges(&analysis, w, h + 1, 12).is_err());
    }

    #[test]
    fn embedding_descriptor() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let x: Vec<f32> = (0..16).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a = from_embedding(&x, 128, 42).unwrap();
        assert_eq!(a, from_embedding(&x, 128, 42).unwrap());
        let scaled: Vec<f32> = x.iter().map(|v| 3.0 * v).collect();
        assert_eq!(a, from_embedding(&scaled, 128, 42).unwrap());
        let negated: Vec<f32> = x.iter().map(|v| -v).collect();
        assert_eq!(
            hamming(&a, &from_embedding(&negated, 128, 42).unwrap()).unwrap(),
            128
        );
        let nearby: Vec<f32> = x
            .iter()
            .map(|v| v + 0.02 * rng.random_range(-1.0f32..1.0))
            .collect();
        assert!(hamming(&a, &from_embedding(&nearby, 128, 42).unwrap()).unwrap() < 16);
        assert_ne!(a, from_embedding(&x, 128, 43).unwrap());
        assert!(from_embedding(&[0.0; 16], 128, 1).is_err());
        assert!(from_embedding(&[f32::NAN; 16], 128, 1).is_err());
        let projection = RandomProjection::new(128, 16, 42).unwrap();
        assert!(matches!(
            projection.apply(&x[..15]),
            Err(BpkemError::LengthMismatch(15, 16))
        ));
        assert!(RandomProjection::new(0, 16, 1).is_err());
    }

    #[test]
    fn bits_bytes_and_hamming() {
        let bits = Bits::from_bools(&[
            true, false, true, true, false, false, false, false, true, true,
        ]);
        let bytes = bits.to_bytes();
        assert_eq!(bytes, vec![0b0000_1101, 0b0000_0011]);
        assert_eq!(Bits::from_bytes(&bytes, 10).unwrap(), bits);
        assert!(Bits::from_bytes(&bytes, 9).is_err(), "padding bit set");
        assert!(Bits::from_bytes(&bytes, 17).is_err(), "length");
        assert_eq!(bits.gather(&[0, 2, 4, 9]), vec![0b1011]);
        let mut other = bits.clone();
        other.flip(1);
        other.flip(9);
        assert_eq!(hamming(&bits, &other).unwrap(), 2);
        assert_eq!(
            hamming(&bits, &Bits::zeros(11)),
            Err(BpkemError::LengthMismatch(10, 11))
        );
    }
}
