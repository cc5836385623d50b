//! Everything derived from rows.jsonl: rows.csv / rows.parquet, summary.md (and
//! summary.tex), and the figures. `touchstone report` re-runs this on a run directory.

use super::config::ExperimentConfig;
use super::figures;
use super::rows::{self, Row, STAGES};
use super::sweep::Point;
use crate::format::Table;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use train::evaluation::PairScores;

/// The verification-pair scores one accuracy run produced, as written next to the rows
/// (for DET curves).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SchemeScores {
    pub scheme: String,
    pub preprocessing: String,
    pub bits: u32,
    pub seed: u64,
    pub scores: PairScores,
}

/// File holding the verification-pair scores of one accuracy run: one per scheme
/// configuration, named by the point's accuracy key (users and probes left out).
pub fn scores_file(point: &Point) -> String {
    let key = format!(
        "{}-{}-{}-{}-{}-{}bit-seed{}-c{}",
        point.scheme,
        point.engine_label(),
        point.params,
        if point.encrypted_weights { "ew" } else { "pw" },
        point.preprocessing,
        point.bits,
        point.seed,
        point.clusters
    );
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("scores/{safe}.json")
}

/// A run directory's config and rows, read without changing anything: the rows are
/// checked against the manifest's config (hash, sweep, keys, duplicates) and a torn last
/// line is left out (and left in the file; only a resumed run repairs it).
pub fn load(dir: &Path) -> Result<(ExperimentConfig, Vec<Row>)> {
    let man = super::manifest::Manifest::read(dir)?.with_context(|| {
        format!(
            "{} has no manifest.json (is it a run directory?)",
            dir.display()
        )
    })?;
    let config = super::config::parse_stored(&man.config, Path::new(&man.config_path))?;
    let keys = super::sweep::expand(&config)?
        .iter()
        .map(Point::key)
        .collect();
    let log = rows::read_log(
        &dir.join("rows.jsonl"),
        &rows::Expect {
            config_hash: &man.config_hash,
            keys: &keys,
        },
    )?;
    if let Some(line) = log.torn {
        eprintln!(
            "note: {}:{line} is a torn row (left out; `touchstone run --resume` repairs and reruns it)",
            dir.join("rows.jsonl").display()
        );
    }
    Ok((config, log.rows))
}

/// A study's result file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Re-renders a run directory from its rows (never modifying rows.jsonl).
pub fn render(dir: &Path) -> Result<()> {
    if let Some(man) = super::manifest::Manifest::read(dir)? {
        if super::compare_study::is_study(&man.config) {
            let config =
                super::compare_study::parse(&man.config, Path::new(&man.config_path), false)?;
            let result = read_json(&dir.join("compare.json"))?;
            return super::compare_study::render(dir, &config, &result);
        }
        if super::pipeline_study::is_study(&man.config) {
            let config =
                super::pipeline_study::parse_stored(&man.config, Path::new(&man.config_path))?;
            let result = read_json(&dir.join("pipelines.json"))?;
            return super::pipeline_study::render(dir, &config, &result);
        }
        if super::bpkem_study::is_study(&man.config) {
            let config =
                super::bpkem_study::parse_stored(&man.config, Path::new(&man.config_path))?;
            let result = read_json(&dir.join("bpkem.json"))?;
            return super::bpkem_study::render(dir, &config, &result);
        }
    }
    let (config, rows) = load(dir)?;
    let config = &config;
    if rows.is_empty() {
        anyhow::bail!("{} has no finished rows", dir.display());
    }
    rows::export(&rows, dir)?;
    let mut scores = BTreeMap::new();
    for row in &rows {
        let name = scores_file(&row.point);
        if scores.contains_key(&name) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(dir.join(&name)) {
            let s: SchemeScores =
                serde_json::from_str(&text).with_context(|| format!("parsing {name}"))?;
            scores.insert(name, s);
        }
    }
    let figure_dir = dir.join("figures");
    std::fs::create_dir_all(&figure_dir)?;
    let figures = figures::draw_all(&rows, &scores, &figure_dir, config.outputs.svg)?;
    let mut summary = summary_markdown(config, &rows, &figures);
    if let Some(man) = super::manifest::Manifest::read(dir)? {
        summary.push_str(&shards_markdown(&man.shards));
    }
    std::fs::write(dir.join("summary.md"), summary)?;
    if config.outputs.latex {
        std::fs::write(dir.join("summary.tex"), summary_latex(&rows))?;
    }
    Ok(())
}

