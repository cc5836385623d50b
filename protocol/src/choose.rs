//! Choosing the parameter set: the cheapest built-in set (smallest N, then smallest Q)
//! that is 128-bit secure, whose plaintext modulus holds every score the model can make,
//! and whose noise budget — measured by decrypting a trial match with the client's own
//! secret key, never estimated — keeps at least [`MARGIN_BITS`] in hand.
//!
//! Why measure: the budget a layout leaves depends on its circuit (key switching,
//! rotations, products) in ways a formula would only approximate, while a trial is cheap
//! at the sizes the candidates have (a few users, one probe) and is the same code path
//! the real runs take. The trial also checks its own scores against the plaintext
//! integers, so a set that decrypts wrongly is refused whatever its budget says.

use crate::engine::ColumnarEngine;
use crate::error::{ProtocolError, Result};
use crate::exactness::{Reference, Tally};
use crate::messages::Layout;
use crate::params::ParamSpec;
use crate::quantize::QuantizedModel;
use crate::roles::Client;
use crate::scheme::{EncryptedMatcher, Matcher, SchemeKind};
use crate::workload::{SyntheticSpec, Workload};
use std::sync::Arc;

/// The smallest noise budget (bits) a chosen set must leave after a trial match. Budgets
/// of one set vary by about a bit between keys and data; 10 bits keeps every run far
/// from a wrong decryption.
pub const MARGIN_BITS: f64 = 10.0;

/// Users and probes of the trial match.
const TRIAL_USERS: usize = 24;
const TRIAL_PROBES: usize = 2;

/// What the trial said about one candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Chosen: the first candidate that passed; its measured budget.
    Chosen(f64),
    /// Refused, and why (insecure, t too small, budget below the margin, not exact, …).
    Refused(String),
    /// Not tried: a cheaper candidate was chosen first.
    NotTried,
}

/// One candidate set and its verdict.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The preset.
    pub spec: ParamSpec,
    /// N.
    pub degree: usize,
    /// log₂ Q (0 when the set did not build).
    pub log2_q: f64,
    /// What the trial said.
    pub verdict: Verdict,
}

/// The chosen set and every candidate considered, cheapest first.
#[derive(Clone, Debug)]
pub struct Choice {
    /// The chosen preset.
    pub spec: ParamSpec,
    /// All candidates, in the order they were considered.
    pub candidates: Vec<Candidate>,
}

