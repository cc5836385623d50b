//! What one matching run scores: enrolled templates, probes, and the head in float and
//! quantized form. Every caller (the `touchstone match` command, the harness, the GPU
//! bench, the tests) builds its run from a [`Workload`], so calibration and quantization
//! happen in exactly one way.
//!
//! Two sources: seeded synthetic identities ([`Workload::synthetic`]), which scale to any
//! gallery size and serve latency measurements, and a trained model's own templates
//! ([`Workload::from_model`]), which serve accuracy. The protocol knows nothing about
//! images or networks: a model's templates arrive as `f32` vectors.

use crate::error::{ProtocolError, Result};
use crate::limits;
use crate::quantize::{Calibration, MatchModel, QuantizedModel, Quantizer};
use crate::synthetic::{self, Probe};

/// Where a workload's templates come from (reported next to every number made from it).
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Seeded synthetic identities (N(0, 1) templates, noisy genuine probes).
    Synthetic {
        /// The seed that determines every template.
        seed: u64,
    },
    /// A trained model's templates of real (or synthetic-image) fingerprints.
    Model {
        /// What the templates are, e.g. "models/x on data/y, test split".
        description: String,
    },
}

impl Source {
    /// A short label for tables: `synthetic` or `model`.
    pub fn label(&self) -> &'static str {
        match self {
            Source::Synthetic { .. } => "synthetic",
            Source::Model { .. } => "model",
        }
    }
}

/// A synthetic workload's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// Enrolled users.
    pub users: usize,
    /// Probes (alternating genuine and impostor, genuine first).
    pub probes: usize,
    /// Template length.
    pub features: usize,
    /// Standard deviation of the noise on genuine probes (finite, ≥ 0).
    pub noise: f32,
    /// Seed of every template and of the head.
    pub seed: u64,
    /// Template quantization bits.
    pub bits: u32,
    /// Weight quantization bits.
    pub weight_bits: u32,
}

impl SyntheticSpec {
    /// The usual shape: 16 features, σ = 0.2, 8-bit templates and weights.
    pub fn new(users: usize, probes: usize, seed: u64) -> Self {
        Self {
            users,
            probes,
            features: 16,
            noise: 0.2,
            seed,
            bits: 8,
            weight_bits: 8,
        }
    }
}

/// Templates to enrol, probes to identify, and the head that scores them.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Enrolled templates, one per user.
    pub gallery: Vec<Vec<f32>>,
    /// Probes and who they really are.
    pub probes: Vec<Probe>,
    /// The float head (weights, bias, threshold).
    pub model: MatchModel,
    /// The integer head every scheme but `plain` scores with.
    pub quantized: QuantizedModel,
    /// Where the templates come from.
    pub source: Source,
}

impl Workload {
    /// Seeded synthetic identities and head; the template quantizer is calibrated on the
    /// gallery's 99.9th percentile of |value| (rare outliers clip, as with real models).
    pub fn synthetic(spec: &SyntheticSpec) -> Result<Self> {
        limits::check_users(spec.users)?;
        limits::check_probes(spec.probes)?;
        limits::check_bits("template", spec.bits)?;
        limits::check_bits("weight", spec.weight_bits)?;
        if spec.features == 0 || spec.features > limits::MAX_FEATURES {
            return Err(ProtocolError::Input(format!(
                "templates need 1..={} features, got {}",
                limits::MAX_FEATURES,
                spec.features
            )));
        }
        if !(spec.noise.is_finite() && spec.noise >= 0.0) {
            return Err(ProtocolError::Input(format!(
                "probe noise must be a finite number ≥ 0, got {}",
                spec.noise
            )));
        }
        let set = synthetic::generate(
            spec.users,
            spec.probes,
            spec.features,
            spec.noise,
            spec.seed,
        );
        let template = Quantizer::calibrate(
            &set.calibration_samples(),
            spec.bits,
            Calibration::Quantile(0.999),
        )?;
        let quantized = QuantizedModel::new(&set.model, template, spec.weight_bits)?;
        Ok(Self {
            gallery: set.gallery,
            probes: set.probes,
            model: set.model,
            quantized,
            source: Source::Synthetic { seed: spec.seed },
        })
    }

    /// Synthetic templates scored by a given head (a trained model's weights, both signs):
    /// latency runs at gallery sizes beyond a dataset's, with the real head encrypted.
    pub fn synthetic_with_head(spec: &SyntheticSpec, model: &MatchModel) -> Result<Self> {
        if model.features() != spec.features {
            return Err(ProtocolError::Input(format!(
                "the head has {} weights, the synthetic templates {} features",
                model.features(),
                spec.features
            )));
        }
        let mut workload = Self::synthetic(spec)?;
        workload.quantized =
            QuantizedModel::new(model, workload.quantized.template, spec.weight_bits)?;
        workload.model = model.clone();
        Ok(workload)
    }

