//! Training throughput on synthetic tensors: the time of whole training steps (both
//! forward passes, backward, Adam) at a given network shape and batch, with the data
//! pipeline left out, and separately the time the augmenter takes per batch. What
//! `touchstone train --bench` prints; the figure the CPU/GPU backends are compared by.

use crate::model::ModelConfig;
use crate::training::bce_with_logits;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion};
use datasets::augment::Augmenter;
use datasets::GrayF;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Instant;

/// Throughput of training steps.
#[derive(Clone, Debug, Serialize)]
pub struct StepSpeed {
    /// Input side in pixels.
    pub input_size: usize,
    /// Width multiplier.
    pub width: f64,
    /// Pairs per step.
    pub batch: usize,
    /// Timed steps (after one untimed warm-up step).
    pub steps: usize,
    /// Wall seconds of the timed steps.
    pub seconds: f64,
    /// Pairs trained per second.
    pub pairs_per_second: f64,
    /// Images through forward and backward per second (two per pair).
    pub images_per_second: f64,
}

/// Times `steps` training steps of a freshly initialised network on random images
/// (seeded), after one warm-up step. Returns an error for an unusable shape.
pub fn training_steps<B: AutodiffBackend>(
    model: &ModelConfig,
    batch: usize,
    steps: usize,
    device: &B::Device,
) -> Result<StepSpeed, String> {
    model.validate()?;
    if batch == 0 || steps == 0 {
        return Err("batch and steps must be at least 1".into());
    }
    B::seed(device, 1);
    let mut network = model.init::<B>(device);
    let mut optimizer = AdamConfig::new().init();
    let shape = [batch, 1, model.input_size, model.input_size];
    let labels: Vec<f32> = (0..batch).map(|i| (i % 2) as f32).collect();
    let mut step = |network: crate::model::Siamese<B>| {
        let a = Tensor::<B, 4>::random(shape, Distribution::Uniform(0.0, 1.0), device);
        let b = Tensor::<B, 4>::random(shape, Distribution::Uniform(0.0, 1.0), device);
        let y = Tensor::<B, 1>::from_data(TensorData::new(labels.clone(), [batch]), device);
        let loss = bce_with_logits(network.logit(a, b), y);
        // Reading the loss waits for the step, as the training loop does.
        let _: f64 = loss.clone().into_scalar().elem();
        let grads = GradientsParams::from_grads(loss.backward(), &network);
        optimizer.step(1e-3, network, grads)
    };
    network = step(network);
    let start = Instant::now();
    for _ in 0..steps {
        network = step(network);
    }
    // Wait for the last step's parameters (asynchronous backends).
    let _ = network.into_record();
    B::sync(device).map_err(|e| format!("backend sync: {e:?}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let pairs = (batch * steps) as f64;
    Ok(StepSpeed {
        input_size: model.input_size,
        width: model.width,
        batch,
        steps,
        seconds,
        pairs_per_second: pairs / seconds,
        images_per_second: 2.0 * pairs / seconds,
    })
}

/// Mean seconds `augmenter` takes for one batch of `batch` images of side `size`
/// (random content, seeded), over `rounds` batches.
pub fn augment_seconds(
    augmenter: &Augmenter,
    size: usize,
    batch: usize,
    rounds: usize,
) -> Result<f64, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let images: Vec<GrayF> = (0..batch)
        .map(|i| {
            let data = (0..size * size)
                .map(|p| ((p * 31 + i * 17) % 255) as f64 / 255.0)
                .collect();
            GrayF {
                width: size,
                height: size,
                data,
            }
        })
        .collect();
    let start = Instant::now();
    for _ in 0..rounds.max(1) {
        augmenter
            .apply_batch(&images, &mut rng)
            .map_err(|e| format!("augmentation: {e}"))?;
    }
    Ok(start.elapsed().as_secs_f64() / rounds.max(1) as f64)
}
