//! Exact basis conversions in mixed radix (Garner).
//!
//! A residue vector over a basis m₀…m_{L−1} is turned into the digits of its value
//! r = d₀ + m₀(d₁ + m₁(d₂ + …)) ∈ [0, M), from which r mod any other prime is a Horner
//! evaluation and the comparison with M/2 a lexicographic one. Unlike the floating-point
//! fast base conversions (HPS, BEHZ) this never adds a multiple of M, so the extension is
//! exact and the scale-and-round needs no correction; with the 2–5 primes BFV matching
//! uses, the O(L²) digit loop is a handful of Shoup products per coefficient.

use crate::arith::{Constant, Modulus};
use crate::KernelError;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Largest basis the fixed-size digit buffers hold.
pub const MAX_LIMBS: usize = 12;

/// Garner digits for one basis, and Horner constants into one set of target primes.
#[derive(Clone, Debug)]
pub struct MixedRadix {
    moduli: Vec<Modulus>,
    /// (m₀⋯m_{i−1})⁻¹ mod mᵢ, for i ≥ 1.
    prefix_inv: Vec<Constant>,
    /// mₖ mod mᵢ for k < i, row i.
    within: Vec<Vec<Constant>>,
    /// Digits of ⌊M/2⌋, to tell the upper half (negative values) apart.
    half: Vec<u64>,
    /// For each target prime: mₖ mod target, and M mod target.
    targets: Vec<(Modulus, Vec<Constant>, u64)>,
    /// Per target: every digit is already below it (no reduction needed in Horner).
    digits_fit: Vec<bool>,
    /// How digit k is brought below mᵢ (row i) and below target j (`target_fit[j][k]`) in
    /// the blocked conversions.
    within_fit: Vec<Vec<Fit>>,
    target_fit: Vec<Vec<Fit>>,
}

/// What reducing a digit dₖ < mₖ modulo another prime m takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// mₖ ≤ m: already reduced.
    Below,
    /// mₖ ≤ 2m: one conditional subtraction.
    Twice,
    /// Anything else: a Shoup reduction.
    Any,
}

impl Fit {
    fn of(from: u64, to: u64) -> Self {
        if from <= to {
            Self::Below
        } else if from <= 2 * to {
            // A digit below `from` is then below 2·to (to < 2⁶², no overflow).
            Self::Twice
        } else {
            Self::Any
        }
    }

    #[inline(always)]
    fn reduce(self, d: u64, m: &Modulus) -> u64 {
        match self {
            Self::Below => d,
            Self::Twice => m.reduce_once(d),
            Self::Any => m.reduce(d),
        }
    }
}

/// Coefficients converted together by the blocked conversions: their digits stay in the L1
/// cache, and each step is a loop over independent coefficients (no chain through one
/// coefficient's digits), which is what keeps the multipliers busy.
pub const BLOCK: usize = 64;

/// Digits of [`BLOCK`] coefficients, row k = digit k.
pub type DigitBlock = [[u64; BLOCK]; MAX_LIMBS];