    /// A trained model's templates: `gallery` holds enrolment templates, `probes` query
    /// templates. `template_reference` is the |value| that maps to the largest code (the
    /// model's calibration statistic, e.g. the 99.9th percentile on training templates).
    pub fn from_model(
        model: MatchModel,
        template_reference: f32,
        bits: u32,
        gallery: Vec<Vec<f32>>,
        probes: Vec<Probe>,
        description: impl Into<String>,
    ) -> Result<Self> {
        model.validate()?;
        limits::check_users(gallery.len())?;
        limits::check_probes(probes.len())?;
        let template = Quantizer::for_reference(bits, template_reference)?;
        let quantized = QuantizedModel::new(&model, template, bits)?;
        let features = model.features();
        let check = |what: &str, i: usize, t: &[f32]| -> Result<()> {
            if t.len() != features {
                return Err(ProtocolError::Input(format!(
                    "{what} {i} has {} values, the model expects {features}",
                    t.len()
                )));
            }
            if let Some(v) = t.iter().find(|v| !v.is_finite()) {
                return Err(ProtocolError::Input(format!(
                    "{what} {i} holds a non-finite value {v}"
                )));
            }
            Ok(())
        };
        for (i, t) in gallery.iter().enumerate() {
            check("gallery template", i, t)?;
        }
        for (i, p) in probes.iter().enumerate() {
            check("probe", i, &p.template)?;
            if let Some(id) = p.identity.filter(|&id| id >= gallery.len()) {
                return Err(ProtocolError::Input(format!(
                    "probe {i} claims user {id}, but only {} are enrolled",
                    gallery.len()
                )));
            }
        }
        Ok(Self {
            gallery,
            probes,
            model,
            quantized,
            source: Source::Model {
                description: description.into(),
            },
        })
    }

    /// Number of enrolled users.
    pub fn users(&self) -> usize {
        self.gallery.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_workloads_are_seeded_and_bounded() {
        let a = Workload::synthetic(&SyntheticSpec::new(20, 4, 3)).unwrap();
        let b = Workload::synthetic(&SyntheticSpec::new(20, 4, 3)).unwrap();
        assert_eq!(a.gallery, b.gallery);
        assert_eq!(a.quantized, b.quantized);
        assert_eq!(a.source.label(), "synthetic");
        let mut spec = SyntheticSpec::new(20, 4, 3);
        spec.noise = f32::INFINITY;
        assert!(Workload::synthetic(&spec).is_err());
        spec.noise = f32::NAN;
        assert!(Workload::synthetic(&spec).is_err());
        spec.noise = -1.0;
        assert!(Workload::synthetic(&spec).is_err());
        let mut spec = SyntheticSpec::new(20, 4, 3);
        spec.bits = 0;
        assert!(Workload::synthetic(&spec).is_err());
        spec.bits = 65;
        assert!(Workload::synthetic(&spec).is_err());
        assert!(Workload::synthetic(&SyntheticSpec::new(limits::MAX_USERS + 1, 1, 1)).is_err());
    }

    #[test]
    fn model_workloads_check_their_templates() {
        let model = MatchModel {
            weights: vec![-1.0, 0.5],
            bias: 1.0,
            threshold: 0.5,
        };
        let probe = |t: Vec<f32>, identity| Probe {
            template: t,
            identity,
        };
        let ok = Workload::from_model(
            model.clone(),
            2.0,
            8,
            vec![vec![0.1, 0.2]],
            vec![probe(vec![0.0, 1.0], Some(0))],
            "test",
        )
        .unwrap();
        assert_eq!(ok.quantized.template.quantize(2.0), 127);
        let bad_len = Workload::from_model(
            model.clone(),
            2.0,
            8,
            vec![vec![0.1]],
            vec![probe(vec![0.0, 1.0], None)],
            "test",
        );
        assert!(bad_len
            .unwrap_err()
            .to_string()
            .contains("gallery template 0"));
        let bad_id = Workload::from_model(
            model.clone(),
            2.0,
            8,
            vec![vec![0.1, 0.2]],
            vec![probe(vec![0.0, 1.0], Some(3))],
            "test",
        );
        assert!(bad_id.unwrap_err().to_string().contains("claims user 3"));
        let nan = Workload::from_model(
            model,
            2.0,
            8,
            vec![vec![f32::NAN, 0.2]],
            vec![probe(vec![0.0, 1.0], None)],
            "test",
        );
        assert!(nan.unwrap_err().to_string().contains("non-finite"));
    }
}
