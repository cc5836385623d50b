//! Sharded runs through the binary: shards run separately and merged give the same points
//! as one unsharded run; a missing shard, a duplicated row, a row in the wrong shard or a
//! row from another config make `merge` fail with a message naming it.

use std::path::{Path, PathBuf};

mod common;

use common::{text, touchstone};

/// 2 seeds × (plain, quantized, columnar) × 2 gallery sizes = 12 points, small enough to
/// run twice in a test.
const CONFIG: &str = "name: shardy
seed: [1, 2]
repetitions: 1
matching:
  scheme: [plain, quantized, columnar]
  users: [8, 24]
  probes: 1
outputs:
  dir: out
";

fn keys_of(log: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    keys.sort();
    keys
}

fn run_shard(cwd: &Path, run: &Path, shard: &str) {
    let out = touchstone(
        &[
            "run",
            "shardy.yaml",
            "--quiet",
            "--shard",
            shard,
            "--run-dir",
            run.to_str().unwrap(),
        ],
        cwd,
    );
    assert!(out.status.success(), "shard {shard}: {}", text(&out));
}

fn merge(cwd: &Path, run: &Path) -> std::process::Output {
    touchstone(&["merge", run.to_str().unwrap()], cwd)
}

/// A run folder with all three shards done.
fn sharded(cwd: &Path, name: &str) -> PathBuf {
    let run = cwd.join(name);
    for shard in ["1/3", "2/3", "3/3"] {
        run_shard(cwd, &run, shard);
    }
    run
}

