//! Training kernels for the CPU backend: the 3×3 "same" convolution, swish (SiLU) and the
//! 2×2 max pooling as single autodiff operations with hand-written backward passes.
//!
//! Why: on Burn's Flex backend a training step of this network spent most of its time
//! outside arithmetic — convolution gradients through transposed 3-D convolutions and
//! permuted copies, swish as five separate element passes with scalar `expf`, max pooling
//! through a general 3-D kernel with per-element index arithmetic — so it
//! trained 4–5× slower than the same network in TensorFlow on the same cores (profiled
//! with perf; see `touchstone train --bench`). Here a convolution is im2col + one
//! matrix product per image (`matrixmultiply`), its weight, bias and input gradients three
//! more, images in parallel; swish and pooling are one pass forward and one backward.
//!
//! Only the CPU backends ([`crate::CpuTraining`] for training, [`crate::CpuBackend`] for
//! inference, forward passes only) take these paths, chosen by type at run time (Rust has
//! no specialisation; the tensor is moved through `Any`, no `unsafe`): the model stays
//! generic and the CUDA backend runs Burn's own operations unchanged. The tests hold
//! forward values and every gradient to Burn's.

use crate::CpuBackend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::TensorPrimitive;
use rayon::prelude::*;
use std::any::Any;

type Ad = Autodiff<CpuBackend>;

/// Whether the CPU training backend takes these kernels (the default) or Burn's own
/// operations: a process-wide switch for measuring one against the other in one run
/// (`touchstone train --bench` prints both); training never turns it off.
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns these kernels on or off for the CPU training backend (see [`ENABLED`]).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether these kernels are on.
pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}
type Raw = <CpuBackend as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;
type AdRaw = <Ad as burn::tensor::backend::BackendTypes>::FloatTensorPrimitive;

/// Whether backend `B` is backend `T`.
fn is<B: Backend, T: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<T>()
}

/// Whether `B` takes these kernels for inference: the CPU backend, kernels on.
pub fn fast_inference<B: Backend>() -> bool {
    enabled() && is::<B, CpuBackend>()
}

/// The raw CPU tensor of a tensor of `B`, which the caller checked is the CPU backend.
fn raw<B: Backend, const D: usize>(x: Tensor<B, D>) -> Raw {
    same::<B, CpuBackend, D>(x).into_primitive().tensor()
}

/// A raw CPU tensor as a tensor of `B`, which the caller checked is the CPU backend.
fn wrap<B: Backend, const D: usize>(raw: Raw) -> Tensor<B, D> {
    same::<CpuBackend, B, D>(Tensor::from_primitive(TensorPrimitive::Float(raw)))
}

/// `conv.forward(x)` for a 3×3 convolution with stride 1, padding 1 and a bias (what the
/// model's blocks use); these kernels on the CPU backends.
pub fn conv3x3<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    use burn::nn::PaddingConfig2d::{Explicit, Same};
    let fits = enabled()
        && conv.weight.dims()[2..] == [3, 3]
        && matches!(conv.padding, Same | Explicit(1, 1, 1, 1))
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && x.dims()[2..].iter().all(|&side| side > 0);
    let Some(bias) = conv.bias.as_ref().filter(|_| fits) else {
        return conv.forward(x);
    };
    if is::<B, Ad>() {
        let cast_in = |t| same::<B, Ad, 4>(t);
        let bias = same::<B, Ad, 1>(bias.val());
        let out = conv_ad(cast_in(x), cast_in(conv.weight.val()), bias);
        same::<Ad, B, 4>(out)
    } else if is::<B, CpuBackend>() {
        let [n, c, h, w] = x.dims();
        let o = conv.weight.dims()[0];
        let s = ConvShape { n, c, o, h, w };
        let out = conv_forward(
            &to_vec(raw(x)),
            &to_vec(raw(conv.weight.val())),
            &to_vec(raw(bias.val())),
            s,
        );
        wrap(from_vec(out, vec![n, o, h, w]))
    } else {
        conv.forward(x)
    }
}

