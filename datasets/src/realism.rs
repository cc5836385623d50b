//! Is a (synthetic) dataset realistic enough to benchmark on? Measures what a reviewer
//! would ask about, with classical tools that know nothing about the generator: ridge
//! period (x-signature), minutiae per print (ridge endings and bifurcations on a thinned
//! binarised image), and genuine-vs-impostor separation (EER) under a minutiae matcher.

use crate::augment::Augmenter;
use crate::error::Result;
use crate::image::Gray8;
use crate::loaders::{Dataset, Variant};
use crate::metrics;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// Block size for segmentation and orientation.
const BLOCK: usize = 8;

/// A minutia: position, ridge orientation (mod π) and kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Minutia {
    /// x in pixels.
    pub x: f64,
    /// y in pixels.
    pub y: f64,
    /// Ridge orientation at the minutia, radians mod π.
    pub angle: f64,
    /// true for a bifurcation, false for a ridge ending.
    pub bifurcation: bool,
}

/// Per-pixel analysis of one print.
pub struct Analysis {
    /// Foreground (fingerprint area) per pixel.
    pub mask: Vec<bool>,
    /// Ridge orientation per block, radians mod π.
    pub orientation: Vec<f64>,
    /// Binarised ridges (true = ridge).
    pub ridges: Vec<bool>,
    /// Thinned ridges.
    pub skeleton: Vec<bool>,
    /// Minutiae.
    pub minutiae: Vec<Minutia>,
    /// Median ridge period over blocks (pixels), if measurable.
    pub period: Option<f64>,
}

fn blocks(w: usize, h: usize) -> (usize, usize) {
    (w.div_ceil(BLOCK), h.div_ceil(BLOCK))
}

/// Foreground by block standard deviation (prints are textured, background is flat).
fn segment(image: &Gray8) -> Vec<bool> {
    let (w, h) = (image.width, image.height);
    let (bw, bh) = blocks(w, h);
    let mut block_on = vec![false; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let (mut s, mut s2, mut n) = (0.0, 0.0, 0.0);
            for y in by * BLOCK..((by + 1) * BLOCK).min(h) {
                for x in bx * BLOCK..((bx + 1) * BLOCK).min(w) {
                    let v = image.get(x, y) as f64;
                    s += v;
                    s2 += v * v;
                    n += 1.0;
                }
            }
            let var = s2 / n - (s / n).powi(2);
            block_on[by * bw + bx] = var.sqrt() > 25.0;
        }
    }
    (0..w * h)
        .map(|i| block_on[(i / w / BLOCK) * bw + (i % w) / BLOCK])
        .collect()
}

/// Block orientation from 3×3 Sobel gradients (doubled-angle averaging over a 3×3
/// neighbourhood of blocks); the ridge direction is perpendicular to the gradient.
fn orientation_field(image: &Gray8) -> Vec<f64> {
    let (w, h) = (image.width, image.height);
    let (bw, bh) = blocks(w, h);
    let px = |x: i64, y: i64| {
        image.get(
            x.clamp(0, w as i64 - 1) as usize,
            y.clamp(0, h as i64 - 1) as usize,
        ) as f64
    };
    let mut gxx = vec![0.0; bw * bh];
    let mut gyy = vec![0.0; bw * bh];
    let mut gxy = vec![0.0; bw * bh];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let gx = px(x + 1, y - 1) + 2.0 * px(x + 1, y) + px(x + 1, y + 1)
                - px(x - 1, y - 1)
                - 2.0 * px(x - 1, y)
                - px(x - 1, y + 1);
            let gy = px(x - 1, y + 1) + 2.0 * px(x, y + 1) + px(x + 1, y + 1)
                - px(x - 1, y - 1)
                - 2.0 * px(x, y - 1)
                - px(x + 1, y - 1);
            let b = (y as usize / BLOCK) * bw + x as usize / BLOCK;
            gxx[b] += gx * gx;
            gyy[b] += gy * gy;
            gxy[b] += gx * gy;
        }
    }
    (0..bw * bh)
        .map(|b| {
            let (bx, by) = ((b % bw) as i64, (b / bw) as i64);
            let (mut a, mut c) = (0.0, 0.0);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (bx + dx, by + dy);
                    if nx >= 0 && ny >= 0 && nx < bw as i64 && ny < bh as i64 {
                        let n = ny as usize * bw + nx as usize;
                        a += 2.0 * gxy[n];
                        c += gxx[n] - gyy[n];
                    }
                }
            }
            // Gradient angle is atan2(a, c)/2; ridges run perpendicular to it.
            (0.5 * a.atan2(c) + PI / 2.0).rem_euclid(PI)
        })
        .collect()
}

