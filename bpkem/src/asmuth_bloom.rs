//! Asmuth–Bloom (k, n) threshold secret sharing over the Chinese remainder theorem.
//!
//! Public moduli m0 < m1 < … < mn, pairwise coprime, with
//! m0 · (product of the k−1 largest mᵢ) < M = (product of the k smallest mᵢ).
//! A secret S < m0 is lifted to y = S + α·m0 with α random such that y < M; holder i
//! keeps yᵢ = y mod mᵢ. Any k shares fix y modulo a product ≥ M > y, so the CRT returns
//! y and S = y mod m0. Fewer shares fix y only modulo a product P < M/m0, and y mod m0
//! is then close to uniform: the condition is what leaves k−1 holders (nearly) nothing.

use crate::error::{BpkemError, Result};
use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::Rng;

/// Most holders accepted.
pub const MAX_HOLDERS: usize = 1024;
/// Largest secret size accepted by [`Moduli::generate`], in bits.
pub const MAX_SECRET_BITS: u32 = 8192;

/// One holder's share: its 1-based index i (it pairs with mᵢ) and y mod mᵢ.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Share {
    /// Holder index, 1 ..= n.
    pub index: usize,
    /// y mod mᵢ.
    pub value: BigUint,
}

/// The public moduli of a (k, n) deployment, checked against the Asmuth–Bloom condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moduli {
    m0: BigUint,
    m: Vec<BigUint>,
    threshold: usize,
}

