//! The harness end to end through the binary: resume after an interruption, and the
//! regression gate both ways. Small synthetic sweeps (no image data) keep these fast.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn touchstone(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_touchstone"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the touchstone binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const CONFIG: &str = "name: tiny
seed: [1, 2]
repetitions: 2
matching:
  scheme: [plain, quantized]
  users: [8, 16, 24]
  probes: 1
outputs:
  dir: out
";

fn keys(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn run_dir(root: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("out/tiny"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

#[test]
fn an_interrupted_run_resumes_to_exactly_the_full_set_of_rows() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tiny.yaml"), CONFIG).unwrap();
    // A complete run gives the reference set of rows.
    let full = touchstone(&["run", "tiny.yaml", "--quiet"], tmp.path());
    assert!(full.status.success(), "{}", text(&full));
    let complete_dir = run_dir(tmp.path());
    let mut expected = keys(&complete_dir);
    expected.sort();
    assert_eq!(expected.len(), 12, "2 seeds × 2 schemes × 3 sizes");
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();

    // Interrupted after 5 rows, with the 6th half written when the process died.
    let first = touchstone(
        &["run", "tiny.yaml", "--quiet", "--max-rows", "5"],
        tmp.path(),
    );
    assert!(first.status.success(), "{}", text(&first));
    let dir = run_dir(tmp.path());
    assert_eq!(keys(&dir).len(), 5);
    assert!(
        !dir.join("summary.md").exists(),
        "an interrupted run has no summary yet"
    );
    let mut log = std::fs::read_to_string(dir.join("rows.jsonl")).unwrap();
    let partial = log.lines().next().unwrap()[..40].to_string();
    log.push_str(&partial);
    std::fs::write(dir.join("rows.jsonl"), log).unwrap();

    // A second interruption, then the resume that finishes.
    let second = touchstone(
        &["run", "tiny.yaml", "--quiet", "--resume", "--max-rows", "3"],
        tmp.path(),
    );
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("5 done"), "{}", text(&second));
    assert_eq!(keys(&dir).len(), 8);
    let last = touchstone(
        &[
            "run",
            "tiny.yaml",
            "--quiet",
            "--resume",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(last.status.success(), "{}", text(&last));
    let mut got = keys(&dir);
    got.sort();
    assert_eq!(got, expected, "every point exactly once");
    for file in [
        "rows.csv",
        "rows.parquet",
        "summary.md",
        "manifest.json",
        "figures/latency_vs_users.png",
        "figures/stage_breakdown.png",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(dir.join("rows.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13, "header + 12 rows");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"], 12);
    assert!(manifest["finished"].is_string());

    // Resuming a finished run redoes nothing; another config's run is refused.
    let again = touchstone(&["run", "tiny.yaml", "--quiet", "--resume"], tmp.path());
    assert!(text(&again).contains("0 to run"), "{}", text(&again));
    std::fs::write(
        tmp.path().join("tiny.yaml"),
        CONFIG.replace("repetitions: 2", "repetitions: 3"),
    )
    .unwrap();
    let other = touchstone(&["run", "tiny.yaml", "--quiet", "--resume"], tmp.path());
    assert!(
        !other.status.success() && text(&other).contains("another version of the config"),
        "{}",
        text(&other)
    );
}

#[test]
fn regress_passes_against_its_own_baseline_and_fails_on_a_worse_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tiny.yaml"),
        CONFIG
            .replace("seed: [1, 2]", "seed: 1")
            .replace("[plain, quantized]", "[quantized, columnar]")
            .replace("[8, 16, 24]", "[8]"),
    )
    .unwrap();
    let run = touchstone(&["run", "tiny.yaml", "--quiet"], tmp.path());
    assert!(run.status.success(), "{}", text(&run));
    let dir = run_dir(tmp.path());
    let dir_s = dir.to_str().unwrap();
    let write = touchstone(
        &[
            "regress",
            "--baseline",
            "base.yaml",
            dir_s,
            "--write",
            "--reference",
            "quantized",
            "--tolerance-ratio",
            "0.25",
        ],
        tmp.path(),
    );
    assert!(write.status.success(), "{}", text(&write));

    let pass = touchstone(&["regress", "--baseline", "base.yaml", dir_s], tmp.path());
    assert!(pass.status.success(), "{}", text(&pass));
    assert!(text(&pass).contains("total / reference") && !text(&pass).contains("REGRESSED"));

    // The baseline claims columnar used to be 100× closer to the reference: a regression.
    let base = std::fs::read_to_string(tmp.path().join("base.yaml")).unwrap();
    let mut value: serde_yaml::Value = serde_yaml::from_str(&base).unwrap();
    for row in value["rows"].as_sequence_mut().unwrap() {
        if row["key"].as_str().unwrap().contains("scheme=columnar") {
            let ratio = row["total_ratio"].as_f64().unwrap();
            row["total_ratio"] = serde_yaml::Value::from(ratio / 100.0);
        }
    }
    std::fs::write(
        tmp.path().join("worse.yaml"),
        serde_yaml::to_string(&value).unwrap(),
    )
    .unwrap();
    let fail = touchstone(&["regress", "--baseline", "worse.yaml", dir_s], tmp.path());
    assert!(!fail.status.success());
    let out = text(&fail);
    assert!(
        out.contains("REGRESSED") && out.contains("1 check(s) regressed"),
        "{out}"
    );
    assert!(out.contains("columnar"), "{out}");
}

#[test]
fn config_errors_are_reported_with_their_location() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.yaml"),
        "name: t\nmatching:\n  scheme: plain\n  users: []\n",
    )
    .unwrap();
    let out = touchstone(&["run", "bad.yaml"], tmp.path());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("bad.yaml:4:") && text(&out).contains("empty sweep"),
        "{}",
        text(&out)
    );
}
