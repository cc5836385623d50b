//! cv2.Sobel(src, CV_64F, dx, dy, ksize) for ksize 3..=31 (odd): separable correlation
//! with OpenCV's derivative kernels, scale 1, delta 0, border REFLECT_101. For 8-bit input
//! every intermediate is an integer well below 2⁵³, so f64 arithmetic is exact.

use crate::error::{DatasetError, Result};
use crate::filter::separable;
use crate::image::{Gray8, GrayF};

/// OpenCV's getDerivKernels for one axis: binomial smoothing of order ksize − 1 for
/// order 0, and its finite difference for order 1.
pub fn deriv_kernel(order: u32, ksize: usize) -> Vec<f64> {
    // Binomial coefficients of degree ksize − 1 − order, then `order` differences.
    let degree = ksize - 1 - order as usize;
    let mut k = vec![1.0f64];
    for _ in 0..degree {
        let mut next = vec![0.0; k.len() + 1];
        for (i, &v) in k.iter().enumerate() {
            next[i] += v;
            next[i + 1] += v;
        }
        k = next;
    }
    for _ in 0..order {
        let mut next = vec![0.0; k.len() + 1];
        for (i, &v) in k.iter().enumerate() {
            next[i] -= v;
            next[i + 1] += v;
        }
        k = next;
    }
    k
}

/// The Sobel derivative of order (dx, dy) with an odd kernel size in 3..=31. An image
/// without pixels (or whose data does not match its size) is an error, as in OpenCV.
pub fn sobel(image: &Gray8, dx: u32, dy: u32, ksize: usize) -> Result<GrayF> {
    if ksize.is_multiple_of(2) || !(3..=31).contains(&ksize) {
        return Err(DatasetError::invalid(
            "sobel ksize",
            format!("must be odd in 3..=31, got {ksize}"),
        ));
    }
    if dx > 2 || dy > 2 || dx + dy == 0 {
        return Err(DatasetError::invalid(
            "sobel order",
            format!("dx, dy must be in 0..=2 and not both 0, got ({dx}, {dy})"),
        ));
    }
    image.check()?;
    let kx = deriv_kernel(dx, ksize);
    let ky = deriv_kernel(dy, ksize);
    let data: Vec<f64> = image.data.iter().map(|&v| v as f64).collect();
    Ok(GrayF {
        width: image.width,
        height: image.height,
        data: separable(&data, image.width, image.height, &kx, &ky),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_opencv_for_ksize_9() {
        assert_eq!(
            deriv_kernel(0, 9),
            vec![1.0, 8.0, 28.0, 56.0, 70.0, 56.0, 28.0, 8.0, 1.0]
        );
        assert_eq!(
            deriv_kernel(1, 9),
            vec![-1.0, -6.0, -14.0, -14.0, 0.0, 14.0, 14.0, 6.0, 1.0]
        );
        assert_eq!(deriv_kernel(1, 3), vec![-1.0, 0.0, 1.0]);
        assert_eq!(deriv_kernel(0, 3), vec![1.0, 2.0, 1.0]);
    }

    #[test]
    fn vertical_ramp_has_positive_dy_and_zero_dx() {
        let mut img = Gray8::filled(12, 12, 0);
        for y in 0..12 {
            for x in 0..12 {
                img.data[y * 12 + x] = (y * 10) as u8;
            }
        }
        let dy = sobel(&img, 0, 1, 9).unwrap();
        assert!(dy.get(6, 6) > 0.0, "brighter downwards is positive");
        let dx = sobel(&img, 1, 0, 3).unwrap();
        assert!(dx.data.iter().all(|&v| v == 0.0));
        assert!(sobel(&img, 0, 1, 8).is_err());
        assert!(sobel(&img, 0, 0, 3).is_err());
    }
}