/// For a merged run: where and when each shard ran (every attempt), with Slurm's ids.
fn shards_markdown(shards: &[super::shard::ShardRecord]) -> String {
    if shards.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&[
        "shard",
        "points",
        "attempt",
        "host",
        "started",
        "finished",
        "rows",
        "slurm job (array_task)",
    ]);
    for record in shards {
        for (i, a) in record.attempts.iter().enumerate() {
            table.row(vec![
                record.shard.to_string(),
                record.points.to_string(),
                (i + 1).to_string(),
                a.host.clone(),
                a.started.clone(),
                a.finished.clone().unwrap_or_else(|| "(stopped)".into()),
                a.rows.to_string(),
                a.slurm.as_ref().map_or("-".into(), |s| {
                    match (&s.array_job_id, &s.array_task_id) {
                        (Some(j), Some(t)) => format!("{} ({j}_{t})", s.job_id),
                        _ => s.job_id.clone(),
                    }
                }),
            ]);
        }
    }
    format!(
        "\n## Shards\n\nMerged from {} shards (`touchstone merge`); times are UTC.\n\n{}",
        shards.len(),
        table.render()
    )
}

/// What identifies a point's accuracy run: every axis but users and probes, and not
/// the deployment (accuracy always runs in process, shared by deployed twins).
fn accuracy_point(point: &Point) -> Point {
    let mut key = point.clone();
    key.users = 0;
    key.probes = 0;
    if key.deployment == super::config::DeploymentMode::Remote {
        key.clusters = 1;
    }
    key.deployment = super::config::DeploymentMode::InProcess;
    key
}

/// The scheme as tables name it (`blindtouch (enc. w)` for encrypted weights).
fn scheme_label(point: &Point) -> String {
    if point.encrypted_weights {
        format!("{} (enc. w)", point.scheme)
    } else {
        point.scheme.to_string()
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v:.2} ms")
    } else {
        format!("{:.0} µs", v * 1000.0)
    }
}

fn kb(bytes: usize) -> String {
    crate::format::bytes(bytes)
}

/// The accuracy table: one line per scheme configuration (every axis but users and
/// probes), each computed from that scheme's own scores on the test templates.
pub fn accuracy_table(rows: &[Row]) -> Option<Table> {
    let mut t = Table::new(&[
        "preprocessing",
        "scheme",
        "engine",
        "params",
        "bits",
        "seed",
        "accuracy",
        "precision",
        "recall",
        "F1",
        "EER",
        "ROC AUC",
        "FNMR@FMR 1%",
        "rank-1",
        "scores",
        "test images",
    ]);
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        let Some(a) = &r.accuracy else { continue };
        if !seen.insert(accuracy_point(&r.point)) {
            continue;
        }
        t.row(vec![
            r.point.preprocessing.clone(),
            scheme_label(&r.point),
            r.engine_running.clone(),
            r.params_name.clone(),
            r.point.bits.to_string(),
            r.point.seed.to_string(),
            pct(a.accuracy),
            pct(a.precision),
            pct(a.recall),
            pct(a.f1),
            pct(a.eer),
            format!("{:.4}", a.roc_auc),
            pct(a.fnmr_at_fmr_1pct),
            pct(a.rank1),
            match a.scores_checked {
                Some(n) => format!("{} ({n} checked exact)", a.scores),
                None => a.scores.clone(),
            },
            a.test_images.to_string(),
        ]);
    }
    (!seen.is_empty()).then_some(t)
}

/// A stage's median, or `-` where the row has no such stage (upload and download in
/// process).
fn stage_ms(r: &Row, stage: &str) -> String {
    r.stage_opt(stage).map_or("-".into(), |s| ms(s.median))
}

