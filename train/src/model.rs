//! The Blind-Touch network: five Conv3×3 → BatchNorm → swish → MaxPool2 blocks, flatten,
//! L2 normalisation (the embedding e); a siamese head FC-16 on (e₁ − e₂) → square →
//! FC-1, trained with binary cross-entropy on genuine/impostor pairs.
//!
//! The network is trained on pairs (e₁, e₂) with e₁ the enrolled print and e₂ the
//! (augmented) probe. The head is split for encryption along that orientation:
//! FC-16(e₁ − e₂) = (W·e₁ + b) − W·e₂ = r − q, so the client computes the enrolment
//! template r = W·e + b (the bias goes with the enrolled print) and the query template
//! q = W·e, and the server only needs logit = Σⱼ wⱼ (qⱼ − rⱼ)² + c. Putting the bias on the
//! probe instead would score FC-16(e₂ − e₁), which the non-symmetric head never learned.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Filters of the five blocks at width 1 (the paper's network).
pub const FILTERS: [usize; 5] = [32, 64, 128, 256, 512];
/// Template length (FC-16).
pub const TEMPLATE: usize = 16;

/// Shape of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Square input size in pixels (224 in the paper); a multiple of 32.
    pub input_size: usize,
    /// Multiplier on the filter counts (1.0 in the paper).
    pub width: f64,
}

impl ModelConfig {
    /// Filters per block after the width multiplier (at least 4).
    pub fn filters(&self) -> [usize; 5] {
        FILTERS.map(|f| ((f as f64 * self.width).round() as usize).max(4))
    }

    /// Length of the flattened embedding: last filters × (input / 32)².
    pub fn embedding_len(&self) -> usize {
        let side = self.input_size / 32;
        self.filters()[4] * side * side
    }

    /// Checks the shape is usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.input_size < 32 || !self.input_size.is_multiple_of(32) {
            return Err(format!(
                "input_size must be a multiple of 32 (five 2× poolings), got {}",
                self.input_size
            ));
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 4.0) {
            return Err(format!("width must be in (0, 4], got {}", self.width));
        }
        Ok(())
    }

    /// Builds a freshly initialised network.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Siamese<B> {
        let filters = self.filters();
        let mut blocks = Vec::with_capacity(5);
        let mut channels = 1;
        for &out in &filters {
            blocks.push(Block {
                conv: Conv2dConfig::new([channels, out], [3, 3])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device),
                norm: BatchNormConfig::new(out).init(device),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            });
            channels = out;
        }
        Siamese {
            blocks,
            fc16: LinearConfig::new(self.embedding_len(), TEMPLATE).init(device),
            fc1: LinearConfig::new(TEMPLATE, 1).init(device),
        }
    }
}

/// Conv3×3 (same) → BatchNorm → swish → MaxPool 2.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    conv: Conv2d<B>,
    norm: BatchNorm<B>,
    pool: MaxPool2d,
}

impl<B: Backend> Block<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // Training on the CPU takes `cpu_ops`' kernels; every other backend Burn's own.
        let x = crate::cpu_ops::conv3x3(&self.conv, x);
        let x = if B::ad_enabled(&x.device()) && crate::cpu_ops::enabled() {
            batch_norm_train(&self.norm, x)
        } else if crate::cpu_ops::fast_inference::<B>() {
            batch_norm_inference(&self.norm, x)
        } else {
            self.norm.forward(x)
        };
        crate::cpu_ops::max_pool2(&self.pool, crate::cpu_ops::swish(x))
    }
}

/// Burn's `BatchNorm` in inference mode (running statistics) as one per-row affine map
/// x·a + b, a = γ/√(σ² + ε), b = β − μ·a, from [N, C, 1] coefficients (the form Flex runs
/// on its SIMD path; see [`batch_norm_train`]).
pub(crate) fn batch_norm_inference<B: Backend>(
    norm: &BatchNorm<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let rows = x.reshape([n, c, h * w]);
    let mean = norm.running_mean.value().reshape([1, c, 1]);
    let var = norm.running_var.value().reshape([1, c, 1]);
    let a = norm.gamma.val().reshape([1, c, 1]) / var.add_scalar(norm.epsilon).sqrt();
    let b = norm.beta.val().reshape([1, c, 1]) - mean * a.clone();
    (rows * a.repeat_dim(0, n) + b.repeat_dim(0, n)).reshape([n, c, h, w])
}

