//! Impressions of a master (genuine variation: pressure, non-linear skin distortion,
//! rotation, translation, noise, blotches, background) and SOCOFing-style alterations of
//! a rendered print (central rotation, obliteration, z-cut).

use super::master::Master;
use crate::image::Gray8;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// How much impressions of one finger vary, and how they look.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImpressionSpec {
    /// Output width.
    pub width: usize,
    /// Output height.
    pub height: usize,
    /// Master pixels per output pixel.
    pub scale: f64,
    /// Standard deviation of the global rotation (degrees).
    pub rotation_sd: f64,
    /// Largest translation as a fraction of the output size.
    pub translation: f64,
    /// Probability of a partial print: the finger lands off-centre on the sensor
    /// (translation up to 25% of the frame) and part of it is cut off.
    pub partial: f64,
    /// Largest rigid motion of the outer skin region (output pixels).
    pub distortion: f64,
    /// Range of the pressure bias (negative: dry, thin ridges; positive: wet, thick).
    pub pressure: (f64, f64),
    /// Range of the pixel noise σ (grey levels).
    pub noise: (f64, f64),
    /// Background grey level and whether the finger is lighter than it (photo-like).
    pub background: u8,
    /// Photo-like rendering: light ridges valleys on a dark background.
    pub dark_background: bool,
}

/// The drawn variation of one impression (recorded in the manifest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImpressionParams {
    /// Global rotation (degrees).
    pub rotation: f64,
    /// Translation (output pixels).
    pub translation: (f64, f64),
    /// Whether this is a partial print (large translation).
    pub partial: bool,
    /// Outer-region rigid shift (output pixels) and rotation (degrees).
    pub distortion: (f64, f64, f64),
    /// Pressure bias.
    pub pressure: f64,
    /// Pixel noise σ.
    pub noise: f64,
    /// Contrast of the ridges (0..1).
    pub contrast: f64,
}

impl ImpressionParams {
    /// Draws one impression's variation.
    pub fn sample(spec: &ImpressionSpec, rng: &mut ChaCha8Rng) -> Self {
        let normal = Normal::new(0.0, spec.rotation_sd.max(1e-9)).expect("valid sd");
        let partial = rng.random_bool(spec.partial.clamp(0.0, 1.0));
        let t = if partial { 0.25 } else { spec.translation };
        let d = spec.distortion;
        Self {
            partial,
            rotation: normal
                .sample(rng)
                .clamp(-2.5 * spec.rotation_sd, 2.5 * spec.rotation_sd),
            translation: (
                rng.random_range(-t..=t) * spec.width as f64,
                rng.random_range(-t..=t) * spec.height as f64,
            ),
            distortion: (
                rng.random_range(-d..=d),
                rng.random_range(-d..=d),
                rng.random_range(-3.0..=3.0),
            ),
            pressure: rng.random_range(spec.pressure.0..=spec.pressure.1),
            noise: rng.random_range(spec.noise.0..=spec.noise.1),
            contrast: rng.random_range(0.65..=0.95),
        }
    }
}

fn bilinear(data: &[f32], w: usize, h: usize, x: f64, y: f64, outside: f32) -> f32 {
    if x < 0.0 || y < 0.0 || x > (w - 1) as f64 || y > (h - 1) as f64 {
        return outside;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let at = |xx: usize, yy: usize| data[yy * w + xx];
    (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x1, y0))
        + fy * ((1.0 - fx) * at(x0, y1) + fx * at(x1, y1))
}

/// Smooth random field in [0, 1] at low resolution, bilinearly upsampled (blotches).
fn low_frequency_field(w: usize, h: usize, cell: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (gw, gh) = (w / cell + 2, h / cell + 2);
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.random::<f32>()).collect();
    (0..w * h)
        .map(|i| {
            bilinear(
                &grid,
                gw,
                gh,
                (i % w) as f64 / cell as f64,
                (i / w) as f64 / cell as f64,
                0.5,
            )
        })
        .collect()
}

