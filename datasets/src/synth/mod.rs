//! The synthetic fingerprint generator (SFinGe-style), touchstone's embedded dataset.
//!
//! A set is fully determined by (preset, fingers, seed): every finger draws from its own
//! ChaCha stream, so fingers generate in parallel and the files are byte-identical
//! whatever the thread count. Sets are written in the real datasets' layouts, so the
//! SOCOFing and PolyU loaders read them unchanged.

pub mod impression;
pub mod master;

use crate::error::{DatasetError, Result};
use crate::image::Gray8;
use crate::loaders::{Format, Variant};
use impression::{ImpressionParams, ImpressionSpec, ALTERATIONS, LEVELS};
use master::{FilterBank, MasterInfo, MasterSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which real dataset a synthetic set mimics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresetKind {
    /// 96×103 prints, one impression per finger, 10 fingers per subject, altered copies.
    Socofing,
    /// Contactless-like 225×350 prints, several impressions per finger in two sessions.
    Polyu,
}

impl std::str::FromStr for PresetKind {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "socofing" => Ok(Self::Socofing),
            "polyu" => Ok(Self::Polyu),
            other => Err(DatasetError::invalid(
                "synthetic preset",
                format!("`{other}`; known: socofing, polyu"),
            )),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    /// The dataset mimicked.
    pub preset: PresetKind,
    /// socofing: subjects (10 fingers each, as SOCOFing's 600 subjects give 6,000
    /// prints); polyu: fingers.
    pub fingers: usize,
    /// The seed everything derives from.
    pub seed: u64,
    /// socofing: also write the altered copies (3 kinds × 3 levels per print).
    #[serde(default = "yes")]
    pub altered: bool,
}

fn yes() -> bool {
    true
}

/// The generator's fixed settings for a preset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Preset {
    /// Master canvas and ridge period.
    pub master: MasterSpec,
    /// Rendering and variation of impressions.
    pub impression: ImpressionSpec,
    /// Impressions per finger and session.
    pub impressions: usize,
    /// Fraction of fingers that also appear in a second session.
    pub second_session: f64,
    /// Fingers per subject.
    pub fingers_per_subject: usize,
}

impl Preset {
    /// The settings of a preset kind.
    pub fn of(kind: PresetKind) -> Self {
        match kind {
            PresetKind::Socofing => Self {
                master: MasterSpec {
                    width: 208,
                    height: 222,
                    period: (8.0, 10.0),
                    extent: (0.8, 0.88),
                },
                impression: ImpressionSpec {
                    width: 96,
                    height: 103,
                    scale: 2.0,
                    rotation_sd: 6.0,
                    translation: 0.05,
                    partial: 0.05,
                    distortion: 2.0,
                    pressure: (-0.15, 0.2),
                    noise: (4.0, 12.0),
                    background: 235,
                    dark_background: false,
                },
                impressions: 1,
                second_session: 0.0,
                fingers_per_subject: 10,
            },
            PresetKind::Polyu => Self {
                master: MasterSpec {
                    width: 250,
                    height: 380,
                    period: (9.0, 11.5),
                    extent: (0.82, 0.86),
                },
                impression: ImpressionSpec {
                    width: 225,
                    height: 350,
                    scale: 1.0,
                    rotation_sd: 5.0,
                    translation: 0.04,
                    partial: 0.05,
                    distortion: 4.0,
                    pressure: (-0.15, 0.15),
                    noise: (3.0, 8.0),
                    background: 20,
                    dark_background: true,
                },
                impressions: 6,
                // PolyU: 160 of 336 fingers were captured again in a second session.
                second_session: 160.0 / 336.0,
                fingers_per_subject: 1,
            },
        }
    }
}

/// One written image, as listed in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Path relative to the output folder.
    pub path: PathBuf,
    /// Finger index.
    pub finger: usize,
    /// Session, from 1.
    pub session: u32,
    /// Impression, from 1.
    pub impression: u32,
    /// Real or altered.
    pub variant: Variant,
}

/// One finger's master, as listed in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FingerRecord {
    /// Finger index.
    pub finger: usize,
    /// Name in the dataset layout.
    pub name: String,
    /// Class, singular points and ridge period of its master.
    pub master: MasterInfo,
}

/// manifest.json: everything needed to know what a synthetic set is and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// "touchstone-synth".
    pub generator: String,
    /// Manifest format version.
    pub version: u32,
    /// What was asked for.
    pub config: SynthConfig,
    /// The dataset format the files follow.
    pub layout: Format,
    /// Every finger.
    pub fingers: Vec<FingerRecord>,
    /// Every image.
    pub images: Vec<ImageRecord>,
}

