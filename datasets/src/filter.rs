//! Separable correlation with OpenCV's default border (REFLECT_101), shared by Sobel
//! (exact to OpenCV) and the augmentation's Gaussian blur (imgaug's border).

/// REFLECT_101: … c b | a b c d | c b …
pub fn reflect101(i: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// out(y, x) = Σⱼ ky[j] · Σᵢ kx[i] · in(y + j − ry, x + i − rx), row-major w × h, with
/// odd-length kernels centred on the pixel (correlation, not convolution).
pub fn separable(data: &[f64], w: usize, h: usize, kx: &[f64], ky: &[f64]) -> Vec<f64> {
    let (rx, ry) = ((kx.len() / 2) as i64, (ky.len() / 2) as i64);
    let mut rows = vec![0.0f64; w * h];
    for y in 0..h {
        let src = &data[y * w..(y + 1) * w];
        for x in 0..w {
            rows[y * w + x] = kx
                .iter()
                .enumerate()
                .map(|(i, &k)| k * src[reflect101(x as i64 + i as i64 - rx, w)])
                .sum();
        }
    }
    let mut out = vec![0.0f64; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = ky
                .iter()
                .enumerate()
                .map(|(j, &k)| k * rows[reflect101(y as i64 + j as i64 - ry, h) * w + x])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_101_border() {
        let idx: Vec<usize> = (-3..7).map(|i| reflect101(i, 4)).collect();
        assert_eq!(idx, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect101(-5, 1), 0);
    }

    #[test]
    fn identity_kernels_copy_and_sums_follow_the_border() {
        let data: Vec<f64> = (0..12).map(|v| v as f64).collect();
        assert_eq!(separable(&data, 4, 3, &[1.0], &[1.0]), data);
        // Horizontal [1, 1, 1] at x = 0 reflects to (1 + 0 + 1).
        let out = separable(&data, 4, 3, &[1.0, 1.0, 1.0], &[1.0]);
        assert_eq!(out[0], 2.0);
        assert_eq!(out[1], 3.0);
    }
}
