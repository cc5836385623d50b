//! BFV computes on integers, so templates and head weights become signed integers
//! before encryption. The score S = Σⱼ w̃ⱼ (q̃ⱼ − r̃ⱼ)² of the quantized values is what
//! every encrypted scheme must reproduce exactly; its bound decides the plaintext
//! modulus t.

use crate::error::{ProtocolError, Result};
use serde::{Deserialize, Serialize};

/// How a quantization scale is derived from sample values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// The largest magnitude maps to the largest code: nothing clips.
    #[default]
    MaxAbs,
    /// The given quantile of the magnitudes (e.g. 0.999) maps to the largest code:
    /// rare outliers clip, everything else gets more resolution.
    Quantile(f32),
}

/// Maps reals to `bits`-bit signed integers: x̃ = clamp(round(scale·x), −2^(b−1), 2^(b−1)−1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantizer {
    /// Width of the signed integer codes, 2..=16.
    pub bits: u32,
    /// Multiplier applied before rounding.
    pub scale: f32,
}

impl Quantizer {
    /// A quantizer with an explicit scale.
    pub fn new(bits: u32, scale: f32) -> Result<Self> {
        crate::limits::check_bits("template", bits)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(ProtocolError::Input(format!(
                "quantization scale must be a positive finite number, got {scale}"
            )));
        }
        Ok(Self { bits, scale })
    }

    /// Chooses the scale so that the calibration statistic of `samples` lands on the
    /// largest positive code.
    pub fn calibrate(samples: &[f32], bits: u32, calibration: Calibration) -> Result<Self> {
        crate::limits::check_bits("quantization", bits)?;
        if samples.is_empty() {
            return Err(ProtocolError::Input(
                "cannot calibrate a quantizer on an empty sample set".into(),
            ));
        }
        if let Some(bad) = samples.iter().find(|x| !x.is_finite()) {
            return Err(ProtocolError::Input(format!(
                "calibration samples must be finite, found {bad}"
            )));
        }
        let mut magnitudes: Vec<f32> = samples.iter().map(|x| x.abs()).collect();
        let reference = match calibration {
            Calibration::MaxAbs => magnitudes.iter().copied().fold(0.0, f32::max),
            Calibration::Quantile(q) => {
                if !(0.0..=1.0).contains(&q) || q == 0.0 {
                    return Err(ProtocolError::Input(format!(
                        "calibration quantile must be in (0, 1], got {q}"
                    )));
                }
                magnitudes.sort_by(f32::total_cmp);
                let index = ((magnitudes.len() - 1) as f32 * q).round() as usize;
                magnitudes[index]
            }
        };
        if reference == 0.0 {
            return Err(ProtocolError::Input(
                "calibration samples are all zero: no scale can be derived".into(),
            ));
        }
        Self::new(bits, Self::max_code_for(bits) as f32 / reference)
    }

    /// The quantizer that maps |`reference`| to the largest code (a model's calibration
    /// statistic, e.g. the 99.9th percentile of |template value| on training data).
    pub fn for_reference(bits: u32, reference: f32) -> Result<Self> {
        crate::limits::check_bits("template", bits)?;
        if !(reference.is_finite() && reference > 0.0) {
            return Err(ProtocolError::Input(format!(
                "the calibration reference must be a positive finite number, got {reference}"
            )));
        }
        Self::new(bits, Self::max_code_for(bits) as f32 / reference)
    }

    fn max_code_for(bits: u32) -> i64 {
        (1 << (bits - 1)) - 1
    }

    /// Largest code, 2^(b−1) − 1.
    pub fn max_code(&self) -> i64 {
        Self::max_code_for(self.bits)
    }

    /// Smallest code, −2^(b−1).
    pub fn min_code(&self) -> i64 {
        -(1 << (self.bits - 1))
    }

    /// Quantizes one value (NaN maps to 0 so a broken feature cannot poison a score).
    pub fn quantize(&self, x: f32) -> i64 {
        if x.is_nan() {
            return 0;
        }
        let scaled = (x as f64 * self.scale as f64).round();
        (scaled.clamp(self.min_code() as f64, self.max_code() as f64)) as i64
    }

    /// Quantizes a whole vector.
    pub fn quantize_all(&self, xs: &[f32]) -> Vec<i64> {
        xs.iter().map(|&x| self.quantize(x)).collect()
    }
}