/// The latency table: one line per run (with a seed column when the rows hold several
/// seeds, so their lines are told apart; with the deployment and the socket transfers'
/// times when some row was deployed).
pub fn latency_table(rows: &[Row]) -> Table {
    let seeds: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.point.seed).collect();
    let with_seed = seeds.len() > 1;
    let deployed = rows.iter().any(|r| r.point.deployment.deployed());
    let mut header = vec![
        "scheme",
        "engine",
        "params",
        "users",
        "clusters",
        "total (median)",
        "range",
        "cluster eval",
        "encrypt",
        "decrypt",
        "up",
        "down",
        "keys",
        "noise left",
        "exact",
    ];
    if deployed {
        header.splice(1..1, ["deployment"]);
        // Times next to the byte counts of the same links.
        let up = header.iter().position(|h| *h == "up").expect("a column");
        header.splice(up..up, ["upload", "download"]);
    }
    if with_seed {
        header.insert(1, "seed");
    }
    let mut t = Table::new(&header);
    for r in rows {
        let total = r.stage("total");
        let mut cells = vec![
            scheme_label(&r.point),
            r.engine_running.clone(),
            r.params_name.clone(),
            r.point.users.to_string(),
            r.clusters().to_string(),
            ms(total.median),
            format!("{} – {}", ms(total.min), ms(total.max)),
            ms(r.cluster_eval.median),
            ms(r.stage("encrypt").median),
            ms(r.stage("decrypt").median),
            kb(r.upload_bytes),
            kb(r.download_bytes),
            kb(r.key_bytes),
            r.noise_budget_bits
                .map_or("-".into(), |b| format!("{b:.0} bits")),
            r.exact
                .map_or("-".into(), |e| if e { "yes".into() } else { "NO".into() }),
        ];
        if deployed {
            cells.insert(1, r.point.deployment.to_string());
            let up = 11;
            cells.splice(up..up, [stage_ms(r, "upload"), stage_ms(r, "download")]);
        }
        if with_seed {
            cells.insert(1, r.point.seed.to_string());
        }
        t.row(cells);
    }
    t
}

/// Deployed runs' links: each link's median time next to its bytes per query (client →
/// main, main → clusters and back, main → client), how the servers were pinned.
pub fn links_table(rows: &[Row]) -> Option<Table> {
    let mut t = Table::new(&[
        "scheme",
        "deployment",
        "users",
        "clusters",
        "upload",
        "bytes up",
        "fan-out (clusters wall)",
        "bytes to clusters",
        "gather",
        "bytes from clusters",
        "compress",
        "server other",
        "download",
        "bytes down",
        "main server",
        "pinning",
    ]);
    let opt = |b: Option<usize>| b.map_or("-".into(), kb);
    let mut any = false;
    for r in rows.iter().filter(|r| r.point.deployment.deployed()) {
        any = true;
        let d = r.deployment.clone().unwrap_or_default();
        t.row(vec![
            scheme_label(&r.point),
            r.point.deployment.to_string(),
            r.point.users.to_string(),
            r.clusters().to_string(),
            stage_ms(r, "upload"),
            kb(r.upload_bytes),
            stage_ms(r, "clusters_wall"),
            opt(r.fanout_bytes),
            stage_ms(r, "gather"),
            opt(r.gather_bytes),
            stage_ms(r, "compress"),
            stage_ms(r, "server_other"),
            stage_ms(r, "download"),
            kb(r.download_bytes),
            d.main,
            d.pinning,
        ]);
    }
    any.then_some(t)
}

/// In-process and deployed totals of the same point side by side (every axis equal but
/// the deployment), with the ratio deployed / in-process.
pub fn deployment_comparison(rows: &[Row]) -> Option<Table> {
    let mut t = Table::new(&[
        "scheme",
        "engine",
        "users",
        "clusters",
        "in-process total",
        "deployment",
        "deployed total",
        "deployed / in-process",
    ]);
    let mut any = false;
    for r in rows.iter().filter(|r| r.point.deployment.deployed()) {
        let twin = rows.iter().find(|x| {
            let mut p = r.point.clone();
            p.deployment = super::config::DeploymentMode::InProcess;
            if r.point.deployment == super::config::DeploymentMode::Remote {
                p.clusters = r.clusters();
            }
            x.point == p
        });
        let Some(x) = twin else { continue };
        any = true;
        let (a, b) = (x.stage("total").median, r.stage("total").median);
        t.row(vec![
            scheme_label(&r.point),
            r.engine_running.clone(),
            r.point.users.to_string(),
            r.clusters().to_string(),
            ms(a),
            r.point.deployment.to_string(),
            ms(b),
            format!("{:.2}×", b / a.max(1e-9)),
        ]);
    }
    any.then_some(t)
}

