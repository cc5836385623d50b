//! The homomorphic circuits a cluster server runs on its shard.
//!
//! Inputs are checked by the caller (same parameters `Arc`, top level, two components),
//! so the fhe.rs operator overloads, which assert on mismatches, cannot panic here.

use crate::error::{ProtocolError, Result};
use crate::layout::BlindTouchLayout;
use crate::messages::Setup;
use crate::params::Params;
use fhe::bfv::{BfvParameters, Ciphertext, Encoding, EvaluationKey, Plaintext, RelinearizationKey};
use fhe_math::rq::{Poly, Representation};
use fhe_traits::FheEncoder;
use std::sync::Arc;

/// A multiplier that is either public (plaintext) or, in Blind-Touch's faithful mode,
/// encrypted (ciphertext × ciphertext, then relinearize).
enum Factor {
    Plain(Plaintext),
    Encrypted(Ciphertext),
}

impl Factor {
    fn apply(&self, ct: &Ciphertext, rk: &RelinearizationKey) -> Result<Ciphertext> {
        match self {
            Factor::Plain(pt) => Ok(ct * pt),
            Factor::Encrypted(other) => {
                let mut product = ct * other;
                rk.relinearizes(&mut product)?;
                Ok(product)
            }
        }
    }
}

fn missing(what: &str) -> ProtocolError {
    ProtocolError::state("cluster server", format!("setup lacks the {what}"))
}

/// Blind-Touch's circuit for one 512-user gallery ciphertext R_k and the repeated query Q:
/// D = Q − R; D² (relinearize); × w̃; rotate-and-add by 1, 2, 4, 8; × mask; rotate right
/// by k mod 16 so the main server can add up to 16 of these into one ciphertext.
pub struct BlindTouchEvaluator {
    layout: BlindTouchLayout,
    relin_key: RelinearizationKey,
    rotation_keys: EvaluationKey,
    weights: Factor,
    mask: Factor,
}

impl BlindTouchEvaluator {
    /// Takes the keys and weights out of a setup message.
    pub fn new(params: &Params, setup: Setup) -> Result<Self> {
        let layout = BlindTouchLayout::new(params.degree(), setup.features)?;
        let par = params.bfv();
        let relin_key = setup
            .relin_key
            .ok_or_else(|| missing("relinearization key"))?;
        let rotation_keys = setup
            .rotation_keys
            .ok_or_else(|| missing("rotation keys"))?;
        if let Some(r) = layout
            .rotations_needed()
            .into_iter()
            .find(|&r| !rotation_keys.supports_column_rotation_by(r))
        {
            return Err(ProtocolError::state(
                "cluster server",
                format!("the rotation keys do not support a column rotation by {r}"),
            ));
        }
        let (weights, mask) = match (setup.weights, setup.encrypted) {
            (_, Some((w, m))) => (Factor::Encrypted(w), Factor::Encrypted(m)),
            (Some(w), None) => (
                Factor::Plain(simd(&layout.repeat(&w)?, par)?),
                Factor::Plain(simd(&layout.mask(), par)?),
            ),
            (None, None) => return Err(missing("weights")),
        };
        let evaluator = Self {
            layout,
            relin_key,
            rotation_keys,
            weights,
            mask,
        };
        evaluator.self_test(par)?;
        Ok(evaluator)
    }

    /// The slot layout.
    pub fn layout(&self) -> &BlindTouchLayout {
        &self.layout
    }

