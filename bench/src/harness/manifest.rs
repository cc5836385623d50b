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
    /// touchstone, the compiler (`rustc -V` at build time) and the locked versions of the
    /// crates that determine results (from Cargo.lock at build time).
    pub versions: Vec<(String, String)>,
    pub machine: String,
    pub seeds: Vec<u64>,
    /// The model folder and the SHA-256 of its files (None without a model).
    #[serde(default)]
    pub model: Option<Inputs>,
    /// The dataset folder and the SHA-256 of its manifest (or of its file listing).
    #[serde(default)]
    pub dataset: Option<Inputs>,
    /// Every parameter set the sweep uses: N, the ciphertext moduli and t.
    #[serde(default)]
    pub params: Vec<ParamRecord>,
    pub started: String,
    pub finished: Option<String>,
    pub rows: usize,
    pub wall_s: f64,
    /// A shard's folder: which shard, and every attempt at it (host, times, Slurm ids).
    #[serde(default)]
    pub shard: Option<super::shard::ShardRecord>,
    /// A merged run: the shards it was merged from.
    #[serde(default)]
    pub shards: Vec<super::shard::ShardRecord>,
}

/// A folder a run read, and hashes that identify its contents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub path: String,
    /// (file, sha256 hex) pairs.
    pub sha256: Vec<(String, String)>,
}

/// One parameter set as built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamRecord {
    pub name: String,
    pub degree: usize,
    pub moduli: Vec<u64>,
    pub plaintext: u64,
    pub log2_q: f64,
    pub insecure: bool,
}

/// The versions recorded at build time.
pub fn versions() -> Vec<(String, String)> {
    let mut v = vec![
        (
            "touchstone".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("rustc".to_string(), env!("TOUCHSTONE_RUSTC").to_string()),
    ];
    v.extend(env!("TOUCHSTONE_LOCKED").split(';').filter_map(|pair| {
        pair.split_once('=')
            .map(|(n, ver)| (n.to_string(), ver.to_string()))
    }));
    v
}

/// SHA-256 of a file, hex.
fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("hashing {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The model folder's weights and head.
pub fn model_inputs(dir: &Path) -> Result<Inputs> {
    let mut sha256 = Vec::new();
    for file in ["model.mpk", "head.json"] {
        sha256.push((file.to_string(), sha256_file(&dir.join(file))?));
    }
    Ok(Inputs {
        path: dir.display().to_string(),
        sha256,
    })
}

/// A dataset folder: the hash of its manifest.json (synthetic sets), else of its sorted
/// file listing with sizes. The listing does not see an image edited in place at the same
/// size; hashing every image of a real dataset would cost more than many runs.
pub fn dataset_inputs(dir: &Path) -> Result<Inputs> {
    use sha2::{Digest, Sha256};
    let manifest = dir.join("manifest.json");
    let sha256 = if manifest.is_file() {
        vec![("manifest.json".to_string(), sha256_file(&manifest)?)]
    } else {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in
                std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))?
            {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    files.push((rel, entry.metadata()?.len()));
                }
            }
        }
        files.sort();
        let mut h = Sha256::new();
        for (name, len) in &files {
            h.update(format!("{name}\t{len}\n").as_bytes());
        }
        vec![(
            format!("listing of {} files", files.len()),
            format!("{:x}", h.finalize()),
        )]
    };
    Ok(Inputs {
        path: dir.display().to_string(),
        sha256,
    })
}

impl Manifest {
    pub fn new(config: &ExperimentConfig, text: &str, path: &Path) -> Self {
        Self {
            seeds: config.seed.0.clone(),
            ..Self::for_study(&config.name, text, path)
        }
    }

    /// A study that is not a sweep (e.g. BPKEM): the config text and its hash, versions,
    /// machine; the caller fills seeds and inputs.
    pub fn for_study(name: &str, text: &str, path: &Path) -> Self {
        Self {
            name: name.to_string(),
            config_path: path.display().to_string(),
            config_hash: hash(text),
            config: text.to_string(),
            git_commit: git_commit(),
            versions: versions(),
            machine: super::machine::describe(),
            seeds: Vec::new(),
            model: None,
            dataset: None,
            params: Vec::new(),
            started: timestamp(),
            finished: None,
            rows: 0,
            wall_s: 0.0,
            shard: None,
            shards: Vec::new(),
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

    /// Replaces manifest.json atomically (a run killed mid-write keeps the old one).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("manifest.json");
        super::atomic::write(&path, serde_json::to_string_pretty(self)?.as_bytes())
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

/// The commit, with `+dirty` when tracked files differ from it (the numbers then come
/// from code no commit holds).
pub(crate) fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}+dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
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