/// Swish x·σ(x); these kernels on the CPU backends.
pub fn swish<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    if !enabled() {
        silu(x)
    } else if is::<B, Ad>() {
        same::<Ad, B, 4>(swish_ad(same::<B, Ad, 4>(x)))
    } else if is::<B, CpuBackend>() {
        let shape = x.dims().to_vec();
        let (out, _) = swish_values(&to_vec(raw(x)));
        wrap(from_vec(out, shape))
    } else {
        silu(x)
    }
}

/// `pool.forward(x)` for a 2×2 max pooling with stride 2 and no padding on even sides
/// (the model's blocks); these kernels on the CPU backends.
pub fn max_pool2<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let fits = enabled()
        && pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && matches!(pool.padding, burn::nn::PaddingConfig2d::Valid)
        && !pool.ceil_mode
        && h >= 2
        && w >= 2
        && h % 2 == 0
        && w % 2 == 0;
    if fits && is::<B, Ad>() {
        same::<Ad, B, 4>(max_pool2_ad(same::<B, Ad, 4>(x)))
    } else if fits && is::<B, CpuBackend>() {
        let (out, _) = max_pool2_values(&to_vec(raw(x)), h, w);
        wrap(from_vec(out, vec![n, c, h / 2, w / 2]))
    } else {
        pool.forward(x)
    }
}

/// The tensor as a tensor of backend `T` when `F` is `T`, else back unchanged.
fn cast<F: Backend, T: Backend, const D: usize>(
    x: Tensor<F, D>,
) -> Result<Tensor<T, D>, Tensor<F, D>> {
    let boxed: Box<dyn Any> = Box::new(x);
    match boxed.downcast::<Tensor<T, D>>() {
        Ok(t) => Ok(*t),
        Err(boxed) => Err(*boxed.downcast::<Tensor<F, D>>().expect("boxed just above")),
    }
}

/// [`cast`] where the types are known to be the same (checked by the caller's `TypeId`
/// comparison or a successful cast just before).
fn same<F: Backend, T: Backend, const D: usize>(x: Tensor<F, D>) -> Tensor<T, D> {
    match cast::<F, T, D>(x) {
        Ok(t) => t,
        Err(_) => unreachable!("the caller checked that the backends are one type"),
    }
}

fn to_vec(raw: Raw) -> Vec<f32> {
    raw.into_data()
        .into_vec::<f32>()
        .expect("the CPU backend's float tensors are f32")
}

fn from_vec(values: Vec<f32>, shape: Vec<usize>) -> Raw {
    Raw::from_data(TensorData::new(values, shape))
}

fn dims(raw: &Raw) -> Vec<usize> {
    burn::tensor::TensorMetadata::shape(raw).to_vec()
}

/// Shape of one convolution: batch, input and output channels, side lengths.
#[derive(Clone, Copy, Debug)]
struct ConvShape {
    n: usize,
    c: usize,
    o: usize,
    h: usize,
    w: usize,
}

impl ConvShape {
    /// Rows of the im2col matrix (C·9) and its columns (H·W).
    fn k(&self) -> usize {
        self.c * 9
    }
    fn hw(&self) -> usize {
        self.h * self.w
    }
}