/// Renders one impression of `master` at the output size (2×2 supersampling).
pub fn render(
    master: &Master,
    spec: &ImpressionSpec,
    p: &ImpressionParams,
    rng: &mut ChaCha8Rng,
) -> Gray8 {
    let (w, h) = (spec.width, spec.height);
    let (mw, mh) = (master.width, master.height);
    let (ocx, ocy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (s, c) = p.rotation.to_radians().sin_cos();
    let (ds, dc) = p.distortion.2.to_radians().sin_cos();
    // Contact region: undistorted inside r1, rigidly moved beyond r2, blended between.
    let r1 = 0.22 * w.min(h) as f64;
    let r2 = 0.55 * w.min(h) as f64;
    let blotches = low_frequency_field(w, h, 12, rng);
    let noise = Normal::new(0.0, p.noise.max(1e-9)).expect("valid σ");

    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let mut darkness = 0.0f64;
            let mut cover = 0.0f64;
            for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                // Output → undistorted output coordinates (inverse of the skin distortion).
                let (px, py) = (x as f64 + sx - ocx, y as f64 + sy - ocy);
                let r = (px * px + py * py).sqrt();
                let t = ((r - r1) / (r2 - r1)).clamp(0.0, 1.0);
                let blend = t * t * (3.0 - 2.0 * t);
                let (qx, qy) = (
                    dc * px + ds * py - p.distortion.0,
                    -ds * px + dc * py - p.distortion.1,
                );
                let (ux, uy) = (px + blend * (qx - px), py + blend * (qy - py));
                // Inverse global rotation and translation, then to master coordinates.
                let (vx, vy) = (ux - p.translation.0, uy - p.translation.1);
                let (rx, ry) = (c * vx + s * vy, -s * vx + c * vy);
                let (mx, my) = (
                    rx * spec.scale + mw as f64 / 2.0,
                    ry * spec.scale + mh as f64 / 2.0,
                );
                let ridge = bilinear(&master.ridges, mw, mh, mx, my, 0.0) as f64;
                let m = bilinear(&master.mask, mw, mh, mx, my, 0.0) as f64;
                // Ridge profile with pressure: a positive bias widens the dark ridges.
                let ink = (0.5 + 0.8 * (-ridge) + p.pressure).clamp(0.0, 1.0);
                darkness += ink * m;
                cover += m;
            }
            let darkness = darkness / 4.0;
            let cover = cover / 4.0;
            let blotch = blotches[y * w + x] as f64;
            // Dry patches: ink fades where the blotch field is high.
            let fade = 1.0 - 0.6 * ((blotch - 0.6) / 0.4).clamp(0.0, 1.0);
            let shade = darkness * fade * p.contrast;
            let value = if spec.dark_background {
                spec.background as f64 + cover * (200.0 - spec.background as f64) * (1.0 - shade)
            } else {
                spec.background as f64 * (1.0 - shade)
            };
            out.push((value + noise.sample(rng)).round().clamp(0.0, 255.0) as u8);
        }
    }
    Gray8 {
        width: w,
        height: h,
        data: out,
    }
}

/// SOCOFing's alteration kinds.
pub const ALTERATIONS: [&str; 3] = ["CR", "Obl", "Zcut"];
/// SOCOFing's alteration levels, mildest first.
pub const LEVELS: [&str; 3] = ["Easy", "Medium", "Hard"];