/// Burn's `BatchNorm` in training mode, computed in a form the CPU backend runs fast:
/// the same batch statistics (mean and biased variance over batch and space, per
/// channel), the same running-statistics update, and the normalisation folded into one
/// per-channel affine map x·a + b with a = γ/√(σ² + ε), b = β − μ·a. Burn's own forward
/// transposes the activations for its statistics and broadcasts [1, C, 1, 1] tensors over
/// them, both of which Flex walks element by element (10× slower on this network, the
/// largest cost of a training step); here every reduction runs along contiguous rows
/// ([N, C, H·W] → [N, C, 1] → [1, C, 1]) and the affine map is applied per row from
/// [N, C, 1] coefficients. The test `batch_norm_matches_burns` holds it to Burn's.
pub(crate) fn batch_norm_train<B: Backend>(norm: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let rows = x.reshape([n, c, h * w]);
    let mean = rows.clone().mean_dim(2).mean_dim(0);
    let centred_square = (rows.clone() - mean.clone().repeat_dim(0, n))
        .square()
        .mean_dim(2)
        .mean_dim(0);
    let var = centred_square;
    let momentum = norm.momentum;
    let flat = |t: Tensor<B, 3>| t.detach().mul_scalar(momentum).reshape([c]);
    let running_mean = norm
        .running_mean
        .value_sync()
        .mul_scalar(1.0 - momentum)
        .add(flat(mean.clone()));
    let running_var = norm
        .running_var
        .value_sync()
        .mul_scalar(1.0 - momentum)
        .add(flat(var.clone()));
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
    let a = norm.gamma.val().reshape([1, c, 1]) / var.add_scalar(norm.epsilon).sqrt();
    let b = norm.beta.val().reshape([1, c, 1]) - mean * a.clone();
    (rows * a.repeat_dim(0, n) + b.repeat_dim(0, n)).reshape([n, c, h, w])
}

/// The whole siamese network.
#[derive(Module, Debug)]
pub struct Siamese<B: Backend> {
    blocks: Vec<Block<B>>,
    fc16: Linear<B>,
    fc1: Linear<B>,
}

