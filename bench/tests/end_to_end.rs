//! The flagship path end to end through the binary: the committed model's templates of a
//! small synthetic test split go through the encrypted roles, the accuracy rows come from
//! the decrypted scores, and a run whose decryption is corrupted (a cluster adds 1 to a
//! result homomorphically) fails instead of reporting numbers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;

use common::{text, touchstone};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/socofing-small")
}

/// A small synthetic SOCOFing-style set (10 subjects, 100 prints: a 20-image test split),
/// made once per test binary.
fn data() -> &'static Path {
    static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("socofing");
        let o = touchstone(
            &[
                "synth",
                "--preset",
                "socofing",
                "--fingers",
                "10",
                "--seed",
                "3",
                "--no-altered",
                "--no-report",
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        dir
    })
    .path()
}

fn config(data: &Path) -> String {
    format!(
        "name: e2e
repetitions: 1
data:
  path: {}
model:
  path: {}
matching:
  scheme: [plain, quantized, blindtouch, columnar]
  engine: cpu
  users: 600
  probes: 1
outputs:
  dir: out
",
        data.join("socofing").display(),
        model().display()
    )
}

#[test]
fn encrypted_accuracy_rows_come_from_decrypted_scores_and_equal_the_quantized_row() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("e2e.yaml"), config(data())).unwrap();
    let o = touchstone(&["run", "e2e.yaml", "--quiet"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let root = tmp.path().join("out/e2e");
    let run = std::fs::read_dir(&root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_scheme = |s: &str| {
        rows.iter()
            .find(|r| r["point"]["scheme"] == s)
            .unwrap_or_else(|| panic!("no {s} row"))["accuracy"]
            .clone()
    };
    let quantized = by_scheme("quantized");
    assert_eq!(quantized["scores"], "integer");
    assert_eq!(by_scheme("plain")["scores"], "float");
    for scheme in ["blindtouch", "columnar"] {
        let a = by_scheme(scheme);
        assert_eq!(a["scores"], "decrypted", "{scheme}");
        // 20 test images enrolled; every probe's 20 scores checked.
        let checked = a["scores_checked"].as_u64().unwrap();
        assert_eq!(checked, 20 * a["queries"].as_u64().unwrap(), "{scheme}");
        assert!(a["queries"].as_u64().unwrap() >= 20);
        for metric in [
            "accuracy",
            "f1",
            "eer",
            "roc_auc",
            "rank1",
            "fnmr_at_fmr_1pct",
        ] {
            assert_eq!(a[metric], quantized[metric], "{scheme} {metric}");
        }
    }
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("decrypted"), "{summary}");
    assert!(summary.contains("scores were compared"), "{summary}");
    // One score file per scheme run (for the DET figure).
    let files = std::fs::read_dir(run.join("scores")).unwrap().count();
    assert_eq!(files, 4);
}

#[test]
fn a_finished_run_renders_without_its_data_and_from_another_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // The data through a relative link that is gone after the run.
    std::os::unix::fs::symlink(data().join("socofing"), tmp.path().join("data-link")).unwrap();
    let config = config(data()).replace(
        &format!("path: {}", data().join("socofing").display()),
        "path: data-link",
    );
    assert!(config.contains("path: data-link"));
    std::fs::write(
        tmp.path().join("e2e.yaml"),
        config.replace(
            "[plain, quantized, blindtouch, columnar]",
            "[plain, quantized]",
        ),
    )
    .unwrap();
    let o = touchstone(&["run", "e2e.yaml", "--quiet"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_file(tmp.path().join("data-link")).unwrap();
    let run = std::fs::read_dir(tmp.path().join("out/e2e"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let elsewhere = tempfile::tempdir().unwrap();
    let o = touchstone(&["report", run.to_str().unwrap()], elsewhere.path());
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_corrupted_decryption_fails_the_run_instead_of_reporting_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("e2e.yaml"), config(data())).unwrap();
    let o = touchstone(
        &["run", "e2e.yaml", "--quiet", "--inject-fault"],
        tmp.path(),
    );
    assert!(!o.status.success(), "a corrupted result must fail the run");
    let t = text(&o);
    assert!(t.contains("NOT EXACT"), "{t}");
    // The accuracy gate itself fails the run (it runs before the latency queries).
    assert!(
        t.contains("blindtouch on the test templates: NOT EXACT"),
        "the first encrypted scheme's accuracy run fails: {t}"
    );
}

#[test]
fn match_scores_the_models_templates_and_refuses_a_corrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data().join("socofing");
    let model = model();
    let args = [
        "match",
        "--scheme",
        "columnar",
        "--clusters",
        "2",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let o = touchstone(&args, tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("model templates"), "{t}");
    assert!(
        t.contains("accuracy from this scheme's own decrypted scores"),
        "{t}"
    );
    assert!(t.contains("exact: YES"), "{t}");

    let mut faulty = args.to_vec();
    faulty.push("--inject-fault");
    let o = touchstone(&faulty, tmp.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("exact: NO"), "{}", text(&o));

    // Synthetic-only options make no sense with a model.
    let mut both = args.to_vec();
    both.extend(["--users", "10"]);
    let o = touchstone(&both, tmp.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("--users"), "{}", text(&o));
}
