//! Unlinkability of protected templates: the local measure D↔(s) and the global
//! D↔sys of M. Gomez-Barrero, J. Galbally, C. Rathgeb, C. Busch, "General framework to
//! evaluate unlinkability in biometric template protection systems", IEEE Trans.
//! Information Forensics and Security 13(6):1406–1420, 2018 (adopted by ISO/IEC 30136).
//!
//! **Why.** Renewable templates are only useful if two templates of the same subject made
//! with different keys (tokens) cannot be told to belong together. The framework asks how
//! well an adversary comparing two templates could tell "mated" pairs (same subject,
//! different keys) from "non-mated" ones (different subjects, different keys) from the
//! score s alone.
//!
//! **Formulas.** With f_m and f_nm the score densities of mated and non-mated pairs,
//! LR(s) = f_m(s) / f_nm(s) and the prior ratio ω = p(H_m)/p(H_nm) (1 unless stated):
//!
//! * local: D↔(s) = p(H_m|s) − p(H_nm|s) where positive, which, since
//!   p(H_m|s) = LR·ω/(1+LR·ω), is D↔(s) = 2·LR(s)·ω/(1+LR(s)·ω) − 1 when LR(s)·ω > 1 and 0
//!   otherwise (D↔(s) = 1 where f_nm(s) = 0 < f_m(s));
//! * global: D↔sys = ∫ D↔(s) f_m(s) ds ∈ [0, 1] — 0: fully unlinkable; 1: every mated
//!   pair is linkable with certainty.
//!
//! The densities are estimated on a common grid of `bins` cells spanning all scores,
//! either as normalised histograms (as the authors' reference code does; the default) or
//! by a Gaussian kernel density estimate with Silverman's bandwidth evaluated at the cell
//! centres. D↔sys is then the sum over cells of D↔(s_b)·f_m(s_b)·Δs.
//!
//! (An EER helper lives in `datasets::metrics`; it is not repeated here.)

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most grid cells.
pub const MAX_BINS: usize = 100_000;

/// How the score densities are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Density {
    /// Normalised histograms over the grid.
    Histogram,
    /// Gaussian KDE; `bandwidth: None` uses Silverman's rule for each score set.
    Kde { bandwidth: Option<f64> },
}

/// Options of [`unlinkability`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnlinkabilityOptions {
    /// Grid cells spanning [min, max] of all scores, 1..=[`MAX_BINS`].
    pub bins: usize,
    /// Density estimator.
    pub density: Density,
    /// Prior ratio ω = p(H_m)/p(H_nm), > 0.
    pub omega: f64,
}

impl Default for UnlinkabilityOptions {
    /// 100 histogram cells, ω = 1.
    fn default() -> Self {
        UnlinkabilityOptions {
            bins: 100,
            density: Density::Histogram,
            omega: 1.0,
        }
    }
}

/// The measures and what they were computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unlinkability {
    /// Grid cell centres s_b.
    pub grid: Vec<f64>,
    /// Cell width Δs.
    pub step: f64,
    /// f_m(s_b) (integrates to 1 over the grid).
    pub mated_density: Vec<f64>,
    /// f_nm(s_b).
    pub non_mated_density: Vec<f64>,
    /// D↔(s_b).
    pub local: Vec<f64>,
    /// D↔sys.
    pub sys: f64,
}

fn check_scores(name: &str, s: &[f64]) -> Result<()> {
    if s.is_empty() {
        return Err(Error::Input(format!("no {name} scores")));
    }
    if s.iter().any(|v| !v.is_finite()) {
        return Err(Error::Input(format!("a {name} score is not finite")));
    }
    Ok(())
}

/// D↔(s) for one likelihood ratio (`f64::INFINITY` where f_nm = 0 < f_m).
pub fn local_linkability(lr: f64, omega: f64) -> f64 {
    let x = lr * omega;
    if x.is_infinite() {
        1.0
    } else if x > 1.0 {
        2.0 * x / (1.0 + x) - 1.0
    } else {
        0.0
    }
}

/// D↔(s) on a grid and D↔sys from mated and non-mated comparison scores.
pub fn unlinkability(
    mated: &[f64],
    non_mated: &[f64],
    options: &UnlinkabilityOptions,
) -> Result<Unlinkability> {
    check_scores("mated", mated)?;
    check_scores("non-mated", non_mated)?;
    if !(1..=MAX_BINS).contains(&options.bins) {
        return Err(Error::Params(format!(
            "{} bins; must be 1..={MAX_BINS}",
            options.bins
        )));
    }
    if !(options.omega.is_finite() && options.omega > 0.0) {
        return Err(Error::Params(format!("ω = {}; must be > 0", options.omega)));
    }
    let all = mated.iter().chain(non_mated);
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = options.bins;
    // One cell of width 1 when every score is the same.
    let step = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let grid: Vec<f64> = (0..bins).map(|b| lo + (b as f64 + 0.5) * step).collect();
    let density = |scores: &[f64]| -> Result<Vec<f64>> {
        let mut f = match options.density {
            Density::Histogram => {
                let mut counts = vec![0.0; bins];
                for &s in scores {
                    let b = (((s - lo) / step) as usize).min(bins - 1);
                    counts[b] += 1.0;
                }
                counts
            }
            Density::Kde { bandwidth } => {
                let h = match bandwidth {
                    Some(h) if h.is_finite() && h > 0.0 => h,
                    Some(h) => {
                        return Err(Error::Params(format!("KDE bandwidth {h}; must be > 0")))
                    }
                    None => silverman(scores).unwrap_or(step),
                };
                grid.iter()
                    .map(|&g| {
                        scores
                            .iter()
                            .map(|&s| (-0.5 * ((g - s) / h).powi(2)).exp())
                            .sum()
                    })
                    .collect()
            }
        };
        // Normalise on the grid so that Σ f·Δs = 1.
        let mass: f64 = f.iter().sum::<f64>() * step;
        if mass > 0.0 {
            f.iter_mut().for_each(|v| *v /= mass);
        }
        Ok(f)
    };
    let fm = density(mated)?;
    let fnm = density(non_mated)?;
    let local: Vec<f64> = fm
        .iter()
        .zip(&fnm)
        .map(|(&a, &b)| {
            if a <= 0.0 {
                0.0
            } else if b <= 0.0 {
                1.0
            } else {
                local_linkability(a / b, options.omega)
            }
        })
        .collect();
    let sys = local
        .iter()
        .zip(&fm)
        .map(|(d, f)| d * f * step)
        .sum::<f64>()
        .clamp(0.0, 1.0);
    Ok(Unlinkability {
        grid,
        step,
        mated_density: fm,
        non_mated_density: fnm,
        local,
        sys,
    })
}

/// Silverman's rule of thumb 0.9·min(σ, IQR/1.34)·n^(−1/5); `None` when it is zero.
fn silverman(scores: &[f64]) -> Option<f64> {
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| sorted[((q * (n - 1.0)).round() as usize).min(sorted.len() - 1)];
    let iqr = quantile(0.75) - quantile(0.25);
    let spread = if iqr > 0.0 { sd.min(iqr / 1.34) } else { sd };
    let h = 0.9 * spread * n.powf(-0.2);
    (h > 0.0).then_some(h)
}
