//! `deployment:` in experiment configs, through the binary: a run whose points start
//! their own main and cluster server processes on loopback, side by side with the same
//! points in process; and config errors that name the file and line.

use std::path::Path;

mod common;

use common::{only_run, text, touchstone};

/// columnar at 100 users on 2 clusters, in process and as local server processes.
const LOCAL: &str = "name: dep
seed: 1
repetitions: 1
matching:
  scheme: columnar
  engine: cpu
  users: 100
  clusters: 2
  probes: 2
deployment:
  mode: [in-process, local]
outputs:
  dir: out
";

fn rows(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The index of a stage in a row's `stages` (see `rows::STAGES`).
fn stage<'a>(row: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let names = [
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
    let i = names.iter().position(|n| *n == name).unwrap();
    &row["stages"][i]
}

#[test]
fn a_local_deployment_run_times_real_transfers_and_checks_every_score() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dep.yaml"), LOCAL).unwrap();
    let out = touchstone(&["run", "dep.yaml", "--quiet"], tmp.path());
    assert!(out.status.success(), "{}", text(&out));
    let dir = only_run(tmp.path(), "dep");
    let rows = rows(&dir);
    assert_eq!(rows.len(), 2, "one in-process and one local row");
    let local = rows
        .iter()
        .find(|r| r["point"]["deployment"] == "local")
        .expect("a local row");
    let in_process = rows
        .iter()
        .find(|r| r["point"]["deployment"] == "in-process")
        .expect("an in-process row");
    assert!(
        local["key"].as_str().unwrap().ends_with("deployment=local"),
        "{}",
        local["key"]
    );
    assert!(
        !in_process["key"].as_str().unwrap().contains("deployment"),
        "in-process keys are the ones older runs have"
    );
    assert_eq!(local["exact"], true);
    assert_eq!(in_process["exact"], true);
    assert_eq!(local["queries"], 2);
    for name in ["upload", "download", "server_other"] {
        let s = stage(local, name);
        // An answer of one chunk arrives within the server's time: its download (first
        // chunk to last) may round to nothing, but it is there.
        let least = if name == "upload" { 0.0 } else { -1.0 };
        assert!(
            s["median"].as_f64().is_some_and(|m| m > least),
            "local {name}: {s}"
        );
        assert!(
            stage(in_process, name).is_null(),
            "in process there is no {name}"
        );
    }
    let d = &local["deployment"];
    assert!(d["main"].as_str().unwrap().starts_with("127.0.0.1:"), "{d}");
    assert_eq!(d["clusters"], 2);
    assert_eq!(d["pinning"], "not pinned");
    assert!(local["upload_bytes"].as_u64().unwrap() > 0);
    assert!(local["download_bytes"].as_u64().unwrap() > 0);
    assert!(local["fanout_bytes"].as_u64().unwrap() > 0);
    assert!(local["gather_bytes"].as_u64().unwrap() > 0);
    // The same messages travel either way.
    assert_eq!(local["upload_bytes"], in_process["upload_bytes"]);
    assert_eq!(local["fanout_bytes"], in_process["fanout_bytes"]);
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    for part in ["## In process vs deployed", "## Deployed links", " local |"] {
        assert!(summary.contains(part), "{part} missing:\n{summary}");
    }
    let csv = std::fs::read_to_string(dir.join("rows.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for column in [
        "deployment",
        "upload_ms_median",
        "download_ms_median",
        "fanout_bytes",
    ] {
        assert!(header.split(',').any(|c| c == column), "{column}: {header}");
    }
    // The run's CA stays with it; the servers' stores and the client were temporary.
    assert!(dir.join("tls/ca.pem").is_file());
}

#[test]
fn deployment_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            LOCAL.replace("scheme: columnar", "scheme: [quantized, columnar]"),
            "bad.yaml:11:",
            "scheme `quantized` cannot be deployed `local`",
        ),
        (
            LOCAL.replace("[in-process, local]", "[in-process, cloud]"),
            "bad.yaml:11:",
            "cloud",
        ),
        (
            LOCAL.replace("[in-process, local]", "remote"),
            "bad.yaml:11:",
            "deployment.main",
        ),
    ];
    for (config, at, message) in cases {
        std::fs::write(tmp.path().join("bad.yaml"), &config).unwrap();
        let out = touchstone(&["run", "bad.yaml", "--quiet"], tmp.path());
        let t = text(&out);
        assert!(!out.status.success(), "{config}\n{t}");
        assert!(
            t.contains(at) && t.contains(message),
            "{at} {message}:\n{t}"
        );
        assert!(!tmp.path().join("out").exists(), "nothing written: {t}");
    }
}
