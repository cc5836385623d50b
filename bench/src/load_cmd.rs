//! `touchstone load`: closed-loop load on a running deployment. For each concurrency C,
//! C threads share one connection (`Remote`: concurrent calls over one HTTP/2
//! connection) and one client folder, and each identifies probes back to back until the
//! duration is over or the level's query budget is spent. Every answer is checked
//! against the client's own plaintext scores, so a throughput figure is never bought
//! with a wrong answer.

use crate::format::Table;
use crate::harness::figures::{self, Series};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use deploy::client_folder::ClientFolder;
use deploy::remote::Remote;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most threads one level may run (each holds a query and its answer in memory).
const MAX_CONCURRENCY: usize = 256;
/// Longest a level may run, seconds.
const MAX_DURATION_S: f64 = 3600.0;
/// Most queries one level may make (the loop's bound besides the duration).
const MAX_QUERIES: usize = 1_000_000;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The client's folder (`touchstone client keygen`, then `client enrol`): its live
    /// users' templates are the probes, in turn.
    #[arg(long)]
    client: PathBuf,
    /// The main server, HOST:PORT.
    #[arg(long)]
    main: String,
    /// CA folder with ca.pem, client.pem and client.key.
    #[arg(long)]
    tls: PathBuf,
    /// Concurrency levels, comma-separated (each runs for --duration).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    concurrency: Vec<usize>,
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Stop a level after this many queries even if time is left.
    #[arg(long, default_value_t = 100_000)]
    max_queries: usize,
    /// Write load.json and latency_vs_concurrency.png into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One concurrency level's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub concurrency: usize,
    /// Queries answered (correctly or not) and failed.
    pub queries: usize,
    /// Wall time of the level, seconds.
    pub elapsed_s: f64,
    /// Answered queries per second of wall time.
    pub queries_per_s: f64,
    /// Latency percentiles of the answered queries (client side: encrypt to decide),
    /// milliseconds; `None` when none was answered.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    /// Answers with at least one decrypted score different from the plaintext one.
    pub mismatches: usize,
    /// Decrypted scores that differ, over all answers.
    pub scores_differing: u64,
    /// Decrypted scores compared.
    pub scores_checked: u64,
    /// Queries that failed (an error instead of an answer).
    pub errors: usize,
    /// The first failure's message.
    pub first_error: Option<String>,
}