impl<B: Backend> Siamese<B> {
    /// Embedding e of images [N, 1, S, S] → [N, D], L2-normalised.
    pub fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.blocks.iter().fold(images, |x, b| b.forward(x));
        let e: Tensor<B, 2> = x.flatten(1, 3);
        let norm = e
            .clone()
            .powf_scalar(2.0)
            .sum_dim(1)
            .add_scalar(1e-12)
            .sqrt();
        e / norm
    }

    /// The pair logit: FC-1((FC-16(e₁ − e₂))²), shape [N].
    pub fn logit(&self, a: Tensor<B, 4>, b: Tensor<B, 4>) -> Tensor<B, 1> {
        let d = self.fc16.forward(self.embed(a) - self.embed(b));
        let logit: Tensor<B, 2> = self.fc1.forward(d.powf_scalar(2.0));
        logit.squeeze_dim(1)
    }

    /// Logits of every enrolled print against every probe, [N, M]: entry (i, k) is
    /// FC-1((r_i − q_k)²) with r the enrolment and q the query templates — the pair logit
    /// of [`Self::logit`] for (a_i, b_k), each image embedded once, not once per pair.
    ///
    /// Both sets go through the network as one batch, so in training the batch-norm
    /// statistics are those of prints and probes together — the single set of running
    /// statistics inference normalises both with. (Embedding them in two calls, as
    /// [`Self::logit`] and Blind-Touch's Keras model do, normalises the clean prints and
    /// the augmented probes each by their own statistics in training only.)
    pub fn logit_matrix(&self, enrolled: Tensor<B, 4>, probes: Tensor<B, 4>) -> Tensor<B, 2> {
        let n = enrolled.dims()[0];
        let m = probes.dims()[0];
        let e = self.embed(Tensor::cat(vec![enrolled, probes], 0));
        let r = self.fc16.forward(e.clone().narrow(0, 0, n));
        let q = e.narrow(0, n, m).matmul(self.fc16.weight.val());
        let t = r.dims()[1];
        let d = r.reshape([n, 1, t]).repeat_dim(1, m) - q.reshape([1, m, t]).repeat_dim(0, n);
        let squares: Tensor<B, 2> = d.powf_scalar(2.0).reshape([n * m, t]);
        self.fc1.forward(squares).reshape([n, m])
    }

    /// Enrolment templates r = W·e + b (the first input's side of the pair), [N, 16].
    pub fn enrolment_templates(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.fc16.forward(self.embed(images))
    }

    /// Query templates q = W·e (no bias: the second input's side), [N, 16].
    pub fn query_templates(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.embed(images).matmul(self.fc16.weight.val())
    }

    /// Checks every parameter's shape against what `config.init` builds: Burn's
    /// `load_file` takes a record's tensors as they are, so a record of another
    /// configuration loads and fails (or computes garbage) only later. Names the first
    /// parameter that differs, e.g. `blocks.0.conv.weight has shape [16, 1, 3, 3], the
    /// config (input_size 64, width 0.25) builds [8, 1, 3, 3]`.
    pub fn check_shapes(&self, config: &ModelConfig) -> Result<(), String> {
        let built = format!(
            "the config (input_size {}, width {}) builds",
            config.input_size, config.width
        );
        if self.blocks.len() != FILTERS.len() {
            return Err(format!(
                "the network has {} blocks, {built} {}",
                self.blocks.len(),
                FILTERS.len()
            ));
        }
        let check = |name: String, actual: Option<Vec<usize>>, expected: Vec<usize>| match actual {
            Some(actual) if actual == expected => Ok(()),
            Some(actual) => Err(format!("{name} has shape {actual:?}, {built} {expected:?}")),
            None => Err(format!("{name} is missing, {built} {expected:?}")),
        };
        let mut channels = 1;
        for (i, (block, &out)) in self.blocks.iter().zip(&config.filters()).enumerate() {
            let conv = &block.conv;
            check(
                format!("blocks.{i}.conv.weight"),
                Some(conv.weight.lazy_shape().to_vec()),
                vec![out, channels, 3, 3],
            )?;
            check(
                format!("blocks.{i}.conv.bias"),
                conv.bias.as_ref().map(|b| b.lazy_shape().to_vec()),
                vec![out],
            )?;
            let norm = &block.norm;
            for (field, dims) in [
                ("gamma", norm.gamma.lazy_shape().to_vec()),
                ("beta", norm.beta.lazy_shape().to_vec()),
                ("running_mean", norm.running_mean.value().dims().to_vec()),
                ("running_var", norm.running_var.value().dims().to_vec()),
            ] {
                check(format!("blocks.{i}.norm.{field}"), Some(dims), vec![out])?;
            }
            channels = out;
        }
        check(
            "fc16.weight".into(),
            Some(self.fc16.weight.lazy_shape().to_vec()),
            vec![config.embedding_len(), TEMPLATE],
        )?;
        check(
            "fc16.bias".into(),
            self.fc16.bias.as_ref().map(|b| b.lazy_shape().to_vec()),
            vec![TEMPLATE],
        )?;
        check(
            "fc1.weight".into(),
            Some(self.fc1.weight.lazy_shape().to_vec()),
            vec![TEMPLATE, 1],
        )?;
        check(
            "fc1.bias".into(),
            self.fc1.bias.as_ref().map(|b| b.lazy_shape().to_vec()),
            vec![1],
        )
    }

    /// FC-16 weight [D, 16] and bias [16], FC-1 weight [16] and bias.
    pub fn head(&self) -> Head {
        let to_vec = |t: Tensor<B, 1>| {
            t.into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 data")
        };
        let w16 = self.fc16.weight.val();
        let [d, k] = w16.dims();
        let flat = to_vec(w16.reshape([d * k]));
        let fc16_weight = (0..d).map(|i| flat[i * k..(i + 1) * k].to_vec()).collect();
        let fc16_bias = self
            .fc16
            .bias
            .as_ref()
            .map(|b| to_vec(b.val()))
            .unwrap_or_else(|| vec![0.0; k]);
        let fc1_weight = to_vec(self.fc1.weight.val().reshape([TEMPLATE]));
        let fc1_bias = self
            .fc1
            .bias
            .as_ref()
            .map(|b| to_vec(b.val())[0])
            .unwrap_or(0.0);
        Head {
            fc16_weight,
            fc16_bias,
            fc1_weight,
            fc1_bias,
        }
    }
}

/// The head's weights in plain numbers: what the encrypted protocol needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// FC-16 weight, [D][16] (input-major, as Burn stores it): W·e = Σᵢ eᵢ · W[i].
    pub fc16_weight: Vec<Vec<f32>>,
    /// FC-16 bias b (carried by the enrolment template).
    pub fc16_bias: Vec<f32>,
    /// FC-1 weights wⱼ.
    pub fc1_weight: Vec<f32>,
    /// FC-1 bias c.
    pub fc1_bias: f32,
}

impl Head {
    /// logit = Σⱼ wⱼ (qⱼ − rⱼ)² + c.
    pub fn logit(&self, query: &[f32], reference: &[f32]) -> f64 {
        self.fc1_weight
            .iter()
            .zip(query.iter().zip(reference))
            .map(|(&w, (&q, &r))| w as f64 * (q as f64 - r as f64).powi(2))
            .sum::<f64>()
            + self.fc1_bias as f64
    }