/// Alters a rendered print: `kind` in CR (central rotation), Obl (obliteration),
/// Zcut (z-shaped cut); `level` 0 (Easy) to 2 (Hard).
pub fn alter(
    image: &Gray8,
    kind: &str,
    level: usize,
    background: u8,
    rng: &mut ChaCha8Rng,
) -> Gray8 {
    let (w, h) = (image.width, image.height);
    let strength = (level + 1) as f64 / 3.0;
    let mut out = image.clone();
    let (cx, cy) = (
        w as f64 / 2.0 + rng.random_range(-0.1..0.1) * w as f64,
        h as f64 / 2.0 + rng.random_range(-0.1..0.1) * h as f64,
    );
    match kind {
        "CR" => {
            // Rotate a central disc; its radius and angle grow with the level.
            let radius = (0.16 + 0.1 * strength) * w.min(h) as f64;
            let angle = rng.random_range(30.0 + 50.0 * strength..=60.0 + 100.0 * strength)
                * if rng.random() { 1.0 } else { -1.0 };
            let (s, c) = angle.to_radians().sin_cos();
            let src: Vec<f32> = image.data.iter().map(|&v| v as f32).collect();
            for y in 0..h {
                for x in 0..w {
                    let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                    if dx * dx + dy * dy <= radius * radius {
                        let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
                        out.data[y * w + x] =
                            bilinear(&src, w, h, sx, sy, background as f32).round() as u8;
                    }
                }
            }
        }
        "Obl" => {
            // Paint over one or more irregular blobs with background and faint noise.
            for _ in 0..1 + level {
                let (bx, by) = (
                    cx + rng.random_range(-0.25..0.25) * w as f64,
                    cy + rng.random_range(-0.25..0.25) * h as f64,
                );
                let (rx, ry) = (
                    (0.08 + 0.1 * strength) * w as f64 * rng.random_range(0.7..1.3),
                    (0.08 + 0.1 * strength) * h as f64 * rng.random_range(0.7..1.3),
                );
                for y in 0..h {
                    for x in 0..w {
                        let r = ((x as f64 - bx) / rx).powi(2) + ((y as f64 - by) / ry).powi(2);
                        if r <= 1.0 {
                            let jitter = rng.random_range(-12i32..=12);
                            out.data[y * w + x] = (background as i32 + jitter).clamp(0, 255) as u8;
                        }
                    }
                }
            }
        }
        _ => {
            // Z-cut: three strokes (top, diagonal, bottom) erased, and the part below the
            // diagonal shifted sideways, as a healed cut misaligns ridges.
            let thickness = 1.0 + 1.5 * strength;
            let span = (0.25 + 0.15 * strength) * w as f64;
            let (top, bottom) = (cy - 0.2 * h as f64, cy + 0.2 * h as f64);
            let (left, right) = (cx - span / 2.0, cx + span / 2.0);
            let shift = (2.0 + 4.0 * strength).round() as i64;
            let src = image.clone();
            let diagonal = |x: f64| top + (right - x) / (right - left) * (bottom - top);
            for y in 0..h {
                for x in 0..w {
                    let xf = x as f64;
                    if (left..=right).contains(&xf) && y as f64 > diagonal(xf) {
                        let sx = (x as i64 - shift).clamp(0, w as i64 - 1) as usize;
                        out.data[y * w + x] = src.get(sx, y);
                    }
                }
            }
            let segment_distance =
                |px: f64, py: f64, (ax, ay): (f64, f64), (bx, by): (f64, f64)| {
                    let (vx, vy) = (bx - ax, by - ay);
                    let t =
                        (((px - ax) * vx + (py - ay) * vy) / (vx * vx + vy * vy)).clamp(0.0, 1.0);
                    ((px - ax - t * vx).powi(2) + (py - ay - t * vy).powi(2)).sqrt()
                };
            let strokes = [
                ((left, top), (right, top)),
                ((right, top), (left, bottom)),
                ((left, bottom), (right, bottom)),
            ];
            for y in 0..h {
                for x in 0..w {
                    let (px, py) = (x as f64, y as f64);
                    if strokes
                        .iter()
                        .any(|&(a, b)| segment_distance(px, py, a, b) <= thickness)
                    {
                        out.data[y * w + x] = background;
                    }
                }
            }
        }
    }
    out
}
