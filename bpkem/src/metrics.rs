//! Measurements of the scheme, as data: key-recovery success against the Hamming error
//! (the paper's Table 8) next to its theory, genuine and impostor recovery rates, and
//! intra/inter-class Hamming distance histograms.

use crate::descriptor::{hamming, Bits};
use crate::error::{BpkemError, Result};
use crate::fuzzy::{self, failure_probability, paper_delta, FuzzyParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// The two-sided 95% normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A confidence interval for a proportion.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// Whether `x` lies inside.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// Wilson score interval for `successes` of `trials` at normal quantile `z` (well
/// behaved near 0 and 1, unlike the Wald interval). `trials == 0` gives [0, 1].
pub fn wilson(successes: usize, trials: usize, z: f64) -> Interval {
    if trials == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p = 0 or 1 the interval's end is exactly 0 or 1 (centre ∓ half is, up to
    // rounding that would otherwise leave 1 − 2⁻⁵² outside a certain success).
    Interval {
        low: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        high: if successes >= trials {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    }
}

/// Key-recovery success at one Hamming error t.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuccessPoint {
    /// Bits flipped.
    pub t: usize,
    /// Trials.
    pub trials: usize,
    /// Trials where Rep returned R.
    pub successes: usize,
    /// Trials where Rep returned a key other than R (must be 0).
    pub wrong_keys: usize,
    /// successes / trials.
    pub rate: f64,
    /// 95% Wilson interval of the success rate.
    pub ci: Interval,
    /// 1 − (1 − p)^L, the exact success probability.
    pub theory: f64,
    /// 1 − the paper's δ (its lower bound on success).
    pub paper_bound: f64,
}

impl SuccessPoint {
    /// Whether the exact theory lies in the measured interval.
    pub fn agrees(&self) -> bool {
        self.ci.contains(self.theory)
    }
}

/// For each t in `errors`: `trials` independent runs of Gen on a random descriptor
/// (fresh lockers each time), t distinct random bits flipped, Rep. Deterministic in
/// `seed`.
pub fn success_vs_errors(
    params: &FuzzyParams,
    errors: &[usize],
    trials: usize,
    seed: u64,
) -> Result<Vec<SuccessPoint>> {
    params.validate()?;
    errors
        .iter()
        .map(|&t| {
            if t > params.n {
                return Err(BpkemError::params("t", format!("{t} > n = {}", params.n)));
            }
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            rng.set_stream(t as u64);
            let (mut successes, mut wrong_keys) = (0, 0);
            for _ in 0..trials {
                let w = random_bits(params.n, &mut rng);
                let (key, helper) = fuzzy::gen(params, &w, &mut rng)?;
                let mut noisy = w.clone();
                for i in rand::seq::index::sample(&mut rng, params.n, t) {
                    noisy.flip(i);
                }
                match fuzzy::rep(&helper, &noisy) {
                    Ok(k) if k == key => successes += 1,
                    Ok(_) => wrong_keys += 1,
                    Err(BpkemError::NoLockerOpened) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(SuccessPoint {
                t,
                trials,
                successes,
                wrong_keys,
                rate: if trials == 0 {
                    0.0
                } else {
                    successes as f64 / trials as f64
                },
                ci: wilson(successes, trials, Z95),
                theory: 1.0 - failure_probability(params.n, params.k, t, params.lockers),
                paper_bound: 1.0 - paper_delta(params.n, params.k, t, params.lockers),
            })
        })
        .collect()
}

/// Uniformly random bits.
pub fn random_bits(n: usize, rng: &mut impl Rng) -> Bits {
    Bits::from_bools(&(0..n).map(|_| rng.random::<bool>()).collect::<Vec<_>>())
}

/// Key recovery over descriptor pairs (enrolled, query).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryRates {
    /// Genuine pairs tried.
    pub genuine: usize,
    /// Genuine pairs whose key was not recovered.
    pub false_rejects: usize,
    /// false_rejects / genuine.
    pub frr: f64,
    /// 95% Wilson interval of the FRR.
    pub frr_ci: Interval,
    /// Impostor pairs tried.
    pub impostor: usize,
    /// Impostor pairs that recovered the enrolled key.
    pub false_accepts: usize,
    /// false_accepts / impostor.
    pub far: f64,
    /// 95% Wilson interval of the FAR.
    pub far_ci: Interval,
    /// Recoveries that returned a key other than the enrolled one (must be 0).
    pub wrong_keys: usize,
}

/// Enrols the first descriptor of each pair and runs Rep on the second: FRR over
/// `genuine` pairs (same finger), FAR over `impostor` pairs (different fingers).
pub fn key_recovery_rates(
    params: &FuzzyParams,
    genuine: &[(Bits, Bits)],
    impostor: &[(Bits, Bits)],
    seed: u64,
) -> Result<RecoveryRates> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut wrong_keys = 0;
    let mut recovered = |pairs: &[(Bits, Bits)]| -> Result<usize> {
        let mut count = 0;
        for (enrolled, query) in pairs {
            let (key, helper) = fuzzy::gen(params, enrolled, &mut rng)?;
            match fuzzy::rep(&helper, query) {
                Ok(k) if k == key => count += 1,
                Ok(_) => wrong_keys += 1,
                Err(BpkemError::NoLockerOpened) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    };
    let genuine_ok = recovered(genuine)?;
    let false_accepts = recovered(impostor)?;
    let false_rejects = genuine.len() - genuine_ok;
    let rate = |x: usize, n: usize| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    Ok(RecoveryRates {
        genuine: genuine.len(),
        false_rejects,
        frr: rate(false_rejects, genuine.len()),
        frr_ci: wilson(false_rejects, genuine.len(), Z95),
        impostor: impostor.len(),
        false_accepts,
        far: rate(false_accepts, impostor.len()),
        far_ci: wilson(false_accepts, impostor.len(), Z95),
        wrong_keys,
    })
}

/// Counts of pairs per Hamming distance 0..=n.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `counts[d]` pairs at distance d.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Number of pairs.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean distance (NaN when empty).
    pub fn mean(&self) -> f64 {
        let weighted: f64 = self
            .counts
            .iter()
            .enumerate()
            .map(|(d, &c)| d as f64 * c as f64)
            .sum();
        weighted / self.total() as f64
    }

    /// Largest distance with a nonzero count.
    pub fn max(&self) -> Option<usize> {
        self.counts.iter().rposition(|&c| c > 0)
    }
}

/// Histogram of the Hamming distances of `pairs` of `n`-bit descriptors.
pub fn hamming_histogram(pairs: &[(Bits, Bits)], n: usize) -> Result<Histogram> {
    let mut counts = vec![0u64; n + 1];
    for (a, b) in pairs {
        if a.len() != n {
            return Err(BpkemError::LengthMismatch(a.len(), n));
        }
        counts[hamming(a, b)?] += 1;
    }
    Ok(Histogram { counts })
}

/// Intra-class (same finger) and inter-class (different fingers) histograms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistanceHistograms {
    /// Same-finger pairs.
    pub intra: Histogram,
    /// Different-finger pairs.
    pub inter: Histogram,
}

/// Both histograms at once.
pub fn distance_histograms(
    intra: &[(Bits, Bits)],
    inter: &[(Bits, Bits)],
    n: usize,
) -> Result<DistanceHistograms> {
    Ok(DistanceHistograms {
        intra: hamming_histogram(intra, n)?,
        inter: hamming_histogram(inter, n)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzy::locker_survival;

    #[test]
    fn wilson_interval() {
        let i = wilson(50, 100, Z95);
        assert!(
            (i.low - 0.4038).abs() < 1e-3 && (i.high - 0.5962).abs() < 1e-3,
            "{i:?}"
        );
        // Certain outcomes reach exactly 0 and 1 (a theory of 1.0 lies inside).
        assert_eq!(wilson(300, 300, Z95).high, 1.0);
        assert_eq!(wilson(0, 300, Z95).low, 0.0);
        let zero = wilson(0, 10, Z95);
        assert_eq!(zero.low, 0.0);
        assert!((zero.high - 0.2775).abs() < 1e-3, "{zero:?}");
        assert_eq!(
            wilson(0, 0, Z95),
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
    }

    /// 10,000 trials at t = 10 with n = 128, k = 22, L = 8, where the exact failure
    /// probability (1 − p)^L ≈ 0.30 is far from 0 and 1: the measured rate must agree
    /// with it within its 95% interval, and never return a wrong key.
    #[test]
    fn measured_failure_at_t_10_agrees_with_theory() {
        let params = FuzzyParams {
            n: 128,
            k: 22,
            lockers: 8,
            key_len: 16,
        };
        let failure = failure_probability(128, 22, 10, 8);
        assert!(
            (0.2..0.4).contains(&failure),
            "test is meaningful: {failure}"
        );
        let points = success_vs_errors(&params, &[0, 10], 10_000, 2024).unwrap();
        assert_eq!(points[0].successes, 10_000, "t = 0 always recovers");
        let p = points[1];
        assert_eq!(p.wrong_keys, 0);
        assert!(
            p.agrees(),
            "measured {} in {:?}, theory {}",
            p.rate,
            p.ci,
            p.theory
        );
        assert!(
            (p.ci.high - p.ci.low) < 0.02,
            "interval is tight: {:?}",
            p.ci
        );
        // The paper's bound is below the exact success probability.
        assert!(p.paper_bound <= p.theory);
        assert!(success_vs_errors(&params, &[129], 1, 0).is_err());
    }

    #[test]
    fn genuine_and_impostor_rates_and_histograms() {
        let params = FuzzyParams::default();
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        let mut genuine = Vec::new();
        let mut impostor = Vec::new();
        for i in 0..60 {
            let w = random_bits(128, &mut rng);
            let mut close = w.clone();
            // Distances 0..=5 and 40 (far beyond what k = 16, L = 100 tolerates).
            let t = if i % 10 == 9 { 40 } else { i % 6 };
            for j in rand::seq::index::sample(&mut rng, 128, t) {
                close.flip(j);
            }
            genuine.push((w.clone(), close));
            impostor.push((w, random_bits(128, &mut rng)));
        }
        let rates = key_recovery_rates(&params, &genuine, &impostor, 1).unwrap();
        assert_eq!((rates.genuine, rates.impostor), (60, 60));
        // p(t = 40) = C(88,16)/C(128,16) ≈ 1.6e-3: 100 lockers fail with prob ≈ 0.85.
        assert!(locker_survival(128, 16, 40) < 2e-3);
        assert!((3..=6).contains(&rates.false_rejects), "{rates:?}");
        assert_eq!(rates.false_accepts, 0);
        assert_eq!(rates.wrong_keys, 0);
        assert!(rates.frr_ci.contains(rates.frr));

        let h = distance_histograms(&genuine, &impostor, 128).unwrap();
        assert_eq!(h.intra.total(), 60);
        assert_eq!(h.intra.counts[40], 6);
        assert_eq!(h.intra.counts[0], 10);
        assert_eq!(h.intra.max(), Some(40));
        assert!((h.inter.mean() - 64.0).abs() < 4.0, "{}", h.inter.mean());
        assert!(hamming_histogram(&genuine, 64).is_err());
    }
}
