//! What the main server answers besides sealed results: small JSON documents (an
//! acknowledgement, the server's status) and, for a query, the results envelope framed
//! with what the server measured and which units the results leave out.

use crate::{DeployError, Result};
use protocol::roles::{Coverage, MainServer, QueryStats};
use serde::{Deserialize, Serialize};

/// The largest JSON part of an answer (a coverage list of missing units is the largest).
const MAX_JSON: u64 = 16 << 20;

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| DeployError::Input(format!("encoding an answer: {e}")))
}

fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| DeployError::Input(format!("the main server's {what} is malformed: {e}")))
}

/// Acknowledges setup, enrolment and updates.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ack {
    /// The deployment served (hex).
    pub deployment: Option<String>,
    /// Users enrolled after the request.
    pub users: usize,
    /// Gallery units per cluster.
    pub per_cluster: Vec<usize>,
    /// An update this server had applied already (a retry): nothing changed.
    #[serde(default)]
    pub duplicate: bool,
}

impl Ack {
    /// The state of `server`.
    pub fn of(server: &MainServer) -> Self {
        let placement = server.placement();
        let clusters = placement.iter().map(|(_, c)| c + 1).max().unwrap_or(0);
        let mut per_cluster = vec![0; clusters];
        for (_, c) in placement {
            per_cluster[c] += 1;
        }
        Self {
            deployment: server.deployment_id().map(|d| format!("{d:016x}")),
            users: server.users(),
            per_cluster,
            duplicate: false,
        }
    }

    /// As JSON.
    pub fn encode(&self) -> Result<Vec<u8>> {
        to_json(self)
    }

    /// From JSON.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        from_json(bytes, "acknowledgement")
    }
}

/// `status`: what a main server holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerStatus {
    /// The deployment served (hex), if set up.
    pub deployment: Option<String>,
    /// Users enrolled.
    pub users: usize,
    /// Clusters configured.
    pub clusters: usize,
    /// Gallery units placed.
    pub units: usize,
    /// `strict` or `partial`.
    pub policy: String,
}

impl ServerStatus {
    /// As JSON.
    pub fn encode(&self) -> Result<Vec<u8>> {
        to_json(self)
    }

    /// From JSON.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        from_json(bytes, "status")
    }
}

/// The main server's own view of a query, in nanoseconds and bytes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerStages {
    /// Envelope and signature check.
    pub check_ns: u64,
    /// Fan-out until the last cluster answered (socket transfers and evaluation).
    pub clusters_wall_ns: u64,
    /// Evaluation time each cluster reported.
    pub cluster_eval_ns: Vec<u64>,
    /// Parsing the clusters' answers.
    pub gather_ns: u64,
    /// Summing them into results.
    pub compress_ns: u64,
    /// Serializing the results.
    pub serialize_ns: u64,
    /// Query bytes sent to the clusters, all together.
    pub fanout_bytes: usize,
    /// Bytes received from the clusters, all together.
    pub gather_bytes: usize,
    /// Result ciphertexts.
    pub result_ciphertexts: usize,
}

impl From<&QueryStats> for ServerStages {
    fn from(s: &QueryStats) -> Self {
        let ns = |d: std::time::Duration| d.as_nanos() as u64;
        Self {
            check_ns: ns(s.check),
            clusters_wall_ns: ns(s.clusters_wall),
            cluster_eval_ns: s.cluster_eval.iter().map(|d| ns(*d)).collect(),
            gather_ns: ns(s.gather),
            compress_ns: ns(s.compress),
            serialize_ns: ns(s.serialize),
            fanout_bytes: s.fanout_bytes,
            gather_bytes: s.gather_bytes,
            result_ciphertexts: s.result_ciphertexts,
        }
    }
}

/// A query's answer besides the results envelope.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdentifyAnswer {
    /// Users of the gallery the results belong to.
    pub users: usize,
    /// Units (blindtouch ciphertexts, columnar groups) the results leave out.
    pub missing_units: Vec<usize>,
    /// Clusters that failed (index, error), under the partial policy.
    pub failed: Vec<(usize, String)>,
    /// What the main server measured.
    pub stages: ServerStages,
}

impl IdentifyAnswer {
    /// The answer to a query the main server evaluated.
    pub fn new(users: usize, stats: &QueryStats, coverage: &Coverage) -> Self {
        Self {
            users,
            missing_units: coverage.missing_units.clone(),
            failed: coverage.failed.clone(),
            stages: stats.into(),
        }
    }

    /// Frames it with the results: JSON length (8 bytes LE), JSON, results envelope.
    pub fn encode(&self, results: &[u8]) -> Result<Vec<u8>> {
        let json = to_json(self)?;
        let mut out = Vec::with_capacity(8 + json.len() + results.len());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(results);
        Ok(out)
    }

    /// Splits a framed answer into this and the results envelope.
    pub fn decode(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let bad = |m: &str| DeployError::Input(format!("the main server's answer {m}"));
        let len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| bad("is truncated"))?;
        if len > MAX_JSON || len > (bytes.len() - 8) as u64 {
            return Err(bad(&format!(
                "announces a {len}-byte header it does not carry"
            )));
        }
        let (json, results) = bytes[8..].split_at(len as usize);
        Ok((from_json(json, "answer")?, results))
    }
}