/// What generating a set cost.
#[derive(Clone, Debug, Default)]
pub struct SynthTimings {
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Summed over threads: growing masters.
    pub masters: Duration,
    /// Summed over threads: rendering impressions and alterations.
    pub impressions: Duration,
    /// Summed over threads: encoding and writing files.
    pub writing: Duration,
    /// Fingers generated.
    pub fingers: usize,
    /// Images written.
    pub images: usize,
}

/// Where a finger's files go in the mimicked layout.
fn finger_name(preset: PresetKind, finger: usize, seed: u64) -> String {
    match preset {
        PresetKind::Socofing => {
            const HANDS: [&str; 2] = ["Left", "Right"];
            const FINGERS: [&str; 5] = ["thumb", "index", "middle", "ring", "little"];
            let subject = finger / 10 + 1;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(u64::MAX - subject as u64);
            let sex = if rng.random::<f64>() < 0.8 { "M" } else { "F" }; // SOCOFing is mostly male
            format!(
                "{subject}__{sex}_{}_{}",
                HANDS[(finger % 10) / 5],
                FINGERS[finger % 5]
            )
        }
        PresetKind::Polyu => format!("p{}", finger + 1),
    }
}

fn image_path(
    preset: PresetKind,
    name: &str,
    session: u32,
    impression: u32,
    variant: &Variant,
) -> PathBuf {
    match (preset, variant) {
        (PresetKind::Socofing, Variant::Real) => {
            PathBuf::from(format!("SOCOFing/Real/{name}_finger.BMP"))
        }
        (PresetKind::Socofing, Variant::Altered { level, kind }) => PathBuf::from(format!(
            "SOCOFing/Altered/Altered-{level}/{name}_finger_{kind}.BMP"
        )),
        (PresetKind::Polyu, _) => {
            let session = if session == 1 {
                "first_session"
            } else {
                "second_session"
            };
            PathBuf::from(format!(
                "Cross_Fingerprint_Images_Database/processed_contactless_2d_fingerprint_images/{session}/{name}/p{impression}.bmp"
            ))
        }
    }
}

/// One finger's images, in memory.
pub struct FingerImages {
    /// The finger's record.
    pub record: FingerRecord,
    /// (record, pixels) of every image.
    pub images: Vec<(ImageRecord, Gray8)>,
    /// Time spent growing the master.
    pub master_time: Duration,
    /// Time spent rendering.
    pub render_time: Duration,
}

/// Generates every image of finger `finger` (deterministic in (config, finger)).
pub fn generate_finger(config: &SynthConfig, bank: &FilterBank, finger: usize) -> FingerImages {
    let preset = Preset::of(config.preset);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(finger as u64);
    let start = Instant::now();
    let master = master::grow(&preset.master, bank, &mut rng);
    let master_time = start.elapsed();

    let start = Instant::now();
    let name = finger_name(config.preset, finger, config.seed);
    let total_fingers = config.fingers * preset.fingers_per_subject;
    let second = finger < (total_fingers as f64 * preset.second_session).round() as usize;
    let sessions = if second { 2 } else { 1 };
    let mut images = Vec::new();
    for session in 1..=sessions {
        for impression in 1..=preset.impressions as u32 {
            let params = ImpressionParams::sample(&preset.impression, &mut rng);
            let image = impression::render(&master, &preset.impression, &params, &mut rng);
            if config.preset == PresetKind::Socofing && config.altered {
                for (level_index, level) in LEVELS.iter().enumerate() {
                    for kind in ALTERATIONS {
                        let altered = impression::alter(
                            &image,
                            kind,
                            level_index,
                            preset.impression.background,
                            &mut rng,
                        );
                        let variant = Variant::Altered {
                            level: level.to_string(),
                            kind: kind.to_string(),
                        };
                        let record = ImageRecord {
                            path: image_path(config.preset, &name, session, impression, &variant),
                            finger,
                            session,
                            impression,
                            variant,
                        };
                        images.push((record, altered));
                    }
                }
            }
            let record = ImageRecord {
                path: image_path(config.preset, &name, session, impression, &Variant::Real),
                finger,
                session,
                impression,
                variant: Variant::Real,
            };
            images.push((record, image));
        }
    }
    images.sort_by(|a, b| {
        (a.0.session, a.0.impression, &a.0.variant).cmp(&(
            b.0.session,
            b.0.impression,
            &b.0.variant,
        ))
    });
    FingerImages {
        record: FingerRecord {
            finger,
            name,
            master: master.info,
        },
        images,
        master_time,
        render_time: start.elapsed(),
    }
}