/// Ridge period of one block by the x-signature (Hong, Wan, Jain 1998): grey levels
/// averaged along the ridge direction, sampled across it; mean spacing of the minima.
fn block_period(image: &Gray8, cx: f64, cy: f64, theta: f64) -> Option<f64> {
    let (length, width) = (32i64, 12i64);
    let (rx, ry) = (theta.cos(), theta.sin());
    let (nx, ny) = (-ry, rx);
    let mut signature = Vec::with_capacity(length as usize);
    for k in 0..length {
        let mut sum = 0.0;
        let mut n = 0.0;
        for d in 0..width {
            let (t, u) = ((k - length / 2) as f64, (d - width / 2) as f64);
            let (x, y) = (cx + t * nx + u * rx, cy + t * ny + u * ry);
            if x >= 0.0 && y >= 0.0 && x < image.width as f64 - 1.0 && y < image.height as f64 - 1.0
            {
                sum += image.get(x.round() as usize, y.round() as usize) as f64;
                n += 1.0;
            }
        }
        if n < width as f64 * 0.8 {
            return None;
        }
        signature.push(sum / n);
    }
    // Smooth lightly, then find local minima (dark ridges).
    let smooth: Vec<f64> = (0..signature.len())
        .map(|i| {
            let lo = i.saturating_sub(1);
            let hi = (i + 1).min(signature.len() - 1);
            signature[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64
        })
        .collect();
    let minima: Vec<usize> = (1..smooth.len() - 1)
        .filter(|&i| smooth[i] < smooth[i - 1] && smooth[i] <= smooth[i + 1])
        .collect();
    let amplitude = smooth.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - smooth.iter().copied().fold(f64::INFINITY, f64::min);
    if minima.len() < 3 || amplitude < 20.0 {
        return None;
    }
    let period = (minima[minima.len() - 1] - minima[0]) as f64 / (minima.len() - 1) as f64;
    (2.5..=25.0).contains(&period).then_some(period)
}

/// Ridges = pixels darker than the mean of their 9×9 neighbourhood, inside the mask.
fn binarise(image: &Gray8, mask: &[bool]) -> Vec<bool> {
    let (w, h) = (image.width, image.height);
    let mut integral = vec![0u64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u64;
        for x in 0..w {
            row += image.get(x, y) as u64;
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let r = 4usize;
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if !mask[i] {
                return false;
            }
            let (x0, y0, x1, y1) = (
                x.saturating_sub(r),
                y.saturating_sub(r),
                (x + r + 1).min(w),
                (y + r + 1).min(h),
            );
            let sum = integral[y1 * (w + 1) + x1] + integral[y0 * (w + 1) + x0]
                - integral[y0 * (w + 1) + x1]
                - integral[y1 * (w + 1) + x0];
            let mean = sum as f64 / ((x1 - x0) * (y1 - y0)) as f64;
            (image.data[i] as f64) < mean
        })
        .collect()
}

/// Zhang–Suen thinning to a one-pixel-wide skeleton.
pub fn thin(ridges: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut img = ridges.to_vec();
    let at = |img: &[bool], x: i64, y: i64| {
        x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && img[y as usize * w + x as usize]
    };
    loop {
        let mut changed = false;
        for step in 0..2 {
            let mut remove = Vec::new();
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    if !at(&img, x, y) {
                        continue;
                    }
                    // P2..P9 clockwise from north.
                    let p = [
                        at(&img, x, y - 1),
                        at(&img, x + 1, y - 1),
                        at(&img, x + 1, y),
                        at(&img, x + 1, y + 1),
                        at(&img, x, y + 1),
                        at(&img, x - 1, y + 1),
                        at(&img, x - 1, y),
                        at(&img, x - 1, y - 1),
                    ];
                    let b = p.iter().filter(|&&v| v).count();
                    let a = (0..8).filter(|&i| !p[i] && p[(i + 1) % 8]).count();
                    let (p2, p4, p6, p8) = (p[0], p[2], p[4], p[6]);
                    // Sub-step 1: P2·P4·P6 = 0 and P4·P6·P8 = 0; sub-step 2: P2·P4·P8 = 0 and P2·P6·P8 = 0.
                    let ok = if step == 0 {
                        !(p4 && p6 && (p2 || p8))
                    } else {
                        !(p2 && p8 && (p4 || p6))
                    };
                    if (2..=6).contains(&b) && a == 1 && ok {
                        remove.push(y as usize * w + x as usize);
                    }
                }
            }
            changed |= !remove.is_empty();
            for i in remove {
                img[i] = false;
            }
        }
        if !changed {
            return img;
        }
    }
}

