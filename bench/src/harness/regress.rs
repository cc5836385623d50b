//! `touchstone compare` (two runs side by side) and `touchstone regress` (a run against a
//! committed baseline, failing on an accuracy drop or a worse timing ratio).
//!
//! Timings are judged as ratios to a reference scheme measured in the same run, so a
//! slower or busier machine moves both and the ratio stays; accuracy is compared directly.

use super::rows::{self, Row};
use crate::format::Table;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

fn load(dir: &Path) -> Result<Vec<Row>> {
    let (_, rows) = super::report::load(dir)?;
    if rows.is_empty() {
        bail!("{} holds no rows (is it a run directory?)", dir.display());
    }
    Ok(rows)
}

fn short(r: &Row) -> String {
    format!(
        "{} {} users={} clusters={}{}{}",
        r.point.scheme,
        r.point.engine_label(),
        r.point.users,
        r.clusters(),
        if r.point.preprocessing == "none" {
            String::new()
        } else {
            format!(" prep={}", r.point.preprocessing)
        },
        if r.point.deployment.deployed() {
            format!(" {}", r.point.deployment)
        } else {
            String::new()
        }
    )
}

/// Prints runs `a` and `b` side by side with ratios b / a, joined on the sweep point.
pub fn compare(a: &Path, b: &Path) -> Result<String> {
    let (ra, rb) = (load(a)?, load(b)?);
    let mut t = Table::new(&[
        "run",
        "total a (ms)",
        "total b (ms)",
        "b / a",
        "F1 a",
        "F1 b",
        "EER a",
        "EER b",
    ]);
    let mut matched = 0;
    let by_key: std::collections::HashMap<&str, &Row> =
        rb.iter().map(|y| (y.key.as_str(), y)).collect();
    for x in &ra {
        let Some(&y) = by_key.get(x.key.as_str()) else {
            continue;
        };
        matched += 1;
        let (ta, tb) = (x.stage("total").median, y.stage("total").median);
        let f = |r: &Row, g: fn(&rows::AccuracyCols) -> f64| {
            r.accuracy
                .as_ref()
                .map_or("-".into(), |a| format!("{:.2}%", 100.0 * g(a)))
        };
        t.row(vec![
            short(x),
            format!("{ta:.3}"),
            format!("{tb:.3}"),
            format!("{:.3}", tb / ta.max(1e-9)),
            f(x, |a| a.f1),
            f(y, |a| a.f1),
            f(x, |a| a.eer),
            f(y, |a| a.eer),
        ]);
    }
    if matched == 0 {
        bail!("{} and {} share no sweep points", a.display(), b.display());
    }
    Ok(format!(
        "a = {}\nb = {}\n\n{}",
        a.display(),
        b.display(),
        t.render()
    ))
}

/// A committed baseline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// The config the baseline was made from (for the reader).
    pub config: String,
    /// Timing ratios are each row's median total over this scheme's at the same users,
    /// seed, preprocessing and bits, in the same run.
    pub reference: Reference,
    pub tolerance: Tolerance,
    pub rows: Vec<BaselineRow>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub scheme: protocol::SchemeKind,
    #[serde(default)]
    pub engine: Option<protocol::ColumnarEngine>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// Allowed absolute drop of accuracy, F1 and rank-1, and rise of EER.
    pub accuracy: f64,
    /// Allowed relative growth of a timing ratio (0.5: 50% worse).
    pub ratio: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRow {
    pub key: String,
    #[serde(default)]
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub f1: Option<f64>,
    #[serde(default)]
    pub eer: Option<f64>,
    #[serde(default)]
    pub rank1: Option<f64>,
    #[serde(default)]
    pub total_ratio: Option<f64>,
}

fn reference_total(rows: &[Row], r: &Row, reference: &Reference) -> Option<f64> {
    rows.iter()
        .find(|x| {
            x.point.scheme == reference.scheme
                && reference.engine.is_none_or(|e| x.point.engine == e)
                && x.point.users == r.point.users
                && x.point.seed == r.point.seed
                && x.point.preprocessing == r.point.preprocessing
                && x.point.bits == r.point.bits
                // A deployed row's ratio is to the reference deployed the same way.
                && x.point.deployment == r.point.deployment
        })
        .map(|x| x.stage("total").median)
}

