//! Images → embeddings → templates: r = W·e + b for enrolment, q = W·e for queries (the
//! orientation the network was trained in: enrolled print first, probe second).

use crate::data::to_tensor;
use crate::model::{Head, Siamese};
use burn::prelude::*;
use datasets::GrayF;

/// Embeddings of preprocessed images, in batches.
pub fn embeddings<B: Backend>(
    model: &Siamese<B>,
    images: &[GrayF],
    size: usize,
    batch: usize,
    device: &B::Device,
) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let refs: Vec<&GrayF> = chunk.iter().collect();
        let e = model.embed(to_tensor::<B>(&refs, size, device));
        let [n, d] = e.dims();
        let flat = e
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 embeddings");
        out.extend((0..n).map(|i| flat[i * d..(i + 1) * d].to_vec()));
    }
    out
}

/// Enrolment and query templates of every embedding.
pub fn templates(head: &Head, embeddings: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let enrol = embeddings
        .iter()
        .map(|e| head.enrolment_template(e))
        .collect();
    let query = embeddings.iter().map(|e| head.query_template(e)).collect();
    (enrol, query)
}