/// Analyses one print: segmentation, orientation, period, binarisation, thinning,
/// minutiae by crossing number (1 = ending, 3 = bifurcation) away from the border,
/// without clusters closer than 4 pixels (noise).
///
/// An image without pixels (zero width or height), with more than
/// [`crate::image::MAX_PIXELS`], or whose data does not match its size is an error: it
/// has no print to measure, and "no minutiae, no period" would enter a report as numbers.
pub fn analyse(image: &Gray8) -> Result<Analysis> {
    image.check()?;
    let (w, h) = (image.width, image.height);
    let mask = segment(image);
    let orientation = orientation_field(image);
    let (bw, _) = blocks(w, h);
    let theta_at = |x: usize, y: usize| orientation[(y / BLOCK) * bw + x / BLOCK];

    let mut periods = Vec::new();
    for by in (BLOCK..h.saturating_sub(BLOCK)).step_by(BLOCK * 2) {
        for bx in (BLOCK..w.saturating_sub(BLOCK)).step_by(BLOCK * 2) {
            if mask[by * w + bx] {
                if let Some(p) = block_period(image, bx as f64, by as f64, theta_at(bx, by)) {
                    periods.push(p);
                }
            }
        }
    }
    periods.sort_by(f64::total_cmp);
    let period = (!periods.is_empty()).then(|| periods[periods.len() / 2]);

    let ridges = binarise(image, &mask);
    let skeleton = thin(&ridges, w, h);
    // Distance to the background, to drop minutiae created by the print's edge.
    let margin = 6i64;
    let deep = |x: usize, y: usize| {
        (-margin..=margin).step_by(3).all(|dy| {
            (-margin..=margin).step_by(3).all(|dx| {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                nx >= 0
                    && ny >= 0
                    && nx < w as i64
                    && ny < h as i64
                    && mask[ny as usize * w + nx as usize]
            })
        })
    };
    let mut found = Vec::new();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            if !skeleton[y * w + x] || !deep(x, y) {
                continue;
            }
            let n = [
                skeleton[(y - 1) * w + x],
                skeleton[(y - 1) * w + x + 1],
                skeleton[y * w + x + 1],
                skeleton[(y + 1) * w + x + 1],
                skeleton[(y + 1) * w + x],
                skeleton[(y + 1) * w + x - 1],
                skeleton[y * w + x - 1],
                skeleton[(y - 1) * w + x - 1],
            ];
            let crossing = (0..8).filter(|&i| n[i] != n[(i + 1) % 8]).count() / 2;
            if crossing == 1 || crossing == 3 {
                found.push(Minutia {
                    x: x as f64,
                    y: y as f64,
                    angle: theta_at(x, y),
                    bifurcation: crossing == 3,
                });
            }
        }
    }
    let minutiae = found
        .iter()
        .filter(|m| {
            !found
                .iter()
                .any(|o| !std::ptr::eq(*m, o) && (m.x - o.x).hypot(m.y - o.y) < 4.0)
        })
        .copied()
        .collect();
    Ok(Analysis {
        mask,
        orientation,
        ridges,
        skeleton,
        minutiae,
        period,
    })
}

