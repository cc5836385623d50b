//! cv2.resize with INTER_LINEAR on 8-bit images, bit-exact: OpenCV computes source
//! coordinates in f32, quantizes weights to 11 bits, and rounds the vertical pass with
//! shifts. A plain float bilinear resize differs by ±1 on about 12% of pixels.

use crate::error::{DatasetError, Result};
use crate::image::Gray8;

/// Per output index: the two source indices and their 11-bit weights.
fn axis_weights(
    input: usize,
    output: usize,
    reset_fraction_at_edges: bool,
) -> Vec<(usize, usize, i32, i32)> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|d| {
            let s = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut i = s.floor() as i64;
            let mut f = s - i as f32;
            let last = input as i64 - 1;
            if reset_fraction_at_edges {
                if i < 0 {
                    i = 0;
                    f = 0.0;
                }
                if i >= last {
                    i = last;
                    f = 0.0;
                }
            }
            let i0 = i.clamp(0, last) as usize;
            let i1 = (i + 1).clamp(0, last) as usize;
            let a0 = ((1.0 - f) * 2048.0).round_ties_even() as i32;
            let a1 = (f * 2048.0).round_ties_even() as i32;
            (i0, i1, a0, a1)
        })
        .collect()
}

/// Resizes to `width` × `height` exactly as OpenCV's INTER_LINEAR does, refusing what
/// cv2.resize refuses: an empty (or inconsistent) source and an empty target.
pub fn try_resize_linear(image: &Gray8, width: usize, height: usize) -> Result<Gray8> {
    image.check()?;
    if width == 0 || height == 0 {
        return Err(DatasetError::invalid(
            "resize target",
            format!("{width}×{height}: resize to an empty image"),
        ));
    }
    Ok(resize_linear(image, width, height))
}

/// Resizes to `width` × `height` exactly as OpenCV's INTER_LINEAR does.
///
/// Never panics: a source without pixels (zero width or height, or fewer values than
/// width × height) has nothing to interpolate, and gives the requested size filled with 0.
/// [`try_resize_linear`] and [`super::Pipeline::apply`] refuse such a source instead.
pub fn resize_linear(image: &Gray8, width: usize, height: usize) -> Gray8 {
    if image.width == 0 || image.height == 0 || image.data.len() < image.width * image.height {
        return Gray8::filled(width, height, 0);
    }
    let xs = axis_weights(image.width, width, true);
    let ys = axis_weights(image.height, height, false);
    let horizontal = |row: usize| -> Vec<i32> {
        let src = &image.data[row * image.width..(row + 1) * image.width];
        xs.iter()
            .map(|&(i0, i1, a0, a1)| src[i0] as i32 * a0 + src[i1] as i32 * a1)
            .collect()
    };
    let mut out = Vec::with_capacity(width * height);
    for &(r0, r1, b0, b1) in &ys {
        let (h0, h1) = (horizontal(r0), horizontal(r1));
        for x in 0..width {
            let v = (((h0[x] >> 4) * b0) >> 16) + (((h1[x] >> 4) * b1) >> 16) + 2;
            out.push((v >> 2).clamp(0, 255) as u8);
        }
    }
    Gray8 {
        width,
        height,
        data: out,
    }
}