/// load.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadReport {
    pub main: String,
    pub client: String,
    pub scheme: String,
    pub params: String,
    /// Live users enrolled (the gallery every query is matched against).
    pub users: usize,
    pub duration_s: f64,
    pub max_queries: usize,
    pub levels: Vec<Level>,
    /// Every answer of every level equal to the plaintext scores, and no failure.
    pub exact: bool,
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    mismatches: usize,
    scores_differing: u64,
    scores_checked: u64,
    errors: usize,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_ms.extend(other.latencies_ms);
        self.mismatches += other.mismatches;
        self.scores_differing += other.scores_differing;
        self.scores_checked += other.scores_checked;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted` samples: the
/// smallest sample with at least p % of the samples at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A level's figures from its merged tally.
fn summarize(concurrency: usize, elapsed: Duration, mut tally: Tally) -> Level {
    tally.latencies_ms.sort_by(f64::total_cmp);
    let answered = tally.latencies_ms.len();
    let elapsed_s = elapsed.as_secs_f64();
    Level {
        concurrency,
        queries: answered + tally.errors,
        elapsed_s,
        queries_per_s: if elapsed_s > 0.0 {
            answered as f64 / elapsed_s
        } else {
            0.0
        },
        p50_ms: percentile(&tally.latencies_ms, 50.0),
        p95_ms: percentile(&tally.latencies_ms, 95.0),
        p99_ms: percentile(&tally.latencies_ms, 99.0),
        mean_ms: (answered > 0).then(|| tally.latencies_ms.iter().sum::<f64>() / answered as f64),
        mismatches: tally.mismatches,
        scores_differing: tally.scores_differing,
        scores_checked: tally.scores_checked,
        errors: tally.errors,
        first_error: tally.first_error,
    }
}

/// The levels as a Markdown table.
pub fn table(levels: &[Level]) -> Table {
    let mut t = Table::new(&[
        "concurrency",
        "queries",
        "queries/s",
        "p50 (ms)",
        "p95 (ms)",
        "p99 (ms)",
        "mismatches",
        "errors",
    ]);
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for l in levels {
        t.row(vec![
            l.concurrency.to_string(),
            l.queries.to_string(),
            format!("{:.2}", l.queries_per_s),
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms),
            l.mismatches.to_string(),
            l.errors.to_string(),
        ]);
    }
    t
}

/// Checks the arguments' bounds before anything connects.
fn check(args: &LoadArgs) -> Result<()> {
    if args.concurrency.is_empty() {
        bail!("--concurrency: give at least one level");
    }
    if let Some(c) = args
        .concurrency
        .iter()
        .find(|&&c| c == 0 || c > MAX_CONCURRENCY)
    {
        bail!("--concurrency: {c} is outside 1..={MAX_CONCURRENCY}");
    }
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_S) {
        bail!(
            "--duration: {} s is outside (0, {MAX_DURATION_S}] s",
            args.duration
        );
    }
    if args.max_queries == 0 || args.max_queries > MAX_QUERIES {
        bail!(
            "--max-queries: {} is outside 1..={MAX_QUERIES}",
            args.max_queries
        );
    }
    Ok(())
}

/// Runs one level: `concurrency` threads identify probes in turn until `duration` has
/// passed or `max_queries` were started.
fn level(
    folder: &ClientFolder,
    remote: &Remote,
    probes: &[Vec<f32>],
    concurrency: usize,
    duration: Duration,
    max_queries: usize,
) -> Level {
    let next = AtomicUsize::new(0);
    let merged = Mutex::new(Tally::default());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                let mut mine = Tally::default();
                while start.elapsed() < duration {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= max_queries {
                        break;
                    }
                    let probe = &probes[n % probes.len()];
                    let began = Instant::now();
                    match folder.identify(remote, probe) {
                        Ok(id) => {
                            mine.latencies_ms.push(began.elapsed().as_secs_f64() * 1e3);
                            let expected = folder.expected_scores(probe);
                            let differing = expected.len().abs_diff(id.scores.len()) as u64
                                + expected
                                    .iter()
                                    .zip(&id.scores)
                                    .filter(|(e, g)| e != g)
                                    .count() as u64;
                            mine.scores_checked += expected.len().max(id.scores.len()) as u64;
                            if differing > 0 || !id.missing.is_empty() {
                                mine.mismatches += 1;
                                mine.scores_differing += differing;
                            }
                        }
                        Err(e) => {
                            mine.errors += 1;
                            mine.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                merged.lock().unwrap_or_else(|p| p.into_inner()).merge(mine);
            });
        }
    });
    let elapsed = start.elapsed();
    let tally = merged.into_inner().unwrap_or_else(|p| p.into_inner());
    summarize(concurrency, elapsed, tally)
}

/// Runs `touchstone load`.
pub fn run(args: &LoadArgs) -> Result<()> {
    check(args)?;
    let folder = ClientFolder::open(&args.client)
        .with_context(|| format!("--client {}", args.client.display()))?;
    let probes: Vec<Vec<f32>> = folder
        .users()
        .iter()
        .filter(|u| !u.removed)
        .map(|u| u.template.clone())
        .collect();
    if probes.is_empty() {
        bail!(
            "--client {}: no enrolled users to use as probes; enrol some with `touchstone client enrol`",
            args.client.display()
        );
    }
    let remote = Remote::connect(&args.main, &args.tls)
        .with_context(|| format!("--main {} (CA folder {})", args.main, args.tls.display()))?;
    let status = remote.status()?;
    let mine = format!("{:016x}", folder.client().deployment());
    if status.deployment.as_deref() != Some(mine.as_str()) {
        bail!(
            "main server {} serves deployment {}, not the client {}'s {mine}; enrol that client there first",
            args.main,
            status.deployment.as_deref().unwrap_or("(none)"),
            args.client.display()
        );
    }
    println!(
        "touchstone load · main server {} · {} ({}) · {} users on {} clusters · {} s per level, at most {} queries",
        args.main,
        folder.layout_name(),
        folder.params().name,
        probes.len(),
        status.clusters,
        args.duration,
        args.max_queries
    );
    let mut levels = Vec::new();
    for &c in &args.concurrency {
        let l = level(
            &folder,
            &remote,
            &probes,
            c,
            Duration::from_secs_f64(args.duration),
            args.max_queries,
        );
        println!(
            "concurrency {c}: {} queries, {:.2}/s, p50 {}",
            l.queries,
            l.queries_per_s,
            l.p50_ms.map_or("-".into(), |v| format!("{v:.1} ms"))
        );
        levels.push(l);
    }
    let exact = levels.iter().all(|l| l.mismatches == 0 && l.errors == 0);
    println!("\n{}", table(&levels).render());
    let report = LoadReport {
        main: args.main.clone(),
        client: args.client.display().to_string(),
        scheme: folder.layout_name().to_string(),
        params: folder.params().name.clone(),
        users: probes.len(),
        duration_s: args.duration,
        max_queries: args.max_queries,
        levels,
        exact,
    };
    if let Some(out) = &args.out {
        write(out, &report)?;
        println!(
            "wrote {} and {}",
            out.join("load.json").display(),
            out.join("latency_vs_concurrency.png").display()
        );
    }
    let mismatches: usize = report.levels.iter().map(|l| l.mismatches).sum();
    let errors: usize = report.levels.iter().map(|l| l.errors).sum();
    if mismatches > 0 {
        bail!(
            "NOT EXACT: {mismatches} answers held decrypted scores different from the client's plaintext scores"
        );
    }
    if errors > 0 {
        let first = report
            .levels
            .iter()
            .find_map(|l| l.first_error.clone())
            .unwrap_or_default();
        bail!("{errors} queries failed; the first: {first}");
    }
    println!("every answer equals the client's plaintext scores");
    Ok(())
}

/// load.json and the latency-vs-concurrency figure.
fn write(out: &Path, report: &LoadReport) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("load.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let series = latency_series(&report.levels);
    if series.iter().all(|s| s.points.is_empty()) {
        return Ok(());
    }
    train::curve::register_font();
    let png = out.join("latency_vs_concurrency.png");
    let root = BitMapBackend::new(&png, (900, 560)).into_drawing_area();
    figures::line_chart(
        &root,
        "latency vs concurrency",
        "concurrent clients",
        "latency per query (ms)",
        &series,
        report.levels.len() > 1,
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    root.present()
        .map_err(|e| anyhow!("writing {}: {e:?}", png.display()))?;
    Ok(())
}

/// Reads one percentile off a level.
type Pick = fn(&Level) -> Option<f64>;

/// p50, p95 and p99 against concurrency (levels with no answer left out).
pub fn latency_series(levels: &[Level]) -> Vec<Series> {
    let pick: [(&str, Pick); 3] = [
        ("p50", |l| l.p50_ms),
        ("p95", |l| l.p95_ms),
        ("p99", |l| l.p99_ms),
    ];
    pick.iter()
        .map(|(label, f)| Series {
            label: label.to_string(),
            points: levels
                .iter()
                .filter_map(|l| f(l).map(|v| (l.concurrency as f64, v)))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 95.0), Some(95.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_level_summarises_its_threads_and_the_table_shows_it() {
        let mut a = Tally {
            latencies_ms: vec![30.0, 10.0],
            scores_checked: 20,
            ..Tally::default()
        };
        a.merge(Tally {
            latencies_ms: vec![20.0, 40.0],
            mismatches: 1,
            scores_differing: 2,
            scores_checked: 20,
            errors: 1,
            first_error: Some("main server 127.0.0.1:1: refused".into()),
        });
        let l = summarize(2, Duration::from_secs(2), a);
        assert_eq!(l.queries, 5, "4 answered, 1 failed");
        assert_eq!(l.queries_per_s, 2.0, "answered per second");
        assert_eq!(l.p50_ms, Some(20.0));
        assert_eq!(l.p99_ms, Some(40.0));
        assert_eq!(l.mean_ms, Some(25.0));
        assert_eq!((l.mismatches, l.errors), (1, 1));
        let empty = summarize(4, Duration::from_secs(1), Tally::default());
        assert_eq!(empty.p50_ms, None);
        let text = table(&[l, empty]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("queries/s") && lines[0].contains("p99 (ms)"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("| 2 ") && lines[2].contains("2.00") && lines[2].contains("40.0"),
            "{text}"
        );
        assert!(lines[3].contains(" - "), "no answers: {text}");
        let series = latency_series(&[Level {
            p50_ms: None,
            ..summarize(1, Duration::from_secs(1), Tally::default())
        }]);
        assert!(series.iter().all(|s| s.points.is_empty()));
    }

    #[test]
    fn arguments_are_bounded() {
        let args = |concurrency: Vec<usize>, duration: f64, max_queries: usize| LoadArgs {
            client: "c".into(),
            main: "127.0.0.1:1".into(),
            tls: "t".into(),
            concurrency,
            duration,
            max_queries,
            out: None,
        };
        assert!(check(&args(vec![1, 2, 4], 30.0, 100_000)).is_ok());
        assert!(check(&args(vec![0], 30.0, 10)).is_err());
        assert!(check(&args(vec![1], 0.0, 10)).is_err());
        assert!(check(&args(vec![1], 1e9, 10)).is_err());
        assert!(check(&args(vec![1], 1.0, 0)).is_err());
    }
}
