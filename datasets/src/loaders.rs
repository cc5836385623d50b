//! Finding and indexing SOCOFing and PolyU trees (real ones under datasets/data/, or
//! synthetic ones written in the same layouts). Indexing reads names only; images are
//! decoded when used, so a corrupt file is reported by the step that reads it (or by
//! `touchstone data check`, which decodes everything).

use crate::error::{DatasetError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which format a tree is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Sokoto Coventry Fingerprint Dataset (Real + Altered-Easy/Medium/Hard).
    Socofing,
    /// PolyU Contactless 2D to Contact-based 2D database.
    Polyu,
}

/// How an image relates to the finger's real capture.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Variant {
    /// A capture (or impression) of the finger.
    Real,
    /// A SOCOFing alteration: level (Easy, Medium, Hard) and kind (CR, Obl, Zcut).
    Altered {
        /// Easy, Medium or Hard.
        level: String,
        /// CR (central rotation), Obl (obliteration) or Zcut.
        kind: String,
    },
}

/// One image of the dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The file.
    pub path: PathBuf,
    /// Dense identity index, 0..fingers, in the dataset's natural (numeric) order.
    pub finger: usize,
    /// Human name of the finger ("12__M_Left_index", "p17").
    pub finger_name: String,
    /// Capture session, from 1.
    pub session: u32,
    /// Impression within the session, from 1.
    pub impression: u32,
    /// Real capture or alteration.
    pub variant: Variant,
}

/// An indexed dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Its format.
    pub format: Format,
    /// The folder the format's tree starts at (e.g. the one holding `Real/`).
    pub root: PathBuf,
    /// Every image, ordered by finger, session, impression, variant.
    pub samples: Vec<Sample>,
    /// Number of distinct fingers.
    pub fingers: usize,
}

impl Dataset {
    /// Indices of the real (unaltered) samples.
    pub fn real(&self) -> Vec<usize> {
        (0..self.samples.len())
            .filter(|&i| self.samples[i].variant == Variant::Real)
            .collect()
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DatasetError::io(dir, e))?
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|err| DatasetError::io(dir, err))
        })
        .collect::<Result<_>>()?;
    entries.sort();
    Ok(entries)
}

