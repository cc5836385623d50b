//! One row per run: every axis, accuracy, per-stage timings (median and spread over the
//! repetitions), bytes, noise budget and the machine. Rows are appended to rows.jsonl as
//! they finish (the resume log) and exported to rows.csv and rows.parquet with polars.

use super::sweep::Point;
use anyhow::bail;
use anyhow::{Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// Median and spread of one stage over all timed queries, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    /// From samples in milliseconds.
    pub fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        Self {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }
}

/// Stage names in pipeline order (the stage-breakdown figure stacks them in this order).
/// `serialize_query` and `serialize_results` time serialization and envelope checks.
/// `upload`, `server_other` and `download` exist only where bytes cross a socket (a
/// deployed point): `upload` is the client's query until the main server had all of it,
/// `download` the server's `sending` marker until the answer's last byte, `server_other` the main server's
/// time between the two outside its own stages (reassembling the request, framing the
/// answer). In-process rows leave them empty, never zero: a stage labelled "upload" must
/// time an upload.
pub const STAGES: [&str; 12] = [
    "encrypt",
    "serialize_query",
    "upload",
    "clusters_wall",
    "gather",
    "compress",
    "serialize_results",
    "server_other",
    "download",
    "decrypt",
    "decide",
    "total",
];

/// The stages of rows written before deployments existed (rows.jsonl holds their
/// statistics by position, so a row of 9 stages is read with these names).
pub const STAGES_V1: [&str; 9] = [
    "encrypt",
    "serialize_query",
    "clusters_wall",
    "gather",
    "compress",
    "serialize_results",
    "decrypt",
    "decide",
    "total",
];

/// What a deployed point ran on, as recorded in its row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The main server's address.
    pub main: String,
    /// Clusters behind it, as the main server reported (`status`).
    pub clusters: usize,
    /// local: how the processes were pinned (`main→0, clusters→1,0`), `not pinned`, or
    /// `not pinned: taskset missing`; remote: `-`.
    pub pinning: String,
    /// local: the clusters' stores on disk after enrolment (keys and gallery, SQLite).
    #[serde(default)]
    pub store_bytes: Option<u64>,
}

/// Accuracy metrics of one run, computed from the scores the point's own scheme produced
/// on the model's test templates: float logits for `plain`, integer scores for
/// `quantized`, decrypted scores for the encrypted schemes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccuracyCols {
    /// Where the scores came from: `float`, `integer` or `decrypted`.
    pub scores: String,
    /// Encrypted schemes: decrypted scores compared with the plaintext integer scores
    /// (all equal, or the run fails).
    pub scores_checked: Option<u64>,
    /// Queries the scheme answered to produce these metrics.
    pub queries: usize,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub eer: f64,
    pub fnmr_at_fmr_1pct: f64,
    pub rank1: f64,
    pub rank5: f64,
    pub test_images: usize,
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Hash of the config text that produced the row (the manifest's `config_hash`);
    /// empty in rows written before rows carried it.
    #[serde(default)]
    pub config_hash: String,
    pub key: String,
    pub point: Point,
    /// Where the latency run's templates came from, e.g. `synthetic, model head`.
    pub templates: String,
    pub params_name: String,
    pub engine_running: String,
    pub accuracy: Option<AccuracyCols>,
    /// Per stage (see [`STAGES`]; [`STAGES_V1`] in older rows), milliseconds; `None`
    /// for a stage the point does not have (upload and download in process).
    pub stages: Vec<Option<Stat>>,
    /// Slowest cluster's evaluation, milliseconds.
    pub cluster_eval: Stat,
    pub keygen_ms: f64,
    pub enrol_ms: f64,
    pub key_bytes: usize,
    pub gallery_bytes: usize,
    pub upload_bytes: usize,
    pub download_bytes: usize,
    /// Bytes main → clusters per query, all clusters together (`None` in rows written
    /// before it was recorded).
    #[serde(default)]
    pub fanout_bytes: Option<usize>,
    /// Bytes clusters → main per query, all together.
    #[serde(default)]
    pub gather_bytes: Option<usize>,
    pub result_ciphertexts: usize,
    pub noise_budget_bits: Option<f64>,
    pub exact: Option<bool>,
    pub queries: usize,
    pub machine: String,
    pub wall_s: f64,
    /// Deployed points: where they ran and the bytes on the servers' links; `None` in
    /// process (and in rows written before deployments existed).
    #[serde(default)]
    pub deployment: Option<DeploymentRecord>,
}

