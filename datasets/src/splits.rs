//! Evaluation protocols: which samples train, validate and test, and which pairs or
//! gallery/probe sets are scored. No finger ever appears on both sides of a
//! train/test boundary.

use crate::error::{DatasetError, Result};
use crate::loaders::{Dataset, Variant};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Sample indices of each part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples (threshold choice, early stopping).
    pub validation: Vec<usize>,
    /// Test samples.
    pub test: Vec<usize>,
    /// What the protocol did that a reader should know (e.g. excluded leaking images).
    pub notes: Vec<String>,
}

impl Split {
    /// The fingers used by some samples.
    pub fn fingers(dataset: &Dataset, samples: &[usize]) -> BTreeSet<usize> {
        samples.iter().map(|&i| dataset.samples[i].finger).collect()
    }

    /// Fails if a finger appears in two parts.
    pub fn check_disjoint(&self, dataset: &Dataset) -> Result<()> {
        let parts = [
            ("train", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ];
        for (i, (a, pa)) in parts.iter().enumerate() {
            for (b, pb) in &parts[i + 1..] {
                let shared: Vec<usize> = Self::fingers(dataset, pa)
                    .intersection(&Self::fingers(dataset, pb))
                    .copied()
                    .collect();
                if let Some(f) = shared.first() {
                    return Err(DatasetError::invalid(
                        "split",
                        format!(
                            "{} finger(s) in both {a} and {b}, e.g. finger {f}",
                            shared.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Blind-Touch's SOCOFing protocol: every real image is its own identity; shuffle with
/// the seed, 20% test, then 25% of the rest validation, the remainder training
/// (6,000 → 3,600 / 1,200 / 1,200). Altered images are not used.
pub fn socofing_blindtouch(dataset: &Dataset, seed: u64) -> Result<Split> {
    let mut real = dataset.real();
    if real.len() < 5 {
        return Err(DatasetError::invalid(
            "split",
            format!("{} real images are too few to split", real.len()),
        ));
    }
    real.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test_n = real.len() / 5;
    let validation_n = (real.len() - test_n) / 4;
    let test = real[..test_n].to_vec();
    let validation = real[test_n..test_n + validation_n].to_vec();
    let train = real[test_n + validation_n..].to_vec();
    let split = Split {
        train,
        validation,
        test,
        notes: vec![
            "each real image is its own identity; genuine pairs are augmented copies".into(),
        ],
    };
    split.check_disjoint(dataset)?;
    Ok(split)
}

/// Blind-Touch's PolyU protocol without its leak: test = session-1 fingers from index
/// `first_test_finger` on (136 in the paper); training = the other session-1 fingers and
/// the session-2 images of fingers that are not test fingers (the paper also trained on
/// session-2 images of test fingers and sampled impostors across the boundary).
/// `validation_fraction` of the training fingers are held out for validation.
pub fn polyu_blindtouch(
    dataset: &Dataset,
    first_test_finger: usize,
    validation_fraction: f64,
    seed: u64,
) -> Result<Split> {
    if !(0.0..1.0).contains(&validation_fraction) {
        return Err(DatasetError::invalid(
            "split",
            format!("validation fraction {validation_fraction} not in [0, 1)"),
        ));
    }
    let session1: BTreeSet<usize> = dataset
        .samples
        .iter()
        .filter(|s| s.session == 1)
        .map(|s| s.finger)
        .collect();
    let ordered: Vec<usize> = session1.iter().copied().collect();
    if first_test_finger >= ordered.len() {
        return Err(DatasetError::invalid(
            "split",
            format!(
                "first test finger {first_test_finger} but session 1 has {} fingers",
                ordered.len()
            ),
        ));
    }
    let test_fingers: BTreeSet<usize> = ordered[first_test_finger..].iter().copied().collect();
    let mut train_fingers: Vec<usize> = dataset
        .samples
        .iter()
        .map(|s| s.finger)
        .filter(|f| !test_fingers.contains(f))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    train_fingers.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let validation_n = (train_fingers.len() as f64 * validation_fraction).round() as usize;
    let validation_fingers: BTreeSet<usize> =
        train_fingers[..validation_n].iter().copied().collect();

    let mut split = Split::default();
    let mut excluded = 0;
    for (i, s) in dataset.samples.iter().enumerate() {
        if test_fingers.contains(&s.finger) {
            if s.session == 1 {
                split.test.push(i);
            } else {
                excluded += 1;
            }
        } else if validation_fingers.contains(&s.finger) {
            split.validation.push(i);
        } else {
            split.train.push(i);
        }
    }
    split.notes.push(format!(
        "test: session-1 fingers {first_test_finger}..{}; {excluded} session-2 images of test fingers excluded \
         from training (Blind-Touch's split let test fingers leak into training)",
        ordered.len()
    ));
    split.check_disjoint(dataset)?;
    Ok(split)
}

/// A scored pair of samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// First sample.
    pub a: usize,
    /// Second sample (equal to `a` for an augmented-copy genuine pair).
    pub b: usize,
    /// Same finger.
    pub genuine: bool,
    /// `b` is to be augmented before scoring (single-impression datasets).
    pub augment_b: bool,
}

/// Verification pairs within `samples`: every pair of impressions of the same finger
/// (a < b) is genuine; fingers with a single impression contribute an augmented-copy
/// pair; `impostors` random pairs of different fingers are impostor pairs.
pub fn verification_pairs(
    dataset: &Dataset,
    samples: &[usize],
    impostors: usize,
    seed: u64,
) -> Result<Vec<Pair>> {
    let mut by_finger: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in samples {
        by_finger
            .entry(dataset.samples[i].finger)
            .or_default()
            .push(i);
    }
    if by_finger.len() < 2 && impostors > 0 {
        return Err(DatasetError::invalid(
            "pairs",
            "impostor pairs need at least two fingers",
        ));
    }
    let mut pairs = Vec::new();
    for members in by_finger.values() {
        if members.len() == 1 {
            pairs.push(Pair {
                a: members[0],
                b: members[0],
                genuine: true,
                augment_b: true,
            });
        }
        for (x, &a) in members.iter().enumerate() {
            for &b in &members[x + 1..] {
                pairs.push(Pair {
                    a,
                    b,
                    genuine: true,
                    augment_b: false,
                });
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut made = 0;
    while made < impostors {
        let a = samples[rng.random_range(0..samples.len())];
        let b = samples[rng.random_range(0..samples.len())];
        if dataset.samples[a].finger != dataset.samples[b].finger {
            pairs.push(Pair {
                a,
                b,
                genuine: false,
                augment_b: false,
            });
            made += 1;
        }
    }
    Ok(pairs)
}

/// A 1:N identification set: one enrolled sample per gallery finger and probes that are
/// either mated (another impression of a gallery finger) or non-mated (a finger that was
/// never enrolled).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identification {
    /// Enrolled samples, one per gallery finger.
    pub gallery: Vec<usize>,
    /// (probe sample, index into `gallery` of its mate, or None for non-mated).
    pub probes: Vec<(usize, Option<usize>)>,
}

/// Builds an identification set from real impressions in `samples`: a
/// `non_mated_fraction` of fingers is withheld from the gallery and probes with all its
/// impressions; every other finger enrols its first impression and probes with the rest.
pub fn identification(
    dataset: &Dataset,
    samples: &[usize],
    non_mated_fraction: f64,
    seed: u64,
) -> Result<Identification> {
    if !(0.0..1.0).contains(&non_mated_fraction) {
        return Err(DatasetError::invalid(
            "identification",
            format!("non-mated fraction {non_mated_fraction} not in [0, 1)"),
        ));
    }
    let mut by_finger: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in samples {
        if dataset.samples[i].variant == Variant::Real {
            by_finger
                .entry(dataset.samples[i].finger)
                .or_default()
                .push(i);
        }
    }
    let mut fingers: Vec<usize> = by_finger.keys().copied().collect();
    fingers.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let withheld = (fingers.len() as f64 * non_mated_fraction).round() as usize;
    let withheld: BTreeSet<usize> = fingers[..withheld].iter().copied().collect();
    let mut set = Identification::default();
    for (finger, members) in &by_finger {
        if withheld.contains(finger) {
            set.probes.extend(members.iter().map(|&m| (m, None)));
        } else {
            let slot = set.gallery.len();
            set.gallery.push(members[0]);
            set.probes
                .extend(members[1..].iter().map(|&m| (m, Some(slot))));
        }
    }
    if set.gallery.is_empty() {
        return Err(DatasetError::invalid(
            "identification",
            "no finger left to enrol",
        ));
    }
    Ok(set)
}