fn require_dir(path: &Path, what: &str) -> Result<()> {
    if !path.is_dir() {
        return Err(DatasetError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Breadth-first search (depth ≤ 4) for a folder satisfying `accept`, for archives
/// unpacked with extra wrapping folders (`archive/SOCOFing/…`).
fn find_root(start: &Path, accept: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut frontier = vec![start.to_path_buf()];
    for _ in 0..=4 {
        let mut next = Vec::new();
        for dir in frontier {
            if accept(&dir) {
                return Some(dir);
            }
            if let Ok(entries) = list_dir(&dir) {
                next.extend(entries.into_iter().filter(|p| p.is_dir()));
            }
        }
        frontier = next;
    }
    None
}

fn has_extension(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Guesses the format of a tree.
pub fn detect(path: &Path) -> Result<Format> {
    require_dir(path, "dataset folder")?;
    if find_root(path, is_socofing_root).is_some() {
        Ok(Format::Socofing)
    } else if find_root(path, is_polyu_root).is_some() {
        Ok(Format::Polyu)
    } else {
        Err(DatasetError::layout(
            path,
            "neither a SOCOFing tree (a `Real` folder of BMPs) nor a PolyU tree \
             (`*_fingerprint_images/first_session`) was found within 4 levels",
        ))
    }
}

/// Loads whichever format `path` holds.
pub fn load(path: &Path) -> Result<Dataset> {
    match detect(path)? {
        Format::Socofing => load_socofing(path),
        Format::Polyu => load_polyu(path, PolyuSubset::ProcessedContactless),
    }
}

// ---------------------------------------------------------------- SOCOFing

const HANDS: [&str; 2] = ["Left", "Right"];
const FINGERS: [&str; 5] = ["thumb", "index", "middle", "ring", "little"];
const LEVELS: [&str; 3] = ["Easy", "Medium", "Hard"];
const ALTERATIONS: [&str; 3] = ["CR", "Obl", "Zcut"];

fn is_socofing_root(dir: &Path) -> bool {
    dir.join("Real").is_dir()
}

/// A parsed SOCOFing file name: subject, sex, hand, finger, alteration.
#[derive(Debug, PartialEq, Eq)]
pub struct SocofingName {
    /// Subject number.
    pub subject: u32,
    /// M or F.
    pub sex: char,
    /// Index into Left, Right.
    pub hand: usize,
    /// Index into thumb, index, middle, ring, little.
    pub finger: usize,
    /// CR, Obl or Zcut for altered images.
    pub alteration: Option<String>,
}

impl SocofingName {
    /// `{subject}__{M|F}_{Left|Right}_{finger}_finger[_{CR|Obl|Zcut}].BMP`.
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name
            .strip_suffix(".BMP")
            .or_else(|| file_name.strip_suffix(".bmp"))?;
        let (subject, rest) = stem.split_once("__")?;
        let subject = subject.parse().ok()?;
        let parts: Vec<&str> = rest.split('_').collect();
        let (sex, hand, finger) = (parts.first()?, parts.get(1)?, parts.get(2)?);
        if parts.get(3) != Some(&"finger") {
            return None;
        }
        let sex = match *sex {
            "M" => 'M',
            "F" => 'F',
            _ => return None,
        };
        let hand = HANDS.iter().position(|h| h == hand)?;
        let finger = FINGERS.iter().position(|f| f == finger)?;
        let alteration = match parts.get(4) {
            None => None,
            Some(a) if ALTERATIONS.contains(a) && parts.len() == 5 => Some(a.to_string()),
            Some(_) => return None,
        };
        Some(Self {
            subject,
            sex,
            hand,
            finger,
            alteration,
        })
    }

    /// Key that orders fingers as subject, hand, finger.
    fn key(&self) -> (u32, usize, usize) {
        (self.subject, self.hand, self.finger)
    }

    fn finger_name(&self) -> String {
        format!(
            "{}__{}_{}_{}",
            self.subject, self.sex, HANDS[self.hand], FINGERS[self.finger]
        )
    }
}

fn socofing_files(dir: &Path, expect_altered: bool) -> Result<Vec<(PathBuf, SocofingName)>> {
    let mut out = Vec::new();
    for path in list_dir(dir)? {
        if !path.is_file() || !has_extension(&path, &["bmp"]) {
            continue; // Thumbs.db, README and the like
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let parsed = SocofingName::parse(name).ok_or_else(|| {
            DatasetError::layout(&path, "file name is not `{subject}__{M|F}_{Left|Right}_{finger}_finger[_CR|_Obl|_Zcut].BMP`")
        })?;
        if parsed.alteration.is_some() != expect_altered {
            return Err(DatasetError::layout(
                &path,
                if expect_altered {
                    "an unaltered name inside an Altered folder"
                } else {
                    "an altered name inside Real/"
                },
            ));
        }
        out.push((path, parsed));
    }
    Ok(out)
}

/// Indexes a SOCOFing tree: `Real/` is required; `Altered/Altered-{Easy,Medium,Hard}/`
/// are read when present. Every real image is its own finger.
pub fn load_socofing(path: &Path) -> Result<Dataset> {
    require_dir(path, "SOCOFing folder")?;
    let root = find_root(path, is_socofing_root).ok_or_else(|| DatasetError::Missing {
        path: path.join("Real"),
        what: "SOCOFing `Real` folder (searched 4 levels down)".into(),
    })?;
    let real = socofing_files(&root.join("Real"), false)?;
    if real.is_empty() {
        return Err(DatasetError::layout(
            &root.join("Real"),
            "contains no SOCOFing BMP images",
        ));
    }
    let mut keys: Vec<(u32, usize, usize)> = real.iter().map(|(_, n)| n.key()).collect();
    keys.sort();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(DatasetError::layout(
            &root.join("Real"),
            format!(
                "two real images of subject {} hand {} finger {}",
                w[0].0, HANDS[w[0].1], FINGERS[w[0].2]
            ),
        ));
    }
    let index_of = |key: (u32, usize, usize)| keys.binary_search(&key).ok();

    let mut samples: Vec<Sample> = real
        .into_iter()
        .map(|(path, n)| Sample {
            finger: index_of(n.key()).expect("real key is listed"),
            finger_name: n.finger_name(),
            path,
            session: 1,
            impression: 1,
            variant: Variant::Real,
        })
        .collect();
    let altered_root = root.join("Altered");
    for level in LEVELS {
        let dir = altered_root.join(format!("Altered-{level}"));
        if !dir.is_dir() {
            continue;
        }
        for (path, n) in socofing_files(&dir, true)? {
            let finger = index_of(n.key()).ok_or_else(|| {
                DatasetError::layout(&path, "altered image of a finger that has no real image")
            })?;
            samples.push(Sample {
                finger,
                finger_name: n.finger_name(),
                path,
                session: 1,
                impression: 1,
                variant: Variant::Altered {
                    level: level.to_string(),
                    kind: n.alteration.clone().expect("altered"),
                },
            });
        }
    }
    samples.sort_by(|a, b| (a.finger, &a.variant, &a.path).cmp(&(b.finger, &b.variant, &b.path)));
    Ok(Dataset {
        format: Format::Socofing,
        root,
        samples,
        fingers: keys.len(),
    })
}

// ---------------------------------------------------------------- PolyU

/// Which image family of the PolyU database to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolyuSubset {
    /// `processed_contactless_2d_fingerprint_images` (what Blind-Touch used).
    ProcessedContactless,
    /// `contactless_2d_fingerprint_images`.
    Contactless,
    /// `contact-based_fingerprints`.
    ContactBased,
}

impl PolyuSubset {
    fn folder(self) -> &'static str {
        match self {
            Self::ProcessedContactless => "processed_contactless_2d_fingerprint_images",
            Self::Contactless => "contactless_2d_fingerprint_images",
            Self::ContactBased => "contact-based_fingerprints",
        }
    }
}

const SESSIONS: [&str; 2] = ["first_session", "second_session"];

fn is_polyu_root(dir: &Path) -> bool {
    [
        PolyuSubset::ProcessedContactless,
        PolyuSubset::Contactless,
        PolyuSubset::ContactBased,
    ]
    .iter()
    .any(|s| dir.join(s.folder()).join("first_session").is_dir())
}

/// `p17` → 17.
fn p_number(s: &str) -> Option<u32> {
    s.strip_prefix('p')?.parse().ok()
}

/// Indexes a PolyU tree. Contactless: `{subset}/{session}/p{finger}/p{n}.bmp`;
/// contact-based: `{subset}/{session}/{finger}_{n}.jpg`. Names sort numerically.
/// The same finger number in both sessions is the same finger.
pub fn load_polyu(path: &Path, subset: PolyuSubset) -> Result<Dataset> {
    require_dir(path, "PolyU folder")?;
    let root = find_root(path, is_polyu_root).ok_or_else(|| DatasetError::Missing {
        path: path.to_path_buf(),
        what: "PolyU tree (`*_fingerprint_images/first_session`, searched 4 levels down)".into(),
    })?;
    let base = root.join(subset.folder());
    require_dir(
        &base.join("first_session"),
        &format!("PolyU {} first session", subset.folder()),
    )?;
    // (finger number, session, impression, path)
    let mut found: Vec<(u32, u32, u32, PathBuf)> = Vec::new();
    for (s, session) in SESSIONS.iter().enumerate() {
        let dir = base.join(session);
        if !dir.is_dir() {
            continue;
        }
        for entry in list_dir(&dir)? {
            match subset {
                PolyuSubset::ContactBased => {
                    if !entry.is_file() || !has_extension(&entry, &["jpg", "jpeg", "bmp"]) {
                        continue;
                    }
                    let stem = entry
                        .file_stem()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    let parsed = stem
                        .split_once('_')
                        .and_then(|(f, n)| Some((f.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
                    let (finger, n) = parsed.ok_or_else(|| {
                        DatasetError::layout(&entry, "expected `{finger}_{n}.jpg`")
                    })?;
                    found.push((finger, s as u32 + 1, n, entry));
                }
                _ => {
                    if !entry.is_dir() {
                        continue;
                    }
                    let dir_name = entry
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default();
                    let finger = p_number(dir_name).ok_or_else(|| {
                        DatasetError::layout(&entry, "expected a `p{finger}` folder")
                    })?;
                    for image in list_dir(&entry)? {
                        if !image.is_file() || !has_extension(&image, &["bmp", "png", "jpg"]) {
                            continue;
                        }
                        let stem = image
                            .file_stem()
                            .and_then(|n| n.to_str())
                            .unwrap_or_default();
                        let n = p_number(stem)
                            .ok_or_else(|| DatasetError::layout(&image, "expected `p{n}.bmp`"))?;
                        found.push((finger, s as u32 + 1, n, image));
                    }
                }
            }
        }
    }
    if found.is_empty() {
        return Err(DatasetError::layout(&base, "contains no PolyU images"));
    }
    found.sort();
    if let Some(w) = found
        .windows(2)
        .find(|w| (w[0].0, w[0].1, w[0].2) == (w[1].0, w[1].1, w[1].2))
    {
        return Err(DatasetError::layout(
            &w[1].3,
            format!("duplicate impression {} of finger {}", w[1].2, w[1].0),
        ));
    }
    let mut numbers: Vec<u32> = found.iter().map(|f| f.0).collect();
    numbers.dedup();
    let samples = found
        .into_iter()
        .map(|(number, session, impression, path)| Sample {
            path,
            finger: numbers.binary_search(&number).expect("listed"),
            finger_name: format!("p{number}"),
            session,
            impression,
            variant: Variant::Real,
        })
        .collect();
    Ok(Dataset {
        format: Format::Polyu,
        root,
        samples,
        fingers: numbers.len(),
    })
}