#[test]
fn merged_shards_hold_the_same_points_as_an_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("shardy.yaml"), CONFIG).unwrap();
    let full = touchstone(&["run", "shardy.yaml", "--quiet"], cwd);
    assert!(full.status.success(), "{}", text(&full));
    let single = std::fs::read_dir(cwd.join("out/shardy"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let expected = keys_of(&single.join("rows.jsonl"));
    assert_eq!(expected.len(), 12);

    let run = cwd.join("sharded");
    // Shard 2 stops after one row (an interrupted task); its rerun resumes it.
    let partial = touchstone(
        &[
            "run",
            "shardy.yaml",
            "--quiet",
            "--shard",
            "2/3",
            "--run-dir",
            "sharded",
            "--max-rows",
            "1",
        ],
        cwd,
    );
    assert!(partial.status.success(), "{}", text(&partial));
    assert_eq!(keys_of(&run.join("shards/2-of-3/rows.jsonl")).len(), 1);
    for shard in ["1/3", "2/3", "3/3"] {
        run_shard(cwd, &run, shard);
    }
    let mut per_shard = 0;
    for i in 1..=3 {
        let n = keys_of(&run.join(format!("shards/{i}-of-3/rows.jsonl"))).len();
        assert!(n > 0, "shard {i} ran nothing");
        per_shard += n;
    }
    assert_eq!(per_shard, 12);
    // Shard 2's manifest records both attempts.
    let man: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("shards/2-of-3/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(man["shard"]["attempts"].as_array().unwrap().len(), 2);

    let merged = merge(cwd, &run);
    assert!(merged.status.success(), "{}", text(&merged));
    assert_eq!(keys_of(&run.join("rows.jsonl")), expected);
    for file in ["rows.csv", "rows.parquet", "summary.md", "manifest.json"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(man["shards"].as_array().unwrap().len(), 3);
    assert_eq!(man["rows"], 12);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(summary.contains("Merged from 3 shards"), "{summary}");
    // Two seeds: the latency table tells their rows apart.
    assert!(summary.contains("| seed |"), "{summary}");
    // `report` treats the merged folder as any run.
    std::fs::remove_file(run.join("summary.md")).unwrap();
    let report = touchstone(&["report", run.to_str().unwrap()], cwd);
    assert!(report.status.success(), "{}", text(&report));
    assert!(run.join("summary.md").is_file());
    // Merging again (e.g. after rerunning a shard) replaces the merged files.
    let again = merge(cwd, &run);
    assert!(again.status.success(), "{}", text(&again));
    // An unsharded run folder is not a merge target.
    let refused = merge(cwd, &single);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("shards"), "{}", text(&refused));
}

#[test]
fn merge_names_a_missing_shard_a_duplicate_a_misplaced_and_a_foreign_row() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("shardy.yaml"), CONFIG).unwrap();
    let run = sharded(cwd, "base");
    let copy = |name: &str| -> PathBuf {
        let to = cwd.join(name);
        let status = std::process::Command::new("cp")
            .args(["-r", run.to_str().unwrap(), to.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        to
    };
    let failure = |dir: &Path| -> String {
        let out = merge(cwd, dir);
        assert!(
            !out.status.success(),
            "merge of {} succeeded",
            dir.display()
        );
        text(&out)
    };
    let first_line = |dir: &Path, shard: &str| -> String {
        std::fs::read_to_string(dir.join(format!("shards/{shard}/rows.jsonl")))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    let append = |path: PathBuf, line: &str| {
        let mut log = std::fs::read_to_string(&path).unwrap();
        log.push_str(line);
        log.push('\n');
        std::fs::write(path, log).unwrap();
    };

    // A missing shard.
    let missing = copy("missing");
    std::fs::remove_dir_all(missing.join("shards/3-of-3")).unwrap();
    let e = failure(&missing);
    assert!(e.contains("shard 3/3 is missing"), "{e}");

    // A row lost from a shard: the point is named.
    let lost = copy("lost");
    let log = lost.join("shards/1-of-3/rows.jsonl");
    let text_before = std::fs::read_to_string(&log).unwrap();
    let (kept, dropped) = text_before.split_once('\n').unwrap();
    let dropped_key = serde_json::from_str::<serde_json::Value>(kept).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&log, dropped).unwrap();
    let e = failure(&lost);
    assert!(
        e.contains("have no row") && e.contains(&dropped_key) && e.contains("shard 1/3"),
        "{e}"
    );

    // A row duplicated into another shard's log.
    let dup = copy("dup");
    let row = first_line(&dup, "1-of-3");
    append(dup.join("shards/2-of-3/rows.jsonl"), &row);
    let e = failure(&dup);
    let key = serde_json::from_str::<serde_json::Value>(&row).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&key) && e.contains("belongs to shard 1/3") && e.contains("rows.jsonl:"),
        "{e}"
    );

    // A row repeated within one shard's log.
    let twice = copy("twice");
    let row = first_line(&twice, "1-of-3");
    append(twice.join("shards/1-of-3/rows.jsonl"), &row);
    let e = failure(&twice);
    assert!(
        e.contains("1-of-3/rows.jsonl:") && e.contains("duplicate of line 1"),
        "{e}"
    );

    // A row of another config (same point, other hash).
    let foreign = copy("foreign");
    let row = first_line(&foreign, "2-of-3");
    let mut value: serde_json::Value = serde_json::from_str(&row).unwrap();
    value["config_hash"] = "0123456789abcdef".into();
    let log = foreign.join("shards/2-of-3/rows.jsonl");
    let rest: String = std::fs::read_to_string(&log)
        .unwrap()
        .split_inclusive('\n')
        .skip(1)
        .collect();
    std::fs::write(&log, format!("{value}\n{rest}")).unwrap();
    let e = failure(&foreign);
    assert!(
        e.contains("2-of-3/rows.jsonl:1") && e.contains("another config"),
        "{e}"
    );

    // A shard run by another build (its recorded versions differ): merge refuses it, and
    // so does resuming that shard with this binary.
    let build = copy("build");
    let path = build.join("shards/2-of-3/manifest.json");
    let mut man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    man["versions"][0][1] = "0.0.0-other".into();
    std::fs::write(&path, man.to_string()).unwrap();
    let e = failure(&build);
    assert!(e.contains("shard 2/3 was run by another build"), "{e}");
    let rerun = touchstone(
        &[
            "run",
            "shardy.yaml",
            "--quiet",
            "--shard",
            "2/3",
            "--run-dir",
            build.to_str().unwrap(),
        ],
        cwd,
    );
    assert!(!rerun.status.success());
    assert!(text(&rerun).contains("another build"), "{}", text(&rerun));

    // A shard run from another version of the config.
    let other = copy("other");
    std::fs::write(
        cwd.join("shardy.yaml"),
        CONFIG.replace("repetitions: 1", "repetitions: 2"),
    )
    .unwrap();
    std::fs::remove_dir_all(other.join("shards/3-of-3")).unwrap();
    run_shard(cwd, &other, "3/3");
    let e = failure(&other);
    assert!(e.contains("another config"), "{e}");
}

#[test]
fn shard_arguments_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("shardy.yaml"), CONFIG).unwrap();
    for (args, expect) in [
        (
            vec!["--shard", "4/3", "--run-dir", "r"],
            "I must be in 1..=N",
        ),
        (vec!["--shard", "1/3"], "--run-dir"),
        (
            vec!["--shard", "1/3", "--run-dir", "r", "--resume"],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["run", "shardy.yaml", "--quiet"];
        all.extend(args);
        let out = touchstone(&all, cwd);
        assert!(!out.status.success());
        assert!(text(&out).contains(expect), "{all:?}: {}", text(&out));
    }
}
