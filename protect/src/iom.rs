//! Index-of-Max hashing: cancelable templates (Jin, Hwang, Lai, Kim, Teoh, "Ranking-based
//! locality sensitive hashing-enabled cancelable biometrics: Index-of-Max hashing",
//! IEEE TIFS 13(2), 2018).
//!
//! **Why.** A feature vector x ∈ ℝ^d cannot be revoked: a leaked one identifies its owner
//! for good. IoM stores instead, for each of m hash functions drawn from a per-user
//! [`Token`], only the *index* of the largest of a few random views of x. The index
//! survives small changes of x (it is a ranking, so the scale and most noise do not move
//! it), the stored values are small integers that say little about the magnitudes of x,
//! and a new token draws new functions, so the old template can be revoked and the new
//! one is not linkable to it (measured with [`crate::metrics`]).
//!
//! * [`GrpIom`] — Gaussian random projection: function i has q Gaussian vectors
//!   w_{i,0..q−1}; code_i = argmax_j ⟨w_{i,j}, x⟩ ∈ 0..q.
//! * [`UrpIom`] — uniform random permutation: function i has p permutations π_{i,1..p};
//!   the permuted vectors v_k\[t\] = x[π_{i,k}(t)] are multiplied element-wise, and
//!   code_i = argmax_{t < w} Π_k v_k\[t\] ∈ 0..w (only the first w entries of each
//!   permutation matter, so only those are drawn and stored).
//! * Matching ([`similarity`]): the fraction of the m positions where two codes agree.
//!
//! **Ties** (equal projections or products, e.g. from zero features) go to the lowest
//! index, so hashing is a function of x alone.
//!
//! **Randomness.** The functions are a pure function of (token, scheme, d and the
//! per-function sizes): a ChaCha20 stream keyed by SHA-256 of those, Gaussians by
//! Box–Muller, permutations by partial Fisher–Yates (see `rng.rs`); they do not depend
//! on m, so the first m functions of a larger m are the same. Projections are stored as
//! `f32` and products and dot products accumulate in `f64`.
//!
//! The paper's face presets for 512-d embeddings: GRP m = 300, q = 16; URP m = 600,
//! w = 100, p = 2.

use serde::{Deserialize, Serialize};

use crate::rng::{permutation_prefix, stream, Gaussian};
use crate::{Error, Result};

/// Most hash functions in one template.
pub const MAX_FUNCTIONS: usize = 100_000;
/// Largest accepted feature dimension.
pub const MAX_DIM: usize = 65_536;
/// Largest q (GRP) or w (URP): code values are stored as `u16`.
pub const MAX_CHOICES: usize = 65_536;
/// Most permutations multiplied per URP function.
pub const MAX_P: usize = 16;
/// Most numbers (projection entries or permutation indices) one hasher materialises
/// (2²⁶: 256 MiB of `f32`).
pub const MAX_ELEMENTS: usize = 1 << 26;

const GRP_DOMAIN: &str = "touchstone/protect/iom/grp/v1";
const URP_DOMAIN: &str = "touchstone/protect/iom/urp/v1";

/// A user's secret seed: it draws the hash functions. Issue a new one to revoke a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token(pub u64);

/// An IoM template: one index per hash function.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Code(pub Vec<u16>);

impl Code {
    /// Number of hash functions m.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a code of no functions (never produced by a hasher).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Template size in bytes as stored (two per index).
    pub fn bytes(&self) -> usize {
        2 * self.0.len()
    }
}

/// Collision count / m: the fraction of hash functions on which the two codes agree, in
/// [0, 1]; higher is more similar. Codes of different lengths (or empty) are an error.
pub fn similarity(a: &Code, b: &Code) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::Input(format!(
            "IoM codes of different lengths ({} and {})",
            a.len(),
            b.len()
        )));
    }
    if a.is_empty() {
        return Err(Error::Input("empty IoM codes".into()));
    }
    let equal = a.0.iter().zip(&b.0).filter(|(x, y)| x == y).count();
    Ok(equal as f64 / a.len() as f64)
}

fn check_features(x: &[f32], d: usize) -> Result<()> {
    if x.len() != d {
        return Err(Error::Input(format!(
            "feature vector has {} values, the hasher expects {d}",
            x.len()
        )));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "feature {i} is not finite ({})",
            x[i]
        )));
    }
    Ok(())
}

fn check_m_d(m: usize, d: usize) -> Result<()> {
    if !(1..=MAX_FUNCTIONS).contains(&m) {
        return Err(Error::Params(format!(
            "m = {m} hash functions; must be 1..={MAX_FUNCTIONS}"
        )));
    }
    if !(1..=MAX_DIM).contains(&d) {
        return Err(Error::Params(format!(
            "feature dimension d = {d}; must be 1..={MAX_DIM}"
        )));
    }
    Ok(())
}

