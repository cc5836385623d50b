//! The harness end to end through the binary: resume after an interruption, and the
//! regression gate both ways. Small synthetic sweeps (no image data) keep these fast.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{text, touchstone};

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

/// One seed, one gallery size, `quantized` and `columnar`: the smallest run with an
/// encrypted scheme.
fn small_encrypted_config() -> String {
    CONFIG
        .replace("seed: [1, 2]", "seed: 1")
        .replace("[plain, quantized]", "[quantized, columnar]")
        .replace("[8, 16, 24]", "[8]")
}

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
    std::fs::write(tmp.path().join("tiny.yaml"), small_encrypted_config()).unwrap();
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

/// Runs the tiny config until `rows` rows exist; returns the run folder.
fn partial_run(tmp: &Path, rows: usize) -> PathBuf {
    std::fs::write(tmp.join("tiny.yaml"), CONFIG).unwrap();
    let max = rows.to_string();
    let o = touchstone(&["run", "tiny.yaml", "--quiet", "--max-rows", &max], tmp);
    assert!(o.status.success(), "{}", text(&o));
    run_dir(tmp)
}

#[test]
fn foreign_duplicate_and_contradictory_rows_are_refused_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partial_run(tmp.path(), 4);
    let log_path = dir.join("rows.jsonl");
    let original = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let edit = |line: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        f(&mut v);
        serde_json::to_string(&v).unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        // A row appended twice.
        (
            format!("{original}{}\n", lines[0]),
            "rows.jsonl:5: duplicate of line 1",
        ),
        // A row whose point says users=5000 under the key of users=8.
        (
            original.replacen(
                lines[1],
                &edit(lines[1], &|v| v["point"]["users"] = 5000.into()),
                1,
            ),
            "rows.jsonl:2: key",
        ),
        // A row of another config.
        (
            original.replacen(
                lines[2],
                &edit(lines[2], &|v| v["config_hash"] = "0123456789abcdef".into()),
                1,
            ),
            "rows.jsonl:3: row from another config",
        ),
        // A consistent row for a point the sweep does not have (never run).
        (
            original.replacen(
                lines[3],
                &edit(lines[3], &|v| {
                    v["point"]["users"] = 5000.into();
                    let key = v["key"]
                        .as_str()
                        .unwrap()
                        .replace("users=8 ", "users=5000 ");
                    v["key"] = key.into();
                }),
                1,
            ),
            "not in this config's sweep",
        ),
        // A complete last line that is not a row is an error, not a torn write.
        (
            format!("{original}{{\"oops\": 1}}\n"),
            "rows.jsonl:5: not a valid row",
        ),
    ];
    for (log, expected) in cases {
        std::fs::write(&log_path, &log).unwrap();
        let o = touchstone(&["run", "tiny.yaml", "--quiet", "--resume"], tmp.path());
        assert!(!o.status.success(), "{expected}: {}", text(&o));
        assert!(text(&o).contains(expected), "{expected}: {}", text(&o));
        // `report` refuses the same log and never rewrites it.
        let r = touchstone(&["report", dir.to_str().unwrap()], tmp.path());
        assert!(
            !r.status.success() && text(&r).contains(expected),
            "{}",
            text(&r)
        );
        assert_eq!(std::fs::read_to_string(&log_path).unwrap(), log);
    }

    // A torn last line: report leaves it alone, resume repairs and reruns it.
    let torn = format!("{original}{}", &lines[0][..30]);
    std::fs::write(&log_path, &torn).unwrap();
    let r = touchstone(&["report", dir.to_str().unwrap()], tmp.path());
    assert!(r.status.success(), "{}", text(&r));
    assert!(text(&r).contains("torn row"), "{}", text(&r));
    assert_eq!(std::fs::read_to_string(&log_path).unwrap(), torn);
    let o = touchstone(&["run", "tiny.yaml", "--quiet", "--resume"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(keys(&dir).len(), 12);
}

#[test]
fn a_process_killed_while_repairing_the_log_or_writing_the_manifest_loses_no_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partial_run(tmp.path(), 5);
    let log_path = dir.join("rows.jsonl");
    let mut log = std::fs::read_to_string(&log_path).unwrap();
    log.push_str(&log.clone()[..40]);
    std::fs::write(&log_path, &log).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();

    // Killed in the middle of the torn-line repair (temporary written, not yet renamed).
    let crash = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_touchstone"))
            .args(["run", "tiny.yaml", "--quiet", "--resume"])
            .current_dir(tmp.path())
            .env("TOUCHSTONE_TEST_CRASH_BEFORE_RENAME", file)
            .output()
            .unwrap()
    };
    let o = crash("rows.jsonl");
    assert!(!o.status.success(), "the injected crash happened");
    assert_eq!(
        std::fs::read_to_string(&log_path).unwrap(),
        log,
        "log untouched"
    );
    assert_eq!(keys_complete(&log_path), 5);

    // Killed while rewriting the manifest: the old one is still whole.
    let o = crash("manifest.json");
    assert!(!o.status.success());
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
            .expect("manifest.json is still a whole JSON document");
    let before: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(now["config_hash"], before["config_hash"]);

    // The next resume finishes with every point exactly once.
    let o = touchstone(&["run", "tiny.yaml", "--quiet", "--resume"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("5 done"), "{}", text(&o));
    let mut got = keys(&dir);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 12);
    assert_eq!(keys(&dir).len(), 12, "no duplicates");
}