/// im2col of one image [C, H, W] into `cols` [C·9, H·W]: row c·9 + 3·dy + dx holds the
/// image shifted by (dy − 1, dx − 1), zero outside.
fn im2col(image: &[f32], s: ConvShape, cols: &mut [f32]) {
    let (h, w, hw) = (s.h, s.w, s.hw());
    for c in 0..s.c {
        let plane = &image[c * hw..(c + 1) * hw];
        for dy in 0..3 {
            for dx in 0..3 {
                let row = &mut cols[(c * 9 + dy * 3 + dx) * hw..][..hw];
                for y in 0..h {
                    let out = &mut row[y * w..(y + 1) * w];
                    let sy = y as isize + dy as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    match dx {
                        0 => {
                            out[0] = 0.0;
                            out[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => out.copy_from_slice(src),
                        _ => {
                            out[..w - 1].copy_from_slice(&src[1..]);
                            out[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds `cols` [C·9, H·W] back into the image gradient [C, H, W].
fn col2im(cols: &[f32], s: ConvShape, image: &mut [f32]) {
    let (h, w, hw) = (s.h, s.w, s.hw());
    for c in 0..s.c {
        let plane = &mut image[c * hw..(c + 1) * hw];
        for dy in 0..3 {
            for dx in 0..3 {
                let row = &cols[(c * 9 + dy * 3 + dx) * hw..][..hw];
                for y in 0..h {
                    let sy = y as isize + dy as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    let from = &row[y * w..(y + 1) * w];
                    let to = &mut plane[sy as usize * w..(sy as usize + 1) * w];
                    match dx {
                        0 => to[..w - 1]
                            .iter_mut()
                            .zip(&from[1..])
                            .for_each(|(t, f)| *t += f),
                        1 => to.iter_mut().zip(from).for_each(|(t, f)| *t += f),
                        _ => to[1..]
                            .iter_mut()
                            .zip(&from[..w - 1])
                            .for_each(|(t, f)| *t += f),
                    }
                }
            }
        }
    }
}

/// C = α·A·B + β·C for row-major matrices given by their strides.
#[allow(clippy::too_many_arguments)]
fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    // Bounds checked here so the unsafe call cannot read or write outside the slices.
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(m > 0 && k > 0 && n > 0);
    assert!(last(m, k, rsa, csa) < a.len() && last(k, n, rsb, csb) < b.len());
    assert!(m * n <= c.len());
    // SAFETY: every index the product touches is within the slices (asserted above);
    // `c` does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Image groups of the weight and bias gradients (see `conv_backward`).
const GROUPS: usize = 8;

fn conv_forward(x: &[f32], weight: &[f32], bias: &[f32], s: ConvShape) -> Vec<f32> {
    let (k, hw) = (s.k(), s.hw());
    let mut out = vec![0.0f32; s.n * s.o * hw];
    out.par_chunks_mut(s.o * hw)
        .zip(x.par_chunks(s.c * hw))
        .for_each_init(
            || vec![0.0f32; k * hw],
            |cols, (out, image)| {
                im2col(image, s, cols);
                for (row, &b) in out.chunks_mut(hw).zip(bias) {
                    row.fill(b);
                }
                gemm((s.o, k, hw), weight, (k, 1), cols, (hw, 1), 1.0, out);
            },
        );
    out
}

/// Gradients of the input (when asked), the weight and the bias.
fn conv_backward(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    s: ConvShape,
    input_grad: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (k, hw) = (s.k(), s.hw());
    let mut dx = input_grad.then(|| vec![0.0f32; s.n * s.c * hw]);
    let per_image = |image: usize, cols: &mut Vec<f32>, dw: &mut Vec<f32>, db: &mut Vec<f32>| {
        let g = &grad[image * s.o * hw..(image + 1) * s.o * hw];
        im2col(&x[image * s.c * hw..(image + 1) * s.c * hw], s, cols);
        // dW[O, K] += G[O, HW] · colsᵀ
        gemm((s.o, hw, k), g, (hw, 1), cols, (1, hw), 1.0, dw);
        for (d, row) in db.iter_mut().zip(g.chunks(hw)) {
            *d += row.iter().sum::<f32>();
        }
    };
    // Images in a fixed number of groups, each summed in order, the groups' sums added
    // in order: the same floating-point sums whatever the thread count or scheduling, so
    // a resumed run repeats an uninterrupted one exactly.
    let group = s.n.div_ceil(GROUPS).max(1);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = (0..s.n)
        .collect::<Vec<_>>()
        .par_chunks(group)
        .map(|images| {
            let (mut cols, mut dw, mut db) = (
                vec![0.0f32; k * hw],
                vec![0.0f32; s.o * k],
                vec![0.0f32; s.o],
            );
            for &image in images {
                per_image(image, &mut cols, &mut dw, &mut db);
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0f32; s.o * k], vec![0.0f32; s.o]);
    for (pw, pb) in &partials {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    if let Some(dx) = dx.as_mut() {
        dx.par_chunks_mut(s.c * hw)
            .zip(grad.par_chunks(s.o * hw))
            .for_each_init(
                || vec![0.0f32; k * hw],
                |dcols, (dx, g)| {
                    // dcols[K, HW] = Wᵀ · G
                    gemm((k, s.o, hw), weight, (1, k), g, (hw, 1), 0.0, dcols);
                    col2im(dcols, s, dx);
                },
            );
    }
    (dx, dw, db)
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<CpuBackend, 3> for ConvBackward {
    /// Input, weight, shape.
    type State = (Raw, Raw, ConvShape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = to_vec(grads.consume::<CpuBackend>(&ops.node));
        let (x, w, s) = ops.state;
        let (dx, dw, db) = conv_backward(&to_vec(x), &to_vec(w), &grad, s, node_x.is_some());
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<CpuBackend>(node.id, from_vec(dx, vec![s.n, s.c, s.h, s.w]));
        }
        if let Some(node) = node_w {
            grads.register::<CpuBackend>(node.id, from_vec(dw, vec![s.o, s.c, 3, 3]));
        }
        if let Some(node) = node_b {
            grads.register::<CpuBackend>(node.id, from_vec(db, vec![s.o]));
        }
    }
}

fn conv_ad(x: Tensor<Ad, 4>, w: Tensor<Ad, 4>, b: Tensor<Ad, 1>) -> Tensor<Ad, 4> {
    let (x, w, b) = (
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    );
    let ([n, c, h, wd], [o, ci, kh, kw]) = (
        <[usize; 4]>::try_from(dims(&x.primitive)).expect("rank 4"),
        <[usize; 4]>::try_from(dims(&w.primitive)).expect("rank 4"),
    );
    assert_eq!((ci, kh, kw), (c, 3, 3), "conv3x3: weight shape");
    let s = ConvShape { n, c, o, h, w: wd };
    let out = conv_forward(
        &to_vec(x.primitive.clone()),
        &to_vec(w.primitive.clone()),
        &to_vec(b.primitive.clone()),
        s,
    );
    let out = from_vec(out, vec![n, o, h, wd]);
    record(
        ConvBackward,
        [&x, &w, &b],
        || (x.primitive.clone(), w.primitive.clone(), s),
        out,
    )
}

/// The output of `op` as an autodiff tensor: recorded with its backward state when a
/// parent needs a gradient (the state built only then), a plain result otherwise.
fn record<Op, const N: usize, const D: usize>(
    op: Op,
    parents: [&AdRaw; N],
    state: impl FnOnce() -> Op::State,
    out: Raw,
) -> Tensor<Ad, D>
where
    Op: Backward<CpuBackend, N>,
{
    let nodes = parents.map(|p| p.node.clone());
    let result = match op
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

#[derive(Debug)]
struct SwishBackward;

impl Backward<CpuBackend, 1> for SwishBackward {
    /// Input and σ(input).
    type State = (Raw, Raw);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let grad = grads.consume::<CpuBackend>(&ops.node);
        let Some(node) = node else { return };
        let shape = dims(&grad);
        let mut g = to_vec(grad);
        let (x, s) = (to_vec(ops.state.0), to_vec(ops.state.1));
        // d(x·σ(x))/dx = σ(x)·(1 + x·(1 − σ(x)))
        g.par_chunks_mut(4096)
            .zip(x.par_chunks(4096).zip(s.par_chunks(4096)))
            .for_each(|(g, (x, s))| {
                for ((g, &x), &s) in g.iter_mut().zip(x).zip(s) {
                    *g *= s * (1.0 + x * (1.0 - s));
                }
            });
        grads.register::<CpuBackend>(node.id, from_vec(g, shape));
    }
}

/// Swish of every value, and σ of every value (for the backward pass).
fn swish_values(values: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut sigma = vec![0.0f32; values.len()];
    let mut out = vec![0.0f32; values.len()];
    out.par_chunks_mut(4096)
        .zip(sigma.par_chunks_mut(4096).zip(values.par_chunks(4096)))
        .for_each(|(out, (sigma, x))| {
            for ((o, s), &x) in out.iter_mut().zip(sigma.iter_mut()).zip(x) {
                *s = 1.0 / (1.0 + (-x).exp());
                *o = x * *s;
            }
        });
    (out, sigma)
}

fn swish_ad(x: Tensor<Ad, 4>) -> Tensor<Ad, 4> {
    let x = x.into_primitive().tensor();
    let shape = dims(&x.primitive);
    let (out, sigma) = swish_values(&to_vec(x.primitive.clone()));
    let out = from_vec(out, shape.clone());
    record(
        SwishBackward,
        [&x],
        || (x.primitive.clone(), from_vec(sigma, shape)),
        out,
    )
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<CpuBackend, 1> for MaxPoolBackward {
    /// Input shape and, per output, the window position (0..4, row-major) of its maximum.
    type State = (Vec<usize>, std::sync::Arc<Vec<u8>>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let grad = to_vec(grads.consume::<CpuBackend>(&ops.node));
        let Some(node) = node else { return };
        let (shape, argmax) = ops.state;
        let (h, w) = (shape[2], shape[3]);
        let mut dx = vec![0.0f32; shape.iter().product()];
        dx.par_chunks_mut(h * w)
            .zip(grad.par_chunks(h * w / 4).zip(argmax.par_chunks(h * w / 4)))
            .for_each(|(dx, (g, arg))| {
                for (i, (&g, &a)) in g.iter().zip(arg).enumerate() {
                    let (y, x) = (2 * (i / (w / 2)), 2 * (i % (w / 2)));
                    dx[(y + (a as usize >> 1)) * w + x + (a as usize & 1)] += g;
                }
            });
        grads.register::<CpuBackend>(node.id, from_vec(dx, shape));
    }
}

/// 2×2 maxima of planes h × w (h and w even), and where in its window each one was.
fn max_pool2_values(values: &[f32], h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    let outputs = values.len() / 4;
    let mut out = vec![0.0f32; outputs];
    let mut argmax = vec![0u8; outputs];
    out.par_chunks_mut(h * w / 4)
        .zip(
            argmax
                .par_chunks_mut(h * w / 4)
                .zip(values.par_chunks(h * w)),
        )
        .for_each(|(out, (arg, plane))| {
            for (i, (o, a)) in out.iter_mut().zip(arg.iter_mut()).enumerate() {
                let (y, x) = (2 * (i / (w / 2)), 2 * (i % (w / 2)));
                // Burn's rule: the first value, then any strictly greater one, in
                // row-major window order (so ties and NaNs resolve as Burn resolves them).
                let window = [
                    plane[y * w + x],
                    plane[y * w + x + 1],
                    plane[(y + 1) * w + x],
                    plane[(y + 1) * w + x + 1],
                ];
                let (mut best, mut at) = (window[0], 0u8);
                for (k, &v) in window.iter().enumerate().skip(1) {
                    if v > best {
                        (best, at) = (v, k as u8);
                    }
                }
                (*o, *a) = (best, at);
            }
        });
    (out, argmax)
}

fn max_pool2_ad(x: Tensor<Ad, 4>) -> Tensor<Ad, 4> {
    let x = x.into_primitive().tensor();
    let shape = dims(&x.primitive);
    let (h, w) = (shape[2], shape[3]);
    let (out, argmax) = max_pool2_values(&to_vec(x.primitive.clone()), h, w);
    let out_shape = vec![shape[0], shape[1], h / 2, w / 2];
    let out = from_vec(out, out_shape);
    record(
        MaxPoolBackward,
        [&x],
        || (shape, std::sync::Arc::new(argmax)),
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    use burn::tensor::{Distribution, Tolerance};

    /// Burn's values and gradients and ours for the same convolution and loss, on sides
    /// that are not square and channel counts above one, so a transposed index shows.
    #[test]
    fn conv3x3_matches_burns_values_and_gradients() {
        let device = Default::default();
        for (n, c, o, h, w) in [(3, 1, 4, 5, 7), (2, 3, 5, 6, 4), (4, 8, 16, 8, 8)] {
            <Ad as Backend>::seed(&device, (n * c * o) as u64);
            let conv = Conv2dConfig::new([c, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init::<Ad>(&device);
            let input =
                Tensor::<Ad, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let weights =
                Tensor::<Ad, 4>::random([n, o, h, w], Distribution::Normal(0.0, 1.0), &device);
            let run = |fast: bool| {
                let x = input.clone().require_grad();
                let y = if fast {
                    conv3x3(&conv, x.clone())
                } else {
                    conv.forward(x.clone())
                };
                let grads = (y.clone() * weights.clone()).sum().backward();
                [
                    y.into_data(),
                    x.grad(&grads).unwrap().into_data(),
                    conv.weight.grad(&grads).unwrap().into_data(),
                    conv.bias
                        .as_ref()
                        .unwrap()
                        .grad(&grads)
                        .unwrap()
                        .into_data(),
                ]
            };
            for (burns, ours) in run(false).iter().zip(&run(true)) {
                assert_eq!(burns.shape, ours.shape);
                burns.assert_approx_eq::<f32>(ours, Tolerance::absolute(1e-4));
            }
        }
    }

    /// Without a gradient on the input (the network's first layer) the weight and bias
    /// gradients are still there, and there is none for the input.
    #[test]
    fn conv3x3_on_a_constant_input_gives_weight_gradients_only() {
        let device = Default::default();
        let conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<Ad>(&device);
        let x = Tensor::<Ad, 4>::random([2, 2, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let grads = conv3x3(&conv, x.clone()).sum().backward();
        assert!(x.grad(&grads).is_none());
        let expected = conv.forward(x.clone()).sum().backward();
        conv.weight
            .grad(&grads)
            .unwrap()
            .into_data()
            .assert_approx_eq::<f32>(
                &conv.weight.grad(&expected).unwrap().into_data(),
                Tolerance::absolute(1e-4),
            );
    }

    #[test]
    fn swish_matches_burns_values_and_gradients() {
        let device = Default::default();
        let input = Tensor::<Ad, 4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 4.0), &device);
        let weights =
            Tensor::<Ad, 4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = input.clone().require_grad();
            let y = if fast {
                swish(x.clone())
            } else {
                silu(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            [y.into_data(), x.grad(&grads).unwrap().into_data()]
        };
        for (burns, ours) in run(false).iter().zip(&run(true)) {
            burns.assert_approx_eq::<f32>(ours, Tolerance::absolute(1e-5));
        }
    }

    #[test]
    fn max_pool2_matches_burns_values_and_gradients() {
        use burn::nn::pool::MaxPool2dConfig;
        let device = Default::default();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        // Values rounded to a coarse grid, so windows hold ties.
        let input = Tensor::<Ad, 4>::random([2, 3, 6, 8], Distribution::Normal(0.0, 1.0), &device)
            .mul_scalar(2.0)
            .round();
        let weights =
            Tensor::<Ad, 4>::random([2, 3, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let run = |fast: bool| {
            let x = input.clone().require_grad();
            let y = if fast {
                max_pool2(&pool, x.clone())
            } else {
                pool.forward(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            [y.into_data(), x.grad(&grads).unwrap().into_data()]
        };
        for (burns, ours) in run(false).iter().zip(&run(true)) {
            assert_eq!(burns, ours);
        }
    }

    /// Inference on the CPU backend takes these kernels' forward passes (Burn's values
    /// within rounding); other backends (ndarray here) Burn's own operations exactly.
    #[test]
    fn inference_on_the_cpu_matches_burns_and_other_backends_run_burns() {
        use burn::nn::pool::MaxPool2dConfig;
        type Nd = burn_ndarray::NdArray;
        let device = Default::default();
        let conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<CpuBackend>(&device);
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let x =
            Tensor::<CpuBackend, 4>::random([2, 2, 6, 4], Distribution::Normal(0.0, 2.0), &device);
        let pairs = [
            (conv3x3(&conv, x.clone()), conv.forward(x.clone())),
            (swish(x.clone()), silu(x.clone())),
            (max_pool2(&pool, x.clone()), pool.forward(x.clone())),
        ];
        for (ours, burns) in pairs {
            burns
                .into_data()
                .assert_approx_eq::<f32>(&ours.into_data(), Tolerance::absolute(1e-5));
        }
        let nd_device = Default::default();
        let nd_conv = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init::<Nd>(&nd_device);
        let nx = Tensor::<Nd, 4>::from_data(x.into_data(), &nd_device);
        assert_eq!(
            conv3x3(&nd_conv, nx.clone()).into_data(),
            nd_conv.forward(nx.clone()).into_data()
        );
        assert_eq!(swish(nx.clone()).into_data(), silu(nx.clone()).into_data());
        assert_eq!(
            max_pool2(&pool, nx.clone()).into_data(),
            pool.forward(nx).into_data()
        );
    }
}
