//! Grey images: 8-bit (what files and OpenCV's integer paths hold) and floating point
//! (what Sobel outputs, augmentation works on, and the network reads).

use crate::error::{DatasetError, Result};
use std::path::Path;

/// An 8-bit grey image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gray8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// width × height values, row by row.
    pub data: Vec<u8>,
}

/// A floating-point grey image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct GrayF {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// width × height values, row by row.
    pub data: Vec<f64>,
}

impl Gray8 {
    /// An image filled with `value`.
    pub fn filled(width: usize, height: usize, value: u8) -> Self {
        Self {
            width,
            height,
            data: vec![value; width * height],
        }
    }

    /// Pixel at (x, y).
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// Decodes any format and bit depth the `image` crate reads, converted to 8-bit grey.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
        let decoded = image::load_from_memory(&bytes).map_err(|e| DatasetError::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let grey = decoded.into_luma8();
        Ok(Self {
            width: grey.width() as usize,
            height: grey.height() as usize,
            data: grey.into_raw(),
        })
    }

    /// Writes a PNG or BMP (by extension).
    pub fn save(&self, path: &Path) -> Result<()> {
        let buffer =
            image::GrayImage::from_raw(self.width as u32, self.height as u32, self.data.clone())
                .expect("buffer size matches dimensions");
        buffer.save(path).map_err(|e| DatasetError::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Values / 255 as floats in [0, 1] (the network's input scaling).
    pub fn to_unit(&self) -> GrayF {
        GrayF {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&v| v as f64 / 255.0).collect(),
        }
    }
}

impl GrayF {
    /// An image filled with `value`.
    pub fn filled(width: usize, height: usize, value: f64) -> Self {
        Self {
            width,
            height,
            data: vec![value; width * height],
        }
    }

    /// Pixel at (x, y).
    pub fn get(&self, x: usize, y: usize) -> f64 {
        self.data[y * self.width + x]
    }

    /// Rounds half to even (OpenCV's saturate_cast uses cvRound) and clamps to 0..=255.
    pub fn to_u8(&self) -> Gray8 {
        Gray8 {
            width: self.width,
            height: self.height,
            data: self
                .data
                .iter()
                .map(|&v| v.round_ties_even().clamp(0.0, 255.0) as u8)
                .collect(),
        }
    }

    /// [0, 1] values to 8-bit (× 255, rounded, clamped).
    pub fn unit_to_u8(&self) -> Gray8 {
        Gray8 {
            width: self.width,
            height: self.height,
            data: self
                .data
                .iter()
                .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect(),
        }
    }
}
