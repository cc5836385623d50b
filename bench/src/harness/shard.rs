//! Splitting a sweep over several processes (`touchstone run --shard I/N`), e.g. the tasks
//! of a Slurm job array, and what each shard records about where and when it ran.
//!
//! The assignment is a pure function of the expanded points and N, so every task computes
//! the same partition on its own: points are taken in decreasing estimated cost (ties in
//! sweep order) and each goes to the shard with the least total cost so far (ties to the
//! lowest index) — the longest-processing-time rule, which keeps the slowest shard within
//! 4/3 of the best possible balance.

use super::sweep::Point;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Most shards one sweep may be split into (Slurm's default `MaxArraySize` is 1001).
pub const MAX_SHARDS: usize = 1000;

/// Shard `index` of `count`, 1-based like Slurm's `--array=1-N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (i, n) = s
            .split_once('/')
            .with_context(|| format!("--shard `{s}`: expected I/N, e.g. 2/8"))?;
        let parse = |v: &str, what: &str| -> Result<usize> {
            v.trim()
                .parse()
                .with_context(|| format!("--shard `{s}`: {what} `{v}` is not a whole number"))
        };
        let (index, count) = (parse(i, "I")?, parse(n, "N")?);
        if count == 0 || count > MAX_SHARDS {
            bail!("--shard `{s}`: N must be in 1..={MAX_SHARDS}");
        }
        if index == 0 || index > count {
            bail!("--shard `{s}`: I must be in 1..=N (shards are numbered from 1)");
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard's own folder inside a shared run folder.
    pub fn folder(&self, run_dir: &Path) -> PathBuf {
        run_dir
            .join("shards")
            .join(format!("{}-of-{}", self.index, self.count))
    }

    /// The points this shard runs, in sweep order.
    pub fn points<'a>(&self, points: &'a [Point]) -> Vec<&'a Point> {
        let owner = assign(points, self.count);
        points
            .iter()
            .zip(owner)
            .filter(|(_, o)| *o == self.index)
            .map(|(p, _)| p)
            .collect()
    }
}

/// A relative estimate of a point's run time, for balancing only: the latency run's work
/// grows with users × (probes + 1) (enrolment and every query touch the whole gallery);
/// plaintext schemes cost about a hundredth of an encrypted one per user; every point
/// pays a fixed part (key generation, setup) worth about 1,000 users, and a deployed
/// point about 3,000 more (starting its server processes, TLS, the transfers).
pub fn cost(point: &Point) -> f64 {
    let per_user = if point.scheme.encrypted() { 1.0 } else { 0.01 };
    let fixed = if point.deployment.deployed() {
        4000.0
    } else {
        1000.0
    };
    fixed + per_user * point.users as f64 * (point.probes as f64 + 1.0)
}

/// The shard (1-based) of every point, in the points' order.
pub fn assign(points: &[Point], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..points.len()).collect();
    // Stable sort: equal costs keep sweep order.
    order.sort_by(|&a, &b| cost(&points[b]).total_cmp(&cost(&points[a])));
    let mut load = vec![0.0f64; count];
    let mut owner = vec![0usize; points.len()];
    for i in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("count ≥ 1");
        load[least] += cost(&points[i]);
        owner[i] = least + 1;
    }
    owner
}

/// One attempt of a shard: a first run, or a resubmission that resumed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The checkout's commit when the attempt started (`+dirty` if modified): where the
    /// binary was most likely built from; the build itself is the manifest's `versions`.
    #[serde(default)]
    pub git_commit: String,
    pub host: String,
    pub started: String,
    pub finished: Option<String>,
    /// Rows this attempt added.
    pub rows: usize,
    /// Slurm's ids when the attempt ran as a Slurm job.
    pub slurm: Option<SlurmIds>,
}

/// Slurm's environment of a batch job, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlurmIds {
    pub job_id: String,
    pub array_job_id: Option<String>,
    pub array_task_id: Option<String>,
}

impl SlurmIds {
    /// From `SLURM_JOB_ID`, `SLURM_ARRAY_JOB_ID` and `SLURM_ARRAY_TASK_ID`, when set.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(Self {
            job_id: var("SLURM_JOB_ID")?,
            array_job_id: var("SLURM_ARRAY_JOB_ID"),
            array_task_id: var("SLURM_ARRAY_TASK_ID"),
        })
    }
}

/// What a shard's manifest records about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub shard: Shard,
    /// Points assigned to the shard.
    pub points: usize,
    pub attempts: Vec<Attempt>,
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{config, sweep};
    use std::collections::HashSet;

    #[test]
    fn parses_and_bounds_shard_specs() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        for bad in ["0/3", "4/3", "1/0", "x/2", "2", "1/1001", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} accepted");
        }
    }

    /// Every committed config's sweep, split into 1…7 shards: each point lands in exactly
    /// one shard, and the shards' point lists (as each task computes them alone) cover
    /// the sweep.
    #[test]
    fn sharding_partitions_every_committed_config() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let (mut checked, mut studies) = (0, 0);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // Training configs are not experiments.
            if path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("train-")
            {
                continue;
            }
            // Studies (BPKEM, scheme and preprocessing comparisons) are not sweeps and
            // refuse --shard.
            if crate::harness::study::kind(&text).is_some() {
                studies += 1;
                continue;
            }
            // (Every check but the model and data folders, which live at the repository root.)
            let config = config::parse_stored(&text, &path)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            let points = sweep::expand(&config).unwrap();
            let keys: Vec<String> = points.iter().map(Point::key).collect();
            for count in 1..=7 {
                let owner = assign(&points, count);
                assert!(owner.iter().all(|&o| (1..=count).contains(&o)));
                let mut seen = HashSet::new();
                for index in 1..=count {
                    for p in (Shard { index, count }).points(&points) {
                        assert!(
                            seen.insert(p.key()),
                            "{}: {} in two shards of {count}",
                            path.display(),
                            p.key()
                        );
                    }
                }
                assert_eq!(seen.len(), keys.len(), "{}", path.display());
                assert!(keys.iter().all(|k| seen.contains(k)));
            }
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} experiment configs found");
        assert_eq!(
            studies, 3,
            "bpkem.yaml, schemes-compare.yaml and preprocessing-compare.yaml"
        );
    }

    #[test]
    fn balances_by_cost() {
        let text = "name: t\nmatching:\n  scheme: columnar\n  users: [100, 200, 400, 800, 1600, 6400]\n  probes: 4\n";
        let config = config::parse(text, Path::new("t.yaml")).unwrap();
        let points = sweep::expand(&config).unwrap();
        let owner = assign(&points, 2);
        // The largest point alone on one shard, the rest on the other.
        let big = points.iter().position(|p| p.users == 6400).unwrap();
        assert!(owner
            .iter()
            .enumerate()
            .all(|(i, &o)| (o == owner[big]) == (i == big)));
    }
}
