//! Seeded synthetic templates and head weights, so the protocol can be exercised and
//! measured before real feature models exist. Identities are N(0, 1) vectors; a genuine
//! probe is its identity plus N(0, σ²) noise; an impostor probe is a fresh identity.

use crate::quantize::MatchModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// One probe and who it really is.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// The query template.
    pub template: Vec<f32>,
    /// The enrolled user it belongs to; None for an impostor.
    pub identity: Option<usize>,
}

/// A gallery, probes and a head model, all determined by the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSet {
    /// Enrolled templates, one per user.
    pub gallery: Vec<Vec<f32>>,
    /// Probes, alternating genuine and impostor (genuine first).
    pub probes: Vec<Probe>,
    /// Head weights (mostly negative, every fourth positive), bias and threshold.
    pub model: MatchModel,
}

/// Builds a synthetic set of `users` identities with `features` values each and
/// `probes` probes whose genuine ones carry noise of standard deviation `noise`.
pub fn generate(
    users: usize,
    probes: usize,
    features: usize,
    noise: f32,
    seed: u64,
) -> SyntheticSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let unit = Normal::new(0.0f32, 1.0).expect("valid normal");
    let jitter = Normal::new(0.0f32, noise.max(0.0)).expect("valid normal");
    let vector =
        |rng: &mut ChaCha8Rng| -> Vec<f32> { (0..features).map(|_| unit.sample(rng)).collect() };
    let gallery: Vec<Vec<f32>> = (0..users).map(|_| vector(&mut rng)).collect();

    // Mostly negative weights (a larger distance lowers the logit), but every fourth one
    // small and positive, as trained heads have (the committed model's FC-1 has 9 positive
    // and 7 negative weights): every encrypted run then multiplies by both signs.
    let weights: Vec<f32> = (0..features)
        .map(|j| {
            let u = rng.random::<f32>();
            if j % 4 == 3 {
                0.25 * u
            } else {
                -(0.5 + u)
            }
        })
        .collect();
    // Put the decision boundary at the geometric mean of the typical genuine (σ² per
    // feature) and impostor (2 per feature) weighted distances.
    let typical = (2.0 * noise as f64 * noise as f64).sqrt().max(1e-3);
    let bias = -weights.iter().map(|&w| w as f64 * typical).sum::<f64>() as f32;
    let model = MatchModel {
        weights,
        bias,
        threshold: 0.5,
    };

    let probes = (0..probes)
        .map(|i| {
            if i.is_multiple_of(2) && users > 0 {
                let identity = rng.random_range(0..users);
                let template = gallery[identity]
                    .iter()
                    .map(|&v| v + jitter.sample(&mut rng))
                    .collect();
                Probe {
                    template,
                    identity: Some(identity),
                }
            } else {
                Probe {
                    template: vector(&mut rng),
                    identity: None,
                }
            }
        })
        .collect();
    SyntheticSet {
        gallery,
        probes,
        model,
    }
}

impl SyntheticSet {
    /// Every gallery value, for calibrating the template quantizer.
    pub fn calibration_samples(&self) -> Vec<f32> {
        self.gallery.iter().flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped() {
        let a = generate(10, 4, 16, 0.2, 7);
        assert_eq!(a, generate(10, 4, 16, 0.2, 7));
        assert_ne!(a, generate(10, 4, 16, 0.2, 8));
        assert_eq!(a.gallery.len(), 10);
        assert!(a.gallery.iter().all(|t| t.len() == 16));
        assert_eq!(a.probes.iter().filter(|p| p.identity.is_some()).count(), 2);
        assert!(a.model.weights.iter().any(|&w| w < 0.0));
        assert!(a.model.weights.iter().any(|&w| w > 0.0), "both signs");
    }

    #[test]
    fn genuine_probes_outscore_impostors_in_float() {
        let set = generate(200, 40, 16, 0.2, 1);
        let mut correct = 0;
        for p in &set.probes {
            let best = (0..set.gallery.len())
                .max_by(|&a, &b| {
                    let sa = set.model.logit(&p.template, &set.gallery[a]);
                    let sb = set.model.logit(&p.template, &set.gallery[b]);
                    sa.total_cmp(&sb)
                })
                .unwrap();
            let accepted =
                set.model.logit(&p.template, &set.gallery[best]) >= set.model.threshold_logit();
            match p.identity {
                Some(id) => correct += usize::from(best == id && accepted),
                None => correct += usize::from(!accepted),
            }
        }
        assert!(correct >= 36, "only {correct}/40 probes decided correctly");
    }
}
