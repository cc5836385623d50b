//! Upper bounds on every size a user or a message can ask for, checked before anything is
//! allocated or built: an absurd request is a clear error, not an abort or an hour of work.
//!
//! The bounds are far above what the paper and the sweeps use (Blind-Touch: 5,000 users on
//! 3 clusters; touchstone's sweeps: up to 1,000,000 users and 16 clusters) and far below
//! what would exhaust a machine.

use crate::error::{ProtocolError, Result};

/// Enrolled users in one deployment (10 million: ~1,221 columnar groups at N = 8192).
pub const MAX_USERS: usize = 10_000_000;
/// Cluster servers behind one main server (in process: one thread and one parameter set
/// each).
pub const MAX_CLUSTERS: usize = 64;
/// Probes identified in one run.
pub const MAX_PROBES: usize = 100_000;
/// Template length (Blind-Touch's is 16).
pub const MAX_FEATURES: usize = 4096;
/// Quantization bits: codes are signed integers of 2…16 bits (scores must fit BFV's t).
pub const BITS: std::ops::RangeInclusive<u32> = 2..=16;

fn bound(what: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(ProtocolError::Input(format!(
            "{what} must be in 1..={max}, got {value}"
        )));
    }
    Ok(())
}

/// 1 ≤ users ≤ [`MAX_USERS`].
pub fn check_users(users: usize) -> Result<()> {
    bound("users", users, MAX_USERS)
}

/// 1 ≤ clusters ≤ [`MAX_CLUSTERS`].
pub fn check_clusters(clusters: usize) -> Result<()> {
    bound("clusters", clusters, MAX_CLUSTERS)
}

/// 1 ≤ probes ≤ [`MAX_PROBES`].
pub fn check_probes(probes: usize) -> Result<()> {
    bound("probes", probes, MAX_PROBES)
}

/// Quantization bits in [`BITS`]; `what` names them ("template", "weight").
pub fn check_bits(what: &str, bits: u32) -> Result<()> {
    if !BITS.contains(&bits) {
        return Err(ProtocolError::Input(format!(
            "{what} quantization bits must be in {}..={}, got {bits}",
            BITS.start(),
            BITS.end()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_refuse_zero_and_absurd_values() {
        assert!(check_users(1).is_ok() && check_users(MAX_USERS).is_ok());
        assert!(check_users(0).is_err());
        let e = check_clusters(100_000).unwrap_err().to_string();
        assert!(e.contains("clusters must be in 1..=64"), "{e}");
        assert!(check_probes(MAX_PROBES + 1).is_err());
        assert!(check_bits("template", 8).is_ok());
        for bad in [0, 1, 17, 64, 65, u32::MAX] {
            assert!(check_bits("template", bad).is_err(), "{bad}");
        }
    }
}