fn check_elements(what: &str, factors: &[usize]) -> Result<usize> {
    let total = factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .filter(|&t| t <= MAX_ELEMENTS);
    total.ok_or_else(|| {
        Error::Params(format!(
            "{what} would hold {} numbers; at most {MAX_ELEMENTS}",
            factors
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(" × ")
        ))
    })
}

/// Index of the largest value, the lowest index on ties (NaN is never chosen).
fn argmax(values: impl Iterator<Item = f64>) -> u16 {
    let mut best = f64::NEG_INFINITY;
    let mut index = 0usize;
    for (j, v) in values.enumerate() {
        if v > best {
            best = v;
            index = j;
        }
    }
    index as u16
}

/// GRP-IoM parameters: m hash functions of q Gaussian projections each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpIom {
    /// Hash functions (code length), 1..=[`MAX_FUNCTIONS`].
    pub m: usize,
    /// Projections per function (code alphabet), 2..=[`MAX_CHOICES`].
    pub q: usize,
}

impl GrpIom {
    /// Validated parameters.
    pub fn new(m: usize, q: usize) -> Result<Self> {
        let p = GrpIom { m, q };
        p.validate()?;
        Ok(p)
    }

    /// Checks m and q (not d, which comes with the data).
    pub fn validate(&self) -> Result<()> {
        check_m_d(self.m, 1)?;
        if !(2..=MAX_CHOICES).contains(&self.q) {
            return Err(Error::Params(format!(
                "GRP q = {} projections per function; must be 2..={MAX_CHOICES}",
                self.q
            )));
        }
        Ok(())
    }

    /// Draws the hash functions of `token` for d-dimensional features.
    pub fn hasher(&self, token: Token, d: usize) -> Result<GrpHasher> {
        self.validate()?;
        check_m_d(self.m, d)?;
        let n = check_elements("GRP projections (m × q × d)", &[self.m, self.q, d])?;
        let mut gauss = Gaussian::new(stream(GRP_DOMAIN, &[token.0, d as u64, self.q as u64]));
        let w = (0..n).map(|_| gauss.next() as f32).collect();
        Ok(GrpHasher {
            m: self.m,
            q: self.q,
            d,
            w,
        })
    }

    /// Hashes one vector (draws the functions each call: keep a [`GrpHasher`] for many).
    pub fn hash(&self, token: Token, x: &[f32]) -> Result<Code> {
        self.hasher(token, x.len())?.hash(x)
    }
}

/// The drawn GRP functions of one token: m × q projection vectors of length d.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpHasher {
    m: usize,
    q: usize,
    d: usize,
    /// Row-major `[i][j][k]`: function i, projection j, coordinate k.
    w: Vec<f32>,
}

impl GrpHasher {
    /// Hasher from explicit projections, laid out `[i][j][k]` (function, projection,
    /// coordinate): for tests and for functions drawn elsewhere.
    pub fn from_parts(m: usize, q: usize, d: usize, w: Vec<f32>) -> Result<Self> {
        GrpIom::new(m, q)?;
        check_m_d(m, d)?;
        let n = check_elements("GRP projections (m × q × d)", &[m, q, d])?;
        if w.len() != n {
            return Err(Error::Input(format!(
                "{} projection values given; m × q × d = {n}",
                w.len()
            )));
        }
        if w.iter().any(|v| !v.is_finite()) {
            return Err(Error::Input("projection values must be finite".into()));
        }
        Ok(GrpHasher { m, q, d, w })
    }

    /// (m, q, d).
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.m, self.q, self.d)
    }

    /// Projection vector j of function i (`None` out of range).
    pub fn projection(&self, i: usize, j: usize) -> Option<&[f32]> {
        (i < self.m && j < self.q).then(|| &self.w[(i * self.q + j) * self.d..][..self.d])
    }

    /// code_i = argmax_j ⟨w_{i,j}, x⟩ (lowest j on ties).
    pub fn hash(&self, x: &[f32]) -> Result<Code> {
        check_features(x, self.d)?;
        let codes = self
            .w
            .chunks_exact(self.q * self.d)
            .map(|function| {
                argmax(function.chunks_exact(self.d).map(|w| {
                    w.iter()
                        .zip(x)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum()
                }))
            })
            .collect();
        Ok(Code(codes))
    }
}

/// URP-IoM parameters: m functions, each the argmax over the first w entries of the
/// element-wise product of p permutations of x.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrpIom {
    /// Hash functions (code length), 1..=[`MAX_FUNCTIONS`].
    pub m: usize,
    /// Window: entries compared per function, 1..=d (and ≤ [`MAX_CHOICES`]).
    pub w: usize,
    /// Permutations multiplied per function, 1..=[`MAX_P`].
    pub p: usize,
}