    /// q = W·e: the probe's template (the network's second input).
    pub fn query_template(&self, embedding: &[f32]) -> Vec<f32> {
        let mut q = vec![0f32; self.fc16_bias.len()];
        for (e, row) in embedding.iter().zip(&self.fc16_weight) {
            for (acc, w) in q.iter_mut().zip(row) {
                *acc += e * w;
            }
        }
        q
    }

    /// r = W·e + b: the enrolled print's template (the network's first input).
    pub fn enrolment_template(&self, embedding: &[f32]) -> Vec<f32> {
        let mut r = self.query_template(embedding);
        for (v, b) in r.iter_mut().zip(&self.fc16_bias) {
            *v += b;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tolerance};

    type Ad = burn::backend::Autodiff<burn::backend::Flex>;

    /// The fast training-mode batch norm computes what Burn's computes: outputs, running
    /// statistics and the gradients of input, γ and β (with γ, β and the input away from
    /// their initial values, so a swapped term shows).
    #[test]
    fn batch_norm_matches_burns() {
        let device = Default::default();
        <Ad as Backend>::seed(&device, 3);
        let gamma = Tensor::<Ad, 1>::random([5], Distribution::Uniform(0.5, 2.0), &device);
        let beta = Tensor::<Ad, 1>::random([5], Distribution::Normal(0.0, 1.0), &device);
        let input = Tensor::<Ad, 4>::random([6, 5, 7, 3], Distribution::Normal(1.5, 3.0), &device);
        // A loss that weights every output differently.
        let weights =
            Tensor::<Ad, 4>::random([6, 5, 7, 3], Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let mut norm = BatchNormConfig::new(5).init::<Ad>(&device);
            norm.gamma = burn::module::Param::from_tensor(gamma.clone());
            norm.beta = burn::module::Param::from_tensor(beta.clone());
            let x = input.clone().require_grad();
            let y = if fast {
                batch_norm_train(&norm, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let values = [
                y.into_data(),
                x.grad(&grads).unwrap().into_data(),
                norm.gamma.grad(&grads).unwrap().into_data(),
                norm.beta.grad(&grads).unwrap().into_data(),
            ];
            let running = [
                norm.running_mean.value_sync().into_data(),
                norm.running_var.value_sync().into_data(),
            ];
            (values, running)
        };
        let (burns, _) = run(false);
        let (ours, running) = run(true);
        for (b, o) in burns.iter().zip(&ours) {
            b.assert_approx_eq::<f32>(o, Tolerance::absolute(1e-4));
        }
        // Running statistics from momentum 0.1, starting at mean 0 and variance 1, with
        // the batch's mean and biased variance per channel computed here in f64.
        let x: Vec<f32> = input.into_data().to_vec().unwrap();
        let (mean, var): (Vec<f32>, Vec<f32>) = (0..5)
            .map(|c| {
                let values: Vec<f64> = (0..6)
                    .flat_map(|n| (0..21).map(move |p| (n * 5 + c) * 21 + p))
                    .map(|i| x[i] as f64)
                    .collect();
                let m = values.iter().sum::<f64>() / values.len() as f64;
                let v = values.iter().map(|x| (x - m).powi(2)).sum::<f64>() / values.len() as f64;
                ((0.1 * m) as f32, (0.9 + 0.1 * v) as f32)
            })
            .unzip();
        running[0].assert_approx_eq::<f32>(&TensorData::new(mean, [5]), Tolerance::absolute(1e-4));
        running[1].assert_approx_eq::<f32>(&TensorData::new(var, [5]), Tolerance::absolute(1e-3));
    }

    #[test]
    fn inference_batch_norm_matches_burns() {
        type Cpu = burn::backend::Flex;
        let device = Default::default();
        let mut norm = BatchNormConfig::new(4).init::<Cpu>(&device);
        norm.gamma = burn::module::Param::from_tensor(Tensor::random(
            [4],
            Distribution::Uniform(0.5, 2.0),
            &device,
        ));
        norm.beta = burn::module::Param::from_tensor(Tensor::random(
            [4],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        norm.running_mean =
            burn::module::RunningState::new(Tensor::from_floats([0.3, -1.0, 2.0, 0.0], &device));
        norm.running_var =
            burn::module::RunningState::new(Tensor::from_floats([0.5, 2.0, 1.0, 4.0], &device));
        let x = Tensor::<Cpu, 4>::random([3, 4, 5, 6], Distribution::Normal(0.0, 2.0), &device);
        norm.forward(x.clone()).into_data().assert_approx_eq::<f32>(
            &batch_norm_inference(&norm, x).into_data(),
            Tolerance::absolute(1e-5),
        );
    }
}
