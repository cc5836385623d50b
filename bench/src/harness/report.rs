//! Everything derived from rows.jsonl: rows.csv / rows.parquet, summary.md (and
//! summary.tex), and the figures. `touchstone report` re-runs this on a run directory.

use super::config::ExperimentConfig;
use super::figures;
use super::rows::{self, Row, STAGES};
use crate::format::Table;
use crate::train_cmd::PairScores;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// File holding the verification-pair scores of one (preprocessing, bits) evaluation.
pub fn scores_file(preprocessing: &str, bits: u32) -> String {
    let safe: String = preprocessing
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("scores-{safe}-{bits}bit.json")
}

/// Re-renders a run directory from its rows.
pub fn render(dir: &Path, config: &ExperimentConfig) -> Result<()> {
    let rows = rows::read_log(&dir.join("rows.jsonl"))?;
    if rows.is_empty() {
        anyhow::bail!("{} has no finished rows", dir.display());
    }
    rows::export(&rows, dir)?;
    let mut scores = BTreeMap::new();
    for row in &rows {
        let name = scores_file(&row.point.preprocessing, row.point.bits);
        if scores.contains_key(&name) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(dir.join(&name)) {
            let s: PairScores =
                serde_json::from_str(&text).with_context(|| format!("parsing {name}"))?;
            scores.insert(name, (row.point.preprocessing.clone(), s));
        }
    }
    let figure_dir = dir.join("figures");
    std::fs::create_dir_all(&figure_dir)?;
    let figures = figures::draw_all(&rows, &scores, &figure_dir, config.outputs.svg)?;
    let summary = summary_markdown(config, &rows, &figures);
    std::fs::write(dir.join("summary.md"), summary)?;
    if config.outputs.latex {
        std::fs::write(dir.join("summary.tex"), summary_latex(&rows))?;
    }
    Ok(())
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

/// The accuracy table: one line per (preprocessing, scheme).
pub fn accuracy_table(rows: &[Row]) -> Option<Table> {
    let mut t = Table::new(&[
        "preprocessing",
        "scheme",
        "accuracy",
        "precision",
        "recall",
        "F1",
        "EER",
        "ROC AUC",
        "FNMR@FMR 1%",
        "rank-1",
        "test images",
    ]);
    let mut seen = Vec::new();
    for r in rows {
        let Some(a) = &r.accuracy else { continue };
        let key = (r.point.preprocessing.clone(), r.point.scheme, r.point.bits);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        t.row(vec![
            r.point.preprocessing.clone(),
            r.point.scheme.to_string(),
            pct(a.accuracy),
            pct(a.precision),
            pct(a.recall),
            pct(a.f1),
            pct(a.eer),
            format!("{:.4}", a.roc_auc),
            pct(a.fnmr_at_fmr_1pct),
            pct(a.rank1),
            a.test_images.to_string(),
        ]);
    }
    (!seen.is_empty()).then_some(t)
}

/// The latency table: one line per run.
pub fn latency_table(rows: &[Row]) -> Table {
    let mut t = Table::new(&[
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
    ]);
    for r in rows {
        let total = r.stage("total");
        t.row(vec![
            format!(
                "{}{}",
                r.point.scheme,
                if r.point.encrypted_weights {
                    " (enc. w)"
                } else {
                    ""
                }
            ),
            r.engine_running.clone(),
            r.params_name.clone(),
            r.point.users.to_string(),
            r.point.clusters.to_string(),
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
        ]);
    }
    t
}

fn summary_markdown(config: &ExperimentConfig, rows: &[Row], figures: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", config.name);
    if !config.description.is_empty() {
        let _ = writeln!(s, "{}\n", config.description.trim());
    }
    let machine = rows.first().map_or("", |r| r.machine.as_str());
    let queries = rows.first().map_or(0, |r| r.queries);
    let _ = writeln!(
        s,
        "{} runs on {machine}; timings are medians over {queries} queries per run (range = min – max).\n",
        rows.len()
    );
    if let Some(t) = accuracy_table(rows) {
        let _ = writeln!(s, "## Accuracy (test split)\n\n{}\n", t.render());
        let _ = writeln!(
            s,
            "`plain` is the float model; every other scheme scores with the quantized model, and the encrypted schemes' decrypted scores equal those bit for bit (column `exact` below).\n"
        );
    }
    let _ = writeln!(
        s,
        "## Latency per query\n\n{}\n",
        latency_table(rows).render()
    );
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