fn angle_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(PI);
    d.min(PI - d)
}

/// A classical minutiae matcher: Hough voting over rotation (±45°) and translation for
/// every minutia pair, then greedy pairing under the best few alignments. Score =
/// matched² / (|A|·|B|) in [0, 1].
pub fn match_minutiae(a: &[Minutia], b: &[Minutia]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let rotation_step = 6f64.to_radians();
    let translation_step = 4.0;
    let mut votes: BTreeMap<(i64, i64, i64), u32> = BTreeMap::new();
    for ma in a {
        for mb in b {
            for flip in [0.0, PI] {
                let mut rot = (mb.angle - ma.angle + flip).rem_euclid(2.0 * PI);
                if rot > PI {
                    rot -= 2.0 * PI;
                }
                if rot.abs() > 45f64.to_radians() {
                    continue;
                }
                let (s, c) = rot.sin_cos();
                let (tx, ty) = (mb.x - (c * ma.x - s * ma.y), mb.y - (s * ma.x + c * ma.y));
                let key = (
                    (rot / rotation_step).round() as i64,
                    (tx / translation_step).round() as i64,
                    (ty / translation_step).round() as i64,
                );
                *votes.entry(key).or_default() += 1;
            }
        }
    }
    let mut best: Vec<((i64, i64, i64), u32)> = votes.into_iter().collect();
    best.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let mut best_matched = 0usize;
    for &((r, tx, ty), _) in best.iter().take(8) {
        let rot = r as f64 * rotation_step;
        let (s, c) = rot.sin_cos();
        let (tx, ty) = (tx as f64 * translation_step, ty as f64 * translation_step);
        let mut used = vec![false; b.len()];
        let mut matched = 0;
        for ma in a {
            let (x, y) = (c * ma.x - s * ma.y + tx, s * ma.x + c * ma.y + ty);
            let angle = ma.angle + rot;
            let candidate = b
                .iter()
                .enumerate()
                .filter(|(j, mb)| {
                    !used[*j]
                        && (mb.x - x).hypot(mb.y - y) <= 6.0
                        && angle_diff(mb.angle, angle) <= 20f64.to_radians()
                })
                .min_by(|p, q| {
                    (p.1.x - x)
                        .hypot(p.1.y - y)
                        .total_cmp(&(q.1.x - x).hypot(q.1.y - y))
                });
            if let Some((j, _)) = candidate {
                used[j] = true;
                matched += 1;
            }
        }
        best_matched = best_matched.max(matched);
    }
    (best_matched * best_matched) as f64 / (a.len() * b.len()) as f64
}

/// Mean, spread and range of a statistic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Values summarised.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub sd: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl Summary {
    /// Summarises values (NaN-free).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Self {
            count: v.len(),
            mean,
            sd,
            p10: q(0.1),
            median: q(0.5),
            p90: q(0.9),
        }
    }
}

/// The realism report of a dataset.
#[derive(Clone, Debug, Serialize)]
pub struct RealismReport {
    /// Prints analysed.
    pub prints: usize,
    /// Class counts (from a synthetic manifest; empty for real data).
    pub classes: BTreeMap<String, usize>,
    /// Ridge period per print (pixels).
    pub ridge_period: Summary,
    /// Minutiae per print.
    pub minutiae: Summary,
    /// Share of ridge endings among minutiae.
    pub endings_share: f64,
    /// How genuine pairs were formed: "impressions" or "augmented copies".
    pub genuine_protocol: String,
    /// Genuine pairs scored.
    pub genuine_pairs: usize,
    /// Impostor pairs scored.
    pub impostor_pairs: usize,
    /// Matcher EER.
    pub eer: f64,
    /// Matcher ROC AUC.
    pub auc: f64,
    /// Decidability index d′.
    pub d_prime: f64,
}