impl MixedRadix {
    /// Digits over `basis`, Horner constants into `targets`.
    pub fn new(basis: &[u64], targets: &[u64]) -> Result<Self, KernelError> {
        if basis.is_empty() || basis.len() > MAX_LIMBS {
            return Err(KernelError::Shape(format!(
                "a mixed-radix basis has 1 to {MAX_LIMBS} primes, not {}",
                basis.len()
            )));
        }
        let modulus = |p: u64| {
            Modulus::new(p).ok_or(KernelError::Modulus {
                p,
                n: 0,
                why: "moduli must be below 2^62".into(),
            })
        };
        let moduli = basis
            .iter()
            .map(|&p| modulus(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut prefix_inv = vec![Constant::new(1, &moduli[0])];
        let mut within = vec![Vec::new()];
        for (i, mi) in moduli.iter().enumerate().skip(1) {
            let prefix = basis[..i].iter().fold(1u64, |acc, &m| mi.mul(acc, m));
            let inv = mi.inv(prefix).ok_or(KernelError::Modulus {
                p: mi.value(),
                n: 0,
                why: "basis primes must be distinct".into(),
            })?;
            prefix_inv.push(Constant::new(inv, mi));
            within.push(basis[..i].iter().map(|&m| Constant::new(m, mi)).collect());
        }
        // ⌊M/2⌋ in mixed radix: halve the digits of M − 1 from the top, carrying remainders.
        // M − 1 has digits mᵢ − 1; dividing a mixed-radix number by 2 goes top-down with the
        // remainder carried into the next lower digit as r·m_{i−1}.
        let mut half = vec![0u64; basis.len()];
        let mut carry = 0u128;
        for i in (0..basis.len()).rev() {
            let value = carry * basis[i] as u128 + (basis[i] - 1) as u128;
            half[i] = (value / 2) as u64;
            carry = value % 2;
        }
        let targets = targets
            .iter()
            .map(|&p| {
                let m = modulus(p)?;
                let consts = basis.iter().map(|&b| Constant::new(b, &m)).collect();
                let product = basis.iter().fold(1u64, |acc, &b| m.mul(acc, b));
                Ok((m, consts, product))
            })
            .collect::<Result<Vec<_>, KernelError>>()?;
        let digits_fit = targets
            .iter()
            .map(|(m, _, _)| basis.iter().all(|&b| b <= m.value()))
            .collect();
        let within_fit = (0..basis.len())
            .map(|i| (0..i).map(|k| Fit::of(basis[k], basis[i])).collect())
            .collect();
        let target_fit = targets
            .iter()
            .map(|(m, _, _)| basis.iter().map(|&b| Fit::of(b, m.value())).collect())
            .collect();
        Ok(Self {
            moduli,
            prefix_inv,
            within,
            half,
            targets,
            digits_fit,
            within_fit,
            target_fit,
        })
    }

    /// Number of basis primes.
    pub fn limbs(&self) -> usize {
        self.moduli.len()
    }

    /// The constants as flat arrays, for device backends that run the same steps.
    pub fn flat(&self) -> FlatRadix {
        let l = self.moduli.len();
        let mut flat = FlatRadix {
            moduli: self.moduli.iter().map(|m| m.value()).collect(),
            prefix_inv: self.prefix_inv.iter().map(|c| c.value).collect(),
            prefix_inv_shoup: self.prefix_inv.iter().map(|c| c.shoup).collect(),
            within: vec![0; l * l],
            within_shoup: vec![0; l * l],
            half: self.half.clone(),
            target_moduli: self.targets.iter().map(|(m, _, _)| m.value()).collect(),
            target_consts: Vec::new(),
            target_consts_shoup: Vec::new(),
            target_products: self.targets.iter().map(|(_, _, p)| *p).collect(),
        };
        for (i, row) in self.within.iter().enumerate() {
            for (k, c) in row.iter().enumerate() {
                flat.within[i * l + k] = c.value;
                flat.within_shoup[i * l + k] = c.shoup;
            }
        }
        for (_, consts, _) in &self.targets {
            flat.target_consts.extend(consts.iter().map(|c| c.value));
            flat.target_consts_shoup
                .extend(consts.iter().map(|c| c.shoup));
        }
        flat
    }

    /// The basis moduli.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// Digits of the value whose residues are `x` (each below its prime).
    #[inline]
    pub fn digits(&self, x: &[u64], d: &mut [u64; MAX_LIMBS]) {
        d[0] = x[0];
        for i in 1..self.moduli.len() {
            let m = &self.moduli[i];
            // Value of the digits so far, mod mᵢ (Horner from the top digit).
            let mut v = m.reduce(d[i - 1]);
            for k in (0..i - 1).rev() {
                v = m.add(self.within[i][k].mul(v, m), m.reduce(d[k]));
            }
            d[i] = self.prefix_inv[i].mul(m.sub(x[i], v), m);
        }
    }

    /// True when the digits spell a value above ⌊M/2⌋, i.e. a negative centred value.
    #[inline]
    pub fn upper_half(&self, d: &[u64; MAX_LIMBS]) -> bool {
        for i in (0..self.moduli.len()).rev() {
            if d[i] != self.half[i] {
                return d[i] > self.half[i];
            }
        }
        false
    }

    /// The value mod target `j`, minus M when `negative` (the centred lift).
    #[inline]
    pub fn eval(&self, d: &[u64; MAX_LIMBS], j: usize, negative: bool) -> u64 {
        let (m, consts, product) = &self.targets[j];
        let top = self.moduli.len() - 1;
        let mut v;
        if self.digits_fit[j] {
            v = d[top];
            for k in (0..top).rev() {
                v = m.add(consts[k].mul(v, m), d[k]);
            }
        } else {
            v = m.reduce(d[top]);
            for k in (0..top).rev() {
                v = m.add(consts[k].mul(v, m), m.reduce(d[k]));
            }
        }
        if negative {
            m.sub(v, *product)
        } else {
            v
        }
    }

    /// Digits of a block of values: `row(i)` gives limb i's residues of the block (each
    /// below its prime). The same digits as [`MixedRadix::digits`], coefficient by
    /// coefficient.
    #[inline]
    pub fn digits_block<'a>(&self, row: impl Fn(usize) -> &'a [u64], d: &mut DigitBlock) {
        d[0].copy_from_slice(&row(0)[..BLOCK]);
        for i in 1..self.moduli.len() {
            let m = &self.moduli[i];
            let fit = &self.within_fit[i];
            let x = &row(i)[..BLOCK];
            let (done, rest) = d.split_at_mut(i);
            let out = &mut rest[0];
            for c in 0..BLOCK {
                out[c] = fit[i - 1].reduce(done[i - 1][c], m);
            }
            for k in (0..i - 1).rev() {
                let w = &self.within[i][k];
                for c in 0..BLOCK {
                    out[c] = m.add(w.mul(out[c], m), fit[k].reduce(done[k][c], m));
                }
            }
            let inv = &self.prefix_inv[i];
            for c in 0..BLOCK {
                out[c] = inv.mul(m.sub(x[c], out[c]), m);
            }
        }
    }

    /// [`MixedRadix::upper_half`] for a block, branch-free.
    #[inline]
    pub fn upper_half_block(&self, d: &DigitBlock, negative: &mut [bool; BLOCK]) {
        let mut equal = [true; BLOCK];
        *negative = [false; BLOCK];
        for i in (0..self.moduli.len()).rev() {
            let h = self.half[i];
            for c in 0..BLOCK {
                negative[c] |= equal[c] & (d[i][c] > h);
                equal[c] &= d[i][c] == h;
            }
        }
    }

    /// [`MixedRadix::eval`] for a block: the values mod target `j` (centred where
    /// `negative`) into `out`.
    #[inline]
    pub fn eval_block(
        &self,
        d: &DigitBlock,
        j: usize,
        negative: Option<&[bool; BLOCK]>,
        out: &mut [u64],
    ) {
        let (m, consts, product) = &self.targets[j];
        let fit = &self.target_fit[j];
        let top = self.moduli.len() - 1;
        let out = &mut out[..BLOCK];
        for c in 0..BLOCK {
            out[c] = fit[top].reduce(d[top][c], m);
        }
        for k in (0..top).rev() {
            let w = &consts[k];
            for c in 0..BLOCK {
                out[c] = m.add(w.mul(out[c], m), fit[k].reduce(d[k][c], m));
            }
        }
        if let Some(negative) = negative {
            for c in 0..BLOCK {
                let lifted = m.sub(out[c], *product);
                out[c] = if negative[c] { lifted } else { out[c] };
            }
        }
    }
}

/// A constant and its Shoup quotient.
pub type ShoupPair = (u64, u64);

/// [`MixedRadix`] constants as flat arrays (row-major `[i · L + k]` for the L × L and
/// target × L tables).
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct FlatRadix {
    pub moduli: Vec<u64>,
    pub prefix_inv: Vec<u64>,
    pub prefix_inv_shoup: Vec<u64>,
    pub within: Vec<u64>,
    pub within_shoup: Vec<u64>,
    pub half: Vec<u64>,
    pub target_moduli: Vec<u64>,
    pub target_consts: Vec<u64>,
    pub target_consts_shoup: Vec<u64>,
    pub target_products: Vec<u64>,
}

/// Lifts polynomials from basis Q to extra primes P, coefficient by coefficient, taking the
/// centred representative in (−Q/2, Q/2].
#[derive(Clone, Debug)]
pub struct Lift {
    radix: MixedRadix,
    extra: usize,
}

impl Lift {
    /// From `q` to `p`.
    pub fn new(q: &[u64], p: &[u64]) -> Result<Self, KernelError> {
        Ok(Self {
            radix: MixedRadix::new(q, p)?,
            extra: p.len(),
        })
    }