/// Writes a baseline from a run (the current numbers, with the given tolerances).
pub fn write_baseline(
    run: &Path,
    path: &Path,
    config: &str,
    reference: Reference,
    tolerance: Tolerance,
) -> Result<()> {
    let rows = load(run)?;
    let base = Baseline {
        config: config.to_string(),
        rows: rows
            .iter()
            .map(|r| BaselineRow {
                key: r.key.clone(),
                accuracy: r.accuracy.as_ref().map(|a| a.accuracy),
                f1: r.accuracy.as_ref().map(|a| a.f1),
                eer: r.accuracy.as_ref().map(|a| a.eer),
                rank1: r.accuracy.as_ref().map(|a| a.rank1),
                total_ratio: reference_total(&rows, r, &reference)
                    .map(|t| r.stage("total").median / t.max(1e-9)),
            })
            .collect(),
        reference,
        tolerance,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, serde_yaml::to_string(&base)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Checks a run against a baseline; Ok(report) when everything holds, Err(report) with
/// the failing lines marked when something regressed.
pub fn regress(baseline_path: &Path, run: &Path) -> Result<String> {
    let text = std::fs::read_to_string(baseline_path)
        .with_context(|| format!("reading baseline {}", baseline_path.display()))?;
    let base: Baseline = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {e}", baseline_path.display())
    })?;
    let rows = load(run)?;
    let tol = &base.tolerance;
    let mut t = Table::new(&["run", "metric", "baseline", "now", "limit", "status"]);
    let mut failures = 0;
    let check = |t: &mut Table,
                 who: &str,
                 metric: &str,
                 b: f64,
                 now: Option<f64>,
                 limit: f64,
                 higher_is_better: bool|
     -> usize {
        let ok = now.is_some_and(|v| {
            if higher_is_better {
                v >= limit
            } else {
                v <= limit
            }
        });
        t.row(vec![
            who.to_string(),
            metric.to_string(),
            format!("{b:.4}"),
            now.map_or("missing".into(), |v| format!("{v:.4}")),
            format!("{} {limit:.4}", if higher_is_better { "≥" } else { "≤" }),
            if ok { "ok".into() } else { "REGRESSED".into() },
        ]);
        usize::from(!ok)
    };
    let by_key: std::collections::HashMap<&str, &Row> =
        rows.iter().map(|r| (r.key.as_str(), r)).collect();
    for b in &base.rows {
        let Some(&r) = by_key.get(b.key.as_str()) else {
            failures += 1;
            t.row(vec![
                b.key.clone(),
                "row".into(),
                "present".into(),
                "missing".into(),
                "-".into(),
                "REGRESSED".into(),
            ]);
            continue;
        };
        let who = short(r);
        let acc = r.accuracy.as_ref();
        if let Some(v) = b.accuracy {
            failures += check(
                &mut t,
                &who,
                "accuracy",
                v,
                acc.map(|a| a.accuracy),
                v - tol.accuracy,
                true,
            );
        }
        if let Some(v) = b.f1 {
            failures += check(
                &mut t,
                &who,
                "F1",
                v,
                acc.map(|a| a.f1),
                v - tol.accuracy,
                true,
            );
        }
        if let Some(v) = b.rank1 {
            failures += check(
                &mut t,
                &who,
                "rank-1",
                v,
                acc.map(|a| a.rank1),
                v - tol.accuracy,
                true,
            );
        }
        if let Some(v) = b.eer {
            failures += check(
                &mut t,
                &who,
                "EER",
                v,
                acc.map(|a| a.eer),
                v + tol.accuracy,
                false,
            );
        }
        if let Some(v) = b.total_ratio {
            let now = reference_total(&rows, r, &base.reference)
                .map(|t| r.stage("total").median / t.max(1e-9));
            failures += check(
                &mut t,
                &who,
                "total / reference",
                v,
                now,
                v * (1.0 + tol.ratio),
                false,
            );
        }
        if r.exact == Some(false) {
            failures += 1;
            t.row(vec![
                who,
                "exact".into(),
                "yes".into(),
                "NO".into(),
                "yes".into(),
                "REGRESSED".into(),
            ]);
        }
    }
    let report = format!(
        "baseline {} vs run {} (reference {}{}, tolerance accuracy {} / ratio {})\n\n{}",
        baseline_path.display(),
        run.display(),
        base.reference.scheme,
        base.reference
            .engine
            .map_or(String::new(), |e| format!(" engine {e}")),
        tol.accuracy,
        tol.ratio,
        t.render()
    );
    if failures > 0 {
        bail!("{report}\n{failures} check(s) regressed");
    }
    Ok(report)
}