impl UrpIom {
    /// Validated parameters (w ≤ d is checked when d is known).
    pub fn new(m: usize, w: usize, p: usize) -> Result<Self> {
        let u = UrpIom { m, w, p };
        u.validate()?;
        Ok(u)
    }

    /// Checks m, w and p (w against d in [`UrpIom::hasher`]).
    pub fn validate(&self) -> Result<()> {
        check_m_d(self.m, 1)?;
        if !(1..=MAX_CHOICES).contains(&self.w) {
            return Err(Error::Params(format!(
                "URP window w = {}; must be 1..=min(d, {MAX_CHOICES})",
                self.w
            )));
        }
        if !(1..=MAX_P).contains(&self.p) {
            return Err(Error::Params(format!(
                "URP p = {} permutations per function; must be 1..={MAX_P}",
                self.p
            )));
        }
        Ok(())
    }

    fn check_window(&self, d: usize) -> Result<()> {
        if self.w > d {
            return Err(Error::Params(format!(
                "URP window w = {} exceeds the feature dimension d = {d}",
                self.w
            )));
        }
        Ok(())
    }

    /// Draws the permutations of `token` for d-dimensional features.
    pub fn hasher(&self, token: Token, d: usize) -> Result<UrpHasher> {
        self.validate()?;
        check_m_d(self.m, d)?;
        self.check_window(d)?;
        let n = check_elements(
            "URP permutation prefixes (m × p × w)",
            &[self.m, self.p, self.w],
        )?;
        let mut rng = stream(
            URP_DOMAIN,
            &[token.0, d as u64, self.w as u64, self.p as u64],
        );
        let mut perms = Vec::with_capacity(n);
        let mut scratch = Vec::with_capacity(d);
        for _ in 0..self.m * self.p {
            permutation_prefix(&mut rng, d, self.w, &mut scratch, &mut perms);
        }
        Ok(UrpHasher {
            m: self.m,
            w: self.w,
            p: self.p,
            d,
            perms,
        })
    }

    /// Hashes one vector (draws the functions each call: keep a [`UrpHasher`] for many).
    pub fn hash(&self, token: Token, x: &[f32]) -> Result<Code> {
        self.hasher(token, x.len())?.hash(x)
    }
}

/// The drawn URP functions of one token: for each of m functions, p permutation
/// prefixes of length w.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrpHasher {
    m: usize,
    w: usize,
    p: usize,
    d: usize,
    /// `[i][k][t]`: function i, permutation k, position t < w; the value is π(t).
    perms: Vec<u32>,
}

impl UrpHasher {
    /// Hasher from explicit permutations: `perms` holds, for each function i and
    /// permutation k (layout `[i][k][t]`), the first w values π_{i,k}(0..w) — distinct
    /// indices below d (a full permutation's prefix).
    pub fn from_parts(m: usize, w: usize, p: usize, d: usize, perms: Vec<u32>) -> Result<Self> {
        let u = UrpIom::new(m, w, p)?;
        check_m_d(m, d)?;
        u.check_window(d)?;
        let n = check_elements("URP permutation prefixes (m × p × w)", &[m, p, w])?;
        if perms.len() != n {
            return Err(Error::Input(format!(
                "{} permutation values given; m × p × w = {n}",
                perms.len()
            )));
        }
        let mut seen = vec![usize::MAX; d];
        for (r, prefix) in perms.chunks_exact(w).enumerate() {
            for &v in prefix {
                let v = v as usize;
                if v >= d {
                    return Err(Error::Input(format!(
                        "permutation {r} maps to {v}, outside 0..{d}"
                    )));
                }
                if seen[v] == r {
                    return Err(Error::Input(format!("permutation {r} repeats index {v}")));
                }
                seen[v] = r;
            }
        }
        Ok(UrpHasher { m, w, p, d, perms })
    }

    /// (m, w, p, d).
    pub fn shape(&self) -> (usize, usize, usize, usize) {
        (self.m, self.w, self.p, self.d)
    }

    /// The first w values of permutation k of function i (`None` out of range).
    pub fn permutation(&self, i: usize, k: usize) -> Option<&[u32]> {
        (i < self.m && k < self.p).then(|| &self.perms[(i * self.p + k) * self.w..][..self.w])
    }

    /// code_i = argmax_{t < w} Π_k x[π_{i,k}(t)] (lowest t on ties).
    pub fn hash(&self, x: &[f32]) -> Result<Code> {
        check_features(x, self.d)?;
        let codes = self
            .perms
            .chunks_exact(self.p * self.w)
            .map(|function| {
                argmax((0..self.w).map(|t| {
                    function
                        .chunks_exact(self.w)
                        .map(|perm| f64::from(x[perm[t] as usize]))
                        .product()
                }))
            })
            .collect();
        Ok(Code(codes))
    }
}