    /// The mixed-radix constants (Q digits, targets P).
    pub fn radix(&self) -> &MixedRadix {
        &self.radix
    }

    /// `q_coeffs` is one polynomial over Q (limb-major, coefficient form); writes its P limbs
    /// into `p_coeffs`.
    pub fn apply(&self, q_coeffs: &[u64], p_coeffs: &mut [u64], n: usize) {
        let l = self.radix.limbs();
        debug_assert_eq!(q_coeffs.len(), l * n);
        debug_assert_eq!(p_coeffs.len(), self.extra * n);
        #[cfg(target_arch = "x86_64")]
        if crate::simd::avx512() {
            // SAFETY: AVX-512F and DQ present (checked).
            let done = unsafe { self.apply_avx512(q_coeffs, p_coeffs, n) };
            return self.apply_from(q_coeffs, p_coeffs, n, done);
        }
        let done = self.apply_portable(q_coeffs, p_coeffs, n);
        self.apply_from(q_coeffs, p_coeffs, n, done);
    }

    /// The whole blocks of [`Lift::apply`] in portable code; returns how many
    /// coefficients it did.
    fn apply_portable(&self, q_coeffs: &[u64], p_coeffs: &mut [u64], n: usize) -> usize {
        let blocked = n - n % BLOCK;
        let mut d = [[0u64; BLOCK]; MAX_LIMBS];
        let mut negative = [false; BLOCK];
        for start in (0..blocked).step_by(BLOCK) {
            self.radix
                .digits_block(|i| &q_coeffs[i * n + start..], &mut d);
            self.radix.upper_half_block(&d, &mut negative);
            for j in 0..self.extra {
                self.radix
                    .eval_block(&d, j, Some(&negative), &mut p_coeffs[j * n + start..]);
            }
        }
        blocked
    }