impl Row {
    /// The stage names this row's statistics follow, by position.
    fn stage_names(&self) -> &'static [&'static str] {
        if self.stages.len() == STAGES_V1.len() {
            &STAGES_V1
        } else {
            &STAGES
        }
    }

    /// A stage's statistics by name, `None` where the row has no such stage.
    pub fn stage_opt(&self, name: &str) -> Option<Stat> {
        self.stage_names()
            .iter()
            .position(|s| *s == name)
            .and_then(|i| self.stages.get(i).copied().flatten())
    }

    /// A stage's statistics by name (zero where the row has no such stage: for sums
    /// and figures; tables show absent stages with [`Row::stage_opt`]).
    pub fn stage(&self, name: &str) -> Stat {
        self.stage_opt(name).unwrap_or_default()
    }

    /// Cluster servers the point ran on: the main server's count for a remote point.
    pub fn clusters(&self) -> usize {
        match &self.deployment {
            Some(d) if self.point.deployment == super::config::DeploymentMode::Remote => d.clusters,
            _ => self.point.clusters,
        }
    }
}

/// What a resume log must agree with.
pub struct Expect<'a> {
    /// The run's config hash; every row must carry it.
    pub config_hash: &'a str,
    /// The sweep's point keys; every row's key must be one of them.
    pub keys: &'a HashSet<String>,
}

/// rows.jsonl as read: the complete rows, and whether a torn last line (no newline: the
/// process died while appending it) was left out.
pub struct Log {
    pub rows: Vec<Row>,
    /// 1-based line number of a torn last line.
    pub torn: Option<usize>,
}

/// Reads rows.jsonl without changing it. Every complete line must be a row of this
/// config (its hash), whose key is the key of its own point, is a point of the sweep, and
/// appears once; anything else is an error naming the line. Only an unterminated last
/// line — what a killed append leaves — is tolerated, and reported in [`Log::torn`].
pub fn read_log(path: &Path, expect: &Expect) -> Result<Log> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Log {
                rows: Vec::new(),
                torn: None,
            })
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut rows = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut torn = None;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        if !raw.ends_with('\n') {
            // Only the last piece can lack a newline.
            torn = Some(n);
            break;
        }
        let line = raw.trim_end();
        if line.is_empty() {
            bail!(
                "{}:{n}: empty line in the middle of the log",
                path.display()
            );
        }
        let row: Row = serde_json::from_str(line)
            .with_context(|| format!("{}:{n}: not a valid row", path.display()))?;
        if row.config_hash.is_empty() {
            bail!(
                "{}:{n}: a row without a config hash, written by an older touchstone; start a new run",
                path.display()
            );
        }
        if row.config_hash != expect.config_hash {
            bail!(
                "{}:{n}: row from another config (hash {}, this run's is {})",
                path.display(),
                row.config_hash,
                expect.config_hash
            );
        }
        let own = row.point.key();
        if row.key != own {
            bail!(
                "{}:{n}: key `{}` contradicts its point `{own}`",
                path.display(),
                row.key
            );
        }
        if !expect.keys.contains(&row.key) {
            bail!(
                "{}:{n}: point `{}` is not in this config's sweep",
                path.display(),
                row.key
            );
        }
        if let Some(first) = seen.insert(row.key.clone(), n) {
            bail!(
                "{}:{n}: duplicate of line {first} (point `{}`)",
                path.display(),
                row.key
            );
        }
        rows.push(row);
    }
    Ok(Log { rows, torn })
}

/// Drops a torn last line by rewriting the log's complete rows atomically (a process
/// killed during the repair leaves the old log, which is repaired next time).
pub fn repair(path: &Path, log: &Log) -> Result<()> {
    let mut fixed = String::new();
    for row in &log.rows {
        fixed.push_str(&serde_json::to_string(row)?);
        fixed.push('\n');
    }
    super::atomic::write(path, fixed.as_bytes())
        .with_context(|| format!("repairing {}", path.display()))
}

