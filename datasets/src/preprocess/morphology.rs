//! cv2.dilate / cv2.erode with kernel=None: a 3×3 rectangle, anchor at the centre, one
//! iteration; pixels outside the image never win (OpenCV pads with the neutral value).

use crate::image::Gray8;

fn filter3x3(image: &Gray8, pick: fn(u8, u8) -> u8) -> Gray8 {
    let (w, h) = (image.width, image.height);
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            let mut v = image.get(x, y);
            for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    v = pick(v, image.get(xx, yy));
                }
            }
            out.data[y * w + x] = v;
        }
    }
    out
}

/// Grey dilation: the maximum over each 3×3 neighbourhood.
pub fn dilate3x3(image: &Gray8) -> Gray8 {
    filter3x3(image, u8::max)
}

/// Grey erosion: the minimum over each 3×3 neighbourhood.
pub fn erode3x3(image: &Gray8) -> Gray8 {
    filter3x3(image, u8::min)
}