/// Complete lines of a log (a torn last line not counted).
fn keys_complete(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .count()
}

#[test]
fn names_leaving_the_results_folder_and_absurd_sweeps_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "matching:\n  scheme: plain\n  users: 8\n  probes: 1\noutputs:\n  dir: out\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("name: ../escape\n{body}"), "field `name`"),
        (format!("name: /tmp/absolute\n{body}"), "field `name`"),
        (format!("name: \"a\\u202Eb\"\n{body}"), "U+202E"),
        (format!("name: \"tab\\there\"\n{body}"), "field `name`"),
        (format!("name: \"arabic\\u061Cmark\"\n{body}"), "U+061C"),
        (format!("name: \"soft\\u00ADhyphen\"\n{body}"), "U+00AD"),
        (
            "name: huge\nseed: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]\nmatching:\n  scheme: [plain, quantized, blindtouch, columnar]\n  users: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]\n  clusters: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64]\n  probes: [1,2,3,4,5,6,7,8,9,10]\noutputs:\n  dir: out\n".to_string(),
            "the sweep expands to",
        ),
        (
            format!("name: t\nrepetitions: 18446744073709551615\n{body}"),
            "field `repetitions`",
        ),
        (
            "name: t\nmatching:\n  scheme: columnar\n  users: 8\n  bits: [8, 0]\n".to_string(),
            "t.yaml:5: field `matching.bits`",
        ),
        (
            "name: t\nmatching:\n  scheme: columnar\n  users: 8\n  bits: 65\n".to_string(),
            "field `matching.bits`",
        ),
        (
            "name: t\nmatching:\n  scheme: columnar\n  users: 8\n  params: [col-8192, nope]\n".to_string(),
            "t.yaml:5: field `matching.params`",
        ),
        (
            "name: t\nmatching:\n  scheme: columnar\n  users: [8, 0]\n".to_string(),
            "field `matching.users`",
        ),
        (
            "name: t\nmatching:\n  scheme: columnar\n  users: 8\n  clusters: 100000\n".to_string(),
            "clusters must be in 1..=64",
        ),
        (
            format!("name: t\nmatching: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            "nests collections",
        ),
        // Flow nesting split over lines is counted across them.
        (
            format!("name: t\nmatching:\n{}1\n{}", "[\n".repeat(100), "]\n".repeat(100)),
            "nests collections",
        ),
    ];
    for (config, expected) in cases {
        std::fs::write(tmp.path().join("t.yaml"), &config).unwrap();
        let start = std::time::Instant::now();
        let o = touchstone(&["run", "t.yaml", "--quiet"], tmp.path());
        let took = start.elapsed();
        assert!(!o.status.success(), "{expected}: {}", text(&o));
        assert!(text(&o).contains(expected), "{expected}: {}", text(&o));
        // Refused before any run folder was made.
        assert!(
            !tmp.path().join("out").exists(),
            "{expected}: a run folder was made"
        );
        assert!(!tmp.path().join("results").exists(), "{expected}");
        let _ = took;
    }
    assert!(!tmp.path().parent().unwrap().join("escape").exists());
}