    /// Coefficients `from..n` of [`Lift::apply`], one at a time.
    fn apply_from(&self, q_coeffs: &[u64], p_coeffs: &mut [u64], n: usize, from: usize) {
        let l = self.radix.limbs();
        let mut x = [0u64; MAX_LIMBS];
        let mut d = [0u64; MAX_LIMBS];
        for c in from..n {
            for i in 0..l {
                x[i] = q_coeffs[i * n + c];
            }
            self.radix.digits(&x, &mut d);
            let negative = self.radix.upper_half(&d);
            for j in 0..self.extra {
                p_coeffs[j * n + c] = self.radix.eval(&d, j, negative);
            }
        }
    }
}

/// Scale-and-round by t/Q from Q∪P down to Q: y = ⌊t·x/Q⌉ mod Q for the integer x whose
/// residues over Q∪P are given, valid for |x| < Q·(P/2 − 1).
///
/// With r = x mod Q ∈ [0, Q) and k = (x − r)/Q: t·x/Q = t·k + t·r/Q, so
/// y = t·k + ⌊t·r/Q⌉. k mod P comes from the P residues, k itself from its centred lift,
/// and ⌊t·r/Q⌉ ∈ [0, t] exactly from r's digits.
#[derive(Clone, Debug)]
pub struct Scaler {
    q: MixedRadix,
    p: MixedRadix,
    t: u64,
    /// Q⁻¹ mod pⱼ.
    q_inv_p: Vec<Constant>,
    /// t mod qᵢ.
    t_q: Vec<Constant>,
    q_primes: Vec<u64>,
}

impl Scaler {
    /// Scaler for plaintext modulus t from Q∪P to Q.
    pub fn new(q: &[u64], p: &[u64], t: u64) -> Result<Self, KernelError> {
        if !(2..1 << 40).contains(&t) {
            return Err(KernelError::Shape(format!(
                "plaintext modulus {t} outside the supported 2..2^40"
            )));
        }
        let q_radix = MixedRadix::new(q, p)?;
        let p_radix = MixedRadix::new(p, q)?;
        let q_inv_p = p
            .iter()
            .map(|&pj| {
                let m = Modulus::new(pj).expect("checked by MixedRadix");
                let prod = q.iter().fold(1u64, |acc, &qi| m.mul(acc, qi));
                m.inv(prod)
                    .map(|inv| Constant::new(inv, &m))
                    .ok_or(KernelError::Modulus {
                        p: pj,
                        n: 0,
                        why: "P primes must differ from the Q primes".into(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let t_q = q
            .iter()
            .map(|&qi| Constant::new(t, &Modulus::new(qi).expect("checked")))
            .collect();
        Ok(Self {
            q: q_radix,
            p: p_radix,
            t,
            q_inv_p,
            t_q,
            q_primes: q.to_vec(),
        })
    }

    /// Q digits with targets P, and P digits with targets Q.
    pub fn radices(&self) -> (&MixedRadix, &MixedRadix) {
        (&self.q, &self.p)
    }

    /// The plaintext modulus.
    pub fn plaintext_modulus(&self) -> u64 {
        self.t
    }

    /// Q⁻¹ mod each P prime and t mod each Q prime, as (value, Shoup) pairs.
    pub fn constants(&self) -> (Vec<ShoupPair>, Vec<ShoupPair>) {
        let pairs = |v: &[Constant]| v.iter().map(|c| (c.value, c.shoup)).collect();
        (pairs(&self.q_inv_p), pairs(&self.t_q))
    }

    /// ⌊t·r/Q⌉ for r given by its Q digits.
    #[inline]
    fn rounded_fraction(&self, d: &[u64; MAX_LIMBS]) -> u64 {
        // f₀ = 0, f_{i+1} = (t·dᵢ + f_i)/qᵢ; keep fᵢ = nᵢ + ρᵢ with ρ as the remainder chain.
        let mut remainders = [0u64; MAX_LIMBS];
        let mut whole = 0u64;
        for (i, &qi) in self.q_primes.iter().enumerate() {
            let (quot, rem) = div_small(self.t, d[i], whole, qi);
            whole = quot;
            remainders[i] = rem;
        }
        // ρ_L ≥ 1/2 ⇔ 2b + 2ρ ≥ q level by level (all q odd): decided at the first level
        // from the top whose remainder differs from (q − 1)/2.
        let mut round_up = false;
        for i in (0..self.q_primes.len()).rev() {
            let mid = (self.q_primes[i] - 1) / 2;
            if remainders[i] != mid {
                round_up = remainders[i] > mid;
                break;
            }
        }
        whole + round_up as u64
    }

    /// One polynomial over Q∪P (limb-major, coefficient form, Q limbs first) to Q.
    pub fn apply(&self, qp_coeffs: &[u64], q_out: &mut [u64], n: usize) {
        self.apply_range(qp_coeffs, q_out, n, 0..n);
    }

    /// Coefficients `range` of one polynomial over Q∪P; writes `q_out[limb · len + c −
    /// start]` for each Q limb, so that blocks of one polynomial can run in parallel.
    pub fn apply_range(
        &self,
        qp_coeffs: &[u64],
        q_out: &mut [u64],
        n: usize,
        range: std::ops::Range<usize>,
    ) {
        let l = self.q.limbs();
        let k = self.p.limbs();
        let len = range.len();
        debug_assert_eq!(qp_coeffs.len(), (l + k) * n);
        debug_assert_eq!(q_out.len(), l * len);
        // Whole blocks first (the fast path), then any remainder coefficient by coefficient.
        #[cfg(target_arch = "x86_64")]
        if crate::simd::avx512() {
            // SAFETY: AVX-512F and DQ present (checked).
            let done = unsafe { self.apply_range_avx512(qp_coeffs, q_out, n, range.clone()) };
            return self.apply_one_by_one(qp_coeffs, q_out, n, range, done);
        }
        let done = self.apply_range_portable(qp_coeffs, q_out, n, range.clone());
        self.apply_one_by_one(qp_coeffs, q_out, n, range, done);
    }

    /// The whole blocks of [`Scaler::apply_range`] in portable code; returns the end of
    /// the blocked part.
    fn apply_range_portable(
        &self,
        qp_coeffs: &[u64],
        q_out: &mut [u64],
        n: usize,
        range: std::ops::Range<usize>,
    ) -> usize {
        let (l, k) = (self.q.limbs(), self.p.limbs());
        let len = range.len();
        let blocked = range.start + (len - len % BLOCK);
        let mut dq = [[0u64; BLOCK]; MAX_LIMBS];
        let mut kp = [[0u64; BLOCK]; MAX_LIMBS];
        let mut dp = [[0u64; BLOCK]; MAX_LIMBS];
        let mut negative = [false; BLOCK];
        let mut e = [0u64; BLOCK];
        let mut r = [0u64; BLOCK];
        let mut digits = [0u64; MAX_LIMBS];
        for start in (range.start..blocked).step_by(BLOCK) {
            self.q
                .digits_block(|i| &qp_coeffs[i * n + start..], &mut dq);
            for c in 0..BLOCK {
                for i in 0..l {
                    digits[i] = dq[i][c];
                }
                e[c] = self.rounded_fraction(&digits);
            }
            for (j, kp) in kp.iter_mut().enumerate().take(k) {
                let m = &self.p.moduli()[j];
                let x = &qp_coeffs[(l + j) * n + start..][..BLOCK];
                self.q.eval_block(&dq, j, None, &mut r);
                for c in 0..BLOCK {
                    kp[c] = self.q_inv_p[j].mul(m.sub(x[c], r[c]), m);
                }
            }
            self.p.digits_block(|i| &kp[i], &mut dp);
            self.p.upper_half_block(&dp, &mut negative);
            for i in 0..l {
                let m = &self.q.moduli()[i];
                self.p.eval_block(&dp, i, Some(&negative), &mut r);
                let out = &mut q_out[i * len + start - range.start..][..BLOCK];
                for c in 0..BLOCK {
                    // e ≤ t < 2⁴⁰ may exceed a prime only in tests with tiny primes.
                    out[c] = m.add(self.t_q[i].mul(r[c], m), m.reduce(e[c]));
                }
            }
        }
        blocked
    }

    /// Coefficients `from..range.end` of [`Scaler::apply_range`], one at a time.
    fn apply_one_by_one(
        &self,
        qp_coeffs: &[u64],
        q_out: &mut [u64],
        n: usize,
        range: std::ops::Range<usize>,
        from: usize,
    ) {
        let (l, k) = (self.q.limbs(), self.p.limbs());
        let len = range.len();
        let mut x = [0u64; MAX_LIMBS];
        let mut dq = [0u64; MAX_LIMBS];
        let mut kp = [0u64; MAX_LIMBS];
        let mut dp = [0u64; MAX_LIMBS];
        for c in from..range.end {
            for i in 0..l {
                x[i] = qp_coeffs[i * n + c];
            }
            self.q.digits(&x, &mut dq);
            let e = self.rounded_fraction(&dq);
            for j in 0..k {
                let m = &self.p.moduli()[j];
                let r = self.q.eval(&dq, j, false);
                kp[j] = self.q_inv_p[j].mul(m.sub(qp_coeffs[(l + j) * n + c], r), m);
            }
            self.p.digits(&kp, &mut dp);
            let negative = self.p.upper_half(&dp);
            for i in 0..l {
                let m = &self.q.moduli()[i];
                let k_mod = self.p.eval(&dp, i, negative);
                q_out[i * len + c - range.start] = m.add(self.t_q[i].mul(k_mod, m), m.reduce(e));
            }
        }
    }
}

/// (t·d + carry) divided by q, for t < 2⁴⁰, d < q < 2⁶², carry ≤ t: quotient ≤ t and
/// remainder. A double-precision estimate is off by at most one; the remainder, computed
/// exactly in wrapping 64-bit arithmetic, corrects it. The same steps run on the GPU.
#[inline(always)]
pub fn div_small(t: u64, d: u64, carry: u64, q: u64) -> (u64, u64) {
    let estimate = ((t as f64) * (d as f64) + carry as f64) / q as f64;
    let mut quot = estimate as u64;
    let low = t.wrapping_mul(d).wrapping_add(carry);
    let mut rem = low.wrapping_sub(quot.wrapping_mul(q)) as i64;
    // The true remainder of the estimate lies in (−2q, 3q); two steps each way suffice.
    for _ in 0..2 {
        let under = rem < 0;
        quot = quot.wrapping_sub(under as u64);
        rem += if under { q as i64 } else { 0 };
        let over = rem >= q as i64;
        quot += over as u64;
        rem -= if over { q as i64 } else { 0 };
    }
    (quot, rem as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn primes(bits: u32, count: usize, avoid: &[u64]) -> Vec<u64> {
        crate::arith::ntt_primes(bits, 16, count, avoid).unwrap()
    }

    #[test]
    fn division_estimate_is_exact() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100_000 {
            let q = rng.random_range(3..1u64 << 62) | 1;
            let t = rng.random_range(2..1u64 << 40);
            let d = rng.random_range(0..q);
            let carry = rng.random_range(0..=t);
            let wide = t as u128 * d as u128 + carry as u128;
            let (quot, rem) = div_small(t, d, carry, q);
            assert_eq!(
                (quot as u128, rem as u128),
                (wide / q as u128, wide % q as u128)
            );
        }
    }

    #[test]
    fn lift_gives_the_centred_value() {
        let q = primes(40, 2, &[]);
        let p = primes(30, 3, &q);
        let lift = Lift::new(&q, &p).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        // Two blocks and a remainder: the blocked path and the per-coefficient one.
        let n = 2 * BLOCK + 5;
        let qbig: i128 = q.iter().map(|&b| b as i128).product();
        let values: Vec<i128> = (0..n)
            .map(|i| match i % 64 {
                0 => 0,
                1 => qbig / 2,
                2 => -(qbig / 2),
                3 => -1,
                _ => rng.random_range(-(qbig / 2)..=qbig / 2),
            })
            .collect();
        let mut coeffs = vec![0u64; 2 * n];
        for (c, v) in values.iter().enumerate() {
            for (i, &qi) in q.iter().enumerate() {
                coeffs[i * n + c] = v.rem_euclid(qi as i128) as u64;
            }
        }
        let mut out = vec![0u64; 3 * n];
        lift.apply(&coeffs, &mut out, n);
        for (c, v) in values.iter().enumerate() {
            for (j, &pj) in p.iter().enumerate() {
                assert_eq!(
                    out[j * n + c],
                    v.rem_euclid(pj as i128) as u64,
                    "coefficient {c}"
                );
            }
        }
    }

    /// The blocked conversions give the per-coefficient ones' words for every way a digit
    /// is reduced — primes of one size (one subtraction), of different sizes (none, or a
    /// full reduction), and 2·to + 1 (where one subtraction would not do) — with the edge
    /// values in the blocks and in the remainder.
    #[test]
    fn blocked_and_per_coefficient_conversions_agree() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let big = primes(60, 4, &[]);
        let cases: [(Vec<u64>, Vec<u64>); 4] = [
            (big[..2].to_vec(), big[2..].to_vec()),
            (primes(55, 2, &big), big[..3].to_vec()),
            (big[..2].to_vec(), primes(40, 3, &big)),
            (vec![23, 11], vec![47, 5]),
        ];
        let n = 2 * BLOCK + 9;
        for (q, p) in cases {
            let radix = MixedRadix::new(&q, &p).unwrap();
            let qbig: i128 = q.iter().map(|&b| b as i128).product();
            let values: Vec<i128> = (0..n)
                .map(|i| match i % (BLOCK + 3) {
                    0 => 0,
                    1 => qbig / 2,
                    2 => qbig / 2 + 1,
                    3 => qbig - 1,
                    _ => rng.random_range(0..qbig),
                })
                .collect();
            let mut coeffs = vec![0u64; q.len() * n];
            for (c, v) in values.iter().enumerate() {
                for (i, &qi) in q.iter().enumerate() {
                    coeffs[i * n + c] = (v % qi as i128) as u64;
                }
            }
            let lift = Lift::new(&q, &p).unwrap();
            let mut blocked = vec![0u64; p.len() * n];
            lift.apply(&coeffs, &mut blocked, n);
            // The portable blocks give the same words as whichever path `apply` took
            // (AVX-512 where the CPU has it).
            let mut portable = vec![0u64; p.len() * n];
            let done = lift.apply_portable(&coeffs, &mut portable, n);
            for j in 0..p.len() {
                let limb = j * n..j * n + done;
                assert_eq!(blocked[limb.clone()], portable[limb], "{q:?} → {p:?}");
            }
            let (mut x, mut d) = ([0u64; MAX_LIMBS], [0u64; MAX_LIMBS]);
            for c in 0..n {
                for i in 0..q.len() {
                    x[i] = coeffs[i * n + c];
                }
                radix.digits(&x, &mut d);
                let negative = radix.upper_half(&d);
                for j in 0..p.len() {
                    assert_eq!(
                        blocked[j * n + c],
                        radix.eval(&d, j, negative),
                        "{q:?} → {p:?}, coefficient {c}"
                    );
                }
            }
            // The scale: whole polynomial (blocks, then the remainder) against one
            // coefficient at a time (the per-coefficient path).
            let scaler = Scaler::new(&q, &p, 65537).unwrap();
            let all: Vec<u64> = q.iter().chain(&p).copied().collect();
            let mut qp = vec![0u64; all.len() * n];
            for (i, &m) in all.iter().enumerate() {
                for c in 0..n {
                    qp[i * n + c] = if c % (BLOCK + 3) < 2 {
                        m - 1 - c as u64 % 2
                    } else {
                        rng.random_range(0..m)
                    };
                }
            }
            let mut whole = vec![0u64; q.len() * n];
            scaler.apply(&qp, &mut whole, n);
            let mut portable = vec![0u64; q.len() * n];
            let done = scaler.apply_range_portable(&qp, &mut portable, n, 0..n);
            for i in 0..q.len() {
                let limb = i * n..i * n + done;
                assert_eq!(whole[limb.clone()], portable[limb], "scale {q:?} ∪ {p:?}");
            }
            for c in 0..n {
                let mut one = vec![0u64; q.len()];
                scaler.apply_range(&qp, &mut one, n, c..c + 1);
                for i in 0..q.len() {
                    assert_eq!(
                        whole[i * n + c],
                        one[i],
                        "scale {q:?} ∪ {p:?}, coefficient {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn scaler_rounds_t_x_over_q_exactly() {
        let q = primes(30, 2, &[]);
        // Q·P·t stays below 2^126 so the expected values fit in i128.
        let p = primes(22, 2, &q);
        let t = 65537u64;
        let scaler = Scaler::new(&q, &p, t).unwrap();
        let qbig: i128 = q.iter().map(|&b| b as i128).product();
        let pbig: i128 = p.iter().map(|&b| b as i128).product();
        let all: Vec<u64> = q.iter().chain(&p).copied().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 3 * BLOCK + 7;
        let bound = qbig * (pbig / 2 - 1);
        let values: Vec<i128> = (0..n)
            .map(|i| match i % 96 {
                0 => 0,
                1 => bound,
                2 => -bound,
                // Exact halves: t·x/Q = k + 1/2 needs Q | 2·t·x, so x = Q/2·(odd) with Q odd
                // cannot be an integer; take values next to the rounding boundary instead.
                3 => qbig / 2,
                4 => -(qbig / 2),
                _ => rng.random_range(-bound..=bound),
            })
            .collect();
        let mut coeffs = vec![0u64; all.len() * n];
        for (c, v) in values.iter().enumerate() {
            for (i, &m) in all.iter().enumerate() {
                coeffs[i * n + c] = v.rem_euclid(m as i128) as u64;
            }
        }
        let mut out = vec![0u64; q.len() * n];
        scaler.apply(&coeffs, &mut out, n);
        for (c, &v) in values.iter().enumerate() {
            // ⌊t·v/Q⌉ = ⌊(2·t·v + Q) / 2Q⌋ with floor division (t·v < 2^127 here).
            let num = 2 * t as i128 * v + qbig;
            let expected = num.div_euclid(2 * qbig);
            for (i, &qi) in q.iter().enumerate() {
                assert_eq!(
                    out[i * n + c],
                    expected.rem_euclid(qi as i128) as u64,
                    "coefficient {c} value {v}"
                );
            }
        }
    }
}
