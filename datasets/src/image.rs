//! Grey images: 8-bit (what files and OpenCV's integer paths hold) and floating point
//! (what Sobel outputs, augmentation works on, and the network reads).

use crate::error::{DatasetError, Result};
use std::path::Path;

/// The most pixels an image may have: 64 Mi (8192 × 8192). Fingerprint scans are far
/// smaller (SOCOFing 96 × 103, PolyU HRF 240 × 320, 500 dpi rolled prints ~800 × 750); the
/// bound exists for memory: the decoder may hold a 16-bit RGBA intermediate (8 bytes a
/// pixel, 512 MiB at this size, the `image` crate's default allocation limit) and the float
/// stages (Sobel, augmentation) 8 bytes a pixel per copy, so a header claiming
/// 100000 × 100000 pixels must be refused before anything is allocated.
pub const MAX_PIXELS: usize = 1 << 26;

/// Why an image of `width` × `height` (holding `len` values) cannot be processed, if so.
fn dimension_problem(width: usize, height: usize, len: Option<usize>) -> Option<String> {
    if width == 0 || height == 0 {
        return Some(format!(
            "{width}×{height} pixels: an image needs at least one row and one column"
        ));
    }
    match width.checked_mul(height) {
        Some(n) if n <= MAX_PIXELS => {}
        _ => {
            return Some(format!(
            "{width}×{height} pixels is more than the {MAX_PIXELS} (8192×8192) this crate accepts"
        ))
        }
    }
    match len {
        Some(len) if len != width * height => Some(format!(
            "{width}×{height} image holds {len} values, expected {}",
            width * height
        )),
        _ => None,
    }
}

fn check_image(width: usize, height: usize, len: usize) -> Result<()> {
    match dimension_problem(width, height, Some(len)) {
        Some(reason) => Err(DatasetError::invalid("image", reason)),
        None => Ok(()),
    }
}

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
    /// An image from its pixels, refusing a zero dimension, more than [`MAX_PIXELS`]
    /// pixels, or `data` of another length than width × height.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        check_image(width, height, data.len())?;
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Checks that the image can be processed: at least one pixel, at most
    /// [`MAX_PIXELS`], and width × height values (the fields are public, so an image
    /// built in code may break any of these).
    pub fn check(&self) -> Result<()> {
        check_image(self.width, self.height, self.data.len())
    }

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
    /// The header's dimensions are checked before decoding: an image with a zero
    /// dimension or more than [`MAX_PIXELS`] pixels is refused, naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
        let image_error = |reason: String| DatasetError::Image {
            path: path.to_path_buf(),
            reason,
        };
        let reader = || {
            image::ImageReader::new(std::io::Cursor::new(&bytes))
                .with_guessed_format()
                .map_err(|e| image_error(e.to_string()))
        };
        let (width, height) = reader()?
            .into_dimensions()
            .map_err(|e| image_error(e.to_string()))?;
        if let Some(reason) = dimension_problem(width as usize, height as usize, None) {
            return Err(image_error(reason));
        }
        let decoded = reader()?.decode().map_err(|e| image_error(e.to_string()))?;
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
    /// An image from its pixels, refusing a zero dimension, more than [`MAX_PIXELS`]
    /// pixels, or `data` of another length than width × height.
    pub fn new(width: usize, height: usize, data: Vec<f64>) -> Result<Self> {
        check_image(width, height, data.len())?;
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Checks that the image can be processed (see [`Gray8::check`]).
    pub fn check(&self) -> Result<()> {
        check_image(self.width, self.height, self.data.len())
    }

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
