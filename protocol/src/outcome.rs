//! What one enrolment and one query produce: scores, decisions, 1:N ranking, per-stage
//! timings and bytes on every link. Shared by every scheme so tables line up.

use crate::messages::SetupSizes;
use std::time::Duration;

/// Scores of every enrolled user for one probe.
#[derive(Clone, Debug, PartialEq)]
pub enum Scores {
    /// Float logits (`plain`).
    Float(Vec<f64>),
    /// Exact integer scores (`quantized` and every encrypted scheme).
    Integer(Vec<i64>),
}

impl Scores {
    /// Number of users scored.
    pub fn len(&self) -> usize {
        match self {
            Scores::Float(s) => s.len(),
            Scores::Integer(s) => s.len(),
        }
    }

    /// True when no user is enrolled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The integer scores, if these are integer scores.
    pub fn integers(&self) -> Option<&[i64]> {
        match self {
            Scores::Integer(s) => Some(s),
            Scores::Float(_) => None,
        }
    }

    /// Every score as f64, in user order (for metrics and curves).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Scores::Float(s) => s.clone(),
            Scores::Integer(s) => s.iter().map(|&v| v as f64).collect(),
        }
    }

    /// Score of user `u` as f64 (for tables and curves).
    pub fn get(&self, u: usize) -> f64 {
        match self {
            Scores::Float(s) => s[u],
            Scores::Integer(s) => s[u] as f64,
        }
    }
}

/// The client's decision for one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Users whose score reaches the threshold, ascending.
    pub accepted: Vec<usize>,
    /// Every user, best score first; ties broken by the lower user index.
    pub ranking: Vec<usize>,
}

impl Decision {
    /// Decides on integer scores with an integer threshold.
    pub fn from_integers(scores: &[i64], threshold: i64) -> Self {
        let accepted = (0..scores.len())
            .filter(|&u| scores[u] >= threshold)
            .collect();
        let mut ranking: Vec<usize> = (0..scores.len()).collect();
        ranking.sort_by(|&a, &b| scores[b].cmp(&scores[a]).then(a.cmp(&b)));
        Self { accepted, ranking }
    }

    /// Decides on float scores with a float threshold.
    pub fn from_floats(scores: &[f64], threshold: f64) -> Self {
        let accepted = (0..scores.len())
            .filter(|&u| scores[u] >= threshold)
            .collect();
        let mut ranking: Vec<usize> = (0..scores.len()).collect();
        ranking.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        Self { accepted, ranking }
    }

    /// The best-ranked user, if any.
    pub fn best(&self) -> Option<usize> {
        self.ranking.first().copied()
    }
}

/// Wall time of each stage of one query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageTimings {
    /// Client: quantize, encode and encrypt the query.
    pub encrypt: Duration,
    /// Client serializes the query; main server checks its envelope. No transfer is in
    /// this stage: with the in-process transport no byte crosses a network (the sizes are
    /// in [`Traffic`]).
    pub serialize_query: Duration,
    /// Each cluster's evaluation (compute only, reported by the cluster), by cluster index;
    /// clusters with no shard report zero.
    pub cluster_eval: Vec<Duration>,
    /// Main server: fan-out to all clusters until the last answered (includes their
    /// deserialization, evaluation and serialization, run in parallel).
    pub clusters_wall: Duration,
    /// Main server parses the clusters' results.
    pub gather: Duration,
    /// Main server packs / sums results into as few ciphertexts as the layout allows.
    pub compress: Duration,
    /// Main server serializes the results; client opens and parses them (no transfer, as
    /// for `serialize_query`).
    pub serialize_results: Duration,
    /// Client decrypts and decodes.
    pub decrypt: Duration,
    /// Client reads scores out of slots, thresholds and ranks.
    pub decide: Duration,
}

impl StageTimings {
    /// End-to-end latency: the sum of the sequential stages.
    pub fn total(&self) -> Duration {
        self.encrypt
            + self.serialize_query
            + self.clusters_wall
            + self.gather
            + self.compress
            + self.serialize_results
            + self.decrypt
            + self.decide
    }

    /// The slowest cluster's evaluation.
    pub fn slowest_cluster(&self) -> Duration {
        self.cluster_eval.iter().copied().max().unwrap_or_default()
    }
}

/// Bytes on each link for one query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Client → main server.
    pub upload: usize,
    /// Main server → clusters, all clusters together.
    pub fanout: usize,
    /// Clusters → main server, all together.
    pub gather: usize,
    /// Main server → client.
    pub download: usize,
    /// Ciphertexts the client receives.
    pub result_ciphertexts: usize,
}

/// One probe's full outcome.
#[derive(Clone, Debug)]
pub struct MatchOutcome {
    /// Every user's score.
    pub scores: Scores,
    /// Threshold decision and ranking.
    pub decision: Decision,
    /// Stage timings.
    pub timings: StageTimings,
    /// Bytes per link.
    pub traffic: Traffic,
    /// Smallest noise budget (bits) left in any result ciphertext, measured by the client
    /// outside the timed stages; None for unencrypted schemes or when not measured.
    pub noise_budget_bits: Option<f64>,
}

/// What enrolling a gallery cost and how it is stored.
#[derive(Clone, Debug, Default)]
pub struct EnrolmentReport {
    /// Users enrolled.
    pub users: usize,
    /// Client: secret key and evaluation keys (each counted once).
    pub keygen: Duration,
    /// Main server checks the evaluation material and every cluster stores it.
    pub setup_distribute: Duration,
    /// Sizes of the evaluation material handed to the servers.
    pub setup: SetupSizes,
    /// Client: quantize, pack and encrypt the gallery.
    pub encrypt: Duration,
    /// Main server shards and every cluster parses and stores its shard.
    pub distribute: Duration,
    /// Bytes of the enrolment message.
    pub enrolment_bytes: usize,
    /// Gallery ciphertexts stored over all clusters.
    pub stored_ciphertexts: usize,
    /// Serialized bytes stored over all clusters.
    pub stored_bytes: usize,
    /// Gallery ciphertexts held by each cluster.
    pub per_cluster: Vec<usize>,
    /// The engine the clusters evaluate with (`fhe`, `cpu`, `cuda`; empty in the clear).
    pub engine: String,
    /// Why the engine differs from the one asked for (e.g. no CUDA device).
    pub engine_fallback: Option<String>,
}

impl EnrolmentReport {
    /// Ciphertexts stored per enrolled user (1/512 for both layouts at N = 8192, d = 16).
    pub fn ciphertexts_per_user(&self) -> f64 {
        self.stored_ciphertexts as f64 / self.users.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_breaks_ties_by_index_and_threshold_is_inclusive() {
        let d = Decision::from_integers(&[5, 9, 5, -1], 5);
        assert_eq!(d.ranking, vec![1, 0, 2, 3]);
        assert_eq!(d.accepted, vec![0, 1, 2]);
        assert_eq!(d.best(), Some(1));
        let f = Decision::from_floats(&[0.5, 0.1, 0.9], 0.5);
        assert_eq!(f.ranking, vec![2, 0, 1]);
        assert_eq!(f.accepted, vec![0, 2]);
    }
}