#[test]
fn match_refuses_non_finite_or_negative_noise_and_bad_bits() {
    let tmp = tempfile::tempdir().unwrap();
    for noise in ["inf", "NaN", "-1"] {
        let o = touchstone(
            &[
                "match",
                "--scheme",
                "quantized",
                "--users",
                "4",
                "--noise",
                noise,
            ],
            tmp.path(),
        );
        assert!(!o.status.success(), "--noise {noise}");
        assert!(text(&o).contains("noise"), "{noise}: {}", text(&o));
    }
    for bits in ["0", "1", "17", "65"] {
        let o = touchstone(
            &[
                "match",
                "--scheme",
                "quantized",
                "--users",
                "4",
                "--bits",
                bits,
            ],
            tmp.path(),
        );
        assert!(!o.status.success(), "--bits {bits}");
        assert!(text(&o).contains("bits"), "{bits}: {}", text(&o));
    }
    for bits in ["0", "65"] {
        let o = touchstone(
            &["eval", "--model", "m", "--data", "d", "--bits", bits],
            tmp.path(),
        );
        assert!(!o.status.success(), "eval --bits {bits}");
        assert!(text(&o).contains("--bits"), "{bits}: {}", text(&o));
    }
    let o = touchstone(
        &[
            "match",
            "--scheme",
            "columnar",
            "--users",
            "4",
            "--clusters",
            "100000",
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("clusters must be in 1..=64"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_manifest_records_the_real_compiler_and_locked_crate_versions() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tiny.yaml"), small_encrypted_config()).unwrap();
    let o = touchstone(&["run", "tiny.yaml", "--quiet"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let dir = run_dir(tmp.path());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let version = |name: &str| -> String {
        manifest["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pair| pair[0] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", manifest["versions"]))[1]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The compiler that built this test binary is the one on PATH (CI and README use one
    // toolchain); `rustc -V` is what the build script recorded.
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-V")
        .output()
        .unwrap();
    assert_eq!(
        version("rustc"),
        String::from_utf8_lossy(&rustc.stdout).trim()
    );
    // fhe's version as Cargo.lock pins it.
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
        .unwrap();
    let locked = lock
        .split("[[package]]")
        .find(|block| block.contains("\nname = \"fhe\"\n"))
        .and_then(|block| block.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap();
    assert_eq!(version("fhe"), locked);
    // The parameter set the columnar points used, with its moduli.
    let params = manifest["params"].as_array().unwrap();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0]["name"], "col-8192");
    assert_eq!(params[0]["moduli"].as_array().unwrap().len(), 2);
}

#[test]
fn a_second_process_on_the_same_run_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = partial_run(tmp.path(), 2);
    // Hold the run folder's lock as a running touchstone would.
    let lock = std::fs::File::options()
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    lock.lock().unwrap();
    let o = touchstone(
        &[
            "run",
            "tiny.yaml",
            "--quiet",
            "--resume",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("another touchstone process"),
        "{}",
        text(&o)
    );
    assert_eq!(keys(&dir).len(), 2, "nothing appended");
    lock.unlock().unwrap();
    let o = touchstone(
        &[
            "run",
            "tiny.yaml",
            "--quiet",
            "--resume",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(keys(&dir).len(), 12);
}

#[test]
fn runs_started_in_the_same_second_get_their_own_folders() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tiny.yaml"),
        CONFIG
            .replace("seed: [1, 2]", "seed: 1")
            .replace("[8, 16, 24]", "[8]"),
    )
    .unwrap();
    for _ in 0..3 {
        let o = touchstone(&["run", "tiny.yaml", "--quiet"], tmp.path());
        assert!(o.status.success(), "{}", text(&o));
    }
    let runs = std::fs::read_dir(tmp.path().join("out/tiny"))
        .unwrap()
        .count();
    assert_eq!(runs, 3, "three runs, three folders, none shared");
}

/// A tiny training recipe (30 synthetic prints, 32×32, 2 epochs) for `model: train:`.
const TRAIN: &str = "data:
  synthetic: { preset: socofing, fingers: 3, seed: 7, altered: false }
  pipeline: blindtouch-socofing
  augmentation: blindtouch-socofing
  split_seed: 42
model:
  input_size: 32
  width: 0.125
training:
  epochs: 2
  batch_size: 8
  learning_rate: 0.001
  patience: 10
  seed: 1
out: ignored-by-the-harness
";

const TRAINED: &str = "name: trained
seed: 1
repetitions: 1
data:
  synthetic: { preset: socofing, fingers: 3, seed: 7, altered: false }
model:
  train: train.yaml
matching:
  scheme: plain
  users: 8
  probes: 1
outputs:
  dir: out
";

fn cached_models(outputs: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(outputs.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("model-")
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_model_trained_by_the_harness_is_cached_by_its_digest_and_never_retrained() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.yaml"), TRAIN).unwrap();
    std::fs::write(tmp.path().join("trained.yaml"), TRAINED).unwrap();
    let first = touchstone(&["run", "trained.yaml", "--quiet"], tmp.path());
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("training the model from train.yaml"),
        "{}",
        text(&first)
    );
    let [model] = cached_models(&tmp.path().join("out")).try_into().unwrap();
    let head = model.join("head.json");
    let written = std::fs::metadata(&head).unwrap().modified().unwrap();

    // The same recipe again, in a new run: the cached model, untouched.
    let second = touchstone(&["run", "trained.yaml", "--quiet"], tmp.path());
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("reusing the model"),
        "{}",
        text(&second)
    );
    assert!(
        !text(&second).contains("training the model"),
        "{}",
        text(&second)
    );
    assert_eq!(
        std::fs::metadata(&head).unwrap().modified().unwrap(),
        written
    );

    // Another recipe is another model.
    let other = TRAIN.replace("learning_rate: 0.001", "learning_rate: 0.002");
    std::fs::write(tmp.path().join("train.yaml"), other).unwrap();
    let third = touchstone(&["run", "trained.yaml", "--quiet"], tmp.path());
    assert!(third.status.success(), "{}", text(&third));
    assert!(
        text(&third).contains("training the model"),
        "{}",
        text(&third)
    );
    assert_eq!(cached_models(&tmp.path().join("out")).len(), 2);

    // Asked for CUDA in a build without it: a note, and the CPU.
    if !cfg!(feature = "cuda") {
        let cuda = TRAINED.replace("  train: train.yaml", "  train: train.yaml\n  device: cuda");
        std::fs::write(tmp.path().join("trained.yaml"), cuda).unwrap();
        let other = TRAIN.replace("learning_rate: 0.001", "learning_rate: 0.003");
        std::fs::write(tmp.path().join("train.yaml"), other).unwrap();
        let fourth = touchstone(&["run", "trained.yaml", "--quiet"], tmp.path());
        assert!(fourth.status.success(), "{}", text(&fourth));
        assert!(
            text(&fourth).contains("training on the CPU instead"),
            "{}",
            text(&fourth)
        );
        assert_eq!(cached_models(&tmp.path().join("out")).len(), 3);
    }
}

const PIPELINES: &str = "name: pipes
pipelines:
  recipe: train.yaml
  candidates:
    - blindtouch-socofing
    - name: closing
      steps:
        - { step: resize, width: 32, height: 32 }
        - { step: dilate }
        - { step: erode }
  seeds: [1, 2]
  bootstrap: 50
outputs:
  dir: out
";

/// The preprocessing comparison trains one model per pipeline and seed (four here, on
/// 30 tiny prints), writes its table, scores and figure, and on a rerun retrains none.
#[test]
fn the_preprocessing_comparison_trains_one_model_per_pipeline_and_seed_and_caches_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.yaml"), TRAIN).unwrap();
    std::fs::write(tmp.path().join("pipes.yaml"), PIPELINES).unwrap();
    let first = touchstone(&["run", "pipes.yaml"], tmp.path());
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(
        text(&first).matches("training the model").count(),
        4,
        "{}",
        text(&first)
    );
    assert_eq!(cached_models(&tmp.path().join("out")).len(), 4);
    let runs: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("out/pipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [run] = runs.try_into().unwrap();
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("pipelines.json")).unwrap())
            .unwrap();
    let rows = result["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["pipeline"], "blindtouch-socofing");
    assert_eq!(rows[1]["pipeline"], "closing");
    // The reference's difference to itself is exactly zero; every interval holds its
    // estimate; each row has one model per seed, and the models differ.
    assert_eq!(rows[0]["eer_difference"]["high"], 0.0);
    for row in rows {
        for metric in ["eer", "f1", "rank1", "eer_difference"] {
            let i = &row[metric];
            let (lo, est, hi) = (
                i["low"].as_f64().unwrap(),
                i["estimate"].as_f64().unwrap(),
                i["high"].as_f64().unwrap(),
            );
            assert!(lo <= est + 1e-9 && est <= hi + 1e-9, "{metric}: {i}");
        }
        assert_eq!(row["per_seed"].as_array().unwrap().len(), 2);
    }
    let models: std::collections::BTreeSet<String> = rows
        .iter()
        .flat_map(|r| r["per_seed"].as_array().unwrap().iter())
        .map(|m| m["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models.len(), 4);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("| closing |"), "{summary}");
    assert!(run.join("figures/pipelines.png").is_file());
    assert!(run.join("scores.json").is_file());
    // `touchstone report` re-renders the run from pipelines.json.
    std::fs::remove_file(run.join("summary.md")).unwrap();
    let report = touchstone(&["report", run.to_str().unwrap()], tmp.path());
    assert!(report.status.success(), "{}", text(&report));
    assert_eq!(
        std::fs::read_to_string(run.join("summary.md")).unwrap(),
        summary
    );

    let second = touchstone(&["run", "pipes.yaml"], tmp.path());
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        !text(&second).contains("training the model"),
        "{}",
        text(&second)
    );
    assert_eq!(text(&second).matches("reusing the model").count(), 4);
}

#[test]
fn preprocessing_comparison_configs_are_checked_before_anything_trains() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.yaml"), TRAIN).unwrap();
    for (bad, expected) in [
        (
            "  seeds: [1, 2]",
            "  seeds: [1, 1]",
            "seed 1 is listed twice",
        ),
        ("  seeds: [1, 2]", "  seeds: []", "give 1 to 20 seeds"),
        ("  bootstrap: 50", "  bootstrap: 5", "between 10 and"),
        (
            "  recipe: train.yaml",
            "  recipe: nowhere.yaml",
            "nowhere.yaml",
        ),
        ("    - blindtouch-socofing", "    - sharpen", "`sharpen`"),
        (
            "  seeds: [1, 2]",
            "  seeds: [1, 2]\n  reference: nope",
            "`nope` is not a candidate",
        ),
    ]
    .map(|(from, to, why)| (PIPELINES.replace(from, to), why))
    {
        std::fs::write(tmp.path().join("bad.yaml"), &bad).unwrap();
        let out = touchstone(&["run", "bad.yaml"], tmp.path());
        assert!(!out.status.success(), "{bad}");
        assert!(text(&out).contains(expected), "{expected}: {}", text(&out));
        assert!(!text(&out).contains("training the model"), "{}", text(&out));
    }
}
