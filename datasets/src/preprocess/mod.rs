//! Deterministic preprocessing that matches OpenCV exactly, composed into named
//! pipelines described by serde (so a YAML config can name or spell one out).

mod morphology;
mod resize;
mod sobel;

pub use morphology::{dilate3x3, erode3x3};
pub use resize::{resize_linear, try_resize_linear};
pub use sobel::{deriv_kernel, sobel};

use crate::error::{DatasetError, Result};
use crate::image::{Gray8, GrayF};
use serde::{Deserialize, Serialize};

/// How a float image (e.g. a Sobel response) is mapped to the network's [0, 1] range.
/// Blind-Touch's own rescaling after Sobel is not public, so it is an explicit choice.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rescale {
    /// Per image: min → 0, max → 1 (a constant image becomes 0).
    MinMax,
    /// Per image: |v| / max |v|.
    AbsMax,
    /// v · scale + offset, clamped to [0, 1].
    Affine {
        /// Multiplier.
        scale: f64,
        /// Added after scaling.
        offset: f64,
    },
}

/// One preprocessing step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// cv2.resize INTER_LINEAR to width × height (8-bit).
    Resize {
        /// Output width.
        width: usize,
        /// Output height.
        height: usize,
    },
    /// cv2.dilate with a 3×3 rectangle (8-bit).
    Dilate,
    /// cv2.erode with a 3×3 rectangle (8-bit).
    Erode,
    /// cv2.Sobel to CV_64F (8-bit in, float out).
    Sobel {
        /// x derivative order.
        dx: u32,
        /// y derivative order.
        dy: u32,
        /// Odd kernel size 3..=31.
        ksize: usize,
    },
    /// Float image to [0, 1].
    Rescale(Rescale),
}

/// A named sequence of steps. The output is always a float image in [0, 1]: 8-bit
/// results are divided by 255 (the network's input scaling); float results must be
/// rescaled explicitly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Name in tables.
    pub name: String,
    /// Steps in order.
    pub steps: Vec<Step>,
}

enum Stage {
    U8(Gray8),
    F(GrayF),
}

impl Pipeline {
    /// Blind-Touch's SOCOFing pipeline: resize to size × size.
    pub fn blindtouch_socofing(size: usize) -> Self {
        Self {
            name: "blindtouch-socofing".into(),
            steps: vec![Step::Resize {
                width: size,
                height: size,
            }],
        }
    }

    /// Blind-Touch's PolyU pipeline: resize → dilate → erode → Sobel dy (k = 9) → min-max.
    pub fn blindtouch_polyu(size: usize) -> Self {
        Self {
            name: "blindtouch-polyu".into(),
            steps: vec![
                Step::Resize {
                    width: size,
                    height: size,
                },
                Step::Dilate,
                Step::Erode,
                Step::Sobel {
                    dx: 0,
                    dy: 1,
                    ksize: 9,
                },
                Step::Rescale(Rescale::MinMax),
            ],
        }
    }

    /// A named preset at the given square size.
    pub fn preset(name: &str, size: usize) -> Result<Self> {
        match name {
            "blindtouch-socofing" => Ok(Self::blindtouch_socofing(size)),
            "blindtouch-polyu" => Ok(Self::blindtouch_polyu(size)),
            "identity" => Ok(Self {
                name: "identity".into(),
                steps: vec![],
            }),
            other => Err(DatasetError::invalid(
                "pipeline preset",
                format!("`{other}`; known: blindtouch-socofing, blindtouch-polyu, identity"),
            )),
        }
    }

    /// Checks that every step receives the kind of image it needs.
    pub fn validate(&self) -> Result<()> {
        let mut float = false;
        for (i, step) in self.steps.iter().enumerate() {
            let needs_u8 = matches!(
                step,
                Step::Resize { .. } | Step::Dilate | Step::Erode | Step::Sobel { .. }
            );
            if needs_u8 && float {
                return Err(DatasetError::invalid(
                    &format!("pipeline `{}` step {i}", self.name),
                    format!("{step:?} needs an 8-bit image but follows a float step"),
                ));
            }
            if let Step::Resize { width, height } = step {
                if *width == 0 || *height == 0 {
                    return Err(DatasetError::invalid(
                        &format!("pipeline `{}` step {i}", self.name),
                        "resize to an empty image",
                    ));
                }
                // A pipeline read from a file must not ask for more memory than an image
                // may hold (see `image::MAX_PIXELS`).
                if width
                    .checked_mul(*height)
                    .is_none_or(|n| n > crate::image::MAX_PIXELS)
                {
                    return Err(DatasetError::invalid(
                        &format!("pipeline `{}` step {i}", self.name),
                        format!(
                            "resize to {width}×{height} is more than the {} pixels an image may hold",
                            crate::image::MAX_PIXELS
                        ),
                    ));
                }
            }
            match step {
                Step::Sobel { .. } => float = true,
                Step::Rescale(_) if !float => {
                    return Err(DatasetError::invalid(
                        &format!("pipeline `{}` step {i}", self.name),
                        "rescale needs a float image (after sobel)",
                    ))
                }
                Step::Rescale(_) => float = false,
                _ => {}
            }
        }
        if float {
            return Err(DatasetError::invalid(
                &format!("pipeline `{}`", self.name),
                "ends on a float image: add a rescale step to map it to [0, 1]",
            ));
        }
        Ok(())
    }