/// One finger after its files were written.
struct WrittenFinger {
    record: FingerRecord,
    images: Vec<ImageRecord>,
    /// Images kept for the contact sheet (first fingers only).
    sheet: Vec<Gray8>,
    master_time: Duration,
    render_time: Duration,
    write_time: Duration,
}

/// The Gabor filter bank a preset needs.
pub fn filter_bank(kind: PresetKind) -> FilterBank {
    let p = Preset::of(kind).master;
    FilterBank::new(p.period.0 * 0.95, p.period.1 * 1.35, 0.25)
}

/// Generates the set and writes it under `out` with manifest.json and contact_sheet.png.
/// `progress` is called once per finger finished.
pub fn write(
    config: &SynthConfig,
    out: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<(Manifest, SynthTimings)> {
    if config.fingers == 0 {
        return Err(DatasetError::invalid(
            "synthetic set",
            "at least one finger (subject) is needed",
        ));
    }
    let start = Instant::now();
    let preset = Preset::of(config.preset);
    let bank = filter_bank(config.preset);
    let total = config.fingers * preset.fingers_per_subject;
    std::fs::create_dir_all(out).map_err(|e| DatasetError::io(out, e))?;

    let results: Vec<Result<WrittenFinger>> = (0..total)
        .into_par_iter()
        .map(|finger| {
            let f = generate_finger(config, &bank, finger);
            let write_start = Instant::now();
            let mut records = Vec::with_capacity(f.images.len());
            let mut sheet = Vec::new();
            for (record, image) in f.images {
                let path = out.join(&record.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
                }
                image.save(&path)?;
                if finger < SHEET_FINGERS {
                    sheet.push(image);
                }
                records.push(record);
            }
            progress();
            Ok(WrittenFinger {
                record: f.record,
                images: records,
                sheet,
                master_time: f.master_time,
                render_time: f.render_time,
                write_time: write_start.elapsed(),
            })
        })
        .collect();

    let mut manifest = Manifest {
        generator: "touchstone-synth".into(),
        version: 1,
        config: config.clone(),
        layout: match config.preset {
            PresetKind::Socofing => Format::Socofing,
            PresetKind::Polyu => Format::Polyu,
        },
        fingers: Vec::with_capacity(total),
        images: Vec::new(),
    };
    let mut timings = SynthTimings {
        fingers: total,
        ..Default::default()
    };
    let mut sheet_rows = Vec::new();
    for result in results {
        let written = result?;
        timings.masters += written.master_time;
        timings.impressions += written.render_time;
        timings.writing += written.write_time;
        timings.images += written.images.len();
        manifest.fingers.push(written.record);
        manifest.images.extend(written.images);
        if !written.sheet.is_empty() {
            sheet_rows.push(written.sheet);
        }
    }
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    let manifest_path = out.join("manifest.json");
    std::fs::write(&manifest_path, json).map_err(|e| DatasetError::io(&manifest_path, e))?;
    contact_sheet(&sheet_rows, preset.impression.background)
        .save(&out.join("contact_sheet.png"))?;
    timings.wall = start.elapsed();
    Ok((manifest, timings))
}

/// Fingers shown on the contact sheet.
const SHEET_FINGERS: usize = 8;

/// One row per finger, its images side by side in manifest order (the real print first:
/// `Variant::Real` sorts before alterations), 4-pixel gaps.
pub fn contact_sheet(rows: &[Vec<Gray8>], background: u8) -> Gray8 {
    let gap = 4;
    let cell_w = rows.iter().flatten().map(|i| i.width).max().unwrap_or(1);
    let cell_h = rows.iter().flatten().map(|i| i.height).max().unwrap_or(1);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(1).min(10);
    let (w, h) = (
        columns * (cell_w + gap) + gap,
        rows.len().max(1) * (cell_h + gap) + gap,
    );
    let mut sheet = Gray8::filled(w, h, background / 2);
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().take(columns).enumerate() {
            let (ox, oy) = (gap + c * (cell_w + gap), gap + r * (cell_h + gap));
            for y in 0..image.height {
                for x in 0..image.width {
                    sheet.data[(oy + y) * w + ox + x] = image.get(x, y);
                }
            }
        }
    }
    sheet
}
