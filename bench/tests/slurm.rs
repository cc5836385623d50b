//! A sweep on a real single-node Slurm cluster: `touchstone slurm --submit` sends 3 array
//! tasks and the merge job to slurmctld; the merged run holds every point of the sweep.
//!
//! The cluster (munged, slurmctld, slurmd from Debian's `munge` and `slurm-wlm`, installed
//! by tests/slurm/cluster.sh when missing) lives in a temp folder and is stopped by PID
//! when the test ends, whatever its outcome. Where Slurm cannot be installed (not root,
//! no apt-get, no package) the test prints "skipped: <why>" and passes without a claim.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{text, touchstone};

const CONFIG: &str = "name: slurmy
seed: [1, 2]
repetitions: 1
matching:
  scheme: [plain, quantized, columnar]
  users: [8, 24]
  probes: 1
outputs:
  dir: out
";

/// The scratch cluster; stopped on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slurm/cluster.sh")
}

impl Cluster {
    /// Starts the cluster, or returns why it cannot run here.
    fn start(dir: &Path) -> Result<Self, String> {
        let out = Command::new("bash")
            .arg(script())
            .args(["start", dir.to_str().unwrap()])
            .output()
            .expect("bash runs");
        let all = text(&out);
        match out.status.code() {
            Some(0) => {}
            Some(3) => return Err(all.trim().to_string()),
            _ => {
                let logs = ["slurmctld.log", "slurmd.log", "munged.log"]
                    .iter()
                    .map(|f| {
                        format!(
                            "--- {f}\n{}",
                            std::fs::read_to_string(dir.join(f)).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                // Stop whatever did start before failing.
                Self::stop_dir(dir);
                panic!("starting the Slurm test cluster failed:\n{all}\n{logs}");
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
        })
    }

    fn stop_dir(dir: &Path) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", dir.to_str().unwrap()])
            .status();
    }

    /// A Slurm client command against this cluster.
    fn command(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        text(&out)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        Self::stop_dir(&self.dir);
    }
}

/// `JobState=…` of a job, from `scontrol show job`.
fn state(cluster: &Cluster, job: &str) -> String {
    let out = cluster.command("scontrol", &["show", "job", job]);
    out.split_whitespace()
        .filter_map(|w| w.strip_prefix("JobState="))
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_sweep_submitted_to_slurm_as_three_array_tasks_merges_to_every_point() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = match Cluster::start(&tmp.path().join("slurm")) {
        Ok(c) => c,
        Err(why) => {
            println!("{why}");
            return;
        }
    };
    let cwd = tmp.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("slurmy.yaml"), CONFIG).unwrap();
    let run = cwd.join("run");
    let submit = Command::new(env!("CARGO_BIN_EXE_touchstone"))
        .args([
            "slurm",
            "slurmy.yaml",
            "--shards",
            "3",
            "--run-dir",
            run.to_str().unwrap(),
            "--time",
            "10:00",
            "--mem",
            "1G",
            "--cpus-per-task",
            "1",
            "--submit",
        ])
        .current_dir(&cwd)
        .env("SLURM_CONF", &cluster.conf)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(submit.status.success(), "{}", text(&submit));
    println!(
        "$ touchstone slurm slurmy.yaml --shards 3 … --submit\n{}",
        text(&submit)
    );
    let ids: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("slurm/submitted.json")).unwrap())
            .unwrap();
    let (array, merge) = (
        ids["array_job"].as_str().unwrap().to_string(),
        ids["merge_job"].as_str().unwrap().to_string(),
    );
    println!(
        "--- slurm/array.sbatch\n{}",
        std::fs::read_to_string(run.join("slurm/array.sbatch")).unwrap()
    );
    println!("$ squeue\n{}", cluster.command("squeue", &[]));

    // Bounded wait for the merge job.
    let deadline = Instant::now() + Duration::from_secs(600);
    let finished = loop {
        let s = state(&cluster, &merge);
        if s == "COMPLETED" {
            break true;
        }
        if [
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
        ]
        .iter()
        .any(|bad| s.contains(bad))
            || Instant::now() > deadline
        {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let jobs = cluster.command("scontrol", &["show", "job", "-o"]);
    println!("$ scontrol show job -o\n{jobs}");
    if !finished {
        let logs: String = std::fs::read_dir(run.join("logs"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        format!(
                            "--- {}\n{}",
                            e.path().display(),
                            std::fs::read_to_string(e.path()).unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "merge job {merge} did not complete (state {}; array {array}: {})\n{logs}",
            state(&cluster, &merge),
            state(&cluster, &array)
        );
    }
    // Every array task ran and succeeded.
    let tasks: Vec<&str> = jobs
        .lines()
        .filter(|l| l.contains(&format!("ArrayJobId={array} ")))
        .collect();
    assert_eq!(tasks.len(), 3, "{jobs}");
    assert!(
        tasks.iter().all(|l| l.contains("JobState=COMPLETED")),
        "{jobs}"
    );

    // The merged run: every point once, the shards and their Slurm ids recorded.
    let rows = std::fs::read_to_string(run.join("rows.jsonl")).unwrap();
    let mut keys: Vec<String> = rows
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!((n, keys.len()), (12, 12), "2 seeds × 3 schemes × 2 sizes");
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    println!("--- summary.md (merged)\n{summary}");
    assert!(
        summary.contains("## Shards") && summary.contains(&format!("({array}_2)")),
        "the summary lists the shards with their Slurm ids"
    );
    for scheme in ["plain", "quantized", "columnar"] {
        assert!(
            summary.contains(scheme),
            "{scheme} missing from the summary"
        );
    }
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let shards = man["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    let mut task_ids: Vec<String> = shards
        .iter()
        .map(|s| {
            let slurm = &s["attempts"][0]["slurm"];
            assert_eq!(slurm["array_job_id"].as_str(), Some(array.as_str()), "{s}");
            slurm["array_task_id"].as_str().unwrap().to_string()
        })
        .collect();
    task_ids.sort();
    assert_eq!(task_ids, ["1", "2", "3"]);
    // The merged folder reads as any run.
    let report = touchstone(&["report", run.to_str().unwrap()], &cwd);
    assert!(report.status.success(), "{}", text(&report));
}
