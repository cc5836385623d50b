//! Fingerprint data for touchstone: a synthetic generator (the embedded default),
//! SOCOFing and PolyU loaders, OpenCV-exact preprocessing, imgaug-style augmentation and
//! the evaluation protocols that split data into train / validation / test and pairs.
#![warn(missing_docs)]

pub mod augment;
pub mod error;
pub mod filter;
pub mod image;
pub mod loaders;
pub mod metrics;
pub mod preprocess;
pub mod realism;
pub mod splits;
pub mod synth;

pub use error::{DatasetError, Result};
pub use image::{Gray8, GrayF};
