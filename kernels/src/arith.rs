//! Word-sized modular arithmetic for primes below 2⁶².
//!
//! Products by constants use Shoup's precomputed quotient (one high multiply and one low
//! multiply, no division); products of two variables use Barrett reduction of the 128-bit
//! product. Everything is branch-free in the hot paths: data-dependent branches halved the
//! speed of the accumulation loop in an earlier prototype.

/// A prime modulus p < 2⁶² with its Barrett constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    p: u64,
    /// ⌊2¹²⁸ / p⌋ split into 64-bit halves.
    barrett_hi: u64,
    barrett_lo: u64,
    /// ⌊2⁶⁴ / p⌋: Shoup's constant for 1, which reduces any 64-bit word in two multiplies.
    one_shoup: u64,
}

impl Modulus {
    /// The largest supported modulus bit size: lazy butterflies keep values below 4p.
    pub const MAX_BITS: u32 = 62;

    /// A modulus p with 2 ≤ p < 2⁶²; None otherwise.
    pub fn new(p: u64) -> Option<Self> {
        if !(2..1 << Self::MAX_BITS).contains(&p) {
            return None;
        }
        let barrett = u128::MAX / p as u128;
        // u128::MAX / p equals ⌊2¹²⁸/p⌋ unless p divides 2¹²⁸, which only powers of two do.
        Some(Self {
            p,
            barrett_hi: (barrett >> 64) as u64,
            barrett_lo: barrett as u64,
            one_shoup: ((1u128 << 64) / p as u128) as u64,
        })
    }

    /// The modulus.
    #[inline(always)]
    pub const fn value(&self) -> u64 {
        self.p
    }

    /// a − p if a ≥ p, for a < 2p (branch-free).
    #[inline(always)]
    pub const fn reduce_once(&self, a: u64) -> u64 {
        reduce_once(a, self.p)
    }

    /// (a + b) mod p for a, b < p.
    #[inline(always)]
    pub const fn add(&self, a: u64, b: u64) -> u64 {
        reduce_once(a + b, self.p)
    }

    /// (a − b) mod p for a, b < p.
    #[inline(always)]
    pub const fn sub(&self, a: u64, b: u64) -> u64 {
        reduce_once(a + self.p - b, self.p)
    }

    /// (−a) mod p for a < p.
    #[inline(always)]
    pub const fn neg(&self, a: u64) -> u64 {
        reduce_once(self.p - a, self.p)
    }

    /// a mod p for any 128-bit a (Barrett).
    #[inline(always)]
    pub const fn reduce_u128(&self, a: u128) -> u64 {
        let a_hi = (a >> 64) as u64;
        let a_lo = a as u64;
        let lo_lo = ((a_lo as u128) * (self.barrett_lo as u128)) >> 64;
        let hi_lo = (a_hi as u128) * (self.barrett_lo as u128);
        let lo_hi = (a_lo as u128) * (self.barrett_hi as u128);
        let q = ((lo_hi + hi_lo + lo_lo) >> 64) + (a_hi as u128) * (self.barrett_hi as u128);
        let r = a.wrapping_sub(q.wrapping_mul(self.p as u128)) as u64;
        reduce_once(r, self.p)
    }

    /// ⌊2⁶⁴/p⌋: Shoup's quotient for 1 (what [`Modulus::reduce`] multiplies by).
    pub const fn one_shoup(&self) -> u64 {
        self.one_shoup
    }

    /// a mod p for any 64-bit a (a · 1 with Shoup's quotient).
    #[inline(always)]
    pub const fn reduce(&self, a: u64) -> u64 {
        self.mul_shoup(a, 1 % self.p, self.one_shoup)
    }

    /// (a · b) mod p for any a, b (Barrett on the 128-bit product).
    #[inline(always)]
    pub const fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// Shoup's constant for multiplying by b < p: ⌊b · 2⁶⁴ / p⌋.
    pub const fn shoup(&self, b: u64) -> u64 {
        (((b as u128) << 64) / self.p as u128) as u64
    }

    /// (a · b) mod p in [0, 2p), for any a < 2⁶⁴ and b < p with `b_shoup = shoup(b)`.
    #[inline(always)]
    pub const fn mul_shoup_lazy(&self, a: u64, b: u64, b_shoup: u64) -> u64 {
        let q = ((a as u128 * b_shoup as u128) >> 64) as u64;
        a.wrapping_mul(b).wrapping_sub(q.wrapping_mul(self.p))
    }

    /// (a · b) mod p for b < p with `b_shoup = shoup(b)`.
    #[inline(always)]
    pub const fn mul_shoup(&self, a: u64, b: u64, b_shoup: u64) -> u64 {
        reduce_once(self.mul_shoup_lazy(a, b, b_shoup), self.p)
    }

    /// aᵉ mod p.
    pub fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1 % self.p;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// a⁻¹ mod p (p prime); None for a ≡ 0.
    pub fn inv(&self, a: u64) -> Option<u64> {
        let a = self.reduce(a);
        (a != 0).then(|| self.pow(a, self.p - 2))
    }

