//! RNS bases and batches of polynomials stored limb-major: poly k, limb i, coefficient c
//! lives at `(k · limbs + i) · n + c`. The same layout is used on the device.

use crate::ntt::NttTable;
use crate::KernelError;
use rayon::prelude::*;

/// An ordered list of NTT-friendly primes for one ring degree.
#[derive(Clone, Debug)]
pub struct RnsBasis {
    n: usize,
    tables: Vec<NttTable>,
}

impl RnsBasis {
    /// A basis of the given primes for degree n.
    pub fn new(n: usize, primes: &[u64]) -> Result<Self, KernelError> {
        if primes.is_empty() {
            return Err(KernelError::Shape(
                "an RNS basis needs at least one prime".into(),
            ));
        }
        for (i, p) in primes.iter().enumerate() {
            if primes[..i].contains(p) {
                return Err(KernelError::Modulus {
                    p: *p,
                    n,
                    why: "the prime appears twice in the basis".into(),
                });
            }
        }
        let tables = primes
            .iter()
            .map(|&p| NttTable::new(p, n))
            .collect::<Result<_, _>>()?;
        Ok(Self { n, tables })
    }

    /// Ring degree.
    pub fn degree(&self) -> usize {
        self.n
    }

    /// Number of primes.
    pub fn limbs(&self) -> usize {
        self.tables.len()
    }

    /// The primes, in order.
    pub fn primes(&self) -> Vec<u64> {
        self.tables.iter().map(|t| t.modulus().value()).collect()
    }

    /// The transform tables, one per prime.
    pub fn tables(&self) -> &[NttTable] {
        &self.tables
    }

    /// Words in one polynomial.
    pub fn poly_len(&self) -> usize {
        self.n * self.limbs()
    }

    /// How many whole polynomials `data` holds, or an error naming the mismatch.
    pub fn count(&self, data: &[u64]) -> Result<usize, KernelError> {
        if !data.len().is_multiple_of(self.poly_len()) {
            return Err(KernelError::Shape(format!(
                "{} words is not a whole number of polynomials of {} limbs × {}",
                data.len(),
                self.limbs(),
                self.n
            )));
        }
        Ok(data.len() / self.poly_len())
    }

    /// Forward NTT of every limb of every polynomial in `data` (rayon across limbs).
    pub fn forward(&self, data: &mut [u64]) -> Result<(), KernelError> {
        self.count(data)?;
        data.par_chunks_exact_mut(self.n)
            .enumerate()
            .for_each(|(row, limb)| self.tables[row % self.limbs()].forward(limb));
        Ok(())
    }

    /// Inverse NTT of every limb of every polynomial in `data`.
    pub fn inverse(&self, data: &mut [u64]) -> Result<(), KernelError> {
        self.count(data)?;
        data.par_chunks_exact_mut(self.n)
            .enumerate()
            .for_each(|(row, limb)| self.tables[row % self.limbs()].inverse(limb));
        Ok(())
    }
}