/// The cheapest built-in set for `layout` and `model` (see the module comment), or an
/// error listing why each candidate was refused.
pub fn choose(layout: Layout, model: &QuantizedModel) -> Result<Choice> {
    let mut candidates: Vec<Candidate> = ParamSpec::presets()
        .into_iter()
        .map(|spec| {
            let (degree, log2_q) = match spec.build() {
                Ok(p) => (p.degree(), p.log2_q()),
                Err(_) => (spec.degree, 0.0),
            };
            Candidate {
                spec,
                degree,
                log2_q,
                verdict: Verdict::NotTried,
            }
        })
        .collect();
    candidates.sort_by(|a, b| {
        (a.degree, a.log2_q)
            .partial_cmp(&(b.degree, b.log2_q))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut chosen = None;
    for c in candidates.iter_mut() {
        c.verdict = match trial(&c.spec, layout, model) {
            Ok(budget) if budget >= MARGIN_BITS => {
                chosen = Some(c.spec.clone());
                Verdict::Chosen(budget)
            }
            Ok(budget) => Verdict::Refused(format!(
                "noise budget {budget:.1} bits after a trial match, below the {MARGIN_BITS}-bit margin"
            )),
            Err(e) => Verdict::Refused(e.to_string()),
        };
        if chosen.is_some() {
            break;
        }
    }
    match chosen {
        Some(spec) => Ok(Choice { spec, candidates }),
        None => {
            let why: Vec<String> = candidates
                .iter()
                .map(|c| match &c.verdict {
                    Verdict::Refused(why) => format!("{}: {why}", c.spec.name),
                    _ => format!("{}: not tried", c.spec.name),
                })
                .collect();
            Err(ProtocolError::params(
                "auto",
                format!(
                    "no built-in set fits this layout and model: {}",
                    why.join("; ")
                ),
            ))
        }
    }
}

/// The layout of an encrypted scheme (None for the plaintext ones).
pub fn layout_of(kind: SchemeKind, encrypted_weights: bool) -> Option<Layout> {
    match kind {
        SchemeKind::BlindTouch => Some(Layout::BlindTouch { encrypted_weights }),
        SchemeKind::Columnar => Some(Layout::Columnar),
        _ => None,
    }
}

/// One line per candidate: name, N, log₂ Q and the verdict.
pub fn describe(candidates: &[Candidate]) -> Vec<String> {
    candidates
        .iter()
        .map(|c| {
            let verdict = match &c.verdict {
                Verdict::Chosen(b) => {
                    format!("chosen: noise budget {b:.1} bits after a trial match")
                }
                Verdict::Refused(why) => format!("refused: {why}"),
                Verdict::NotTried => "not tried (a cheaper set was chosen)".into(),
            };
            format!(
                "{} (N {}, log2 Q {:.1}): {verdict}",
                c.spec.name, c.degree, c.log2_q
            )
        })
        .collect()
}

/// Builds `spec`, checks security and the score bound (in `Client::new`), runs a trial
/// match and returns the smallest budget left in any result ciphertext.
fn trial(spec: &ParamSpec, layout: Layout, model: &QuantizedModel) -> Result<f64> {
    let params = spec.build()?;
    if params.insecure() {
        return Err(ProtocolError::params(
            spec.name.as_str(),
            "not 128-bit secure",
        ));
    }
    let client = Arc::new(Client::new(params, layout, model.clone())?);
    let engine = match layout {
        Layout::Columnar => ColumnarEngine::Cpu,
        Layout::BlindTouch { .. } => ColumnarEngine::Fhe,
    };
    let mut matcher = EncryptedMatcher::with_engine(client, 1, true, engine)?;
    let mut shape = SyntheticSpec::new(TRIAL_USERS, TRIAL_PROBES, 7);
    shape.features = model.features();
    let mut workload = Workload::synthetic(&shape)?;
    workload.quantized = model.clone();
    matcher.enrol(&workload.gallery)?;
    let reference = Reference::of(&workload);
    let mut tally = Tally::default();
    let mut worst = f64::INFINITY;
    for probe in &workload.probes {
        let outcome = matcher.identify(&probe.template)?;
        tally.check(&reference, &probe.template, &outcome);
        worst = worst.min(outcome.noise_budget_bits.unwrap_or(f64::NEG_INFINITY));
    }
    if !tally.is_exact() {
        return Err(ProtocolError::params(
            spec.name.as_str(),
            format!(
                "a trial match decrypts wrongly ({} of {} scores differ): the noise outgrows this set",
                tally.scores_differing, tally.scores_checked
            ),
        ));
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(bits: u32) -> QuantizedModel {
        let mut shape = SyntheticSpec::new(4, 1, 3);
        shape.bits = bits;
        Workload::synthetic(&shape).unwrap().quantized
    }

    #[test]
    fn columnar_gets_the_smallest_columnar_set_and_blindtouch_its_own() {
        let c = choose(Layout::Columnar, &model(8)).unwrap();
        assert_eq!(c.spec.name, "col-4096");
        let chosen: Vec<&Candidate> = c
            .candidates
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Chosen(_)))
            .collect();
        assert_eq!(chosen.len(), 1);
        let Verdict::Chosen(budget) = chosen[0].verdict else {
            unreachable!()
        };
        assert!(budget >= MARGIN_BITS, "{budget}");
        // Cheapest first: nothing before the chosen one is cheaper and passed.
        assert_eq!(c.candidates[0].degree, 4096);

        let b = choose(
            Layout::BlindTouch {
                encrypted_weights: false,
            },
            &model(8),
        )
        .unwrap();
        assert_eq!(b.spec.name, "bt-8192");
        let refused: Vec<&str> = b
            .candidates
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Refused(_)))
            .map(|c| c.spec.name.as_str())
            .collect();
        // The 4096 set cannot hold Blind-Touch's circuit; col-8192 neither (smaller Q):
        // their trial matches decrypt wrongly, and are refused for it.
        assert_eq!(refused, ["col-4096", "col-8192"]);
        assert!(b.candidates.iter().all(|c| match &c.verdict {
            Verdict::Refused(why) => why.contains("decrypts wrongly"),
            _ => true,
        }));
    }

    #[test]
    fn a_model_whose_scores_no_set_holds_is_refused_naming_every_candidate() {
        let e = choose(Layout::Columnar, &model(12))
            .unwrap_err()
            .to_string();
        for p in ParamSpec::presets() {
            assert!(e.contains(&format!("{}:", p.name)), "{e}");
        }
        assert!(e.contains("cannot hold scores up to"), "{e}");
    }
}