    /// Runs the whole circuit once on zero ciphertexts, with every rotation the main
    /// server's compression needs. fhe.rs deserializes keys without checking their inner
    /// polynomials' representations or levels and asserts on them only when a key is used:
    /// exercising every key path here turns such a key into a refused setup instead of a
    /// panic at the first query. (The paths do not depend on the data, so a key that passes
    /// here cannot fail later.)
    fn self_test(&self, par: &Arc<BfvParameters>) -> Result<()> {
        let run = || -> Result<()> {
            let ctx = par.context_at_level(0)?;
            let zero = || Poly::zero(ctx, Representation::Ntt);
            let ct = Ciphertext::new(vec![zero(), zero()], par)?;
            let evaluated = self.evaluate(&ct, &ct, 0)?;
            for offset in 1..self.layout.features() {
                self.rotation_keys
                    .rotates_columns_by(&evaluated, self.layout.right_rotation(offset))?;
            }
            Ok(())
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(result) => result.map_err(|e| {
                ProtocolError::wire("setup", format!("the evaluation keys do not work: {e}"))
            }),
            Err(_) => Err(ProtocolError::wire(
                "setup",
                "the evaluation keys are malformed (fhe.rs refused to use them)",
            )),
        }
    }

    /// Scores of gallery ciphertext `k` (at slot d·u + k mod d for its user u).
    pub fn evaluate(
        &self,
        query: &Ciphertext,
        gallery: &Ciphertext,
        k: usize,
    ) -> Result<Ciphertext> {
        let diff = query - gallery;
        let mut square = &diff * &diff;
        self.relin_key.relinearizes(&mut square)?;
        let mut sum = self.weights.apply(&square, &self.relin_key)?;
        for step in self.layout.sum_rotations() {
            let rotated = self.rotation_keys.rotates_columns_by(&sum, step)?;
            sum += &rotated;
        }
        let masked = self.mask.apply(&sum, &self.relin_key)?;
        let (_, offset) = self.layout.placement(k);
        if offset == 0 {
            Ok(masked)
        } else {
            Ok(self
                .rotation_keys
                .rotates_columns_by(&masked, self.layout.right_rotation(offset))?)
        }
    }
}

/// The columnar circuit: Σⱼ w̃ⱼ · (Qⱼ − R_{g,j}) ⊗ (Qⱼ − R_{g,j}) with tensor products only;
/// the result keeps 3 components and the client decrypts it with (1, s, s²).
pub struct ColumnarEvaluator {
    /// |w̃ⱼ| as a constant polynomial, and whether w̃ⱼ is negative. Encoding a negative
    /// weight as (w mod t) would multiply the noise by ~t and destroy every slot.
    weights: Vec<(Plaintext, bool)>,
}

impl ColumnarEvaluator {
    /// Takes the weights out of a setup message.
    pub fn new(params: &Params, setup: Setup) -> Result<Self> {
        let weights = setup.weights.ok_or_else(|| missing("weights"))?;
        let weights = weights
            .iter()
            .map(|&w| {
                let pt =
                    Plaintext::try_encode(&[w.unsigned_abs()], Encoding::poly(), params.bfv())?;
                Ok((pt, w < 0))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { weights })
    }

    /// Number of features (query ciphertexts expected).
    pub fn features(&self) -> usize {
        self.weights.len()
    }

    /// One term w̃ⱼ · (Qⱼ − R)⊗(Qⱼ − R), signed.
    pub fn term(
        &self,
        query: &Ciphertext,
        gallery: &Ciphertext,
        feature: usize,
    ) -> Result<(Ciphertext, bool)> {
        let (abs_weight, negative) = self.weights.get(feature).ok_or_else(|| {
            ProtocolError::Layout(format!(
                "gallery ciphertext for feature {feature}, but the model has {} features",
                self.weights.len()
            ))
        })?;
        let diff = query - gallery;
        let product = &diff * &diff;
        Ok((&product * abs_weight, *negative))
    }
}

/// Adds signed terms; None when there are none.
pub fn signed_sum(terms: impl IntoIterator<Item = (Ciphertext, bool)>) -> Option<Ciphertext> {
    let mut acc: Option<Ciphertext> = None;
    for (term, negative) in terms {
        acc = Some(match (acc, negative) {
            (None, false) => term,
            (None, true) => -term,
            (Some(a), false) => a + &term,
            (Some(a), true) => a - &term,
        });
    }
    acc
}

fn simd(values: &[i64], par: &Arc<BfvParameters>) -> Result<Plaintext> {
    Ok(Plaintext::try_encode(values, Encoding::simd(), par)?)
}