/// Appends one row and flushes it to disk before the next run starts.
pub fn append(path: &Path, row: &Row) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut line = serde_json::to_string(row)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// The rows as a polars frame, one column per axis, metric and stage statistic.
pub fn frame(rows: &[Row]) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&Row) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let u = |f: &dyn Fn(&Row) -> u64| rows.iter().map(f).collect::<Vec<_>>();
    let x = |f: &dyn Fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    let ox = |f: &dyn Fn(&Row) -> Option<f64>| rows.iter().map(f).collect::<Vec<_>>();
    let acc = |f: fn(&AccuracyCols) -> f64| {
        rows.iter()
            .map(move |r| r.accuracy.as_ref().map(f))
            .collect::<Vec<_>>()
    };
    let mut columns: Vec<Column> = vec![
        Column::new("seed".into(), u(&|r| r.point.seed)),
        Column::new(
            "preprocessing".into(),
            s(&|r| r.point.preprocessing.clone()),
        ),
        Column::new("scheme".into(), s(&|r| r.point.scheme.to_string())),
        Column::new("engine".into(), s(&|r| r.point.engine_label())),
        Column::new("engine_running".into(), s(&|r| r.engine_running.clone())),
        Column::new("params".into(), s(&|r| r.params_name.clone())),
        Column::new(
            "encrypted_weights".into(),
            rows.iter()
                .map(|r| r.point.encrypted_weights)
                .collect::<Vec<_>>(),
        ),
        Column::new("bits".into(), u(&|r| r.point.bits as u64)),
        Column::new("users".into(), u(&|r| r.point.users as u64)),
        Column::new("clusters".into(), u(&|r| r.clusters() as u64)),
        Column::new("probes".into(), u(&|r| r.point.probes as u64)),
        Column::new("deployment".into(), s(&|r| r.point.deployment.to_string())),
        Column::new(
            "deployment_main".into(),
            rows.iter()
                .map(|r| r.deployment.as_ref().map(|d| d.main.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "deployment_pinning".into(),
            rows.iter()
                .map(|r| r.deployment.as_ref().map(|d| d.pinning.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new("accuracy".into(), acc(|a| a.accuracy)),
        Column::new("precision".into(), acc(|a| a.precision)),
        Column::new("recall".into(), acc(|a| a.recall)),
        Column::new("f1".into(), acc(|a| a.f1)),
        Column::new("roc_auc".into(), acc(|a| a.roc_auc)),
        Column::new("eer".into(), acc(|a| a.eer)),
        Column::new("fnmr_at_fmr_1pct".into(), acc(|a| a.fnmr_at_fmr_1pct)),
        Column::new("rank1".into(), acc(|a| a.rank1)),
        Column::new("rank5".into(), acc(|a| a.rank5)),
        Column::new(
            "accuracy_scores".into(),
            rows.iter()
                .map(|r| r.accuracy.as_ref().map(|a| a.scores.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "accuracy_scores_checked".into(),
            rows.iter()
                .map(|r| r.accuracy.as_ref().and_then(|a| a.scores_checked))
                .collect::<Vec<_>>(),
        ),
        Column::new("latency_templates".into(), s(&|r| r.templates.clone())),
    ];
    for stage in STAGES {
        for (what, pick) in [("median", 0), ("min", 1), ("max", 2)] {
            columns.push(Column::new(
                format!("{stage}_ms_{what}").into(),
                ox(&|r| {
                    r.stage_opt(stage)
                        .map(|st| [st.median, st.min, st.max][pick])
                }),
            ));
        }
    }
    columns.extend([
        Column::new(
            "cluster_eval_ms_median".into(),
            x(&|r| r.cluster_eval.median),
        ),
        Column::new("keygen_ms".into(), x(&|r| r.keygen_ms)),
        Column::new("enrol_ms".into(), x(&|r| r.enrol_ms)),
        Column::new("key_bytes".into(), u(&|r| r.key_bytes as u64)),
        Column::new("gallery_bytes".into(), u(&|r| r.gallery_bytes as u64)),
        Column::new("upload_bytes".into(), u(&|r| r.upload_bytes as u64)),
        Column::new("download_bytes".into(), u(&|r| r.download_bytes as u64)),
        Column::new(
            "fanout_bytes".into(),
            rows.iter()
                .map(|r| r.fanout_bytes.map(|b| b as u64))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "gather_bytes".into(),
            rows.iter()
                .map(|r| r.gather_bytes.map(|b| b as u64))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "store_bytes".into(),
            rows.iter()
                .map(|r| r.deployment.as_ref().and_then(|d| d.store_bytes))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "result_ciphertexts".into(),
            u(&|r| r.result_ciphertexts as u64),
        ),
        Column::new("noise_budget_bits".into(), ox(&|r| r.noise_budget_bits)),
        Column::new(
            "exact".into(),
            rows.iter().map(|r| r.exact).collect::<Vec<_>>(),
        ),
        Column::new("queries".into(), u(&|r| r.queries as u64)),
        Column::new("machine".into(), s(&|r| r.machine.clone())),
        Column::new("wall_s".into(), x(&|r| r.wall_s)),
    ]);
    Ok(DataFrame::new(rows.len(), columns)?)
}

/// Writes rows.csv and rows.parquet into `dir`.
pub fn export(rows: &[Row], dir: &Path) -> Result<()> {
    let mut df = frame(rows)?;
    let csv = dir.join("rows.csv");
    let mut file =
        std::fs::File::create(&csv).with_context(|| format!("creating {}", csv.display()))?;
    CsvWriter::new(&mut file).finish(&mut df)?;
    let parquet = dir.join("rows.parquet");
    let file = std::fs::File::create(&parquet)
        .with_context(|| format!("creating {}", parquet.display()))?;
    ParquetWriter::new(file).finish(&mut df)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as rows.jsonl held it before deployments existed: nine stages, no
    /// deployment, no fan-out or gather bytes.
    const OLD_ROW: &str = r#"{"config_hash":"h","key":"seed=1 preprocessing=none scheme=columnar engine=cpu params=default ew=false bits=8 users=8 clusters=1 probes=1","point":{"seed":1,"preprocessing":"none","scheme":"columnar","engine":"cpu","params":"default","encrypted_weights":false,"bits":8,"users":8,"clusters":1,"probes":1},"templates":"synthetic","params_name":"col-8192","engine_running":"cpu","accuracy":null,"stages":[{"median":1.0,"min":1.0,"max":1.0},{"median":2.0,"min":2.0,"max":2.0},{"median":3.0,"min":3.0,"max":3.0},{"median":4.0,"min":4.0,"max":4.0},{"median":5.0,"min":5.0,"max":5.0},{"median":6.0,"min":6.0,"max":6.0},{"median":7.0,"min":7.0,"max":7.0},{"median":8.0,"min":8.0,"max":8.0},{"median":36.0,"min":36.0,"max":36.0}],"cluster_eval":{"median":1.0,"min":1.0,"max":1.0},"keygen_ms":0.0,"enrol_ms":0.0,"key_bytes":0,"gallery_bytes":0,"upload_bytes":10,"download_bytes":20,"result_ciphertexts":1,"noise_budget_bits":null,"exact":true,"queries":1,"machine":"m","wall_s":0.0}"#;

    #[test]
    fn rows_written_before_deployments_still_read() {
        let row: Row = serde_json::from_str(OLD_ROW).unwrap();
        assert_eq!(row.key, row.point.key(), "in-process keys did not change");
        assert_eq!(
            row.point.deployment,
            super::super::config::DeploymentMode::InProcess
        );
        assert!(row.deployment.is_none() && row.fanout_bytes.is_none());
        // Nine stages are read with the names they were written with.
        assert_eq!(row.stage("clusters_wall").median, 3.0);
        assert_eq!(row.stage("decide").median, 8.0);
        assert_eq!(row.stage("total").median, 36.0);
        assert_eq!(row.stage_opt("upload"), None);
        assert_eq!(row.stage_opt("download"), None);
        let df = frame(&[row]).unwrap();
        assert_eq!(
            df.column("total_ms_median").unwrap().f64().unwrap().get(0),
            Some(36.0)
        );
        assert_eq!(
            df.column("upload_ms_median").unwrap().f64().unwrap().get(0),
            None,
            "no upload in process: empty, not zero"
        );
    }
}