/// Builds the report on up to `max_prints` real prints (seeded choice) with
/// `impostor_pairs` impostor pairs. Genuine pairs are other impressions of the same
/// finger where the dataset has them; otherwise original vs an augmented copy
/// (Blind-Touch's SOCOFing protocol, its augmentation preset).
pub fn report(
    dataset: &Dataset,
    classes: BTreeMap<String, usize>,
    max_prints: usize,
    impostor_pairs: usize,
    seed: u64,
) -> Result<RealismReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut real = dataset.real();
    real.shuffle(&mut rng);
    // Keep whole fingers together so impression pairs exist.
    let mut by_finger: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in &real {
        by_finger
            .entry(dataset.samples[i].finger)
            .or_default()
            .push(i);
    }
    let mut fingers: Vec<usize> = by_finger.keys().copied().collect();
    fingers.shuffle(&mut rng);
    let mut chosen = Vec::new();
    for f in fingers {
        if chosen.len() >= max_prints {
            break;
        }
        chosen.extend(by_finger[&f].iter().copied());
    }
    chosen.truncate(max_prints.max(1));
    let images: Vec<Gray8> = chosen
        .par_iter()
        .map(|&i| Gray8::load(&dataset.samples[i].path))
        .collect::<Result<_>>()?;
    let analyses: Vec<Analysis> = images.par_iter().map(analyse).collect::<Result<_>>()?;

    let periods: Vec<f64> = analyses.iter().filter_map(|a| a.period).collect();
    let counts: Vec<f64> = analyses.iter().map(|a| a.minutiae.len() as f64).collect();
    let total: usize = analyses.iter().map(|a| a.minutiae.len()).sum();
    let endings: usize = analyses
        .iter()
        .map(|a| a.minutiae.iter().filter(|m| !m.bifurcation).count())
        .sum();

    // Genuine pairs.
    let multi = chosen.iter().enumerate().any(|(x, &i)| {
        chosen[x + 1..]
            .iter()
            .any(|&j| dataset.samples[j].finger == dataset.samples[i].finger)
    });
    let mut genuine = Vec::new();
    let protocol;
    if multi {
        protocol = "impressions".to_string();
        for x in 0..chosen.len() {
            for y in x + 1..chosen.len() {
                if dataset.samples[chosen[x]].finger == dataset.samples[chosen[y]].finger
                    && dataset.samples[chosen[x]].variant == Variant::Real
                {
                    genuine.push(match_minutiae(&analyses[x].minutiae, &analyses[y].minutiae));
                }
            }
        }
    } else {
        protocol = "augmented copies".to_string();
        let augmenter = Augmenter::blindtouch_socofing();
        let copies = augmenter.apply_batch(
            &images.iter().map(Gray8::to_unit).collect::<Vec<_>>(),
            &mut rng,
        )?;
        let scores: Vec<f64> = copies
            .par_iter()
            .zip(&analyses)
            .map(|(copy, original)| {
                Ok(match_minutiae(
                    &original.minutiae,
                    &analyse(&copy.unit_to_u8())?.minutiae,
                ))
            })
            .collect::<Result<_>>()?;
        genuine = scores;
    }
    let mut pairs = Vec::with_capacity(impostor_pairs);
    let mut attempts = 0;
    while pairs.len() < impostor_pairs && attempts < impostor_pairs * 20 && chosen.len() > 1 {
        attempts += 1;
        let (x, y) = (
            rng.random_range(0..chosen.len()),
            rng.random_range(0..chosen.len()),
        );
        if dataset.samples[chosen[x]].finger != dataset.samples[chosen[y]].finger {
            pairs.push((x, y));
        }
    }
    let impostor: Vec<f64> = pairs
        .par_iter()
        .map(|&(x, y)| match_minutiae(&analyses[x].minutiae, &analyses[y].minutiae))
        .collect();

    Ok(RealismReport {
        prints: chosen.len(),
        classes,
        ridge_period: Summary::of(&periods),
        minutiae: Summary::of(&counts),
        endings_share: endings as f64 / total.max(1) as f64,
        genuine_protocol: protocol,
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        eer: metrics::eer(&genuine, &impostor),
        auc: metrics::roc_auc(&genuine, &impostor),
        d_prime: metrics::d_prime(&genuine, &impostor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_reduces_a_thick_bar_to_a_one_pixel_line() {
        let (w, h) = (30, 11);
        let bar: Vec<bool> = (0..w * h)
            .map(|i| (4..7).contains(&(i / w)) && (3..27).contains(&(i % w)))
            .collect();
        let skeleton = thin(&bar, w, h);
        for x in 6..24 {
            let column = (0..h).filter(|&y| skeleton[y * w + x]).count();
            assert_eq!(column, 1, "column {x}");
        }
        assert!(
            skeleton.iter().zip(&bar).all(|(s, b)| !s || *b),
            "skeleton lies inside the shape"
        );
    }

    fn minutiae(points: &[(f64, f64, f64)]) -> Vec<Minutia> {
        points
            .iter()
            .map(|&(x, y, angle)| Minutia {
                x,
                y,
                angle,
                bifurcation: false,
            })
            .collect()
    }

    #[test]
    fn matcher_scores_a_moved_copy_high_and_unrelated_sets_low() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let a: Vec<(f64, f64, f64)> = (0..30)
            .map(|_| {
                (
                    rng.random_range(0.0..100.0),
                    rng.random_range(0.0..100.0),
                    rng.random_range(0.0..PI),
                )
            })
            .collect();
        // Rotate by 10° and shift by (5, −3).
        let (s, c) = 10f64.to_radians().sin_cos();
        let moved: Vec<(f64, f64, f64)> = a
            .iter()
            .map(|&(x, y, t)| {
                (
                    c * x - s * y + 5.0,
                    s * x + c * y - 3.0,
                    (t + 10f64.to_radians()).rem_euclid(PI),
                )
            })
            .collect();
        let other: Vec<(f64, f64, f64)> = (0..30)
            .map(|_| {
                (
                    rng.random_range(0.0..100.0),
                    rng.random_range(0.0..100.0),
                    rng.random_range(0.0..PI),
                )
            })
            .collect();
        let same = match_minutiae(&minutiae(&a), &minutiae(&a));
        let copy = match_minutiae(&minutiae(&a), &minutiae(&moved));
        let unrelated = match_minutiae(&minutiae(&a), &minutiae(&other));
        assert_eq!(same, 1.0);
        assert!(copy > 0.8, "moved copy scored {copy}");
        assert!(unrelated < 0.3, "unrelated sets scored {unrelated}");
        assert_eq!(match_minutiae(&[], &minutiae(&a)), 0.0);
    }

    #[test]
    fn analysis_measures_the_period_of_a_synthetic_grating() {
        // Vertical dark/light stripes with period 6 inside a flat border.
        let (w, h) = (96, 96);
        let mut image = Gray8::filled(w, h, 230);
        for y in 16..80 {
            for x in 16..80 {
                let phase = (x as f64 * 2.0 * PI / 6.0).cos();
                image.data[y * w + x] = (128.0 + 100.0 * phase) as u8;
            }
        }
        let a = analyse(&image).unwrap();
        let period = a.period.expect("period measured");
        assert!((period - 6.0).abs() < 0.5, "{period}");
        assert!(!a.mask[0] && a.mask[48 * w + 48], "segmentation");
        // Straight parallel ridges have (almost) no minutiae away from the edges.
        assert!(a.minutiae.len() <= 2, "{:?}", a.minutiae);
    }
}