/// The plaintext head that turns a (query, reference) pair into a logit:
/// logit = Σⱼ wⱼ (qⱼ − rⱼ)² + c, accepted when sigmoid(logit) ≥ τ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchModel {
    /// FC-1 weights wⱼ, one per template feature.
    pub weights: Vec<f32>,
    /// FC-1 bias c.
    pub bias: f32,
    /// Decision threshold τ on the sigmoid output, in (0, 1).
    pub threshold: f32,
}

impl MatchModel {
    /// Checks that the model can be used at all.
    pub fn validate(&self) -> Result<()> {
        if self.weights.is_empty() || self.weights.len() > crate::limits::MAX_FEATURES {
            return Err(ProtocolError::Input(format!(
                "model has {} weights; 1..={} are supported",
                self.weights.len(),
                crate::limits::MAX_FEATURES
            )));
        }
        if self.weights.iter().any(|w| !w.is_finite()) || !self.bias.is_finite() {
            return Err(ProtocolError::Input(
                "model weights and bias must be finite".into(),
            ));
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(ProtocolError::Input(format!(
                "decision threshold must be in (0, 1), got {}",
                self.threshold
            )));
        }
        Ok(())
    }

    /// Number of template features the model scores.
    pub fn features(&self) -> usize {
        self.weights.len()
    }

    /// The float logit of one pair.
    pub fn logit(&self, query: &[f32], reference: &[f32]) -> f64 {
        self.weights
            .iter()
            .zip(query.iter().zip(reference))
            .map(|(&w, (&q, &r))| w as f64 * (q as f64 - r as f64).powi(2))
            .sum::<f64>()
            + self.bias as f64
    }

    /// The logit that the threshold τ corresponds to.
    pub fn threshold_logit(&self) -> f64 {
        let t = self.threshold as f64;
        (t / (1.0 - t)).ln()
    }
}

/// A model and quantizers fixed for one deployment: what the client quantizes with
/// and what the server multiplies by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizedModel {
    /// Quantizer for templates and queries.
    pub template: Quantizer,
    /// Quantizer for the head weights.
    pub weight: Quantizer,
    /// Quantized weights w̃ⱼ.
    pub weights: Vec<i64>,
    /// Integer score at or above which a probe is accepted.
    pub threshold_score: i64,
}

impl QuantizedModel {
    /// Quantizes `model`; the weight scale maps the largest |wⱼ| to the largest code.
    pub fn new(model: &MatchModel, template: Quantizer, weight_bits: u32) -> Result<Self> {
        model.validate()?;
        crate::limits::check_bits("weight", weight_bits)?;
        let weight = Quantizer::calibrate(&model.weights, weight_bits, Calibration::MaxAbs)?;
        let weights = weight.quantize_all(&model.weights);
        // logit ≥ L ⇔ Σ w (q−r)² ≥ L − c; scaled by s² (squared template scale) · s_w.
        let scale = template.scale as f64 * template.scale as f64 * weight.scale as f64;
        let threshold_score = ((model.threshold_logit() - model.bias as f64) * scale).ceil();
        Ok(Self {
            template,
            weight,
            weights,
            threshold_score: threshold_score.clamp(i64::MIN as f64, i64::MAX as f64) as i64,
        })
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.weights.len()
    }

    /// Quantizes a template or query.
    pub fn quantize(&self, template: &[f32]) -> Vec<i64> {
        self.template.quantize_all(template)
    }

    /// The exact integer score the encrypted schemes must reproduce.
    pub fn score(&self, query: &[i64], reference: &[i64]) -> i64 {
        integer_score(&self.weights, query, reference)
    }

    /// The largest |S| any pair of in-range templates can reach with these weights.
    pub fn score_bound(&self) -> u64 {
        score_bound(&self.weights, self.template.bits)
    }
}

/// S = Σⱼ w̃ⱼ (q̃ⱼ − r̃ⱼ)².
pub fn integer_score(weights: &[i64], query: &[i64], reference: &[i64]) -> i64 {
    weights
        .iter()
        .zip(query.iter().zip(reference))
        .map(|(&w, (&q, &r))| w * (q - r) * (q - r))
        .sum()
}

/// max |S| = Σⱼ |w̃ⱼ| · (2^b − 1)², the largest squared difference of two b-bit codes.
pub fn score_bound(weights: &[i64], template_bits: u32) -> u64 {
    let span = (1u64 << template_bits) - 1;
    weights.iter().map(|w| w.unsigned_abs()).sum::<u64>() * span * span
}

