//! The one exactness check: an encrypted scheme's decrypted scores must equal
//! [`quantize::integer_score`](crate::quantize::integer_score) of the quantized query and
//! template for every user, and its decision and ranking must equal the plaintext ones.
//! The `touchstone match` command, the harness (accuracy and latency runs), the GPU bench
//! and the tests all check through [`Reference`] and [`Tally`], so "exact" means the same
//! thing everywhere.

use crate::error::{ProtocolError, Result};
use crate::outcome::{Decision, MatchOutcome};
use crate::quantize::QuantizedModel;
use crate::workload::Workload;

/// The plaintext integer reference for one enrolled gallery.
pub struct Reference {
    model: QuantizedModel,
    gallery: Vec<Vec<i64>>,
}

impl Reference {
    /// Quantizes `gallery` with `model` once.
    pub fn new(model: &QuantizedModel, gallery: &[Vec<f32>]) -> Self {
        Self {
            model: model.clone(),
            gallery: gallery.iter().map(|t| model.quantize(t)).collect(),
        }
    }

    /// The reference for a workload's gallery and integer head.
    pub fn of(workload: &Workload) -> Self {
        Self::new(&workload.quantized, &workload.gallery)
    }

    /// Every user's exact integer score for `probe`.
    pub fn scores(&self, probe: &[f32]) -> Vec<i64> {
        let q = self.model.quantize(probe);
        self.gallery
            .iter()
            .map(|r| self.model.score(&q, r))
            .collect()
    }

    /// The plaintext decision and ranking for `probe`.
    pub fn decision(&self, scores: &[i64]) -> Decision {
        Decision::from_integers(scores, self.model.threshold_score)
    }
}

/// The first score that differed, for the error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Which probe (in the order checked).
    pub probe: usize,
    /// Which user.
    pub user: usize,
    /// The plaintext integer score.
    pub expected: i64,
    /// What the scheme returned.
    pub got: i64,
}

/// Running totals of exactness checks over many probes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Probes checked.
    pub probes: usize,
    /// Individual scores compared.
    pub scores_checked: u64,
    /// Scores that differed.
    pub scores_differing: u64,
    /// Probes whose decision or ranking differed.
    pub decisions_differing: usize,
    /// Probes whose outcome carried no integer scores or the wrong number of them.
    pub malformed: usize,
    /// The first differing score.
    pub first_mismatch: Option<Mismatch>,
}

impl Tally {
    /// Compares one outcome with the reference for `probe`.
    pub fn check(&mut self, reference: &Reference, probe: &[f32], outcome: &MatchOutcome) {
        let expected = reference.scores(probe);
        let index = self.probes;
        self.probes += 1;
        let got = match outcome.scores.integers() {
            Some(got) if got.len() == expected.len() => got,
            _ => {
                self.malformed += 1;
                return;
            }
        };
        self.scores_checked += expected.len() as u64;
        for (user, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            if g != e {
                self.scores_differing += 1;
                self.first_mismatch.get_or_insert(Mismatch {
                    probe: index,
                    user,
                    expected: e,
                    got: g,
                });
            }
        }
        if outcome.decision != reference.decision(&expected) {
            self.decisions_differing += 1;
        }
    }

    /// Adds another tally's counts (the first mismatch of `self` wins).
    pub fn merge(&mut self, other: &Tally) {
        if self.first_mismatch.is_none() {
            self.first_mismatch = other.first_mismatch.clone().map(|mut m| {
                m.probe += self.probes;
                m
            });
        }
        self.probes += other.probes;
        self.scores_checked += other.scores_checked;
        self.scores_differing += other.scores_differing;
        self.decisions_differing += other.decisions_differing;
        self.malformed += other.malformed;
    }

    /// True when something was checked and nothing differed.
    pub fn is_exact(&self) -> bool {
        self.probes > 0
            && self.scores_differing == 0
            && self.decisions_differing == 0
            && self.malformed == 0
    }

    /// `Ok` when exact; otherwise an error that says what differed, first of all where.
    pub fn require_exact(&self, what: &str) -> Result<()> {
        if self.is_exact() {
            return Ok(());
        }
        if self.probes == 0 {
            return Err(ProtocolError::Input(format!(
                "{what}: no probe was checked, so exactness is unknown"
            )));
        }
        let first = self.first_mismatch.as_ref().map_or(String::new(), |m| {
            format!(
                "; first: probe {} user {} decrypted {} instead of {}",
                m.probe, m.user, m.got, m.expected
            )
        });
        Err(ProtocolError::Input(format!(
            "{what}: NOT EXACT — {} of {} decrypted scores differ from the plaintext integer scores, \
             {} of {} decisions or rankings differ, {} outcomes malformed{first}",
            self.scores_differing,
            self.scores_checked,
            self.decisions_differing,
            self.probes,
            self.malformed
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Scores, StageTimings, Traffic};
    use crate::quantize::{MatchModel, Quantizer};

    fn outcome(scores: Vec<i64>, threshold: i64) -> MatchOutcome {
        MatchOutcome {
            decision: Decision::from_integers(&scores, threshold),
            scores: Scores::Integer(scores),
            timings: StageTimings::default(),
            traffic: Traffic::default(),
            noise_budget_bits: None,
        }
    }

    #[test]
    fn a_single_wrong_score_is_caught_and_located() {
        let model = MatchModel {
            weights: vec![-1.0, 0.5],
            bias: 0.0,
            threshold: 0.5,
        };
        let q = QuantizedModel::new(&model, Quantizer::new(8, 10.0).unwrap(), 8).unwrap();
        let gallery = vec![vec![0.1, 0.2], vec![-0.3, 0.4], vec![1.0, -1.0]];
        let reference = Reference::new(&q, &gallery);
        let probe = [0.2f32, 0.1];
        let good = reference.scores(&probe);
        let mut tally = Tally::default();
        tally.check(
            &reference,
            &probe,
            &outcome(good.clone(), q.threshold_score),
        );
        assert!(tally.is_exact());
        assert_eq!(tally.scores_checked, 3);

        let mut bad = good.clone();
        bad[2] += 1;
        tally.check(&reference, &probe, &outcome(bad, q.threshold_score));
        assert!(!tally.is_exact());
        assert_eq!(
            tally.first_mismatch,
            Some(Mismatch {
                probe: 1,
                user: 2,
                expected: good[2],
                got: good[2] + 1
            })
        );
        let e = tally.require_exact("columnar").unwrap_err().to_string();
        assert!(e.contains("NOT EXACT") && e.contains("1 of 6"), "{e}");

        let mut short = Tally::default();
        short.check(&reference, &probe, &outcome(good[..2].to_vec(), 0));
        assert!(!short.is_exact() && short.malformed == 1);
        assert!(
            Tally::default().require_exact("x").is_err(),
            "nothing checked"
        );
    }
}
