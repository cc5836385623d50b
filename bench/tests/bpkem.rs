//! The BPKEM study through the binary on tiny synthetic sets: every table is written from
//! real runs of the fuzzy extractor, the sharing and the LWE check, and what must hold
//! whatever the data does holds (no wrong key ever, k − 1 shares always refused, the
//! simulated success rates inside their confidence intervals of the exact theory).

use std::path::Path;

mod common;

use common::{committed_model, only_run, text, touchstone};

fn config(model: &Path) -> String {
    format!(
        "name: bk
bpkem:
  datasets:
    - synthetic: {{ preset: socofing, fingers: 2, seed: 3, altered: true }}
    - synthetic: {{ preset: polyu, fingers: 24, seed: 3 }}
  model: {}
  descriptors: [minutiae, embedding]
  lockers: [20, 100]
  errors: [0, 10, 20, 30]
  trials: 300
  pairs: 40
  flows: 3
outputs:
  dir: out
",
        model.display()
    )
}

#[test]
fn the_bpkem_study_writes_its_tables_from_real_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = committed_model();
    std::fs::write(tmp.path().join("bk.yaml"), config(&model)).unwrap();
    let out = touchstone(&["run", "bk.yaml"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let dir = only_run(tmp.path(), "bk");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bpkem.json")).unwrap()).unwrap();
    // Simulated: 2 locker counts × 4 errors; the exact theory lies inside each measured
    // rate's 99.9% Wilson interval (the report's 95% one may miss 1 in 20), no wrong key.
    let sim = r["simulated"].as_array().unwrap();
    assert_eq!(sim.len(), 2);
    for entry in sim {
        for p in entry[1].as_array().unwrap() {
            assert_eq!(p["wrong_keys"], 0, "{p}");
            let ci = bpkem::metrics::wilson(
                p["successes"].as_u64().unwrap() as usize,
                p["trials"].as_u64().unwrap() as usize,
                3.29,
            );
            assert!(ci.contains(p["theory"].as_f64().unwrap()), "{p} {ci:?}");
        }
    }
    let datasets = r["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 2);
    for ds in datasets {
        for d in ds["descriptors"].as_array().unwrap() {
            assert!(d["genuine_pairs"].as_u64().unwrap() > 0, "{d}");
            let intra: u64 = d["intra"]["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .sum();
            assert_eq!(intra, d["genuine_pairs"].as_u64().unwrap());
            for lr in d["rates"].as_array().unwrap() {
                assert_eq!(lr["rates"]["wrong_keys"], 0, "{lr}");
            }
        }
        for f in ds["flows"].as_array().unwrap() {
            let (enrolled, recovered, missed) = (
                f["enrolments"].as_u64().unwrap(),
                f["recoveries"].as_u64().unwrap(),
                f["no_locker"].as_u64().unwrap(),
            );
            assert!(enrolled > 0);
            assert_eq!(recovered + missed, enrolled, "{f}");
            assert!(f["short_tried"].as_u64().unwrap() > 0, "{f}");
        }
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    for part in [
        "Success rate vs Hamming error",
        "FRR (95% CI)",
        "T_K",
        "figures/success_vs_errors.png",
    ] {
        assert!(summary.contains(part), "{part} missing");
    }
    assert!(dir.join("figures/hamming_1_minutiae.png").is_file());
    // `report` re-renders it from bpkem.json.
    std::fs::remove_file(dir.join("summary.md")).unwrap();
    let again = touchstone(&["report", dir.to_str().unwrap()], tmp.path());
    assert!(again.status.success(), "{}", text(&again));
    assert!(dir.join("summary.md").is_file());
}

#[test]
fn a_bad_bpkem_config_names_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let model = committed_model();
    for (edit, expect) in [
        (("trials: 300", "trials: 0"), "bpkem.trials"),
        (
            ("errors: [0, 10, 20, 30]", "errors: [0, 200]"),
            "bpkem.errors",
        ),
        (
            ("lockers: [20, 100]", "lockers: [20, lots]"),
            "bpkem.lockers",
        ),
        (("  flows: 3\n", "  flows: 3\n  colour: red\n"), "colour"),
    ] {
        std::fs::write(
            tmp.path().join("bk.yaml"),
            config(&model).replace(edit.0, edit.1),
        )
        .unwrap();
        let out = touchstone(&["run", "bk.yaml"], tmp.path());
        assert!(!out.status.success(), "{edit:?} accepted");
        let t = text(&out);
        assert!(t.contains("bk.yaml") && t.contains(expect), "{edit:?}: {t}");
    }
}