impl Moduli {
    /// Moduli m0 and m1..mn for threshold k; an error unless 1 ≤ k ≤ n, m0 ≥ 2,
    /// m0 < m1 < … < mn, all pairwise coprime, and the Asmuth–Bloom condition holds.
    pub fn new(m0: BigUint, m: Vec<BigUint>, threshold: usize) -> Result<Self> {
        let n = m.len();
        if !(1..=MAX_HOLDERS).contains(&n) {
            return Err(BpkemError::params(
                "holders",
                format!("{n} not in 1..={MAX_HOLDERS}"),
            ));
        }
        if !(1..=n).contains(&threshold) {
            return Err(BpkemError::params(
                "threshold",
                format!("{threshold} not in 1..={n}"),
            ));
        }
        if m0 < BigUint::from(2u8) {
            return Err(BpkemError::params("m0", "must be at least 2"));
        }
        let all: Vec<&BigUint> = std::iter::once(&m0).chain(&m).collect();
        if all.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BpkemError::params("moduli", "m0 < m1 < … < mn required"));
        }
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if !a.gcd(b).is_one() {
                    return Err(BpkemError::params(
                        "moduli",
                        format!("{a} and {b} share a factor"),
                    ));
                }
            }
        }
        let out = Self { m0, m, threshold };
        if !out.satisfies_condition() {
            return Err(BpkemError::params(
                "moduli",
                "m0 · (k−1 largest) ≥ (k smallest): the Asmuth–Bloom condition fails",
            ));
        }
        Ok(out)
    }

    /// Fresh moduli for secrets of `secret_bits` bits: m0 is the smallest prime
    /// ≥ 2^secret_bits (so every such secret is < m0), m1..mn are n consecutive primes
    /// from a random point of [2^(b−1), 2^b) with b = secret_bits + k + 8, which makes the
    /// condition hold with room (b is raised if a draw ever fails it).
    pub fn generate(
        secret_bits: u32,
        threshold: usize,
        holders: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if !(1..=MAX_SECRET_BITS).contains(&secret_bits) {
            return Err(BpkemError::params(
                "secret_bits",
                format!("{secret_bits} not in 1..={MAX_SECRET_BITS}"),
            ));
        }
        if !(1..=MAX_HOLDERS).contains(&holders) || !(1..=holders).contains(&threshold) {
            return Err(BpkemError::params(
                "threshold",
                format!("need 1 ≤ k ≤ n ≤ {MAX_HOLDERS}, got k = {threshold}, n = {holders}"),
            ));
        }
        let m0 = next_prime(&(BigUint::one() << secret_bits));
        let mut bits = u64::from(secret_bits) + threshold as u64 + 8;
        let mut last = None;
        for _ in 0..8 {
            let low = BigUint::one() << (bits - 1);
            let mut candidate = &low + random_below(&low, rng);
            let mut m = Vec::with_capacity(holders);
            for _ in 0..holders {
                let p = next_prime(&candidate);
                candidate = &p + 1u8;
                m.push(p);
            }
            match Self::new(m0.clone(), m, threshold) {
                Ok(moduli) => return Ok(moduli),
                Err(e) => last = Some(e),
            }
            bits += 8;
        }
        Err(last.expect("at least one attempt"))
    }

    /// m0 (secrets are < m0).
    pub fn m0(&self) -> &BigUint {
        &self.m0
    }

    /// m1..mn.
    pub fn moduli(&self) -> &[BigUint] {
        &self.m
    }

    /// k.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// n.
    pub fn holders(&self) -> usize {
        self.m.len()
    }

    /// M = product of the k smallest moduli (y < M).
    pub fn bound(&self) -> BigUint {
        self.m[..self.threshold].iter().product()
    }

    /// The Asmuth–Bloom condition m0 · Π(k−1 largest) < Π(k smallest).
    pub fn satisfies_condition(&self) -> bool {
        let k = self.threshold;
        let largest: BigUint = self.m[self.m.len() - (k - 1)..].iter().product();
        &self.m0 * largest < self.bound()
    }

    /// Shares of `secret` with α drawn uniformly from [0, ⌊(M − 1 − S)/m0⌋].
    pub fn share(&self, secret: &BigUint, rng: &mut impl Rng) -> Result<Vec<Share>> {
        self.check_secret(secret)?;
        let span = (self.bound() - 1u8 - secret) / &self.m0 + 1u8;
        let alpha = random_below(&span, rng);
        self.share_with_alpha(secret, &alpha)
    }

    /// Shares of `secret` with a given α (for worked examples); an error when S ≥ m0 or
    /// y = S + α·m0 ≥ M.
    pub fn share_with_alpha(&self, secret: &BigUint, alpha: &BigUint) -> Result<Vec<Share>> {
        self.check_secret(secret)?;
        let y = secret + alpha * &self.m0;
        if y >= self.bound() {
            return Err(BpkemError::params("alpha", "S + α·m0 must stay below M"));
        }
        Ok(self
            .m
            .iter()
            .enumerate()
            .map(|(i, mi)| Share {
                index: i + 1,
                value: &y % mi,
            })
            .collect())
    }

    fn check_secret(&self, secret: &BigUint) -> Result<()> {
        if secret >= &self.m0 {
            return Err(BpkemError::params("secret", "must be < m0"));
        }
        Ok(())
    }

    /// S from at least k shares (more are used too: y < M ≤ any product of k moduli).
    pub fn reconstruct(&self, shares: &[Share]) -> Result<BigUint> {
        if shares.len() < self.threshold {
            return Err(BpkemError::Shares(format!(
                "{} shares, threshold {}",
                shares.len(),
                self.threshold
            )));
        }
        self.combine(shares)
    }

    /// CRT of whatever shares are given, then mod m0, without the threshold check:
    /// below k shares the result is (almost surely) not S. The recovery flow uses this
    /// and lets the public-key check decide, which also catches wrong or corrupted
    /// shares that a count cannot. An error for no shares, duplicate or unknown indices,
    /// or values not reduced mod mᵢ.
    pub fn combine(&self, shares: &[Share]) -> Result<BigUint> {
        if shares.is_empty() {
            return Err(BpkemError::Shares("no shares".into()));
        }
        let mut seen = vec![false; self.m.len()];
        for s in shares {
            if !(1..=self.m.len()).contains(&s.index) {
                return Err(BpkemError::Shares(format!("unknown holder {}", s.index)));
            }
            if std::mem::replace(&mut seen[s.index - 1], true) {
                return Err(BpkemError::Shares(format!("holder {} twice", s.index)));
            }
            if s.value >= self.m[s.index - 1] {
                return Err(BpkemError::Shares(format!(
                    "share {} not reduced mod its modulus",
                    s.index
                )));
            }
        }
        let product: BigUint = shares.iter().map(|s| &self.m[s.index - 1]).product();
        let mut y = BigUint::zero();
        for s in shares {
            let mi = &self.m[s.index - 1];
            let rest = &product / mi;
            let inverse = (&rest % mi)
                .modinv(mi)
                .expect("moduli are pairwise coprime (checked in new)");
            y += &s.value * rest * inverse;
        }
        Ok((y % product) % &self.m0)
    }
}