/// The bound for any weights of `weight_bits` bits: d · 2^(bw−1) · (2^b − 1)².
pub fn worst_case_score_bound(features: usize, template_bits: u32, weight_bits: u32) -> u64 {
    let span = (1u64 << template_bits) - 1;
    features as u64 * (1u64 << (weight_bits - 1)) * span * span
}

/// Bits a plaintext modulus needs so that centred decoding recovers every score:
/// t > 2·max|S|.
pub fn plaintext_bits_for(bound: u64) -> u32 {
    let needed = 2 * bound as u128 + 1;
    128 - needed.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_and_clamps() {
        let q = Quantizer::new(8, 10.0).unwrap();
        assert_eq!(q.quantize(1.26), 13);
        assert_eq!(q.quantize(-1.24), -12);
        assert_eq!(q.quantize(100.0), 127);
        assert_eq!(q.quantize(-100.0), -128);
        assert_eq!(q.quantize(f32::NAN), 0);
    }

    #[test]
    fn calibration_maps_extreme_to_largest_code() {
        let samples = [0.5, -2.0, 1.0, 0.25];
        let q = Quantizer::calibrate(&samples, 8, Calibration::MaxAbs).unwrap();
        assert_eq!(q.quantize(-2.0), -127);
        assert_eq!(q.quantize(2.0), 127);
        let median = Quantizer::calibrate(&samples, 8, Calibration::Quantile(0.5)).unwrap();
        assert!(
            median.scale > q.scale,
            "a lower quantile gives a larger scale"
        );
        assert_eq!(median.quantize(-2.0), -128, "outliers clip");
    }

    #[test]
    fn calibration_refuses_useless_samples() {
        assert!(Quantizer::calibrate(&[], 8, Calibration::MaxAbs).is_err());
        assert!(Quantizer::calibrate(&[0.0, 0.0], 8, Calibration::MaxAbs).is_err());
        assert!(Quantizer::calibrate(&[1.0, f32::NAN], 8, Calibration::MaxAbs).is_err());
        assert!(Quantizer::calibrate(&[1.0], 8, Calibration::Quantile(1.5)).is_err());
        assert!(Quantizer::new(1, 1.0).is_err());
        assert!(Quantizer::new(8, 0.0).is_err());
    }

    #[test]
    fn bound_covers_the_extreme_pair_and_decides_t() {
        let weights = vec![-128i64; 16];
        let q = vec![127i64; 16];
        let r = vec![-128i64; 16];
        let s = integer_score(&weights, &q, &r);
        assert_eq!(s.unsigned_abs(), score_bound(&weights, 8));
        assert_eq!(score_bound(&weights, 8), worst_case_score_bound(16, 8, 8));
        // For b = b_w = 8: |S| ≤ 16·128·255² = 133,171,200 < 2^27, and t > 2|S| needs
        // 2^27 < t ≤ 2^28, i.e. 28 bits (DESIGN.md's 29–30 bits leave margin).
        let bound = worst_case_score_bound(16, 8, 8);
        assert_eq!(bound, 133_171_200);
        assert!(2 * bound + 1 > 1 << 27 && 2 * bound + 1 < 1 << 28);
        assert_eq!(plaintext_bits_for(bound), 28);
        assert_eq!(plaintext_bits_for(3), 3); // t > 6 needs t ≥ 7: 3 bits
    }

    #[test]
    fn quantized_threshold_matches_float_decision_direction() {
        let model = MatchModel {
            weights: vec![-1.0, -0.5],
            bias: 2.0,
            threshold: 0.5,
        };
        let template = Quantizer::new(8, 20.0).unwrap();
        let qm = QuantizedModel::new(&model, template, 8).unwrap();
        // Float: accept iff -(d0²) - 0.5 d1² + 2 ≥ 0.
        let close = ([0.1f32, 0.1], [0.0f32, 0.0]);
        let far = ([2.0f32, 2.0], [0.0f32, 0.0]);
        for (q, r) in [close, far] {
            let float_accept = model.logit(&q, &r) >= model.threshold_logit();
            let s = qm.score(&qm.quantize(&q), &qm.quantize(&r));
            assert_eq!(s >= qm.threshold_score, float_accept);
        }
    }
}