    /// Runs the pipeline; the result is in [0, 1]. An image without pixels, with more
    /// than [`crate::image::MAX_PIXELS`], or whose data does not match its size is an error.
    pub fn apply(&self, image: &Gray8) -> Result<GrayF> {
        self.validate()?;
        image.check()?;
        let mut stage = Stage::U8(image.clone());
        let mut unit = None;
        for step in &self.steps {
            stage = match (step, stage) {
                (Step::Resize { width, height }, Stage::U8(g)) => {
                    Stage::U8(try_resize_linear(&g, *width, *height)?)
                }
                (Step::Dilate, Stage::U8(g)) => Stage::U8(dilate3x3(&g)),
                (Step::Erode, Stage::U8(g)) => Stage::U8(erode3x3(&g)),
                (Step::Sobel { dx, dy, ksize }, Stage::U8(g)) => {
                    Stage::F(sobel(&g, *dx, *dy, *ksize)?)
                }
                (Step::Rescale(r), Stage::F(f)) => {
                    let rescaled = rescale(&f, *r);
                    unit = Some(rescaled.clone());
                    Stage::F(rescaled)
                }
                _ => unreachable!("validate() guarantees step/stage agreement"),
            };
        }
        Ok(match stage {
            Stage::U8(g) => g.to_unit(),
            Stage::F(_) => unit.expect("a float pipeline ends with rescale"),
        })
    }
}

/// Maps a float image to [0, 1].
pub fn rescale(image: &GrayF, how: Rescale) -> GrayF {
    let data = match how {
        Rescale::MinMax => {
            let lo = image.data.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = image.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = hi - lo;
            image
                .data
                .iter()
                .map(|&v| if span > 0.0 { (v - lo) / span } else { 0.0 })
                .collect()
        }
        Rescale::AbsMax => {
            let m = image.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            image
                .data
                .iter()
                .map(|&v| if m > 0.0 { v.abs() / m } else { 0.0 })
                .collect()
        }
        Rescale::Affine { scale, offset } => image
            .data
            .iter()
            .map(|&v| (v * scale + offset).clamp(0.0, 1.0))
            .collect(),
    };
    GrayF {
        width: image.width,
        height: image.height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_output_unit_range() {
        let mut img = Gray8::filled(30, 20, 0);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = (i * 37 % 256) as u8;
        }
        for name in ["blindtouch-socofing", "blindtouch-polyu", "identity"] {
            let p = Pipeline::preset(name, 32).unwrap();
            let out = p.apply(&img).unwrap();
            assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)), "{name}");
            if name != "identity" {
                assert_eq!((out.width, out.height), (32, 32));
            }
        }
        assert!(Pipeline::preset("nope", 32).is_err());
    }

    #[test]
    fn invalid_orders_are_refused() {
        let p = Pipeline {
            name: "bad".into(),
            steps: vec![Step::Sobel {
                dx: 0,
                dy: 1,
                ksize: 9,
            }],
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("add a rescale"));
        let p = Pipeline {
            name: "bad".into(),
            steps: vec![
                Step::Sobel {
                    dx: 0,
                    dy: 1,
                    ksize: 9,
                },
                Step::Dilate,
            ],
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("needs an 8-bit image"));
        let p = Pipeline {
            name: "bad".into(),
            steps: vec![Step::Rescale(Rescale::MinMax)],
        };
        assert!(p.validate().is_err());
        // A huge intermediate resize (what a crafted head.json could ask for).
        let huge = Pipeline {
            name: "huge".into(),
            steps: vec![
                Step::Resize {
                    width: 200_000,
                    height: 200_000,
                },
                Step::Resize {
                    width: 64,
                    height: 64,
                },
            ],
        };
        let e = huge.validate().unwrap_err().to_string();
        assert!(e.contains("200000×200000"), "{e}");
    }

    #[test]
    fn pipelines_round_trip_through_serde() {
        let p = Pipeline::blindtouch_polyu(224);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains(r#""step":"sobel""#), "{json}");
        let back: Pipeline = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let unknown = r#"{"name":"x","steps":[{"step":"resize","width":2,"height":2,"depth":3}]}"#;
        assert!(serde_json::from_str::<Pipeline>(unknown).is_err());
    }
}