    /// A signed integer mod p, without a branch on its sign: the client reduces secret-key
    /// and noise coefficients with it (fhe.rs keeps those on constant-time paths).
    pub fn from_i64(&self, a: i64) -> u64 {
        let r = self.reduce(a.unsigned_abs());
        let negative = (a >> 63) as u64; // arithmetic shift: all ones if a < 0, else 0
        r ^ ((r ^ self.neg(r)) & negative)
    }
}

/// a − p if a ≥ p, for a < 2p, without a branch.
#[inline(always)]
pub const fn reduce_once(a: u64, p: u64) -> u64 {
    let (d, borrow) = a.overflowing_sub(p);
    if borrow {
        a
    } else {
        d
    }
}

/// A constant multiplier with its Shoup quotient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constant {
    /// The value, reduced.
    pub value: u64,
    /// `Modulus::shoup(value)`.
    pub shoup: u64,
}

impl Constant {
    /// `value mod p` ready for Shoup multiplication.
    pub fn new(value: u64, p: &Modulus) -> Self {
        let value = p.reduce(value);
        Self {
            value,
            shoup: p.shoup(value),
        }
    }

    /// (a · self) mod p.
    #[inline(always)]
    pub fn mul(&self, a: u64, p: &Modulus) -> u64 {
        p.mul_shoup(a, self.value, self.shoup)
    }
}

/// Deterministic Miller–Rabin for 64-bit integers.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for small in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(small) {
            return n == small;
        }
    }
    let mul = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let pow = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, a);
            }
            a = mul(a, a);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// The largest `count` primes of exactly `bits` bits that are ≡ 1 mod `2n` (so they
/// support the negacyclic NTT of size n), skipping any in `avoid`, largest first.
pub fn ntt_primes(bits: u32, n: usize, count: usize, avoid: &[u64]) -> Option<Vec<u64>> {
    if !(10..=Modulus::MAX_BITS).contains(&bits) || !n.is_power_of_two() {
        return None;
    }
    let step = 2 * n as u64;
    let low = 1u64 << (bits - 1);
    // Largest candidate below 2^bits that is ≡ 1 mod 2n.
    let mut candidate = ((1u64 << bits) - 1) / step * step + 1;
    if candidate >= 1 << bits {
        candidate -= step;
    }
    let mut found = Vec::with_capacity(count);
    while found.len() < count {
        if candidate < low + 1 {
            return None;
        }
        if is_prime(candidate) && !avoid.contains(&candidate) {
            found.push(candidate);
        }
        candidate -= step;
    }
    Some(found)
}

#[cfg(test)]
mod tests {

    #[test]
    fn signed_values_reduce_like_the_euclidean_remainder() {
        for p in [97u64, (1 << 61) - 1, 1_073_692_673] {
            let m = Modulus::new(p).unwrap();
            for a in [
                i64::MIN,
                i64::MIN + 1,
                -(p as i64),
                -1,
                0,
                1,
                p as i64,
                i64::MAX,
            ] {
                let want = (a as i128).rem_euclid(p as i128) as u64;
                assert_eq!(m.from_i64(a), want, "{a} mod {p}");
            }
        }
    }

    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn barrett_and_shoup_agree_with_u128_remainders() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut moduli = vec![3u64, 65537, 4_611_686_018_326_724_609];
        moduli.extend(ntt_primes(50, 4096, 1, &[]).unwrap());
        moduli.extend(ntt_primes(62, 65536, 1, &[]).unwrap());
        for p in moduli {
            let m = Modulus::new(p).unwrap();
            for _ in 0..2000 {
                let a: u64 = rng.random();
                let b = rng.random_range(0..p);
                let wide: u128 = rng.random::<u128>();
                assert_eq!(m.reduce(a), a % p);
                assert_eq!(m.reduce_u128(wide), (wide % p as u128) as u64);
                assert_eq!(m.mul(a, b), ((a as u128 * b as u128) % p as u128) as u64);
                assert_eq!(
                    m.mul_shoup(a, b, m.shoup(b)),
                    ((a as u128 * b as u128) % p as u128) as u64
                );
                let (x, y) = (m.reduce(a), b);
                assert_eq!(m.add(x, y), ((x as u128 + y as u128) % p as u128) as u64);
                assert_eq!(
                    m.sub(x, y),
                    ((x as i128 - y as i128).rem_euclid(p as i128)) as u64
                );
            }
            assert_eq!(m.reduce_u128(u128::MAX), (u128::MAX % p as u128) as u64);
            if p > 3 {
                assert_eq!(m.mul(m.inv(12345).unwrap(), 12345), 1);
            }
        }
        assert!(Modulus::new(1 << 62).is_none());
        assert!(Modulus::new(1).is_none());
    }

    #[test]
    fn primality_and_ntt_primes() {
        let primes: Vec<u64> = (0..200).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes.len(), 46);
        assert!(is_prime(4_611_686_018_326_724_609));
        assert!(!is_prime((1 << 61) + 1));
        assert!(!is_prime(3_215_031_751)); // strong pseudoprime to bases 2, 3, 5, 7
        let found = ntt_primes(62, 8192, 3, &[]).unwrap();
        assert_eq!(found.len(), 3);
        for p in &found {
            assert!(is_prime(*p) && p % 16384 == 1 && p >> 61 == 1);
        }
        let skipped = ntt_primes(62, 8192, 2, &found[..1]).unwrap();
        assert_eq!(skipped, found[1..].to_vec());
    }
}
