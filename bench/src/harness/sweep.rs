//! Expanding a config's axes into the points of a sweep.

use super::config::{DeploymentMode, ExperimentConfig, AXES};
use anyhow::{bail, Result};
use protocol::{ColumnarEngine, SchemeKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One run of a sweep: a value for every axis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Point {
    pub seed: u64,
    pub preprocessing: String,
    pub scheme: SchemeKind,
    pub engine: ColumnarEngine,
    pub params: String,
    pub encrypted_weights: bool,
    pub bits: u32,
    pub users: usize,
    /// For `remote` points 0: the main server has the clusters it has (the row records
    /// how many).
    pub clusters: usize,
    pub probes: usize,
    /// Where the roles ran; rows written before deployments existed are in-process.
    #[serde(default)]
    pub deployment: DeploymentMode,
}

impl Point {
    /// A stable key naming this point in rows.jsonl (resume matches on it). In-process
    /// points keep the key they had before deployments existed, so older runs resume,
    /// merge and compare.
    pub fn key(&self) -> String {
        let mut key = format!(
            "seed={} preprocessing={} scheme={} engine={} params={} ew={} bits={} users={} clusters={} probes={}",
            self.seed,
            self.preprocessing,
            self.scheme,
            self.engine,
            self.params,
            self.encrypted_weights,
            self.bits,
            self.users,
            self.clusters,
            self.probes
        );
        if self.deployment.deployed() {
            key.push_str(&format!(" deployment={}", self.deployment));
        }
        key
    }

    /// What decides the gallery a deployment holds and the client it serves: every axis
    /// but the probe count, the clusters and the preprocessing (which the latency run's
    /// synthetic templates do not use).
    pub fn gallery_key(&self) -> String {
        format!(
            "scheme={} engine={} params={} ew={} bits={} seed={} users={}",
            self.scheme,
            self.engine_label(),
            self.params,
            self.encrypted_weights,
            self.bits,
            self.seed,
            self.users
        )
    }

    /// The engine that matters for this scheme (`-` where it does not apply).
    pub fn engine_label(&self) -> String {
        if self.scheme == SchemeKind::Columnar {
            self.engine.to_string()
        } else {
            "-".into()
        }
    }
}

/// Every point of the sweep, in a fixed order (axes in `AXES` order, last varying fastest).
// The index walks several axes of one zipped dimension in step.
#[allow(clippy::needless_range_loop)]
pub fn expand(config: &ExperimentConfig) -> Result<Vec<Point>> {
    let m = &config.matching;
    let prep = config
        .data
        .as_ref()
        .map_or_else(|| vec!["none".to_string()], |d| d.preprocessing.0.clone());
    let to_strings = |v: Vec<String>| v;
    let axes: BTreeMap<&str, Vec<String>> = [
        (
            "seed",
            config.seed.0.iter().map(|v| v.to_string()).collect(),
        ),
        ("preprocessing", to_strings(prep)),
        ("scheme", m.scheme.0.iter().map(|v| v.to_string()).collect()),
        ("engine", m.engine.0.iter().map(|v| v.to_string()).collect()),
        ("params", m.params.0.clone()),
        (
            "encrypted_weights",
            m.encrypted_weights
                .0
                .iter()
                .map(|v| v.to_string())
                .collect(),
        ),
        ("bits", m.bits.0.iter().map(|v| v.to_string()).collect()),
        ("users", m.users.0.iter().map(|v| v.to_string()).collect()),
        (
            "clusters",
            m.clusters.0.iter().map(|v| v.to_string()).collect(),
        ),
        ("probes", m.probes.0.iter().map(|v| v.to_string()).collect()),
        (
            "deployment",
            config
                .deployment
                .mode
                .0
                .iter()
                .map(|v| v.to_string())
                .collect(),
        ),
    ]
    .into_iter()
    .collect();
    for name in &config.zip {
        let len = axes[name.as_str()].len();
        if let Some(other) = config.zip.iter().find(|o| axes[o.as_str()].len() != len) {
            bail!(
                "zip: axes `{name}` ({len} values) and `{other}` ({} values) differ in length",
                axes[other.as_str()].len()
            );
        }
    }
    // Dimensions: each free axis alone, and the zipped axes as one dimension.
    let mut dims: Vec<Vec<&str>> = Vec::new();
    for name in AXES {
        if config.zip.iter().any(|z| z == name) {
            if !dims.iter().any(|d| d.contains(&name)) {
                dims.push(config.zip.iter().map(String::as_str).collect());
            }
        } else {
            dims.push(vec![name]);
        }
    }
    let mut assignments: Vec<BTreeMap<&str, String>> = vec![BTreeMap::new()];
    for dim in &dims {
        let len = axes[dim[0]].len();
        let mut next = Vec::with_capacity(assignments.len() * len);
        for partial in &assignments {
            for i in 0..len {
                let mut a = partial.clone();
                for name in dim {
                    a.insert(name, axes[name][i].clone());
                }
                next.push(a);
            }
        }
        assignments = next;
    }
    let mut points: Vec<Point> = Vec::with_capacity(assignments.len());
    let mut seen: HashSet<Point> = HashSet::with_capacity(assignments.len());
    for a in assignments {
        let point = Point {
            seed: a["seed"].parse()?,
            preprocessing: a["preprocessing"].clone(),
            scheme: a["scheme"].parse()?,
            engine: a["engine"].parse()?,
            params: a["params"].clone(),
            encrypted_weights: a["encrypted_weights"].parse()?,
            bits: a["bits"].parse()?,
            users: a["users"].parse()?,
            clusters: a["clusters"].parse()?,
            probes: a["probes"].parse()?,
            deployment: a["deployment"].parse()?,
        };
        if point.users == 0 || point.clusters == 0 || point.probes == 0 {
            bail!(
                "users, clusters and probes must be at least 1 (point {})",
                point.key()
            );
        }
        // Axes that do not apply to a scheme would only repeat the same run.
        let mut canonical = point.clone();
        if canonical.scheme != SchemeKind::Columnar {
            canonical.engine = ColumnarEngine::default();
        }
        if canonical.scheme != SchemeKind::BlindTouch {
            canonical.encrypted_weights = false;
        }
        if !canonical.scheme.encrypted() {
            canonical.params = "default".into();
            canonical.clusters = 1;
        }
        if canonical.deployment == DeploymentMode::Remote {
            canonical.clusters = 0;
        }
        if seen.insert(canonical.clone()) {
            points.push(canonical);
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::config::parse;
    use std::path::Path;

    fn points(text: &str) -> Result<Vec<Point>> {
        expand(&parse(text, Path::new("t.yaml"))?)
    }

    #[test]
    fn lists_expand_to_their_product() {
        let p = points("name: t\nmatching:\n  scheme: [blindtouch, columnar]\n  users: [1, 2, 3]\n  clusters: [1, 2]\n").unwrap();
        assert_eq!(p.len(), 12);
        let unique: std::collections::HashSet<String> = p.iter().map(Point::key).collect();
        assert_eq!(unique.len(), 12);
    }

    #[test]
    fn zipped_axes_advance_together() {
        let p = points("name: t\nzip: [users, clusters]\nmatching:\n  scheme: columnar\n  users: [1, 2, 3]\n  clusters: [1, 2, 3]\n").unwrap();
        let pairs: Vec<(usize, usize)> = p.iter().map(|p| (p.users, p.clusters)).collect();
        assert_eq!(pairs, vec![(1, 1), (2, 2), (3, 3)]);
        let e = points("name: t\nzip: [users, clusters]\nmatching:\n  scheme: columnar\n  users: [1, 2]\n  clusters: [1, 2, 3]\n").unwrap_err();
        assert!(format!("{e}").contains("differ in length"));
    }

    #[test]
    fn axes_that_do_not_apply_collapse() {
        // plain has no engine, parameters or clusters: one run per user count.
        let p = points("name: t\nmatching:\n  scheme: plain\n  engine: [fhe, cpu]\n  users: [1, 2]\n  clusters: [1, 3]\n").unwrap();
        assert_eq!(p.len(), 2);
    }
}
