//! manifest.json: how a run directory was made — the config and its hash, git commit,
//! versions, machine, seeds, wall time — so every table and figure can be traced back.

use super::config::ExperimentConfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub config_path: String,
    pub config_hash: String,
    pub config: String,
    pub git_commit: String,
    pub versions: Vec<(String, String)>,
    pub machine: String,
    pub seeds: Vec<u64>,
    pub started: String,
    pub finished: Option<String>,
    pub rows: usize,
    pub wall_s: f64,
}

impl Manifest {
    pub fn new(config: &ExperimentConfig, text: &str, path: &Path) -> Self {
        Self {
            name: config.name.clone(),
            config_path: path.display().to_string(),
            config_hash: hash(text),
            config: text.to_string(),
            git_commit: git_commit(),
            versions: vec![
                ("touchstone".into(), env!("CARGO_PKG_VERSION").into()),
                ("fhe.rs".into(), "0.1.1".into()),
                ("burn".into(), "0.21.0".into()),
                ("polars".into(), "0.55".into()),
                (
                    "rustc".into(),
                    option_env!("RUSTC_VERSION")
                        .unwrap_or("see rust-toolchain")
                        .into(),
                ),
            ],
            machine: super::machine::describe(),
            seeds: config.seed.0.clone(),
            started: timestamp(),
            finished: None,
            rows: 0,
            wall_s: 0.0,
        }
    }

    /// Marks the run complete.
    pub fn finish(&mut self, wall_s: f64, rows: usize) {
        self.finished = Some(timestamp());
        self.wall_s = wall_s;
        self.rows = rows;
    }

    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("manifest.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("manifest.json");
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// FNV-1a of the config text, hex: equal configs give equal hashes on every machine.
pub fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
}

/// UTC time as `YYYYMMDD-HHMMSS` (sortable; used as the run directory name).
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The newest run directory under `root` (names are timestamps).
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(None);
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs.pop())
}
