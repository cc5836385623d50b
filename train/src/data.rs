//! From a dataset to training batches: preprocess once, then per epoch sample
//! genuine/impostor pairs (p = 0.5, as in the paper) and augment the second image of
//! every pair on the fly, so the network cannot tell genuine from impostor by whether an
//! image was augmented.

use crate::error::{Result, TrainError};
use burn::prelude::*;
use datasets::augment::Augmenter;
use datasets::loaders::Dataset;
use datasets::preprocess::Pipeline;
use datasets::{Gray8, GrayF};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Preprocessed images of one part of a split, with their finger identities.
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// Square side of every image.
    pub size: usize,
    /// Images in [0, 1].
    pub images: Vec<GrayF>,
    /// Finger of each image.
    pub fingers: Vec<usize>,
    /// Indices into the dataset's samples.
    pub samples: Vec<usize>,
}

impl ImageSet {
    /// Loads and preprocesses `samples` of `dataset` in parallel; `progress` is called per image.
    pub fn prepare(
        dataset: &Dataset,
        samples: &[usize],
        pipeline: &Pipeline,
        size: usize,
        progress: &(dyn Fn() + Sync),
    ) -> Result<Self> {
        let images: Vec<GrayF> = samples
            .par_iter()
            .map(|&i| {
                let sample = &dataset.samples[i];
                let image = Gray8::load(&sample.path)?;
                let out = pipeline.apply(&image)?;
                progress();
                if (out.width, out.height) != (size, size) {
                    return Err(TrainError::Config(format!(
                        "pipeline `{}` produced {}×{} from {}, the model expects {size}×{size}: \
                         end the pipeline with a resize to the input size",
                        pipeline.name,
                        out.width,
                        out.height,
                        sample.path.display()
                    )));
                }
                Ok(out)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            size,
            images,
            fingers: samples.iter().map(|&i| dataset.samples[i].finger).collect(),
            samples: samples.to_vec(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Images of each finger.
    fn by_finger(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut map: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, &f) in self.fingers.iter().enumerate() {
            map.entry(f).or_default().push(i);
        }
        map
    }
}

/// One pair: indices into an [`ImageSet`] and the label (1 genuine, 0 impostor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    /// First image.
    pub a: usize,
    /// Second image (augmented before use).
    pub b: usize,
    /// 1.0 for genuine, 0.0 for impostor.
    pub label: f32,
}

/// One pair per image: with probability 1/2 genuine (another impression of the same
/// finger if there is one, else the same image, to be augmented), else impostor (an
/// image of another finger).
pub fn sample_pairs(set: &ImageSet, rng: &mut ChaCha8Rng) -> Vec<Pair> {
    let by_finger = set.by_finger();
    let distinct = by_finger.len();
    (0..set.len())
        .map(|a| {
            let own = &by_finger[&set.fingers[a]];
            if rng.random_bool(0.5) || distinct < 2 {
                let b = genuine_partner(own, a, rng);
                Pair { a, b, label: 1.0 }
            } else {
                loop {
                    let b = rng.random_range(0..set.len());
                    if set.fingers[b] != set.fingers[a] {
                        break Pair { a, b, label: 0.0 };
                    }
                }
            }
        })
        .collect()
}

/// Another image of `a`'s finger (`own` lists them all), drawn uniformly; `a` itself
/// when the finger has no other (it is augmented before use).
fn genuine_partner(own: &[usize], a: usize, rng: &mut ChaCha8Rng) -> usize {
    let others: Vec<usize> = own.iter().copied().filter(|&x| x != a).collect();
    if others.is_empty() {
        a
    } else {
        others[rng.random_range(0..others.len())]
    }
}

/// One genuine pair per image, in a shuffled order, for the in-batch objective: the image
/// as the enrolled print and another impression of its finger as the probe (the image
/// itself when it has no other; the probe is augmented either way).
pub fn sample_anchors(set: &ImageSet, rng: &mut ChaCha8Rng) -> Vec<Pair> {
    let by_finger = set.by_finger();
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.shuffle(rng);
    order
        .into_iter()
        .map(|a| {
            let b = genuine_partner(&by_finger[&set.fingers[a]], a, rng);
            Pair { a, b, label: 1.0 }
        })
        .collect()
}

/// The [N, N] label matrix of a batch of anchors: 1 where enrolled print i and probe k
/// are of the same finger (the diagonal, and any other image of a finger the batch holds
/// twice), else 0.
pub fn label_matrix<B: Backend>(
    set: &ImageSet,
    pairs: &[Pair],
    device: &B::Device,
) -> Tensor<B, 2> {
    let n = pairs.len();
    let labels: Vec<f32> = pairs
        .iter()
        .flat_map(|p| {
            pairs
                .iter()
                .map(move |q| f32::from(u8::from(set.fingers[p.a] == set.fingers[q.b])))
        })
        .collect();
    Tensor::from_data(TensorData::new(labels, [n, n]), device)
}

/// Packs images into a [N, 1, S, S] tensor.
pub fn to_tensor<B: Backend>(images: &[&GrayF], size: usize, device: &B::Device) -> Tensor<B, 4> {
    let mut data = Vec::with_capacity(images.len() * size * size);
    for image in images {
        data.extend(image.data.iter().map(|&v| v as f32));
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 1, size, size]), device)
}

/// A batch of pairs as tensors: first images, augmented second images, labels.
pub fn batch<B: Backend>(
    set: &ImageSet,
    pairs: &[Pair],
    augmenter: &Augmenter,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Result<(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 1>)> {
    let firsts: Vec<&GrayF> = pairs.iter().map(|p| &set.images[p.a]).collect();
    let seconds: Vec<GrayF> = pairs.iter().map(|p| set.images[p.b].clone()).collect();
    let augmented = augmenter.apply_batch(&seconds, rng)?;
    let labels: Vec<f32> = pairs.iter().map(|p| p.label).collect();
    Ok((
        to_tensor(&firsts, set.size, device),
        to_tensor(&augmented.iter().collect::<Vec<_>>(), set.size, device),
        Tensor::from_data(TensorData::new(labels, [pairs.len()]), device),
    ))
}