fn summary_markdown(config: &ExperimentConfig, rows: &[Row], figures: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", config.name);
    if !config.description.is_empty() {
        let _ = writeln!(s, "{}\n", config.description.trim());
    }
    let machine = rows.first().map_or("", |r| r.machine.as_str());
    let (fewest, most) = rows.iter().fold((usize::MAX, 0), |(lo, hi), r| {
        (lo.min(r.queries), hi.max(r.queries))
    });
    let queries = if fewest == most {
        most.to_string()
    } else {
        format!("{fewest} to {most}")
    };
    let _ = writeln!(
        s,
        "{} runs on {machine}; timings are medians over {queries} queries per run (range = min – max; column `queries` in rows.csv).\n",
        rows.len()
    );
    if let Some(t) = accuracy_table(rows) {
        let _ = writeln!(s, "## Accuracy (test split)\n\n{}\n", t.render());
        let mut checked = 0u64;
        let mut seen = std::collections::HashSet::new();
        for r in rows {
            if let Some(a) = &r.accuracy {
                if seen.insert(accuracy_point(&r.point)) {
                    checked += a.scores_checked.unwrap_or(0);
                }
            }
        }
        let queries = rows
            .iter()
            .find_map(|r| r.accuracy.as_ref().map(|a| a.queries))
            .unwrap_or(0);
        let _ = write!(
            s,
            "Every row ran its own scheme on the model's templates of the test split: each scheme enrolled every test image and identified every probe of the protocol ({queries} queries), and the metrics are read off the scores it returned — float logits for `plain`, integer scores for `quantized`, **decrypted** scores for the encrypted schemes."
        );
        if checked > 0 {
            let _ = write!(
                s,
                " {checked} decrypted scores were compared with the plaintext integer scores and all are equal (a single difference fails the run)."
            );
        }
        let _ = writeln!(s, "\n");
    }
    let templates = rows.first().map_or("synthetic", |r| r.templates.as_str());
    let checked = if rows.iter().any(|r| r.exact.is_some()) {
        " Every decrypted score of these queries was checked too."
    } else {
        ""
    };
    let deployed = rows.iter().any(|r| r.point.deployment.deployed());
    let transfers = if deployed {
        " `serialize query` / `serialize results` time serialization and envelope checks only; in-process rows have no upload or download (`-`: no byte crosses a network), deployed rows time the socket transfers over gRPC and TLS (`upload`: the query until the main server had all of it; `download`: from the main server's `sending` marker, sent just before the answer, until the answer's last byte)."
    } else {
        " `serialize query` / `serialize results` time serialization and envelope checks only — in process, no byte crosses a network."
    };
    let _ = writeln!(
        s,
        "## Latency per query\n\nTemplates: {templates} (seeded, scaled to each gallery size; the time of a 1:N match does not depend on template values).{checked}{transfers}\n\n{}\n",
        latency_table(rows).render()
    );
    if let Some(t) = deployment_comparison(rows) {
        let _ = writeln!(
            s,
            "## In process vs deployed\n\nThe same point with every role in one process, and as separate server processes (gRPC over mutual TLS; `local`: on this machine's loopback, started by the harness). Medians of the client's total per query.\n\n{}\n",
            t.render()
        );
    }
    if let Some(t) = links_table(rows) {
        let _ = writeln!(
            s,
            "## Deployed links\n\nMedian time and bytes per query on each link. `fan-out` is the main server's wait for its clusters (transfers both ways and their evaluation); `server other` the main server's time outside its stages, as the client sees it (reassembling the query, framing the answer).\n\n{}\n",
            t.render()
        );
    }
    if !figures.is_empty() {
        let _ = writeln!(s, "## Figures\n");
        for f in figures {
            let _ = writeln!(s, "- [{f}]({f})");
        }
    }
    let _ = writeln!(
        s,
        "\nStage columns for every run are in rows.csv / rows.parquet; the stages are {}.",
        STAGES.join(", ")
    );
    s
}

fn latex_escape(s: &str) -> String {
    s.replace('%', "\\%")
        .replace('_', "\\_")
        .replace('&', "\\&")
        .replace('µ', "$\\mu$")
        .replace('–', "--")
}

fn table_latex(t: &Table, caption: &str) -> String {
    let (header, body) = t.cells();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\\begin{{table}}[t]\n\\centering\n\\caption{{{caption}}}"
    );
    let _ = writeln!(
        s,
        "\\begin{{tabular}}{{{}}}\n\\toprule",
        "l".repeat(header.len())
    );
    let _ = writeln!(
        s,
        "{} \\\\\n\\midrule",
        header
            .iter()
            .map(|h| latex_escape(h))
            .collect::<Vec<_>>()
            .join(" & ")
    );
    for row in body {
        let _ = writeln!(
            s,
            "{} \\\\",
            row.iter()
                .map(|c| latex_escape(c))
                .collect::<Vec<_>>()
                .join(" & ")
        );
    }
    let _ = writeln!(s, "\\bottomrule\n\\end{{tabular}}\n\\end{{table}}\n");
    s
}

fn summary_latex(rows: &[Row]) -> String {
    let mut s = String::from("% generated by touchstone; needs \\usepackage{booktabs}\n");
    if let Some(t) = accuracy_table(rows) {
        s.push_str(&table_latex(&t, "Accuracy on the test split"));
    }
    s.push_str(&table_latex(
        &latency_table(rows),
        "Latency of one 1:N query",
    ));
    s
}