/// Uniform value in [0, bound) by rejection on random bytes; `bound` must be > 0.
pub(crate) fn random_below(bound: &BigUint, rng: &mut impl Rng) -> BigUint {
    assert!(!bound.is_zero(), "empty range");
    let bits = bound.bits();
    let mut bytes = vec![0u8; bits.div_ceil(8) as usize];
    let top_mask = if bits.is_multiple_of(8) {
        0xff
    } else {
        (1u8 << (bits % 8)) - 1
    };
    loop {
        rng.fill_bytes(&mut bytes);
        if let Some(last) = bytes.last_mut() {
            *last &= top_mask;
        }
        let v = BigUint::from_bytes_le(&bytes);
        if &v < bound {
            return v;
        }
    }
}

const SMALL_PRIMES: [u32; 54] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199, 211, 223, 227, 229, 233, 239, 241, 251,
];

/// Miller–Rabin with the first 20 primes as bases after trial division. Deterministic
/// (so moduli are reproducible from a seed); exact below 3.3·10²⁴ and, for the random
/// candidates it is used on, wrong with negligible probability above.
pub fn is_probable_prime(n: &BigUint) -> bool {
    if n < &BigUint::from(2u8) {
        return false;
    }
    for &p in &SMALL_PRIMES {
        let p = BigUint::from(p);
        if n == &p {
            return true;
        }
        if (n % &p).is_zero() {
            return false;
        }
    }
    let one = BigUint::one();
    let minus_one = n - &one;
    let s = minus_one.trailing_zeros().expect("n − 1 > 0");
    let d = &minus_one >> s;
    'bases: for &a in &SMALL_PRIMES[..20] {
        let mut x = BigUint::from(a).modpow(&d, n);
        if x == one || x == minus_one {
            continue;
        }
        for _ in 1..s {
            x = &x * &x % n;
            if x == minus_one {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// The smallest prime ≥ `from`.
pub fn next_prime(from: &BigUint) -> BigUint {
    let two = BigUint::from(2u8);
    if from <= &two {
        return two;
    }
    let mut c = from.clone();
    if c.is_even() {
        c += 1u8;
    }
    while !is_probable_prime(&c) {
        c += 2u8;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_traits::ToPrimitive;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn big(v: u64) -> BigUint {
        BigUint::from(v)
    }

    /// schemes.md's check: m = [3, 11, 13, 17, 19], k = 3, S = 2, y = 155.
    #[test]
    fn worked_example_gives_shares_1_12_2_3() {
        let moduli = Moduli::new(big(3), [11, 13, 17, 19].map(big).to_vec(), 3).unwrap();
        assert_eq!(moduli.bound(), big(11 * 13 * 17));
        // y = 155 = 2 + 51·3.
        let shares = moduli.share_with_alpha(&big(2), &big(51)).unwrap();
        let values: Vec<u64> = shares.iter().map(|s| s.value.to_u64().unwrap()).collect();
        assert_eq!(values, vec![1, 12, 2, 3]);
        assert_eq!(
            shares.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        for skip in 0..4 {
            let three: Vec<Share> = shares
                .iter()
                .filter(|s| s.index != skip + 1)
                .cloned()
                .collect();
            assert_eq!(
                moduli.reconstruct(&three).unwrap(),
                big(2),
                "without holder {}",
                skip + 1
            );
        }
        assert_eq!(moduli.reconstruct(&shares).unwrap(), big(2));
        assert!(matches!(
            moduli.reconstruct(&shares[..2]),
            Err(BpkemError::Shares(_))
        ));
        // Two shares fix y only mod 11·13 = 143: 155 mod 143 = 12, and 12 mod 3 = 0 ≠ 2.
        assert_eq!(moduli.combine(&shares[..2]).unwrap(), big(0));
    }

    #[test]
    fn bad_moduli_and_arguments_are_refused() {
        // k = 2: the condition is m0·19 < 11·13 = 143, i.e. m0 ≤ 7.
        let m = [11, 13, 17, 19].map(big).to_vec();
        assert!(Moduli::new(big(3), m.clone(), 2).is_ok());
        assert!(Moduli::new(big(11), m.clone(), 2).is_err(), "m0 = m1");
        assert!(Moduli::new(big(7), m.clone(), 2).is_ok());
        assert!(
            Moduli::new(big(9), m.clone(), 2).is_err(),
            "9·19 = 171 ≥ 143"
        );
        assert!(
            Moduli::new(big(10), m.clone(), 2).is_err(),
            "10·19 = 190 ≥ 143"
        );
        assert!(
            Moduli::new(big(3), [11, 13, 22, 29].map(big).to_vec(), 2).is_err(),
            "gcd(11, 22)"
        );
        assert!(
            Moduli::new(big(3), [13, 11, 17, 19].map(big).to_vec(), 2).is_err(),
            "order"
        );
        assert!(Moduli::new(big(3), m.clone(), 0).is_err());
        assert!(Moduli::new(big(3), m.clone(), 5).is_err());
        let moduli = Moduli::new(big(3), m, 3).unwrap();
        assert!(moduli.share_with_alpha(&big(3), &big(0)).is_err(), "S ≥ m0");
        assert!(
            moduli.share_with_alpha(&big(2), &big(810)).is_err(),
            "y ≥ M"
        );
        let shares = moduli.share_with_alpha(&big(1), &big(7)).unwrap();
        let twice = vec![shares[0].clone(), shares[0].clone(), shares[1].clone()];
        assert!(moduli.combine(&twice).is_err());
        let unknown = vec![Share {
            index: 5,
            value: big(0),
        }];
        assert!(moduli.combine(&unknown).is_err());
        let unreduced = vec![Share {
            index: 1,
            value: big(11),
        }];
        assert!(moduli.combine(&unreduced).is_err());
        assert!(moduli.combine(&[]).is_err());
    }

    #[test]
    fn primality() {
        let primes = [2u64, 3, 65537, 2_147_483_647, 1_000_000_007];
        let composites = [
            1u64,
            4,
            561,
            1105,
            3_215_031_751,
            1_000_000_007 * 998_244_353,
        ];
        for p in primes {
            assert!(is_probable_prime(&big(p)), "{p}");
        }
        for c in composites {
            assert!(!is_probable_prime(&big(c)), "{c}");
        }
        let m127 = (BigUint::one() << 127u32) - 1u8;
        assert!(is_probable_prime(&m127));
        assert!(!is_probable_prime(&((BigUint::one() << 128u32) + 1u8)));
        assert_eq!(next_prime(&big(14)), big(17));
        assert_eq!(next_prime(&(BigUint::one() << 16u32)), big(65537));
    }

    /// Generated moduli always satisfy the condition; any k of n shares recover S.
    #[test]
    fn generated_moduli_satisfy_the_condition_and_any_k_shares_recover() {
        let mut rng = ChaCha8Rng::seed_from_u64(0xab);
        for case in 0..250 {
            let holders = rng.random_range(1..=8);
            let k = rng.random_range(1..=holders);
            let bits = rng.random_range(2..=80);
            let moduli = Moduli::generate(bits, k, holders, &mut rng).unwrap();
            // Checked independently of `new`: order, coprimality, the inequality.
            let all: Vec<BigUint> = std::iter::once(moduli.m0().clone())
                .chain(moduli.moduli().iter().cloned())
                .collect();
            assert!(all.windows(2).all(|w| w[0] < w[1]), "case {case}: order");
            for i in 0..all.len() {
                for j in i + 1..all.len() {
                    assert!(all[i].gcd(&all[j]).is_one(), "case {case}: coprime");
                }
            }
            let smallest: BigUint = moduli.moduli()[..k].iter().product();
            let largest: BigUint = moduli.moduli()[holders - (k - 1)..].iter().product();
            assert!(moduli.m0() * largest < smallest, "case {case}: condition");
            assert!(
                moduli.m0() >= &(BigUint::one() << bits),
                "case {case}: m0 fits secrets"
            );

            let secret = random_below(&(BigUint::one() << bits), &mut rng);
            let mut shares = moduli.share(&secret, &mut rng).unwrap();
            assert_eq!(
                moduli.reconstruct(&shares).unwrap(),
                secret,
                "case {case}: all"
            );
            shares.shuffle(&mut rng);
            assert_eq!(
                moduli.reconstruct(&shares[..k]).unwrap(),
                secret,
                "case {case}: k"
            );
        }
    }
}
